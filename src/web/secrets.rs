//! The secrets no answer may contain: the chat tokens, `WEB_TOKEN` and the credential the
//! agents reach their model with. Every JSON answer and every streamed line passes through
//! [`Secrets::scrub`], which replaces them with `<redacted>`.
//!
//! Scrubbing the output, rather than trusting each source, is what holds when an error text
//! quotes a request URL with a bot token in it, or an agent prints its environment.

use std::borrow::Cow;
use std::sync::Arc;

use crate::config::Config;

/// What a secret is replaced with.
pub const REDACTED: &str = "<redacted>";

/// Environment variables that hold the model credential (`src/claude/env.rs` passes them to
/// the agents; they are never borg's to show).
pub const MODEL_CREDENTIALS: &[&str] = &[
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "CLAUDE_CODE_OAUTH_TOKEN",
];

/// Secrets shorter than this are not scrubbed: replacing every `a` of every answer would
/// hide everything and protect nothing (no real token is this short).
const MIN_LEN: usize = 4;

/// The secret values to scrub; cheap to clone.
#[derive(Clone, Default)]
pub struct Secrets {
    values: Arc<[String]>,
}

impl Secrets {
    /// The secrets of `config` and of the model credential in the process environment.
    pub fn from_config(config: &Config) -> Self {
        let env = MODEL_CREDENTIALS
            .iter()
            .filter_map(|name| std::env::var(name).ok());
        let configured = [
            config.telegram_bot_token.clone(),
            config.discord_token.clone(),
            config.web_token.clone(),
        ];
        Self::new(configured.into_iter().flatten().chain(env))
    }

    /// Exactly these secrets.
    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut values: Vec<String> = values
            .into_iter()
            .map(|v| v.trim().to_owned())
            .filter(|v| v.len() >= MIN_LEN)
            .collect();
        // The longest first, so a secret that contains another is replaced whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Self {
            values: values.into(),
        }
    }

    /// `text` with every secret replaced by [`REDACTED`]; borrowed when there was none.
    pub fn scrub<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for secret in self.values.iter() {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), REDACTED));
            }
        }
        out
    }

    /// Scrubs an optional owned text in place.
    pub fn scrub_owned(&self, text: &mut String) {
        if let Cow::Owned(clean) = self.scrub(text) {
            *text = clean;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_secret_is_replaced_and_clean_text_is_borrowed() {
        let secrets = Secrets::new(["123456:ABCDEF".to_owned(), "abc".to_owned()]);
        let text = "GET https://api.telegram.org/bot123456:ABCDEF/getUpdates failed";
        assert_eq!(
            secrets.scrub(text),
            "GET https://api.telegram.org/bot<redacted>/getUpdates failed"
        );
        assert!(matches!(
            secrets.scrub("nothing here, abc"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn a_secret_inside_another_is_replaced_whole() {
        let secrets = Secrets::new(["token".to_owned(), "long-token-value".to_owned()]);
        assert_eq!(
            secrets.scrub("x long-token-value y token"),
            "x <redacted> y <redacted>"
        );
    }
}
