//! [`RestoreSettings`]: the savepoint or retained checkpoint a job starts from
//! (`StreamExecutionEnvironment::restore_from`, Flink's `--fromSavepoint`).

use serde::{Deserialize, Serialize};

use super::CheckpointLocation;

/// Where a job's initial state comes from, and how strictly it must match the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreSettings {
    /// A savepoint directory, or a retained checkpoint's `chk-<n>` directory: the
    /// directory that holds `_metadata`, local or in an object store.
    pub path: CheckpointLocation,
    /// Whether state of an operator uid that no operator of the job has is skipped
    /// (Flink's `--allowNonRestoredState`) instead of failing the submission.
    pub allow_non_restored_state: bool,
}

impl RestoreSettings {
    /// Restores from `path`, refusing state that no operator owns.
    pub fn new(path: impl Into<CheckpointLocation>) -> Self {
        Self {
            path: path.into(),
            allow_non_restored_state: false,
        }
    }
}
