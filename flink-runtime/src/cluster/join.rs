//! Joining the other processes of a job before any of its tasks starts.

use flink_core::cluster::ClusterConfig;
use flink_core::graph::JobGraph;

use super::error::ClusterRunError;
use super::fingerprint::job_fingerprint;
use super::links::ClusterLinks;
use super::supervision::RestartPlan;
use crate::job_result::JobError;

/// Refuses five-stage pipelines whose counts (see `pipeline_sync`) do not fit one
/// network buffer.
fn check_pipelines(jg: &JobGraph) -> Result<(), ClusterRunError> {
    let pipelines = &jg.stream_graph.pipelines;
    let mut widest = 0;
    for p in pipelines {
        let parallelism = jg
            .vertices
            .iter()
            .find(|v| v.nodes.contains(&p.gateway))
            .map_or(1, |v| v.parallelism);
        widest = widest.max(parallelism);
    }
    let report = super::pipeline_sync::max_report_len(pipelines.len(), widest);
    let buffer = jg.stream_graph.config.buffer_size;
    if report > buffer {
        return Err(ClusterRunError::Unsupported(format!(
            "{} five-stage pipelines at gateway parallelism {widest} across processes with a \
             buffer size of {buffer} bytes: their counts need {report} bytes in one frame",
            pipelines.len()
        )));
    }
    Ok(())
}

/// Connects this process to the other processes of job `name`, after checking the
/// job uses nothing that does not work across processes yet.
///
/// Unaligned checkpoints work as in one process: a connection is one ordered byte
/// stream, so a priority barrier reaches the receiving channel after every buffer
/// shipped before it; those not yet taken there, and the sender's queued ones, are
/// what it overtakes and stores with the snapshot (each process its own tasks'),
/// replayed on restore. Process 0 first tells
/// a supervising launcher how to restart the job.
pub(crate) fn join(
    jg: &JobGraph,
    cluster: &ClusterConfig,
    name: &str,
) -> Result<ClusterLinks, JobError> {
    let config = &jg.stream_graph.config;
    check_pipelines(jg)?;
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
