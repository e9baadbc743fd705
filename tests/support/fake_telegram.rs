//! A fake Telegram Bot API on 127.0.0.1, speaking the real HTTP shape so the real teloxide
//! client can be pointed at it: `POST /bot<token>/<method>` with a JSON or form body (method
//! names case-insensitive: teloxide sends `GetUpdates`), answered with `{"ok":true,"result":…}`
//! or `{"ok":false,"error_code":…,"description":…}` and the matching HTTP status.
//!
//! Methods: getMe, getUpdates (long poll: waits up to `timeout` seconds, honours `offset`),
//! sendMessage, editMessageText, sendChatAction. Anything else is answered 404 and logged in
//! [`FakeTelegram::unknown_methods`].
//!
//! One deliberate difference from Telegram: updates below the offset are kept, not forgotten,
//! so a client that loses its offset visibly gets old updates again.

#![allow(dead_code)] // each test binary uses a different part of the fake

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use warp::Filter;
use warp::http::StatusCode;

/// The fake bot's user id and username, as getMe reports them.
pub const BOT_ID: i64 = 999;
pub const BOT_USERNAME: &str = "borg_test_bot";

/// One request the fake received (the rejected ones too).
#[derive(Debug, Clone)]
pub struct Call {
    /// Lower case: `sendmessage`.
    pub method: String,
    pub params: Value,
    /// When it arrived.
    pub at: Instant,
}

/// A way for the fake to refuse a call, the way Telegram (or what stands before it) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 429 with `parameters.retry_after` in seconds.
    RateLimit(u64),
    /// A server error with this HTTP status (502, 503, ...).
    Status(u16),
    /// No answer for this long, then 504: a gateway that timed out.
    Stall(Duration),
}

/// A message the fake accepted through sendMessage.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    pub chat_id: i64,
    pub message_id: i64,
    pub text: String,
    pub parse_mode: Option<String>,
    pub reply_to: Option<i64>,
}

#[derive(Default)]
struct Inner {
    /// (id used for offsets, the update exactly as pushed).
    updates: Vec<(i64, Value)>,
    next_update_id: i64,
    next_message_id: i64,
    calls: Vec<Call>,
    sent: Vec<Sent>,
    unknown: Vec<String>,
    reject_parse_mode: Option<String>,
    /// Faults still to be served, in order: (method in lower case, text the call's `text`
    /// must contain, the fault).
    faults: Vec<(String, String, Fault)>,
    missing_chats: HashSet<i64>,
}

