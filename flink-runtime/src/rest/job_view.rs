//! [`JobView`]: what the REST API and `/metrics` read of one job: its graph, its live
//! metrics (on process 0 of a job spread over processes, also the other processes'
//! reports), its state, and the window its rates are computed over.

use std::hash::{BuildHasher, Hasher};
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use flink_core::graph::JobGraph;
use flink_core::metrics::OperatorMetrics;
use flink_core::node::NodeKind;
use flink_core::pipeline::PipelineBackPressureController;
use parking_lot::Mutex;

use super::rate_window::{RateWindow, Rates, Reading};
use crate::cluster::{ChainedCounts, SubtaskReport, SubtaskState};
use crate::job_client::{JobControl, JobObservables, OperatorCounters};
use crate::job_status::{JobState, JobStatusCell};
use crate::task_metrics::{TaskMetrics, TaskMetricsSnapshot};

/// One subtask the view shows: where it runs and where its metrics come from.
struct Slot {
    vertex: usize,
    subtask: usize,
    /// The process that runs it (0 for a job in one process).
    process: usize,
    /// Its live metrics when it runs in this process; otherwise process 0 reads the
    /// latest report its process sent.
    local: Option<Arc<TaskMetrics>>,
}

/// One job as its server sees it. Alone, and on process 0 of a job spread over
/// processes, it shows every subtask of the job (process 0 those of the others from
/// their reports, see `cluster::subtask_sync`); the other processes show their own.
pub(crate) struct JobView {
    /// 32 hex digits, as Flink's `JobID`.
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) graph: Arc<JobGraph>,
    pub(crate) control: JobControl,
    observables: JobObservables,
    /// The subtasks shown, by vertex and then subtask: a [`Reading`]'s order.
    slots: Vec<Slot>,
    /// Where each vertex's subtasks are among the slots.
    task_ranges: Vec<Range<usize>>,
    /// Per vertex: whether its head is a source, and the chain positions whose
    /// records leave the vertex.
    vertex_io: Vec<(bool, Vec<usize>)>,
    window: Mutex<RateWindow>,
    /// One controller per five-stage pipeline of the job, for its status endpoint.
    pipelines: Vec<PipelineBackPressureController>,
    /// The checkpoint coordinator's records, when the job takes checkpoints.
    pub(crate) checkpoints: Option<Arc<crate::checkpoint::stats::CheckpointStats>>,
    /// Savepoints triggered through the API.
    pub(crate) savepoints: Arc<super::savepoint_triggers::SavepointTriggers>,
}

/// One operator of a subtask's chain, as the vertex view and `/metrics` list it.
pub(crate) struct ChainOperator {
    /// Its stream node id.
    pub(crate) node: usize,
    pub(crate) counts: ChainedCounts,
    /// Its own metrics (only for subtasks of this process).
    pub(crate) custom: Vec<(String, u64)>,
}

impl JobView {
    /// The view of a job just submitted.
    pub(crate) fn new(
        name: &str,
        graph: Arc<JobGraph>,
        observables: JobObservables,
        control: JobControl,
        checkpoints: Option<Arc<crate::checkpoint::stats::CheckpointStats>>,
    ) -> Arc<Self> {
        let slots = slots(&graph, &observables);
        let mut task_ranges = Vec::with_capacity(graph.vertices.len());
        let mut next = 0;
        for v in &graph.vertices {
            let shown = slots[next..]
                .iter()
                .take_while(|s| s.vertex == v.id)
                .count();
            task_ranges.push(next..next + shown);
            next += shown;
        }
        let vertex_io = graph
            .vertices
            .iter()
            .map(|v| {
                let exits = v
                    .nodes
                    .iter()
                    .enumerate()
                    .filter(|&(_, &n)| {
                        graph
                            .stream_graph
                            .edges
                            .iter()
                            .any(|e| e.source == n && graph.vertex_of_node[e.target] != v.id)
                    })
                    .map(|(i, _)| i)
                    .collect();
                let source = matches!(graph.stream_graph.nodes[v.head()].kind, NodeKind::Source(_));
                (source, exits)
            })
            .collect();
        let pipelines = graph
            .stream_graph
            .pipelines
            .iter()
            .map(|p| PipelineBackPressureController::new(p.state.clone(), &p.config))
            .collect();
        let mut view = Self {
            id: new_job_id(),
            name: name.to_string(),
            graph,
            control,
            observables,
            slots,
            task_ranges,
            vertex_io,
            pipelines,
            checkpoints,
            savepoints: Arc::default(),
            window: Mutex::new(RateWindow::new(Reading {
                at: Instant::now(),
                tasks: Vec::new(),
                states: Vec::new(),
                records: Vec::new(),
                bytes_out: Vec::new(),
                bytes_in: Vec::new(),
            })),
        };
        view.window = Mutex::new(RateWindow::new(view.reading()));
        Arc::new(view)
    }

