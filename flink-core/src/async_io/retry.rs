use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Randomizes retry delays so that callers failing together do not retry together.
/// Seeded, so a run is repeatable.
#[derive(Debug, Clone)]
pub struct Jitter {
    state: u64,
}

impl Jitter {
    /// A jitter source from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            state: seed ^ 0x9e37_79b9_7f4a_7c15,
        }
    }

    /// A uniform number in `0.0..1.0` (SplitMix64).
    pub fn next_unit(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// When and how often a failed attempt is tried again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RetryStrategy {
    /// One attempt only.
    NoRetry,
    /// Up to `max_attempts` attempts in all, `delay` apart.
    FixedDelay {
        /// Wait between attempts.
        delay: Duration,
        /// Attempts in all, including the first.
        max_attempts: u32,
    },
    /// Up to `max_attempts` attempts, the wait growing by `multiplier` from `initial`
    /// up to `max_delay`, then reduced by a random share of at most `jitter`
    /// (`0.0..=1.0`; 0.5 means each wait is 50-100 % of the nominal one).
    ExponentialBackoff {
        /// First wait.
        initial: Duration,
        /// Growth per attempt (at least 1.0).
        multiplier: f64,
        /// Longest wait.
        max_delay: Duration,
        /// Attempts in all, including the first.
        max_attempts: u32,
        /// Largest random reduction, as a share of the wait.
        jitter: f64,
    },
}

/// A [`RetryStrategy`] that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RetryStrategyError {
    /// At least one attempt must be allowed.
    #[error("retry max_attempts must be at least 1")]
    ZeroAttempts,
    /// Backoff must not shrink.
    #[error("retry multiplier must be at least 1.0, got {0}")]
    BadMultiplier(String),
    /// Jitter is a share.
    #[error("retry jitter must lie in 0.0..=1.0, got {0}")]
    BadJitter(String),
}

impl RetryStrategy {
    /// Checks every value.
    pub fn validate(&self) -> Result<(), RetryStrategyError> {
        if self.max_attempts() == 0 {
            return Err(RetryStrategyError::ZeroAttempts);
        }
        if let Self::ExponentialBackoff {
            multiplier, jitter, ..
        } = self
        {
            if multiplier.is_nan() || *multiplier < 1.0 {
                return Err(RetryStrategyError::BadMultiplier(multiplier.to_string()));
            }
            if !(0.0..=1.0).contains(jitter) {
                return Err(RetryStrategyError::BadJitter(jitter.to_string()));
            }
        }
        Ok(())
    }

    /// Attempts allowed in all.
    pub fn max_attempts(&self) -> u32 {
        match self {
            Self::NoRetry => 1,
            Self::FixedDelay { max_attempts, .. }
            | Self::ExponentialBackoff { max_attempts, .. } => *max_attempts,
        }
    }

    /// The wait before attempt `failed_attempt + 1`, or `None` when `failed_attempt`
    /// (1-based) was the last allowed.
    pub fn delay_after(&self, failed_attempt: u32, jitter: &mut Jitter) -> Option<Duration> {
        if failed_attempt >= self.max_attempts() {
            return None;
        }
        match self {
            Self::NoRetry => None,
            Self::FixedDelay { delay, .. } => Some(*delay),
            Self::ExponentialBackoff {
                initial,
                multiplier,
                max_delay,
                jitter: share,
                ..
            } => {
                let exp = i32::try_from(failed_attempt - 1).unwrap_or(i32::MAX);
                let nominal =
                    (initial.as_secs_f64() * multiplier.powi(exp)).min(max_delay.as_secs_f64());
                let reduced = nominal * (1.0 - share * jitter.next_unit());
                Some(Duration::from_secs_f64(reduced.max(0.0)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_backoff_follows_the_schedule_and_stops() {
        let s = RetryStrategy::ExponentialBackoff {
            initial: Duration::from_millis(10),
            multiplier: 2.0,
            max_delay: Duration::from_millis(50),
            max_attempts: 5,
            jitter: 0.0,
        };
        let mut j = Jitter::new(1);
        let delays: Vec<_> = (1..=5).map(|a| s.delay_after(a, &mut j)).collect();
        let ms = |m| Some(Duration::from_millis(m));
        assert_eq!(delays, vec![ms(10), ms(20), ms(40), ms(50), None]);
    }

    #[test]
    fn jitter_only_shortens_within_its_share() {
        let s = RetryStrategy::ExponentialBackoff {
            initial: Duration::from_millis(100),
            multiplier: 1.0,
            max_delay: Duration::from_millis(100),
            max_attempts: 1000,
            jitter: 0.5,
        };
        let mut j = Jitter::new(7);
        for a in 1..999 {
            let d = s.delay_after(a, &mut j).unwrap();
            assert!(
                d >= Duration::from_millis(50) && d <= Duration::from_millis(100),
                "{d:?}"
            );
        }
    }

    #[test]
    fn fixed_delay_and_no_retry() {
        let mut j = Jitter::new(0);
        let f = RetryStrategy::FixedDelay {
            delay: Duration::from_millis(3),
            max_attempts: 2,
        };
        assert_eq!(f.delay_after(1, &mut j), Some(Duration::from_millis(3)));
        assert_eq!(f.delay_after(2, &mut j), None);
        assert_eq!(RetryStrategy::NoRetry.delay_after(1, &mut j), None);
    }
}
