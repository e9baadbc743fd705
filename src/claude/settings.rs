//! How borg starts `claude`: one configuration per daemon.

use std::path::PathBuf;

/// How borg starts claude; one per daemon.
#[derive(Debug, Clone)]
pub struct ClaudeConfig {
    /// The executable: a path, or a bare name looked up on the child's `PATH`.
    pub bin: PathBuf,
    /// Set in the child's environment after everything else except `HOME` (see
    /// [`super::env`]); e.g. `CLAUDE_CODE_MAX_RETRIES`.
    pub extra_env: Vec<(String, String)>,
    /// Copy [`super::env::MODEL_ACCESS_VARS`] (API key, base URL, proxies) from borg's own
    /// environment. Off in tests, which pass a fake API through `extra_env` instead.
    pub inherit_model_access: bool,
    /// Pass `--dangerously-skip-permissions` (and `IS_SANDBOX=1`): only for runs that are
    /// sandboxed by other means, because every tool then runs unasked.
    pub dangerously_skip_permissions: bool,
}

impl Default for ClaudeConfig {
    fn default() -> Self {
        Self {
            bin: PathBuf::from("claude"),
            extra_env: Vec::new(),
            inherit_model_access: true,
            dangerously_skip_permissions: false,
        }
    }
}
