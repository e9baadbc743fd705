//! What the seeding agent is asked and how its answer is checked: the [`Mode`]s it rotates
//! through, the [`prompt`], the strict [`parse`]r of its answer and the [`similar`]ity test
//! that keeps it from proposing a task twice.
//!
//! The answer is read by a program, so the format is strict: exactly one JSON object, either
//! the whole text or inside one ```` ```json ```` block, of the form
//! `{"tasks":[{"title":"…","description":"…"}]}`, no other keys, at most [`MAX_PROPOSALS`]
//! tasks, each title one line of 8 to 100 characters, each description 20 to 2000. Anything
//! else is refused whole with the reason: a half-understood answer creates nothing.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;

use super::json::{self, Json, fields};

/// What a seeding run looks for. Runs rotate through [`Mode::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Refactoring,
    BugAudit,
    TestCoverage,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Refactoring, Mode::BugAudit, Mode::TestCoverage];

    /// The mode of run number `index` (wrapping).
    pub fn nth(index: usize) -> Mode {
        Self::ALL[index % Self::ALL.len()]
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Refactoring => "refactoring",
            Mode::BugAudit => "bug-audit",
            Mode::TestCoverage => "test-coverage",
        }
    }

    fn focus(self) -> &'static str {
        match self {
            Mode::Refactoring => {
                "code quality: duplicated logic, functions or files that do too much, unclear \
                 names, dead code, needless complexity"
            }
            Mode::BugAudit => {
                "bugs: security holes (injection, path traversal, secrets in logs), races, \
                 resource leaks, unchecked errors, wrong edge-case behaviour"
            }
            Mode::TestCoverage => {
                "tests: important code paths with no test, error paths, edge cases (empty, \
                 huge, malformed input), behaviour that could break unnoticed"
            }
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

pub const MAX_PROPOSALS: usize = 5;
const TITLE_CHARS: RangeInclusive<usize> = 8..=100;
const DESCRIPTION_CHARS: RangeInclusive<usize> = 20..=2000;

/// Given with `--append-system-prompt`.
pub const SYSTEM_PROMPT: &str = "You are the Manager of an engineering team, reviewing a \
    repository to plan its next small tasks. You only read: you must not create, change or \
    delete any file, and you run only commands that change nothing. Your final answer is \
    read by a program and must follow the requested format exactly.";

/// The seeding prompt. Starts with `Phase: seed` and `Mode: <mode>` lines; `existing` are
/// titles of tasks the repository has or had, which the agent must not propose again.
pub fn prompt(mode: Mode, existing: &[String]) -> String {
    let existing = if existing.is_empty() {
        "(none)".to_owned()
    } else {
        existing
            .iter()
            .map(|t| format!("- {t}\n"))
            .collect::<String>()
    };
    format!(
        "Phase: seed\nMode: {mode}\n\nReview the repository in your working directory and \
         propose up to {MAX_PROPOSALS} small, independent tasks that improve it. This round's \
         focus is {focus}.\n\nRead the code with Read, Glob and Grep; use Bash only for \
         commands that change nothing (such as `git log` or `ls`). Do not change any file.\n\n\
         Each task must be small enough to finish in a few hours and have an outcome that \
         tests can check. Propose nothing rather than something vague or speculative: an \
         empty list is a good answer.\n\nThese tasks exist or existed already; do not propose \
         them or anything similar:\n{existing}\nAnswer with exactly one JSON object, alone or \
         in a single ```json block, and no other JSON:\n\
         {{\"tasks\":[{{\"title\":\"...\",\"description\":\"...\"}}]}}\n\
         - \"tasks\": 0 to {MAX_PROPOSALS} entries; no other keys anywhere.\n\
         - \"title\": one line of 8 to 100 characters saying what to do.\n\
         - \"description\": 20 to 2000 characters: the files concerned, what is wrong and \
         what done looks like.\nAn answer in any other form is discarded.",
        focus = mode.focus(),
    )
}

/// One task the agent proposes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    pub title: String,
    pub description: String,
}

