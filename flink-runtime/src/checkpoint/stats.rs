//! [`CheckpointStats`]: what the coordinator records of each checkpoint for the
//! REST API (`GET /jobs/{id}/checkpoints`, shaped like Flink's) and `/metrics`:
//! counts, the latest completed, failed, savepoint and restore, and a bounded
//! history with each task's acknowledgement.

use std::collections::VecDeque;
use std::path::PathBuf;
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

    /// From trigger to completion (or failure, or the latest acknowledgement while
    /// in progress), in ms.
    pub(crate) fn duration_ms(&self) -> u64 {
        self.end_timestamp
            .unwrap_or(self.latest_ack_timestamp)
            .saturating_sub(self.trigger_timestamp)
    }
}

/// The checkpoint a run restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RestoredRecord {
    pub(crate) id: u64,
    /// Wall-clock ms since the epoch.
    pub(crate) restore_timestamp: u64,
    /// The savepoint or checkpoint directory (`restore_from`), or `None` for a
    /// checkpoint of this run restored after a failure.
    pub(crate) external_path: Option<PathBuf>,
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
    pub(crate) fn acknowledged(&self, id: u64, vertex: usize, subtask: usize, state_size: u64) {
        let now = now_ms();
        let mut s = self.inner.lock();
        if let Some(r) = s.history.iter_mut().find(|r| r.id == id) {
            r.latest_ack_timestamp = now;
            r.acks.push(TaskAck {
                vertex,
                subtask,
                ack_timestamp: now,
                state_size,
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

    /// The run restored checkpoint `id` (from `path` if given by the user).
    pub(crate) fn restored(&self, id: u64, path: Option<PathBuf>) {
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
            stats.acknowledged(id, 0, 0, 10);
            stats.acknowledged(id, 1, 0, 5);
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
        let failed = s.latest_failed.unwrap();
        assert_eq!(failed.failure_message.as_deref(), Some("timed out"));
    }
}
