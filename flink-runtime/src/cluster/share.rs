//! This process's share of a job spread over several, as its result reports it.

use serde::Serialize;

use crate::network::tcp::TcpConnectionStats;

/// Which process this was and what its connections carried. The result's task
/// figures cover this process's subtasks; its operator counts too, except on process
/// 0, which adds every other process's final counts (records in and out, side
/// outputs unconsumed, dead letters discarded; not the operators' custom metrics)
/// and so reports the whole job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ClusterShare {
    /// This process's index.
    pub process: usize,
    /// How many processes ran the job.
    pub processes: usize,
    /// Whether the result's operator counts cover the whole job (process 0).
    pub whole_job: bool,
    /// Frames and bytes over all of this process's connections.
    pub wire: TcpConnectionStats,
}
