//! The JSON bodies of the REST API, shaped like Apache Flink's (same paths, field
//! names and state names where Flink has them; extra fields flink-rs adds are named
//! in docs/rest-api.md).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::job_view::JobView;
use super::rate_window::{Rates, Reading};
use crate::bottleneck::BottleneckVerdict;
use crate::cluster::SubtaskState;
use crate::job_result::JobError;
use crate::job_status::JobState;
use crate::task_metrics::BackPressureLevel;

/// `GET /overview`: the cluster: the processes running the one job.
pub(crate) fn overview(view: &JobView) -> Value {
    let state = view.state();
    let count = |s: JobState| u8::from(state == s);
    let slots: usize = view.graph.vertices.iter().map(|v| v.parallelism).sum();
    json!({
        "taskmanagers": view.processes(),
        "slots-total": slots,
        "slots-available": if state.is_terminal() { slots } else { 0 },
        "jobs-running": u8::from(!state.is_terminal()),
        "jobs-finished": count(JobState::Finished),
        "jobs-cancelled": count(JobState::Canceled),
        "jobs-failed": count(JobState::Failed),
        "flink-version": concat!("flink-rs ", env!("CARGO_PKG_VERSION")),
    })
}

/// `GET /jobs`: ids and states.
pub(crate) fn jobs(view: &JobView) -> Value {
    json!({ "jobs": [{ "id": view.id, "status": view.state().as_str() }] })
}

/// `GET /jobs/overview`: one line per job.
pub(crate) fn jobs_overview(view: &JobView, reading: &Reading) -> Value {
    let mut job = job_times(view);
    job["jid"] = json!(view.id);
    job["name"] = json!(view.name);
    job["state"] = json!(view.state().as_str());
    job["tasks"] = task_counts(&reading.states);
    json!({ "jobs": [job] })
}

/// `GET /jobs/{id}`: the job and a summary of every vertex.
pub(crate) fn job(view: &JobView, reading: &Reading, rates: &Rates) -> Value {
    let state = view.state();
    let vertices: Vec<Value> = (0..view.graph.vertices.len())
        .map(|v| vertex_summary(view, v, reading, rates))
        .collect();
    let mut job = job_times(view);
    job["jid"] = json!(view.id);
    job["name"] = json!(view.name);
    job["isStoppable"] = json!(!state.is_terminal());
    job["state"] = json!(state.as_str());
    job["stopped"] = json!(view.status().end().is_some_and(|e| e.stopped));
    job["now"] = json!(epoch_ms(SystemTime::now()));
    job["maxParallelism"] = json!(view.graph.stream_graph.config.max_parallelism);
    job["vertices"] = json!(vertices);
    job["status-counts"] = task_counts(&reading.states);
    job["plan"] = plan_body(view);
    job["bottleneck"] = bottleneck(view);
    job
}

/// `GET /jobs/{id}/bottleneck`: which task limits the job (docs/rest-api.md).
pub(crate) fn bottleneck(view: &JobView) -> Value {
    let verdict = view.bottleneck();
    let (kind, task, sources) = match &verdict {
        BottleneckVerdict::Measuring => ("measuring", None, Vec::new()),
        BottleneckVerdict::Task(b) => ("task", Some(b), Vec::new()),
        BottleneckVerdict::SourceBound { sources } => ("source-bound", None, sources.clone()),
        BottleneckVerdict::NoBottleneck => ("none", None, Vec::new()),
    };
    let task = task.map(|b| {
        let operators: Vec<Value> = b
            .operators
            .iter()
            .map(|o| json!({ "id": o.node.to_string(), "name": o.name, "share": o.share }))
            .collect();
        json!({
            "id": b.vertex.to_string(),
            "name": b.task,
            "subtask": b.subtask,
            "busyTimeMsPerSecond": b.busy_ms_per_s,
            "backPressuredTimeMsPerSecond": b.back_pressured_ms_per_s,
            "records-in-per-second": b.records_in_per_s,
            "records-out-per-second": b.records_out_per_s,
            "holds-back": b.held_back,
            "hottest-operator": b.hottest_operator().map(|o| o.name.clone()),
            "operators": operators,
        })
    });
    json!({
        "verdict": kind,
        "message": verdict.to_string(),
        "window-ms": millis(crate::bottleneck::WINDOW),
        "bottleneck": task,
        "sources": sources,
    })
}

