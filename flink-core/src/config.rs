//! Execution settings with validation, mirroring Flink's network and parallelism options.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::buffer_debloat::BufferDebloatConfig;
use crate::checkpoint::{CheckpointConfig, RestartStrategy, RestoreSettings};
use crate::error::ConfigError;
use crate::web_ui::WebUiConfig;

/// Largest max parallelism Flink accepts (2^15 key groups).
pub const UPPER_BOUND_MAX_PARALLELISM: usize = 1 << 15;
/// Smallest network buffer accepted: a length prefix plus a little payload.
pub const MIN_BUFFER_SIZE: usize = 64;

/// When a partially filled output buffer is shipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BufferTimeout {
    /// Flush after every record (Flink's `setBufferTimeout(0)`): lowest latency.
    EveryRecord,
    /// Flush partial buffers at least this often (Flink's default is 100 ms).
    Interval(Duration),
    /// Ship only full buffers (Flink's `-1`): highest throughput, unbounded latency.
    OnlyWhenFull,
}

/// The settings a job runs with. Built with defaults, changed with setters, validated when
/// the job is built, so a bad value is a [`ConfigError`] and never a panic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionConfig {
    /// Parallelism of operators that do not set their own.
    pub parallelism: usize,
    /// Number of key groups; the upper bound for any operator's parallelism.
    pub max_parallelism: usize,
    /// Size in bytes of one network buffer.
    pub buffer_size: usize,
    /// When partial buffers are flushed.
    pub buffer_timeout: BufferTimeout,
    /// Buffers each input channel owns (its initial credit).
    pub exclusive_buffers_per_channel: usize,
    /// Buffers each input gate lends to channels with backlog.
    pub floating_buffers_per_gate: usize,
    /// The most output buffers one channel (subpartition) may have queued before the
    /// producer waits for it, as Flink's
    /// `taskmanager.network.memory.max-buffers-per-channel` (default 10): one hot
    /// channel whose consumer is slow cannot take the whole output pool.
    #[serde(default = "default_max_buffers_per_channel")]
    pub max_buffers_per_channel: usize,
    /// Buffer debloating (Flink's FLIP-183): input gates announce buffer sizes so
    /// that their buffered data amounts to about a target time of consumption.
    #[serde(default)]
    pub buffer_debloat: BufferDebloatConfig,
    /// Whether operators may be chained into one task.
    pub chaining: bool,
    /// The job's embedded REST API and metrics server, if it serves one
    /// (`StreamExecutionEnvironment::enable_web_ui`).
    #[serde(default)]
    pub web_ui: Option<WebUiConfig>,
    /// Checkpoints, if the job takes them
    /// (`StreamExecutionEnvironment::enable_checkpointing`).
    #[serde(default)]
    pub checkpointing: Option<CheckpointConfig>,
    /// What happens when a task fails; `None` means Flink's default: no restart
    /// without checkpointing, [`RestartStrategy::default_exponential`] with it.
    #[serde(default)]
    pub restart_strategy: Option<RestartStrategy>,
    /// The savepoint or checkpoint the job starts from, if any
    /// (`StreamExecutionEnvironment::restore_from`).
    #[serde(default)]
    pub restore: Option<RestoreSettings>,
    /// How often periodic watermark generators emit, on the job's clock (Flink's
    /// `setAutoWatermarkInterval`, default 200 ms); zero asks after every batch.
    #[serde(default = "default_auto_watermark_interval")]
    pub auto_watermark_interval: Duration,
    /// The processes the job is spread over and this one's place, or `None` to run it
    /// in this process alone (`StreamExecutionEnvironment::set_cluster`).
    #[serde(default)]
    pub cluster: Option<crate::cluster::ClusterConfig>,
}

fn default_auto_watermark_interval() -> Duration {
    crate::watermark::DEFAULT_AUTO_WATERMARK_INTERVAL
}

impl Default for ExecutionConfig {
    fn default() -> Self {
        Self {
            parallelism: 1,
            max_parallelism: 128,
            buffer_size: 32 * 1024,
            buffer_timeout: BufferTimeout::Interval(Duration::from_millis(100)),
            exclusive_buffers_per_channel: 2,
            floating_buffers_per_gate: 8,
            max_buffers_per_channel: DEFAULT_MAX_BUFFERS_PER_CHANNEL,
            buffer_debloat: BufferDebloatConfig::default(),
            chaining: true,
            web_ui: None,
            checkpointing: None,
            restart_strategy: None,
            restore: None,
            auto_watermark_interval: default_auto_watermark_interval(),
            cluster: None,
        }
    }
}

/// Flink's default for `taskmanager.network.memory.max-buffers-per-channel`.
pub const DEFAULT_MAX_BUFFERS_PER_CHANNEL: usize = 10;

fn default_max_buffers_per_channel() -> usize {
    DEFAULT_MAX_BUFFERS_PER_CHANNEL
}

impl ExecutionConfig {
    /// Sets how often periodic watermark generators emit (zero: after every batch).
    pub fn set_auto_watermark_interval(&mut self, interval: Duration) -> &mut Self {
        self.auto_watermark_interval = interval;
        self
    }

