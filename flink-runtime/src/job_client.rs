//! [`JobClient`]: a handle on a running job, to watch it, stop or cancel it and wait
//! for it; [`JobControl`]: stop or cancel it from any thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;

use flink_core::checkpoint::{CheckpointLocation, StopMode};
use flink_core::metrics::OperatorMetrics;

use crate::bottleneck::BottleneckVerdict;
use crate::job_result::{JobError, JobExecutionResult, OperatorRole, OperatorSummary};
use crate::job_status::{JobState, JobStatusCell};
use crate::task_metrics::{TaskMetrics, TaskMetricsSnapshot};

/// The live counters of one operator: one entry per parallel instance.
#[derive(Clone)]
pub(crate) struct OperatorCounters {
    pub(crate) id: usize,
    pub(crate) name: String,
    pub(crate) role: OperatorRole,
    pub(crate) instances: Vec<Arc<OperatorMetrics>>,
}

impl OperatorCounters {
    pub(crate) fn summary(&self) -> OperatorSummary {
        let (mut records_in, mut records_out, mut side_output_unconsumed) = (0, 0, 0);
        let mut dead_letters_discarded = 0;
        let mut custom: Vec<(String, u64)> = Vec::new();
        for m in &self.instances {
            for (name, v) in m.custom_snapshot() {
                match custom.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, total)) => *total += v,
                    None => custom.push((name, v)),
                }
            }
            let (i, o) = m.snapshot();
            records_in += i;
            records_out += o;
            side_output_unconsumed += m
                .side_output_unconsumed
                .load(std::sync::atomic::Ordering::Relaxed);
            dead_letters_discarded += m
                .dead_letters_discarded
                .load(std::sync::atomic::Ordering::Relaxed);
        }
        OperatorSummary {
            id: self.id,
            name: self.name.clone(),
            role: self.role,
            parallelism: self.instances.len(),
            records_in,
            records_out,
            side_output_unconsumed,
            dead_letters_discarded,
            custom,
        }
    }
}

/// What observers of a running job can read.
#[derive(Clone)]
pub(crate) struct JobObservables {
    pub(crate) tasks: Vec<Arc<TaskMetrics>>,
    pub(crate) operators: Vec<OperatorCounters>,
    pub(crate) status: Arc<JobStatusCell>,
    /// Names the job's bottleneck, sampling once someone asks.
    pub(crate) bottleneck: Arc<crate::bottleneck_watch::BottleneckWatch>,
    /// The checkpoint statistics, when checkpointing is enabled.
    pub(crate) checkpoints: Option<Arc<crate::checkpoint::stats::CheckpointStats>>,
    /// On process 0 of a job spread over processes: the latest view of every other
    /// process's subtasks.
    pub(crate) remote_subtasks: Option<Arc<crate::cluster::RemoteSubtasks>>,
}

impl JobObservables {
    pub(crate) fn task_snapshots(&self) -> Vec<TaskMetricsSnapshot> {
        self.tasks.iter().map(|t| t.snapshot()).collect()
    }

    pub(crate) fn operator_summaries(&self) -> Vec<OperatorSummary> {
        self.operators
            .iter()
            .map(OperatorCounters::summary)
            .collect()
    }
}

/// Stops or cancels a running job from any thread; cheap to clone. Get one with
/// [`JobClient::control`], for example to stop the job while another thread is in
/// [`JobClient::wait`].
///
/// ```
/// use flink_runtime::prelude::*;
///
/// let env = StreamExecutionEnvironment::new();
/// let out = env.from_sequence(1, u64::MAX).collect_vec();
/// let client = env.execute_async("endless").unwrap();
/// let control = client.control();
/// let stopper = std::thread::spawn(move || control.stop());
/// let result = client.wait().unwrap();
/// stopper.join().unwrap();
/// assert!(result.stopped);
/// assert_eq!(out.take().len() as u64, result.records_read_by_sources());
/// ```
#[derive(Clone)]
pub struct JobControl {
    pub(crate) cancel: crate::local_executor::JobCancel,
    pub(crate) cancelled_by_user: Arc<AtomicBool>,
    pub(crate) stop_requested: Arc<AtomicBool>,
    /// Savepoint requests to the job's coordinator.
    pub(crate) savepoints:
        std::sync::mpsc::SyncSender<crate::checkpoint::savepoint::SavepointRequest>,
}

