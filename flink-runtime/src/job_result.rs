//! What a finished (or failed) job reports.

use std::time::Duration;

use flink_core::error::GraphError;
use serde::Serialize;
use thiserror::Error;

use crate::task_metrics::TaskMetricsSnapshot;

/// Why a job did not finish.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum JobError {
    /// The job could not be built.
    #[error("invalid job: {0}")]
    Graph(#[from] GraphError),
    /// An operator failed: its function panicked or its sink reported an error.
    #[error("operator '{operator}' (subtask {subtask}/{parallelism}) failed: {message}")]
    OperatorFailed {
        /// The failing operator's name.
        operator: String,
        /// 1-based index of the failing subtask, as Flink prints it.
        subtask: usize,
        /// Parallelism of the failing task.
        parallelism: usize,
        /// What went wrong.
        message: String,
    },
    /// The job was cancelled through its [`JobClient`](crate::job_client::JobClient).
    #[error("job was cancelled")]
    Cancelled,
    /// The runtime itself could not run the job (for example, no thread could be spawned).
    #[error("runtime error: {0}")]
    Runtime(String),
}

/// Records in and out of one operator, summed over its parallel instances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperatorSummary {
    /// Stream node id.
    pub id: usize,
    /// Operator name.
    pub name: String,
    /// Parallel instances.
    pub parallelism: usize,
    /// Records received.
    pub records_in: u64,
    /// Records emitted.
    pub records_out: u64,
    /// Records written to side outputs that nothing reads (counted, not delivered).
    pub side_output_unconsumed: u64,
    /// Dead letters no stream reads, dropped on purpose (`discard_dead_letters`).
    /// Without that opt-out, such a dead letter fails the job instead.
    pub dead_letters_discarded: u64,
    /// Operator-specific metrics (retries, timeouts, ...), summed over instances.
    pub custom: Vec<(String, u64)>,
}

impl OperatorSummary {
    /// The operator-specific metric `name`.
    pub fn custom(&self, name: &str) -> Option<u64> {
        self.custom.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}

/// The result of a job that ran to completion.
#[derive(Debug, Clone, Serialize)]
pub struct JobExecutionResult {
    /// The job's name.
    pub job_name: String,
    /// Wall time from the first task starting to the last ending.
    pub duration: Duration,
    /// Per-operator record counts.
    pub operators: Vec<OperatorSummary>,
    /// Per-subtask time accounting and pool usage at the end.
    pub tasks: Vec<TaskMetricsSnapshot>,
}

impl JobExecutionResult {
    /// The summary of the first operator named `name`.
    pub fn operator(&self, name: &str) -> Option<&OperatorSummary> {
        self.operators.iter().find(|o| o.name == name)
    }
}
