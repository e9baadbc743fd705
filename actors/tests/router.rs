//! The chat router: commands, who may run them, registration and forwarding to groups.

mod fakes;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actors::chat::group::{ChatSettings, GroupDeps};
use actors::chat::router::{Router, RouterArgs, RouterMsg, RouterSettings};
use actors::chat::{ChatId, ChatTransport, IncomingMessage, Platform, Taken};
use actors::slots::AgentSlots;
use fakes::*;
use ractor::{Actor, ActorRef};
use supervisors::snapshot::{MemoryStore, SnapshotStore};
use supervisors::{Intensity, Introspection, SupervisorRef, SupervisorSpec};

struct Rig {
    chat: Arc<FakeChat>,
    agent: Arc<FakeAgent>,
    store: Arc<dyn SnapshotStore>,
    introspection: Introspection,
    groups: SupervisorRef,
    deps: GroupDeps,
    _dir: tempfile::TempDir,
}

async fn rig(held: bool) -> Rig {
    rig_with(held, Arc::new(MemoryStore::new())).await
}

async fn rig_with(held: bool, store: Arc<dyn SnapshotStore>) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let chat = shared(FakeChat::default());
    let agent = shared(FakeAgent::new(held));
    let introspection = Introspection::new();
    // As tolerant as the daemon's: a group failing until its breaker parks it must not
    // take the supervisor down.
    let spec = SupervisorSpec {
        intensity: Intensity {
            max_restarts: 50,
            period: Duration::from_secs(10),
        },
        ..SupervisorSpec::default()
    };
    let (groups, _) = SupervisorRef::spawn_root("groups", spec, introspection.clone())
        .await
        .unwrap();
    let (slots, _) = Actor::spawn(None, AgentSlots, 4).await.unwrap();
    let deps = GroupDeps {
        settings: Arc::new(ChatSettings {
            assistant_name: "Borg".into(),
            model: "claude-sonnet-4-6".into(),
            collection_window: Duration::from_millis(50),
            cooldown: Duration::from_millis(50),
            rate_limit_per_minute: 100,
            rate_window: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            hard_timeout: Duration::from_secs(60),
            sessions_dir: dir.path().to_path_buf(),
            system_prompt: None,
        }),
        transport: chat.clone(),
        runner: agent.clone(),
        slots,
        store: store.clone(),
    };
    Rig {
        chat,
        agent,
        store,
        introspection,
        groups,
        deps,
        _dir: dir,
    }
}

impl Rig {
    async fn router(&self) -> ActorRef<RouterMsg> {
        let transport: Arc<dyn ChatTransport> = self.chat.clone();
        let args = RouterArgs {
            settings: RouterSettings {
                version: "9.9.9".into(),
                started: Instant::now(),
                admin_chat: Some(ChatId("tg:admins".into())),
                admin_users: vec!["42".into()],
                pipeline_summary: "Repo: /srv/borg; tests: cargo test".into(),
                sandbox: "none (test)".into(),
            },
            transports: HashMap::from([(Platform::Telegram, transport)]),
            group_deps: self.deps.clone(),
            groups: self.groups.clone(),
            store: self.store.clone(),
            introspection: self.introspection.clone(),
        };
        Actor::spawn(None, Router, args).await.unwrap().0
    }

