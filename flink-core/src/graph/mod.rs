//! The three views of a job: the [`StreamGraph`] (operators as the user wrote them),
//! the [`JobGraph`] (operators chained into tasks) and the [`ExecutionGraph`] (parallel
//! subtasks and the channels between them), each exportable as JSON and Graphviz DOT.

mod execution_graph;
mod job_graph;
mod plan;
mod stream_graph;

pub use execution_graph::{Channel, ExecutionGraph, ExecutionVertex};
pub use job_graph::{JobEdge, JobGraph, JobVertex};
pub use plan::{Plan, PlanEdge, PlanNode};
pub use stream_graph::{StreamEdge, StreamGraph, StreamNode};
