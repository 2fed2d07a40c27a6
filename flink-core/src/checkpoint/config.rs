//! [`CheckpointConfig`]: how often and how a job takes checkpoints, as Flink's
//! `execution.checkpointing.*` options.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::location::KNOWN_SCHEMES;
use crate::error::ConfigError;

/// The shortest checkpoint interval accepted.
pub const MIN_CHECKPOINT_INTERVAL: Duration = Duration::from_millis(1);

/// What a checkpoint guarantees (Flink's `CheckpointingMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum CheckpointingMode {
    /// Barriers are aligned: a task with several inputs stops reading an input that
    /// delivered barrier `n` until every input did, so the snapshot holds exactly the
    /// records before the barrier. State is restored exactly once.
    #[default]
    ExactlyOnce,
    /// No alignment: a task snapshots when the last input delivered the barrier and
    /// keeps reading the others meanwhile; after a restore some records may be
    /// applied to state twice.
    AtLeastOnce,
}

/// Where completed checkpoints are stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckpointStorage {
    /// A directory of the local file system.
    Directory(std::path::PathBuf),
    /// A URL understood by the `object_store` crate (`file:///...`, `memory:///`,
    /// `s3://bucket/path`, ...); credentials come from the environment, as there.
    Url(String),
}

impl Default for CheckpointStorage {
    /// `flink-rs-checkpoints` in the system's temporary directory.
    fn default() -> Self {
        Self::Directory(std::env::temp_dir().join("flink-rs-checkpoints"))
    }
}

/// How a job takes checkpoints. Built by
/// [`enable_checkpointing`](crate::environment::StreamExecutionEnvironment::enable_checkpointing)
/// with Flink's defaults, changed with its setters, checked when the job is built.
///
/// ```
/// use std::time::Duration;
/// use flink_core::prelude::*;
///
/// let env = StreamExecutionEnvironment::new();
/// env.enable_checkpointing(Duration::from_secs(1))
///     .set_mode(CheckpointingMode::AtLeastOnce)
///     .set_retained_checkpoints(3);
/// let config = env.checkpoint_config().unwrap();
/// assert_eq!(config.retained_checkpoints, 3);
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointConfig {
    /// How often a checkpoint is triggered.
    pub interval: Duration,
    /// Aligned (exactly once) or not (at least once).
    pub mode: CheckpointingMode,
    /// A checkpoint not complete after this long fails (Flink's default: 10 minutes).
    pub timeout: Duration,
    /// The least time between the end of one checkpoint and the start of the next.
    pub min_pause_between_checkpoints: Duration,
    /// How many checkpoints may be in progress at once; only 1 is supported.
    pub max_concurrent_checkpoints: usize,
    /// How many checkpoint failures in a row the job tolerates before it fails
    /// (Flink's default: 0).
    pub tolerable_failed_checkpoints: usize,
    /// How many completed checkpoints are kept; older ones are deleted (Flink's
    /// `state.checkpoints.num-retained`, default 1).
    pub retained_checkpoints: usize,
    /// Where checkpoints are written: `<storage>/<job name>/chk-<id>/`.
    pub storage: CheckpointStorage,
    /// Unaligned checkpoints (Flink's `execution.checkpointing.unaligned.enabled`,
    /// exactly once only): barriers overtake the records in flight, which are stored
    /// with the checkpoint as channel state and replayed on restore. Savepoints stay
    /// aligned.
    #[serde(default)]
    pub unaligned: bool,
    /// With [`unaligned`](Self::unaligned): a checkpoint starts aligned and a task
    /// switches it to unaligned once its barrier is older than this (Flink's
    /// `execution.checkpointing.aligned-checkpoint-timeout`); `None` or zero:
    /// unaligned from the start.
    #[serde(default)]
    pub aligned_checkpoint_timeout: Option<Duration>,
}

