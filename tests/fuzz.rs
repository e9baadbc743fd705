//! Fuzzing of every parser that reads what borg does not control, on the stable toolchain.
//!
//! Two kinds. First, proptest: random input and random mutations of valid input (bounded by
//! `PROPTEST_CASES`, 1,000 cases per target by default) into the stream-json reader, the chat
//! command parser, the config parser (every variable, `WATCHED_REPOS` above all), the snapshot
//! decoders, the WhatsApp bridge's line protocol and the seeding answer format;
//! `PROPTEST_CASES=200000 cargo test --release --test fuzz` is the long run. Second,
//! coverage-guided fuzzing with cargo-fuzz (libFuzzer) of the stream-json reader, the chat
//! command parser, the config parser, `WATCHED_REPOS` and the snapshot decoders: the targets
//! are in `tests/fuzz-targets/` and `coverage_guided_fuzz_targets_run_clean` runs each for
//! `FUZZ_SECONDS` (20 by default). cargo-fuzz needs no nightly toolchain for this: with
//! `--sanitizer none` it passes only stable rustc flags (sancov instrumentation), so the
//! pinned stable toolchain builds the targets; what it gives up is AddressSanitizer, which
//! finds little in code without `unsafe`. `cargo fuzz` itself comes from crates.io
//! (`cargo install cargo-fuzz --version 0.13.2 --locked`, as `.ci/run` does); without it that
//! test skips loudly (fails in CI). Each parser must answer with a value or a clear error and
//! never panic. A crash found by either becomes a named regression test at the bottom of this
//! file.

use actors::chat::command::Command;
use actors::chat::group::state::GroupSnapshot;
use actors::chat::router::book::RouterBook;
use actors::pipeline::desk::DeskSnapshot;
use actors::pipeline::repo::RepoSnapshot;
use actors::pipeline::seed::SeedSnapshot;
use actors::pipeline::task::state::{NewTask, TaskSnapshot};
use actors::pipeline::train::state::TrainSnapshot;
use borg::claude::StreamAccumulator;
use borg::config::{Config, VARIABLES};
use proptest::prelude::*;
use supervisors::snapshot::{Snapshot, decode, encode};

