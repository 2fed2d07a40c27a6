//! [`StateTtlConfig`]: how long a named state's values live (Flink's state TTL), and
//! the time stamp each stored value carries for it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// When a value's time-to-live starts again (Flink's `StateTtlConfig.UpdateType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlUpdateType {
    /// On creation and on every write (the default, as in Flink).
    OnCreateAndWrite,
    /// On creation, every write and every read.
    OnReadAndWrite,
}

/// A time-to-live for the values of a named state: a value not written (or, with
/// [`TtlUpdateType::OnReadAndWrite`], not read either) for `ttl` of the job's
/// processing time is expired and never returned again (Flink's
/// `StateVisibility.NeverReturnExpired`, the only visibility offered). Expired
/// values are removed when they are next accessed, swept out of the whole state
/// after about as many accesses as it has entries (Flink's incremental cleanup), and
/// left out of checkpoints. List elements and map entries expire one by one, as in
/// Flink.
///
/// ```
/// use std::time::Duration;
/// use flink_core::state::{StateTtlConfig, TtlUpdateType, ValueStateDescriptor};
///
/// let ttl = StateTtlConfig::builder(Duration::from_secs(60))
///     .update_type(TtlUpdateType::OnReadAndWrite)
///     .build()
///     .unwrap();
/// let last_seen = ValueStateDescriptor::<u64>::new("last-seen").with_ttl(ttl);
/// # let _ = last_seen;
/// assert!(StateTtlConfig::builder(Duration::ZERO).build().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateTtlConfig {
    ttl_ms: i64,
    update_type: TtlUpdateType,
}

/// A [`StateTtlConfig`] that can never work.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StateTtlError {
    /// A time-to-live under one millisecond would expire every value at once.
    #[error("state time-to-live must be at least 1 ms, got {0:?}")]
    TooShort(Duration),
}

impl StateTtlConfig {
    /// Starts a configuration with time-to-live `ttl` (Flink's `newBuilder(ttl)`).
    pub fn builder(ttl: Duration) -> StateTtlConfigBuilder {
        StateTtlConfigBuilder {
            ttl,
            update_type: TtlUpdateType::OnCreateAndWrite,
        }
    }

    /// The time-to-live.
    pub fn ttl(&self) -> Duration {
        Duration::from_millis(self.ttl_ms as u64)
    }

    /// When the time-to-live starts again.
    pub fn update_type(&self) -> TtlUpdateType {
        self.update_type
    }
}

/// Builds a [`StateTtlConfig`]; see [`StateTtlConfig::builder`].
#[derive(Debug, Clone)]
pub struct StateTtlConfigBuilder {
    ttl: Duration,
    update_type: TtlUpdateType,
}

impl StateTtlConfigBuilder {
    /// When the time-to-live starts again (default
    /// [`TtlUpdateType::OnCreateAndWrite`]).
    pub fn update_type(mut self, update_type: TtlUpdateType) -> Self {
        self.update_type = update_type;
        self
    }

    /// The configuration.
    ///
    /// # Errors
    /// [`StateTtlError::TooShort`] for a time-to-live under 1 ms.
    pub fn build(self) -> Result<StateTtlConfig, StateTtlError> {
        let ms = self.ttl.as_millis();
        if ms == 0 {
            return Err(StateTtlError::TooShort(self.ttl));
        }
        Ok(StateTtlConfig {
            ttl_ms: i64::try_from(ms).unwrap_or(i64::MAX),
            update_type: self.update_type,
        })
    }
}

/// A stored value and when its time-to-live last started (ms of processing time; 0
/// for a state without TTL).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Stamped<T> {
    pub(crate) value: T,
    pub(crate) stamp: i64,
}

/// A state's TTL as one access sees it: the configuration and the time now.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TtlClock {
    config: Option<StateTtlConfig>,
    now: i64,
}

impl TtlClock {
    /// `config` at processing time `now`.
    pub(crate) fn new(config: Option<StateTtlConfig>, now: i64) -> Self {
        Self { config, now }
    }

    /// Whether the state has a time-to-live at all.
    pub(crate) fn has_ttl(&self) -> bool {
        self.config.is_some()
    }

    /// `value` stamped as written now.
    pub(crate) fn stamp<T>(&self, value: T) -> Stamped<T> {
        Stamped {
            value,
            stamp: self.now,
        }
    }

    /// Whether a value stamped `stamp` has expired (never without TTL).
    pub(crate) fn is_expired(&self, stamp: i64) -> bool {
        self.config
            .is_some_and(|c| self.now.saturating_sub(stamp) >= c.ttl_ms)
    }

    /// Restarts the time-to-live of a value that is being read, if the update type
    /// says so.
    pub(crate) fn touch(&self, stamp: &mut i64) {
        if self
            .config
            .is_some_and(|c| c.update_type == TtlUpdateType::OnReadAndWrite)
        {
            *stamp = self.now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(update_type: TtlUpdateType, now: i64) -> TtlClock {
        let config = StateTtlConfig::builder(Duration::from_millis(10))
            .update_type(update_type)
            .build()
            .unwrap();
        TtlClock::new(Some(config), now)
    }

    #[test]
    fn a_value_expires_exactly_ttl_after_its_stamp() {
        let at = clock(TtlUpdateType::OnCreateAndWrite, 19);
        assert!(!at.is_expired(10));
        assert!(at.is_expired(9));
        assert!(!TtlClock::new(None, i64::MAX).is_expired(0));
    }

    #[test]
    fn only_read_and_write_restarts_on_read() {
        let mut stamp = 3;
        clock(TtlUpdateType::OnCreateAndWrite, 8).touch(&mut stamp);
        assert_eq!(stamp, 3);
        clock(TtlUpdateType::OnReadAndWrite, 8).touch(&mut stamp);
        assert_eq!(stamp, 8);
    }

    #[test]
    fn a_zero_ttl_is_refused() {
        assert_eq!(
            StateTtlConfig::builder(Duration::from_micros(300))
                .build()
                .unwrap_err(),
            StateTtlError::TooShort(Duration::from_micros(300))
        );
    }
}
