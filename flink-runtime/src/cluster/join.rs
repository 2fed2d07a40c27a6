//! Joining the other processes of a job before any of its tasks starts.

use flink_core::cluster::ClusterConfig;
use flink_core::graph::JobGraph;

use super::error::ClusterRunError;
use super::fingerprint::job_fingerprint;
use super::links::ClusterLinks;
use super::supervision::RestartPlan;
use crate::job_result::JobError;

/// Connects this process to the other processes of job `name`, after checking the
/// job uses nothing that does not work across processes yet. Process 0 first tells
/// a supervising launcher how to restart the job.
pub(crate) fn join(
    jg: &JobGraph,
    cluster: &ClusterConfig,
    name: &str,
) -> Result<ClusterLinks, JobError> {
    let config = &jg.stream_graph.config;
    if config.checkpointing.as_ref().is_some_and(|c| c.unaligned) {
        // Barriers overtaking buffers queued in a peer's socket, and the in-flight
        // data they overtook, are not handled across processes: refused rather than
        // taken with a silently aligned meaning.
        return Err(ClusterRunError::Unsupported(
            "unaligned checkpoints (aligned checkpoints work across processes)".into(),
        )
        .into());
    }
    if cluster.processes > 1 && !jg.stream_graph.pipelines.is_empty() {
        // Its gateway admits by signals the stages share in memory (records in the
        // pipeline, finish rate): a record admitted in one process and finished in
        // another is never seen as finished, and the gateway stalls for good.
        return Err(ClusterRunError::Unsupported(
            "the five-stage pipeline (its stages share admission signals in one process)".into(),
        )
        .into());
    }
    if cluster.index == 0
        && let Some(file) = &cluster.supervisor_file
    {
        RestartPlan::of(jg, name).write(file).map_err(|e| {
            JobError::Runtime(format!(
                "cannot write the restart plan for the launcher to {}: {e}",
                file.display()
            ))
        })?;
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
