//! [`CheckpointStats`]: what the coordinator records of each checkpoint for the
//! REST API (`GET /jobs/{id}/checkpoints`, shaped like Flink's) and `/metrics`:
//! counts, the latest completed, failed, savepoint and restore, and a bounded
//! history with each task's acknowledgement.

use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

/// Checkpoints kept in the history (Flink's `web.checkpoints.history`, default 10).
pub(crate) const HISTORY: usize = 10;

/// Where a checkpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    InProgress,
    Completed,
    Failed,
}

impl Status {
    /// Flink's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::InProgress => "IN_PROGRESS",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
        }
    }
}

/// One task's acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TaskAck {
    pub(crate) vertex: usize,
    pub(crate) subtask: usize,
    /// Wall-clock ms since the epoch.
    pub(crate) ack_timestamp: u64,
    /// Bytes of its state file.
    pub(crate) state_size: u64,
    /// Timing of the task's barrier handling (zero for a source or a task that
    /// finished before the barrier came).
    pub(crate) timing: BarrierTiming,
    /// Bytes of in-flight data it stored (unaligned checkpoints).
    pub(crate) persisted_data: u64,
}

/// When a task saw a checkpoint's barriers, as it reports them with its
/// acknowledgement (zero for a source or a task that finished before the barrier).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct BarrierArrival {
    /// Wall-clock ms since the epoch of its first barrier (0: none).
    pub(crate) first_barrier_ms: u64,
    /// From its first barrier to its last, in ms.
    pub(crate) alignment_ms: u64,
    /// Bytes of in-flight data it stored (channel state of an unaligned checkpoint).
    pub(crate) persisted_data: u64,
}

/// How long one task took over a checkpoint's barriers, as Flink's per-subtask
/// `alignment_duration` and `checkpoint_start_delay`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BarrierTiming {
    /// From the checkpoint's trigger to the task's first barrier, in ms: the time
    /// the barrier spent behind records in flight.
    pub start_delay_ms: u64,
    /// From the task's first barrier of the checkpoint to its last, in ms: the time
    /// its channels were blocked (zero with one input channel).
    pub alignment_ms: u64,
}

/// One checkpoint or savepoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckpointRecord {
    pub(crate) id: u64,
    pub(crate) status: Status,
    pub(crate) is_savepoint: bool,
    /// Wall-clock ms since the epoch.
    pub(crate) trigger_timestamp: u64,
    /// The last acknowledgement's time, or the trigger's before any.
    pub(crate) latest_ack_timestamp: u64,
    /// When it completed or failed.
    pub(crate) end_timestamp: Option<u64>,
    pub(crate) num_subtasks: usize,
    pub(crate) acks: Vec<TaskAck>,
    /// Where it is stored, once complete.
    pub(crate) external_path: Option<String>,
    pub(crate) failure_message: Option<String>,
}

impl CheckpointRecord {
    /// Bytes of every acknowledged task's state.
    pub(crate) fn state_size(&self) -> u64 {
        self.acks.iter().map(|a| a.state_size).sum()
    }

    /// Bytes of in-flight data every acknowledged task stored.
    pub(crate) fn persisted_data(&self) -> u64 {
        self.acks.iter().map(|a| a.persisted_data).sum()
    }

    /// The longest alignment and start delay of any task.
    pub(crate) fn max_timing(&self) -> BarrierTiming {
        self.acks
            .iter()
            .fold(BarrierTiming::default(), |m, a| BarrierTiming {
                start_delay_ms: m.start_delay_ms.max(a.timing.start_delay_ms),
                alignment_ms: m.alignment_ms.max(a.timing.alignment_ms),
            })
    }

    /// From trigger to completion (or failure, or the latest acknowledgement while
    /// in progress), in ms.
    pub(crate) fn duration_ms(&self) -> u64 {
        self.end_timestamp
            .unwrap_or(self.latest_ack_timestamp)
            .saturating_sub(self.trigger_timestamp)
    }
}

