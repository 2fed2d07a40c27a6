use super::lock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::latency::LatencyHistogram;
use super::ledger::Ledger;
use super::signals::{StageMeters, StageSignals, WindowSignals};
use crate::clock::Clock;

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

/// How full the instances of one gauge are together, in `0.0..=1.0`.
fn fill(gauge: &QueueGauge) -> f64 {
    let instances = lock(&gauge.instances);
    let (used, capacity) = instances.iter().fold((0u64, 0u64), |(u, c), (used, cap)| {
        (u + used.load(Ordering::Relaxed), c + cap)
    });
    if capacity == 0 {
        0.0
    } else {
        (used as f64 / capacity as f64).min(1.0)
    }
}

/// What the stages of one pipeline share while it runs: how many records are inside
/// (for the gateway's concurrency limit), how full each stage's bounded queue is
/// (for pressure), pressure measured by the runtime, and end-to-end latencies.
///
/// Shared through memory by the tasks of one process. When the job is spread over
/// several processes, each has its own; the runtime carries between them what the
/// gateways need of the others: the records of each gateway subtask that ended there
/// ([`finished_here`](Self::finished_here), [`apply_remote`](Self::apply_remote))
/// and their stages' pressure.
#[derive(Default)]
pub struct PipelineState {
    ledger: Ledger,
    /// The downstream pressure each other process last reported, by process.
    remote_pressure: Mutex<Vec<f64>>,
    queues: [QueueGauge; 5],
    /// Calls or acknowledgments in flight of the async stages, of their capacity:
    /// shown, but not pressure (running at the configured concurrency is normal).
    occupancy: [QueueGauge; 5],
    signals: StageSignals,
    /// Records acknowledged at the sink (for the share of slow ones).
    acked: AtomicU64,
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

    /// Registers gateway subtask `subtask` of `parallelism`, running in this
    /// process, and its count of admitted records.
    pub fn register_gateway(&self, subtask: usize, parallelism: usize, admitted: Arc<AtomicU64>) {
        self.ledger.register_gateway(subtask, parallelism, admitted);
    }

    /// One record admitted by gateway subtask `origin` (the envelope's
    /// [`origin`](super::Envelope::origin)) ended here: acknowledged, dead-lettered or
    /// counted as an error.
    pub fn finish(&self, origin: u32) {
        self.ledger.finish(origin);
    }

    /// `n` records re-issued from a snapshot in this process (with origin
    /// [`RESTORED_ORIGIN`](super::RESTORED_ORIGIN)) are inside the pipeline again.
    pub fn restored(&self, n: u64) {
        self.ledger.restored(n);
    }

    /// Records that ended in this process, by the gateway subtask that admitted
    /// them (running totals): what this process reports to the others.
    pub fn finished_here(&self) -> Vec<u64> {
        self.ledger.finished_here()
    }

    /// Process `sender` reported `finished` (its [`finished_here`](Self::finished_here))
    /// and the `pressure` of its stages ([`local_downstream_pressure`](Self::local_downstream_pressure)).
    pub fn apply_remote(&self, sender: usize, finished: Vec<u64>, pressure: f64) {
        self.ledger.apply_remote(sender, finished);
        let mut remote = lock(&self.remote_pressure);
        if remote.len() <= sender {
            remote.resize(sender + 1, 0.0);
        }
        remote[sender] = pressure.clamp(0.0, 1.0);
    }

    /// `(entered, ended)`: records that entered the pipeline through this process's
    /// gateways in the current attempt of the job or were re-issued here from a
    /// snapshot, and how many of them are known to have ended (wherever they ended).
    /// Equal once the job finished and every process reported: nothing is inside.
    pub fn balance(&self) -> (u64, u64) {
        self.ledger.balance()
    }

    /// What gateway subtask `subtask` of this process counts against its share of
    /// the limit: its records not known to have ended (wherever they end), and its
    /// part of the records re-issued from a snapshot here.
    pub fn in_pipeline_of(&self, subtask: usize) -> u64 {
        self.ledger.in_pipeline_of(subtask)
    }

    /// This process's share of a limit of `limit` records inside the whole pipeline
    /// (all of it in one process): the sum of its gateway subtasks' shares, each of
    /// which keeps [`in_pipeline_of`](Self::in_pipeline_of) itself below its own.
    pub fn admission_limit(&self, limit: u64) -> u64 {
        self.ledger.share_of(limit)
    }

    /// Gateway subtasks running in this process.
    pub fn local_gateways(&self) -> usize {
        self.ledger.local_gateways()
    }

    /// Starts the counts of a new attempt of the job: forgets what a failed attempt
    /// had inside (its records are re-issued from the snapshot, or read again from
    /// the sources, and counted again then) and the gauges of its operators.
    pub fn new_attempt(&self) {
        self.ledger.reset();
        for gauge in self.queues.iter().chain(self.occupancy.iter()) {
            lock(&gauge.instances).clear();
        }
        self.signals.clear();
        lock(&self.remote_pressure).clear();
    }

    /// Registers one instance's queue: `used` of `capacity`.
    pub fn register_queue(&self, stage: Stage, used: Arc<AtomicU64>, capacity: u64) {
        lock(&self.queues[stage as usize].instances).push((used, capacity));
    }

    /// Registers one async stage instance's calls (or acks) in flight, of `capacity`.
    pub fn register_occupancy(&self, stage: Stage, used: Arc<AtomicU64>, capacity: u64) {
        lock(&self.occupancy[stage as usize].instances).push((used, capacity));
    }

