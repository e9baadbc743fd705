//! Helpers for tests that need a real Docker engine: [`engine`] connects or skips loudly
//! (fails under `BORG_TEST_STRICT=1`), [`agent_image`] makes sure the agent image built from
//! `container/` is present and current, building it once for all test binaries at a time,
//! [`containers_of`] / [`LeftContainer`] find and clean up what a test created, and the
//! runners, requests and checks the container tests share.

// Each test crate that includes this file uses only part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use actors::agent::AgentRequest;
use actors::pipeline::ports::{TestOutcome, TestRequest, TestRunner};
use bollard::Docker;
use bollard::query_parameters::{ListContainersOptionsBuilder, RemoveContainerOptionsBuilder};
use borg::claude::ClaudeConfig;
use borg::docker::{
    BuildContext, DEFAULT_IMAGE, build_agent_image, host_extra_ca_certs, image_status,
};
use borg::docker::{ContainerRunner, DockerConfig};
use borg::sandbox::TEST_OUTPUT_TAIL_BYTES;

/// The image `container/Dockerfile` starts `FROM`.
pub const BASE_IMAGE: &str = "debian:bookworm-slim";
/// The tag the tests build and use: the daemon's default, so the cache serves both.
pub const AGENT_IMAGE: &str = DEFAULT_IMAGE;
/// Serializes image builds across test processes (parallel test binaries).
const BUILD_LOCK: &str = "/tmp/borg-agent-image.lock";

/// A missing component: say so loudly, and fail instead when `BORG_TEST_STRICT=1` (CI).
pub fn skip(why: &str) {
    if std::env::var("BORG_TEST_STRICT").as_deref() == Ok("1") {
        panic!("BORG_TEST_STRICT=1 and {why}");
    }
    eprintln!("\n!!!!!!!! SKIPPED: {why} !!!!!!!!\n");
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `container/`: the agent image's build context.
pub fn context_dir() -> PathBuf {
    manifest_dir().join("container")
}

/// The engine, or `None` after a loud skip.
pub async fn engine() -> Option<Docker> {
    match borg::docker::connect().await {
        Ok(docker) => Some(docker),
        Err(err) => {
            skip(&format!("no Docker engine for this test: {err}"));
            None
        }
    }
}

/// The engine and a current agent image ([`agent_image`]), or `None` after a loud skip.
pub async fn engine_with_image() -> Option<Docker> {
    let docker = engine().await?;
    agent_image(&docker).await?;
    Some(docker)
}

/// Makes the base image when missing (`container/make-base-image.sh`), then builds
/// `container/` as [`AGENT_IMAGE`] with borg's own build function when the image is missing
/// or was built from another context. Holds a file lock meanwhile, so concurrent test
/// processes build once and the others find the image current. Returns the tag.
pub async fn agent_image(docker: &Docker) -> Option<String> {
    let lock = tokio::task::spawn_blocking(|| {
        // Read-only is enough for flock, and all another user may have of a lock file.
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(BUILD_LOCK)
            .or_else(|_| std::fs::File::open(BUILD_LOCK))?;
        file.lock()?;
        Ok::<_, std::io::Error>(file)
    })
    .await
    .expect("the lock task");
    let _lock = match lock {
        Ok(file) => file,
        Err(err) => panic!("cannot lock {BUILD_LOCK}: {err}"),
    };
    if !base_image(docker).await {
        return None;
    }
    let context = BuildContext::from_dir(&context_dir(), &host_extra_ca_certs())
        .unwrap_or_else(|e| panic!("{e}"));
    let status = image_status(docker, AGENT_IMAGE)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    if status.and_then(|s| s.context_hash).as_deref() == Some(context.hash()) {
        return Some(AGENT_IMAGE.to_owned());
    }
    eprintln!("building {AGENT_IMAGE} from container/ (minutes the first time; cached after)");
    let mut progress = |line: &str| eprintln!("[agent image] {line}");
    if let Err(err) = build_agent_image(docker, &context, AGENT_IMAGE, &mut progress).await {
        panic!("the agent image does not build: {err}");
    }
    Some(AGENT_IMAGE.to_owned())
}

/// Makes [`BASE_IMAGE`] with the script when the engine lacks it; `false` after a loud skip.
pub async fn base_image(docker: &Docker) -> bool {
    if let Ok(Some(_)) = image_status(docker, BASE_IMAGE).await {
        return true;
    }
    let script = context_dir().join("make-base-image.sh");
    let status = tokio::process::Command::new("sh")
        .arg(&script)
        .arg(BASE_IMAGE)
        .status()
        .await;
    match status {
        Ok(s) if s.success() => true,
        other => {
            skip(&format!(
                "{BASE_IMAGE} is missing and {} failed ({other:?}); it needs mmdebstrap \
                 (apt-get install mmdebstrap) and Debian's archive",
                script.display()
            ));
            false
        }
    }
}

/// Ids of the containers (running or not) labelled `borg.task=<owner>`.
pub async fn containers_of(docker: &Docker, owner: &str) -> Vec<String> {
    containers_labelled(docker, &format!("borg.task={owner}")).await
}

/// Ids of the containers (running or not) with `label` (`name=value`).
pub async fn containers_labelled(docker: &Docker, label: &str) -> Vec<String> {
    let filters = HashMap::from([("label", vec![label.to_owned()])]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    docker
        .list_containers(Some(options))
        .await
        .expect("list containers")
        .into_iter()
        .filter_map(|c| c.id)
        .collect()
}

/// Waits up to 30 s for the first container of `owner` to exist; its id.
pub async fn wait_for_container(docker: &Docker, owner: &str) -> String {
    for _ in 0..600 {
        if let Some(id) = containers_of(docker, owner).await.into_iter().next() {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no container of {owner} appeared");
}

/// Waits up to 10 s for `owner` to have no container left.
pub async fn wait_until_gone(docker: &Docker, owner: &str) {
    for _ in 0..200 {
        if containers_of(docker, owner).await.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "containers of {owner} were left behind: {:?}",
        containers_of(docker, owner).await
    );
}

/// A unique `borg.task` value for one test.
pub fn owner(test: &str) -> String {
    format!("test-{test}-{}", std::process::id())
}

/// Removes every container of `owner` when dropped: what a test created goes even when an
/// assertion fails first. Runs on a thread of its own with its own connection, since `Drop`
/// cannot await and the test's runtime (which drives the test's connections) is blocked.
pub struct LeftContainer(pub String);

impl Drop for LeftContainer {
    fn drop(&mut self) {
        let owner = self.0.clone();
        let cleaner = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                let Ok(docker) = borg::docker::connect().await else {
                    return;
                };
                for id in containers_of(&docker, &owner).await {
                    let options = RemoveContainerOptionsBuilder::default().force(true).build();
                    let _ = docker.remove_container(&id, Some(options)).await;
                }
            });
        });
        let _ = cleaner.join();
    }
}

