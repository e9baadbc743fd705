//! A fake Discord on 127.0.0.1 speaking the real wire shapes, so the real serenity client
//! can be pointed at it (`HttpBuilder::proxy` for REST, the gateway URL for the WebSocket).
//!
//! REST (`/api/v10`, `Authorization: Bot <token>`): `GET /users/@me`, `GET /gateway`,
//! `GET /gateway/bot`, `POST /channels/{id}/messages`, `PATCH /channels/{id}/messages/{mid}`,
//! `POST /channels/{id}/typing`. Anything else is answered 404 and logged in
//! [`FakeDiscord::unknown_routes`].
//!
//! Gateway (`/gateway`): op 10 HELLO on connect; op 2 IDENTIFY (recorded) is answered with
//! READY, op 6 RESUME of a known session with RESUMED (else op 9), op 1 heartbeats with op 11.
//! Dispatches carry a sequence number per session, continued across resumes.

#![allow(dead_code)] // each test binary uses a different part of the fake

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};
use serenity::futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::ws::{Message, WebSocket, Ws};

/// The fake bot's user id and username, as `/users/@me` and READY report them.
pub const BOT_ID: u64 = 999;
pub const BOT_NAME: &str = "borg-test";
/// What HELLO asks for: short, so heartbeats happen within a test.
pub const HEARTBEAT_MS: u64 = 1000;

/// A message the fake accepted through `POST /channels/{id}/messages` (edits applied).
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    pub channel_id: u64,
    pub message_id: u64,
    pub content: String,
    pub reply_to: Option<u64>,
    /// The request's `message_reference.fail_if_not_exists`.
    pub fail_if_not_exists: Option<bool>,
    /// The request's `allowed_mentions`, as sent.
    pub allowed_mentions: Value,
    pub edits: u32,
}

enum Outgoing {
    Text(String),
    /// Drop the TCP connection without a close frame, as a network failure would.
    Drop,
}

struct Connection {
    out: mpsc::UnboundedSender<Outgoing>,
    /// The session identified or resumed on this connection.
    session: Option<String>,
}

#[derive(Default)]
struct Inner {
    requests: Vec<String>,
    unknown: Vec<String>,
    sent: Vec<Sent>,
    typing: Vec<u64>,
    next_message_id: u64,
    /// Send calls (POST messages) still to refuse with 429.
    rate_limited_sends: u32,
    missing_channels: HashSet<u64>,
    denied_channels: HashSet<u64>,
    identifies: Vec<Value>,
    resumes: usize,
    heartbeats: usize,
    refuse_gateway: bool,
    next_connection: u64,
    connections: HashMap<u64, Connection>,
    /// Session id → last sequence number sent in it.
    sessions: HashMap<String, u64>,
}

struct Shared {
    token: String,
    gateway_url: String,
    inner: Mutex<Inner>,
    /// Bumped on every change; test helpers wait on it.
    changed: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }
}