    /// Registers the meters one instance of `stage` is measured by.
    pub fn register_meters(&self, stage: Stage, meters: StageMeters, clock: Arc<dyn Clock>) {
        self.signals.register(stage as usize, meters, clock);
    }

    /// Calls or acks in flight of `stage`, of its capacity, in `0.0..=1.0`.
    pub fn occupancy(&self, stage: Stage) -> f64 {
        fill(&self.occupancy[stage as usize])
    }

    /// Each stage's share of time waiting for a free slot and of records failing, and
    /// the share of acknowledged records slower than the threshold, over the last
    /// window of the job's clock.
    pub fn signals(&self) -> WindowSignals {
        let finished = self.ledger.finished_of_own();
        self.signals.window(
            self.slow.load(Ordering::Relaxed),
            self.acked.load(Ordering::Relaxed),
            finished,
        )
    }

    /// Records admitted by this process's gateways (or re-issued here) and not
    /// known to have ended: in one process, exactly those inside; across processes,
    /// an upper bound (others report what ended there every few milliseconds).
    pub fn in_pipeline(&self) -> u64 {
        self.ledger.in_pipeline()
    }

    /// Queue utilization of `stage` in `0.0..=1.0` (0 for a stage without queue).
    pub fn queue_utilization(&self, stage: Stage) -> f64 {
        fill(&self.queues[stage as usize])
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
        self.acked.fetch_add(1, Ordering::Relaxed);
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

    /// The pressure of `stage` now: the largest of its queue's fill, its share of
    /// time waiting for a free slot, its tasks' back-pressured share, its share of
    /// failing records, and (at the sink) the share of records slower than the
    /// threshold. Calls in flight are not pressure: an async stage running at its
    /// configured concurrency is normal.
    pub fn stage_pressure(&self, stage: Stage, signals: &WindowSignals) -> f64 {
        let s = signals.stages[stage as usize];
        let slow = if stage == Stage::FinalSink {
            signals.slow_share
        } else {
            0.0
        };
        self.queue_utilization(stage)
            .max(s.waiting)
            .max(s.failing)
            .max(slow)
            .max(self.task_pressure(stage))
    }

    /// The pressure the gateway reacts to: the highest of the stages downstream of it,
    /// here and as other processes last reported theirs.
    pub fn downstream_pressure(&self) -> f64 {
        self.downstream_pressure_of(&self.signals())
    }

    /// [`downstream_pressure`](Self::downstream_pressure) from signals already read.
    pub fn downstream_pressure_of(&self, signals: &WindowSignals) -> f64 {
        let remote = lock(&self.remote_pressure)
            .iter()
            .copied()
            .fold(0.0, f64::max);
        self.local_pressure_of(signals).max(remote)
    }

    /// The highest pressure of the stages downstream of the gateway in this process
    /// alone: what it reports to the others (never an echo of theirs).
    pub fn local_downstream_pressure(&self) -> f64 {
        self.local_pressure_of(&self.signals())
    }

    fn local_pressure_of(&self, signals: &WindowSignals) -> f64 {
        [
            Stage::KeyGen,
            Stage::Ingress,
            Stage::Egress,
            Stage::FinalSink,
        ]
        .into_iter()
        .map(|s| self.stage_pressure(s, signals))
        .fold(0.0, f64::max)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;

    fn gauge(v: u64) -> Arc<AtomicU64> {
        Arc::new(AtomicU64::new(v))
    }

    #[test]
    fn a_stage_at_its_concurrency_is_not_pressure_but_waiting_for_a_slot_is() {
        let clock = ManualClock::new();
        let state = PipelineState::new();
        // 100 of 100 calls in flight, no wait.
        state.register_occupancy(Stage::Egress, gauge(100), 100);
        let waiting_since = gauge(0);
        let meters = StageMeters {
            received: gauge(0),
            failed: vec![gauge(0)],
            wait_total_ns: gauge(0),
            waiting_since_ns: waiting_since.clone(),
        };
        state.register_meters(Stage::Egress, meters, Arc::new(clock.clone()));
        assert_eq!(state.downstream_pressure(), 0.0);
        clock.advance(Duration::from_millis(50));
        assert_eq!(state.occupancy(Stage::Egress), 1.0);
        assert_eq!(state.downstream_pressure(), 0.0, "full but not waiting");
        // From now on it waits for a free slot.
        let now = u64::try_from(clock.now().as_nanos()).unwrap();
        waiting_since.store(now + 1, Ordering::Relaxed);
        clock.advance(Duration::from_millis(50));
        assert_eq!(state.downstream_pressure(), 1.0, "waiting the whole window");
    }

    #[test]
    fn failing_records_are_pressure() {
        let clock = ManualClock::new();
        let state = PipelineState::new();
        let (received, failed) = (gauge(0), gauge(0));
        let meters = StageMeters {
            received: received.clone(),
            failed: vec![failed.clone()],
            wait_total_ns: gauge(0),
            waiting_since_ns: gauge(0),
        };
        state.register_meters(Stage::FinalSink, meters, Arc::new(clock.clone()));
        state.downstream_pressure();
        received.store(100, Ordering::Relaxed);
        failed.store(70, Ordering::Relaxed);
        clock.advance(Duration::from_millis(50));
        assert!((state.downstream_pressure() - 0.7).abs() < 1e-9);
    }
}
