//! Joining the other processes of a job before any of its tasks starts.

use flink_core::checkpoint::RestartStrategy;
use flink_core::cluster::ClusterConfig;
use flink_core::graph::JobGraph;

use super::error::ClusterRunError;
use super::fingerprint::job_fingerprint;
use super::links::ClusterLinks;
use crate::job_result::JobError;

/// Connects this process to the other processes of job `name`, after checking the
/// job uses nothing that does not work across processes yet.
pub(crate) fn join(
    jg: &JobGraph,
    cluster: &ClusterConfig,
    name: &str,
) -> Result<ClusterLinks, JobError> {
    let config = &jg.stream_graph.config;
    let unsupported = |what: &str| Err(ClusterRunError::Unsupported(what.into()).into());
    if config.checkpointing.is_some() {
        return unsupported("checkpointing (issue 13, phase 3)");
    }
    if config.restore.is_some() {
        return unsupported("restoring from a savepoint or checkpoint (issue 13, phase 3)");
    }
    if config.effective_restart_strategy() != RestartStrategy::None {
        return unsupported("restarts (issue 13, phase 3): set RestartStrategy::None");
    }
    // The name is cut to keep the handshake's job id bounded; the fingerprint is
    // what must match.
    let short: String = name.chars().take(128).collect();
    let job_id = format!("{short} graph {}", job_fingerprint(jg));
    tracing::info!(job = %job_id, process = cluster.index, processes = cluster.processes, "joining the job's processes");
    Ok(ClusterLinks::establish(
        cluster,
        &job_id,
        config.buffer_size,
    )?)
}