/// The running fake; stops when dropped.
pub struct FakeDiscord {
    /// The REST base to give serenity (`http://127.0.0.1:PORT`).
    pub api_url: String,
    /// The gateway's URL (`ws://127.0.0.1:PORT/gateway`), as `/gateway/bot` reports it.
    pub gateway_url: String,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Drop for FakeDiscord {
    fn drop(&mut self) {
        self.server.abort();
        self.drop_connections();
    }
}

impl FakeDiscord {
    /// Starts a fake that accepts `token`.
    pub async fn start(token: &str) -> FakeDiscord {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            token: token.to_owned(),
            gateway_url: format!("ws://{addr}/gateway"),
            inner: Mutex::new(Inner {
                next_message_id: 5000,
                ..Inner::default()
            }),
            changed: watch::channel(0).0,
        });
        let for_ws = shared.clone();
        let gateway = warp::path("gateway")
            .and(warp::path::end())
            .and(warp::ws())
            .map(move |ws: Ws| {
                let shared = for_ws.clone();
                if shared.lock().refuse_gateway {
                    return StatusCode::SERVICE_UNAVAILABLE.into_response();
                }
                ws.on_upgrade(move |socket| gateway_connection(shared, socket))
                    .into_response()
            });
        let for_rest = shared.clone();
        let rest = warp::method()
            .and(warp::path::full())
            .and(warp::header::optional::<String>("authorization"))
            .and(warp::body::bytes())
            .map(
                move |method: warp::http::Method,
                      path: warp::path::FullPath,
                      auth: Option<String>,
                      body: warp::hyper::body::Bytes| {
                    rest_call(&for_rest, method.as_str(), path.as_str(), auth, &body)
                },
            );
        let server = tokio::spawn(warp::serve(gateway.or(rest)).incoming(listener).run());
        FakeDiscord {
            api_url: format!("http://{addr}"),
            gateway_url: shared.gateway_url.clone(),
            shared,
            server,
        }
    }

    /// Sends `d` as a MESSAGE_CREATE dispatch to every identified connection, waiting up to
    /// 10 s for one to exist; returns how many got it.
    pub async fn push_message_create(&self, d: Value) -> usize {
        self.wait_until("an identified gateway session", |f| f.live_sessions() > 0)
            .await;
        let mut inner = self.shared.lock();
        let Inner {
            connections,
            sessions,
            ..
        } = &mut *inner;
        let mut reached = 0;
        for conn in connections.values() {
            let Some(seq) = conn.session.as_ref().and_then(|s| sessions.get_mut(s)) else {
                continue;
            };
            *seq += 1;
            let frame = json!({"op": 0, "t": "MESSAGE_CREATE", "s": *seq, "d": d});
            reached += usize::from(conn.out.send(Outgoing::Text(frame.to_string())).is_ok());
        }
        reached
    }

    /// Connections with an identified or resumed session.
    pub fn live_sessions(&self) -> usize {
        let inner = self.shared.lock();
        inner
            .connections
            .values()
            .filter(|c| c.session.is_some())
            .count()
    }

    /// The `d` of every IDENTIFY received.
    pub fn identifies(&self) -> Vec<Value> {
        self.shared.lock().identifies.clone()
    }

    pub fn resumes(&self) -> usize {
        self.shared.lock().resumes
    }

    pub fn heartbeats(&self) -> usize {
        self.shared.lock().heartbeats
    }

    /// Cuts every gateway connection without a close frame.
    pub fn drop_connections(&self) {
        for conn in self.shared.lock().connections.values() {
            let _ = conn.out.send(Outgoing::Drop);
        }
    }

    /// Answers gateway upgrades with 503 while `refuse` holds.
    pub fn refuse_gateway(&self, refuse: bool) {
        self.shared.lock().refuse_gateway = refuse;
    }

    /// Every REST call, as `METHOD /path`.
    pub fn requests(&self) -> Vec<String> {
        self.shared.lock().requests.clone()
    }

    pub fn unknown_routes(&self) -> Vec<String> {
        self.shared.lock().unknown.clone()
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.shared.lock().sent.clone()
    }

    /// Channels that got a typing call, in order.
    pub fn typing(&self) -> Vec<u64> {
        self.shared.lock().typing.clone()
    }

    /// Answer the next `times` sends with 429.
    pub fn rate_limit_sends(&self, times: u32) {
        self.shared.lock().rate_limited_sends = times;
    }

    /// Answer calls about this channel with 404 Unknown Channel.
    pub fn forget_channel(&self, id: u64) {
        self.shared.lock().missing_channels.insert(id);
    }

    /// Answer calls about this channel with 403 Missing Access.
    pub fn deny_channel(&self, id: u64) {
        self.shared.lock().denied_channels.insert(id);
    }

    /// Waits up to 10 s until `check` holds, panicking with `what` after.
    pub async fn wait_until(&self, what: &str, check: impl Fn(&FakeDiscord) -> bool) {
        let timeout = Duration::from_secs(10);
        let mut changed = self.shared.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        while !check(self) {
            if tokio::time::timeout_at(deadline, changed.changed())
                .await
                .is_err()
            {
                panic!("timed out after {timeout:?} waiting for {what}");
            }
        }
    }
}

/// A user object as Discord sends it.
pub fn user_json(id: u64, name: &str, bot: bool) -> Value {
    json!({"id": id.to_string(), "username": name, "discriminator": "0", "global_name": null,
           "avatar": null, "bot": bot})
}

/// A message object with every field serenity requires.
pub fn message_json(id: u64, channel: u64, guild: Option<u64>, author: Value, text: &str) -> Value {
    let mut message = json!({
        "id": id.to_string(), "channel_id": channel.to_string(), "author": author,
        "content": text, "timestamp": "2023-11-14T22:13:20.000000+00:00",
        "edited_timestamp": null, "tts": false, "mention_everyone": false, "mentions": [],
        "mention_roles": [], "attachments": [], "embeds": [], "pinned": false, "type": 0,
    });
    if let Some(guild) = guild {
        message["guild_id"] = json!(guild.to_string());
    }
    message
}