impl JobControl {
    /// Stops the job without losing records, as Flink's `stop --drain`: every source
    /// stops reading and ends its input as if its reader had finished, so every
    /// record in flight reaches the sinks, async calls complete, and the sinks flush
    /// and commit (`SinkWriter::finish`). The job then ends successfully:
    /// [`JobClient::wait`] returns a [`JobExecutionResult`] with `stopped` set, whose
    /// [`records_read_by_sources`](JobExecutionResult::records_read_by_sources) and
    /// [`records_at_sinks`](JobExecutionResult::records_at_sinks) say what was read
    /// and written. Returns at once; the drain takes as long as the sinks need.
    /// Across processes it stops the sources of every process (the others are told
    /// within a few milliseconds), from whichever process it is called in.
    pub fn stop(&self) {
        self.stop_requested.store(true, Ordering::SeqCst);
    }

    /// Takes a savepoint of the running job; see [`JobClient::trigger_savepoint`].
    ///
    /// # Errors
    /// As [`JobClient::trigger_savepoint`].
    pub fn trigger_savepoint(
        &self,
        directory: impl Into<CheckpointLocation>,
    ) -> Result<CheckpointLocation, crate::checkpoint::SavepointError> {
        self.savepoint(directory.into(), None)
    }

    /// Stops the job with a savepoint, without drain; see
    /// [`JobClient::stop_with_savepoint`].
    ///
    /// # Errors
    /// As [`JobClient::trigger_savepoint`].
    pub fn stop_with_savepoint(
        &self,
        directory: impl Into<CheckpointLocation>,
    ) -> Result<CheckpointLocation, crate::checkpoint::SavepointError> {
        self.savepoint(directory.into(), Some(StopMode::NoDrain))
    }

    /// Stops the job with a drain and a savepoint; see
    /// [`JobClient::stop_with_savepoint_and_drain`].
    ///
    /// # Errors
    /// As [`JobClient::trigger_savepoint`].
    pub fn stop_with_savepoint_and_drain(
        &self,
        directory: impl Into<CheckpointLocation>,
    ) -> Result<CheckpointLocation, crate::checkpoint::SavepointError> {
        self.savepoint(directory.into(), Some(StopMode::Drain))
    }

    /// Asks the coordinator for a savepoint (stopping the job after it as `stop`
    /// says) and waits for its outcome.
    pub(crate) fn savepoint(
        &self,
        directory: CheckpointLocation,
        stop: Option<StopMode>,
    ) -> Result<CheckpointLocation, crate::checkpoint::SavepointError> {
        use crate::checkpoint::SavepointError;
        use std::sync::mpsc::TrySendError;
        // A bad target is the caller's error, told before the job is asked.
        if let Err(e) = directory.validate() {
            return Err(SavepointError::InvalidLocation {
                location: directory.to_string(),
                reason: match e {
                    flink_core::error::ConfigError::InvalidLocation { reason, .. } => reason,
                    other => other.to_string(),
                },
            });
        }
        let (reply, outcome) = std::sync::mpsc::sync_channel(1);
        let request = crate::checkpoint::savepoint::SavepointRequest {
            directory,
            stop,
            reply: crate::checkpoint::savepoint::SavepointReply::Local(reply),
        };
        match self.savepoints.try_send(request) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(SavepointError::TooManyRequests),
            Err(TrySendError::Disconnected(_)) => return Err(SavepointError::JobEnded),
        }
        outcome.recv().unwrap_or(Err(SavepointError::JobEnded))
    }

    /// Cancels the job at once: every task stops where it is, including waits on
    /// services that never answer. [`JobClient::wait`] then returns
    /// [`JobError::Cancelled`] with the records this dropped. Cancelling after a
    /// [`stop`](Self::stop) abandons the rest of the drain.
    pub fn cancel(&self) {
        self.cancelled_by_user.store(true, Ordering::SeqCst);
        self.cancel.cancel();
    }
}

/// A submitted job. Dropping the client does not stop the job; call
/// [`stop`](JobClient::stop) or [`cancel`](JobClient::cancel).
pub struct JobClient {
    pub(crate) name: String,
    pub(crate) control: JobControl,
    pub(crate) result: Receiver<Result<JobExecutionResult, JobError>>,
    pub(crate) observables: JobObservables,
    /// The job's REST API and metrics server, when the job enabled one; it stops
    /// when the client is dropped (so at the end of [`wait`](Self::wait)).
    pub(crate) rest: Option<crate::rest::RestServer>,
}

