use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::checkpoint::{RestoredState, StateError};
use crate::failure::TaskCancelled;
use crate::functions::Collector;
use crate::operator::{Emitter, Operator, RuntimeContext, StateScope};
use crate::operators::state_codec::StateCodec;
use crate::services::RuntimeServices;
use crate::watermark::Watermark;

use super::config::{GatewayConfig, PressureThresholds};
use super::envelope::Envelope;
use super::ledger::subtask_share;
use super::state::{PipelineState, Stage};

/// Longest single wait before the gateway re-reads pressure and the concurrency count.
const RECHECK: Duration = Duration::from_millis(1);
/// How stale the downstream pressure the gateway acts on may be.
const SIGNAL_REFRESH: Duration = Duration::from_millis(1);

/// Stage 1: admits records at most at the configured rate (a token bucket shared out
/// among parallel instances), with at most `max_concurrent` records inside the
/// pipeline, slowing down further when downstream stages report pressure and speeding
/// up again when it falls. It never rejects: records wait in a bounded queue, and
/// when that is full the gateway stops reading its input.
///
/// Built by `apply_pipeline`, it stores the records waiting in its queue in each
/// checkpoint and queues them again on restore, instead of admitting them all before
/// the barrier.
pub struct GatewayOperator<T> {
    config: GatewayConfig,
    thresholds: PressureThresholds,
    state: Arc<PipelineState>,
    services: RuntimeServices,
    queue: VecDeque<T>,
    queue_used: Arc<AtomicU64>,
    /// This instance's share of the rate, per second.
    rate: f64,
    parallelism: usize,
    burst: f64,
    tokens: f64,
    last_refill: Duration,
    admitted: Arc<AtomicU64>,
    throttled: Arc<AtomicU64>,
    /// Where a stop without drain reports what the queue holds.
    metrics: Arc<crate::metrics::OperatorMetrics>,
    signals: Signals,
    /// How the queue is stored in a snapshot; `None`: admitted before the barrier.
    codec: Option<StateCodec<VecDeque<T>>>,
    subtask_index: usize,
    /// What the envelopes this instance admits carry as their origin.
    origin: u32,
    /// This instance's share of `max_concurrent`.
    limit: u64,
}

/// The shared signals as last read. Reading them takes several locks, so the gateway
/// does it at most once per [`SIGNAL_REFRESH`] of its clock rather than per record;
/// the concurrency limit stays exact because each instance counts only the records
/// it admitted itself against its own share of the limit (the shares of all
/// instances add up to it), and `in_pipeline + admitted_since` bounds that count from
/// above (records only leave the pipeline meanwhile, and reports of those that left
/// in another process only lag); a bound at the limit forces a fresh read.
#[derive(Default)]
struct Signals {
    read_at: Option<Duration>,
    pressure: f64,
    /// This instance's share of the rate at which records leave the pipeline.
    finish_rate: f64,
    in_pipeline: u64,
    admitted_since: u64,
}

impl<T> GatewayOperator<T> {
    /// An instance registered with `state`.
    pub fn new(
        config: GatewayConfig,
        thresholds: PressureThresholds,
        state: Arc<PipelineState>,
        ctx: &RuntimeContext,
    ) -> Self {
        let rate = config.max_requests_per_second / ctx.parallelism as f64;
        let burst = (rate / 10.0).max(1.0);
        // Also the `queued` metric: what a cancellation abandons here.
        let queue_used = ctx.metrics.custom("queued");
        state.register_queue(Stage::Gateway, queue_used.clone(), config.queue_size as u64);
        let admitted = ctx.metrics.custom("admitted");
        state.register_gateway(ctx.subtask_index, ctx.parallelism, admitted.clone());
        let limit = subtask_share(
            config.max_concurrent as u64,
            ctx.subtask_index,
            ctx.parallelism,
        );
        Self {
            thresholds,
            queue: VecDeque::with_capacity(config.queue_size),
            config,
            state,
            last_refill: ctx.services.clock.now(),
            services: ctx.services.clone(),
            queue_used,
            rate,
            parallelism: ctx.parallelism,
            burst,
            tokens: burst,
            admitted,
            throttled: ctx.metrics.custom("throttled_waits"),
            metrics: ctx.metrics.clone(),
            signals: Signals::default(),
            codec: None,
            subtask_index: ctx.subtask_index,
            origin: u32::try_from(ctx.subtask_index).unwrap_or(u32::MAX - 1),
            limit,
        }
    }

