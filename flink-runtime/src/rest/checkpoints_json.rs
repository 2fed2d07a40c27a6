//! `GET /jobs/{id}/checkpoints`: the checkpoint coordinator's records, shaped like
//! Flink's checkpoint statistics (counts, summary, latest completed / savepoint /
//! failed / restored, history), with each task's acknowledgement in the history.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::job_view::JobView;
use crate::checkpoint::stats::{CheckpointRecord, StatsSnapshot};

/// The body; `None` when the job takes no checkpoints (a 404, as Flink answers for
/// a job without checkpointing).
pub(crate) fn checkpoints(view: &JobView) -> Option<Value> {
    let stats = view.checkpoints.as_ref()?.snapshot();
    Some(json!({
        "counts": counts(&stats),
        "summary": summary(&stats),
        "latest": {
            "completed": stats.latest_completed.as_ref().map(|r| record(view, r)),
            "savepoint": stats.latest_savepoint.as_ref().map(|r| record(view, r)),
            "failed": stats.latest_failed.as_ref().map(|r| record(view, r)),
            "restored": stats.latest_restored.as_ref().map(|r| json!({
                "id": r.id,
                "restore_timestamp": r.restore_timestamp,
                "is_savepoint": r.external_path.is_some(),
                "external_path": r.external_path,
            })),
        },
        "history": stats.history.iter().map(|r| record(view, r)).collect::<Vec<_>>(),
    }))
}

fn counts(stats: &StatsSnapshot) -> Value {
    let in_progress = stats.in_progress();
    json!({
        "restored": stats.restored,
        "total": stats.completed + stats.failed + in_progress,
        "in_progress": in_progress,
        "completed": stats.completed,
        "failed": stats.failed,
    })
}

/// Min, max and average of the completed checkpoints in the history.
fn summary(stats: &StatsSnapshot) -> Value {
    let done: Vec<&CheckpointRecord> = stats
        .history
        .iter()
        .filter(|r| r.status == crate::checkpoint::stats::Status::Completed)
        .collect();
    let stat = |f: &dyn Fn(&CheckpointRecord) -> u64| {
        let values: Vec<u64> = done.iter().map(|r| f(r)).collect();
        let n = values.len() as u64;
        json!({
            "min": values.iter().copied().min().unwrap_or(0),
            "max": values.iter().copied().max().unwrap_or(0),
            "avg": values.iter().sum::<u64>().checked_div(n).unwrap_or(0),
        })
    };
    json!({
        "state_size": stat(&CheckpointRecord::state_size),
        "checkpointed_size": stat(&CheckpointRecord::state_size),
        "end_to_end_duration": stat(&CheckpointRecord::duration_ms),
    })
}

/// One checkpoint, with its acknowledgements grouped by vertex (REST vertex id).
fn record(view: &JobView, r: &CheckpointRecord) -> Value {
    let mut tasks: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for a in &r.acks {
        tasks.entry(a.vertex.to_string()).or_default().push(json!({
            "index": a.subtask,
            "ack_timestamp": a.ack_timestamp,
            "end_to_end_duration": a.ack_timestamp.saturating_sub(r.trigger_timestamp),
            "state_size": a.state_size,
            "alignment_duration": a.timing.alignment_ms,
            "start_delay": a.timing.start_delay_ms,
            "persisted_data": a.persisted_data,
        }));
    }
    let tasks: BTreeMap<String, Value> = tasks
        .into_iter()
        .map(|(vertex, subtasks)| {
            let parallelism = vertex
                .parse::<usize>()
                .ok()
                .and_then(|v| view.graph.vertices.get(v))
                .map_or(0, |v| v.parallelism);
            let summary = json!({
                "num_subtasks": parallelism,
                "num_acknowledged_subtasks": subtasks.len(),
                "subtasks": subtasks,
            });
            (vertex, summary)
        })
        .collect();
    json!({
        "className": match r.status {
            crate::checkpoint::stats::Status::Completed => ".CompletedCheckpointStatistics",
            crate::checkpoint::stats::Status::Failed => ".FailedCheckpointStatistics",
            crate::checkpoint::stats::Status::InProgress => ".PendingCheckpointStatistics",
        },
        "id": r.id,
        "status": r.status.name(),
        "is_savepoint": r.is_savepoint,
        "checkpoint_type": if r.is_savepoint { "SAVEPOINT" } else { "CHECKPOINT" },
        "trigger_timestamp": r.trigger_timestamp,
        "latest_ack_timestamp": r.latest_ack_timestamp,
        "state_size": r.state_size(),
        "checkpointed_size": r.state_size(),
        "persisted_data": r.persisted_data(),
        "end_to_end_duration": r.duration_ms(),
        "num_subtasks": r.num_subtasks,
        "num_acknowledged_subtasks": r.acks.len(),
        "external_path": r.external_path,
        "failure_message": r.failure_message,
        "tasks": tasks,
    })
}
