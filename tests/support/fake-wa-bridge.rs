//! The harness of tests/whatsapp.rs: starting the real bridge actor and transport against the
//! fake bridge (`fake-wa-bridge.sh`) or the real script, capturing what gets logged, and
//! checking that processes are gone.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use actors::chat::{ChatId, InboundSink, IncomingMessage, Taken};
use borg::whatsapp::{
    BridgeArgs, BridgeMsg, BridgeStats, Phase, WhatsAppBridge, WhatsAppConfig, WhatsAppLink,
    WhatsAppTransport,
};
use ractor::{Actor, ActorRef};
use tokio::sync::mpsc;

pub const WAIT: Duration = Duration::from_secs(10);
pub const GROUP: &str = "wa:120363000000000001@g.us";

/// Everything the tracing macros log in this test binary, for asserting logged reasons.
pub fn logs() -> String {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    let buffer = LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || Capture(sink.clone()))
            .init();
        buffer
    });
    String::from_utf8_lossy(&buffer.lock().unwrap()).into_owned()
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A bridge under test: its actor, its link and transport, and what it delivered.
pub struct Bridge {
    pub actor: ActorRef<BridgeMsg>,
    done: Option<tokio::task::JoinHandle<()>>,
    pub link: WhatsAppLink,
    pub transport: WhatsAppTransport,
    pub inbox: mpsc::UnboundedReceiver<IncomingMessage>,
    pub dir: tempfile::TempDir,
}

pub fn sink() -> (InboundSink, mpsc::UnboundedReceiver<IncomingMessage>) {
    let (tx, inbox) = mpsc::unbounded_channel();
    let sink: InboundSink = Arc::new(move |m| {
        let _ = tx.send(m);
        // Kept at once: this channel is the test's durable record.
        let (taken, receipt) = Taken::pair();
        taken.kept();
        receipt
    });
    (sink, inbox)
}

/// The fake bridge in `mode`, run by bash so the file needs no exec bit.
pub fn fake_config(dir: &Path, mode: &str) -> WhatsAppConfig {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/fake-wa-bridge.sh");
    let args = vec![
        script.display().to_string(),
        mode.to_owned(),
        dir.join("log").display().to_string(),
    ];
    let mut config = WhatsAppConfig::with_command(dir.join("auth"), "bash", args);
    config.print_qr = false;
    config.send_timeout = WAIT;
    config
}

pub async fn start(mode: &str, tune: impl FnOnce(&mut WhatsAppConfig)) -> Bridge {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let mut config = fake_config(dir.path(), mode);
    tune(&mut config);
    start_with(config, dir).await
}

pub async fn start_with(config: WhatsAppConfig, dir: tempfile::TempDir) -> Bridge {
    let link = WhatsAppLink::new();
    let transport = WhatsAppTransport::new(link.clone(), config.send_timeout);
    let (sink, inbox) = sink();
    let args = BridgeArgs {
        config,
        link: link.clone(),
        sink,
    };
    let (actor, done) = Actor::spawn(None, WhatsAppBridge, args)
        .await
        .expect("bridge actor starts");
    Bridge {
        actor,
        done: Some(done),
        link,
        transport,
        inbox,
        dir,
    }
}

impl Bridge {
    pub async fn next(&mut self) -> IncomingMessage {
        tokio::time::timeout(WAIT, self.inbox.recv())
            .await
            .expect("a message within 10 s")
            .expect("sink alive")
    }

    pub async fn stats(&self) -> BridgeStats {
        ractor::call!(self.actor, BridgeMsg::Stats).expect("bridge actor answers")
    }

    pub async fn until_phase(&self, phase: Phase) {
        let mut status = self.link.subscribe();
        tokio::time::timeout(WAIT, status.wait_for(|s| s.phase == phase))
            .await
            .unwrap_or_else(|_| panic!("never {phase:?}: {:?}", self.link.status()))
            .unwrap();
    }

    /// The fake's log: its pids, its arguments and every command it received.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    pub fn pids(&self) -> Vec<i32> {
        self.log()
            .lines()
            .filter_map(|l| l.strip_prefix("pid ").or_else(|| l.strip_prefix("child ")))
            .map(|pid| pid.parse().unwrap())
            .collect()
    }

    /// Waits for the actor to stop by itself (a failure) and returns why, as the link says.
    pub async fn failure(mut self) -> (String, tempfile::TempDir) {
        let done = self.done.take().expect("running");
        tokio::time::timeout(WAIT, done)
            .await
            .expect("the actor stops")
            .unwrap();
        let why = self.link.status().last_error.expect("a reason");
        (why, self.dir)
    }

    /// Stops the actor and waits until it has; the rest stays for checks.
    pub async fn stop(mut self) -> Self {
        self.actor.stop(None);
        let done = self.done.take().expect("running");
        tokio::time::timeout(WAIT, done)
            .await
            .expect("stops")
            .unwrap();
        self
    }
}

pub fn alive(pid: i32) -> bool {
    // A zombie is dead for this purpose: it only waits to be reaped.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| !matches!(stat.rsplit(')').next().map(str::trim_start), Some(s) if s.starts_with('Z') || s.starts_with('X')))
}

pub async fn until_dead(pids: &[i32]) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while pids.iter().any(|&p| alive(p)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still alive: {pids:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn group() -> ChatId {
    ChatId(GROUP.into())
}

pub async fn next_text(inbox: &mut mpsc::UnboundedReceiver<IncomingMessage>) -> String {
    let got = tokio::time::timeout(WAIT, inbox.recv()).await;
    got.expect("a message within 10 s")
        .expect("sink alive")
        .text
}

/// `node` from PATH, or `None` after saying loudly why the test is skipped.
pub fn node() -> Option<&'static str> {
    let found = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        let why = "node is not installed: the real bridge script cannot be checked";
        assert!(
            std::env::var("BORG_TEST_STRICT").as_deref() != Ok("1"),
            "{why}"
        );
        eprintln!("SKIPPED: {why}");
    }
    found.then_some("node")
}

pub fn write_script(dir: &Path) -> PathBuf {
    borg::whatsapp::write_scripts(dir).unwrap()
}
