//! Reading `.env` into a map, without touching the process environment.
//!
//! The file is read in dotenv syntax by `dotenvy`. The original borg read `.env` with
//! simpler rules under which `PIPELINE_TEST_CMD=zig build test` (unquoted, with spaces) is
//! fine, while dotenv syntax rejects it. So that such files keep working unchanged, a file
//! dotenv syntax rejects is read again with the original rules ([`read_classic`]).

use std::collections::HashMap;
use std::path::Path;

use super::ConfigError;

/// The variables defined in the `.env` file at `path`; empty if there is no such file.
///
/// In dotenv syntax, as with `dotenvy::dotenv()`: the first definition of a name wins,
/// quotes, escapes and `export` prefixes are understood, and `$NAME` / `${NAME}` in
/// unquoted or double-quoted values are substituted from the process environment or
/// earlier lines.
pub(super) fn read(path: &Path) -> Result<HashMap<String, String>, ConfigError> {
    let lines = match dotenvy::from_path_iter(path) {
        Ok(lines) => lines,
        Err(e) if e.not_found() => return Ok(HashMap::new()),
        Err(e) => return Err(io_error(path, e)),
    };
    let mut vars = HashMap::new();
    for item in lines {
        match item {
            Ok((name, value)) => {
                vars.entry(name).or_insert(value);
            }
            Err(dotenvy::Error::LineParse(..)) => return read_classic(path),
            Err(e) => return Err(io_error(path, e)),
        }
    }
    Ok(vars)
}

/// Reads `path` with the original borg's rules: one `NAME=value` per line (`export`
/// allowed), blank lines and lines starting with `#` ignored, the value taken literally
/// after trimming surrounding blanks and one pair of matching quotes, first definition
/// wins. A line that breaks these rules is an error naming its number and variable, but
/// not its value, which may be a secret.
fn read_classic(path: &Path) -> Result<HashMap<String, String>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| env_file_error(path, format!("cannot read it: {e}")))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut vars = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let n = index + 1;
        let Some((name, value)) = line.split_once('=') else {
            let problem = format!("line {n} is not of the form NAME=value");
            return Err(env_file_error(path, problem));
        };
        let name = name.trim();
        let name = name.strip_prefix("export ").map_or(name, str::trim_start);
        if !is_name(name) {
            let problem = format!(
                "line {n} does not start with a variable name \
                 (letters, digits and '_', not starting with a digit) and '='"
            );
            return Err(env_file_error(path, problem));
        }
        let Some(value) = unquote(value.trim()) else {
            let problem = format!("line {n} ({name}=...) opens a quote that it does not close");
            return Err(env_file_error(path, problem));
        };
        vars.entry(name.to_owned())
            .or_insert_with(|| value.to_owned());
    }
    Ok(vars)
}

/// `value` without one pair of matching surrounding quotes; `None` if it starts with a
/// quote that does not also end it.
fn unquote(value: &str) -> Option<&str> {
    match value.chars().next() {
        Some(quote @ ('"' | '\'')) => value.strip_prefix(quote)?.strip_suffix(quote),
        _ => Some(value),
    }
}

/// Whether `name` can be a variable name (the names dotenv syntax accepts).
fn is_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// A [`ConfigError::EnvFile`] for an error of `dotenvy` other than a parse error.
fn io_error(path: &Path, e: dotenvy::Error) -> ConfigError {
    let problem = match e {
        dotenvy::Error::Io(io) => format!("cannot read it: {io}"),
        other => other.to_string(),
    };
    env_file_error(path, problem)
}

fn env_file_error(path: &Path, problem: String) -> ConfigError {
    ConfigError::EnvFile {
        path: path.to_owned(),
        problem,
    }
}
