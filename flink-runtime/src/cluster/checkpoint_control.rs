//! What the processes of one job tell each other about checkpoints, as control frames
//! on their connections: process 0 (the job manager, which runs the checkpoint
//! coordinator) triggers and completes checkpoints; every other process stores its own
//! tasks' states in the shared checkpoint storage and acknowledges with what it wrote.
//! A savepoint asked for in another process is forwarded to process 0, which runs it
//! as a checkpoint whose trigger names the savepoint's directory, and answers.

use flink_core::checkpoint::{CheckpointLocation, StopMode};
use serde::{Deserialize, Serialize};

use crate::checkpoint::SavepointError;
use crate::checkpoint::stats::BarrierArrival;
use crate::checkpoint::storage::TaskEntry;

/// What makes a triggered checkpoint a savepoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SavepointOrder {
    /// The savepoint's own directory, which every process writes its tasks' states to.
    pub(crate) path: CheckpointLocation,
    /// Whether and how the job stops with it (`stop_with_savepoint`, with or
    /// without drain): every source stops right after its barrier.
    pub(crate) stop: Option<StopMode>,
}

/// One checkpoint message between process 0 and another process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum CheckpointControl {
    /// Process 0 → others: sources take checkpoint `id` (barrier timestamp
    /// `timestamp`, ms on process 0's clock).
    Trigger {
        /// The checkpoint.
        id: u64,
        /// Its barrier's timestamp.
        timestamp: i64,
        /// Set when the checkpoint is a savepoint.
        #[serde(default)]
        savepoint: Option<SavepointOrder>,
    },
    /// Others → process 0: a task's state for checkpoint `id` is stored as `entry`.
    Ack {
        /// The checkpoint.
        id: u64,
        /// The stored file (vertex, subtask, name, length, checksum).
        entry: TaskEntry,
        /// How the task's barriers arrived.
        timing: BarrierArrival,
    },
    /// Others → process 0: checkpoint `id` cannot complete (its state could not be
    /// stored): it fails as a checkpoint of one process whose storage failed.
    Decline {
        /// The checkpoint.
        id: u64,
        /// Why.
        reason: String,
    },
    /// Others → process 0: a task's input ended; its process acknowledges every
    /// later checkpoint with its final state.
    Finished {
        /// Job vertex.
        vertex: usize,
        /// Subtask.
        subtask: usize,
    },
    /// Process 0 → others: checkpoint `id` (and every older one) completed: its
    /// `_metadata` is written; sinks commit (not for an intermediate savepoint).
    Complete {
        /// The checkpoint.
        id: u64,
    },
    /// Process 0 → others: checkpoint `id` failed: store nothing more for it and
    /// delete what was stored (a late write would leave a half-written savepoint).
    Abort {
        /// The checkpoint.
        id: u64,
    },
    /// Others → process 0: take a savepoint (asked for in the sending process),
    /// answer with [`SavepointAnswer`](Self::SavepointAnswer).
    SavepointRequest {
        /// The request's number in the sending process.
        request: u64,
        /// The directory the savepoint's own directory is created in.
        directory: CheckpointLocation,
        /// Whether and how the job stops with it.
        stop: Option<StopMode>,
    },
    /// Process 0 → the process that asked: the outcome of its savepoint request.
    SavepointAnswer {
        /// The request's number in the asking process.
        request: u64,
        /// The savepoint's location, or why there is none.
        outcome: Result<CheckpointLocation, SavepointError>,
    },
}

impl CheckpointControl {
    /// The message as a control frame's bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("checkpoint messages always serialize")
    }

    /// A control frame's bytes as a message; the error says what is wrong.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("unreadable checkpoint message: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_garbage_is_an_error() {
        let ack = CheckpointControl::Ack {
            id: 7,
            entry: TaskEntry {
                vertex: 1,
                subtask: 3,
                file: "task-1-3".into(),
                len: 42,
                checksum: 9,
            },
            timing: BarrierArrival {
                first_barrier_ms: 5,
                alignment_ms: 2,
                persisted_data: 0,
            },
        };
        let back = CheckpointControl::decode(&ack.encode()).unwrap();
        assert!(matches!(
            back,
            CheckpointControl::Ack { id: 7, ref entry, timing }
                if entry.subtask == 3 && entry.len == 42 && timing.alignment_ms == 2
        ));
        assert!(CheckpointControl::decode(b"{\"Nope\":1}").is_err());
        let answer = CheckpointControl::SavepointAnswer {
            request: 3,
            outcome: Err(SavepointError::Failed("timed out".into())),
        };
        assert!(matches!(
            CheckpointControl::decode(&answer.encode()).unwrap(),
            CheckpointControl::SavepointAnswer { request: 3, outcome: Err(SavepointError::Failed(r)) }
                if r == "timed out"
        ));
        let trigger = CheckpointControl::Trigger {
            id: 4,
            timestamp: 1,
            savepoint: Some(SavepointOrder {
                path: CheckpointLocation::from("s3://bucket/sp/savepoint-job-4"),
                stop: Some(StopMode::NoDrain),
            }),
        };
        assert!(matches!(
            CheckpointControl::decode(&trigger.encode()).unwrap(),
            CheckpointControl::Trigger { id: 4, savepoint: Some(order), .. }
                if order.stop == Some(StopMode::NoDrain) && order.path.to_string() == "s3://bucket/sp/savepoint-job-4"
        ));
    }
}
