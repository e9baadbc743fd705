//! Restart policy: restart types, shutdown modes, strategies, restart intensity and backoff.
//!
//! These follow OTP's `supervisor` (restart types, strategies, intensity over a period,
//! shutdown timeouts) with Akka's exponential backoff on top.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// When a child that exited is started again (OTP's `restart`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Always restarted.
    Permanent,
    /// Restarted only after an abnormal exit (a failure, or being killed).
    Transient,
    /// Never restarted; its spec is dropped when it exits.
    Temporary,
}

/// How a child is stopped during shutdown (OTP's `shutdown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// Killed at once: in-flight work is aborted, `post_stop` does not run.
    BrutalKill,
    /// Asked to stop; killed if it has not stopped within the duration.
    Timeout(Duration),
    /// Asked to stop, and waited for as long as it takes (the default for supervisors).
    Infinity,
}

impl Default for Shutdown {
    /// OTP's default for workers: 5 seconds.
    fn default() -> Self {
        Shutdown::Timeout(Duration::from_secs(5))
    }
}

/// Which siblings are restarted together with a failed child.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Only the failed child. Also the strategy for dynamic children.
    #[default]
    OneForOne,
    /// Every child: the others are stopped (reverse order) and all restarted (start order).
    OneForAll,
    /// The failed child and every child started after it.
    RestForOne,
}

/// At most `max_restarts` restarts within `period`; one more and the supervisor gives up,
/// stops its children and fails to its own parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intensity {
    pub max_restarts: u32,
    pub period: Duration,
}

impl Default for Intensity {
    /// OTP's default: 1 restart in 5 seconds.
    fn default() -> Self {
        Intensity {
            max_restarts: 1,
            period: Duration::from_secs(5),
        }
    }
}

/// The sliding window of recent restart times that [`Intensity`] is checked against.
#[derive(Debug, Default)]
pub(crate) struct RestartWindow {
    times: VecDeque<Instant>,
}

impl RestartWindow {
    /// Records a restart at `now`; returns false when the intensity is exceeded.
    pub(crate) fn record(&mut self, now: Instant, intensity: Intensity) -> bool {
        while let Some(&oldest) = self.times.front() {
            if now.duration_since(oldest) >= intensity.period {
                self.times.pop_front();
            } else {
                break;
            }
        }
        self.times.push_back(now);
        self.times.len() as u32 <= intensity.max_restarts
    }

    /// Restarts currently inside the window.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.times.len()
    }
}

/// Delay between consecutive restarts of one child: the first restart is immediate (OTP),
/// then `initial · factor^(n-1)`, ± `jitter` (a fraction), capped at `max`. The count starts
/// over once the child has stayed up for `reset_after`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub factor: f64,
    pub jitter: f64,
    pub reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_secs(30),
            factor: 2.0,
            jitter: 0.2,
            reset_after: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// No delay at all, ever: pure OTP behaviour.
    pub fn none() -> Self {
        Backoff {
            initial: Duration::ZERO,
            max: Duration::ZERO,
            ..Backoff::default()
        }
    }

    /// The delay before restart number `consecutive` (0 = the first since the child was stable).
    /// `entropy` is any value in `0..=u64::MAX`; it picks the point inside the jitter band.
    pub fn delay(&self, consecutive: u32, entropy: u64) -> Duration {
        if consecutive == 0 || self.initial.is_zero() {
            return Duration::ZERO;
        }
        let exp = self
            .factor
            .max(1.0)
            .powi(consecutive.saturating_sub(1).min(64) as i32);
        let base = (self.initial.as_secs_f64() * exp).min(self.max.as_secs_f64());
        // Map entropy onto [-1, 1] and spread the delay by ±jitter around the base.
        let unit = (entropy as f64 / u64::MAX as f64) * 2.0 - 1.0;
        let jittered = base * (1.0 + self.jitter.clamp(0.0, 1.0) * unit);
        Duration::from_secs_f64(jittered.clamp(0.0, self.max.as_secs_f64()))
    }
}

/// A small, fast, non-cryptographic random source for jitter (splitmix64). Jitter only needs
/// to keep restarting siblings from moving in lockstep.
#[derive(Debug)]
pub(crate) struct Jitter(u64);

impl Jitter {
    pub(crate) fn seeded() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Jitter(nanos ^ (&nanos as *const u64 as u64))
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_allows_exactly_max_restarts_in_period() {
        let intensity = Intensity {
            max_restarts: 2,
            period: Duration::from_secs(10),
        };
        let mut w = RestartWindow::default();
        let t0 = Instant::now();
        assert!(w.record(t0, intensity));
        assert!(w.record(t0 + Duration::from_secs(1), intensity));
        assert!(!w.record(t0 + Duration::from_secs(2), intensity));
    }

    #[test]
    fn window_slides_instead_of_counting_for_ever() {
        let intensity = Intensity {
            max_restarts: 1,
            period: Duration::from_secs(1),
        };
        let mut w = RestartWindow::default();
        let t0 = Instant::now();
        for i in 0..10 {
            assert!(w.record(t0 + Duration::from_millis(2100 * i), intensity));
        }
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn backoff_grows_exponentially_caps_and_starts_immediate() {
        let b = Backoff {
            jitter: 0.0,
            ..Backoff::default()
        };
        assert_eq!(b.delay(0, 0), Duration::ZERO);
        assert_eq!(b.delay(1, 0), Duration::from_millis(10));
        assert_eq!(b.delay(2, 0), Duration::from_millis(20));
        assert_eq!(b.delay(4, 0), Duration::from_millis(80));
        assert_eq!(b.delay(40, 0), Duration::from_secs(30));
    }

    #[test]
    fn backoff_jitter_stays_inside_the_band() {
        let b = Backoff::default();
        let mut j = Jitter::seeded();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let d = b.delay(3, j.next());
            assert!(
                d >= Duration::from_millis(32) && d <= Duration::from_millis(48),
                "{d:?}"
            );
            seen.insert(d);
        }
        assert!(seen.len() > 100, "jitter must actually vary the delay");
    }

    #[test]
    fn no_backoff_is_always_zero() {
        assert_eq!(Backoff::none().delay(9, 123), Duration::ZERO);
    }
}
