//! The group actor's lifecycle: batching, messages kept during a run, cooldown, rate limit,
//! the global agent limit, sessions, errors, and exactly-once recovery after a crash.

mod fakes;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actors::agent::AgentError;
use actors::chat::group::{ChatSettings, Group, GroupArgs, GroupDeps, GroupMsg, Phase};
use actors::chat::{ChatId, Taken};
use actors::slots::{AgentSlots, SlotsMsg};
use fakes::*;
use ractor::{Actor, ActorRef};
use supervisors::snapshot::{MemoryStore, SnapshotStore};

/// A message of chat `tg:1` as its transport hands it over (nobody watches the promise here).
fn incoming(id: u32, text: &str) -> GroupMsg {
    GroupMsg::Incoming(message(id, text), Taken::unwatched())
}

const WINDOW: Duration = Duration::from_millis(150);
const COOLDOWN: Duration = Duration::from_millis(150);

struct Rig {
    chat: Arc<FakeChat>,
    agent: Arc<FakeAgent>,
    store: Arc<dyn SnapshotStore>,
    slots: ActorRef<SlotsMsg>,
    settings: Arc<ChatSettings>,
    _dir: tempfile::TempDir,
}

async fn rig(held: bool, rate_limit: u32, slots: usize) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let (slots, _) = Actor::spawn(None, AgentSlots, slots).await.unwrap();
    Rig {
        chat: shared(FakeChat::default()),
        agent: shared(FakeAgent::new(held)),
        store: Arc::new(MemoryStore::new()),
        slots,
        settings: Arc::new(ChatSettings {
            assistant_name: "Borg".into(),
            model: "claude-sonnet-4-6".into(),
            collection_window: WINDOW,
            cooldown: COOLDOWN,
            rate_limit_per_minute: rate_limit,
            rate_window: Duration::from_millis(1500),
            idle_timeout: Duration::from_secs(60),
            hard_timeout: Duration::from_secs(600),
            sessions_dir: dir.path().to_path_buf(),
            system_prompt: None,
        }),
        _dir: dir,
    }
}

impl Rig {
    async fn group(&self, chat: &str) -> ActorRef<GroupMsg> {
        let deps = GroupDeps {
            settings: self.settings.clone(),
            transport: self.chat.clone(),
            runner: self.agent.clone(),
            slots: self.slots.clone(),
            store: self.store.clone(),
        };
        let args = GroupArgs {
            chat: ChatId(chat.into()),
            title: "dev".into(),
            deps,
            stats: None,
        };
        Actor::spawn(None, Group, args).await.unwrap().0
    }
}

async fn phase(group: &ActorRef<GroupMsg>) -> Phase {
    ractor::call!(group, GroupMsg::Status).unwrap().phase
}

