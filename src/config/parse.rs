//! Parsers for single values. Each takes the variable's name (for the error) and its raw,
//! non-empty value.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::PathBuf;

use super::{ConfigError, LogFormat, SandboxKind, SelfUpdate, WatchedRepo};

/// `true/false`, `1/0`, `yes/no`, `on/off`, in any case, surrounding whitespace ignored.
pub(super) fn boolean(var: &'static str, raw: &str) -> Result<bool, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::invalid(var, raw)),
    }
}

/// A decimal whole number in `min..=max`; surrounding whitespace ignored, no sign, no `_`.
pub(super) fn number<T>(var: &'static str, raw: &str, min: T, max: T) -> Result<T, ConfigError>
where
    T: Copy + Into<u64> + TryFrom<u64>,
{
    let digits = raw.trim();
    Some(digits)
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse::<u64>().ok())
        .filter(|n| (min.into()..=max.into()).contains(n))
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| ConfigError::invalid(var, raw))
}

/// A non-empty word without whitespace, of at most `max_chars` characters if given.
pub(super) fn word(
    var: &'static str,
    raw: String,
    max_chars: Option<usize>,
) -> Result<String, ConfigError> {
    let too_long = max_chars.is_some_and(|max| raw.chars().count() > max);
    if raw.is_empty() || raw.chars().any(char::is_whitespace) || too_long {
        return Err(ConfigError::invalid(var, &raw));
    }
    Ok(raw)
}

/// A URL with one of `schemes` and no whitespace; a trailing `/` is dropped.
pub(super) fn url(var: &'static str, raw: String, schemes: &[&str]) -> Result<String, ConfigError> {
    let raw = raw.trim().to_owned();
    let has_scheme = schemes.iter().any(|s| raw.starts_with(s));
    if !has_scheme || raw.chars().any(char::is_whitespace) || raw.ends_with("//") {
        return Err(ConfigError::invalid(var, &raw));
    }
    Ok(raw.trim_end_matches('/').to_owned())
}

/// An IPv4 or IPv6 address, surrounding whitespace ignored.
pub(super) fn ip(var: &'static str, raw: &str) -> Result<IpAddr, ConfigError> {
    raw.trim()
        .parse()
        .map_err(|_| ConfigError::invalid(var, raw))
}

/// `human` or `json`, in any case.
pub(super) fn log_format(var: &'static str, raw: &str) -> Result<LogFormat, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "human" => Ok(LogFormat::Human),
        "json" => Ok(LogFormat::Json),
        _ => Err(ConfigError::invalid(var, raw)),
    }
}

pub(super) fn sandbox(var: &'static str, raw: &str) -> Result<SandboxKind, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "docker" => Ok(SandboxKind::Docker),
        "process" => Ok(SandboxKind::Process),
        _ => Err(ConfigError::invalid(var, raw)),
    }
}

pub(super) fn self_update(var: &'static str, raw: &str) -> Result<SelfUpdate, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "auto" => Ok(SelfUpdate::Auto),
        "true" | "1" | "yes" | "on" => Ok(SelfUpdate::On),
        "false" | "0" | "no" | "off" => Ok(SelfUpdate::Off),
        _ => Err(ConfigError::invalid(var, raw)),
    }
}

pub(super) fn network(var: &'static str, raw: &str) -> Result<String, ConfigError> {
    match raw.trim() {
        n @ ("bridge" | "host" | "none") => Ok(n.to_owned()),
        _ => Err(ConfigError::invalid(var, raw)),
    }
}

/// Comma-separated words without whitespace. Blanks around commas and empty items (as in a
/// trailing comma) are ignored.
pub(super) fn word_list(var: &'static str, raw: &str) -> Result<Vec<String>, ConfigError> {
    let mut words = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if item.chars().any(char::is_whitespace) {
            let problem = format!("{item:?} contains whitespace");
            return Err(ConfigError::invalid_because(var, raw, problem));
        }
        words.push(item.to_owned());
    }
    Ok(words)
}

/// The suffix of a test command that turns auto-merge off for a watched repository.
const MANUAL: &str = "!manual";

/// Fields of a `WATCHED_REPOS` entry: `path:test_cmd:prompt_file:mode:lint_cmd:slug`.
const REPO_FIELDS: usize = 6;

/// `path:test_cmd[!manual]:prompt_file:mode:lint_cmd:slug|...`, every field after `path`
/// optional and blanks around fields ignored. Entries are numbered from 1 in errors.
pub(super) fn watched_repos(var: &'static str, raw: &str) -> Result<Vec<WatchedRepo>, ConfigError> {
    let entries: Vec<&str> = raw.split('|').collect();
    let total = entries.len();
    let mut repos: Vec<WatchedRepo> = Vec::with_capacity(total);
    let mut seen = HashSet::new();
    for (index, entry) in entries.into_iter().enumerate() {
        let n = index + 1;
        let fail = |problem: String| ConfigError::invalid_because(var, raw, problem);
        if entry.trim().is_empty() {
            return Err(fail(format!("entry {n} of {total} is empty")));
        }
        let fields: Vec<&str> = entry.split(':').map(str::trim).collect();
        if fields.len() > REPO_FIELDS {
            return Err(fail(format!(
                "entry {n} of {total} has {} ':'-separated fields, at most {REPO_FIELDS} are allowed",
                fields.len()
            )));
        }
        let path = fields[0];
        if path.is_empty() {
            return Err(fail(format!("entry {n} of {total} has an empty path")));
        }
        if !seen.insert(path) {
            return Err(fail(format!(
                "entry {n} of {total} repeats the path {path:?}"
            )));
        }
        let field = |i: usize| {
            fields
                .get(i)
                .filter(|f| !f.is_empty())
                .map(|f| (*f).to_owned())
        };
        let cmd = fields.get(1).copied().unwrap_or("");
        let (cmd, auto_merge) = match cmd.strip_suffix(MANUAL) {
            Some(rest) => (rest.trim_end(), false),
            None => (cmd, true),
        };
        repos.push(WatchedRepo {
            path: PathBuf::from(path),
            test_cmd: (!cmd.is_empty()).then(|| cmd.to_owned()),
            auto_merge,
            prompt_file: field(2),
            mode: field(3),
            lint_cmd: field(4),
            slug: field(5),
        });
    }
    Ok(repos)
}
