//! What a finished (or failed) job reports.

use std::time::Duration;

use flink_core::error::GraphError;
use serde::Serialize;
use thiserror::Error;

use crate::task_metrics::TaskMetricsSnapshot;

/// Why a job did not finish.
///
/// Its `Debug` form is its message, so the README's `fn main() -> Result<(), JobError>`
/// prints a sentence (Rust prints an error returned from `main` with `{:?}`);
/// `{:#?}` shows the variant and its fields, and the fields are public to match on.
///
/// ```
/// use flink_runtime::prelude::*;
///
/// let env = StreamExecutionEnvironment::new();
/// env.set_parallelism(0);
/// env.from_sequence(1, 10).collect_vec();
/// let err = env.execute("no parallelism").unwrap_err();
/// assert_eq!(
///     format!("{err:?}"),
///     "invalid job: parallelism of default must be at least 1, got 0"
/// );
/// ```
#[derive(Clone, PartialEq, Eq, Error)]
pub enum JobError {
    /// The job could not be built.
    #[error("invalid job: {0}")]
    Graph(#[from] GraphError),
    /// An operator failed: its function panicked or its sink reported an error.
    #[error("operator '{operator}' ({subtask}/{parallelism}) failed: {message}")]
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

impl std::fmt::Debug for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !f.alternate() {
            return std::fmt::Display::fmt(self, f);
        }
        match self {
            Self::Graph(e) => f.debug_tuple("Graph").field(e).finish(),
            Self::OperatorFailed {
                operator,
                subtask,
                parallelism,
                message,
            } => f
                .debug_struct("OperatorFailed")
                .field("operator", operator)
                .field("subtask", subtask)
                .field("parallelism", parallelism)
                .field("message", message)
                .finish(),
            Self::Cancelled => f.write_str("Cancelled"),
            Self::Runtime(message) => f.debug_tuple("Runtime").field(message).finish(),
        }
    }
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