    /// The job's state now.
    pub(crate) fn state(&self) -> JobState {
        self.observables.status.state()
    }

    /// The job's start and end.
    pub(crate) fn status(&self) -> &JobStatusCell {
        &self.observables.status
    }

    /// The live counters of every operator (stream node), by node id.
    pub(crate) fn operators(&self) -> &[OperatorCounters] {
        &self.observables.operators
    }

    /// The processes the job runs in (1 alone).
    pub(crate) fn processes(&self) -> usize {
        self.graph
            .stream_graph
            .config
            .cluster
            .as_ref()
            .map_or(1, |c| c.processes)
    }

    /// Whether the job is spread over processes.
    pub(crate) fn is_cluster(&self) -> bool {
        self.graph.stream_graph.config.cluster.is_some()
    }

    /// The controllers of the job's five-stage pipelines, in the order applied.
    pub(crate) fn pipelines(&self) -> &[PipelineBackPressureController] {
        &self.pipelines
    }

    /// Every operator's totals so far.
    pub(crate) fn operator_summaries(&self) -> Vec<crate::job_result::OperatorSummary> {
        self.observables.operator_summaries()
    }

    /// The job's bottleneck verdict (starting the sampling on the first call).
    pub(crate) fn bottleneck(&self) -> crate::bottleneck::BottleneckVerdict {
        self.observables.bottleneck.verdict()
    }

    /// The vertex named by the path segment `vid` (its index), if it exists.
    pub(crate) fn vertex(&self, vid: &str) -> Option<usize> {
        vid.parse::<usize>()
            .ok()
            .filter(|&v| v < self.graph.vertices.len())
    }

    /// Where vertex `v`'s subtasks are in a [`Reading`].
    pub(crate) fn task_range(&self, v: usize) -> Range<usize> {
        self.task_ranges[v].clone()
    }

    /// The subtask index and process of entry `t` of a [`Reading`].
    pub(crate) fn subtask_of(&self, t: usize) -> (usize, usize) {
        (self.slots[t].subtask, self.slots[t].process)
    }

    /// The operators of entry `t`'s chain with their counts now.
    pub(crate) fn chain_operators(&self, t: usize) -> Vec<ChainOperator> {
        let slot = &self.slots[t];
        let nodes = &self.graph.vertices[slot.vertex].nodes;
        let custom = |n: usize| match slot.local {
            Some(_) => self.operator_instance(n, slot.subtask).custom_snapshot(),
            None => Vec::new(),
        };
        self.chain_counts(slot)
            .into_iter()
            .zip(nodes)
            .map(|(counts, &node)| ChainOperator {
                node,
                counts,
                custom: custom(node),
            })
            .collect()
    }

    /// Reads every subtask now, and the rates over the current window.
    pub(crate) fn read(&self) -> (Reading, Rates) {
        let now = self.reading();
        let rates = self.window.lock().rates(now.clone());
        (now, rates)
    }

    fn operator_instance(&self, node: usize, subtask: usize) -> &OperatorMetrics {
        &self.observables.operators[node].instances[subtask]
    }

    /// The latest report of a subtask of another process (on process 0), or
    /// [`SubtaskReport::not_started`] before the first one.
    fn report(&self, slot: &Slot) -> SubtaskReport {
        self.observables
            .remote_subtasks
            .as_ref()
            .and_then(|r| r.get(slot.vertex, slot.subtask))
            .unwrap_or_else(|| {
                SubtaskReport::not_started(self.graph.vertices[slot.vertex].nodes.len())
            })
    }

