//! Agent containers and test sandboxes against a real Docker engine and the real agent image
//! built from `container/` (tests/support/docker.rs builds it once, cached by the engine):
//! an unreachable engine, the image build, hardening proven by `inspect` and from inside,
//! refused mounts, orphans, and both test runners. The real `claude` CLI in agent containers
//! is in tests/docker_agent.rs. Tests that need the engine skip loudly without one (and fail
//! under `BORG_TEST_STRICT=1`).

#[path = "support/claude.rs"]
mod claude_support;
#[path = "support/fake_anthropic.rs"]
mod fake_anthropic;
#[path = "support/docker.rs"]
mod support;

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use actors::agent::{AgentError, AgentRunner};
use actors::pipeline::ports::{TestRequest, TestRunError, TestRunner};
use bollard::Docker;
use borg::claude::ClaudeConfig;
use borg::docker::container::{ContainerSpec, create_body, new_run_id};
use borg::docker::ownership::RunAs;
use borg::docker::{
    BuildContext, ContainerTestRunner, DockerConfig, DockerError, build_agent_image, image_status,
    remove_instance_orphans,
};
use borg::sandbox::{ProcessTestRunner, Sandbox};
use claude_support::{Progress, is_alive};
use fake_anthropic::FakeAnthropic;
use support::{
    LeftContainer, agent_request, agent_runner, config, containers_of, my_ids, owner,
    pass_fail_timeout, test_request, wait_for_container, wait_until_gone,
};

// ---- the engine and the image --------------------------------------------------------------

#[tokio::test]
async fn an_unreachable_engine_is_a_clear_error() {
    let err = borg::docker::connect_at("unix:///nonexistent/borg-test/docker.sock")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, DockerError::Unreachable(_)), "{err:?}");
    assert!(
        text.contains("/nonexistent/borg-test/docker.sock")
            && text.contains("AGENT_SANDBOX=process"),
        "{text}"
    );

    // A client whose engine is gone: the test runner says so instead of failing the tests.
    let nobody =
        Docker::connect_with_http("tcp://127.0.0.1:1", 5, bollard::API_DEFAULT_VERSION).unwrap();
    let root = tempfile::tempdir().unwrap();
    let runner = ContainerTestRunner::new(nobody, config(root.path()));
    let TestRunError(why) = runner
        .run(test_request(root.path(), "test-unreachable", "true", 10))
        .await
        .unwrap_err();
    assert!(why.contains("Docker engine error"), "{why}");
}

