//! The JSON of `GET /jobs/{id}/pipelines`: each five-stage pipeline of the job with
//! its per-stage pressure, health, queue fill, waiting, error rate and counts, its
//! latency and its accounting (docs/rest-api.md). Computed from the same controller
//! and counters as `PipelineMonitor` and `PipelineReport`.

use flink_core::pipeline::{PipelineBackPressureController, PipelineStatus, StageStatus};
use serde_json::{Value, json};

use super::job_view::JobView;
use crate::pipeline_monitor::PipelineReport;

/// `GET /jobs/{id}/pipelines`.
pub(crate) fn pipelines(view: &JobView) -> Value {
    let operators = view.operator_summaries();
    let pipelines: Vec<Value> = view
        .pipelines()
        .iter()
        .enumerate()
        .map(|(id, controller)| pipeline(id, controller, &PipelineReport::new(&operators)))
        .collect();
    json!({ "pipelines": pipelines })
}

fn pipeline(
    id: usize,
    controller: &PipelineBackPressureController,
    report: &PipelineReport,
) -> Value {
    let status: PipelineStatus = controller.status(report.stages);
    let stages: Vec<Value> = status.stages.iter().map(stage).collect();
    let ms = |d: Option<std::time::Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
    json!({
        "id": id,
        "health": status.health.to_string(),
        "level": format!("{:?}", status.level).to_uppercase(),
        "pressure": status.overall_pressure,
        "in-pipeline": status.in_pipeline,
        "latency-p50-ms": ms(status.latency_p50),
        "latency-p99-ms": ms(status.latency_p99),
        "slow-records": status.slow_records,
        "stages": stages,
        "accounting": {
            "received": report.received(),
            "delivered": report.delivered(),
            "dead-lettered": report.dead_lettered(),
            "errors": report.errors(),
            "held": report.held(),
            "in-pipeline": status.in_pipeline,
            // Exact once the job ended: every record received was delivered,
            // dead-lettered or counted as an error, and the stages chain up.
            "accounted": report.accounted(),
        },
    })
}

fn stage(s: &StageStatus) -> Value {
    json!({
        "name": s.name,
        "pressure": s.pressure,
        "level": format!("{:?}", s.level).to_uppercase(),
        "health": s.health.to_string(),
        "queue-utilization": s.queue_utilization,
        "waiting": s.waiting,
        "task-back-pressure": s.task_back_pressure,
        "error-rate": s.error_rate,
        "received": s.counts.received,
        "emitted": s.counts.emitted,
        "dead-lettered": s.counts.dead_lettered,
        "errors": s.counts.errors,
    })
}
