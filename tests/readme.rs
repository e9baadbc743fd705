//! The README's configuration table is documentation users rely on: it must list every
//! variable borg reads, with the default the code actually uses.

use borg::config::VARIABLES;

#[test]
fn readme_lists_every_variable_with_its_default() {
    let readme = include_str!("../README.md");
    for var in VARIABLES {
        let row = format!("| `{}` | `{}` |", var.name, var.default);
        assert!(
            readme.contains(&row),
            "README.md lacks the row starting {row}"
        );
    }
}

#[test]
fn readme_gives_the_test_command_ci_runs() {
    let readme = include_str!("../README.md");
    let ci = include_str!("../.ci/run");
    assert!(readme.lines().any(|l| l.starts_with("cargo test ")));
    assert!(ci.contains("grep -m1 '^cargo test ' README.md"));
}