#[tokio::test]
async fn the_agent_image_is_current_and_a_failing_build_names_its_step() {
    let Some(docker) = support::engine_with_image().await else {
        return;
    };
    let status = image_status(&docker, support::AGENT_IMAGE)
        .await
        .unwrap()
        .unwrap();
    let context = BuildContext::from_dir(
        &support::context_dir(),
        &borg::docker::host_extra_ca_certs(),
    )
    .unwrap();
    assert_eq!(status.context_hash.as_deref(), Some(context.hash()));
    assert!(status.created.is_some());

    let broken = tempfile::tempdir().unwrap();
    std::fs::write(
        broken.path().join("Dockerfile"),
        format!(
            "FROM {}\nRUN echo fine\nRUN echo boom-7f3a >&2; exit 7\n",
            support::BASE_IMAGE
        ),
    )
    .unwrap();
    let context = BuildContext::from_dir(broken.path(), &[]).unwrap();
    let mut lines = Vec::new();
    let err = build_agent_image(&docker, &context, "borg-test-broken:never", &mut |l| {
        lines.push(l.to_owned())
    })
    .await
    .unwrap_err();
    let DockerError::Build {
        step,
        message,
        output,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(step.as_deref(), Some("RUN echo boom-7f3a >&2; exit 7"));
    assert!(message.contains('7'), "{message}");
    assert!(
        output.contains("boom-7f3a") && !output.contains("fine\n"),
        "only the failing step: {output}"
    );
    assert!(!lines.is_empty(), "progress saw the build");
    assert_eq!(
        image_status(&docker, "borg-test-broken:never")
            .await
            .unwrap(),
        None
    );
}

// ---- hardening -------------------------------------------------------------------------------

#[tokio::test]
async fn containers_are_hardened_labelled_and_not_root() {
    let Some(docker) = support::engine_with_image().await else {
        return;
    };
    let owner = owner("hardening");
    let _left = LeftContainer(owner.clone());
    let root = tempfile::tempdir().unwrap();
    let runner = ContainerTestRunner::new(docker.clone(), config(root.path()));
    let script = "id -u; id -g; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; \
                  echo written > /workspace/by-the-test; sleep 5";
    // Found by its label, then inspected; on a loaded machine the listing can still show a
    // container the engine is removing, so a vanished one is looked up again.
    let probe = async {
        for _ in 0..50 {
            let id = wait_for_container(&docker, &owner).await;
            match docker.inspect_container(&id, None).await {
                Ok(inspected) => return inspected,
                Err(e) => eprintln!("container {id} vanished before inspection ({e}); again"),
            }
        }
        panic!("no container of {owner} could be inspected");
    };
    let (outcome, inspected) = tokio::join!(
        runner.run(test_request(root.path(), &owner, script, 60)),
        probe
    );
    let outcome = outcome.unwrap();
    assert!(outcome.passed, "{outcome:?}");

    let host = inspected.host_config.unwrap();
    assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
    assert_eq!(
        host.security_opt,
        Some(vec!["no-new-privileges".to_owned()])
    );
    assert_eq!(host.pids_limit, Some(256));
    assert_eq!(host.memory, Some(1 << 30));
    assert_eq!(host.nano_cpus, Some(2_000_000_000));
    assert_eq!(host.init, Some(true));
    assert_eq!(host.network_mode.as_deref(), Some("bridge"));
    let run_as = RunAs::for_ids(my_ids().0, my_ids().1);
    let config = inspected.config.unwrap();
    assert_eq!(config.user, Some(run_as.user()));
    assert_ne!(run_as.uid, 0);
    let labels = config.labels.unwrap();
    assert_eq!(labels["borg"], "1");
    assert_eq!(labels["borg.task"], owner);
    assert!(!labels["borg.run"].is_empty());
    let mounts = inspected.mounts.unwrap();
    assert_eq!(mounts.len(), 1, "{mounts:?}");
    assert_eq!(mounts[0].destination.as_deref(), Some("/workspace"));
    assert_eq!(
        mounts[0].source.as_deref().map(PathBuf::from),
        Some(root.path().canonicalize().unwrap())
    );
    assert_eq!(mounts[0].rw, Some(true));

    // From the inside: the uid, no capabilities, no privilege gain.
    let out = &outcome.output_tail;
    let expected = format!(
        "{}\n{}\nCapEff:\t0000000000000000\nNoNewPrivs:\t1\n",
        run_as.uid, run_as.gid
    );
    assert_eq!(out, &expected);
    // The worktree is borg's again, including what the container wrote.
    let written = std::fs::metadata(root.path().join("by-the-test")).unwrap();
    assert_eq!((written.uid(), written.gid()), my_ids());
    wait_until_gone(&docker, &owner).await;
}

// ---- refused mounts ----------------------------------------------------------------------------

#[tokio::test]
async fn every_class_of_refused_mount_fails_the_run_and_creates_nothing() {
    let Some(docker) = support::engine().await else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let base = root.path().canonicalize().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(base.join(".env"), "SECRET=1").unwrap();
    std::fs::write(base.join(".git-credentials"), "https://x:y@example").unwrap();
    let cases: Vec<(PathBuf, &str)> = vec![
        (PathBuf::from("relative/work"), "absolute"),
        (base.join("work/../work"), "`..`"),
        (PathBuf::from("/var/run/docker.sock"), "socket"),
        (base.join(".ssh/work"), "`.ssh`"),
        (base.join(".aws"), "`.aws`"),
        (base.join(".env"), "`.env`"),
        (base.join(".git-credentials"), "`.git-credentials`"),
        (outside.path().join("work"), "outside the allowed roots"),
    ];
    let api = FakeAnthropic::start().await;
    let agents = agent_runner(&docker, &base, &api.base_url());
    let tests = ContainerTestRunner::new(docker.clone(), config(&base));
    let owner = owner("refused");
    for (path, rule) in cases {
        let mut req = agent_request(&base, &owner, "SAY: never");
        req.workdir = path.clone();
        let outcome = agents.run(req, Progress::default().sink()).await;
        let Some(AgentError::Spawn(why)) = &outcome.error else {
            panic!("{} was not refused: {outcome:?}", path.display())
        };
        assert!(
            why.contains(&path.display().to_string()) && why.contains(rule),
            "{why}"
        );

        let TestRunError(why) = tests
            .run(test_request(&path, &owner, "true", 10))
            .await
            .unwrap_err();
        assert!(why.contains(&path.display().to_string()), "{why}");
    }
    assert!(
        !base.join(".ssh").exists(),
        "a refused path is never created"
    );
    assert!(!outside.path().join("work").exists());
    assert!(containers_of(&docker, &owner).await.is_empty());
    assert!(api.message_requests().is_empty(), "no agent ever ran");
}

// ---- orphans -------------------------------------------------------------------------------

#[tokio::test]
async fn a_container_left_by_a_killed_daemon_is_found_by_its_label_and_removed() {
    let Some(docker) = support::engine_with_image().await else {
        return;
    };
    let owner = owner("orphan");
    let _left = LeftContainer(owner.clone());
    // Two daemons (two DATA_DIRs) on one engine, each killed with a run in flight: what a run
    // creates, created and started by hand, then abandoned.
    let (data_a, data_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (daemon_a, daemon_b) = (config(data_a.path()), config(data_b.path()));
    assert_ne!(daemon_a.instance, daemon_b.instance);
    let mut ids = Vec::new();
    for daemon in [&daemon_a, &daemon_b] {
        let spec = ContainerSpec {
            run_id: new_run_id(),
            owner: owner.clone(),
            cmd: vec!["sleep".into(), "300".into()],
            env: Vec::new(),
            mounts: Vec::new(),
            run_as: RunAs::for_ids(1000, 1000),
        };
        let body = create_body(daemon, &spec);
        let created = docker.create_container(None, body).await.unwrap();
        docker.start_container(&created.id, None).await.unwrap();
        ids.push(created.id);
    }

    // Daemon A restarts: its orphan goes, B's live on.
    assert_eq!(
        remove_instance_orphans(&docker, &daemon_a).await.unwrap(),
        1
    );
    let gone = docker.inspect_container(&ids[0], None).await;
    assert!(
        matches!(
            gone,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                ..
            })
        ),
        "{gone:?}"
    );
    let alive = docker.inspect_container(&ids[1], None).await.unwrap();
    assert_eq!(alive.state.and_then(|s| s.running), Some(true));
    assert_eq!(
        remove_instance_orphans(&docker, &daemon_a).await.unwrap(),
        0
    );
    assert_eq!(
        remove_instance_orphans(&docker, &daemon_b).await.unwrap(),
        1
    );
    assert!(containers_of(&docker, &owner).await.is_empty());
}