    /// Checks every value; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_parallelism == 0 || self.max_parallelism > UPPER_BOUND_MAX_PARALLELISM {
            return Err(ConfigError::MaxParallelismOutOfRange(self.max_parallelism));
        }
        self.validate_parallelism("default", self.parallelism)?;
        if self.buffer_size < MIN_BUFFER_SIZE {
            return Err(ConfigError::BufferTooSmall {
                min: MIN_BUFFER_SIZE,
                got: self.buffer_size,
            });
        }
        if self.exclusive_buffers_per_channel == 0 {
            return Err(ConfigError::NoExclusiveBuffers);
        }
        if self.max_buffers_per_channel == 0 {
            return Err(ConfigError::NoBuffersPerChannel);
        }
        self.buffer_debloat.validate()?;
        if let Some(web_ui) = &self.web_ui {
            web_ui.validate()?;
        }
        if let Some(checkpointing) = &self.checkpointing {
            checkpointing.validate()?;
        }
        if let Some(restore) = &self.restore {
            restore.path.validate()?;
        }
        if let Some(strategy) = &self.restart_strategy {
            strategy.validate()?;
        }
        if let Some(cluster) = &self.cluster {
            cluster.validate()?;
        }
        Ok(())
    }

    /// The restart strategy in force: the one set, else Flink's default.
    pub fn effective_restart_strategy(&self) -> RestartStrategy {
        match (&self.restart_strategy, &self.checkpointing) {
            (Some(strategy), _) => strategy.clone(),
            (None, Some(_)) => RestartStrategy::default_exponential(),
            (None, None) => RestartStrategy::None,
        }
    }

    /// Checks a parallelism value against this config's max parallelism.
    pub fn validate_parallelism(&self, what: &str, parallelism: usize) -> Result<(), ConfigError> {
        if parallelism == 0 {
            return Err(ConfigError::ZeroParallelism { what: what.into() });
        }
        if parallelism > self.max_parallelism {
            return Err(ConfigError::ParallelismAboveMax {
                what: what.into(),
                parallelism,
                max_parallelism: self.max_parallelism,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_flink() {
        let c = ExecutionConfig::default();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!((c.max_parallelism, c.buffer_size), (128, 32768));
        assert_eq!(
            (c.exclusive_buffers_per_channel, c.floating_buffers_per_gate),
            (2, 8)
        );
        assert_eq!(c.max_buffers_per_channel, 10);
        assert_eq!(
            c.auto_watermark_interval,
            Duration::from_millis(200),
            "Flink's pipeline.auto-watermark-interval"
        );
    }

    #[test]
    fn a_config_without_the_watermark_interval_gets_the_200_ms_default() {
        let mut json = serde_json::to_value(ExecutionConfig::default()).unwrap();
        json.as_object_mut()
            .unwrap()
            .remove("auto_watermark_interval")
            .expect("the field is serialized");
        let read: ExecutionConfig = serde_json::from_value(json).unwrap();
        assert_eq!(read.auto_watermark_interval, Duration::from_millis(200));
    }

    #[test]
    fn bad_values_are_typed_errors() {
        let bad = |f: fn(&mut ExecutionConfig)| {
            let mut c = ExecutionConfig::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert_eq!(
            bad(|c| c.buffer_size = 0),
            ConfigError::BufferTooSmall { min: 64, got: 0 }
        );
        assert!(matches!(
            bad(|c| c.parallelism = 0),
            ConfigError::ZeroParallelism { .. }
        ));
        assert!(matches!(
            bad(|c| c.parallelism = 129),
            ConfigError::ParallelismAboveMax { .. }
        ));
        assert_eq!(
            bad(|c| c.max_parallelism = 0),
            ConfigError::MaxParallelismOutOfRange(0)
        );
        assert_eq!(
            bad(|c| c.exclusive_buffers_per_channel = 0),
            ConfigError::NoExclusiveBuffers
        );
        assert_eq!(
            bad(|c| c.max_buffers_per_channel = 0),
            ConfigError::NoBuffersPerChannel
        );
        assert!(matches!(
            bad(|c| c.buffer_debloat.target = Duration::ZERO),
            ConfigError::InvalidBufferDebloat { what, .. } if what == "target"
        ));
        assert!(matches!(
            bad(|c| c.buffer_debloat.min_buffer_size = 4),
            ConfigError::InvalidBufferDebloat { what, .. } if what == "min buffer size"
        ));
        // Debloating with buffers below its minimum size: valid, it never cuts them.
        let mut small = ExecutionConfig {
            buffer_size: MIN_BUFFER_SIZE,
            ..ExecutionConfig::default()
        };
        assert_eq!(small.validate(), Ok(()));
        small.buffer_debloat = BufferDebloatConfig::disabled();
        assert_eq!(small.validate(), Ok(()));
        let everywhere: std::net::SocketAddr = "0.0.0.0:8081".parse().unwrap();
        assert_eq!(
            bad(|c| c.web_ui = Some(WebUiConfig::new("0.0.0.0:8081".parse().unwrap()))),
            ConfigError::WebUiNotLoopback(everywhere)
        );
        assert_eq!(
            bad(|c| c.web_ui = Some(WebUiConfig::loopback(0).with_token(""))),
            ConfigError::EmptyWebUiToken
        );
        let mut exposed = ExecutionConfig::default();
        exposed.web_ui = Some(WebUiConfig::exposed(everywhere, None));
        assert_eq!(exposed.validate(), Ok(()));
    }
}
