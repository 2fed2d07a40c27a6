//! Buffer debloating settings (Apache Flink's FLIP-183,
//! `taskmanager.network.memory.buffer-debloat.*`).
//!
//! Under back pressure every network buffer between two tasks is full, so the data in
//! flight is the number of buffers times their size, however slowly the consumer
//! reads. A checkpoint barrier queues behind all of it. With debloating each input
//! gate measures how fast it consumes and announces a buffer size to its producers
//! such that the buffered data amounts to about [`target`](BufferDebloatConfig::target)
//! of consumption; producers cut their buffers at that size. A gate that keeps up
//! announces the full size, so a job without back pressure runs as before.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// How input gates size their producers' buffers. Defaults are Flink's.
///
/// ```
/// use std::time::Duration;
/// use flink_core::buffer_debloat::BufferDebloatConfig;
///
/// let mut debloat = BufferDebloatConfig::default();
/// assert!(debloat.enabled);
/// assert_eq!(debloat.target, Duration::from_millis(800));
/// debloat.target = Duration::from_millis(500);
/// assert!(debloat.validate().is_ok());
/// debloat.samples = 0;
/// assert!(debloat.validate().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BufferDebloatConfig {
    /// Whether gates announce buffer sizes (Flink's `buffer-debloat.enabled`). On by
    /// default here: it costs nothing measurable where nothing is back-pressured.
    pub enabled: bool,
    /// How much consumption the buffered data of a gate should amount to
    /// (`buffer-debloat.target`): 800 ms here, where Flink's default is 1 s. An
    /// aligned checkpoint behind back pressure waits about this long for its barrier,
    /// so below 1 s it completes within a second (measured in docs/checkpoints.md).
    pub target: Duration,
    /// How often a gate recomputes its buffer size (`buffer-debloat.period`, 200 ms).
    pub period: Duration,
    /// The smallest buffer size announced (`memory.min-segment-size`, 256 bytes);
    /// with buffers smaller than this, debloating never cuts them.
    pub min_buffer_size: usize,
    /// A new size is announced only when it differs from the last by more than this
    /// percentage (`buffer-debloat.threshold-percentages`, 25).
    pub threshold_percent: u32,
    /// How many periods the size is averaged over (`buffer-debloat.samples`, 20).
    pub samples: u32,
}

impl Default for BufferDebloatConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            target: Duration::from_millis(800),
            period: Duration::from_millis(200),
            min_buffer_size: 256,
            threshold_percent: 25,
            samples: 20,
        }
    }
}

impl BufferDebloatConfig {
    /// Debloating off: producers always fill whole buffers.
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// Checks every value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |what: &str, reason: String| {
            Err(ConfigError::InvalidBufferDebloat {
                what: what.into(),
                reason,
            })
        };
        if self.target.is_zero() {
            return bad("target", "must be above zero".into());
        }
        if self.period.is_zero() {
            return bad("period", "must be above zero".into());
        }
        // A buffer must hold a length prefix and some payload. Above the buffer size
        // it is harmless: buffers are never cut below their size then.
        if self.min_buffer_size < 16 {
            return bad(
                "min buffer size",
                format!("must be at least 16 bytes, got {}", self.min_buffer_size),
            );
        }
        if self.threshold_percent > 100 {
            return bad(
                "threshold",
                format!("must be at most 100 %, got {}", self.threshold_percent),
            );
        }
        if self.samples == 0 {
            return bad("samples", "must be at least 1".into());
        }
        Ok(())
    }
}