struct Shared {
    token: String,
    inner: Mutex<Inner>,
    /// Bumped on every change; long polls and test helpers wait on it.
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
pub struct FakeTelegram {
    /// The API base URL to give the client (`http://127.0.0.1:PORT`).
    pub url: String,
    pub token: String,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// An error answer: HTTP status, description, optional `parameters`.
type Refusal = (StatusCode, String, Option<Value>);
type Answer = Result<Value, Refusal>;

impl FakeTelegram {
    /// Starts a fake that accepts `token`.
    pub async fn start(token: &str) -> FakeTelegram {
        let shared = Arc::new(Shared {
            token: token.to_owned(),
            inner: Mutex::new(Inner {
                next_update_id: 1,
                next_message_id: 1000,
                ..Inner::default()
            }),
            changed: watch::channel(0).0,
        });
        let for_route = shared.clone();
        let route = warp::path!(String / String)
            .and(warp::header::optional::<String>("content-type"))
            .and(warp::body::bytes())
            .then(
                move |bot: String,
                      method: String,
                      ctype: Option<String>,
                      body: warp::hyper::body::Bytes| {
                    let shared = for_route.clone();
                    async move { respond(handle(&shared, &bot, &method, ctype, &body).await) }
                },
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(warp::serve(route).incoming(listener).run());
        FakeTelegram {
            url,
            token: token.to_owned(),
            shared,
            server,
        }
    }

    /// Queues an update. Without an `update_id` it gets the next one; returns the id used
    /// for offsets (also for an update whose `update_id` is garbage).
    pub fn push_update(&self, mut update: Value) -> i64 {
        let mut inner = self.shared.lock();
        let id = match update.get("update_id") {
            None => {
                update["update_id"] = json!(inner.next_update_id);
                inner.next_update_id
            }
            Some(v) => v.as_i64().unwrap_or(inner.next_update_id),
        };
        inner.next_update_id = inner.next_update_id.max(id + 1);
        inner.updates.push((id, update));
        drop(inner);
        self.shared.bump();
        id
    }

    pub fn calls(&self) -> Vec<Call> {
        self.shared.lock().calls.clone()
    }

    pub fn calls_of(&self, method: &str) -> Vec<Call> {
        let method = method.to_ascii_lowercase();
        self.calls()
            .into_iter()
            .filter(|c| c.method == method)
            .collect()
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.shared.lock().sent.clone()
    }

    pub fn unknown_methods(&self) -> Vec<String> {
        self.shared.lock().unknown.clone()
    }

    /// From now on, refuse `sendMessage`/`editMessageText` with this `parse_mode` the way
    /// Telegram refuses bad entities.
    pub fn reject_parse_mode(&self, mode: &str) {
        self.shared.lock().reject_parse_mode = Some(mode.to_owned());
    }

    /// Answer the next `times` calls of `method` with 429 and `retry_after`.
    pub fn rate_limit(&self, method: &str, retry_after: u64, times: u32) {
        for _ in 0..times {
            self.fault(method, "", Fault::RateLimit(retry_after));
        }
    }

    /// Refuse the next call of `method` whose `text` contains `needle` (any call for "")
    /// with `fault`. Faults queued for the same call are served one per call, in order.
    pub fn fault(&self, method: &str, needle: &str, fault: Fault) {
        let method = method.to_ascii_lowercase();
        self.shared
            .lock()
            .faults
            .push((method, needle.to_owned(), fault));
    }

    /// How many queued faults have not been served yet.
    pub fn pending_faults(&self) -> usize {
        self.shared.lock().faults.len()
    }

    /// Answer every call about this chat with "chat not found".
    pub fn forget_chat(&self, chat_id: i64) {
        self.shared.lock().missing_chats.insert(chat_id);
    }

    /// Waits until `check` holds, panicking with `what` after `timeout`.
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&FakeTelegram) -> bool,
    ) {
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

    /// The texts the bot sent, in order.
    pub fn texts(&self) -> Vec<String> {
        self.sent().into_iter().map(|s| s.text).collect()
    }

    /// Waits until the bot has sent a text containing `needle`.
    pub async fn wait_for_text(&self, what: &str, timeout: Duration, needle: &str) {
        self.wait_until(what, timeout, |t| {
            t.texts().iter().any(|x| x.contains(needle))
        })
        .await;
    }

    /// Waits for `n` calls of `method` in all.
    pub async fn wait_for_calls(&self, method: &str, n: usize) {
        let what = format!("{n} {method} calls");
        self.wait_until(&what, Duration::from_secs(10), |f| {
            f.calls_of(method).len() >= n
        })
        .await;
    }
}

/// `(status, body)` as warp wants it.
fn respond(answer: Answer) -> warp::reply::WithStatus<warp::reply::Json> {
    let (status, body) = match answer {
        Ok(result) => (StatusCode::OK, json!({"ok": true, "result": result})),
        Err((status, description, parameters)) => {
            let mut body =
                json!({"ok": false, "error_code": status.as_u16(), "description": description});
            if let Some(p) = parameters {
                body["parameters"] = p;
            }
            (status, body)
        }
    };
    warp::reply::with_status(warp::reply::json(&body), status)
}

fn bad_request(what: &str) -> Refusal {
    (
        StatusCode::BAD_REQUEST,
        format!("Bad Request: {what}"),
        None,
    )
}

async fn handle(
    shared: &Shared,
    bot: &str,
    method: &str,
    ctype: Option<String>,
    body: &[u8],
) -> Answer {
    let method = method.to_ascii_lowercase();
    let params = parse_body(ctype.as_deref(), body);
    {
        let mut inner = shared.lock();
        inner.calls.push(Call {
            method: method.clone(),
            params: params.clone(),
            at: Instant::now(),
        });
    }
    shared.bump();
    if bot.strip_prefix("bot") != Some(shared.token.as_str()) {
        return Err((StatusCode::UNAUTHORIZED, "Unauthorized".into(), None));
    }
    if let Some(fault) = take_fault(shared, &method, &params) {
        return Err(refusal(fault).await);
    }
    match method.as_str() {
        "getme" => Ok(bot_user(true)),
        "getupdates" => get_updates(shared, &params).await,
        "sendmessage" => send_message(shared, &params),
        "editmessagetext" => edit_message(shared, &params),
        "sendchataction" => chat_of(shared, &params).map(|_| json!(true)),
        _ => {
            shared.lock().unknown.push(method.clone());
            Err((
                StatusCode::NOT_FOUND,
                format!("Not Found: method {method}"),
                None,
            ))
        }
    }
}

/// JSON, or `application/x-www-form-urlencoded` with JSON-looking values decoded.
fn parse_body(ctype: Option<&str>, body: &[u8]) -> Value {
    if body.is_empty() {
        return json!({});
    }
    if !ctype.is_some_and(|c| c.contains("x-www-form-urlencoded")) {
        return serde_json::from_slice(body).unwrap_or_else(|_| json!({}));
    }
    let text = String::from_utf8_lossy(body);
    let mut map = serde_json::Map::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v);
        map.insert(
            percent_decode(k),
            serde_json::from_str(&v).unwrap_or(Value::String(v)),
        );
    }
    Value::Object(map)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| hex_byte(bytes.get(i + 1..i + 3)))
            .flatten();
        match (escaped, bytes[i]) {
            (Some(byte), _) => {
                out.push(byte);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, b) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_byte(digits: Option<&[u8]>) -> Option<u8> {
    u8::from_str_radix(std::str::from_utf8(digits?).ok()?, 16).ok()
}

fn take_fault(shared: &Shared, method: &str, params: &Value) -> Option<Fault> {
    let mut inner = shared.lock();
    let text = params["text"].as_str().unwrap_or_default();
    let at = inner
        .faults
        .iter()
        .position(|(m, needle, _)| m == method && text.contains(needle.as_str()))?;
    Some(inner.faults.remove(at).2)
}

async fn refusal(fault: Fault) -> Refusal {
    match fault {
        Fault::RateLimit(retry_after) => (
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too Many Requests: retry after {retry_after}"),
            Some(json!({"retry_after": retry_after})),
        ),
        Fault::Status(status) => {
            let status = StatusCode::from_u16(status).expect("an HTTP status");
            let reason = status.canonical_reason().unwrap_or("Server Error");
            (status, reason.to_owned(), None)
        }
        Fault::Stall(how_long) => {
            tokio::time::sleep(how_long).await;
            (StatusCode::GATEWAY_TIMEOUT, "Gateway Timeout".into(), None)
        }
    }
}

fn bot_user(me: bool) -> Value {
    let mut user =
        json!({"id": BOT_ID, "is_bot": true, "first_name": "Borg", "username": BOT_USERNAME});
    if me {
        // teloxide's `Me` requires these.
        for flag in [
            "can_join_groups",
            "can_read_all_group_messages",
            "supports_inline_queries",
            "has_main_web_app",
        ] {
            user[flag] = json!(false);
        }
    }
    user
}

async fn get_updates(shared: &Shared, params: &Value) -> Answer {
    let offset = params.get("offset").and_then(Value::as_i64).unwrap_or(0);
    let limit = params.get("limit").and_then(Value::as_u64).unwrap_or(100) as usize;
    let timeout = Duration::from_secs(params.get("timeout").and_then(Value::as_u64).unwrap_or(0));
    let deadline = Instant::now() + timeout;
    let mut changed = shared.changed.subscribe();
    loop {
        let ready: Vec<Value> = shared
            .lock()
            .updates
            .iter()
            .filter(|(id, _)| *id >= offset)
            .take(limit)
            .map(|(_, u)| u.clone())
            .collect();
        let left = deadline.saturating_duration_since(Instant::now());
        if !ready.is_empty() || left.is_zero() {
            return Ok(Value::Array(ready));
        }
        let _ = tokio::time::timeout(left, changed.changed()).await;
    }
}

fn chat_of(shared: &Shared, params: &Value) -> Result<i64, Refusal> {
    let chat = params
        .get("chat_id")
        .and_then(|c| c.as_i64().or_else(|| c.as_str()?.parse().ok()));
    match chat {
        Some(id) if !shared.lock().missing_chats.contains(&id) => Ok(id),
        _ => Err(bad_request("chat not found")),
    }
}

fn check_text(shared: &Shared, params: &Value) -> Result<(String, Option<String>), Refusal> {
    let text = params
        .get("text")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let parse_mode = params
        .get("parse_mode")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if text.is_empty() {
        return Err(bad_request("message text is empty"));
    }
    if text.encode_utf16().count() > 4096 {
        return Err(bad_request("message is too long"));
    }
    let rejected = shared.lock().reject_parse_mode.clone();
    if let (Some(mode), Some(rejected)) = (&parse_mode, rejected)
        && mode.eq_ignore_ascii_case(&rejected)
    {
        return Err(bad_request(
            "can't parse entities: Unsupported start tag \"x\" at byte offset 0",
        ));
    }
    Ok((text, parse_mode))
}

fn message_json(chat_id: i64, message_id: i64, text: &str) -> Value {
    let date = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let chat = if chat_id > 0 {
        json!({"id": chat_id, "type": "private", "first_name": "Someone"})
    } else {
        json!({"id": chat_id, "type": "supergroup", "title": "Group"})
    };
    json!({"message_id": message_id, "date": date, "chat": chat, "from": bot_user(false), "text": text})
}

fn send_message(shared: &Shared, params: &Value) -> Answer {
    let chat_id = chat_of(shared, params)?;
    let (text, parse_mode) = check_text(shared, params)?;
    let reply_to = params
        .pointer("/reply_parameters/message_id")
        .and_then(Value::as_i64);
    let mut inner = shared.lock();
    let message_id = inner.next_message_id;
    inner.next_message_id += 1;
    inner.sent.push(Sent {
        chat_id,
        message_id,
        text: text.clone(),
        parse_mode,
        reply_to,
    });
    drop(inner);
    shared.bump();
    Ok(message_json(chat_id, message_id, &text))
}

fn edit_message(shared: &Shared, params: &Value) -> Answer {
    let chat_id = chat_of(shared, params)?;
    let (text, parse_mode) = check_text(shared, params)?;
    let message_id = params
        .get("message_id")
        .and_then(Value::as_i64)
        .unwrap_or(-1);
    let mut inner = shared.lock();
    let Some(sent) = inner
        .sent
        .iter_mut()
        .find(|s| s.chat_id == chat_id && s.message_id == message_id)
    else {
        return Err(bad_request("message to edit not found"));
    };
    if sent.text == text {
        return Err(bad_request(
            "message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
        ));
    }
    sent.text = text.clone();
    sent.parse_mode = parse_mode;
    drop(inner);
    shared.bump();
    Ok(message_json(chat_id, message_id, &text))
}

/// An update: `text` from user `from` in the supergroup `group`, with a mention entity
/// (UTF-16 offsets, as Telegram sends them) when it mentions the bot.
pub fn group_message(group: i64, id: i64, from: i64, text: &str) -> Value {
    let mut msg = json!({
        "message_id": id, "date": 1_700_000_000, "text": text,
        "chat": {"id": group, "type": "supergroup", "title": "Builders"},
        "from": {"id": from, "is_bot": false, "first_name": "Ada"},
    });
    let mention = format!("@{BOT_USERNAME}");
    if let Some(start) = text.find(&mention) {
        msg["entities"] = json!([{
            "type": "mention",
            "offset": text[..start].encode_utf16().count(),
            "length": mention.encode_utf16().count(),
        }]);
    }
    json!({ "message": msg })
}