    /// Sends `text` from `sender` in `chat` and returns the next message the bot sends.
    async fn say(
        &self,
        router: &ActorRef<RouterMsg>,
        chat: &str,
        sender: &str,
        text: &str,
    ) -> Option<String> {
        let before = self.chat.texts().len();
        router
            .cast(RouterMsg::Incoming(
                msg(chat, sender, text),
                Taken::unwatched(),
            ))
            .unwrap();
        let deadline = Instant::now() + Duration::from_millis(400);
        while Instant::now() < deadline {
            if let Some(t) = self.chat.texts().get(before) {
                return Some(t.clone());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        None
    }
}

static NEXT_ID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

fn msg(chat: &str, sender: &str, text: &str) -> IncomingMessage {
    let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    IncomingMessage {
        chat: ChatId(chat.into()),
        chat_title: format!("chat {chat}"),
        sender_id: sender.into(),
        sender_name: sender.into(),
        ..message(id, text)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unregistered_chat_answers_only_chatid_ping_and_help() {
    let rig = rig(false).await;
    let router = rig.router().await;
    assert_eq!(
        rig.say(&router, "tg:5", "tg:1", "/ping").await.unwrap(),
        "Borg online."
    );
    assert_eq!(
        rig.say(&router, "tg:5", "tg:1", "/chatid").await.unwrap(),
        "This chat's id: tg:5"
    );
    assert!(
        rig.say(&router, "tg:5", "tg:1", "/help")
            .await
            .unwrap()
            .contains("/register")
    );
    for silent in [
        "/status",
        "/groups",
        "/tasks",
        "/version",
        "/pipeline",
        "@Borg hello?",
    ] {
        assert_eq!(
            rig.say(&router, "tg:5", "tg:1", silent).await,
            None,
            "{silent}"
        );
    }
    assert_eq!(rig.agent.runs(), 0, "nothing triggers an agent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_register_and_then_mentions_reach_the_agent() {
    let rig = rig(false).await;
    let router = rig.router().await;
    let refused = rig.say(&router, "tg:5", "tg:7", "/register").await.unwrap();
    assert!(refused.starts_with("Only admins"), "{refused}");
    let ok = rig
        .say(&router, "tg:5", "tg:42", "/register")
        .await
        .unwrap();
    assert!(ok.starts_with("Registered"), "{ok}");
    assert_eq!(
        rig.say(&router, "tg:5", "tg:42", "/register")
            .await
            .unwrap(),
        "This chat is already registered."
    );
    router
        .cast(RouterMsg::Incoming(
            msg("tg:5", "tg:7", "@Borg hello"),
            Taken::unwatched(),
        ))
        .unwrap();
    until("an answer", || {
        rig.chat.texts().iter().any(|t| t == "DONE 1")
    })
    .await;
    assert!(rig.introspection.get("groups/group:tg:5").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_of_the_admin_chat_are_admins_everywhere() {
    let rig = rig(false).await;
    let router = rig.router().await;
    router
        .cast(RouterMsg::Incoming(
            msg("tg:admins", "tg:9", "morning all"),
            Taken::unwatched(),
        ))
        .unwrap();
    let ok = rig.say(&router, "tg:6", "tg:9", "/register").await.unwrap();
    assert!(ok.starts_with("Registered"), "{ok}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_are_created_by_admins_and_listed() {
    let rig = rig(false).await;
    let router = rig.router().await;
    rig.say(&router, "tg:5", "tg:42", "/register")
        .await
        .unwrap();
    assert!(
        rig.say(&router, "tg:5", "tg:7", "/task Nope")
            .await
            .unwrap()
            .starts_with("Only admins")
    );
    assert!(
        rig.say(&router, "tg:5", "tg:42", "/task")
            .await
            .unwrap()
            .starts_with("Usage")
    );
    let created = rig
        .say(
            &router,
            "tg:5",
            "tg:42",
            "/task Fix login\nEmpty passwords crash it.",
        )
        .await
        .unwrap();
    // No pipeline runs in this rig: an admin is told why, rather than a task vanishing.
    // (Creation through the real pipeline is tested end to end in tests/pipeline.rs.)
    assert!(
        created.starts_with("The pipeline is not running"),
        "{created}"
    );
    assert!(
        rig.say(&router, "tg:5", "tg:7", "/tasks")
            .await
            .unwrap()
            .starts_with("The pipeline is not running")
    );
    assert_eq!(rig.agent.runs(), 0, "commands are not agent runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn informational_commands_answer_in_a_registered_chat() {
    let rig = rig(false).await;
    let router = rig.router().await;
    rig.say(&router, "tg:5", "tg:42", "/register")
        .await
        .unwrap();
    let status = rig.say(&router, "tg:5", "tg:7", "/status").await.unwrap();
    assert!(
        status.contains("borg 9.9.9")
            && status.contains("Groups: 1 registered")
            && status.contains("Agents running: 0 of 4")
            && status.contains("claude-sonnet-4-6"),
        "{status}"
    );
    assert!(
        status.contains("Breakers open: none") && status.contains("Sandbox: none (test)"),
        "{status}"
    );
    assert_eq!(
        rig.say(&router, "tg:5", "tg:7", "/version").await.unwrap(),
        "borg 9.9.9"
    );
    let groups = rig.say(&router, "tg:5", "tg:7", "/groups").await.unwrap();
    assert_eq!(groups, "Registered chats:\nchat tg:5 (tg:5): idle");
    // The configured summary, then why there are no task counts (no pipeline in this rig).
    assert_eq!(
        rig.say(&router, "tg:5", "tg:7", "/pipeline").await.unwrap(),
        "Repo: /srv/borg; tests: cargo test\nThe pipeline is not running (set PIPELINE_REPO \
         to a git repository to start it)."
    );
    assert!(
        rig.say(&router, "tg:5", "tg:7", "/frobnicate")
            .await
            .unwrap()
            .contains("/register")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregister_waits_for_a_run_then_forgets_the_chat() {
    let rig = rig(true).await;
    let router = rig.router().await;
    rig.say(&router, "tg:5", "tg:42", "/register")
        .await
        .unwrap();
    router
        .cast(RouterMsg::Incoming(
            msg("tg:5", "tg:7", "@Borg work"),
            Taken::unwatched(),
        ))
        .unwrap();
    until("run started", || rig.agent.runs() == 1).await;
    let refused = rig
        .say(&router, "tg:5", "tg:42", "/unregister")
        .await
        .unwrap();
    assert!(
        refused.starts_with("Not now: a run is in progress"),
        "{refused}"
    );
    rig.agent.release();
    until("answered", || {
        rig.chat.texts().iter().any(|t| t == "DONE 1")
    })
    .await;
    let done = rig
        .say(&router, "tg:5", "tg:42", "/unregister")
        .await
        .unwrap();
    assert!(done.starts_with("Unregistered"), "{done}");
    assert_eq!(
        rig.store.load("chat/group/tg:5").await.unwrap(),
        None,
        "state forgotten"
    );
    assert_eq!(
        rig.say(&router, "tg:5", "tg:7", "@Borg still there?").await,
        None
    );
    assert_eq!(rig.agent.runs(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_survive_a_router_restart() {
    let rig = rig(false).await;
    let router = rig.router().await;
    rig.say(&router, "tg:5", "tg:42", "/register")
        .await
        .unwrap();
    router.kill_and_wait(None).await.unwrap();
    rig.groups.terminate_child("group:tg:5").await.unwrap();
    rig.groups.delete_child("group:tg:5").await.unwrap();
    let router = rig.router().await;
    router
        .cast(RouterMsg::Incoming(
            msg("tg:5", "tg:7", "@Borg are you back?"),
            Taken::unwatched(),
        ))
        .unwrap();
    until("answered after restart", || {
        rig.chat.texts().iter().any(|t| t == "DONE 1")
    })
    .await;
}

/// Sends a message with a watched promise; true once it is kept (saved, or not needed).
async fn kept(router: &ActorRef<RouterMsg>, msg: IncomingMessage) -> bool {
    let (taken, receipt) = Taken::pair();
    router.cast(RouterMsg::Incoming(msg, taken)).unwrap();
    receipt
        .kept_by(tokio::time::Instant::now() + Duration::from_secs(5))
        .await
}

/// A rig on a store that can be made to refuse writes, with chat `tg:5` registered.
async fn registered_on_refusing_store() -> (Arc<RefusingStore>, Rig, ActorRef<RouterMsg>) {
    let store = Arc::new(RefusingStore::default());
    let rig = rig_with(false, store.clone()).await;
    let router = rig.router().await;
    rig.say(&router, "tg:5", "tg:42", "/register")
        .await
        .unwrap();
    (store, rig, router)
}

/// The router's persisted inbox, oldest first.
async fn inbox(store: &RefusingStore) -> Vec<String> {
    let Some(saved) = store.inner.load("chat/router/inbox").await.unwrap() else {
        return Vec::new();
    };
    let inbox: actors::chat::router::inbox::RouterInbox =
        supervisors::snapshot::decode(&saved.bytes).unwrap();
    inbox.messages.into_iter().map(|m| m.text).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_is_kept_only_once_saved_and_the_group_stays_up_meanwhile() {
    let (store, rig, router) = registered_on_refusing_store().await;
    assert!(
        kept(&router, msg("tg:5", "tg:7", "/ping")).await,
        "a command"
    );
    assert!(
        kept(&router, msg("tg:9", "tg:7", "@Borg hi")).await,
        "a chat that is not registered keeps nothing"
    );
    let group = rig.groups.child("group:tg:5").await.unwrap().unwrap();

    // The disk is full: the message is not kept, so the transport will deliver it again.
    store.refuse("chat/");
    let trigger = msg("tg:5", "tg:7", "@Borg first");
    assert!(
        !kept(&router, trigger.clone()).await,
        "a failed save keeps nothing"
    );
    assert_eq!(
        rig.say(&router, "tg:5", "tg:7", "/ping").await.as_deref(),
        Some("Borg online."),
        "commands need no disk"
    );
    let still = rig.groups.child("group:tg:5").await.unwrap().unwrap();
    assert_eq!(still.get_id(), group.get_id(), "the group did not restart");
    let refused = rig
        .say(&router, "tg:6", "tg:42", "/register")
        .await
        .unwrap();
    assert!(refused.starts_with("That could not be saved"), "{refused}");

    // Room again: the redelivery is kept and answered, once.
    store.allow_all();
    let registered = rig
        .say(&router, "tg:6", "tg:42", "/register")
        .await
        .unwrap();
    assert!(
        registered.starts_with("Registered"),
        "nothing changed before: {registered}"
    );
    assert!(kept(&router, trigger.clone()).await);
    until("answered", || {
        rig.chat.texts().iter().any(|t| t == "DONE 1")
    })
    .await;
    assert!(
        kept(&router, trigger).await,
        "a duplicate is kept, not taken in again"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rig.agent.runs(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_for_a_group_that_is_down_wait_durably_in_the_inbox() {
    let (store, rig, router) = registered_on_refusing_store().await;
    rig.groups.terminate_child("group:tg:5").await.unwrap();

    assert!(
        kept(&router, msg("tg:5", "tg:7", "@Borg first")).await,
        "kept in the inbox"
    );
    // An inbox that cannot be saved keeps nothing (and the router stays up).
    store.refuse("chat/router/inbox");
    let second = msg("tg:5", "tg:7", "and second");
    assert!(
        !kept(&router, second.clone()).await,
        "an unsaved inbox keeps nothing"
    );
    store.allow_all();
    assert!(kept(&router, second).await, "the redelivery is kept");
    assert_eq!(inbox(&store).await, ["@Borg first", "and second"]);

    // A new router (after a crash) with the group back: the inbox reaches the group, which
    // answers once, with both messages, and the inbox empties.
    router.kill_and_wait(None).await.unwrap();
    rig.groups.delete_child("group:tg:5").await.unwrap();
    let _router = rig.router().await;
    until("answered from the inbox", || {
        rig.chat.texts().iter().any(|t| t == "DONE 1")
    })
    .await;
    let prompt = rig.agent.requests.lock().unwrap()[0].prompt.clone();
    assert!(
        prompt.contains("@Borg first") && prompt.contains("and second"),
        "{prompt}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !inbox(&store).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the inbox empties once the group saved"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rig.agent.runs(), 1, "one run for both messages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_with_messages_waiting_in_the_inbox_gets_new_ones_behind_them() {
    let (_store, rig, router) = registered_on_refusing_store().await;
    rig.groups.terminate_child("group:tg:5").await.unwrap();
    let said = msg("tg:5", "tg:7", "said while the group was down");
    assert!(kept(&router, said).await, "kept in the inbox");

    // The group is back before the inbox's next flush, and a mention comes: it reaches the
    // group after the line said before it, so the run sees both, in order.
    rig.groups.restart_child("group:tg:5").await.unwrap();
    assert!(kept(&router, msg("tg:5", "tg:7", "@Borg and now?")).await);
    until("answered", || {
        rig.chat.texts().iter().any(|t| t == "DONE 1")
    })
    .await;
    let prompt = rig.agent.requests.lock().unwrap()[0].prompt.clone();
    let (before, after) = (
        prompt.find("said while the group was down"),
        prompt.find("@Borg and now?"),
    );
    assert!(
        matches!((before, after), (Some(b), Some(a)) if b < a),
        "the run sees both lines, in the order they were said: {prompt}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rig.agent.runs(), 1, "one run for both messages");
}