    /// The counts of `slot`'s chain, in order: live here, reported from elsewhere.
    fn chain_counts(&self, slot: &Slot) -> Vec<ChainedCounts> {
        if slot.local.is_none() {
            return self.report(slot).operators;
        }
        self.graph.vertices[slot.vertex]
            .nodes
            .iter()
            .map(|&n| ChainedCounts::of(self.operator_instance(n, slot.subtask)))
            .collect()
    }

    fn reading(&self) -> Reading {
        let n = self.slots.len();
        let mut reading = Reading {
            at: Instant::now(),
            tasks: Vec::with_capacity(n),
            states: Vec::with_capacity(n),
            records: Vec::with_capacity(n),
            bytes_out: Vec::with_capacity(n),
            bytes_in: Vec::with_capacity(n),
        };
        let job = self.state();
        for slot in &self.slots {
            let (task, state, bytes_in, bytes_out, counts) = match &slot.local {
                Some(metrics) => {
                    let task = metrics.snapshot();
                    let state = SubtaskState::of(job, task.ended);
                    let io = &metrics.io;
                    let counts = self.chain_counts(slot);
                    (task, state, io.bytes_received(), io.bytes_shipped(), counts)
                }
                None => {
                    // One look at the report for everything shown of the subtask.
                    let r = self.report(slot);
                    let task = self.remote_snapshot(slot, &r);
                    (task, r.state, r.bytes_in, r.bytes_out, r.operators)
                }
            };
            reading.tasks.push(task);
            reading.states.push(state);
            reading
                .records
                .push(self.vertex_records(slot.vertex, &counts));
            reading.bytes_in.push(bytes_in);
            reading.bytes_out.push(bytes_out);
        }
        reading
    }

    /// The snapshot of a subtask of another process as its report `r` has it.
    fn remote_snapshot(&self, slot: &Slot, r: &SubtaskReport) -> TaskMetricsSnapshot {
        let v = &self.graph.vertices[slot.vertex];
        TaskMetricsSnapshot {
            task: v.name.clone(),
            subtask: slot.subtask,
            parallelism: v.parallelism,
            elapsed: r.elapsed,
            ended: r.state.ended(),
            back_pressured: r.back_pressured,
            idle: r.idle,
            out_pool_usage: r.out_pool_usage,
            in_pool_usage: r.in_pool_usage,
            debloated_buffer_size: None,
            flush_ticks: 0,
        }
    }

    /// (records in, records out) of a subtask of vertex `v` whose chain counts are
    /// `counts`: in, what its head received from the network (none for a source, as
    /// in Flink); out, what its chain emitted towards other vertices.
    fn vertex_records(&self, v: usize, counts: &[ChainedCounts]) -> (u64, u64) {
        let (source, exits) = &self.vertex_io[v];
        let records_in = match (source, counts.first()) {
            (false, Some(head)) => head.records_in,
            _ => 0,
        };
        let records_out = exits
            .iter()
            .filter_map(|&i| counts.get(i))
            .map(|c| c.records_out)
            .sum();
        (records_in, records_out)
    }
}

/// The subtasks a view shows, by vertex and subtask: every one alone and on process
/// 0 of a job spread over processes, this process's own elsewhere.
fn slots(graph: &JobGraph, observables: &JobObservables) -> Vec<Slot> {
    let cluster = graph.stream_graph.config.cluster.as_ref();
    let whole_job = cluster.is_none_or(|c| c.index == 0);
    // This process's tasks are in the same order: by vertex, then subtask.
    let mut local = observables.tasks.iter();
    let mut slots = Vec::new();
    for v in &graph.vertices {
        for s in 0..v.parallelism {
            let here = cluster.is_none_or(|c| c.is_local(s));
            if !(here || whole_job) {
                continue;
            }
            let metrics = here.then(|| local.next()).flatten().cloned();
            debug_assert!(metrics.as_ref().is_none_or(|m| m.subtask == s));
            slots.push(Slot {
                vertex: v.id,
                subtask: s,
                process: cluster.map_or(0, |c| c.process_of(s)),
                local: metrics,
            });
        }
    }
    slots
}

/// A fresh random job id: 128 bits from the standard library's randomly keyed
/// hasher, as 32 hex digits.
fn new_job_id() -> String {
    let half = || {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.finish()
    };
    format!("{:016x}{:016x}", half(), half())
}
