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
    /// The job was cancelled through its [`JobClient`](crate::job_client::JobClient)
    /// or a [`JobControl`](crate::job_client::JobControl). Cancelling is immediate:
    /// records still on their way are dropped and counted in `abandoned`. Use
    /// [`JobControl::stop`](crate::job_client::JobControl::stop) to end a job
    /// without losing any.
    #[error("job was cancelled; {abandoned}")]
    Cancelled {
        /// The records the cancellation dropped on their way to the sinks.
        abandoned: AbandonedRecords,
    },
    /// The runtime itself could not run the job (for example, no thread could be spawned).
    #[error("runtime error: {0}")]
    Runtime(String),
    /// The savepoint or checkpoint given to `restore_from` cannot be restored;
    /// nothing started.
    #[error("{0}")]
    Restore(#[from] crate::checkpoint::RestoreError),
    /// The processes of a job spread over several could not connect, or a
    /// connection between them failed while it ran (see docs/deployment.md).
    #[error("cluster: {0}")]
    Cluster(#[from] crate::cluster::ClusterRunError),
}

/// Records a cancellation dropped: they had left a source but had not yet ended as
/// output of a sink, a dead letter or a filtered record. Read from the operators'
/// live metrics once every task has stopped:
///
/// - `between_operators`: for every operator fed only by main (not side-output)
///   streams, the records its inputs emitted towards it (times the downstream
///   parallelism for a broadcast edge) minus the records it received. These sat in
///   network buffers, in a chain's hand-off batch, or in an input channel.
/// - `inside_operators`: the records operators held, by their `queued` gauge (the
///   async operator: calls in flight and completed results waiting for their turn;
///   the five-stage gateway: its admission queue) or, where there is none, their
///   `in_flight` gauge (the five-stage egress and final sink).
///
/// Not included (not observable from the outside): records a sink had received
/// (counted in its `records_in`) but its writer had not yet made durable (see the
/// sink's own metrics, such as the rows the database acknowledged), records of an
/// input batch an operator without such a gauge was still working through, and
/// records on side-output streams (dead letters) between operators.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AbandonedRecords {
    /// Records between operators: in network buffers and hand-offs.
    pub between_operators: u64,
    /// Records held inside operators (queues, calls in flight).
    pub inside_operators: u64,
}

impl AbandonedRecords {
    /// Every abandoned record.
    pub fn total(&self) -> u64 {
        self.between_operators + self.inside_operators
    }
}

impl std::fmt::Display for AbandonedRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} record(s) abandoned in flight ({} between operators, {} inside operators)",
            self.total(),
            self.between_operators,
            self.inside_operators
        )
    }
}

/// What an operator is in the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum OperatorRole {
    /// Reads records from outside the job.
    Source,
    /// Transforms records.
    Transform,
    /// Writes records out of the job.
    Sink,
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
            Self::Cancelled { abandoned } => f
                .debug_struct("Cancelled")
                .field("abandoned", abandoned)
                .finish(),
            Self::Runtime(message) => f.debug_tuple("Runtime").field(message).finish(),
            Self::Restore(e) => f.debug_tuple("Restore").field(e).finish(),
            Self::Cluster(e) => f.debug_tuple("Cluster").field(e).finish(),
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
    /// Source, transformation or sink.
    pub role: OperatorRole,
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

/// The result of a job that ran to completion: its sources ended by themselves, or
/// it was stopped with a drain ([`JobControl::stop`]) and everything its sources had
/// read reached the sinks.
///
/// [`JobControl::stop`]: crate::job_client::JobControl::stop
#[derive(Debug, Clone, Serialize)]
pub struct JobExecutionResult {
    /// The job's name.
    pub job_name: String,
    /// Whether the job ended because it was stopped (sources stopped reading and the
    /// records in flight were drained to the sinks) rather than by its input ending.
    pub stopped: bool,
    /// Wall time from the first task starting to the last ending.
    pub duration: Duration,
    /// Per-operator record counts.
    pub operators: Vec<OperatorSummary>,
    /// Per-subtask time accounting and pool usage at the end.
    pub tasks: Vec<TaskMetricsSnapshot>,
    /// Every restart, in order, with its cause. The operators' counts cover every
    /// attempt: records replayed from a checkpoint after a restart are counted again.
    pub restarts: Vec<JobRestart>,
    /// What checkpointing did, if the job took checkpoints.
    pub checkpoints: Option<crate::checkpoint::CheckpointCounts>,
    /// The savepoint the job stopped with
    /// ([`JobClient::stop_with_savepoint`](crate::job_client::JobClient::stop_with_savepoint)).
    pub savepoint: Option<flink_core::checkpoint::CheckpointLocation>,
    /// This process's place and traffic when the job ran across several processes
    /// (then the figures above cover this process's subtasks only).
    pub cluster: Option<crate::cluster::ClusterShare>,
}

/// One restart of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobRestart {
    /// The failure that caused it.
    pub cause: String,
    /// The checkpoint the job restarted from; `None`: from the beginning.
    pub restored_checkpoint: Option<u64>,
    /// Records that were between operators when the tasks were cancelled for the
    /// restart: they are not lost, the sources replay them from the checkpoint.
    pub lost_in_flight: u64,
}

impl JobExecutionResult {
    /// The summary of the first operator named `name`.
    pub fn operator(&self, name: &str) -> Option<&OperatorSummary> {
        self.operators.iter().find(|o| o.name == name)
    }

    /// Records the sources emitted into the job (records a source turned into dead
    /// letters are not counted).
    pub fn records_read_by_sources(&self) -> u64 {
        self.records_of(OperatorRole::Source, |o| o.records_out)
    }

    /// Records the sinks received (every sink, including those reading dead letters).
    /// When the job ended successfully, every sink also finished (flushed and
    /// committed) what it received.
    pub fn records_at_sinks(&self) -> u64 {
        self.records_of(OperatorRole::Sink, |o| o.records_in)
    }

    fn records_of(&self, role: OperatorRole, count: impl Fn(&OperatorSummary) -> u64) -> u64 {
        self.operators
            .iter()
            .filter(|o| o.role == role)
            .map(count)
            .sum()
    }
}