impl CheckpointConfig {
    /// Flink's defaults, with checkpoints every `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            mode: CheckpointingMode::ExactlyOnce,
            timeout: Duration::from_secs(600),
            min_pause_between_checkpoints: Duration::ZERO,
            max_concurrent_checkpoints: 1,
            tolerable_failed_checkpoints: 0,
            retained_checkpoints: 1,
            storage: CheckpointStorage::default(),
            unaligned: false,
            aligned_checkpoint_timeout: None,
        }
    }

    /// Whether a barrier triggered at `triggered_ms` (job clock) is taken unaligned
    /// when a task sees it at `now_ms`: with unaligned checkpoints, at once without
    /// an aligned-checkpoint timeout, else once the barrier is older than it.
    pub fn unaligned_at(&self, triggered_ms: i64, now_ms: i64) -> bool {
        if !self.unaligned {
            return false;
        }
        match self.aligned_checkpoint_timeout {
            None => true,
            Some(d) if d.is_zero() => true,
            Some(d) => {
                let age = u128::try_from(now_ms.saturating_sub(triggered_ms)).unwrap_or(0);
                age > d.as_millis()
            }
        }
    }

    /// Checks every value; the first problem found is returned.
    ///
    /// # Errors
    /// The value that can never work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |what: &str, reason: String| {
            Err(ConfigError::InvalidCheckpointing {
                what: what.into(),
                reason,
            })
        };
        if self.interval < MIN_CHECKPOINT_INTERVAL {
            return bad(
                "interval",
                format!(
                    "must be at least {MIN_CHECKPOINT_INTERVAL:?}, got {:?}",
                    self.interval
                ),
            );
        }
        if self.timeout.is_zero() {
            return bad("timeout", "must be positive".into());
        }
        if self.max_concurrent_checkpoints != 1 {
            return bad(
                "max concurrent checkpoints",
                format!(
                    "only 1 is supported, got {}",
                    self.max_concurrent_checkpoints
                ),
            );
        }
        if self.retained_checkpoints == 0 {
            return bad("retained checkpoints", "must be at least 1, got 0".into());
        }
        if self.unaligned && self.mode != CheckpointingMode::ExactlyOnce {
            return bad(
                "unaligned checkpoints",
                "need the exactly-once mode (at least once does not align at all)".into(),
            );
        }
        if self.aligned_checkpoint_timeout.is_some() && !self.unaligned {
            return bad(
                "aligned checkpoint timeout",
                "switches an aligned checkpoint to unaligned, so it needs unaligned checkpoints enabled".into(),
            );
        }
        match &self.storage {
            CheckpointStorage::Directory(dir) if dir.as_os_str().is_empty() => {
                bad("storage", "the directory is empty".into())
            }
            CheckpointStorage::Url(url) => match url.split_once("://") {
                Some((scheme, _)) if KNOWN_SCHEMES.contains(&scheme) => Ok(()),
                Some((scheme, _)) => bad(
                    "storage",
                    format!("unknown URL scheme '{scheme}' in '{url}'"),
                ),
                None => bad("storage", format!("'{url}' is not a URL (scheme://...)")),
            },
            CheckpointStorage::Directory(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(c: &CheckpointConfig) -> String {
        c.validate().unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_valid_and_flinks() {
        let c = CheckpointConfig::new(Duration::from_millis(100));
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.mode, CheckpointingMode::ExactlyOnce);
        assert_eq!(c.retained_checkpoints, 1);
        assert_eq!(c.tolerable_failed_checkpoints, 0);
    }

    #[test]
    fn bad_values_are_named() {
        let base = CheckpointConfig::new(Duration::from_millis(100));
        let mut c = base.clone();
        c.interval = Duration::ZERO;
        assert!(invalid(&c).contains("interval"), "{}", invalid(&c));
        let mut c = base.clone();
        c.max_concurrent_checkpoints = 2;
        assert!(invalid(&c).contains("only 1 is supported"));
        let mut c = base.clone();
        c.retained_checkpoints = 0;
        assert!(invalid(&c).contains("retained checkpoints"));
        let mut c = base.clone();
        c.timeout = Duration::ZERO;
        assert!(invalid(&c).contains("timeout"));
        let mut c = base.clone();
        c.storage = CheckpointStorage::Url("ftp://host/x".into());
        assert!(invalid(&c).contains("unknown URL scheme 'ftp'"));
        let mut c = base.clone();
        c.unaligned = true;
        c.mode = CheckpointingMode::AtLeastOnce;
        assert!(invalid(&c).contains("unaligned checkpoints"));
        let mut c = base.clone();
        c.aligned_checkpoint_timeout = Some(Duration::ZERO);
        assert!(invalid(&c).contains("aligned checkpoint timeout"));
        c.unaligned = true;
        assert_eq!(c.validate(), Ok(()));
        let mut c = base;
        c.storage = CheckpointStorage::Url("s3://bucket/checkpoints".into());
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn a_barrier_goes_unaligned_after_the_aligned_timeout() {
        let mut c = CheckpointConfig::new(Duration::from_millis(100));
        assert!(!c.unaligned_at(0, 1_000_000), "aligned by default");
        c.unaligned = true;
        assert!(c.unaligned_at(0, 0), "unaligned from the start");
        c.aligned_checkpoint_timeout = Some(Duration::from_millis(50));
        assert!(!c.unaligned_at(1_000, 1_050));
        assert!(c.unaligned_at(1_000, 1_051));
    }
}
