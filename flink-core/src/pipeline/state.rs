use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::latency::LatencyHistogram;

/// The five stages, in order.
pub const STAGES: [&str; 5] = [
    "Gateway",
    "KeyGen",
    "IngressProcessing",
    "AsyncEgressProcessing",
    "FinalSink",
];

/// Index of a stage in [`STAGES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Rate control.
    Gateway = 0,
    /// Partitioning.
    KeyGen = 1,
    /// Validation and preprocessing.
    Ingress = 2,
    /// The external call.
    Egress = 3,
    /// The acknowledged destination.
    FinalSink = 4,
}

/// How full one stage's bounded queue is, summed over its parallel instances.
#[derive(Default)]
struct QueueGauge {
    instances: Mutex<Vec<(Arc<AtomicU64>, u64)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the stages of one pipeline share while it runs: how many records are inside
/// (for the gateway's concurrency limit), how full each stage's bounded queue is
/// (for pressure), pressure measured by the runtime, and end-to-end latencies.
///
/// Shared through memory, so it spans the tasks of one process (the local executor).
#[derive(Default)]
pub struct PipelineState {
    admitted: Mutex<Vec<Arc<AtomicU64>>>,
    finished: Mutex<Vec<Arc<AtomicU64>>>,
    queues: [QueueGauge; 5],
    /// Back-pressured share of each stage's tasks, as f64 bits, set by a monitor.
    task_pressure: [AtomicU64; 5],
    latency: LatencyHistogram,
    slow: AtomicU64,
}

impl PipelineState {
    /// A fresh, shareable state.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Registers a gateway instance's count of admitted records.
    pub fn register_admitted(&self, counter: Arc<AtomicU64>) {
        lock(&self.admitted).push(counter);
    }

    /// Registers a count of records that ended inside the pipeline (acknowledged,
    /// dead-lettered or counted as errors).
    pub fn register_finished(&self, counter: Arc<AtomicU64>) {
        lock(&self.finished).push(counter);
    }

    /// Registers one instance's queue: `used` of `capacity`.
    pub fn register_queue(&self, stage: Stage, used: Arc<AtomicU64>, capacity: u64) {
        lock(&self.queues[stage as usize].instances).push((used, capacity));
    }

    /// Records admitted and not yet ended.
    pub fn in_pipeline(&self) -> u64 {
        let sum = |v: &Mutex<Vec<Arc<AtomicU64>>>| -> u64 {
            lock(v).iter().map(|c| c.load(Ordering::Relaxed)).sum()
        };
        sum(&self.admitted).saturating_sub(sum(&self.finished))
    }

    /// Queue utilization of `stage` in `0.0..=1.0` (0 for a stage without queue).
    pub fn queue_utilization(&self, stage: Stage) -> f64 {
        let instances = lock(&self.queues[stage as usize].instances);
        let (used, capacity) = instances.iter().fold((0u64, 0u64), |(u, c), (used, cap)| {
            (u + used.load(Ordering::Relaxed), c + cap)
        });
        if capacity == 0 {
            0.0
        } else {
            (used as f64 / capacity as f64).min(1.0)
        }
    }

    /// Sets the back-pressured share of `stage`'s tasks (from the runtime's metrics).
    pub fn set_task_pressure(&self, stage: Stage, ratio: f64) {
        self.task_pressure[stage as usize]
            .store(ratio.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
    }

    /// The last back-pressured share set for `stage`.
    pub fn task_pressure(&self, stage: Stage) -> f64 {
        f64::from_bits(self.task_pressure[stage as usize].load(Ordering::Relaxed))
    }

    /// Records the end-to-end latency of an acknowledged record.
    pub fn record_latency(
        &self,
        latency: std::time::Duration,
        slow_threshold: std::time::Duration,
    ) {
        self.latency.record(latency);
        if latency > slow_threshold {
            self.slow.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// End-to-end latencies of acknowledged records.
    pub fn latency(&self) -> &LatencyHistogram {
        &self.latency
    }

    /// Records slower than the gateway's slow-processing threshold.
    pub fn slow_records(&self) -> u64 {
        self.slow.load(Ordering::Relaxed)
    }

    /// The pressure the gateway reacts to: the fullest stage downstream of it, by
    /// queue fill or by measured back pressure.
    pub fn downstream_pressure(&self) -> f64 {
        [
            Stage::KeyGen,
            Stage::Ingress,
            Stage::Egress,
            Stage::FinalSink,
        ]
        .into_iter()
        .map(|s| self.queue_utilization(s).max(self.task_pressure(s)))
        .fold(0.0, f64::max)
    }
}