impl JobClient {
    /// The address the job's REST API and `/metrics` listen on, when the job enabled
    /// them with `StreamExecutionEnvironment::enable_web_ui` (a port 0 there is
    /// resolved here). The server serves until the client is dropped or
    /// [`wait`](Self::wait) returns.
    ///
    /// ```
    /// use flink_runtime::prelude::*;
    ///
    /// let env = StreamExecutionEnvironment::new();
    /// env.enable_web_ui("127.0.0.1:0".parse().unwrap());
    /// env.from_sequence(1, 100).collect_vec();
    /// let client = env.execute_async("served").unwrap();
    /// let address = client.web_ui_address().unwrap();
    /// assert!(address.ip().is_loopback() && address.port() != 0);
    /// println!("REST API on http://{address}/jobs");
    /// client.wait().unwrap();
    /// ```
    pub fn web_ui_address(&self) -> Option<std::net::SocketAddr> {
        self.rest.as_ref().map(|r| r.address())
    }

    /// The job's id as its REST API names it (32 hex digits, as Flink's `JobID`),
    /// when it serves one.
    pub fn job_id(&self) -> Option<&str> {
        self.rest.as_ref().map(|r| r.job_id())
    }

    /// Where the job is in its life: running, cancelling, or how it ended.
    pub fn state(&self) -> JobState {
        self.observables.status.state()
    }

    /// The job's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Stops the job with a drain; see [`JobControl::stop`].
    pub fn stop(&self) {
        self.control.stop();
    }

    /// Cancels the job at once; [`wait`](Self::wait) then returns
    /// [`JobError::Cancelled`]. See [`JobControl::cancel`].
    pub fn cancel(&self) {
        self.control.cancel();
    }

    /// Takes a savepoint (Flink's `flink savepoint`): a checkpoint of the running job
    /// written into a new directory `<directory>/savepoint-<job>-<id>`, whose
    /// location this returns once it is complete. `directory` is a local path or an
    /// object-store URL (`s3://bucket/savepoints`, as the checkpoint storage; see
    /// [`CheckpointLocation`]); the job goes on. Checkpoint retention never
    /// deletes it. It commits no two-phase-commit transactions (as Flink since 1.15);
    /// the next checkpoint does. Restore it with `env.restore_from(path)`. Blocks
    /// until the savepoint completed or failed. Needs checkpointing enabled. In a
    /// job spread over processes it may be called in any process: process 0 takes
    /// the savepoint of the whole job, every process writing its tasks' states.
    ///
    /// ```
    /// use std::time::Duration;
    /// use flink_runtime::prelude::*;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let env = StreamExecutionEnvironment::new();
    /// env.enable_checkpointing(Duration::from_secs(60)).set_storage_dir(dir.path());
    /// env.from_sequence(1, u64::MAX).filter(|_: &u64| false).collect_vec();
    /// let client = env.execute_async("saved").unwrap();
    /// let savepoint = client.trigger_savepoint(dir.path()).unwrap();
    /// assert!(savepoint.as_directory().unwrap().join("_metadata").is_file());
    /// client.cancel();
    /// # let _ = client.wait();
    /// ```
    ///
    /// # Errors
    /// [`SavepointError`](crate::checkpoint::SavepointError): checkpointing disabled,
    /// the job ended, the savepoint timed out or could not be stored.
    pub fn trigger_savepoint(
        &self,
        directory: impl Into<CheckpointLocation>,
    ) -> Result<CheckpointLocation, crate::checkpoint::SavepointError> {
        self.control.savepoint(directory.into(), None)
    }

    /// Stops the job with a savepoint (Flink's `flink stop`, without `--drain`,
    /// `StopMode.NO_DRAIN`): every source stops right after the savepoint's
    /// barrier, and every task ends right after that barrier reached it, without
    /// end-of-input work: no event-time window or timer fires, no final reduction
    /// is emitted, nothing reaches a sink after the savepoint. What the job took
    /// in but did not output is in the savepoint's state, and the job restored
    /// from it outputs it, once. The two-phase-commit sinks commit what they
    /// pre-committed with the savepoint. The job finishes, its result's
    /// `savepoint` naming the savepoint (also returned here). If the savepoint
    /// fails after the sources stopped, the job still finishes, committing the
    /// same output with its final checkpoint (which holds the same state), and
    /// this returns the error.
    ///
    /// # Errors
    /// As [`trigger_savepoint`](Self::trigger_savepoint).
    pub fn stop_with_savepoint(
        &self,
        directory: impl Into<CheckpointLocation>,
    ) -> Result<CheckpointLocation, crate::checkpoint::SavepointError> {
        self.control
            .savepoint(directory.into(), Some(StopMode::NoDrain))
    }