/// `GET /jobs/{id}/plan`.
pub(crate) fn plan(view: &JobView) -> Value {
    json!({ "plan": plan_body(view) })
}

/// `GET /jobs/{id}/vertices/{vid}`: every subtask of one vertex, with the operators
/// of its chain.
pub(crate) fn vertex(view: &JobView, v: usize, reading: &Reading, rates: &Rates) -> Value {
    let vertex = &view.graph.vertices[v];
    let subtasks: Vec<Value> = view
        .task_range(v)
        .map(|t| subtask(view, t, reading, rates))
        .collect();
    json!({
        "id": v.to_string(),
        "name": vertex.name,
        "parallelism": vertex.parallelism,
        "maxParallelism": view.graph.stream_graph.config.max_parallelism,
        "now": epoch_ms(SystemTime::now()),
        "subtasks": subtasks,
    })
}

/// `GET /jobs/{id}/vertices/{vid}/backpressure`: busy, back-pressured and idle time
/// per second of every subtask over the last window, and Flink's OK / LOW / HIGH.
pub(crate) fn backpressure(view: &JobView, v: usize, rates: &Rates) -> Value {
    let range = view.task_range(v);
    let subtasks: Vec<Value> = range
        .clone()
        .map(|t| {
            let shares = rates.shares[t];
            let (subtask, process) = view.subtask_of(t);
            json!({
                "subtask": subtask,
                "process": process,
                "attempt-number": 0,
                "backpressure-level": level_name(shares.level()),
                "ratio": shares.back_pressured_ms_per_s / 1000.0,
                "idleRatio": shares.idle_ms_per_s / 1000.0,
                "busyRatio": shares.busy_ms_per_s / 1000.0,
                "backPressuredTimeMsPerSecond": shares.back_pressured_ms_per_s,
                "busyTimeMsPerSecond": shares.busy_ms_per_s,
                "idleTimeMsPerSecond": shares.idle_ms_per_s,
            })
        })
        .collect();
    json!({
        "status": "ok",
        "backpressure-level": level_name(vertex_level(rates, range)),
        "end-timestamp": epoch_ms(SystemTime::now()),
        "window-ms": millis(rates.window),
        "subtasks": subtasks,
    })
}

/// `GET /jobs/{id}/exceptions`: the failure that ended the job, if one did.
pub(crate) fn exceptions(view: &JobView) -> Value {
    let failure = view.status().end().and_then(|end| {
        end.error
            .filter(|_| end.state == JobState::Failed)
            .map(|e| (e, end.at))
    });
    let Some((error, at)) = failure else {
        return json!({
            "root-exception": null,
            "timestamp": null,
            "all-exceptions": [],
            "truncated": false,
            "exceptionHistory": { "entries": [], "truncated": false },
        });
    };
    let (name, task) = match &error {
        JobError::OperatorFailed {
            operator,
            subtask,
            parallelism,
            ..
        } => (
            "OperatorFailed",
            format!("{operator} ({subtask}/{parallelism})"),
        ),
        JobError::Graph(_) => ("Graph", String::new()),
        JobError::Cancelled { .. } => ("Cancelled", String::new()),
        JobError::Runtime(_) => ("Runtime", String::new()),
        JobError::Restore(_) => ("Restore", String::new()),
        JobError::Cluster(_) => ("Cluster", String::new()),
    };
    let message = error.to_string();
    let at = epoch_ms(at);
    json!({
        "root-exception": message,
        "timestamp": at,
        "all-exceptions": [{ "exception": message, "task": task, "timestamp": at }],
        "truncated": false,
        "exceptionHistory": {
            "entries": [{
                "exceptionName": name,
                "stacktrace": message,
                "timestamp": at,
                "taskName": task,
            }],
            "truncated": false,
        },
    })
}

