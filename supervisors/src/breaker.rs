//! Circuit breaker: a supervisor policy that parks a child that keeps failing.
//!
//! Restart intensity escalates to the parent; a breaker isolates instead. After `threshold`
//! failures within `window` the child is **parked** (not restarted, nothing escalates).
//! After a cool-down one probe incarnation starts (**half-open**); if it stays up for
//! `probe_uptime` the breaker closes, if it fails the breaker re-opens with a cool-down grown by
//! `factor` (up to `cool_down_max`). Operators can force it open (parked until forced closed) or
//! closed (restart now, counters cleared).
//!
//! A breaker on a child that is itself a supervisor covers a whole group of children: when the
//! group's supervisor gives up (its own intensity exceeded), the parent parks the group.
//!
//! This module is the pure state machine; the supervisor owns the timers.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Serialize;

/// When to trip and how to recover.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerPolicy {
    /// Failures within `window` that open the breaker.
    pub threshold: u32,
    pub window: Duration,
    /// First cool-down before a probe.
    pub cool_down: Duration,
    /// Longest cool-down, however often the probe fails.
    pub cool_down_max: Duration,
    /// Growth of the cool-down on each re-open.
    pub factor: f64,
    /// How long a probe must stay up for the breaker to close.
    pub probe_uptime: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            threshold: 5,
            window: Duration::from_secs(60),
            cool_down: Duration::from_secs(30),
            cool_down_max: Duration::from_secs(600),
            factor: 2.0,
            probe_uptime: Duration::from_secs(10),
        }
    }
}

/// The visible state of a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Failures restart the child as usual (and are counted).
    Closed,
    /// Tripped: the child is parked until the cool-down ends.
    Open,
    /// A probe incarnation is running.
    HalfOpen,
    /// Held open by an operator; no probe until forced closed.
    ForcedOpen,
}

/// What the supervisor should do with a child that just failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Restart as the strategy says.
    Restart,
    /// Park the child and probe after this cool-down.
    Park(Duration),
    /// Park the child with no probe (forced open).
    Hold,
}

/// One breaker's state machine.
#[derive(Debug, Clone)]
pub struct Breaker {
    policy: BreakerPolicy,
    state: BreakerState,
    failures: VecDeque<Instant>,
    cool_down: Duration,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(policy: BreakerPolicy) -> Self {
        Breaker {
            policy,
            state: BreakerState::Closed,
            failures: VecDeque::new(),
            cool_down: policy.cool_down,
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    pub fn policy(&self) -> &BreakerPolicy {
        &self.policy
    }

    /// The cool-down the next (or current) open period lasts.
    pub fn cool_down(&self) -> Duration {
        self.cool_down
    }

    /// Records a failure at `now` and decides.
    pub fn on_failure(&mut self, now: Instant) -> Verdict {
        match self.state {
            BreakerState::Closed => {
                while let Some(&t) = self.failures.front() {
                    if now.duration_since(t) >= self.policy.window {
                        self.failures.pop_front();
                    } else {
                        break;
                    }
                }
                self.failures.push_back(now);
                if self.failures.len() as u32 >= self.policy.threshold {
                    self.state = BreakerState::Open;
                    Verdict::Park(self.cool_down)
                } else {
                    Verdict::Restart
                }
            }
            BreakerState::HalfOpen | BreakerState::Open => {
                // The probe failed: back to open, and wait longer this time.
                let grown = self.cool_down.as_secs_f64() * self.policy.factor.max(1.0);
                self.cool_down =
                    Duration::from_secs_f64(grown.min(self.policy.cool_down_max.as_secs_f64()));
                self.state = BreakerState::Open;
                Verdict::Park(self.cool_down)
            }
            BreakerState::ForcedOpen => Verdict::Hold,
        }
    }

    /// The cool-down ended: returns true if a probe should start now.
    pub fn on_cool_down_elapsed(&mut self) -> bool {
        if self.state == BreakerState::Open {
            self.state = BreakerState::HalfOpen;
            true
        } else {
            false
        }
    }

    /// The probe stayed up long enough: close and forget past failures.
    pub fn on_probe_survived(&mut self) -> bool {
        if self.state == BreakerState::HalfOpen {
            self.close();
            true
        } else {
            false
        }
    }

    /// Operator: hold open until [`force_close`](Self::force_close).
    pub fn force_open(&mut self) {
        self.state = BreakerState::ForcedOpen;
    }

    /// Operator: close now, with the counters and the cool-down reset.
    pub fn force_close(&mut self) {
        self.close();
    }

    fn close(&mut self) {
        self.state = BreakerState::Closed;
        self.failures.clear();
        self.cool_down = self.policy.cool_down;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BreakerPolicy {
        BreakerPolicy {
            threshold: 3,
            window: Duration::from_secs(10),
            cool_down: Duration::from_secs(1),
            cool_down_max: Duration::from_secs(5),
            factor: 2.0,
            probe_uptime: Duration::from_secs(1),
        }
    }

    #[test]
    fn opens_exactly_at_the_threshold() {
        let mut b = Breaker::new(policy());
        let t = Instant::now();
        assert_eq!(b.on_failure(t), Verdict::Restart);
        assert_eq!(b.on_failure(t), Verdict::Restart);
        assert_eq!(b.on_failure(t), Verdict::Park(Duration::from_secs(1)));
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let mut b = Breaker::new(policy());
        let t = Instant::now();
        for i in 0..10 {
            assert_eq!(
                b.on_failure(t + Duration::from_secs(6 * i)),
                Verdict::Restart
            );
        }
    }

    #[test]
    fn cool_down_grows_on_each_reopen_up_to_the_cap_and_resets_on_close() {
        let mut b = Breaker::new(policy());
        let t = Instant::now();
        for _ in 0..3 {
            b.on_failure(t);
        }
        let mut expected = [2, 4, 5, 5].into_iter();
        for _ in 0..4 {
            assert!(b.on_cool_down_elapsed());
            assert_eq!(b.state(), BreakerState::HalfOpen);
            let want = Duration::from_secs(expected.next().unwrap());
            assert_eq!(b.on_failure(t), Verdict::Park(want));
        }
        assert!(b.on_cool_down_elapsed());
        assert!(b.on_probe_survived());
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.cool_down(), Duration::from_secs(1));
        assert_eq!(b.on_failure(t), Verdict::Restart, "counters were cleared");
    }

    #[test]
    fn forced_open_holds_and_ignores_timers_until_forced_closed() {
        let mut b = Breaker::new(policy());
        b.force_open();
        assert_eq!(b.on_failure(Instant::now()), Verdict::Hold);
        assert!(!b.on_cool_down_elapsed());
        assert!(!b.on_probe_survived());
        b.force_close();
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
