//! [`BottleneckWatch`]: samples a running job to name its bottleneck. It starts on
//! the first request for a verdict (a job nobody asks about pays nothing), then, on a
//! thread of its own until the job ends, looks every [`TICK`] at which operator each
//! task thread is in (the flags `Chained` sets once per batch) and at what it waits
//! for, and every [`WINDOW`] turns the samples, the tasks' time accounting and the
//! record counters into a [`BottleneckVerdict`]. A process of a job spread over
//! processes watches its own subtasks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use flink_core::graph::JobGraph;
use flink_core::node::NodeKind;
use parking_lot::Mutex;

use crate::bottleneck::{BottleneckVerdict, OperatorShare, VertexWindow, WINDOW, judge};
use crate::job_client::OperatorCounters;
use crate::job_status::JobStatusCell;
use crate::network::Waiting;
use crate::task_metrics::{TaskMetrics, TaskMetricsSnapshot};

/// How often the watch looks at which operator each task is in.
pub(crate) const TICK: Duration = Duration::from_millis(10);

/// The bottleneck verdict of one job, sampled on demand.
pub(crate) struct BottleneckWatch {
    shared: Arc<Shared>,
    started: AtomicBool,
}

struct Shared {
    graph: Arc<JobGraph>,
    /// Per vertex, the subtasks this process runs (every one, unless the job is
    /// spread over processes): `tasks` holds theirs in this order.
    local: Vec<Vec<usize>>,
    tasks: Vec<Arc<TaskMetrics>>,
    operators: Vec<OperatorCounters>,
    status: Arc<JobStatusCell>,
    verdict: Mutex<BottleneckVerdict>,
    stop: AtomicBool,
}

impl BottleneckWatch {
    /// A watch over this process's tasks (in job order) and the job's operators;
    /// not sampling yet.
    pub(crate) fn new(
        graph: Arc<JobGraph>,
        tasks: Vec<Arc<TaskMetrics>>,
        operators: Vec<OperatorCounters>,
        status: Arc<JobStatusCell>,
    ) -> Self {
        let cluster = graph.stream_graph.config.cluster.as_ref();
        let local = graph
            .vertices
            .iter()
            .map(|v| {
                (0..v.parallelism)
                    .filter(|&s| cluster.is_none_or(|c| c.is_local(s)))
                    .collect()
            })
            .collect();
        Self {
            shared: Arc::new(Shared {
                local,
                graph,
                tasks,
                operators,
                status,
                verdict: Mutex::new(BottleneckVerdict::Measuring),
                stop: AtomicBool::new(false),
            }),
            started: AtomicBool::new(false),
        }
    }

    /// The verdict of the last closed window; the first call starts sampling (and
    /// says [`BottleneckVerdict::Measuring`] until a window has closed). After the
    /// job ended, the verdict of its last window.
    pub(crate) fn verdict(&self) -> BottleneckVerdict {
        if !self.started.swap(true, Ordering::Relaxed) && !self.shared.status.state().is_terminal()
        {
            let shared = self.shared.clone();
            let spawned = std::thread::Builder::new()
                .name("bottleneck-watch".into())
                .spawn(move || sample(&shared));
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "the bottleneck watch cannot start its thread");
            }
        }
        self.shared.verdict.lock().clone()
    }
}

