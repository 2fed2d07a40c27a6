//! Savepoints asked for through the job client (`JobClient::trigger_savepoint`,
//! `JobClient::stop_with_savepoint`): the request the coordinator takes and the
//! error a caller gets.

use std::sync::mpsc::SyncSender;

use flink_core::checkpoint::CheckpointLocation;
use thiserror::Error;

/// Why a savepoint was not taken.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SavepointError {
    /// The job takes no checkpoints: its tasks have no barriers to take one with.
    #[error("the job has checkpointing disabled; enable_checkpointing to take savepoints")]
    CheckpointingDisabled,
    /// The job ended (or its coordinator is gone) before the savepoint completed.
    #[error("the job ended before the savepoint completed")]
    JobEnded,
    /// Too many savepoints are waiting already.
    #[error("too many savepoints are waiting to be taken")]
    TooManyRequests,
    /// The job runs across several processes: savepoints are taken in one process
    /// only (checkpoints work across processes; restore from a retained one).
    #[error(
        "savepoints of a job spread over several processes are not supported yet; restore from a retained checkpoint instead"
    )]
    AcrossProcesses,
    /// The target is no usable location (a URL of an unknown scheme); nothing was
    /// asked of the job.
    #[error("savepoint target {location}: {reason}")]
    InvalidLocation {
        /// The target as given.
        location: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The savepoint failed: timed out, could not be stored, or the job restarted.
    #[error("savepoint failed: {0}")]
    Failed(String),
}

/// A savepoint to take.
pub(crate) struct SavepointRequest {
    /// The directory (local or in an object store) the savepoint's own directory
    /// is created in.
    pub(crate) directory: CheckpointLocation,
    /// Whether the job stops after it.
    pub(crate) stop: bool,
    /// Where the outcome goes.
    pub(crate) reply: SyncSender<Result<CheckpointLocation, SavepointError>>,
}

/// Savepoint requests a job's coordinator has not yet seen (a bound, so a caller
/// gets [`SavepointError::TooManyRequests`] instead of queueing without end).
pub(crate) const MAX_WAITING_SAVEPOINTS: usize = 4;
