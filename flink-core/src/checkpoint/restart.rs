//! [`RestartStrategy`]: whether and when a failed job restarts, as Flink's
//! `restart-strategy.*` options, and [`RestartTracker`], which applies one.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// Whether and when a failed job is restarted from its latest completed checkpoint.
///
/// Without one set, a job without checkpointing does not restart and a job with
/// checkpointing restarts with [`RestartStrategy::default_exponential`], as in Flink.
///
/// ```
/// use std::time::Duration;
/// use flink_core::prelude::*;
///
/// let env = StreamExecutionEnvironment::new();
/// env.set_restart_strategy(RestartStrategy::FixedDelay {
///     attempts: 3,
///     delay: Duration::from_millis(10),
/// });
/// assert!(env.config().validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RestartStrategy {
    /// A failure fails the job.
    None,
    /// Restarts up to `attempts` times, waiting `delay` before each.
    FixedDelay {
        /// Restarts allowed; the next failure fails the job.
        attempts: u32,
        /// Wait before each restart.
        delay: Duration,
    },
    /// Waits longer after each failure in a row: `initial_backoff`, multiplied by
    /// `multiplier` per failure up to `max_backoff`, each wait varied by
    /// ±`jitter_factor`; after `reset_backoff_threshold` without a failure the wait
    /// is back at `initial_backoff` (Flink's `exponential-delay`).
    ExponentialBackoff {
        /// First wait.
        initial_backoff: Duration,
        /// Longest wait.
        max_backoff: Duration,
        /// Growth per failure, at least 1.
        multiplier: f64,
        /// Quiet time after which the wait starts over.
        reset_backoff_threshold: Duration,
        /// Relative random variation of each wait, in `0..=1`.
        jitter_factor: f64,
        /// Restarts allowed before the wait resets; the next failure fails the job.
        attempts_before_reset: u32,
    },
    /// Restarts unless more than `max_failures_per_interval` failures happened
    /// within `failure_rate_interval`, waiting `delay` before each.
    FailureRate {
        /// Failures tolerated within one interval.
        max_failures_per_interval: u32,
        /// The sliding window failures are counted in.
        failure_rate_interval: Duration,
        /// Wait before each restart.
        delay: Duration,
    },
}

// Validation rejects NaN factors, so equality is an equivalence.
impl Eq for RestartStrategy {}

impl RestartStrategy {
    /// Flink's default when checkpointing is on: exponential backoff from 1 s to
    /// 1 min, ×1.5, jitter 0.1, reset after 1 h, unlimited attempts.
    pub fn default_exponential() -> Self {
        Self::ExponentialBackoff {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            multiplier: 1.5,
            reset_backoff_threshold: Duration::from_secs(3600),
            jitter_factor: 0.1,
            attempts_before_reset: u32::MAX,
        }
    }

