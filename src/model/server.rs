//! The scripted model's HTTP server on 127.0.0.1: accepts connections, keeps each alive for
//! request after request, logs every request, and routes them: `POST /v1/messages` (the CLI
//! sends `?beta=true`) gets the next turn, `count_tokens` a count, HEAD a 200, anything else a
//! 404 error body and a line on stderr, so an unexpected call is visible.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Value, json};
use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use super::http1::{Request, read_request, write_response};
use super::script::Script;
use super::turn::next_turn;
use super::wire::{Reply, error_reply, json_reply};

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    /// The JSON body, when there was one.
    pub body: Option<Value>,
    /// The rule that answered (its name, or `#<position>`); `None` when none matched.
    pub rule: Option<String>,
}

/// The running server; stops (with all its connections) when dropped.
pub struct ScriptedModel {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Logged>>>,
    task: JoinHandle<()>,
}

impl ScriptedModel {
    /// Listens on 127.0.0.1 on a free port and answers by `script` (then by the prompt-embedded
    /// syntax). Must be called inside a tokio runtime.
    pub async fn start(script: Script) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("the scripted model cannot listen on 127.0.0.1: {e}"),
            )
        })?;
        let addr = listener.local_addr()?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let conn_log = Arc::clone(&log);
        let script = Arc::new(script);
        let task = tokio::spawn(async move {
            // Owned by this task, so aborting it drops (and aborts) every connection.
            let mut connections = JoinSet::new();
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        connections.spawn(serve(
                            stream,
                            Arc::clone(&script),
                            Arc::clone(&conn_log),
                        ));
                    }
                    // Out of file descriptors and the like: the next accept may work again.
                    Err(e) => {
                        eprintln!("scripted model: accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                }
                // Reap finished connections so a long-lived server does not accumulate them.
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(Self { addr, log, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// For `ANTHROPIC_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Logged> {
        lock(&self.log).clone()
    }

    /// The `/v1/messages` request bodies, in order.
    pub fn message_requests(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.split('?').next() == Some("/v1/messages"))
            .filter_map(|r| r.body)
            .collect()
    }
}

impl Drop for ScriptedModel {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The log stays usable after a panic elsewhere: entries are pushed whole, never half-made.
fn lock(log: &Mutex<Vec<Logged>>) -> std::sync::MutexGuard<'_, Vec<Logged>> {
    log.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn serve(stream: TcpStream, script: Arc<Script>, log: Arc<Mutex<Vec<Logged>>>) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    // Keep-alive: one request after another until the client closes.
    loop {
        let request = match read_request(&mut read, &mut write).await {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(e) => {
                eprintln!("scripted model: unreadable request, closing the connection: {e}");
                return;
            }
        };
        let body = serde_json::from_slice(&request.body).ok();
        let (reply, rule) = route(&script, &request, body.as_ref());
        lock(&log).push(Logged {
            method: request.method.clone(),
            path: request.path.clone(),
            body,
            rule,
        });
        let close = request
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"));
        match reply {
            Reply::Stall => std::future::pending::<()>().await,
            Reply::Send {
                status,
                content_type,
                body,
            } => {
                let head_only = request.method == "HEAD";
                let sent = write_response(&mut write, status, content_type, &body, head_only).await;
                if sent.is_err() || close {
                    return;
                }
            }
        }
    }
}

fn route(script: &Script, request: &Request, body: Option<&Value>) -> (Reply, Option<String>) {
    let path = request.path.split('?').next().unwrap_or("");
    match (request.method.as_str(), path) {
        ("HEAD", _) => (json_reply(200, json!({})), None),
        ("POST", "/v1/messages/count_tokens") => {
            (json_reply(200, json!({"input_tokens": 120})), None)
        }
        ("POST", "/v1/messages") => next_turn(script, body.unwrap_or(&Value::Null)),
        (method, _) => {
            eprintln!("scripted model: unhandled {method} {}", request.path);
            (
                error_reply(404, "no such endpoint in the scripted model"),
                None,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Two requests on one connection: a chunked body, then a Content-Length one.
    #[tokio::test]
    async fn speaks_keep_alive_http_with_both_body_framings() {
        let api = ScriptedModel::start(Script::default()).await.unwrap();
        let mut conn = TcpStream::connect(api.addr()).await.unwrap();
        let body = r#"{"model":"m","messages":[{"role":"user","content":"SAY: hi"}]}"#;
        let (a, b) = body.split_at(10);
        let (la, lb) = (a.len(), b.len());
        let chunked = format!(
            "POST /v1/messages/count_tokens HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n\
             {la:x}\r\n{a}\r\n{lb:x}\r\n{b}\r\n0\r\n\r\n"
        );
        let plain = format!(
            "POST /v1/messages HTTP/1.1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        conn.write_all(format!("{chunked}{plain}").as_bytes())
            .await
            .unwrap();
        let mut response = String::new();
        conn.read_to_string(&mut response).await.unwrap();
        assert!(response.contains(r#"{"input_tokens":120}"#), "{response}");
        assert!(response.contains(r#""text":"DONE: hi""#), "{response}");
        let logged: Vec<_> = api
            .requests()
            .into_iter()
            .map(|r| (r.path, r.body.is_some()))
            .collect();
        let expected = [("/v1/messages/count_tokens", true), ("/v1/messages", true)];
        assert_eq!(logged, expected.map(|(p, b)| (p.to_owned(), b)));
    }

    #[tokio::test]
    async fn dropping_the_model_closes_its_port_and_its_connections() {
        let api = ScriptedModel::start(Script::default()).await.unwrap();
        let addr = api.addr();
        let mut open = TcpStream::connect(addr).await.unwrap();
        drop(api);
        // The abort lands when the runtime next polls the server task.
        for _ in 0..100 {
            if TcpStream::connect(addr).await.is_err() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(TcpStream::connect(addr).await.is_err(), "still listening");
        let mut rest = Vec::new();
        let read = open.read_to_end(&mut rest).await;
        assert!(
            read.is_err() || rest.is_empty(),
            "the open connection was closed"
        );
    }

    #[tokio::test]
    async fn a_body_over_the_limit_closes_the_connection_without_allocating_it() {
        let api = ScriptedModel::start(Script::default()).await.unwrap();
        let mut conn = TcpStream::connect(api.addr()).await.unwrap();
        conn.write_all(b"POST /v1/messages HTTP/1.1\r\ncontent-length: 99999999999\r\n\r\n")
            .await
            .unwrap();
        let mut response = Vec::new();
        conn.read_to_end(&mut response).await.unwrap();
        assert!(response.is_empty(), "no answer, just a closed connection");
        assert!(api.requests().is_empty());
    }
}
