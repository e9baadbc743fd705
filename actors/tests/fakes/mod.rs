//! Fakes of the two ports a group talks through: a chat platform that records what it is
//! sent, and an agent runner that answers from a script and can be held mid-run.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actors::agent::{AgentOutcome, AgentProgress, AgentRequest, AgentRunner, ProgressSink};
use actors::chat::{
    ChatId, ChatTransport, Format, IncomingMessage, Platform, TransportError, TransportFuture,
};
use tokio::sync::Semaphore;

/// Records every message; can be made to hang (a crash between recording and sending).
#[derive(Default)]
pub struct FakeChat {
    pub sent: Mutex<Vec<(ChatId, String, Option<String>)>>,
    pub edits: Mutex<Vec<String>>,
    pub hang: std::sync::atomic::AtomicBool,
    /// Attempts to send an answer (counted from 1; status messages do not count) that fail
    /// once with `Unavailable`.
    pub fail_attempts: Mutex<Vec<usize>>,
    pub attempts: std::sync::atomic::AtomicUsize,
}

impl FakeChat {
    pub fn texts(&self) -> Vec<String> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .map(|(_, t, _)| t.clone())
            .collect()
    }
    /// Answers (not status messages).
    pub fn answers(&self) -> Vec<(String, Option<String>)> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, t, _)| !t.starts_with("⏳"))
            .map(|(_, t, r)| (t.clone(), r.clone()))
            .collect()
    }
}

impl ChatTransport for FakeChat {
    fn platform(&self) -> Platform {
        Platform::Telegram
    }
    fn send<'a>(
        &'a self,
        chat: &'a ChatId,
        text: &'a str,
        _f: Format,
        reply_to: Option<&'a str>,
    ) -> TransportFuture<'a, String> {
        Box::pin(async move {
            if self.hang.load(std::sync::atomic::Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            let attempt = self
                .attempts
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                + 1;
            if self.fail_attempts.lock().unwrap().contains(&attempt) {
                return Err(TransportError::Unavailable("flaky network".into()));
            }
            let mut sent = self.sent.lock().unwrap();
            sent.push((chat.clone(), text.to_owned(), reply_to.map(str::to_owned)));
            Ok::<_, TransportError>(sent.len().to_string())
        })
    }
    fn edit<'a>(
        &'a self,
        _chat: &'a ChatId,
        _id: &'a str,
        text: &'a str,
    ) -> TransportFuture<'a, ()> {
        self.edits.lock().unwrap().push(text.to_owned());
        Box::pin(async { Ok(()) })
    }
    fn typing<'a>(&'a self, _chat: &'a ChatId) -> TransportFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }
}

/// Answers `DONE <n>` for the n-th run, with session `s1`; holds runs while `gate` has no
/// permits (when `held` is set).
pub struct FakeAgent {
    pub requests: Mutex<Vec<AgentRequest>>,
    pub gate: Semaphore,
    pub held: bool,
    pub fail_with: Mutex<Option<actors::agent::AgentError>>,
    /// Answer with this text instead of `DONE <n>`.
    pub answer: Mutex<Option<String>>,
}

impl FakeAgent {
    pub fn new(held: bool) -> Self {
        FakeAgent {
            requests: Mutex::default(),
            gate: Semaphore::new(0),
            held,
            fail_with: Mutex::default(),
            answer: Mutex::default(),
        }
    }
    pub fn runs(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
    pub fn release(&self) {
        self.gate.add_permits(1);
    }
}

impl AgentRunner for FakeAgent {
    fn run(
        &self,
        request: AgentRequest,
        progress: ProgressSink,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = AgentOutcome> + Send + '_>> {
        Box::pin(async move {
            let n = {
                let mut r = self.requests.lock().unwrap();
                r.push(request);
                r.len()
            };
            progress(AgentProgress::ToolUse {
                name: "Read".into(),
                summary: "Read notes.md".into(),
            });
            if self.held {
                self.gate.acquire().await.unwrap().forget();
            }
            AgentOutcome {
                session_id: Some("s1".into()),
                text: self
                    .answer
                    .lock()
                    .unwrap()
                    .clone()
                    .unwrap_or(format!("DONE {n}")),
                cost_usd: Some(0.01),
                num_turns: Some(1),
                error: self.fail_with.lock().unwrap().clone(),
            }
        })
    }
}

pub fn message(id: u32, text: &str) -> IncomingMessage {
    IncomingMessage {
        chat: ChatId("tg:1".into()),
        chat_title: "dev".into(),
        private: false,
        message_id: id.to_string(),
        sender_id: "tg:7".into(),
        sender_name: "Ann".into(),
        text: text.into(),
        mentions_bot: false,
        reply_to_bot: false,
        at_ms: 0,
    }
}

/// Polls `ok` until it holds or 5 s pass.
pub async fn until(what: &str, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub fn shared<T>(t: T) -> Arc<T> {
    Arc::new(t)
}

/// A store in memory whose writes under some key prefixes fail, as on a full disk.
#[derive(Default)]
pub struct RefusingStore {
    pub inner: supervisors::snapshot::MemoryStore,
    refused: Mutex<Vec<String>>,
}

impl RefusingStore {
    /// Claims and saves of keys starting with `prefix` fail from now on.
    pub fn refuse(&self, prefix: &str) {
        self.refused.lock().unwrap().push(prefix.to_owned());
    }

    /// Every write succeeds again.
    pub fn allow_all(&self) {
        self.refused.lock().unwrap().clear();
    }

    fn check(&self, key: &str) -> Result<(), supervisors::snapshot::StoreError> {
        if self
            .refused
            .lock()
            .unwrap()
            .iter()
            .any(|p| key.starts_with(p))
        {
            return Err(supervisors::snapshot::StoreError::Backend(
                "No space left on device (os error 28)".into(),
            ));
        }
        Ok(())
    }
}

impl supervisors::snapshot::SnapshotStore for RefusingStore {
    fn claim<'a>(
        &'a self,
        key: &'a str,
    ) -> supervisors::snapshot::StoreFuture<'a, supervisors::snapshot::Claim> {
        match self.check(key) {
            Ok(()) => self.inner.claim(key),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
    fn save<'a>(
        &'a self,
        key: &'a str,
        incarnation: u64,
        bytes: Vec<u8>,
    ) -> supervisors::snapshot::StoreFuture<'a, ()> {
        match self.check(key) {
            Ok(()) => self.inner.save(key, incarnation, bytes),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
    fn load<'a>(
        &'a self,
        key: &'a str,
    ) -> supervisors::snapshot::StoreFuture<'a, Option<supervisors::snapshot::StoredSnapshot>> {
        self.inner.load(key)
    }
    fn remove<'a>(
        &'a self,
        key: &'a str,
        incarnation: u64,
    ) -> supervisors::snapshot::StoreFuture<'a, ()> {
        self.inner.remove(key, incarnation)
    }
}