// ---- test commands -------------------------------------------------------------------------

#[tokio::test]
async fn tests_in_a_container_pass_fail_and_time_out() {
    let Some(docker) = support::engine_with_image().await else {
        return;
    };
    let owner = owner("tests");
    let _left = LeftContainer(owner.clone());
    let root = tempfile::tempdir().unwrap();
    let runner = ContainerTestRunner::new(docker.clone(), config(root.path()));
    pass_fail_timeout(&runner, root.path(), &owner).await;
    assert!(
        containers_of(&docker, &owner).await.is_empty(),
        "every container was removed"
    );
}

#[tokio::test]
async fn a_test_command_killed_by_the_out_of_memory_killer_says_so() {
    let Some(docker) = support::engine_with_image().await else {
        return;
    };
    let owner = owner("oom");
    let _left = LeftContainer(owner.clone());
    let root = tempfile::tempdir().unwrap();
    let config = DockerConfig {
        memory_bytes: 64 << 20,
        ..config(root.path())
    };
    let runner = ContainerTestRunner::new(docker.clone(), config);
    let hog = "node -e 'const a = []; for (;;) a.push(Buffer.alloc(1 << 20, 1))'";
    let outcome = runner
        .run(TestRequest {
            owner: owner.clone(),
            workdir: root.path().to_owned(),
            command: hog.into(),
            timeout: Duration::from_secs(60),
        })
        .await
        .expect("the run happens");
    assert!(!outcome.passed && !outcome.timed_out, "{outcome:?}");
    assert_eq!(outcome.exit_code, Some(137), "{outcome:?}");
    assert!(
        outcome
            .output_tail
            .contains("killed by the out-of-memory killer: it used all of its 64 MiB"),
        "{}",
        outcome.output_tail
    );
    assert!(containers_of(&docker, &owner).await.is_empty());
}