fn plan_body(view: &JobView) -> Value {
    let g = &view.graph;
    let nodes: Vec<Value> = g
        .vertices
        .iter()
        .map(|v| {
            let inputs: Vec<Value> = g
                .edges
                .iter()
                .filter(|e| e.target_vertex == v.id)
                .enumerate()
                .map(|(num, e)| {
                    json!({
                        "num": num,
                        "id": e.source_vertex.to_string(),
                        "ship_strategy": e.partitioner.kind.to_string(),
                        "exchange": "pipelined_bounded",
                    })
                })
                .collect();
            let operators: Vec<&str> = v
                .nodes
                .iter()
                .map(|&n| g.stream_graph.nodes[n].name.as_str())
                .collect();
            json!({
                "id": v.id.to_string(),
                "parallelism": v.parallelism,
                "operator": "",
                "operator_strategy": "",
                "description": v.name,
                "operators": operators,
                "inputs": inputs,
                "optimizer_properties": {},
            })
        })
        .collect();
    json!({ "jid": view.id, "name": view.name, "type": "STREAMING", "nodes": nodes })
}

fn vertex_summary(view: &JobView, v: usize, reading: &Reading, rates: &Rates) -> Value {
    let vertex = &view.graph.vertices[v];
    let range = view.task_range(v);
    let tasks = &reading.tasks[range.clone()];
    let job = view.status();
    let end = tasks.iter().all(|t| t.ended).then(|| {
        let longest = tasks.iter().map(|t| t.elapsed).max().unwrap_or_default();
        epoch_ms(job.started_at + longest)
    });
    let sum = |f: &dyn Fn(usize) -> f64| range.clone().map(f).sum::<f64>();
    let max_busy = rates.shares[range.clone()]
        .iter()
        .map(|s| s.busy_ms_per_s)
        .fold(0.0, f64::max);
    json!({
        "id": v.to_string(),
        "name": vertex.name,
        "maxParallelism": view.graph.stream_graph.config.max_parallelism,
        "parallelism": vertex.parallelism,
        "status": vertex_status(view.state(), &reading.states[range.clone()]).as_str(),
        "start-time": epoch_ms(job.started_at),
        "end-time": end.map_or(-1, |e| e as i64),
        "duration": millis(tasks.iter().map(|t| t.elapsed).max().unwrap_or_default()),
        "tasks": task_counts(&reading.states[range.clone()]),
        "metrics": io_metrics(range.clone(), reading),
        "backpressure-level": level_name(vertex_level(rates, range.clone())),
        "max-busy-ms-per-second": max_busy,
        "records-in-per-second": sum(&|t| rates.records_in_per_s[t]),
        "records-out-per-second": sum(&|t| rates.records_out_per_s[t]),
    })
}

/// Entry `t` of the reading: one subtask, with the process running it.
fn subtask(view: &JobView, t: usize, reading: &Reading, rates: &Rates) -> Value {
    let task = &reading.tasks[t];
    let shares = rates.shares[t];
    let (s, process) = view.subtask_of(t);
    let operators: Vec<Value> = view
        .chain_operators(t)
        .into_iter()
        .map(|o| {
            let custom: serde_json::Map<String, Value> = o
                .custom
                .into_iter()
                .map(|(name, value)| (name, json!(value)))
                .collect();
            json!({
                "id": o.node.to_string(),
                "name": view.operators()[o.node].name,
                "records-in": o.counts.records_in,
                "records-out": o.counts.records_out,
                "side-output-unconsumed": o.counts.side_output_unconsumed,
                "dead-letters-discarded": o.counts.dead_letters_discarded,
                "metrics": custom,
            })
        })
        .collect();
    let job = view.status();
    json!({
        "subtask": s,
        "process": process,
        "status": reading.states[t].as_str(),
        "attempt": 0,
        "host": "localhost",
        "start-time": epoch_ms(job.started_at),
        "end-time": if task.ended { epoch_ms(job.started_at + task.elapsed) as i64 } else { -1 },
        "duration": millis(task.elapsed),
        "metrics": io_metrics(t..t + 1, reading),
        "records-in-per-second": rates.records_in_per_s[t],
        "records-out-per-second": rates.records_out_per_s[t],
        "busyTimeMsPerSecond": shares.busy_ms_per_s,
        "backPressuredTimeMsPerSecond": shares.back_pressured_ms_per_s,
        "idleTimeMsPerSecond": shares.idle_ms_per_s,
        "backpressure-level": level_name(shares.level()),
        "out-pool-usage": task.out_pool_usage,
        "in-pool-usage": task.in_pool_usage,
        "debloatedBufferSize": task.debloated_buffer_size,
        "operators": operators,
    })
}

