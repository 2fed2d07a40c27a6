//! [`JobClient`]: a handle on a running job, to watch it, cancel it and wait for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;

use flink_core::metrics::OperatorMetrics;

use crate::job_result::{JobError, JobExecutionResult, OperatorSummary};
use crate::task_metrics::{TaskMetrics, TaskMetricsSnapshot};

/// The live counters of one operator: one entry per parallel instance.
#[derive(Clone)]
pub(crate) struct OperatorCounters {
    pub(crate) id: usize,
    pub(crate) name: String,
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

/// A submitted job. Dropping the client does not stop the job; call [`cancel`].
///
/// [`cancel`]: JobClient::cancel
pub struct JobClient {
    pub(crate) name: String,
    pub(crate) cancel: crate::local_executor::JobCancel,
    pub(crate) cancelled_by_user: Arc<AtomicBool>,
    pub(crate) result: Receiver<Result<JobExecutionResult, JobError>>,
    pub(crate) observables: JobObservables,
}

impl JobClient {
    /// The job's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Asks every task to stop; [`wait`](Self::wait) then returns [`JobError::Cancelled`].
    pub fn cancel(&self) {
        self.cancelled_by_user.store(true, Ordering::SeqCst);
        self.cancel.cancel();
    }

    /// Live time accounting and pool usage of every subtask.
    pub fn task_metrics(&self) -> Vec<TaskMetricsSnapshot> {
        self.observables.task_snapshots()
    }

    /// Live record counts of every operator.
    pub fn operator_metrics(&self) -> Vec<OperatorSummary> {
        self.observables.operator_summaries()
    }

    /// A handle for watching the job from other threads.
    pub fn observer(&self) -> JobObserver {
        JobObserver {
            observables: self.observables.clone(),
        }
    }

    /// Blocks until the job ends and returns its result.
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
    /// Live time accounting and pool usage of every subtask.
    pub fn task_metrics(&self) -> Vec<TaskMetricsSnapshot> {
        self.observables.task_snapshots()
    }

    /// Live record counts of every operator.
    pub fn operator_metrics(&self) -> Vec<OperatorSummary> {
        self.observables.operator_summaries()
    }
}