/// The proposals of an answer, or why the answer is malformed.
pub fn parse(text: &str) -> Result<Vec<Proposal>, String> {
    let value = json::read(extract(text)?)?;
    let [tasks] = fields(value, ["tasks"], "the answer")?;
    let Json::Arr(tasks) = tasks else {
        return Err("\"tasks\" must be an array".into());
    };
    if tasks.len() > MAX_PROPOSALS {
        return Err(format!(
            "{} tasks proposed; at most {MAX_PROPOSALS} are allowed",
            tasks.len()
        ));
    }
    let mut out = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        let at = format!("task {}", i + 1);
        let [title, description] = fields(task, ["title", "description"], &at)?;
        let (Json::Str(title), Json::Str(description)) = (title, description) else {
            return Err(format!("{at}: the title and description must be strings"));
        };
        let (title, description) = (title.trim().to_owned(), description.trim().to_owned());
        check_len(&at, "title", &title, TITLE_CHARS)?;
        if title.contains(['\n', '\r']) {
            return Err(format!("{at}: the title must be one line"));
        }
        check_len(&at, "description", &description, DESCRIPTION_CHARS)?;
        out.push(Proposal { title, description });
    }
    Ok(out)
}

/// The JSON text: the whole answer when it is an object, else the one ```json block.
fn extract(text: &str) -> Result<&str, String> {
    let text = text.trim();
    if text.starts_with('{') {
        return Ok(text);
    }
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("```json") {
        let body = &rest[open + "```json".len()..];
        let close = body.find("```").ok_or("a ```json block is not closed")?;
        blocks.push(body[..close].trim());
        rest = &body[close + 3..];
    }
    match blocks.as_slice() {
        [one] => Ok(one),
        [] => {
            Err("no JSON object: the answer must be the object alone or in a ```json block".into())
        }
        many => Err(format!(
            "{} ```json blocks; exactly one is allowed",
            many.len()
        )),
    }
}

fn check_len(
    at: &str,
    what: &str,
    text: &str,
    allowed: RangeInclusive<usize>,
) -> Result<(), String> {
    let n = text.chars().count();
    if allowed.contains(&n) {
        return Ok(());
    }
    Err(format!(
        "{at}: the {what} is {n} characters long; {} to {} are allowed",
        allowed.start(),
        allowed.end()
    ))
}

/// The words of a title that carry meaning: lowercase alphanumeric runs longer than 2.
fn words(title: &str) -> BTreeSet<String> {
    normalized(title)
        .split(' ')
        .filter(|w| w.chars().count() > 2)
        .map(str::to_owned)
        .collect()
}

/// A title as lowercase alphanumeric runs separated by single spaces.
fn normalized(title: &str) -> String {
    let lower = title.to_lowercase();
    let runs = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty());
    runs.collect::<Vec<_>>().join(" ")
}

/// Whether two task titles say the same thing: equal once normalized, or sharing at least
/// 60 % of their meaningful words (Jaccard index).
pub fn similar(a: &str, b: &str) -> bool {
    if normalized(a) == normalized(b) {
        return true;
    }
    let (a, b) = (words(a), words(b));
    let union = a.union(&b).count();
    union > 0 && a.intersection(&b).count() * 5 >= union * 3
}

#[cfg(test)]
mod tests {
    use super::*;

    const DESC: &str = "In src/lib.rs the loop repeats itself; make it one function.";

    fn answer(tasks: &[(&str, &str)]) -> String {
        let tasks: Vec<String> = tasks
            .iter()
            .map(|(t, d)| format!("{{\"title\": \"{t}\", \"description\": \"{d}\"}}"))
            .collect();
        format!("{{\"tasks\": [{}]}}", tasks.join(", "))
    }