    /// Stores the queue in each snapshot instead of admitting it before the
    /// barrier, and queues a restored one again.
    pub fn storing_queue_in_snapshots(mut self) -> Self
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        self.codec = Some(StateCodec::new());
        self
    }

    /// Share of the configured rate allowed at downstream pressure `p`.
    fn rate_factor(&self, p: f64) -> f64 {
        let t = &self.thresholds;
        if p >= t.critical {
            0.0
        } else if p >= t.high {
            0.25
        } else if p >= t.moderate {
            0.5
        } else {
            1.0
        }
    }

    /// Takes a token if the rate, the concurrency limit and the pressure allow one
    /// more record now; otherwise says how long to wait before asking again.
    fn try_take_token(&mut self) -> Result<(), Duration> {
        let now = self.services.clock.now();
        let s = &mut self.signals;
        let stale = s
            .read_at
            .is_none_or(|at| now.saturating_sub(at) >= SIGNAL_REFRESH);
        if stale || s.in_pipeline + s.admitted_since >= self.limit {
            let window = self.state.signals();
            *s = Signals {
                read_at: Some(now),
                pressure: self.state.downstream_pressure_of(&window),
                // The finish rate is that of this process's gateways' records.
                finish_rate: window.finish_rate / self.state.local_gateways().max(1) as f64,
                in_pipeline: self.state.in_pipeline_of(self.subtask_index),
                admitted_since: 0,
            };
        }
        let limit = self.limit;
        let factor = self.rate_factor(self.signals.pressure);
        let rate = admission_rate(self.rate, factor, self.signals.finish_rate);
        let elapsed = now.saturating_sub(self.last_refill).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(self.burst);
        self.last_refill = now;
        if rate <= 0.0 || self.signals.in_pipeline + self.signals.admitted_since >= limit {
            return Err(RECHECK);
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / rate).min(RECHECK))
        }
    }

    fn admit<C: Collector<Envelope<T>> + ?Sized>(&mut self, out: &mut C) {
        if let Some(payload) = self.queue.pop_front() {
            self.queue_used
                .store(self.queue.len() as u64, Ordering::Relaxed);
            self.admitted.fetch_add(1, Ordering::Relaxed);
            self.signals.admitted_since += 1;
            out.collect(Envelope {
                key: String::new(),
                partition: 0,
                admitted_ns: u64::try_from(self.services.clock.now().as_nanos())
                    .unwrap_or(u64::MAX),
                origin: self.origin,
                payload,
            });
        }
    }

    /// Admits what may be admitted now, without waiting.
    fn admit_ready<C: Collector<Envelope<T>> + ?Sized>(&mut self, out: &mut C) {
        while !self.queue.is_empty() && self.try_take_token().is_ok() {
            self.admit(out);
        }
    }

    /// Admits the oldest record, waiting (on the job's clock) as long as needed.
    fn admit_waiting<C: Collector<Envelope<T>> + ?Sized>(&mut self, out: &mut C) {
        while let Err(wait) = self.try_take_token() {
            // Records admitted earlier may be what we wait on: send them on (again at
            // every step, since a buffer without credit ships only when credit comes).
            out.flush_before_wait();
            if self.services.cancelled.is_cancelled() {
                std::panic::resume_unwind(Box::new(TaskCancelled));
            }
            self.throttled.fetch_add(1, Ordering::Relaxed);
            self.services
                .block_on_in_task(self.services.clock.sleep(wait));
        }
        self.admit(out);
    }
}