// ---- runners and requests for the tests ----------------------------------------------------

/// The defaults, with `root` as the one allowed root.
pub fn config(root: &Path) -> DockerConfig {
    DockerConfig::new(vec![root.to_owned()])
}

/// A container agent runner talking to `api` over the host's loopback (network `host`).
pub fn agent_runner(docker: &Docker, root: &Path, api_url: &str) -> ContainerRunner {
    let config = DockerConfig {
        network: "host".into(),
        ..config(root)
    };
    let claude = ClaudeConfig {
        extra_env: vec![
            ("ANTHROPIC_BASE_URL".into(), api_url.to_owned()),
            ("ANTHROPIC_API_KEY".into(), "sk-test-dummy".into()),
        ],
        inherit_model_access: false,
        dangerously_skip_permissions: true,
        ..ClaudeConfig::default()
    };
    ContainerRunner::new(docker.clone(), config, claude)
}

/// A request by `owner` with its home and workdir under `root` and generous timeouts.
pub fn agent_request(root: &Path, owner: &str, prompt: &str) -> AgentRequest {
    AgentRequest {
        owner: owner.to_owned(),
        prompt: prompt.to_owned(),
        model: "claude-sonnet-4-6".to_owned(),
        resume: None,
        home: root.join("home"),
        workdir: root.join("work"),
        allowed_tools: Vec::new(),
        system_prompt: None,
        max_turns: None,
        idle_timeout: Duration::from_secs(60),
        hard_timeout: Duration::from_secs(120),
    }
}

pub fn test_request(workdir: &Path, owner: &str, command: &str, timeout_s: u64) -> TestRequest {
    TestRequest {
        owner: owner.to_owned(),
        workdir: workdir.to_owned(),
        command: command.to_owned(),
        timeout: Duration::from_secs(timeout_s),
    }
}

pub fn my_ids() -> (u32, u32) {
    let meta = std::fs::metadata("/proc/self").unwrap();
    (meta.uid(), meta.gid())
}

/// The three outcomes every test runner must give, and a bounded tail.
pub async fn pass_fail_timeout(
    runner: &dyn TestRunner,
    workdir: &Path,
    owner: &str,
) -> Vec<TestOutcome> {
    std::fs::write(workdir.join("present.txt"), "x").unwrap();
    let passed = runner
        .run(test_request(workdir, owner, "ls; echo all-good", 60))
        .await
        .unwrap();
    assert!(
        passed.passed && passed.exit_code == Some(0) && !passed.timed_out,
        "{passed:?}"
    );
    assert!(
        passed.output_tail.contains("present.txt") && passed.output_tail.ends_with("all-good\n")
    );

    let failed = runner
        .run(test_request(
            workdir,
            owner,
            "echo out-1; echo err-2 >&2; exit 3",
            60,
        ))
        .await
        .unwrap();
    assert!(
        !failed.passed && failed.exit_code == Some(3) && !failed.timed_out,
        "{failed:?}"
    );
    assert!(failed.output_tail.contains("out-1") && failed.output_tail.contains("err-2"));

    let noisy = runner
        .run(test_request(
            workdir,
            owner,
            "head -c 100000 /dev/zero | tr '\\0' x; echo; echo END",
            60,
        ))
        .await
        .unwrap();
    assert!(
        noisy.output_tail.len() <= TEST_OUTPUT_TAIL_BYTES
            && noisy.output_tail.ends_with("x\nEND\n")
    );

    let started = Instant::now();
    let slow = runner
        .run(test_request(
            workdir,
            owner,
            "sleep 300 & echo $! > bg.pid; sleep 300",
            2,
        ))
        .await
        .unwrap();
    assert!(
        slow.timed_out && !slow.passed && slow.exit_code.is_none(),
        "{slow:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    vec![passed, failed, noisy, slow]
}
