//! `/metrics`: the job's live metrics in the Prometheus text format, encoded by the
//! `prometheus-client` crate on each scrape (nothing is collected between scrapes).
//! Names follow Flink's Prometheus reporter (`flink_taskmanager_job_task_...`, with
//! Flink's metric names and labels); counters of time follow Prometheus conventions.
//! For a job spread over processes, every subtask's series has a `process` label, and
//! process 0's cover every process's subtasks (from their reports).

use std::collections::BTreeMap;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::job_view::JobView;

/// The content type of Prometheus' text format 0.0.4.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const TASK: &str = "flink_taskmanager_job_task_";
const OPERATOR: &str = "flink_taskmanager_job_task_operator_";
/// Flink reports checkpoint metrics on the job manager's job scope.
const JOB: &str = "flink_jobmanager_job_";

type Labels = Vec<(&'static str, String)>;

/// A registry whose one collector reads `view` on every scrape.
pub(crate) fn registry(view: Arc<JobView>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(JobCollector { view }));
    registry
}

/// Encodes `registry` in the text format.
pub(crate) fn encode(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, registry)?;
    Ok(out)
}

struct JobCollector {
    view: Arc<JobView>,
}

impl std::fmt::Debug for JobCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobCollector")
            .field("job", &self.view.id)
            .finish()
    }
}

/// One metric family: its samples, labelled.
struct Family {
    help: &'static str,
    kind: MetricType,
    samples: Vec<(Labels, f64)>,
}

impl Collector for JobCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut families: BTreeMap<String, Family> = BTreeMap::new();
        self.task_families(&mut families);
        self.operator_families(&mut families);
        self.checkpoint_families(&mut families);
        for (name, family) in &families {
            let mut metric = encoder.encode_descriptor(name, family.help, None, family.kind)?;
            for (labels, value) in &family.samples {
                let sample = metric.encode_family(labels)?;
                match family.kind {
                    MetricType::Counter => ConstCounter::new(*value).encode(sample)?,
                    _ => ConstGauge::new(*value).encode(sample)?,
                }
            }
        }
        Ok(())
    }
}

impl JobCollector {
    fn job_labels(&self) -> Labels {
        vec![
            ("job_id", self.view.id.clone()),
            ("job_name", self.view.name.clone()),
        ]
    }

    /// `subtask_index` of entry `t` of a reading and, for a job spread over
    /// processes, the `process` running it.
    fn subtask_labels(&self, labels: &mut Labels, t: usize) {
        let (subtask, process) = self.view.subtask_of(t);
        labels.push(("subtask_index", subtask.to_string()));
        if self.view.is_cluster() {
            labels.push(("process", process.to_string()));
        }
    }

    /// Per subtask: records, bytes, time shares over the last window, time counters
    /// and buffer pool usage.
    fn task_families(&self, families: &mut BTreeMap<String, Family>) {
        let (reading, rates) = self.view.read();
        for (v, vertex) in self.view.graph.vertices.iter().enumerate() {
            for t in self.view.task_range(v) {
                let mut labels = self.job_labels();
                labels.push(("task_id", v.to_string()));
                labels.push(("task_name", vertex.name.clone()));
                self.subtask_labels(&mut labels, t);
                let task = &reading.tasks[t];
                let shares = rates.shares[t];
                let busy = task.elapsed.saturating_sub(task.back_pressured + task.idle);
                let gauges = [
                    (
                        "numRecordsIn",
                        "Records the subtask received from the network.",
                        reading.records[t].0 as f64,
                    ),
                    (
                        "numRecordsOut",
                        "Records the subtask emitted to other tasks.",
                        reading.records[t].1 as f64,
                    ),
                    (
                        "numBytesIn",
                        "Bytes the subtask received from the network.",
                        reading.bytes_in[t] as f64,
                    ),
                    (
                        "numBytesOut",
                        "Bytes the subtask shipped to the network.",
                        reading.bytes_out[t] as f64,
                    ),
                    (
                        "numRecordsInPerSecond",
                        "Records received per second over the last window.",
                        rates.records_in_per_s[t],
                    ),
                    (
                        "numRecordsOutPerSecond",
                        "Records emitted per second over the last window.",
                        rates.records_out_per_s[t],
                    ),
                    (
                        "busyTimeMsPerSecond",
                        "Milliseconds per second busy over the last window.",
                        shares.busy_ms_per_s,
                    ),
                    (
                        "backPressuredTimeMsPerSecond",
                        "Milliseconds per second back-pressured over the last window.",
                        shares.back_pressured_ms_per_s,
                    ),
                    (
                        "idleTimeMsPerSecond",
                        "Milliseconds per second idle over the last window.",
                        shares.idle_ms_per_s,
                    ),
                    (
                        "buffers_outPoolUsage",
                        "Fraction of the output buffer pool in use.",
                        task.out_pool_usage,
                    ),
                    (
                        "buffers_inPoolUsage",
                        "Fraction of the input buffers in use.",
                        task.in_pool_usage,
                    ),
                ];
                for (name, help, value) in gauges {
                    push(
                        families,
                        TASK,
                        name,
                        help,
                        MetricType::Gauge,
                        &labels,
                        value,
                    );
                }
                let counters = [
                    (
                        "busyTimeMs",
                        "Milliseconds the subtask was busy since it started.",
                        busy,
                    ),
                    (
                        "backPressuredTimeMs",
                        "Milliseconds the subtask was back-pressured since it started.",
                        task.back_pressured,
                    ),
                    (
                        "idleTimeMs",
                        "Milliseconds the subtask was idle since it started.",
                        task.idle,
                    ),
                ];
                for (name, help, value) in counters {
                    let ms = value.as_secs_f64() * 1000.0;
                    push(families, TASK, name, help, MetricType::Counter, &labels, ms);
                }
            }
        }
    }