fn prompt_of(agent: &FakeAgent, run: usize) -> String {
    agent.requests.lock().unwrap()[run].prompt.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_within_the_window_becomes_one_run_answering_the_trigger() {
    let rig = rig(false, 5, 4).await;
    let group = rig.group("tg:1").await;
    group.cast(incoming(1, "context first")).unwrap();
    assert_eq!(
        phase(&group).await,
        Phase::Idle,
        "chatter alone does not trigger"
    );
    group.cast(incoming(2, "@borg what do you think?")).unwrap();
    group.cast(incoming(3, "and one more thing")).unwrap();
    until("one answer", || rig.chat.answers().len() == 1).await;
    assert_eq!(rig.agent.runs(), 1);
    let prompt = prompt_of(&rig.agent, 0);
    assert!(
        prompt.contains("Ann: context first") && prompt.contains("Ann: and one more thing"),
        "{prompt}"
    );
    assert_eq!(rig.chat.answers()[0], ("DONE 1".into(), Some("2".into())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_during_a_run_go_into_the_next_run_which_resumes_the_session() {
    let rig = rig(true, 5, 4).await;
    let group = rig.group("tg:1").await;
    group.cast(incoming(1, "@Borg first")).unwrap();
    until("run started", || rig.agent.runs() == 1).await;
    until("one status message while it works", || {
        rig.chat.texts() == vec!["⏳ Working… step 1: Read notes.md".to_string()]
    })
    .await;
    group
        .cast(incoming(2, "@Borg second, while you work"))
        .unwrap();
    assert_eq!(phase(&group).await, Phase::Running);
    rig.agent.release();
    until("first answer", || rig.chat.answers().len() == 1).await;
    assert_eq!(
        rig.chat.edits.lock().unwrap().last().unwrap(),
        "✅ Done in 1 steps."
    );
    assert_eq!(phase(&group).await, Phase::Cooldown);
    until("second run", || rig.agent.runs() == 2).await;
    rig.agent.release();
    until("second answer", || rig.chat.answers().len() == 2).await;
    assert!(prompt_of(&rig.agent, 1).contains("second, while you work"));
    assert!(
        !prompt_of(&rig.agent, 1).contains("@Borg first"),
        "each message goes to one run"
    );
    let requests = rig.agent.requests.lock().unwrap();
    assert_eq!(requests[0].resume, None);
    assert_eq!(requests[1].resume.as_deref(), Some("s1"));
    assert_eq!(
        requests[0].home, requests[1].home,
        "resume needs the same HOME"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_delays_triggers_without_dropping_them() {
    let rig = rig(false, 1, 4).await;
    let group = rig.group("tg:1").await;
    group.cast(incoming(1, "@Borg one")).unwrap();
    until("first answer", || rig.chat.answers().len() == 1).await;
    tokio::time::sleep(COOLDOWN * 2).await;
    group.cast(incoming(2, "@Borg two")).unwrap();
    tokio::time::sleep(WINDOW * 3).await;
    assert_eq!(
        rig.agent.runs(),
        1,
        "the second trigger waits for the rate window"
    );
    until("second answer after the window", || {
        rig.chat.answers().len() == 2
    })
    .await;
    assert!(prompt_of(&rig.agent, 1).contains("@Borg two"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_agent_limit_holds_across_groups() {
    let rig = rig(true, 5, 1).await;
    let a = rig.group("tg:1").await;
    let b = rig.group("tg:2").await;
    a.cast(incoming(1, "@Borg a")).unwrap();
    until("a runs", || rig.agent.runs() == 1).await;
    b.cast(incoming(2, "@Borg b")).unwrap();
    tokio::time::sleep(WINDOW * 3).await;
    assert_eq!(phase(&b).await, Phase::Waiting);
    assert_eq!(rig.agent.runs(), 1, "one slot, one agent");
    let usage = ractor::call!(rig.slots, SlotsMsg::Usage).unwrap();
    assert_eq!((usage.running.len(), usage.waiting), (1, 1));
    rig.agent.release();
    until("b runs once a finishes", || rig.agent.runs() == 2).await;
    rig.agent.release();
    until("both answered", || rig.chat.answers().len() == 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_answers_with_a_short_honest_error() {
    let rig = rig(false, 5, 4).await;
    *rig.agent.fail_with.lock().unwrap() = Some(AgentError::Api {
        status: Some(529),
        kind: Some("overloaded_error".into()),
        message: "Overloaded".into(),
    });
    let group = rig.group("tg:1").await;
    group.cast(incoming(1, "@Borg hi")).unwrap();
    until("an answer", || rig.chat.answers().len() == 1).await;
    let (text, _) = &rig.chat.answers()[0];
    assert_eq!(
        text,
        "Sorry, that did not work: the model API failed (529): Overloaded."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_recording_and_sending_the_reply_delivers_it_once() {
    let rig = rig(false, 5, 4).await;
    rig.chat.hang.store(true, Ordering::SeqCst);
    let group = rig.group("tg:1").await;
    group.cast(incoming(1, "@Borg hi")).unwrap();
    until("run done", || rig.agent.runs() == 1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    group.kill_and_wait(None).await.unwrap();
    assert!(rig.chat.answers().is_empty());
    rig.chat.hang.store(false, Ordering::SeqCst);
    let again = rig.group("tg:1").await;
    until("delivered after restart", || !rig.chat.answers().is_empty()).await;
    tokio::time::sleep(COOLDOWN * 2).await;
    assert_eq!(
        rig.chat.answers(),
        vec![("DONE 1".to_string(), Some("1".to_string()))]
    );
    assert_eq!(rig.agent.runs(), 1, "the agent did not run twice");
    assert_eq!(phase(&again).await, Phase::Idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_during_a_run_runs_the_trigger_again_exactly_once() {
    let rig = rig(true, 5, 4).await;
    let group = rig.group("tg:1").await;
    group.cast(incoming(1, "@Borg hi")).unwrap();
    until("run started", || rig.agent.runs() == 1).await;
    group.kill_and_wait(None).await.unwrap();
    let _again = rig.group("tg:1").await;
    until("run again", || rig.agent.runs() == 2).await;
    rig.agent.release();
    rig.agent.release();
    until("answered", || !rig.chat.answers().is_empty()).await;
    tokio::time::sleep(COOLDOWN * 2).await;
    assert_eq!(rig.chat.answers().len(), 1, "one answer");
    assert_eq!(rig.agent.runs(), 2);
    assert!(prompt_of(&rig.agent, 1).contains("@Borg hi"));
    // The redelivered message id is recognised: a transport re-sending it changes nothing.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_a_thousand_messages_makes_one_bounded_run() {
    let rig = rig(false, 1, 4).await;
    let group = rig.group("tg:1").await;
    group.cast(incoming(0, "@Borg summarise this")).unwrap();
    for i in 1..1000 {
        group.cast(incoming(i, &"x".repeat(100))).unwrap();
    }
    until("answered", || rig.chat.answers().len() == 1).await;
    tokio::time::sleep(WINDOW * 2).await;
    assert_eq!(rig.agent.runs(), 1, "chatter does not trigger runs");
    let prompt = prompt_of(&rig.agent, 0);
    assert!(
        prompt.len() < 40_000,
        "prompt bounded: {} bytes",
        prompt.len()
    );
    assert!(
        prompt.contains("@Borg summarise this"),
        "the trigger was kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retiring_is_refused_while_a_run_is_in_flight() {
    let rig = rig(true, 5, 4).await;
    let group = rig.group("tg:1").await;
    assert_eq!(
        ractor::call!(group, GroupMsg::PrepareRetire).unwrap(),
        Ok(())
    );
    group.cast(incoming(1, "@Borg hi")).unwrap();
    until("run started", || rig.agent.runs() == 1).await;
    let refused = ractor::call!(group, GroupMsg::PrepareRetire).unwrap();
    assert!(refused.unwrap_err().contains("in progress"));
    rig.agent.release();
    until("answered", || rig.chat.answers().len() == 1).await;
    assert_eq!(
        ractor::call!(group, GroupMsg::PrepareRetire).unwrap(),
        Ok(())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_answer_whose_second_part_fails_is_resumed_not_resent() {
    let rig = rig(false, 5, 4).await;
    let long: String = (0..300)
        .map(|i| format!("line {i} of a long answer\n"))
        .collect();
    *rig.agent.answer.lock().unwrap() = Some(long.clone());
    // Answer sends: 1 = the first part, 2 = the second part, which fails once.
    rig.chat.fail_attempts.lock().unwrap().push(2);
    let group = rig.group("tg:1").await;
    group.cast(incoming(1, "@Borg tell me everything")).unwrap();
    // The failed part is retried after 5 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while rig.chat.answers().concat_len() < long.len() {
        let sent = rig.chat.answers().len();
        assert!(
            std::time::Instant::now() < deadline,
            "parts missing: {sent} sent"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let answers = rig.chat.answers();
    let joined: String = answers.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(joined, long, "every part once, in order");
    assert_eq!(
        answers[0].1.as_deref(),
        Some("1"),
        "only the first part is a reply"
    );
    assert!(answers[1..].iter().all(|(_, r)| r.is_none()));
}

trait ConcatLen {
    fn concat_len(&self) -> usize;
}

impl ConcatLen for Vec<(String, Option<String>)> {
    fn concat_len(&self) -> usize {
        self.iter().map(|(t, _)| t.len()).sum()
    }
}
