//! A task's side of checkpointing: it sees triggers (sources), acknowledges its
//! snapshots, learns of completed checkpoints, and, once its input ended, waits for
//! a checkpoint that holds its final state before it commits and exits.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::time::Duration;

use flink_core::checkpoint::{
    ChainSnapshot, CheckpointBarrier, CheckpointConfig, CheckpointingMode, StopMode,
};
use flink_core::clock::Clock;

use super::channel_state::{ChannelState, OutputChannelState};
use super::stats::BarrierArrival;
use crate::network::CancelToken;
use crate::task::TaskOutcome;

/// What one attempt's tasks tell its coordinator.
pub(crate) enum TaskMessage {
    /// The task ended: (vertex, subtask, parallelism, outcome).
    Outcome(usize, usize, usize, TaskOutcome),
    /// The task snapshotted checkpoint `checkpoint`.
    Ack {
        checkpoint: u64,
        vertex: usize,
        subtask: usize,
        snapshot: ChainSnapshot,
        /// How long its barriers took to arrive.
        timing: BarrierArrival,
    },
    /// The task's input ended; `snapshot` is its final state, to be used for every
    /// checkpoint it did not acknowledge.
    Finished {
        vertex: usize,
        subtask: usize,
        snapshot: ChainSnapshot,
    },
}

/// What the coordinator tells the tasks of one attempt, through atomics they read
/// between records (no queue to overflow: a trigger or completion supersedes the
/// previous one, and completions are cumulative).
#[derive(Debug, Default)]
pub(crate) struct CheckpointSignals {
    triggered: AtomicU64,
    triggered_at: AtomicI64,
    completed: AtomicU64,
    /// The newest savepoint's id: savepoints are always aligned.
    savepoint: AtomicU64,
    /// The id of a savepoint that stops the job without drain: its barrier ends
    /// every task. (A savepoint with a drain is taken once every task finished, so
    /// no task sees a stopping barrier for it.)
    stop_after: AtomicU64,
}

impl CheckpointSignals {
    /// Sources take checkpoint `barrier` at their next chance.
    pub(crate) fn trigger(&self, barrier: CheckpointBarrier, savepoint: bool) {
        if savepoint {
            self.savepoint.store(barrier.id, Ordering::SeqCst);
        }
        self.triggered_at.store(barrier.timestamp, Ordering::SeqCst);
        self.triggered.store(barrier.id, Ordering::SeqCst);
    }

    /// The barrier of checkpoint `id` (a savepoint) stops the job without drain:
    /// the sources send it as a stopping barrier and read nothing after it.
    pub(crate) fn stop_without_drain_after(&self, id: u64) {
        self.stop_after.store(id, Ordering::SeqCst);
    }

    /// Checkpoint `id` (and every older one) completed.
    pub(crate) fn complete(&self, id: u64) {
        self.completed.fetch_max(id, Ordering::SeqCst);
    }

    fn triggered(&self) -> u64 {
        self.triggered.load(Ordering::SeqCst)
    }
}

/// How long a finished task sleeps between checks for its final checkpoint.
const FINAL_WAIT_SLICE: Duration = Duration::from_millis(1);

/// One task's handle on checkpointing.
pub(crate) struct TaskCheckpointing {
    pub(crate) mode: CheckpointingMode,
    pub(crate) signals: Arc<CheckpointSignals>,
    pub(crate) messages: SyncSender<TaskMessage>,
    pub(crate) vertex: usize,
    pub(crate) subtask: usize,
    /// The newest trigger this (source) task acted on.
    pub(crate) seen_trigger: u64,
    /// The newest completion the chain was told of.
    pub(crate) notified: u64,
    /// The job's checkpoint settings (unaligned, aligned-checkpoint timeout).
    pub(crate) config: Arc<CheckpointConfig>,
    /// The job's clock, which the aligned-checkpoint timeout is measured on.
    pub(crate) clock: Arc<dyn Clock>,
    /// What the task's network outputs overtook with an unaligned barrier.
    pub(crate) output_state: Arc<OutputChannelState>,
    /// The task's channel state in the checkpoint it restores from.
    pub(crate) restored_channels: Option<Arc<ChannelState>>,
}

impl TaskCheckpointing {
    /// A checkpoint triggered since the last call (for source tasks).
    pub(crate) fn new_trigger(&mut self) -> Option<CheckpointBarrier> {
        let id = self.signals.triggered();
        if id <= self.seen_trigger {
            return None;
        }
        self.seen_trigger = id;
        let stops = self.signals.stop_after.load(Ordering::SeqCst) == id;
        let stop = stops.then_some(StopMode::NoDrain);
        Some(CheckpointBarrier {
            id,
            timestamp: self.signals.triggered_at.load(Ordering::SeqCst),
            stop,
        })
    }

    /// Whether `barrier`, seen now, is taken unaligned: with unaligned checkpoints
    /// enabled, not a savepoint (a stopping barrier is one, whatever this process's
    /// coordinator heard yet), and past the aligned-checkpoint timeout if any.
    pub(crate) fn unaligned_now(&self, barrier: CheckpointBarrier) -> bool {
        let now = i64::try_from(self.clock.now().as_millis()).unwrap_or(i64::MAX);
        self.config.unaligned_at(barrier.timestamp, now)
            && barrier.stop.is_none()
            && self.signals.savepoint.load(Ordering::SeqCst) != barrier.id
    }

    /// Whether an aligned `barrier` sent now may still go unaligned in the task's
    /// output queues when its timeout passes there: unaligned checkpoints with an
    /// aligned-checkpoint timeout, and not a savepoint.
    pub(crate) fn timeoutable(&self, barrier: CheckpointBarrier) -> bool {
        self.config.unaligned
            && self.config.aligned_checkpoint_timeout.is_some()
            && barrier.stop.is_none()
            && self.signals.savepoint.load(Ordering::SeqCst) != barrier.id
    }

    /// The newest checkpoint completed since the last call.
    pub(crate) fn newly_completed(&mut self) -> Option<u64> {
        let id = self.signals.completed.load(Ordering::SeqCst);
        (id > self.notified).then(|| {
            self.notified = id;
            id
        })
    }

    /// The acknowledgement of a checkpoint with the chain's state, as a function
    /// that outlives this borrow (an acknowledgement may be held until the barrier
    /// left the output queues).
    pub(crate) fn acker(&self) -> impl FnOnce(u64, ChainSnapshot, BarrierArrival) + Send + 'static {
        let (messages, vertex, subtask) = (self.messages.clone(), self.vertex, self.subtask);
        move |checkpoint, snapshot, timing| {
            // A closed channel means the coordinator is gone: the job is ending anyway.
            let _ = messages.send(TaskMessage::Ack {
                checkpoint,
                vertex,
                subtask,
                snapshot,
                timing,
            });
        }
    }

    /// The input ended: reports the final state and waits until a checkpoint
    /// triggered after this moment completed (it holds the final state), or the job
    /// is cancelled. Returns whether it completed.
    pub(crate) fn finish_and_wait(&self, snapshot: ChainSnapshot, cancel: &CancelToken) -> bool {
        let before = self.signals.triggered();
        let _ = self.messages.send(TaskMessage::Finished {
            vertex: self.vertex,
            subtask: self.subtask,
            snapshot,
        });
        loop {
            if self.signals.completed.load(Ordering::SeqCst) > before {
                return true;
            }
            if cancel.is_cancelled() {
                return false;
            }
            std::thread::sleep(FINAL_WAIT_SLICE);
        }
    }
}