#[path = "support/claude.rs"]
mod support;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(1_000),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Valid input with random bytes spliced in, cut out or overwritten.
fn mutated(seed: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 0..8),
        any::<prop::sample::Index>(),
    )
        .prop_map(move |(edits, cut)| {
            let mut bytes = seed.to_vec();
            for (at, byte, kind) in edits {
                if bytes.is_empty() {
                    bytes.push(byte);
                    continue;
                }
                let i = at.index(bytes.len());
                match kind {
                    0 => bytes.insert(i, byte),
                    1 => {
                        bytes.remove(i);
                    }
                    _ => bytes[i] = byte,
                }
            }
            if !bytes.is_empty() && cut.index(4) == 0 {
                bytes.truncate(cut.index(bytes.len()));
            }
            bytes
        })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const STREAM_LINES: &[u8] = br#"{"type":"system","subtype":"init","session_id":"s-1","tools":["Read"],"model":"m"}
{"type":"assistant","message":{"content":[{"type":"tool_use","id":"t1","name":"Read","input":{"file_path":"a"}}]},"session_id":"s-1"}
{"type":"assistant","message":{"content":[{"type":"text","text":"hello"}]},"session_id":"s-1"}
{"type":"result","subtype":"success","is_error":false,"result":"done","session_id":"s-1","total_cost_usd":0.01,"num_turns":2}"#;

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_stream_json_reader_takes_any_line(lines in prop::collection::vec(mutated(STREAM_LINES), 1..4)) {
        let mut acc = StreamAccumulator::new();
        for chunk in &lines {
            for line in text(chunk).lines() {
                let _ = borg::claude::stream::parse_line(line);
                let _ = acc.push_line(line);
            }
        }
        let outcome = acc.finish(Some(0), "");
        if let Some(error) = outcome.error {
            prop_assert!(!error.to_string().is_empty());
        }
    }

    #[test]
    fn the_chat_command_parser_takes_any_text(raw in ".{0,200}", bytes in mutated(b"/task@borg_bot repo:app Fix it\nmore\n/release app")) {
        for input in [raw, text(&bytes)] {
            if let Some(Command::Task { title, .. }) = Command::parse(&input, Some("borg_bot")) {
                prop_assert!(!title.contains('\n'), "a title is one line: {title:?}");
            }
        }
    }

    #[test]
    fn the_config_parser_takes_any_value_of_any_variable(
        picks in prop::collection::vec((any::<prop::sample::Index>(), ".{0,60}"), 1..6),
    ) {
        let values: Vec<(&str, String)> = picks
            .iter()
            .map(|(i, v)| (VARIABLES[i.index(VARIABLES.len())].name, v.clone()))
            .collect();
        let result = Config::from_lookup(|name| {
            values.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone())
        });
        if let Err(e) = result {
            let message = e.to_string();
            prop_assert!(
                VARIABLES.iter().any(|v| message.contains(v.name)),
                "the error names the variable: {message}"
            );
        }
    }

    #[test]
    fn watched_repos_takes_any_list(raw in "[/a-z:|! .~]{0,80}", bytes in mutated(b"/srv/app:cargo test!manual:p.md:fast:cargo clippy:app|/srv/lib")) {
        for value in [raw, text(&bytes)] {
            let result = Config::from_lookup(|name| (name == "WATCHED_REPOS").then(|| value.clone()));
            match result {
                Ok(config) => {
                    for repo in &config.watched_repos {
                        prop_assert!(!repo.path.as_os_str().is_empty(), "{value:?}");
                    }
                }
                Err(e) => prop_assert!(e.to_string().contains("WATCHED_REPOS"), "{e}"),
            }
        }
    }

    #[test]
    fn snapshot_decoders_take_any_bytes(raw in prop::collection::vec(any::<u8>(), 0..200), picks in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6)) {
        decode_all(&raw);
        // Valid snapshots of every kind, damaged.
        for valid in valid_snapshots() {
            let mut bytes = valid.clone();
            for (at, byte) in &picks {
                if !bytes.is_empty() {
                    let i = at.index(bytes.len());
                    bytes[i] = *byte;
                }
            }
            decode_all(&bytes);
            decode_all(&valid[..picks.len().min(valid.len())]);
        }
    }

    #[test]
    fn the_whatsapp_bridge_protocol_takes_any_line(raw in ".{0,200}", bytes in mutated(br#"{"type":"message","chat":"1@g.us","id":"A","from":"2@s.whatsapp.net","name":"Ann","text":"hi","ts":1}"#)) {
        for line in [raw, text(&bytes)] {
            if let Err(e) = borg::whatsapp::protocol::parse_event(&line) {
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }

    #[test]
    fn the_seeding_format_takes_any_answer(raw in ".{0,300}", bytes in mutated(br#"```json
{"tasks":[{"title":"Remove the duplicated retry loop","description":"Both runners retry the same way; share one helper and test it."}]}
```"#)) {
        for answer in [raw, text(&bytes)] {
            match actors::pipeline::seed::format::parse(&answer) {
                Ok(tasks) => prop_assert!(tasks.len() <= 5),
                Err(why) => prop_assert!(!why.is_empty()),
            }
        }
    }
}

fn decode_all(bytes: &[u8]) {
    fn one<S: Snapshot>(bytes: &[u8]) {
        if let Err(e) = decode::<S>(bytes) {
            assert!(!e.to_string().is_empty());
        }
    }
    one::<TaskSnapshot>(bytes);
    one::<RepoSnapshot>(bytes);
    one::<TrainSnapshot>(bytes);
    one::<DeskSnapshot>(bytes);
    one::<SeedSnapshot>(bytes);
    one::<GroupSnapshot>(bytes);
    one::<RouterBook>(bytes);
}

fn valid_snapshots() -> Vec<Vec<u8>> {
    let task = TaskSnapshot::new(
        3,
        NewTask {
            repo: "app".into(),
            title: "Add greet".into(),
            description: "say hello".into(),
            origin: Some("tg:1".into()),
            requested_by: "tg:2".into(),
        },
        1,
    );
    vec![
        encode(&task),
        encode(&RepoSnapshot::default()),
        encode(&TrainSnapshot::default()),
    ]
}

/// The cargo-fuzz targets in `tests/fuzz-targets/`, built with the pinned stable toolchain
/// (`--sanitizer none`) into `target/fuzz` (its own target directory, so the build lock of the
/// `cargo test` running this is no obstacle) and each run for `FUZZ_SECONDS` (20 by default)
/// from its committed seeds. libFuzzer writes what it finds into a scratch corpus that is
/// thrown away, so a run never changes the repository; a crash leaves its input in
/// `target/fuzz/artifacts/<target>/` and fails this test with that path, the target's name
/// and libFuzzer's report.
#[test]
fn coverage_guided_fuzz_targets_run_clean() {
    use std::fs::File;
    use std::io::Write;
    use std::path::Path;
    use std::process::{Command, Stdio};
    use std::time::{Instant, SystemTime};

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fuzz_dir = root.join("tests/fuzz-targets");
    let target_dir = root.join("target/fuzz");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let seconds: u64 = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
        .max(1); // libFuzzer reads 0 as "no limit"

    let installed = Command::new(&cargo)
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !installed {
        support::skip(
            "cargo fuzz is not installed, so the coverage-guided fuzz targets did not run; \
             install it with `cargo install cargo-fuzz --version 0.13.2 --locked`",
        );
        return;
    }
    std::fs::create_dir_all(&target_dir).unwrap();
    // In memory where there is /dev/shm: the config target writes every input to a file, 30
    // times faster there than on a busy disk.
    let shm = Path::new("/dev/shm");
    let scratch = if shm.is_dir() {
        tempfile::Builder::new().prefix("borg-fuzz").tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .unwrap();

    // `cargo fuzz <sub>` on tests/fuzz-targets, in this test's environment less what would
    // change the nested build: its own target directory; RUSTFLAGS as cargo-fuzz sets them
    // (the encoded form would win over them); and none of the variables cargo sets for this
    // test (ring's build script tracks CARGO_MANIFEST_DIR, so with it half the build would be
    // redone whenever this test and a build by hand take turns).
    let cargo_fuzz = |sub: &str| {
        let mut cmd = Command::new(&cargo);
        cmd.args(["fuzz", sub, "--fuzz-dir"])
            .arg(&fuzz_dir)
            .args(["--sanitizer", "none"])
            .current_dir(root);
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("CARGO_PKG_")
                || name.starts_with("CARGO_MANIFEST_")
                || [
                    "CARGO_CRATE_NAME",
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_ENCODED_RUSTFLAGS",
                ]
                .contains(&&*name)
            {
                cmd.env_remove(&*name);
            }
        }
        cmd.env("CARGO_TARGET_DIR", &target_dir)
            // The config target writes each input to a .env file under TMPDIR.
            .env("TMPDIR", scratch.path())
            .stdin(Stdio::null());
        cmd
    };
    let logged = |mut cmd: Command, log: &Path| {
        let out = File::create(log).unwrap();
        cmd.stdout(out.try_clone().unwrap())
            .stderr(out)
            .status()
            .expect("run cargo")
    };
    let tail = |log: &Path, lines: usize| {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    };

    // cargo fuzz has no --locked: check the lock file first, so that a stale one fails here
    // instead of being rewritten.
    let log = scratch.path().join("fetch.log");
    let mut fetch = Command::new(&cargo);
    fetch
        .args(["fetch", "--locked", "--manifest-path"])
        .arg(fuzz_dir.join("Cargo.toml"))
        .current_dir(root);
    let fetch = logged(fetch, &log);
    assert!(
        fetch.success(),
        "tests/fuzz-targets/Cargo.lock is out of date; make it again from the workspace's \
         (`cp Cargo.lock tests/fuzz-targets/ && cargo fetch --manifest-path \
         tests/fuzz-targets/Cargo.toml`) and commit it:\n{}",
        tail(&log, 30)
    );

    let started = Instant::now();
    let log = scratch.path().join("build.log");
    let built = logged(cargo_fuzz("build"), &log);
    assert!(
        built.success(),
        "cargo fuzz build failed:\n{}",
        tail(&log, 60)
    );
    let _ = writeln!(
        std::io::stderr(),
        "cargo fuzz build of tests/fuzz-targets: {:.0} s",
        started.elapsed().as_secs_f64()
    );

    let mut targets: Vec<String> = std::fs::read_dir(fuzz_dir.join("fuzz_targets"))
        .unwrap()
        .filter_map(|entry| {
            let name = entry.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".rs").map(str::to_owned)
        })
        .collect();
    targets.sort();
    assert!(
        targets.len() >= 5,
        "the fuzz targets are missing: {targets:?}"
    );

    let mut failures = Vec::new();
    for target in &targets {
        let corpus = scratch.path().join("corpus").join(target);
        std::fs::create_dir_all(&corpus).unwrap();
        if target == "snapshot" {
            // Valid snapshots as this build writes them, beside the committed ones.
            for (i, bytes) in valid_snapshots().iter().enumerate() {
                std::fs::write(corpus.join(format!("valid-{i}")), bytes).unwrap();
            }
        }
        let artifacts = target_dir.join("artifacts").join(target);
        std::fs::create_dir_all(&artifacts).unwrap();
        let seeds = fuzz_dir.join("seeds").join(target);
        let log = scratch.path().join(format!("{target}.log"));
        let before = SystemTime::now();
        let started = Instant::now();
        let mut run = cargo_fuzz("run");
        run.arg(target)
            .arg(&corpus)
            .arg(&seeds)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            // A single input that takes this long is a hang, reported like a crash.
            .arg("-timeout=10")
            // After cargo fuzz's own prefix (in tests/fuzz-targets), so this one wins.
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .arg("-print_final_stats=1");
        let status = logged(run, &log);
        // cargo fuzz makes an (empty, ignored) artifacts directory beside the targets.
        let _ = std::fs::remove_dir(fuzz_dir.join("artifacts").join(target));
        let _ = std::fs::remove_dir(fuzz_dir.join("artifacts"));
        let report = std::fs::read_to_string(&log).unwrap_or_default();
        let runs = report
            .lines()
            .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
            .and_then(|n| n.trim().parse::<u64>().ok());
        let found = std::fs::read_dir(&corpus).map_or(0, |d| d.count());
        if status.success() {
            let secs = started.elapsed().as_secs_f64();
            let runs = runs.unwrap_or(0);
            // Straight to stderr, past the test harness's capture: CI's log keeps the rates.
            let _ = writeln!(
                std::io::stderr(),
                "fuzz target {target}: {runs} runs in {secs:.0} s ({:.0}/s), corpus of {found}",
                runs as f64 / secs
            );
            continue;
        }
        let inputs: Vec<String> = std::fs::read_dir(&artifacts)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter(|e| {
                e.metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t >= before)
            })
            .map(|e| e.path().display().to_string())
            .collect();
        // libFuzzer's own report ends the log; the panic message is above the backtrace.
        let lines: Vec<&str> = report.lines().collect();
        let panic = lines
            .iter()
            .position(|l| l.contains("panicked at"))
            .map_or(String::new(), |i| {
                lines[i..(i + 2).min(lines.len())].join("\n")
            });
        failures.push(format!(
            "fuzz target {target} failed ({status}); crash input: {}\n{panic}\nreproduce: \
             CARGO_TARGET_DIR=target/fuzz cargo fuzz run --fuzz-dir tests/fuzz-targets -s none \
             {target} <input>\n{}",
            if inputs.is_empty() {
                "none saved".to_owned()
            } else {
                inputs.join(", ")
            },
            tail(&log, 30)
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// Regression tests: crashes the fuzzing finds become named tests here. (None so far: 200,000
// proptest cases per target ran clean when these targets were written, and so did the
// cargo-fuzz targets, 20 s each, when they were.)
