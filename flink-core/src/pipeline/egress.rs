use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::async_io::{AsyncFailure, AsyncFunction, AsyncOptions, FailurePolicy, RetryStrategy};
use crate::checkpoint::{RestoredState, StateError};
use crate::destination::AckDestination;
use crate::functions::Collector;
use crate::metrics::OperatorMetrics;
use crate::operator::{Emitter, Operator, RuntimeContext, StateScope};
use crate::operators::give_up::GiveUpObserver;
use crate::operators::{AsyncWaitOperator, SLOT_WAIT_NS, WAITING_SINCE_NS};
use crate::services::RuntimeServices;
use crate::watermark::Watermark;

use super::config::{AsyncEgressConfig, FinalSinkConfig, GatewayConfig};
use super::controller::HELD;
use super::envelope::Envelope;
use super::ledger::RESTORED_ORIGIN;
use super::signals::StageMeters;
use super::state::{PipelineState, Stage};

/// Calls the user's function on the payload, keeping the envelope.
pub struct OnPayload<T, O>(pub Arc<dyn AsyncFunction<T, O>>);

impl<T: Send + 'static, O: Send + 'static> AsyncFunction<Envelope<T>, Envelope<O>>
    for OnPayload<T, O>
{
    fn invoke(&self, input: &Envelope<T>) -> BoxFuture<'static, Result<Envelope<O>, AsyncFailure>> {
        let call = self.0.invoke(&input.payload);
        let envelope = input.clone_without_payload();
        Box::pin(async move { call.await.map(|o| envelope.with_payload(o)) })
    }
}

impl<T> Envelope<T> {
    fn clone_without_payload(&self) -> Envelope<()> {
        Envelope {
            key: self.key.clone(),
            partition: self.partition,
            admitted_ns: self.admitted_ns,
            origin: self.origin,
            payload: (),
        }
    }
}

/// Sends the payload to the destination; the acknowledgment completes the call.
pub struct SendTo<O>(pub Arc<dyn AckDestination<O>>);

impl<O: Clone + Send + 'static> AsyncFunction<Envelope<O>, Envelope<O>> for SendTo<O> {
    fn invoke(&self, input: &Envelope<O>) -> BoxFuture<'static, Result<Envelope<O>, AsyncFailure>> {
        let ack = self.0.send(input.payload.clone());
        let envelope = input.clone();
        Box::pin(async move { ack.await.map(|()| envelope).map_err(AsyncFailure::from) })
    }
}

/// The async options of stage 4.
pub fn egress_options(c: &AsyncEgressConfig) -> AsyncOptions {
    AsyncOptions::new()
        .ordered(false)
        .timeout(c.operation_timeout)
        .capacity(c.max_concurrent_operations)
        .retry(RetryStrategy::ExponentialBackoff {
            initial: c.base_retry_delay,
            multiplier: 2.0,
            max_delay: c.max_retry_delay,
            max_attempts: c.max_retries + 1,
            jitter: 0.2,
        })
        .with_policy(if c.dead_letters_enabled {
            FailurePolicy::DeadLetter
        } else {
            FailurePolicy::FailJob
        })
}

/// The async options of stage 5.
pub fn final_sink_options(c: &FinalSinkConfig) -> AsyncOptions {
    let options = AsyncOptions::new()
        .ordered(false)
        .timeout(c.acknowledgment_timeout)
        .capacity(c.max_pending_acknowledgments);
    if c.require_acknowledgment {
        options
            .retry(RetryStrategy::FixedDelay {
                delay: (c.acknowledgment_timeout / 10).min(Duration::from_millis(100)),
                max_attempts: c.acknowledgment_retries + 1,
            })
            .with_policy(FailurePolicy::DeadLetter)
    } else {
        options.with_policy(FailurePolicy::Count)
    }
}

impl AsyncOptions {
    fn with_policy(mut self, policy: FailurePolicy) -> Self {
        self.on_failure = policy;
        self
    }
}

/// Stage 4: the external call, through the async I/O operator (bounded concurrency,
/// timeout, exponential backoff with jitter, dead letters).
pub struct EgressOperator<T, O> {
    inner: AsyncWaitOperator<Envelope<T>, Envelope<O>, OnPayload<T, O>>,
    state: Arc<PipelineState>,
    /// Where a stop without drain reports what this stage holds.
    metrics: Arc<OperatorMetrics>,
}

impl<T: Clone + Send + 'static, O: Send + 'static> EgressOperator<T, O> {
    /// Stores the calls whose results have not left in each snapshot (issued again
    /// on restore) instead of completing them before the barrier.
    pub fn storing_queue_in_snapshots(mut self) -> Self
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        self.inner = self.inner.storing_queue_in_snapshots();
        self
    }

    /// An instance calling `call`.
    pub fn new(
        call: Arc<OnPayload<T, O>>,
        config: &AsyncEgressConfig,
        state: &Arc<PipelineState>,
        ctx: &RuntimeContext,
    ) -> Self {
        let inner = AsyncWaitOperator::new(call, Arc::new(egress_options(config)), ctx)
            .observing_give_ups(finishing(state));
        register_async_stage(Stage::Egress, config.max_concurrent_operations, state, ctx);
        Self {
            inner,
            state: state.clone(),
            metrics: ctx.metrics.clone(),
        }
    }
}

