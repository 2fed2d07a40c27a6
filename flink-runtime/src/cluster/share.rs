//! This process's share of a job spread over several, as its result reports it.

use serde::Serialize;

use crate::network::tcp::TcpConnectionStats;

/// Which process this was and what its connections carried; the result's operator
/// and task figures cover this process's subtasks only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ClusterShare {
    /// This process's index.
    pub process: usize,
    /// How many processes ran the job.
    pub processes: usize,
    /// Frames and bytes over all of this process's connections.
    pub wire: TcpConnectionStats,
}