    /// The job's checkpoint metrics, under Flink's names, when it takes checkpoints.
    fn checkpoint_families(&self, families: &mut BTreeMap<String, Family>) {
        let Some(stats) = &self.view.checkpoints else {
            return;
        };
        let stats = stats.snapshot();
        let labels = self.job_labels();
        let last = stats.latest_completed.as_ref();
        let in_progress = stats.in_progress();
        let gauges = [
            (
                "lastCheckpointDuration",
                "Milliseconds the last completed checkpoint took (-1 before one).",
                last.map_or(-1.0, |r| r.duration_ms() as f64),
            ),
            (
                "lastCheckpointSize",
                "Bytes of state of the last completed checkpoint (-1 before one).",
                last.map_or(-1.0, |r| r.state_size() as f64),
            ),
            (
                "numberOfCompletedCheckpoints",
                "Checkpoints completed (savepoints included).",
                stats.completed as f64,
            ),
            (
                "numberOfFailedCheckpoints",
                "Checkpoints that failed.",
                stats.failed as f64,
            ),
            (
                "numberOfInProgressCheckpoints",
                "Checkpoints in progress.",
                in_progress as f64,
            ),
            (
                "totalNumberOfCheckpoints",
                "Checkpoints triggered: completed, failed and in progress.",
                (stats.completed + stats.failed + in_progress) as f64,
            ),
        ];
        for (name, help, value) in gauges {
            push(families, JOB, name, help, MetricType::Gauge, &labels, value);
        }
    }

    /// Per operator and subtask: records in and out, dead letters and side outputs
    /// dropped, and the operator's own metrics (retries, timeouts, in_flight, ...).
    fn operator_families(&self, families: &mut BTreeMap<String, Family>) {
        let graph = &self.view.graph;
        for (v, vertex) in graph.vertices.iter().enumerate() {
            for t in self.view.task_range(v) {
                for o in self.view.chain_operators(t) {
                    let n = o.node;
                    let mut labels = self.job_labels();
                    labels.push(("task_id", v.to_string()));
                    labels.push(("task_name", vertex.name.clone()));
                    labels.push(("operator_id", n.to_string()));
                    labels.push(("operator_name", graph.stream_graph.nodes[n].name.clone()));
                    self.subtask_labels(&mut labels, t);
                    let fixed = [
                        (
                            "numRecordsIn",
                            "Records the operator received.",
                            o.counts.records_in,
                        ),
                        (
                            "numRecordsOut",
                            "Records the operator emitted.",
                            o.counts.records_out,
                        ),
                        (
                            "deadLettersDiscarded",
                            "Dead letters nothing reads, dropped on purpose.",
                            o.counts.dead_letters_discarded,
                        ),
                        (
                            "sideOutputUnconsumed",
                            "Side-output records nothing reads.",
                            o.counts.side_output_unconsumed,
                        ),
                    ];
                    for (name, help, value) in fixed {
                        push(
                            families,
                            OPERATOR,
                            name,
                            help,
                            MetricType::Gauge,
                            &labels,
                            value as f64,
                        );
                    }
                    for (name, value) in o.custom {
                        let help = "An operator-specific metric (see docs/rest-api.md).";
                        push(
                            families,
                            OPERATOR,
                            &sanitize(&name),
                            help,
                            MetricType::Gauge,
                            &labels,
                            value as f64,
                        );
                    }
                }
            }
        }
    }
}

fn push(
    families: &mut BTreeMap<String, Family>,
    prefix: &str,
    name: &str,
    help: &'static str,
    kind: MetricType,
    labels: &Labels,
    value: f64,
) {
    families
        .entry(format!("{prefix}{name}"))
        .or_insert_with(|| Family {
            help,
            kind,
            samples: Vec::new(),
        })
        .samples
        .push((labels.clone(), value));
}

/// A metric name Prometheus accepts: `[a-zA-Z0-9_]`, other characters become `_`.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}