/// Reports the `held` records of a stage stopped without drain (see
/// [`StageCounts::held`](super::StageCounts::held)).
pub(crate) fn report_held(metrics: &OperatorMetrics, held: u64) {
    metrics
        .custom(HELD)
        .store(held, std::sync::atomic::Ordering::Relaxed);
}

/// Counts a record given up on out of the pipeline, for its origin.
fn finishing<T>(state: &Arc<PipelineState>) -> GiveUpObserver<Envelope<T>> {
    let state = state.clone();
    Box::new(move |e| state.finish(e.origin))
}

/// Restores `inner`'s queue; its records count as inside the pipeline again, once,
/// in this process (they end here: nothing after them changes process).
fn restore_counted<
    T: Clone + Send + 'static,
    O: Send + 'static,
    F: AsyncFunction<Envelope<T>, O>,
>(
    inner: &mut AsyncWaitOperator<Envelope<T>, O, F>,
    state: &PipelineState,
    scope: StateScope,
    restored: &RestoredState,
) -> Result<(), StateError> {
    inner.restore_state(scope, restored)?;
    state.restored(inner.change_restored(|e| e.origin = RESTORED_ORIGIN));
    Ok(())
}

/// Registers an async-based stage's in-flight calls (shown as occupancy) and the
/// meters its pressure is read from: time waiting for a free slot, and records
/// failing.
fn register_async_stage(
    stage: Stage,
    capacity: usize,
    state: &PipelineState,
    ctx: &RuntimeContext,
) {
    let m = &ctx.metrics;
    let failed = vec![m.custom("dead_letters"), m.custom("errors")];
    state.register_occupancy(stage, m.custom("in_flight"), capacity as u64);
    let meters = StageMeters {
        received: m.records_in.clone(),
        failed,
        wait_total_ns: m.custom(SLOT_WAIT_NS),
        waiting_since_ns: m.custom(WAITING_SINCE_NS),
    };
    state.register_meters(stage, meters, ctx.services.clock.clone());
}

impl<T: Clone + Send + 'static, O: Send + 'static> Operator<Envelope<T>, Envelope<O>>
    for EgressOperator<T, O>
{
    fn process<C: Collector<Envelope<O>> + ?Sized>(&mut self, record: Envelope<T>, out: &mut C) {
        self.inner.process(record, out);
    }

    fn poll_pending(&mut self, out: &mut Emitter<'_, Envelope<O>>) -> bool {
        self.inner.poll_pending(out)
    }

    fn end_input<C: Collector<Envelope<O>> + ?Sized>(&mut self, out: &mut C) {
        self.inner.end_input(out);
    }

    /// The calls whose results have not left stay in the savepoint: held.
    fn stop_without_drain(&mut self) {
        report_held(&self.metrics, self.inner.held_records());
    }

    /// Completes the calls in flight before the barrier, unless they go into the
    /// snapshot ([`storing_queue_in_snapshots`](EgressOperator::storing_queue_in_snapshots)).
    fn prepare_snapshot_pre_barrier<C: Collector<Envelope<O>> + ?Sized>(
        &mut self,
        checkpoint_id: u64,
        out: &mut C,
    ) {
        self.inner.prepare_snapshot_pre_barrier(checkpoint_id, out);
    }

    fn snapshot_state(
        &mut self,
        scope: StateScope,
        checkpoint_id: u64,
    ) -> Result<Option<Vec<u8>>, StateError> {
        self.inner.snapshot_state(scope, checkpoint_id)
    }

    fn restore_state(
        &mut self,
        scope: StateScope,
        restored: &RestoredState,
    ) -> Result<(), StateError> {
        restore_counted(&mut self.inner, &self.state, scope, restored)
    }

    fn process_watermark<C: Collector<Envelope<O>> + ?Sized>(
        &mut self,
        watermark: Watermark,
        out: &mut C,
    ) {
        self.inner.process_watermark(watermark, out);
    }
}

/// Stage 5: sends to an acknowledging destination with at most
/// `max_pending_acknowledgments` sends awaiting their ack; an ack that does not come
/// within the timeout is retried, then dead-lettered. Emits a receipt per
/// acknowledged record and records its end-to-end latency.
pub struct FinalSinkOperator<O> {
    inner: AsyncWaitOperator<Envelope<O>, Envelope<O>, SendTo<O>>,
    state: Arc<PipelineState>,
    /// Where a stop without drain reports what this stage holds.
    metrics: Arc<OperatorMetrics>,
    services: RuntimeServices,
    slow_threshold: Duration,
}

