//! Savepoints asked for through the job client (`JobClient::trigger_savepoint`,
//! `JobClient::stop_with_savepoint`): the request the coordinator takes and the
//! error a caller gets, and where the outcome goes (a caller in this process, or one
//! in another process of a job spread over several, whose request process 0 runs).

use std::sync::Arc;
use std::sync::mpsc::SyncSender;

use flink_core::checkpoint::{CheckpointLocation, StopMode};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::cluster::{CheckpointControl, ClusterLinks};

/// Why a savepoint was not taken. Serializable: across processes, process 0 sends
/// it back to the process where the savepoint was asked for.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum SavepointError {
    /// The job takes no checkpoints: its tasks have no barriers to take one with.
    #[error("the job has checkpointing disabled; enable_checkpointing to take savepoints")]
    CheckpointingDisabled,
    /// The job ended (or its coordinator is gone) before the savepoint completed.
    #[error("the job ended before the savepoint completed")]
    JobEnded,
    /// Too many savepoints are waiting already (in this process, or, for a job
    /// spread over several, forwarded to process 0).
    #[error("too many savepoints are waiting to be taken")]
    TooManyRequests,
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
    /// Whether and how the job stops after it.
    pub(crate) stop: Option<StopMode>,
    /// Where the outcome goes.
    pub(crate) reply: SavepointReply,
}

/// The outcome of a savepoint request.
pub(crate) type SavepointOutcome = Result<CheckpointLocation, SavepointError>;

/// Where a savepoint's outcome goes.
pub(crate) enum SavepointReply {
    /// A caller in this process waits on the channel.
    Local(SyncSender<SavepointOutcome>),
    /// A caller in process `peer` waits for the answer to its request `request`
    /// (process 0 runs the savepoints of a job spread over processes).
    Remote {
        /// The links to the other processes.
        links: Arc<ClusterLinks>,
        /// The asking process.
        peer: usize,
        /// The request's number in that process.
        request: u64,
    },
}

impl SavepointReply {
    /// Hands `outcome` to the caller; a caller gone (its process or its thread)
    /// is no error here.
    pub(crate) fn send(self, outcome: SavepointOutcome) {
        match self {
            Self::Local(reply) => {
                let _ = reply.send(outcome);
            }
            Self::Remote {
                links,
                peer,
                request,
            } => links.send_checkpoint(
                peer,
                &CheckpointControl::SavepointAnswer { request, outcome },
            ),
        }
    }
}

/// Savepoint requests a job's coordinator has not yet seen (a bound, so a caller
/// gets [`SavepointError::TooManyRequests`] instead of queueing without end).
pub(crate) const MAX_WAITING_SAVEPOINTS: usize = 4;

/// Savepoint requests a process other than 0 forwarded and waits for answers to, and
/// forwarded requests process 0 queues (beyond it: [`SavepointError::TooManyRequests`]).
pub(crate) const MAX_FORWARDED_SAVEPOINTS: usize = 4;