    #[test]
    fn reads_the_object_alone_or_in_one_json_block() {
        let json = answer(&[("Merge the two config loaders", DESC)]);
        let want = vec![Proposal {
            title: "Merge the two config loaders".into(),
            description: DESC.into(),
        }];
        assert_eq!(parse(&format!("  {json}\n")), Ok(want.clone()));
        let fenced = format!("I looked around.\n```json\n{json}\n```\nThat is all.");
        assert_eq!(parse(&fenced), Ok(want));
        assert_eq!(parse("{\"tasks\": []}"), Ok(vec![]));
    }

    #[test]
    fn reads_escapes() {
        let json = r#"{"tasks":[{"title":"Fix caf\u00e9 \"menu\"","description":"Line one\nline two, \ud83d\ude00 ok"}]}"#;
        let tasks = parse(json).unwrap();
        assert_eq!(tasks[0].title, "Fix café \"menu\"");
        assert_eq!(tasks[0].description, "Line one\nline two, 😀 ok");
    }

    #[test]
    fn refuses_anything_else_with_the_reason() {
        let long = "x".repeat(101);
        let six = vec![("Merge the two config loaders", DESC); 6];
        let cases: Vec<(String, &str)> = vec![
            ("Looks fine to me.".into(), "no JSON object"),
            ("{\"tasks\": [], \"note\": \"hi\"}".into(), "unknown key \"note\""),
            (
                r#"{"tasks":[{"title":"Merge the loaders","description":"twenty characters or more","priority":"high"}]}"#.into(),
                "task 1: unknown key \"priority\"",
            ),
            (answer(&[(&long, DESC)]), "title is 101 characters long"),
            (answer(&[("Short", DESC)]), "title is 5 characters long"),
            (answer(&[("Two\\nlines here", DESC)]), "one line"),
            (answer(&[("Merge the two loaders", "too short")]), "description is 9"),
            (answer(&six), "6 tasks proposed"),
            ("```json\n{}\n```\n```json\n{}\n```".into(), "2 ```json blocks"),
            ("{\"tasks\": []} and more".into(), "text after the JSON object"),
            ("{\"tasks\": [], \"tasks\": []}".into(), "repeats a key"),
            ("{\"tasks\": 3}".into(), "invalid JSON: `3`"),
            ("{\"tasks\": [\"a\"]}".into(), "task 1 must be a JSON object"),
            ("{\"tasks\": [".into(), "the text ends"),
            ("{}".into(), "the key \"tasks\" is missing"),
        ];
        for (text, why) in cases {
            let err = parse(&text).expect_err(&text);
            assert!(err.contains(why), "{text:?}: {err:?} should say {why:?}");
        }
    }

    #[test]
    fn similar_titles_share_most_words_or_normalize_alike() {
        assert!(similar("Add tests for the parser", "add parser tests"));
        assert!(similar("Fix: a b", "fix a-b"));
        assert!(similar(
            "Remove dead code in slots.rs",
            "Remove dead code in slots"
        ));
        assert!(!similar(
            "Fix the race in slot release",
            "Add tests for the config loader"
        ));
        // 4 shared words of 8: below 60 %.
        assert!(!similar(
            "Add tests for the config loader",
            "Add tests for the chat router"
        ));
    }

    #[test]
    fn modes_rotate_and_head_the_prompt() {
        let names: Vec<&str> = (0..4).map(|i| Mode::nth(i).name()).collect();
        assert_eq!(
            names,
            ["refactoring", "bug-audit", "test-coverage", "refactoring"]
        );
        let text = prompt(Mode::BugAudit, &["Fix the slot leak".into()]);
        assert!(text.starts_with("Phase: seed\nMode: bug-audit\n"), "{text}");
        assert!(text.contains("- Fix the slot leak\n") && text.contains("races"));
        assert!(prompt(Mode::Refactoring, &[]).contains("(none)"));
    }
}