impl<O: Clone + Send + 'static> FinalSinkOperator<O> {
    /// Stores the sends awaiting their acknowledgement in each snapshot (sent again
    /// on restore: at least once, as before) instead of waiting for them before the
    /// barrier.
    pub fn storing_queue_in_snapshots(mut self) -> Self
    where
        O: serde::Serialize + serde::de::DeserializeOwned,
    {
        self.inner = self.inner.storing_queue_in_snapshots();
        self
    }

    /// An instance sending through `send`.
    pub fn new(
        send: Arc<SendTo<O>>,
        config: &FinalSinkConfig,
        gateway: &GatewayConfig,
        state: Arc<PipelineState>,
        ctx: &RuntimeContext,
    ) -> Self {
        let inner = AsyncWaitOperator::new(send, Arc::new(final_sink_options(config)), ctx)
            .observing_give_ups(finishing(&state));
        register_async_stage(
            Stage::FinalSink,
            config.max_pending_acknowledgments,
            &state,
            ctx,
        );
        Self {
            inner,
            state,
            metrics: ctx.metrics.clone(),
            services: ctx.services.clone(),
            slow_threshold: gateway.slow_processing_threshold,
        }
    }
}

/// Records the latency of each acknowledged record on its way out.
struct Acknowledged<'a, C: ?Sized> {
    out: &'a mut C,
    state: &'a PipelineState,
    now: Duration,
    slow_threshold: Duration,
}

impl<'a, C: ?Sized> Acknowledged<'a, C> {
    fn new(
        out: &'a mut C,
        state: &'a PipelineState,
        services: &RuntimeServices,
        slow_threshold: Duration,
    ) -> Self {
        Self {
            out,
            state,
            now: services.clock.now(),
            slow_threshold,
        }
    }
}

impl<O, C: Collector<Envelope<O>> + ?Sized> Collector<Envelope<O>> for Acknowledged<'_, C> {
    fn collect(&mut self, receipt: Envelope<O>) {
        let latency = self
            .now
            .saturating_sub(Duration::from_nanos(receipt.admitted_ns));
        self.state.record_latency(latency, self.slow_threshold);
        self.state.finish(receipt.origin);
        self.out.collect(receipt);
    }

    fn flush_before_wait(&mut self) {
        self.out.flush_before_wait();
    }

    fn emit_watermark(&mut self, watermark: Watermark) {
        self.out.emit_watermark(watermark);
    }
}

impl<O: Clone + Send + 'static> Operator<Envelope<O>, Envelope<O>> for FinalSinkOperator<O> {
    fn process<C: Collector<Envelope<O>> + ?Sized>(&mut self, record: Envelope<O>, out: &mut C) {
        let mut acked = Acknowledged::new(out, &self.state, &self.services, self.slow_threshold);
        self.inner.process(record, &mut acked);
    }

    fn poll_pending(&mut self, out: &mut Emitter<'_, Envelope<O>>) -> bool {
        let mut acked = Acknowledged::new(out, &self.state, &self.services, self.slow_threshold);
        self.inner.poll_pending_into(&mut acked)
    }

    fn end_input<C: Collector<Envelope<O>> + ?Sized>(&mut self, out: &mut C) {
        let mut acked = Acknowledged::new(out, &self.state, &self.services, self.slow_threshold);
        self.inner.end_input(&mut acked);
    }

    /// The sends not acknowledged stay in the savepoint: held.
    fn stop_without_drain(&mut self) {
        report_held(&self.metrics, self.inner.held_records());
    }

    /// Waits for every acknowledgement before the barrier, unless the sends go into
    /// the snapshot ([`storing_queue_in_snapshots`](FinalSinkOperator::storing_queue_in_snapshots)).
    fn prepare_snapshot_pre_barrier<C: Collector<Envelope<O>> + ?Sized>(
        &mut self,
        checkpoint_id: u64,
        out: &mut C,
    ) {
        let mut acked = Acknowledged::new(out, &self.state, &self.services, self.slow_threshold);
        self.inner
            .prepare_snapshot_pre_barrier(checkpoint_id, &mut acked);
    }

    fn snapshot_state(
        &mut self,
        scope: StateScope,
        checkpoint_id: u64,
    ) -> Result<Option<Vec<u8>>, StateError> {
        self.inner.snapshot_state(scope, checkpoint_id)
    }

    fn restore_state(
        &mut self,
        scope: StateScope,
        restored: &RestoredState,
    ) -> Result<(), StateError> {
        restore_counted(&mut self.inner, &self.state, scope, restored)
    }

    fn process_watermark<C: Collector<Envelope<O>> + ?Sized>(
        &mut self,
        watermark: Watermark,
        out: &mut C,
    ) {
        let mut acked = Acknowledged::new(out, &self.state, &self.services, self.slow_threshold);
        self.inner.process_watermark(watermark, &mut acked);
    }
}