/// The rate to admit at: `configured` times the pressure's `factor`, but under
/// pressure never below the rate at which records now leave the pipeline (the backlog
/// stops growing, and a stage that keeps up is never starved; a stalled pipeline,
/// finishing nothing, gets nothing), and never above `configured`.
fn admission_rate(configured: f64, factor: f64, finish_rate: f64) -> f64 {
    if factor < 1.0 {
        (configured * factor).max(finish_rate).min(configured)
    } else {
        configured
    }
}

impl<T: Send + 'static> Operator<T, Envelope<T>> for GatewayOperator<T> {
    fn process<C: Collector<Envelope<T>> + ?Sized>(&mut self, record: T, out: &mut C) {
        self.queue.push_back(record);
        self.queue_used
            .store(self.queue.len() as u64, Ordering::Relaxed);
        while self.queue.len() >= self.config.queue_size {
            self.admit_waiting(out);
        }
        self.admit_ready(out);
    }

    fn poll_pending(&mut self, out: &mut Emitter<'_, Envelope<T>>) -> bool {
        self.admit_ready(out);
        !self.queue.is_empty()
    }

    fn end_input<C: Collector<Envelope<T>> + ?Sized>(&mut self, out: &mut C) {
        while !self.queue.is_empty() {
            self.admit_waiting(out);
        }
    }

    /// The queue stays in the savepoint: held.
    fn stop_without_drain(&mut self) {
        super::egress::report_held(&self.metrics, self.queue.len() as u64);
    }

    /// Without a codec, admits the queue before the barrier; with one, nothing: the
    /// queue goes into the snapshot.
    fn prepare_snapshot_pre_barrier<C: Collector<Envelope<T>> + ?Sized>(
        &mut self,
        _: u64,
        out: &mut C,
    ) {
        if self.codec.is_none() {
            self.end_input(out);
        }
    }

    fn snapshot_state(&mut self, _: StateScope, _: u64) -> Result<Option<Vec<u8>>, StateError> {
        match &self.codec {
            Some(codec) if !self.queue.is_empty() => codec.encode(&self.queue).map(Some),
            _ => Ok(None),
        }
    }

    /// Queues the records saved by subtasks `j` with `j % parallelism == own index`,
    /// in order, ahead of any input.
    fn restore_state(&mut self, _: StateScope, restored: &RestoredState) -> Result<(), StateError> {
        let Some(codec) = &self.codec else {
            return Ok(());
        };
        for (j, bytes) in restored.by_subtask.iter().enumerate() {
            if j % self.parallelism != self.subtask_index {
                continue;
            }
            if let Some(bytes) = bytes {
                self.queue.extend(codec.decode(bytes)?);
            }
        }
        self.queue_used
            .store(self.queue.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// The queued records precede the watermark: they are admitted first (waiting
    /// for the rate and concurrency limits as usual).
    fn process_watermark<C: Collector<Envelope<T>> + ?Sized>(
        &mut self,
        watermark: Watermark,
        out: &mut C,
    ) {
        while !self.queue.is_empty() {
            self.admit_waiting(out);
        }
        out.emit_watermark(watermark);
    }
}

#[cfg(test)]
mod tests {
    use super::admission_rate;

    #[test]
    fn the_rate_cut_stops_at_the_rate_records_leave() {
        // No pressure: the configured rate.
        assert_eq!(admission_rate(1_000.0, 1.0, 50.0), 1_000.0);
        // Halved, unless records leave faster than that.
        assert_eq!(admission_rate(1_000.0, 0.5, 200.0), 500.0);
        assert_eq!(admission_rate(1_000.0, 0.5, 900.0), 900.0);
        // Critical: only as fast as records leave; nothing when nothing leaves.
        assert_eq!(admission_rate(1_000.0, 0.0, 300.0), 300.0);
        assert_eq!(admission_rate(1_000.0, 0.0, 0.0), 0.0);
        // Never above the configured rate.
        assert_eq!(admission_rate(1_000.0, 0.25, 5_000.0), 1_000.0);
    }
}