#[tokio::test]
async fn tests_as_processes_pass_fail_and_time_out_killing_the_whole_group() {
    let root = tempfile::tempdir().unwrap();
    pass_fail_timeout(&ProcessTestRunner, root.path(), "test-process").await;
    let background: i32 = std::fs::read_to_string(root.path().join("bg.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    claude_support::wait_for("the background process to die", || !is_alive(background)).await;

    let env = ProcessTestRunner
        .run(test_request(root.path(), "test-process", "env", 10))
        .await
        .unwrap();
    let names: Vec<&str> = env
        .output_tail
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    let allowed = [
        "PATH",
        "HOME",
        "LANG",
        "PWD",
        "SHLVL",
        "_",
        "OLDPWD",
        "BORG_CLAUDE_RUN",
    ];
    assert!(
        names.iter().all(|n| allowed.contains(n)),
        "a cleared environment: {names:?}"
    );
    let missing = ProcessTestRunner
        .run(test_request(
            &root.path().join("nope"),
            "test-process",
            "true",
            5,
        ))
        .await;
    assert!(matches!(missing, Err(TestRunError(why)) if why.contains("nope")));
}

#[tokio::test]
async fn the_sandbox_setting_picks_processes_or_containers() {
    let root = tempfile::tempdir().unwrap();
    let base = root.path().canonicalize().unwrap();
    let process = Sandbox::Process
        .start(ClaudeConfig::default())
        .await
        .unwrap();
    assert!(process.docker.is_none());
    let here = process
        .test
        .run(test_request(&base, "test-sandbox", "pwd", 10))
        .await
        .unwrap();
    assert_eq!(here.output_tail, format!("{}\n", base.display()));

    let Some(_) = support::engine_with_image().await else {
        return;
    };
    let owner = owner("sandbox");
    let _left = LeftContainer(owner.clone());
    let sandbox = Sandbox::Docker(config(&base));
    let runners = sandbox.start(ClaudeConfig::default()).await.unwrap();
    assert!(runners.docker.is_some());
    let inside = runners
        .test
        .run(test_request(&base, &owner, "pwd", 60))
        .await
        .unwrap();
    assert_eq!(inside.output_tail, "/workspace\n");
    assert_eq!(
        runners.remove_orphans().await.unwrap(),
        0,
        "nothing was left"
    );
    assert_eq!(process.remove_orphans().await.unwrap(), 0);
}
