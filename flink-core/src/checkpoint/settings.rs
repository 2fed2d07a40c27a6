//! [`CheckpointSettings`]: the setters `enable_checkpointing` returns, as Flink's
//! `env.getCheckpointConfig()`.

use std::time::Duration;

use crate::checkpoint::{CheckpointConfig, CheckpointStorage, CheckpointingMode};
use crate::environment::StreamExecutionEnvironment;

/// Changes the checkpoint configuration of an environment; every value is checked
/// when the job is built.
pub struct CheckpointSettings {
    env: StreamExecutionEnvironment,
}

impl CheckpointSettings {
    pub(crate) fn new(env: StreamExecutionEnvironment) -> Self {
        Self { env }
    }

    fn set(self, f: impl FnOnce(&mut CheckpointConfig)) -> Self {
        self.env.configure(|c| {
            if let Some(checkpointing) = &mut c.checkpointing {
                f(checkpointing);
            }
        });
        self
    }

    /// Exactly once (aligned barriers, the default) or at least once.
    pub fn set_mode(self, mode: CheckpointingMode) -> Self {
        self.set(|c| c.mode = mode)
    }

    /// A checkpoint not complete after `timeout` fails.
    pub fn set_timeout(self, timeout: Duration) -> Self {
        self.set(|c| c.timeout = timeout)
    }

    /// The least time between the end of a checkpoint and the start of the next.
    pub fn set_min_pause_between_checkpoints(self, pause: Duration) -> Self {
        self.set(|c| c.min_pause_between_checkpoints = pause)
    }

    /// Checkpoints in progress at once (only 1 is supported).
    pub fn set_max_concurrent_checkpoints(self, n: usize) -> Self {
        self.set(|c| c.max_concurrent_checkpoints = n)
    }

    /// Checkpoint failures in a row tolerated before the job fails.
    pub fn set_tolerable_failed_checkpoints(self, n: usize) -> Self {
        self.set(|c| c.tolerable_failed_checkpoints = n)
    }

    /// Completed checkpoints kept.
    pub fn set_retained_checkpoints(self, n: usize) -> Self {
        self.set(|c| c.retained_checkpoints = n)
    }

    /// Unaligned checkpoints (exactly once only; Flink's
    /// `enableUnalignedCheckpoints`): barriers overtake the records in flight, which
    /// are stored with the checkpoint and replayed on restore, so a checkpoint does
    /// not wait for back-pressured data. See docs/checkpoints.md.
    pub fn enable_unaligned_checkpoints(self, enabled: bool) -> Self {
        self.set(|c| c.unaligned = enabled)
    }

    /// With unaligned checkpoints: start each checkpoint aligned and switch a task
    /// to unaligned once the checkpoint's barrier is older than `timeout` on the
    /// job's clock (Flink's `aligned-checkpoint-timeout`; zero: unaligned at once).
    /// Without unaligned checkpoints enabled it is a `ConfigError`.
    pub fn aligned_checkpoint_timeout(self, timeout: Duration) -> Self {
        self.set(|c| c.aligned_checkpoint_timeout = Some(timeout))
    }

    /// Stores checkpoints in the local directory `dir`.
    pub fn set_storage_dir(self, dir: impl Into<std::path::PathBuf>) -> Self {
        let dir = dir.into();
        self.set(|c| c.storage = CheckpointStorage::Directory(dir))
    }

    /// Stores checkpoints at `url`, any URL the `object_store` crate parses
    /// (`s3://bucket/path`, `file:///tmp/x`, `memory:///`).
    pub fn set_storage_url(self, url: impl Into<String>) -> Self {
        let url = url.into();
        self.set(|c| c.storage = CheckpointStorage::Url(url))
    }
}