/// Flink's `IOMetricsInfo` summed over the subtasks `range` of the reading.
fn io_metrics(range: std::ops::Range<usize>, reading: &Reading) -> Value {
    let tasks = &reading.tasks[range.clone()];
    let records = &reading.records[range.clone()];
    let busy: Duration = tasks
        .iter()
        .map(|t| t.elapsed.saturating_sub(t.back_pressured + t.idle))
        .sum();
    json!({
        "read-bytes": reading.bytes_in[range.clone()].iter().sum::<u64>(),
        "read-bytes-complete": true,
        "write-bytes": reading.bytes_out[range].iter().sum::<u64>(),
        "write-bytes-complete": true,
        "read-records": records.iter().map(|r| r.0).sum::<u64>(),
        "read-records-complete": true,
        "write-records": records.iter().map(|r| r.1).sum::<u64>(),
        "write-records-complete": true,
        "accumulated-backpressured-time": tasks.iter().map(|t| millis(t.back_pressured)).sum::<u64>(),
        "accumulated-idle-time": tasks.iter().map(|t| millis(t.idle)).sum::<u64>(),
        "accumulated-busy-time": millis(busy) as f64,
    })
}

fn job_times(view: &JobView) -> Value {
    let status = view.status();
    let start = status.started_at;
    let end = status.end().map(|e| e.at);
    let duration = end
        .unwrap_or_else(SystemTime::now)
        .duration_since(start)
        .unwrap_or_default();
    json!({
        "start-time": epoch_ms(start),
        "end-time": end.map_or(-1, |e| epoch_ms(e) as i64),
        "duration": millis(duration),
        "last-modification": epoch_ms(end.unwrap_or(start)),
    })
}

/// Subtasks per state, with Flink's task state names (`CREATED` only when some
/// subtask of another process has not been heard of yet).
fn task_counts(states: &[SubtaskState]) -> Value {
    let mut counts = serde_json::Map::new();
    for name in ["RUNNING", "CANCELING", "FINISHED", "CANCELED", "FAILED"] {
        counts.insert(name.into(), json!(0));
    }
    for state in states {
        let name = state.as_str();
        let now = counts.get(name).and_then(Value::as_u64).unwrap_or(0);
        counts.insert(name.into(), json!(now + 1));
    }
    Value::Object(counts)
}

/// A vertex's state: that of a subtask still running (or cancelling), else of one
/// not started, else the ended state the job gives its subtasks.
fn vertex_status(job: JobState, states: &[SubtaskState]) -> SubtaskState {
    let live = |s: &&SubtaskState| matches!(s, SubtaskState::Running | SubtaskState::Canceling);
    states
        .iter()
        .find(live)
        .or_else(|| states.iter().find(|s| **s == SubtaskState::Created))
        .copied()
        .unwrap_or_else(|| SubtaskState::of(job, true))
}

/// The highest level among the subtasks `range`, as Flink colours a vertex.
fn vertex_level(rates: &Rates, range: std::ops::Range<usize>) -> BackPressureLevel {
    let worst = rates.shares[range]
        .iter()
        .map(|s| s.back_pressured_ms_per_s)
        .fold(0.0, f64::max);
    BackPressureLevel::of_ratio(worst / 1000.0)
}

/// Flink's spelling of a level in the back-pressure endpoint.
fn level_name(level: BackPressureLevel) -> &'static str {
    match level {
        BackPressureLevel::Ok => "ok",
        BackPressureLevel::Low => "low",
        BackPressureLevel::High => "high",
    }
}

fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, millis)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
