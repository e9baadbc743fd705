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

#[path = "support/cargo_fuzz.rs"]
mod cargo_fuzz;

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

/// The cargo-fuzz targets in `tests/fuzz-targets/`, each run for `FUZZ_SECONDS` (20 by
/// default) from its committed seeds (see `support/cargo_fuzz.rs`). A crash fails this test
/// with its input's path, the target's name and libFuzzer's report.
#[test]
fn coverage_guided_fuzz_targets_run_clean() {
    use std::io::Write;
    use std::time::Instant;

    let seconds: u64 = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
        .max(1); // libFuzzer reads 0 as "no limit"
    let Some(fuzz) = cargo_fuzz::CargoFuzz::new() else {
        support::skip(
            "cargo fuzz is not installed, so the coverage-guided fuzz targets did not run; \
             install it with `cargo install cargo-fuzz --version 0.13.2 --locked`",
        );
        return;
    };
    if let Err(log) = fuzz.check_lock() {
        panic!(
            "tests/fuzz-targets/Cargo.lock is out of date; make it again from the workspace's \
             (`cp Cargo.lock tests/fuzz-targets/ && cargo fetch --manifest-path \
             tests/fuzz-targets/Cargo.toml`) and commit it:\n{log}"
        );
    }
    let started = Instant::now();
    if let Err(log) = fuzz.build() {
        panic!("cargo fuzz build failed:\n{log}");
    }
    let _ = writeln!(
        std::io::stderr(),
        "cargo fuzz build of tests/fuzz-targets: {:.0} s",
        started.elapsed().as_secs_f64()
    );

    let targets = fuzz.targets();
    assert!(
        targets.len() >= 5,
        "the fuzz targets are missing: {targets:?}"
    );
    let mut failures = Vec::new();
    for target in &targets {
        // Valid snapshots as this build writes them, beside the committed ones.
        let extra = if target == "snapshot" {
            valid_snapshots()
        } else {
            Vec::new()
        };
        match fuzz.run(target, seconds, &extra) {
            // Straight to stderr, past the test harness's capture: CI's log keeps the rates.
            Ok(ran) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "fuzz target {target}: {} runs in {:.0} s ({:.0}/s), corpus of {}",
                    ran.runs,
                    ran.secs,
                    ran.runs as f64 / ran.secs,
                    ran.corpus
                );
            }
            Err(failure) => failures.push(failure),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// Regression tests: crashes the fuzzing finds become named tests here. (None so far: 200,000
// proptest cases per target ran clean when these targets were written, and so did the
// cargo-fuzz targets, 20 s each, when they were.)
