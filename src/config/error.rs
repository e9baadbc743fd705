//! [`ConfigError`]: why the configuration could not be loaded, worded for the person
//! editing `.env`.

use std::fmt;
use std::path::PathBuf;

use super::vars::doc;

/// A configuration problem. `borg` prints its `Display` and exits with
/// [`exit_code`](ConfigError::exit_code).
///
/// Messages never contain the value of a secret: tokens are not validated, and a malformed
/// `.env` line is reported by line number and variable name only.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A variable has a value borg cannot use.
    Invalid {
        /// The variable's name.
        var: &'static str,
        /// The value as given.
        value: String,
        /// What exactly is wrong, when "not one of the allowed values" is not enough.
        problem: Option<String>,
        /// The allowed values (the variable's [`VarDoc::allowed`](super::VarDoc::allowed)).
        expected: &'static str,
    },
    /// A variable that another setting makes mandatory is unset or empty.
    Missing {
        /// The variable's name.
        var: &'static str,
        /// Which setting requires it, e.g. `required when DISCORD_ENABLED=true`.
        reason: &'static str,
    },
    /// A variable in the process environment is not valid UTF-8.
    NotUnicode {
        /// The variable's name.
        var: &'static str,
    },
    /// The `.env` file exists but cannot be read or parsed.
    EnvFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it, including the line number when known.
        problem: String,
    },
}

impl ConfigError {
    /// `var` has `value`, which is not one of its allowed values.
    pub(super) fn invalid(var: &'static str, value: &str) -> Self {
        ConfigError::Invalid {
            var,
            value: value.to_owned(),
            problem: None,
            expected: doc(var).allowed,
        }
    }

    /// `var` has `value`, and `problem` says what is wrong with it.
    pub(super) fn invalid_because(var: &'static str, value: &str, problem: String) -> Self {
        ConfigError::Invalid {
            var,
            value: value.to_owned(),
            problem: Some(problem),
            expected: doc(var).allowed,
        }
    }

    /// The variable at fault, if the error is about one variable.
    pub fn var(&self) -> Option<&'static str> {
        match self {
            ConfigError::Invalid { var, .. }
            | ConfigError::Missing { var, .. }
            | ConfigError::NotUnicode { var } => Some(var),
            ConfigError::EnvFile { .. } => None,
        }
    }

    /// The process exit status for a configuration error: 2, the usual "usage error".
    pub fn exit_code(&self) -> u8 {
        2
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Invalid {
                var,
                value,
                problem,
                expected,
            } => {
                write!(f, "invalid {var}={value:?}: ")?;
                if let Some(problem) = problem {
                    write!(f, "{problem}; ")?;
                }
                write!(f, "expected {expected}")
            }
            ConfigError::Missing { var, reason } => write!(f, "missing {var}: {reason}"),
            ConfigError::NotUnicode { var } => {
                write!(
                    f,
                    "invalid {var}: the value in the environment is not valid UTF-8"
                )
            }
            ConfigError::EnvFile { path, problem } => {
                write!(f, "invalid {}: {problem}", path.display())
            }
        }
    }
}

impl std::error::Error for ConfigError {}
