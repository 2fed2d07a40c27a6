//! What the processes of one job tell each other about checkpoints, as control frames
//! on their connections: process 0 (the job manager, which runs the checkpoint
//! coordinator) triggers and completes checkpoints; every other process stores its own
//! tasks' states in the shared checkpoint storage and acknowledges with what it wrote.

use serde::{Deserialize, Serialize};

use crate::checkpoint::stats::BarrierArrival;
use crate::checkpoint::storage::TaskEntry;

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
    /// `_metadata` is written; sinks commit.
    Complete {
        /// The checkpoint.
        id: u64,
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
    }
}
