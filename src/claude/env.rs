//! The environment a claude run gets: nothing of borg's own, only an allow-list.
//!
//! The original borg handed agents its full environment, chat tokens included (anchor notes
//! §4.1, "the full host environment inherited by agents"). Here the child starts from an
//! empty environment (`env_clear`) and receives exactly:
//!
//! 1. [`BASE_VARS`] from borg's environment (harmless, needed by tools and locales);
//! 2. [`MODEL_ACCESS_VARS`] from borg's environment, unless
//!    [`ClaudeConfig::inherit_model_access`] is off (tests turn it off to be hermetic);
//! 3. [`FIXED_VARS`];
//! 4. `IS_SANDBOX=1` when [`ClaudeConfig::dangerously_skip_permissions`] is on;
//! 5. [`ClaudeConfig::extra_env`], which overrides all of the above;
//! 6. `HOME`, the run's own, which nothing overrides (`--resume` depends on it);
//! 7. [`RUN_MARKER_VAR`], set by the runner per run, by which
//!    [`super::process::RunProcesses`] finds the run's processes to kill them.
//!
//! A run inside a container ([`container_env`]) gets the same list minus [`HOST_ONLY_VARS`]
//! (the image has its own `PATH`) and without the marker (the container's end kills all of
//! its processes).
//!
//! This module is the one place that list is written down.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

use super::settings::ClaudeConfig;

/// Copied from borg's environment into every run when set.
pub const BASE_VARS: &[&str] = &["PATH", "LANG", "LC_ALL", "TERM", "TZ"];

/// What claude needs to reach its model, copied when set and
/// [`ClaudeConfig::inherit_model_access`] is on. Proxies in both spellings, since tools
/// differ in which they read.
pub const MODEL_ACCESS_VARS: &[&str] = &[
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_AUTH_TOKEN",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
];

/// Set on every run: an unattended agent must not update itself or phone home for
/// telemetry, feedback surveys and the like.
pub const FIXED_VARS: &[(&str, &str)] = &[
    ("DISABLE_AUTOUPDATER", "1"),
    ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
];

/// Marks every process of one run: children inherit it, also those that leave claude's
/// process group. Its value is unique per run ([`super::process::RunProcesses::new_marker`]).
pub const RUN_MARKER_VAR: &str = "BORG_CLAUDE_RUN";

/// Variables that describe the host rather than the run: a container keeps its image's.
pub const HOST_ONLY_VARS: &[&str] = &["PATH"];

/// The complete environment of a run. `lookup` reads borg's own environment (a parameter so
/// tests can feed a fake one).
pub fn child_env(
    config: &ClaudeConfig,
    home: &Path,
    lookup: impl Fn(&str) -> Option<OsString>,
) -> BTreeMap<OsString, OsString> {
    let mut env = BTreeMap::new();
    let mut inherit = |names: &[&str]| {
        for name in names {
            if let Some(value) = lookup(name) {
                env.insert(OsString::from(name), value);
            }
        }
    };
    inherit(BASE_VARS);
    if config.inherit_model_access {
        inherit(MODEL_ACCESS_VARS);
    }
    for (name, value) in FIXED_VARS {
        env.insert(name.into(), value.into());
    }
    if config.dangerously_skip_permissions {
        // As root the CLI refuses --dangerously-skip-permissions unless told it is sandboxed.
        env.insert("IS_SANDBOX".into(), "1".into());
    }
    for (name, value) in &config.extra_env {
        env.insert(name.into(), value.into());
    }
    env.insert("HOME".into(), home.as_os_str().to_owned());
    env
}

/// The environment of a run inside a container, as the Engine API takes it (`NAME=value`):
/// [`child_env`] with `HOME` = `home` (where the run's home is mounted), minus
/// [`HOST_ONLY_VARS`]. A value that is not UTF-8 cannot be passed and is left out, loudly.
pub fn container_env(
    config: &ClaudeConfig,
    home: &str,
    lookup: impl Fn(&str) -> Option<OsString>,
) -> Vec<String> {
    child_env(config, Path::new(home), lookup)
        .into_iter()
        .filter(|(name, _)| !HOST_ONLY_VARS.iter().any(|h| name == h))
        .filter_map(|(name, value)| match (name.to_str(), value.to_str()) {
            (Some(name), Some(value)) => Some(format!("{name}={value}")),
            _ => {
                tracing::warn!(
                    ?name,
                    "an environment variable that is not UTF-8 was left out"
                );
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has(env: &BTreeMap<OsString, OsString>, name: &str) -> bool {
        env.contains_key(&OsString::from(name))
    }

    /// A daemon environment with secrets of borg's own next to what claude may have.
    fn borg_env(name: &str) -> Option<OsString> {
        let set = [
            "TELEGRAM_BOT_TOKEN",
            "DISCORD_TOKEN",
            "ANTHROPIC_API_KEY",
            "PATH",
            "HTTPS_PROXY",
        ];
        set.contains(&name)
            .then(|| OsString::from(format!("value-of-{name}")))
    }

    #[test]
    fn borg_secrets_never_reach_the_child() {
        let config = ClaudeConfig {
            extra_env: vec![("HOME".into(), "/elsewhere".into())],
            ..ClaudeConfig::default()
        };
        let env = child_env(&config, Path::new("/h"), borg_env);
        assert!(!has(&env, "TELEGRAM_BOT_TOKEN") && !has(&env, "DISCORD_TOKEN"));
        assert!(has(&env, "ANTHROPIC_API_KEY") && has(&env, "HTTPS_PROXY") && has(&env, "PATH"));
        assert_eq!(
            env[&OsString::from("HOME")],
            "/h",
            "HOME is the run's, whatever extra_env says"
        );
        assert_eq!(env[&OsString::from("DISABLE_AUTOUPDATER")], "1");
        assert!(
            !has(&env, "IS_SANDBOX"),
            "only with dangerously_skip_permissions"
        );
    }

    #[test]
    fn model_access_can_be_withheld_and_sandbox_declared() {
        let config = ClaudeConfig {
            inherit_model_access: false,
            dangerously_skip_permissions: true,
            ..ClaudeConfig::default()
        };
        let env = child_env(&config, Path::new("/h"), borg_env);
        assert!(!has(&env, "ANTHROPIC_API_KEY") && !has(&env, "HTTPS_PROXY") && has(&env, "PATH"));
        assert_eq!(env[&OsString::from("IS_SANDBOX")], "1");
    }

    #[test]
    fn a_container_gets_the_allow_list_without_the_hosts_path() {
        let env = container_env(&ClaudeConfig::default(), "/home/agent", borg_env);
        assert!(env.contains(&"HOME=/home/agent".to_owned()));
        assert!(env.contains(&"ANTHROPIC_API_KEY=value-of-ANTHROPIC_API_KEY".to_owned()));
        assert!(env.iter().all(|e| !e.starts_with("PATH=")), "{env:?}");
        assert!(
            env.iter().all(|e| !e.starts_with("TELEGRAM_BOT_TOKEN=")),
            "{env:?}"
        );
    }
}
