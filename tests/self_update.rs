//! Self-update: a release's build becomes the running borg, a failed build changes nothing,
//! and a new binary that cannot start gives way to the previous one. The "source" is a tiny
//! folder whose build command copies a shell script standing in for borg; one test builds a
//! real (tiny) Rust program with cargo. The daemon tests run the real `borg` binary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use borg::config::Config;
use borg::self_update::{self, UpdateError};

/// The real `borg` binary: exec in place, and the fallback of `main`.
#[path = "self_update/daemon.rs"]
mod daemon;

/// Stands in for a new borg: answers `version`, otherwise records how it was started (pid,
/// arguments, the self-update variables) in `$STANDIN_MARKER` and stays up like a daemon.
const STAND_IN: &str = r#"#!/bin/sh
if [ "$1" = version ]; then echo v2; exit 0; fi
{ echo "pid=$$"; echo "args=$*"; echo "fallback=$BORG_FALLBACK"
  echo "from=$BORG_UPDATED_FROM"; echo "reason=$BORG_FALLBACK_REASON"; } > "$STANDIN_MARKER.tmp"
mv "$STANDIN_MARKER.tmp" "$STANDIN_MARKER"
[ -n "$STANDIN_EXIT" ] && exit 0
exec sleep 600
"#;
const COPY_STAND_IN: &str = "mkdir -p out && cp standin.sh out/borg && chmod 755 out/borg";

/// A missing tool: say so loudly, and fail instead when `BORG_TEST_STRICT=1` (CI).
fn skip(why: &str) {
    assert!(
        std::env::var("BORG_TEST_STRICT").as_deref() != Ok("1"),
        "BORG_TEST_STRICT=1 and {why}"
    );
    eprintln!("SKIPPED: {why}");
}

/// `root/src` holding the stand-in, and the configuration of a daemon in `root`.
fn source(root: &Path, build_cmd: &str) -> (PathBuf, Config) {
    let src = root.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("standin.sh"), STAND_IN).unwrap();
    let vars: HashMap<&str, String> = [
        ("PIPELINE_REPO", "src".to_owned()),
        ("SELF_UPDATE", "true".to_owned()),
        ("SELF_UPDATE_BUILD_CMD", build_cmd.to_owned()),
        ("SELF_UPDATE_BINARY", "out/borg".to_owned()),
    ]
    .into();
    let config = Config::load_with_env(root, |name| vars.get(name).cloned()).unwrap();
    (src, config)
}

fn marker(path: &Path) -> HashMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap();
    let pairs = text.lines().filter_map(|l| l.split_once('='));
    pairs.map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn auto_means_only_when_pipeline_repo_is_borgs_own_source() {
    let root = tempfile::tempdir().unwrap();
    let (src, mut config) = source(root.path(), "true");
    let manifest = src.join("Cargo.toml");
    assert!(self_update::enabled(&config), "SELF_UPDATE=true");
    config.self_update = borg::config::SelfUpdate::Auto;
    assert!(!self_update::enabled(&config), "no Cargo.toml");
    std::fs::write(
        &manifest,
        "[dependencies]\nname = \"borg\"\n[package]\nname = \"app\"\n",
    )
    .unwrap();
    assert!(!self_update::enabled(&config), "another package");
    std::fs::write(
        &manifest,
        "[workspace]\n\n[package] # me\nname = \"borg\" # yes\n",
    )
    .unwrap();
    assert!(self_update::enabled(&config));
    assert!(self_update::is_borg_source(Path::new(env!(
        "CARGO_MANIFEST_DIR"
    ))));
    config.self_update = borg::config::SelfUpdate::Off;
    assert!(!self_update::enabled(&config));
    config.self_update = borg::config::SelfUpdate::On;
    config.pipeline_repo = None;
    assert!(
        !self_update::enabled(&config),
        "nothing to build without PIPELINE_REPO"
    );
}

#[tokio::test]
async fn a_good_build_installs_the_new_binary_and_keeps_the_running_one() {
    let root = tempfile::tempdir().unwrap();
    let (_, config) = source(root.path(), COPY_STAND_IN);
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let ready = self_update::update(&config, commit).await.unwrap();
    let bin = root.path().join("data/bin");
    assert_eq!(ready.binary, bin.join("borg-0123456789ab"));
    assert_eq!(ready.previous, bin.join("borg-previous"));
    let out = Command::new(&ready.binary).arg("version").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "v2\n");
    let running = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    assert!(
        std::fs::read(&ready.previous).unwrap() == running,
        "previous = running binary"
    );

    // The next update replaces the binary of this one.
    let next = self_update::update(&config, "fedcba9876").await.unwrap();
    let mut names: Vec<_> = std::fs::read_dir(&bin)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["borg-fedcba9876", "borg-previous"]);
    assert!(next.binary.exists());
}

