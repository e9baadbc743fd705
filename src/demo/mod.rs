//! `borg demo`'s material: the sample repository a newcomer's first task runs on, and the
//! script the scripted model ([`crate::model::ScriptedModel`]) follows in place of Claude.
//!
//! The contract with the pipeline's prompts, which the script relies on: each agent run's
//! prompt or appended system prompt contains a line `Phase: <name>` (`spec`, `qa`, `impl`)
//! and the task title, and the spec phase's a line `Spec file: <path>` (absolute, or relative
//! to the worktree). The demo task is [`DEMO_TASK_TITLE`] on the repository from
//! [`create_sample_repo`], tested with [`SAMPLE_TEST_COMMAND`]:
//!
//! - spec: writes the spec file;
//! - qa: writes `tests/greet_test.sh`, red until `greet.sh` exists and greets correctly;
//! - impl: writes `greet.sh`, after which `sh test.sh` is green.

mod run;
mod sample_repo;
mod script;

pub use run::run;
pub use sample_repo::{SAMPLE_REPO_DIR, SAMPLE_TEST_COMMAND, SampleRepoError, create_sample_repo};
pub use script::{DEMO_TASK_DESCRIPTION, DEMO_TASK_TITLE, demo_script};

#[cfg(test)]
mod tests;