    /// Checks every value.
    ///
    /// # Errors
    /// The first value that can never work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |reason: &str| {
            Err(ConfigError::InvalidRestartStrategy {
                reason: reason.into(),
            })
        };
        match *self {
            Self::None | Self::FixedDelay { .. } => Ok(()),
            Self::ExponentialBackoff {
                initial_backoff,
                max_backoff,
                multiplier,
                jitter_factor,
                ..
            } => {
                if initial_backoff.is_zero() {
                    bad("exponential backoff: the initial backoff must be positive")
                } else if max_backoff < initial_backoff {
                    bad("exponential backoff: the max backoff is below the initial backoff")
                } else if !(multiplier >= 1.0 && multiplier.is_finite()) {
                    bad("exponential backoff: the multiplier must be a number >= 1")
                } else if !(0.0..=1.0).contains(&jitter_factor) {
                    bad("exponential backoff: the jitter factor must lie in 0..=1")
                } else {
                    Ok(())
                }
            }
            Self::FailureRate {
                max_failures_per_interval,
                failure_rate_interval,
                ..
            } => {
                if max_failures_per_interval == 0 {
                    bad("failure rate: max failures per interval must be at least 1")
                } else if failure_rate_interval.is_zero() {
                    bad("failure rate: the interval must be positive")
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// Applies a [`RestartStrategy`] to the failures of one job, on the job's clock.
#[derive(Debug)]
pub struct RestartTracker {
    strategy: RestartStrategy,
    /// Restarts so far (all of them, for the job's result).
    restarts: u32,
    /// Restarts counted against the exponential strategy since its last reset.
    since_reset: u32,
    /// Times of the failures so far, for the failure rate and the backoff reset.
    failures: Vec<Duration>,
    /// Pseudo-random state for the jitter (deterministic per job).
    jitter_state: u64,
}

impl RestartTracker {
    /// Tracks failures under `strategy`.
    pub fn new(strategy: RestartStrategy) -> Self {
        Self {
            strategy,
            restarts: 0,
            since_reset: 0,
            failures: Vec::new(),
            jitter_state: 0x9E37_79B9_7F4A_7C15,
        }
    }

    /// Restarts granted so far.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// A failure happened at `now`: how long to wait before restarting, or `None` if
    /// the job must fail.
    pub fn on_failure(&mut self, now: Duration) -> Option<Duration> {
        let previous = self.failures.last().copied();
        self.failures.push(now);
        let delay = match self.strategy {
            RestartStrategy::None => None,
            RestartStrategy::FixedDelay { attempts, delay } => {
                (self.restarts < attempts).then_some(delay)
            }
            RestartStrategy::FailureRate {
                max_failures_per_interval,
                failure_rate_interval,
                delay,
            } => {
                let since = now.saturating_sub(failure_rate_interval);
                let recent = self.failures.iter().filter(|&&t| t > since).count();
                (recent <= max_failures_per_interval as usize).then_some(delay)
            }
            RestartStrategy::ExponentialBackoff {
                initial_backoff,
                max_backoff,
                multiplier,
                reset_backoff_threshold,
                jitter_factor,
                attempts_before_reset,
            } => {
                if previous.is_some_and(|p| now.saturating_sub(p) >= reset_backoff_threshold) {
                    self.since_reset = 0;
                }
                if self.since_reset >= attempts_before_reset {
                    None
                } else {
                    let exponent = i32::try_from(self.since_reset).unwrap_or(i32::MAX);
                    let base = (initial_backoff.as_secs_f64() * multiplier.powi(exponent))
                        .min(max_backoff.as_secs_f64());
                    let jitter = base * jitter_factor * (2.0 * self.next_unit() - 1.0);
                    self.since_reset += 1;
                    Some(Duration::from_secs_f64((base + jitter).max(0.0)))
                }
            }
        };
        if delay.is_some() {
            self.restarts += 1;
        }
        delay
    }

    /// A number in `0..1` (xorshift64*).
    fn next_unit(&mut self) -> f64 {
        let mut x = self.jitter_state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.jitter_state = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn fixed_delay_allows_its_attempts_then_fails() {
        let mut t = RestartTracker::new(RestartStrategy::FixedDelay {
            attempts: 2,
            delay: S,
        });
        assert_eq!(t.on_failure(S), Some(S));
        assert_eq!(t.on_failure(2 * S), Some(S));
        assert_eq!(t.on_failure(3 * S), None);
        assert_eq!(t.restarts(), 2);
    }

    #[test]
    fn none_never_restarts() {
        assert_eq!(
            RestartTracker::new(RestartStrategy::None).on_failure(S),
            None
        );
    }

    #[test]
    fn failure_rate_counts_failures_in_the_window() {
        let mut t = RestartTracker::new(RestartStrategy::FailureRate {
            max_failures_per_interval: 2,
            failure_rate_interval: 10 * S,
            delay: S,
        });
        assert!(t.on_failure(S).is_some());
        assert!(t.on_failure(2 * S).is_some());
        assert!(t.on_failure(3 * S).is_none(), "three failures within 10 s");
        let mut t = RestartTracker::new(RestartStrategy::FailureRate {
            max_failures_per_interval: 1,
            failure_rate_interval: 10 * S,
            delay: S,
        });
        assert!(t.on_failure(S).is_some());
        assert!(
            t.on_failure(20 * S).is_some(),
            "the first fell out of the window"
        );
    }

    #[test]
    fn exponential_backoff_grows_caps_and_resets() {
        let mut t = RestartTracker::new(RestartStrategy::ExponentialBackoff {
            initial_backoff: S,
            max_backoff: 4 * S,
            multiplier: 2.0,
            reset_backoff_threshold: 100 * S,
            jitter_factor: 0.0,
            attempts_before_reset: 10,
        });
        let waits: Vec<_> = (1..=4).map(|i| t.on_failure(i * S).unwrap()).collect();
        assert_eq!(waits, [S, 2 * S, 4 * S, 4 * S]);
        assert_eq!(
            t.on_failure(200 * S),
            Some(S),
            "quiet for longer than the threshold"
        );
    }

    #[test]
    fn exponential_backoff_jitter_stays_within_its_factor() {
        let mut t = RestartTracker::new(RestartStrategy::default_exponential());
        let wait = t.on_failure(S).unwrap().as_secs_f64();
        assert!((0.9..=1.1).contains(&wait), "{wait}");
    }

    #[test]
    fn invalid_strategies_are_config_errors() {
        let bad = RestartStrategy::ExponentialBackoff {
            initial_backoff: S,
            max_backoff: S,
            multiplier: 0.5,
            reset_backoff_threshold: S,
            jitter_factor: 0.0,
            attempts_before_reset: 1,
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("multiplier")
        );
        let bad = RestartStrategy::FailureRate {
            max_failures_per_interval: 0,
            failure_rate_interval: S,
            delay: S,
        };
        assert!(bad.validate().is_err());
        assert!(RestartStrategy::default_exponential().validate().is_ok());
    }
}
