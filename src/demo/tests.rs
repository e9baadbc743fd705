//! The sample repository and the demo script without the CLI: the repository is a real git
//! repository whose test command is green, and the files the script's rules write turn it
//! red (qa) and then green again (impl). `tests/model.rs` plays the same script through the
//! real `claude` CLI.

use std::path::Path;
use std::process::Command;

use super::*;
use crate::model::Placeholders;
use crate::model::Script;

fn run(repo: &Path, program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .current_dir(repo)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text.into_owned())
}

fn test_command(repo: &Path) -> (bool, String) {
    let (program, args) = SAMPLE_TEST_COMMAND.split_once(' ').unwrap();
    run(repo, program, &[args])
}

/// Plays the one Write of the rule for `phase` as the CLI would, in `repo`.
fn write_phase(script: &Script, phase: &str, repo: &Path) {
    let rule = script
        .rules
        .iter()
        .find(|r| r.when.iter().any(|w| w == &format!("Phase: {phase}")))
        .unwrap_or_else(|| panic!("no rule for phase {phase}"));
    assert!(rule.when.iter().any(|w| w == DEMO_TASK_TITLE));
    let values = Placeholders {
        cwd: Some(repo.display().to_string()),
        spec_file: Some(repo.join(".borg/task-1/spec.md").display().to_string()),
    };
    assert_eq!(rule.tool_calls.len(), 1);
    let input = values.fill_json(&rule.tool_calls[0].input).unwrap();
    let path = Path::new(input["file_path"].as_str().unwrap());
    assert!(path.starts_with(repo), "{path:?} is inside the worktree");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, input["content"].as_str().unwrap()).unwrap();
    assert!(rule.say.contains("scripted model"), "{}", rule.say);
}

#[test]
fn the_sample_is_a_git_repository_on_main_with_one_commit_and_green_tests() {
    let dir = tempfile::tempdir().unwrap();
    let repo = create_sample_repo(dir.path()).unwrap();
    assert_eq!(repo, dir.path().join(SAMPLE_REPO_DIR));
    let (ok, branch) = run(&repo, "git", &["rev-parse", "--abbrev-ref", "HEAD"]);
    assert!(ok && branch.trim() == "main", "{branch}");
    let (ok, count) = run(&repo, "git", &["rev-list", "--count", "HEAD"]);
    assert!(ok && count.trim() == "1", "{count}");
    let (ok, status) = run(&repo, "git", &["status", "--porcelain"]);
    assert!(ok && status.is_empty(), "everything committed: {status}");
    let (ok, out) = test_command(&repo);
    assert!(ok, "{out}");
    assert!(out.contains("1 tests, 0 failed"), "{out}");
}

#[test]
fn an_existing_sample_is_refused_not_touched() {
    let dir = tempfile::tempdir().unwrap();
    let existing = dir.path().join(SAMPLE_REPO_DIR);
    std::fs::create_dir_all(&existing).unwrap();
    std::fs::write(existing.join("mine.txt"), "keep").unwrap();
    let err = create_sample_repo(dir.path()).unwrap_err().to_string();
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(
        std::fs::read_to_string(existing.join("mine.txt")).unwrap(),
        "keep"
    );
}

#[test]
fn the_demo_script_turns_the_tests_red_at_qa_and_green_at_impl() {
    let dir = tempfile::tempdir().unwrap();
    let repo = create_sample_repo(dir.path()).unwrap();
    let script = demo_script();
    // It survives the trip through JSON, as `borg demo` or a test may load it from a file.
    assert_eq!(Script::from_json(&script.to_json()).unwrap(), script);

    write_phase(&script, "spec", &repo);
    let spec = std::fs::read_to_string(repo.join(".borg/task-1/spec.md")).unwrap();
    assert!(
        spec.contains("greet.sh") && spec.contains("scripted"),
        "{spec}"
    );
    assert!(test_command(&repo).0, "the spec changes no test");

    write_phase(&script, "qa", &repo);
    let (ok, out) = test_command(&repo);
    assert!(!ok, "red before the implementation: {out}");
    assert!(out.contains("FAIL tests/greet_test.sh"), "{out}");
    assert!(out.contains("greet.sh does not exist yet"), "{out}");

    write_phase(&script, "impl", &repo);
    let (ok, out) = test_command(&repo);
    assert!(ok, "green after it: {out}");
    assert!(out.contains("2 tests, 0 failed"), "{out}");
}