#[tokio::test]
async fn a_failed_build_or_a_binary_that_does_not_run_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let (_, config) = source(root.path(), "echo the compiler says no >&2; exit 3");
    match self_update::update(&config, "abc").await {
        Err(UpdateError::Build { status, tail }) => {
            assert!(status.contains('3'), "{status}");
            assert_eq!(tail, "the compiler says no\n");
        }
        other => panic!("expected a build failure, got {other:?}"),
    }
    assert!(!root.path().join("data/bin").exists(), "nothing created");

    let broken = "mkdir -p out && printf '#!/bin/sh\\nexit 1\\n' > out/borg && chmod +x out/borg";
    let (_, config) = source(root.path(), broken);
    let err = self_update::update(&config, "abc").await.unwrap_err();
    assert!(matches!(err, UpdateError::Check(_)), "{err}");
    std::fs::remove_dir_all(root.path().join("src/out")).unwrap();
    let (_, config) = source(root.path(), "true");
    let err = self_update::update(&config, "abc").await.unwrap_err();
    assert!(err.to_string().contains("SELF_UPDATE_BINARY"), "{err}");
    let left = std::fs::read_dir(root.path().join("data/bin"))
        .unwrap()
        .count();
    assert_eq!(left, 0, "no binary kept, not even a temporary one");
}

#[tokio::test]
async fn triggers_during_a_build_are_coalesced_into_one_more_build() {
    // The only test that installs the process-global listener.
    let root = tempfile::tempdir().unwrap();
    let build = format!("echo built >> ../builds.log; sleep 0.5; {COPY_STAND_IN}");
    let (_, config) = source(root.path(), &build);
    self_update::trigger("before".into()); // no listener yet: only logs
    let mut listener = self_update::listen(Arc::new(config));
    for commit in ["aaaa", "bbbb", "cccc"] {
        self_update::trigger(commit.into());
    }
    let ready = tokio::time::timeout(Duration::from_secs(20), listener.recv())
        .await
        .unwrap();
    assert_eq!(ready.commit, "cccc", "the newest queued commit wins");
    let builds = || std::fs::read_to_string(root.path().join("builds.log")).unwrap();
    assert_eq!(
        builds().lines().count(),
        2,
        "aaaa, then cccc; bbbb was superseded"
    );
    // A restart is under way: a trigger now builds nothing.
    self_update::trigger("dddd".into());
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(builds().lines().count(), 2);
}

#[tokio::test]
async fn a_real_cargo_build_produces_the_new_binary() {
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    if Command::new(cargo).arg("--version").output().is_err() {
        return skip("cargo is not installed");
    }
    let root = tempfile::tempdir().unwrap();
    let src = root.path().join("src");
    std::fs::create_dir_all(src.join("src")).unwrap();
    let manifest = "[package]\nname = \"borg\"\nversion = \"9.9.9\"\nedition = \"2021\"\n";
    std::fs::write(src.join("Cargo.toml"), manifest).unwrap();
    let main = r#"fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("version") => println!("borg 9.9.9"),
        _ => std::fs::write(std::env::var("MARKER").unwrap(), "real borg ran").unwrap(),
    }
}"#;
    std::fs::write(src.join("src/main.rs"), main).unwrap();
    let vars: HashMap<&str, String> = [
        ("PIPELINE_REPO", "src".to_owned()),
        (
            "SELF_UPDATE_BUILD_CMD",
            format!("CARGO_TARGET_DIR=target '{cargo}' build --offline"),
        ),
        ("SELF_UPDATE_BINARY", "target/debug/borg".to_owned()),
    ]
    .into();
    let config = Config::load_with_env(root.path(), |n| vars.get(n).cloned()).unwrap();
    assert!(
        self_update::enabled(&config),
        "auto: the package is named borg"
    );
    let ready = self_update::update(&config, "feedbeef").await.unwrap();
    let marker = root.path().join("marker");
    let status = Command::new(&ready.binary)
        .arg("run")
        .env("MARKER", &marker)
        .status();
    assert!(status.unwrap().success());
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "real borg ran");
}