    /// Stops the job with a savepoint and a drain (Flink's `flink stop --drain`):
    /// every source stops right after the savepoint's barrier, then ends its input,
    /// so event time advances to the end: windows and timers fire, final
    /// reductions are emitted, and the sinks get them after the savepoint (the
    /// job's final checkpoint commits them). For a job that is not resumed: one
    /// restored from this savepoint would output those results again. Otherwise as
    /// [`stop_with_savepoint`](Self::stop_with_savepoint).
    ///
    /// # Errors
    /// As [`trigger_savepoint`](Self::trigger_savepoint).
    pub fn stop_with_savepoint_and_drain(
        &self,
        directory: impl Into<CheckpointLocation>,
    ) -> Result<CheckpointLocation, crate::checkpoint::SavepointError> {
        self.control
            .savepoint(directory.into(), Some(StopMode::Drain))
    }

    /// A handle to stop or cancel the job from other threads.
    pub fn control(&self) -> JobControl {
        self.control.clone()
    }

    /// Live time accounting and pool usage of every subtask.
    pub fn task_metrics(&self) -> Vec<TaskMetricsSnapshot> {
        self.observables.task_snapshots()
    }

    /// Live record counts of every operator.
    pub fn operator_metrics(&self) -> Vec<OperatorSummary> {
        self.observables.operator_summaries()
    }

    /// The completed checkpoints of the recent history (Flink's
    /// `web.checkpoints.history`: the last 10 checkpoints), newest first; empty
    /// without checkpointing. Poll it to follow every checkpoint of a long run.
    pub fn completed_checkpoints(&self) -> Vec<crate::checkpoint::CompletedCheckpoint> {
        self.observables
            .checkpoints
            .as_ref()
            .map_or_else(Vec::new, |s| s.completed_summaries())
    }

    /// The checkpoint triggered and neither completed nor failed yet, if any, with
    /// how many of its tasks acknowledged it so far.
    pub fn pending_checkpoint(&self) -> Option<crate::checkpoint::PendingCheckpoint> {
        self.observables
            .checkpoints
            .as_ref()
            .and_then(|s| s.pending())
    }

    /// Which task limits the job now, over the last window of about a second: the
    /// task busy most of its time while its outputs are not back-pressured and the
    /// tasks upstream of it are, with its busy time, its rates and the operator of
    /// its chain that takes the most time; or that no task does (the job is
    /// source-bound, or keeps up with its input). The first call starts the sampling
    /// and returns [`BottleneckVerdict::Measuring`]; ask again a second later.
    ///
    /// ```
    /// use flink_runtime::prelude::*;
    ///
    /// let env = StreamExecutionEnvironment::new();
    /// env.from_sequence(1, 1_000).collect_vec();
    /// let client = env.execute_async("watched").unwrap();
    /// match client.bottleneck() {
    ///     BottleneckVerdict::Task(b) => println!("{} limits the job", b.task),
    ///     other => println!("{other}"),
    /// }
    /// client.wait().unwrap();
    /// ```
    pub fn bottleneck(&self) -> BottleneckVerdict {
        self.observables.bottleneck.verdict()
    }

    /// A handle for watching the job from other threads.
    pub fn observer(&self) -> JobObserver {
        JobObserver {
            observables: self.observables.clone(),
        }
    }

    /// Blocks until the job ends and returns its result: `Ok` when its input ended
    /// or it was stopped (then `stopped` is set), [`JobError::Cancelled`] after a
    /// cancellation, [`JobError::OperatorFailed`] after a failure. A
    /// [`JobControl`] stops or cancels it meanwhile from another thread.
    pub fn wait(self) -> Result<JobExecutionResult, JobError> {
        self.result
            .recv()
            .unwrap_or_else(|_| Err(JobError::Runtime("the job coordinator vanished".into())))
    }
}

/// Reads a running job's live metrics; cheap to clone and send to other threads.
#[derive(Clone)]
pub struct JobObserver {
    observables: JobObservables,
}

impl JobObserver {
    /// Where the job is in its life: running, cancelling, or how it ended.
    pub fn state(&self) -> JobState {
        self.observables.status.state()
    }

    /// Live time accounting and pool usage of every subtask.
    pub fn task_metrics(&self) -> Vec<TaskMetricsSnapshot> {
        self.observables.task_snapshots()
    }

    /// Live record counts of every operator.
    pub fn operator_metrics(&self) -> Vec<OperatorSummary> {
        self.observables.operator_summaries()
    }

    /// The job's bottleneck; see [`JobClient::bottleneck`].
    pub fn bottleneck(&self) -> BottleneckVerdict {
        self.observables.bottleneck.verdict()
    }
}
