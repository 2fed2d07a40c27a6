//! [`JobView`]: what the REST API and `/metrics` read of one job: its graph, its live
//! metrics, its state, and the window its rates are computed over.

use std::hash::{BuildHasher, Hasher};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use flink_core::graph::JobGraph;
use flink_core::metrics::OperatorMetrics;
use flink_core::node::NodeKind;
use flink_core::pipeline::PipelineBackPressureController;
use parking_lot::Mutex;

use super::rate_window::{RateWindow, Rates, Reading};
use crate::job_client::{JobControl, JobObservables, OperatorCounters};
use crate::job_status::{JobState, JobStatusCell};

/// One job as its server sees it.
pub(crate) struct JobView {
    /// 32 hex digits, as Flink's `JobID`.
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) graph: Arc<JobGraph>,
    pub(crate) control: JobControl,
    observables: JobObservables,
    /// Where each vertex's subtasks are in the job's task list.
    task_ranges: Vec<Range<usize>>,
    /// Per vertex: its head node, and the nodes whose records leave the vertex.
    vertex_io: Vec<(usize, Vec<usize>)>,
    window: Mutex<RateWindow>,
    /// One controller per five-stage pipeline of the job, for its status endpoint.
    pipelines: Vec<PipelineBackPressureController>,
    /// The checkpoint coordinator's records, when the job takes checkpoints.
    pub(crate) checkpoints: Option<Arc<crate::checkpoint::stats::CheckpointStats>>,
    /// Savepoints triggered through the API.
    pub(crate) savepoints: Arc<super::savepoint_triggers::SavepointTriggers>,
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
        let mut task_ranges = Vec::with_capacity(graph.vertices.len());
        let mut next = 0;
        for v in &graph.vertices {
            task_ranges.push(next..next + v.parallelism);
            next += v.parallelism;
        }
        let vertex_io =
            graph
                .vertices
                .iter()
                .map(|v| {
                    let exits =
                        v.nodes
                            .iter()
                            .copied()
                            .filter(|&n| {
                                graph.stream_graph.edges.iter().any(|e| {
                                    e.source == n && graph.vertex_of_node[e.target] != v.id
                                })
                            })
                            .collect();
                    (v.head(), exits)
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
            task_ranges,
            vertex_io,
            pipelines,
            checkpoints,
            savepoints: Arc::default(),
            window: Mutex::new(RateWindow::new(Reading {
                at: Instant::now(),
                tasks: Vec::new(),
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

    /// The counters of operator `node` in subtask `subtask`.
    pub(crate) fn operator_instance(&self, node: usize, subtask: usize) -> &OperatorMetrics {
        &self.observables.operators[node].instances[subtask]
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

    /// Reads every subtask now, and the rates over the current window.
    pub(crate) fn read(&self) -> (Reading, Rates) {
        let now = self.reading();
        let rates = self.window.lock().rates(now.clone());
        (now, rates)
    }

    fn reading(&self) -> Reading {
        let mut records = Vec::with_capacity(self.observables.tasks.len());
        for (v, (head, exits)) in self.vertex_io.iter().enumerate() {
            for s in 0..self.graph.vertices[v].parallelism {
                records.push((
                    self.vertex_records_in(*head, s),
                    self.vertex_records_out(exits, s),
                ));
            }
        }
        Reading {
            at: Instant::now(),
            tasks: self.observables.task_snapshots(),
            records,
            bytes_out: self
                .observables
                .tasks
                .iter()
                .map(|t| t.io.bytes_shipped())
                .collect(),
            bytes_in: self
                .observables
                .tasks
                .iter()
                .map(|t| t.io.bytes_received())
                .collect(),
        }
    }

    /// Records a subtask received from the network (none for a source, as in Flink).
    fn vertex_records_in(&self, head: usize, subtask: usize) -> u64 {
        match self.graph.stream_graph.nodes[head].kind {
            NodeKind::Source(_) => 0,
            NodeKind::Operator(_) => self
                .operator_instance(head, subtask)
                .records_in
                .load(Ordering::Relaxed),
        }
    }

    /// Records a subtask's chain emitted towards other vertices.
    fn vertex_records_out(&self, exits: &[usize], subtask: usize) -> u64 {
        exits
            .iter()
            .map(|&n| {
                self.operator_instance(n, subtask)
                    .records_out
                    .load(Ordering::Relaxed)
            })
            .sum()
    }
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