impl Drop for BottleneckWatch {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

/// One window's samples: per task, per node of its chain, how many ticks found the
/// thread working there.
struct Window {
    opened: Instant,
    tasks: Vec<TaskMetricsSnapshot>,
    /// (records in, records out) per task, as [`records`] counts them.
    records: Vec<(u64, u64)>,
    samples: Vec<Vec<u32>>,
}

fn sample(shared: &Shared) {
    let mut window = open_window(shared);
    while !shared.stop.load(Ordering::Relaxed) && !shared.status.state().is_terminal() {
        std::thread::sleep(TICK);
        tick(shared, &mut window.samples);
        if window.opened.elapsed() >= WINDOW {
            let next = open_window(shared);
            let verdict = judge(&vertex_windows(shared, &window, &next));
            *shared.verdict.lock() = verdict;
            window = next;
        }
    }
}

fn open_window(shared: &Shared) -> Window {
    let g = &shared.graph;
    Window {
        opened: Instant::now(),
        tasks: shared.tasks.iter().map(|t| t.snapshot()).collect(),
        records: records(shared),
        samples: g
            .vertices
            .iter()
            .flat_map(|v| shared.local[v.id].iter().map(|_| vec![0; v.nodes.len()]))
            .collect(),
    }
}

/// Counts, for each working task thread, the innermost operator whose flag is set
/// (the chain's nodes are in order, each after the one feeding it), or the head when
/// none is (a source reading, a task decoding input).
fn tick(shared: &Shared, samples: &mut [Vec<u32>]) {
    let mut t = 0;
    for v in &shared.graph.vertices {
        for &s in &shared.local[v.id] {
            if shared.tasks[t].io.waiting() == Waiting::Nothing {
                let inner = v
                    .nodes
                    .iter()
                    .rposition(|&n| {
                        shared.operators[n].instances[s]
                            .active
                            .load(Ordering::Relaxed)
                    })
                    .unwrap_or(0);
                samples[t][inner] += 1;
            }
            t += 1;
        }
    }
}

/// (records in, records out) of every task: a source task's input is what its source
/// read; its output is what its chain's last operators emitted.
fn records(shared: &Shared) -> Vec<(u64, u64)> {
    let g = &shared.graph;
    let mut out = Vec::with_capacity(shared.tasks.len());
    for v in &g.vertices {
        let head = v.head();
        let exits: Vec<usize> = v
            .nodes
            .iter()
            .copied()
            .filter(|&n| {
                let mut edges = g.stream_graph.edges.iter().filter(|e| e.source == n);
                let leaves_vertex = edges.clone().any(|e| !v.nodes.contains(&e.target));
                leaves_vertex || edges.next().is_none()
            })
            .collect();
        for &s in &shared.local[v.id] {
            let m = |n: usize| shared.operators[n].instances[s].snapshot();
            let records_in = match g.stream_graph.nodes[head].kind {
                NodeKind::Source(_) => m(head).1,
                NodeKind::Operator(_) => m(head).0,
            };
            let records_out = exits.iter().map(|&n| m(n).1).sum();
            out.push((records_in, records_out));
        }
    }
    out
}

fn vertex_windows(shared: &Shared, before: &Window, now: &Window) -> Vec<VertexWindow> {
    let g = &shared.graph;
    let secs = now
        .opened
        .saturating_duration_since(before.opened)
        .as_secs_f64()
        .max(1e-9);
    let mut t = 0;
    let mut out = Vec::with_capacity(g.vertices.len());
    for v in &g.vertices {
        let local = &shared.local[v.id];
        let range = t..t + local.len();
        t += local.len();
        let shares: Vec<_> = range
            .clone()
            .map(|i| now.tasks[i].shares_since(&before.tasks[i]))
            .collect();
        let (busiest, busy) = shares
            .iter()
            .enumerate()
            .map(|(s, sh)| (s, sh.busy_ms_per_s))
            .fold((0, 0.0), |a, b| if b.1 > a.1 { b } else { a });
        let rate = |f: fn(&(u64, u64)) -> u64| {
            range
                .clone()
                .map(|i| f(&now.records[i]).saturating_sub(f(&before.records[i])))
                .sum::<u64>() as f64
                / secs
        };
        let mut per_node = vec![0u64; v.nodes.len()];
        for i in range.clone() {
            for (pos, n) in before.samples[i].iter().enumerate() {
                per_node[pos] += u64::from(*n);
            }
        }
        let total = per_node.iter().sum::<u64>().max(1) as f64;
        let mut operators: Vec<OperatorShare> = v
            .nodes
            .iter()
            .zip(&per_node)
            .map(|(&n, &c)| OperatorShare {
                node: n,
                name: g.stream_graph.nodes[n].name.clone(),
                share: c as f64 / total,
            })
            .collect();
        operators.sort_by(|a, b| b.share.total_cmp(&a.share));
        out.push(VertexWindow {
            name: v.name.clone(),
            is_source: matches!(g.stream_graph.nodes[v.head()].kind, NodeKind::Source(_)),
            head: v.head(),
            upstream: g
                .edges
                .iter()
                .filter(|e| e.target_vertex == v.id)
                .map(|e| e.source_vertex)
                .collect(),
            busiest_subtask: local.get(busiest).copied().unwrap_or(0),
            busy_ms_per_s: busy,
            back_pressured_ms_per_s: shares
                .iter()
                .map(|s| s.back_pressured_ms_per_s)
                .fold(0.0, f64::max),
            records_in_per_s: rate(|r| r.0),
            records_out_per_s: rate(|r| r.1),
            operators,
            ended: now.tasks[range].iter().all(|t| t.ended),
        });
    }
    out
}