/// What a job client sees of a completed checkpoint
/// ([`JobClient::completed_checkpoints`](crate::job_client::JobClient::completed_checkpoints)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedCheckpoint {
    /// The checkpoint's id.
    pub id: u64,
    /// From trigger to completion, in ms.
    pub duration_ms: u64,
    /// Bytes of every task's state.
    pub state_size: u64,
    /// The longest start delay and the longest alignment of any task.
    pub max_timing: BarrierTiming,
    /// Bytes of records in flight stored with it (Flink's `persisted_data`): the
    /// channel state of an unaligned checkpoint; 0 for an aligned one. Included in
    /// `state_size`.
    pub persisted_data: u64,
}

/// A checkpoint in progress
/// ([`JobClient::pending_checkpoint`](crate::job_client::JobClient::pending_checkpoint)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingCheckpoint {
    /// The checkpoint's id.
    pub id: u64,
    /// Tasks that acknowledged it so far.
    pub acknowledged: usize,
    /// Tasks that must acknowledge it.
    pub num_subtasks: usize,
}

/// The checkpoint a run restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RestoredRecord {
    pub(crate) id: u64,
    /// Wall-clock ms since the epoch.
    pub(crate) restore_timestamp: u64,
    /// The savepoint or checkpoint directory (`restore_from`), or `None` for a
    /// checkpoint of this run restored after a failure.
    pub(crate) external_path: Option<String>,
}

/// Everything recorded; read under the lock by the REST API.
#[derive(Debug, Default, Clone)]
pub(crate) struct StatsSnapshot {
    pub(crate) completed: u64,
    pub(crate) failed: u64,
    pub(crate) restored: u64,
    /// Newest first, at most [`HISTORY`].
    pub(crate) history: VecDeque<CheckpointRecord>,
    pub(crate) latest_completed: Option<CheckpointRecord>,
    pub(crate) latest_savepoint: Option<CheckpointRecord>,
    pub(crate) latest_failed: Option<CheckpointRecord>,
    pub(crate) latest_restored: Option<RestoredRecord>,
}

impl StatsSnapshot {
    /// Checkpoints in progress (0 or 1).
    pub(crate) fn in_progress(&self) -> u64 {
        self.history
            .iter()
            .filter(|r| r.status == Status::InProgress)
            .count() as u64
    }
}

/// The stats of one job, shared by its coordinator and its REST API.
#[derive(Debug, Default)]
pub(crate) struct CheckpointStats {
    inner: Mutex<StatsSnapshot>,
}