fn answer(status: StatusCode, body: Value) -> Response {
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

fn error(status: StatusCode, code: u32, message: &str) -> Response {
    answer(status, json!({"message": message, "code": code}))
}

fn rest_call(
    shared: &Shared,
    method: &str,
    path: &str,
    auth: Option<String>,
    body: &[u8],
) -> Response {
    let call = format!("{method} {path}");
    shared.lock().requests.push(call.clone());
    shared.bump();
    let route = path
        .strip_prefix("/api/v10/")
        .unwrap_or("")
        .replace("%40", "@");
    let parts: Vec<&str> = route.split('/').collect();
    // Discord answers `GET /gateway` without a token; everything else needs it.
    if route != "gateway" && auth.as_deref() != Some(&format!("Bot {}", shared.token)) {
        return error(StatusCode::UNAUTHORIZED, 0, "401: Unauthorized");
    }
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match (method, parts.as_slice()) {
        ("GET", ["users", "@me"]) => answer(StatusCode::OK, user_json(BOT_ID, BOT_NAME, true)),
        ("GET", ["gateway"]) => answer(StatusCode::OK, json!({"url": shared.gateway_url})),
        ("GET", ["gateway", "bot"]) => answer(
            StatusCode::OK,
            json!({"url": shared.gateway_url, "shards": 1, "session_start_limit":
                {"total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1}}),
        ),
        ("POST", ["channels", channel, "messages"]) => {
            with_channel(shared, channel, |id| send_message(shared, id, &body))
        }
        ("PATCH", ["channels", channel, "messages", message]) => {
            with_channel(shared, channel, |id| {
                edit_message(shared, id, message, &body)
            })
        }
        ("POST", ["channels", channel, "typing"]) => with_channel(shared, channel, |id| {
            shared.lock().typing.push(id);
            shared.bump();
            StatusCode::NO_CONTENT.into_response()
        }),
        _ => {
            shared.lock().unknown.push(call);
            error(StatusCode::NOT_FOUND, 0, "404: Not Found")
        }
    }
}

/// Runs `f` for a channel the bot can use, else answers as Discord would.
fn with_channel(shared: &Shared, channel: &str, f: impl FnOnce(u64) -> Response) -> Response {
    let Ok(id) = channel.parse::<u64>() else {
        return error(StatusCode::BAD_REQUEST, 50035, "Invalid Form Body");
    };
    let (missing, denied) = {
        let inner = shared.lock();
        (
            inner.missing_channels.contains(&id),
            inner.denied_channels.contains(&id),
        )
    };
    match (missing, denied) {
        (true, _) => error(StatusCode::NOT_FOUND, 10003, "Unknown Channel"),
        (_, true) => error(StatusCode::FORBIDDEN, 50001, "Missing Access"),
        _ => f(id),
    }
}

/// The content of a send or edit, or the refusal Discord would answer (status, code, text).
fn check_content(body: &Value) -> Result<String, (StatusCode, u32, &'static str)> {
    let content = body.get("content").and_then(Value::as_str).unwrap_or("");
    if content.is_empty() {
        return Err((
            StatusCode::BAD_REQUEST,
            50006,
            "Cannot send an empty message",
        ));
    }
    if content.chars().count() > 2000 {
        return Err((StatusCode::BAD_REQUEST, 50035, "Invalid Form Body"));
    }
    Ok(content.to_owned())
}

fn send_message(shared: &Shared, channel: u64, body: &Value) -> Response {
    let mut inner = shared.lock();
    if inner.rate_limited_sends > 0 {
        inner.rate_limited_sends -= 1;
        let body = json!({"message": "You are being rate limited.", "retry_after": 7.0,
                          "global": false});
        let reply =
            warp::reply::with_status(warp::reply::json(&body), StatusCode::TOO_MANY_REQUESTS);
        return warp::reply::with_header(reply, "retry-after", "7").into_response();
    }
    let content = match check_content(body) {
        Ok(content) => content,
        Err((status, code, text)) => return error(status, code, text),
    };
    let id = inner.next_message_id;
    inner.next_message_id += 1;
    let reference = body.get("message_reference");
    let reply_to = reference
        .and_then(|r| r.get("message_id"))
        .and_then(|id| id.as_str().and_then(|s| s.parse().ok()).or(id.as_u64()));
    inner.sent.push(Sent {
        channel_id: channel,
        message_id: id,
        content: content.clone(),
        reply_to,
        fail_if_not_exists: reference
            .and_then(|r| r.get("fail_if_not_exists"))
            .and_then(Value::as_bool),
        allowed_mentions: body.get("allowed_mentions").cloned().unwrap_or(Value::Null),
        edits: 0,
    });
    drop(inner);
    shared.bump();
    let bot = user_json(BOT_ID, BOT_NAME, true);
    answer(
        StatusCode::OK,
        message_json(id, channel, None, bot, &content),
    )
}

fn edit_message(shared: &Shared, channel: u64, message: &str, body: &Value) -> Response {
    let content = match check_content(body) {
        Ok(content) => content,
        Err((status, code, text)) => return error(status, code, text),
    };
    let id = message.parse::<u64>().unwrap_or(0);
    let mut inner = shared.lock();
    let Some(sent) = inner
        .sent
        .iter_mut()
        .find(|s| s.channel_id == channel && s.message_id == id)
    else {
        return error(StatusCode::NOT_FOUND, 10008, "Unknown Message");
    };
    sent.content = content.clone();
    sent.edits += 1;
    drop(inner);
    shared.bump();
    let bot = user_json(BOT_ID, BOT_NAME, true);
    answer(
        StatusCode::OK,
        message_json(id, channel, None, bot, &content),
    )
}

/// One gateway connection: HELLO, then frames both ways until either side ends it.
async fn gateway_connection(shared: Arc<Shared>, socket: WebSocket) {
    let (mut tx, mut rx) = socket.split();
    let (out, mut outgoing) = mpsc::unbounded_channel();
    let id = {
        let mut inner = shared.lock();
        inner.next_connection += 1;
        let id = inner.next_connection;
        inner
            .connections
            .insert(id, Connection { out, session: None });
        id
    };
    shared.bump();
    let hello = json!({"op": 10, "d": {"heartbeat_interval": HEARTBEAT_MS}});
    if tx.send(Message::text(hello.to_string())).await.is_ok() {
        loop {
            tokio::select! {
                frame = rx.next() => match frame {
                    Some(Ok(frame)) if frame.is_close() => {
                        // Answer the close handshake, as Discord does.
                        let _ = tx.close().await;
                        break;
                    }
                    Some(Ok(frame)) => {
                        let Ok(text) = frame.to_str() else { continue };
                        let payload: Value = serde_json::from_str(text).unwrap_or(Value::Null);
                        let replies = on_payload(&shared, id, &payload);
                        for reply in replies {
                            let _ = tx.send(reply).await;
                        }
                    }
                    _ => break,
                },
                next = outgoing.recv() => match next {
                    Some(Outgoing::Text(text)) => {
                        let _ = tx.send(Message::text(text)).await;
                    }
                    Some(Outgoing::Drop) | None => break,
                },
            }
        }
    }
    shared.lock().connections.remove(&id);
    shared.bump();
}

/// What the fake answers to one payload from the client.
fn on_payload(shared: &Shared, connection: u64, payload: &Value) -> Vec<Message> {
    let d = payload.get("d").cloned().unwrap_or(Value::Null);
    let mut inner = shared.lock();
    let frames = match payload.get("op").and_then(Value::as_u64) {
        Some(1) => {
            inner.heartbeats += 1;
            vec![Message::text(json!({"op": 11}).to_string())]
        }
        Some(2) => {
            inner.identifies.push(d.clone());
            let token = d.get("token").and_then(Value::as_str).unwrap_or("");
            if token.trim_start_matches("Bot ") != shared.token {
                vec![Message::close_with(4004u16, "Authentication failed.")]
            } else {
                let session = format!("session-{}", inner.identifies.len());
                inner.sessions.insert(session.clone(), 1);
                if let Some(conn) = inner.connections.get_mut(&connection) {
                    conn.session = Some(session.clone());
                }
                let ready = json!({"op": 0, "t": "READY", "s": 1, "d": {
                    "v": 10, "user": user_json(BOT_ID, BOT_NAME, true), "guilds": [],
                    "session_id": session, "resume_gateway_url": shared.gateway_url,
                    "shard": [0, 1], "application": {"id": BOT_ID.to_string(), "flags": 0}}});
                vec![Message::text(ready.to_string())]
            }
        }
        Some(6) => {
            let session = d.get("session_id").and_then(Value::as_str).unwrap_or("");
            let Inner {
                sessions,
                connections,
                resumes,
                ..
            } = &mut *inner;
            match sessions.get_mut(session) {
                Some(seq) => {
                    *resumes += 1;
                    *seq += 1;
                    if let Some(conn) = connections.get_mut(&connection) {
                        conn.session = Some(session.to_owned());
                    }
                    let resumed = json!({"op": 0, "t": "RESUMED", "s": *seq, "d": {}});
                    vec![Message::text(resumed.to_string())]
                }
                None => vec![Message::text(json!({"op": 9, "d": false}).to_string())],
            }
        }
        _ => Vec::new(),
    };
    drop(inner);
    shared.bump();
    frames
}
