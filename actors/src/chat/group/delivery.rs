//! When to try a reply again after the platform refused it.
//!
//! A reply is recorded durably before it is sent, so nothing is lost by waiting; the
//! question is only how long. A rate limit says how long itself (Telegram's `retry_after`,
//! Discord's `Retry-After`), and sending earlier would only earn another refusal. Network and
//! platform failures back off exponentially so that an outage of hours costs a handful of
//! requests, not thousands. A chat that is gone (bot removed, group deleted) will not come
//! back by waiting: the reply is dropped with an error in the log instead of retried forever,
//! which would also keep the group from ever answering again.

use std::time::Duration;

use crate::chat::port::TransportError;

/// First wait after a failure that names no time of its own.
pub const FIRST_RETRY: Duration = Duration::from_secs(5);
/// Longest wait between two attempts, however long the outage.
pub const MAX_RETRY: Duration = Duration::from_secs(300);

/// What to do after the `failures`-th consecutive failed attempt (counted from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    After(Duration),
    /// The reply cannot be delivered: forget it.
    GiveUp,
}

pub fn after_failure(error: &TransportError, failures: u32) -> Retry {
    match error {
        TransportError::RateLimited { retry_after_s } => {
            // Asked for 0 s means "now", but not in a tight loop; a margin of one second
            // absorbs clock granularity on the platform's side.
            Retry::After(Duration::from_secs(retry_after_s.saturating_add(1)).min(MAX_RETRY * 4))
        }
        TransportError::ChatUnavailable(_) => Retry::GiveUp,
        TransportError::Formatting(_) | TransportError::Unavailable(_) => {
            let doublings = failures.saturating_sub(1).min(16);
            Retry::After((FIRST_RETRY * 2u32.pow(doublings)).min(MAX_RETRY))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unavailable() -> TransportError {
        TransportError::Unavailable("502 Bad Gateway".into())
    }

    #[test]
    fn outages_back_off_exponentially_up_to_a_cap() {
        let waits: Vec<_> = (1..=9)
            .map(|n| match after_failure(&unavailable(), n) {
                Retry::After(d) => d.as_secs(),
                Retry::GiveUp => panic!("gave up on an outage"),
            })
            .collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(
            after_failure(&unavailable(), u32::MAX),
            Retry::After(MAX_RETRY)
        );
    }

    #[test]
    fn a_rate_limit_waits_as_long_as_asked() {
        let limited = TransportError::RateLimited { retry_after_s: 7 };
        assert_eq!(
            after_failure(&limited, 1),
            Retry::After(Duration::from_secs(8))
        );
        // However many refusals came before: the platform's number is what counts.
        assert_eq!(
            after_failure(&limited, 6),
            Retry::After(Duration::from_secs(8))
        );
        let absurd = TransportError::RateLimited {
            retry_after_s: u64::MAX,
        };
        assert_eq!(after_failure(&absurd, 1), Retry::After(MAX_RETRY * 4));
    }

    #[test]
    fn a_chat_that_is_gone_is_given_up() {
        let gone = TransportError::ChatUnavailable("Forbidden: bot was kicked".into());
        assert_eq!(after_failure(&gone, 1), Retry::GiveUp);
    }
}
