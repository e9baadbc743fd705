//! The scripted model's part in `borg demo`: one rule per pipeline phase of the demo task,
//! keyed on the `Phase: <name>` line and the task title that the pipeline's prompts carry.
//! Each rule writes what that phase must leave behind with the real `Write` tool, and its
//! answer says plainly that it is scripted.

use serde_json::json;

use crate::model::{PHASE_LINE, Rule, Script, ToolCall};

/// The demo task's title, which every rule also requires, so the script answers only the
/// demo task.
pub const DEMO_TASK_TITLE: &str = "Add a greeting script";
/// The demo task's description, as a user would type it.
pub const DEMO_TASK_DESCRIPTION: &str = "Add greet.sh: `sh greet.sh NAME` prints `Hello, NAME!`, \
     and with no name it greets the world.";

/// Starts every scripted answer, so no one mistakes the demo for a real model's work.
const LABEL: &str = "[scripted model: borg demo, no AI involved]";

const SPEC_MD: &str = "# Spec: Add a greeting script

_Written by borg's scripted demo model, not by an AI._

## Requirements
- A POSIX shell script `greet.sh` at the repository root.
- `sh greet.sh NAME` prints `Hello, NAME!`.
- `sh greet.sh` with no argument prints `Hello, world!`.
- Only `sh` and coreutils: the tests may run in a bare Debian container.

## Files
- `greet.sh` (new): the script.
- `tests/greet_test.sh` (new): its acceptance test, which `sh test.sh` runs.

## Acceptance criteria
- `tests/greet_test.sh` fails before `greet.sh` exists.
- `sh test.sh` passes once `greet.sh` is in place.
";

/// Red until `greet.sh` exists and greets as the spec says. Run by `test.sh` from the
/// repository root.
const GREET_TEST_SH: &str = r#"#!/bin/sh
# Written by borg's scripted demo model (QA phase): the acceptance test of greet.sh.
[ -f greet.sh ] || { echo "greet.sh does not exist yet"; exit 1; }
out=$(sh greet.sh Ada) || exit 1
[ "$out" = "Hello, Ada!" ] || { echo "expected 'Hello, Ada!', got '$out'"; exit 1; }
out=$(sh greet.sh) || exit 1
[ "$out" = "Hello, world!" ] || { echo "expected 'Hello, world!', got '$out'"; exit 1; }
"#;

const GREET_SH: &str = r#"#!/bin/sh
# Written by borg's scripted demo model (impl phase): greets the name given, or the world.
echo "Hello, ${1:-world}!"
"#;

/// The rules for the demo task's spec, qa and impl phases.
pub fn demo_script() -> Script {
    let rule = |phase: &str, file_path: &str, content: &str, say: &str| Rule {
        name: format!("demo {phase}"),
        when: vec![format!("{PHASE_LINE} {phase}"), DEMO_TASK_TITLE.to_owned()],
        tool_calls: vec![ToolCall {
            tool: "Write".to_owned(),
            input: json!({"file_path": file_path, "content": content}),
        }],
        say: format!("{LABEL} {say}"),
    };
    Script {
        rules: vec![
            rule(
                "spec",
                "{spec_file}",
                SPEC_MD,
                "Wrote the spec to {spec_file}: greet.sh greets by name, or the world.",
            ),
            rule(
                "qa",
                "{cwd}/tests/greet_test.sh",
                GREET_TEST_SH,
                "Wrote tests/greet_test.sh; it fails until greet.sh exists.",
            ),
            rule(
                "impl",
                "{cwd}/greet.sh",
                GREET_SH,
                "Wrote greet.sh; `sh test.sh` should pass now.",
            ),
        ],
    }
}