/// Now, in wall-clock ms since the epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl CheckpointStats {
    /// A copy of everything recorded.
    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        self.inner.lock().clone()
    }

    /// Checkpoint `id` was triggered, for `num_subtasks` tasks.
    pub(crate) fn triggered(&self, id: u64, is_savepoint: bool, num_subtasks: usize) {
        let now = now_ms();
        let mut s = self.inner.lock();
        s.history.push_front(CheckpointRecord {
            id,
            status: Status::InProgress,
            is_savepoint,
            trigger_timestamp: now,
            latest_ack_timestamp: now,
            end_timestamp: None,
            num_subtasks,
            acks: Vec::new(),
            external_path: None,
            failure_message: None,
        });
        s.history.truncate(HISTORY);
    }

    /// A task's state for `id` is stored.
    pub(crate) fn acknowledged(
        &self,
        id: u64,
        vertex: usize,
        subtask: usize,
        state_size: u64,
        arrival: BarrierArrival,
    ) {
        let now = now_ms();
        let mut s = self.inner.lock();
        if let Some(r) = s.history.iter_mut().find(|r| r.id == id) {
            let timing = BarrierTiming {
                // Both are wall-clock: the barrier's own timestamp is the job clock's.
                start_delay_ms: arrival.first_barrier_ms.saturating_sub(r.trigger_timestamp),
                alignment_ms: arrival.alignment_ms,
            };
            r.latest_ack_timestamp = now;
            r.acks.push(TaskAck {
                vertex,
                subtask,
                ack_timestamp: now,
                state_size,
                timing,
                persisted_data: arrival.persisted_data,
            });
        }
    }

    /// `id` completed, stored at `path`.
    pub(crate) fn completed(&self, id: u64, path: String) {
        let now = now_ms();
        let mut s = self.inner.lock();
        let Some(r) = s.history.iter_mut().find(|r| r.id == id) else {
            return;
        };
        r.status = Status::Completed;
        r.end_timestamp = Some(now);
        r.external_path = Some(path);
        let record = r.clone();
        s.completed += 1;
        if record.is_savepoint {
            s.latest_savepoint = Some(record);
        } else {
            s.latest_completed = Some(record);
        }
    }

    /// `id` failed because of `reason`.
    pub(crate) fn failed(&self, id: u64, reason: &str) {
        let now = now_ms();
        let mut s = self.inner.lock();
        s.failed += 1;
        if let Some(r) = s.history.iter_mut().find(|r| r.id == id) {
            r.status = Status::Failed;
            r.end_timestamp = Some(now);
            r.failure_message = Some(reason.to_string());
            let record = r.clone();
            s.latest_failed = Some(record);
        }
    }

    /// The completed checkpoints still in the history, newest first.
    pub(crate) fn completed_summaries(&self) -> Vec<CompletedCheckpoint> {
        let s = self.inner.lock();
        s.history
            .iter()
            .filter(|r| r.status == Status::Completed && !r.is_savepoint)
            .map(|r| CompletedCheckpoint {
                id: r.id,
                duration_ms: r.duration_ms(),
                state_size: r.state_size(),
                max_timing: r.max_timing(),
                persisted_data: r.persisted_data(),
            })
            .collect()
    }

    /// The checkpoint in progress, if any.
    pub(crate) fn pending(&self) -> Option<PendingCheckpoint> {
        let s = self.inner.lock();
        s.history
            .iter()
            .find(|r| r.status == Status::InProgress)
            .map(|r| PendingCheckpoint {
                id: r.id,
                acknowledged: r.acks.len(),
                num_subtasks: r.num_subtasks,
            })
    }

    /// The run restored checkpoint `id` (from `path` if given by the user).
    pub(crate) fn restored(&self, id: u64, path: Option<String>) {
        let mut s = self.inner.lock();
        s.restored += 1;
        s.latest_restored = Some(RestoredRecord {
            id,
            restore_timestamp: now_ms(),
            external_path: path,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_flow_into_counts_latest_and_a_bounded_history() {
        let stats = CheckpointStats::default();
        for id in 1..=12 {
            stats.triggered(id, false, 2);
            let trigger = stats.snapshot().history[0].trigger_timestamp;
            let timing = BarrierArrival {
                first_barrier_ms: trigger + id,
                alignment_ms: 3,
                persisted_data: 0,
            };
            stats.acknowledged(id, 0, 0, 10, BarrierArrival::default());
            stats.acknowledged(id, 1, 0, 5, timing);
            if id == 12 {
                stats.failed(id, "timed out");
            } else {
                stats.completed(id, format!("/c/chk-{id}"));
            }
        }
        let s = stats.snapshot();
        assert_eq!((s.completed, s.failed, s.in_progress()), (11, 1, 0));
        assert_eq!(s.history.len(), HISTORY);
        assert_eq!(s.history[0].id, 12, "newest first");
        let latest = s.latest_completed.unwrap();
        assert_eq!(
            (latest.id, latest.state_size(), latest.acks.len()),
            (11, 15, 2)
        );
        assert_eq!(latest.external_path.as_deref(), Some("/c/chk-11"));
        assert_eq!(
            latest.max_timing(),
            BarrierTiming {
                start_delay_ms: 11,
                alignment_ms: 3
            }
        );
        let summaries = stats.completed_summaries();
        assert_eq!(summaries.len(), HISTORY - 1, "the failed one is left out");
        assert_eq!((summaries[0].id, summaries[0].state_size), (11, 15));
        assert_eq!(summaries[0].max_timing.start_delay_ms, 11);
        let failed = s.latest_failed.unwrap();
        assert_eq!(failed.failure_message.as_deref(), Some("timed out"));
    }
}
