//! The real `claude` CLI inside agent containers (`ContainerRunner`) against a real Docker
//! engine, the real agent image built from `container/` (tests/support/docker.rs builds it
//! once, cached by the engine) and the scripted API (tests/support/fake_anthropic.rs):
//! writing into the worktree and resuming the session, the idle and hard timeouts, and a
//! dropped run, each removing its container. Hardening, mounts, orphans and the test runners
//! are in tests/docker.rs. Tests skip loudly without an engine (and fail under
//! `BORG_TEST_STRICT=1`).

#[path = "support/claude.rs"]
mod claude_support;
#[path = "support/fake_anthropic.rs"]
mod fake_anthropic;
#[path = "support/docker.rs"]
mod support;

use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use actors::agent::{AgentError, AgentRunner};
use claude_support::Progress;
use fake_anthropic::FakeAnthropic;
use support::{
    LeftContainer, agent_request, agent_runner, containers_of, my_ids, owner, wait_for_container,
    wait_until_gone,
};

// ---- the real CLI in the real container ----------------------------------------------------

#[tokio::test]
async fn real_cli_in_a_container_writes_into_the_worktree_answers_and_resumes() {
    let Some(docker) = support::engine_with_image().await else {
        return;
    };
    let owner = owner("real-cli");
    let _left = LeftContainer(owner.clone());
    let api = FakeAnthropic::start().await;
    let root = tempfile::tempdir().unwrap();
    let runner = agent_runner(&docker, root.path(), &api.base_url());
    let prompt = "Create it.\nDO: Write {\"file_path\": \"/workspace/hello.txt\", \"content\": \"hello from the container\\n\"}\nSAY: written\n";
    let req = agent_request(root.path(), &owner, prompt);
    let progress = Progress::default();
    let first = runner.run(req.clone(), progress.sink()).await;
    assert_eq!(first.error, None, "{first:?}");
    assert_eq!(first.text, "DONE: written");
    assert_eq!(progress.tool_summaries(), ["Write hello.txt"]);
    let file = req.workdir.join("hello.txt");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "hello from the container\n"
    );
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!((meta.uid(), meta.gid()), my_ids(), "handed back to borg");
    let left: Vec<_> = std::fs::read_dir(&req.home)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(".borg-prompt-"))
        .collect();
    assert!(left.is_empty(), "the prompt file is gone: {left:?}");
    assert!(
        containers_of(&docker, &owner).await.is_empty(),
        "the container was removed"
    );

    // The session lives in the mounted home: the next container resumes it.
    let mut again = agent_request(root.path(), &owner, "Go on.\nSAY: resumed\n");
    again.resume = first.session_id.clone();
    let second = runner.run(again, Progress::default().sink()).await;
    assert_eq!(second.error, None, "{second:?}");
    assert_eq!(second.session_id, first.session_id);
    let last = api.message_requests().pop().unwrap();
    assert!(
        last["messages"].to_string().contains("Create it."),
        "the model saw the first run"
    );
    assert!(containers_of(&docker, &owner).await.is_empty());
}

#[tokio::test]
async fn a_stalled_model_hits_the_idle_timeout_and_the_agent_container_goes() {
    let Some(docker) = support::engine_with_image().await else {
        return;
    };
    let owner = owner("idle");
    let _left = LeftContainer(owner.clone());
    let api = FakeAnthropic::start().await;
    let root = tempfile::tempdir().unwrap();
    let mut req = agent_request(root.path(), &owner, "Hang.\nSTALL\n");
    req.idle_timeout = Duration::from_secs(4);
    let runner = agent_runner(&docker, root.path(), &api.base_url());
    let probe = async {
        let id = wait_for_container(&docker, &owner).await;
        docker.inspect_container(&id, None).await.unwrap()
    };
    let (outcome, inspected) =
        tokio::join!(runner.run(req.clone(), Progress::default().sink()), probe);
    assert_eq!(
        outcome.error,
        Some(AgentError::IdleTimeout(Duration::from_secs(4)))
    );
    assert!(outcome.session_id.is_some(), "kept for a later resume");
    assert!(
        containers_of(&docker, &owner).await.is_empty(),
        "removed before run() returned"
    );

    // The agent's container has the same hardening, its two mounts and the allow-list only.
    let host = inspected.host_config.unwrap();
    assert_eq!(
        (host.cap_drop, host.pids_limit, host.init),
        (Some(vec!["ALL".into()]), Some(256), Some(true))
    );
    assert_eq!(host.network_mode.as_deref(), Some("host"));
    let mut targets: Vec<String> = inspected
        .mounts
        .unwrap()
        .into_iter()
        .filter_map(|m| m.destination)
        .collect();
    targets.sort();
    assert_eq!(targets, ["/home/agent", "/workspace"]);
    let config = inspected.config.unwrap();
    let cmd = config.cmd.unwrap();
    assert_eq!(cmd[..3], ["claude", "--print", "--output-format"]);
    assert!(cmd.contains(&"--dangerously-skip-permissions".to_owned()));
    let env = config.env.unwrap();
    assert!(
        env.contains(&"HOME=/home/agent".to_owned())
            && env.contains(&"ANTHROPIC_API_KEY=sk-test-dummy".to_owned())
    );
    let host_path = std::env::var("PATH").unwrap();
    assert!(
        !env.contains(&format!("PATH={host_path}")),
        "the image's PATH, not the host's"
    );
    assert!(
        env.iter().all(|e| !e.starts_with("CARGO")),
        "nothing else of borg's: {env:?}"
    );
}

#[tokio::test]
async fn the_hard_timeout_kills_and_removes_the_agent_container() {
    let Some(docker) = support::engine_with_image().await else {
        return;
    };
    let owner = owner("hard");
    let _left = LeftContainer(owner.clone());
    let api = FakeAnthropic::start().await;
    let root = tempfile::tempdir().unwrap();
    let mut req = agent_request(root.path(), &owner, "Hang.\nSTALL\n");
    (req.idle_timeout, req.hard_timeout) = (Duration::from_secs(120), Duration::from_secs(5));
    let started = Instant::now();
    let outcome = agent_runner(&docker, root.path(), &api.base_url())
        .run(req, Progress::default().sink())
        .await;
    assert_eq!(
        outcome.error,
        Some(AgentError::HardTimeout(Duration::from_secs(5)))
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(containers_of(&docker, &owner).await.is_empty());
}

#[tokio::test]
async fn dropping_an_agent_run_removes_its_container() {
    let Some(docker) = support::engine_with_image().await else {
        return;
    };
    let owner = owner("dropped");
    let _left = LeftContainer(owner.clone());
    let api = FakeAnthropic::start().await;
    let root = tempfile::tempdir().unwrap();
    let req = agent_request(root.path(), &owner, "Hang.\nSTALL\n");
    let runner = agent_runner(&docker, root.path(), &api.base_url());
    tokio::select! {
        outcome = runner.run(req, Progress::default().sink()) => panic!("ended by itself: {outcome:?}"),
        _ = wait_for_container(&docker, &owner) => {}
    }
    // The run future is dropped here; its cleanup is spawned.
    wait_until_gone(&docker, &owner).await;
}
