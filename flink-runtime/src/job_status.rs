//! [`JobState`]: where a job is in its life, as Flink names it, and the cell the
//! job's coordinator records its end in (read by the client and the REST API).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use parking_lot::Mutex;
use serde::Serialize;

use crate::job_result::{JobError, JobExecutionResult};

/// A job's state, with Flink's names (`RUNNING`, `CANCELLING`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    /// Its tasks run (also while a stop drains it).
    Running,
    /// A cancellation was requested; its tasks are stopping.
    Cancelling,
    /// It ended successfully: its input ended or it was stopped with a drain.
    Finished,
    /// It was cancelled.
    Canceled,
    /// An operator failed, or the runtime could not run it.
    Failed,
}

impl JobState {
    /// Whether the job has ended.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Finished | Self::Canceled | Self::Failed)
    }

    /// Flink's spelling, e.g. `"RUNNING"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Cancelling => "CANCELLING",
            Self::Finished => "FINISHED",
            Self::Canceled => "CANCELED",
            Self::Failed => "FAILED",
        }
    }
}

/// How a job ended.
#[derive(Debug, Clone)]
pub(crate) struct JobEnd {
    pub(crate) state: JobState,
    pub(crate) at: SystemTime,
    /// Whether it ended by a stop (drain).
    pub(crate) stopped: bool,
    /// Why it failed or what the cancellation dropped.
    pub(crate) error: Option<JobError>,
}

/// The job's start and, once known, its end; shared by the coordinator (writer) and
/// observers.
#[derive(Debug)]
pub(crate) struct JobStatusCell {
    pub(crate) started_at: SystemTime,
    cancel_requested: Arc<AtomicBool>,
    end: Mutex<Option<JobEnd>>,
}

impl JobStatusCell {
    /// A running job started now, cancelled once `cancel_requested` is set.
    pub(crate) fn new(cancel_requested: Arc<AtomicBool>) -> Arc<Self> {
        Arc::new(Self {
            started_at: SystemTime::now(),
            cancel_requested,
            end: Mutex::new(None),
        })
    }

    /// Records how the job ended.
    pub(crate) fn finish(&self, result: &Result<JobExecutionResult, JobError>) {
        let (state, stopped, error) = match result {
            Ok(r) => (JobState::Finished, r.stopped, None),
            Err(e @ JobError::Cancelled { .. }) => (JobState::Canceled, false, Some(e.clone())),
            Err(e) => (JobState::Failed, false, Some(e.clone())),
        };
        *self.end.lock() = Some(JobEnd {
            state,
            at: SystemTime::now(),
            stopped,
            error,
        });
    }

    /// The current state.
    pub(crate) fn state(&self) -> JobState {
        match &*self.end.lock() {
            Some(end) => end.state,
            None if self.cancel_requested.load(Ordering::SeqCst) => JobState::Cancelling,
            None => JobState::Running,
        }
    }

    /// How the job ended, once it has.
    pub(crate) fn end(&self) -> Option<JobEnd> {
        self.end.lock().clone()
    }
}
