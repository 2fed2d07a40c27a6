use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{Either, select};

use crate::async_io::{AsyncFailure, AsyncFunction, AsyncOptions, Jitter};
use crate::failure::{fail_operator, panic_message};
use crate::functions::Collector;
use crate::operator::{Emitter, Operator, RuntimeContext};
use crate::services::RuntimeServices;
use crate::watermark::Watermark;

use super::give_up::GiveUp;
use super::in_flight::InFlight;
use super::result_queue::{Released, ResultQueue};

/// The end of one call, all attempts included.
enum Completion<I, O> {
    Done(O),
    Failed {
        input: I,
        failure: AsyncFailure,
        attempts: u32,
    },
    Panicked(String),
}

/// Live counters of the operator, also reported as metrics.
struct AsyncMetrics {
    in_flight: Arc<AtomicU64>,
    /// Records received and not yet out (as a result, dead letter or counted error):
    /// `occupied` plus the records of the current input batch not yet started. What
    /// a cancellation abandons here.
    queued: Arc<AtomicU64>,
    retries: Arc<AtomicU64>,
    timeouts: Arc<AtomicU64>,
    /// Time spent waiting for a free slot, in ns of the job's clock.
    slot_wait_ns: Arc<AtomicU64>,
    /// When the wait going on now began (ns of the job's clock, plus one), or 0.
    waiting_since_ns: Arc<AtomicU64>,
}

/// Metric: total time the operator waited for a free slot, in ns of the job's clock.
pub const SLOT_WAIT_NS: &str = "slot_wait_ns";
/// Metric: when the slot wait going on now began (ns of the job's clock, plus one),
/// or 0 while the operator is not waiting.
pub const WAITING_SINCE_NS: &str = "waiting_since_ns";

/// Calls an [`AsyncFunction`] per record without blocking the task: up to `capacity`
/// calls are in flight at once, polled on the task's own thread inside the runtime's
/// async context (a completing socket wakes the task directly; while waiting, the
/// task fires its clock's due timers itself); when full, `process` waits for one to
/// complete, which is how the operator applies back pressure. Each attempt is bounded
/// by the timeout; failed attempts are retried per the strategy; a final failure
/// fails the job or becomes a dead letter. Results leave through a result queue:
/// in input order, or unordered but never across a watermark.
pub struct AsyncWaitOperator<I, O, F> {
    function: Arc<F>,
    options: Arc<AsyncOptions>,
    services: RuntimeServices,
    name: String,
    next_seq: u64,
    /// Calls running now (the `in_flight` metric).
    in_flight: usize,
    /// Calls started whose result has not left yet: what `capacity` bounds, so
    /// results held back for order or for a watermark count too.
    occupied: usize,
    /// Records of the input batch being processed that no call was started for yet.
    unstarted: usize,
    /// Results waiting for their turn, and the watermarks between them.
    queue: ResultQueue<Completion<I, O>>,
    /// What the queue released, emitted right after (reused: one per completion).
    released: Vec<Released<Completion<I, O>>>,
    /// The calls in flight, polled on the task's own thread: a completion wakes the
    /// task directly (at most one hand-off, from the reactor; none through a worker).
    calls: InFlight<(u64, Completion<I, O>)>,
    give_up: GiveUp<I>,
    jitter_seed: u64,
    metrics: AsyncMetrics,
}

impl<I, O, F> AsyncWaitOperator<I, O, F>
where
    I: Clone + Send + 'static,
    O: Send + 'static,
    F: AsyncFunction<I, O>,
{
    /// An operator instance calling `function` with `options`.
    pub fn new(function: Arc<F>, options: Arc<AsyncOptions>, ctx: &RuntimeContext) -> Self {
        let m = &ctx.metrics;
        let mode = options.mode;
        Self {
            give_up: GiveUp::new(options.on_failure, ctx),
            function,
            jitter_seed: options.jitter_seed ^ (ctx.subtask_index as u64).wrapping_mul(0x9e37_79b9),
            options,
            services: ctx.services.clone(),
            name: ctx.operator_name.to_string(),
            next_seq: 0,
            in_flight: 0,
            occupied: 0,
            unstarted: 0,
            queue: ResultQueue::new(mode),
            released: Vec::new(),
            calls: InFlight::new(ctx.services.clone()),
            metrics: AsyncMetrics {
                in_flight: m.custom("in_flight"),
                queued: m.custom("queued"),
                retries: m.custom("retries"),
                timeouts: m.custom("timeouts"),
                slot_wait_ns: m.custom(SLOT_WAIT_NS),
                waiting_since_ns: m.custom(WAITING_SINCE_NS),
            },
        }
    }

    fn start_call(&mut self, input: I) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.in_flight += 1;
        self.occupied += 1;
        self.unstarted = self.unstarted.saturating_sub(1);
        self.metrics
            .in_flight
            .store(self.in_flight as u64, Ordering::Relaxed);
        self.publish_queued();
        self.queue.started(seq);
        let call = call_with_retries(
            self.function.clone(),
            self.options.clone(),
            self.services.clone(),
            input,
            Jitter::new(self.jitter_seed.wrapping_add(seq)),
            self.metrics.retries.clone(),
            self.metrics.timeouts.clone(),
        );
        self.calls.push(Box::pin(async move {
            let completion = match AssertUnwindSafe(call).catch_unwind().await {
                Ok(c) => c,
                Err(payload) => Completion::Panicked(panic_message(&*payload)),
            };
            (seq, completion)
        }));
    }

    /// Polls the calls in flight once, returning those that completed.
    fn poll_calls(&mut self) -> Vec<(u64, Completion<I, O>)> {
        let mut ready = Vec::new();
        self.calls.poll_ready(&mut ready);
        ready
    }

    /// Waits until at least one call completed, checking for cancellation meanwhile.
    fn wait_for_completions(&mut self) -> Vec<(u64, Completion<I, O>)> {
        let mut ready = Vec::new();
        self.calls.wait_ready(&mut ready);
        ready
    }

    fn accept<C: Collector<O> + ?Sized>(
        &mut self,
        seq: u64,
        completion: Completion<I, O>,
        out: &mut C,
    ) {
        self.in_flight -= 1;
        self.metrics
            .in_flight
            .store(self.in_flight as u64, Ordering::Relaxed);
        let mut released = std::mem::take(&mut self.released);
        self.queue
            .completed(seq, completion, &mut |r| released.push(r));
        self.emit_released(&mut released, out);
        self.released = released;
    }

    fn emit_released<C: Collector<O> + ?Sized>(
        &mut self,
        released: &mut Vec<Released<Completion<I, O>>>,
        out: &mut C,
    ) {
        for r in released.drain(..) {
            match r {
                Released::Result(completion) => {
                    self.occupied -= 1;
                    self.publish_queued();
                    self.emit(completion, out);
                }
                Released::Watermark(w) => out.emit_watermark(w),
            }
        }
    }

    fn emit<C: Collector<O> + ?Sized>(&mut self, completion: Completion<I, O>, out: &mut C) {
        match completion {
            Completion::Done(o) => out.collect(o),
            Completion::Panicked(message) => {
                fail_operator(&self.name, format!("async function panicked: {message}"))
            }
            Completion::Failed {
                input,
                failure,
                attempts,
            } => self
                .give_up
                .record(input, attempts, "async call failed", &failure),
        }
    }

    fn publish_queued(&self) {
        self.metrics
            .queued
            .store((self.occupied + self.unstarted) as u64, Ordering::Relaxed);
    }

    /// Emits completed calls into `out`; true while calls are in flight.
    pub fn poll_pending_into<C: Collector<O> + ?Sized>(&mut self, out: &mut C) -> bool {
        self.drain_ready(out);
        self.in_flight > 0
    }

    /// Waits until a slot is free (back pressure), timing the wait on the job's clock
    /// so that waiting, not a full set of calls, reads as pressure.
    fn wait_for_a_slot<C: Collector<O> + ?Sized>(&mut self, out: &mut C) {
        out.flush_before_wait();
        let started = self.services.clock.now();
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.metrics
            .waiting_since_ns
            .store(nanos(started).saturating_add(1), Ordering::Relaxed);
        while self.occupied >= self.options.capacity {
            self.complete_some(out);
        }
        let waited = self.services.clock.now().saturating_sub(started);
        self.metrics
            .slot_wait_ns
            .fetch_add(nanos(waited), Ordering::Relaxed);
        self.metrics.waiting_since_ns.store(0, Ordering::Relaxed);
    }

    /// Waits until a call completes and emits what that releases.
    fn complete_some<C: Collector<O> + ?Sized>(&mut self, out: &mut C) {
        for (seq, c) in self.wait_for_completions() {
            self.accept(seq, c, out);
        }
    }

    fn drain_ready<C: Collector<O> + ?Sized>(&mut self, out: &mut C) {
        for (seq, c) in self.poll_calls() {
            self.accept(seq, c, out);
        }
    }
}

/// One call: attempts with a timeout each, retried while the strategy and the
/// predicate allow.
async fn call_with_retries<I, O, F: AsyncFunction<I, O>>(
    function: Arc<F>,
    options: Arc<AsyncOptions>,
    services: RuntimeServices,
    input: I,
    mut jitter: Jitter,
    retries: Arc<AtomicU64>,
    timeouts: Arc<AtomicU64>,
) -> Completion<I, O> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = match select(
            function.invoke(&input),
            services.clock.sleep(options.timeout),
        )
        .await
        {
            Either::Left((result, _)) => result,
            Either::Right(_) => {
                timeouts.fetch_add(1, Ordering::Relaxed);
                Err(AsyncFailure::Timeout(options.timeout))
            }
        };
        let failure = match result {
            Ok(output) => return Completion::Done(output),
            Err(failure) => failure,
        };
        let delay = if (options.retry_if)(&failure) {
            options.retry.delay_after(attempt, &mut jitter)
        } else {
            None
        };
        match delay {
            Some(delay) => {
                retries.fetch_add(1, Ordering::Relaxed);
                services.clock.sleep(delay).await;
            }
            None => {
                return Completion::Failed {
                    input,
                    failure,
                    attempts: attempt,
                };
            }
        }
    }
}

impl<I, O, F> Operator<I, O> for AsyncWaitOperator<I, O, F>
where
    I: Clone + Send + 'static,
    O: Send + 'static,
    F: AsyncFunction<I, O>,
{
    fn process<C: Collector<O> + ?Sized>(&mut self, record: I, out: &mut C) {
        if self.occupied >= self.options.capacity {
            self.wait_for_a_slot(out);
        }
        self.start_call(record);
        self.drain_ready(out);
    }

    fn process_batch(&mut self, batch: &mut Vec<I>, out: &mut Emitter<'_, O>) {
        // Until its call starts, a record of the batch waits for a free slot here.
        self.unstarted = batch.len();
        self.publish_queued();
        for record in batch.drain(..) {
            self.process(record, out);
        }
        self.unstarted = 0;
    }

    fn process_watermark<C: Collector<O> + ?Sized>(&mut self, watermark: Watermark, out: &mut C) {
        let mut released = std::mem::take(&mut self.released);
        self.queue
            .watermark(watermark, self.next_seq, &mut |r| released.push(r));
        self.emit_released(&mut released, out);
        self.released = released;
    }

    fn poll_pending(&mut self, out: &mut Emitter<'_, O>) -> bool {
        self.drain_ready(out);
        self.in_flight > 0
    }

    fn end_input<C: Collector<O> + ?Sized>(&mut self, out: &mut C) {
        out.flush_before_wait();
        while self.in_flight > 0 {
            self.complete_some(out);
        }
    }

    /// Completes every call in flight, so that no input is lost with a restore (the
    /// calls are not part of the snapshot yet).
    fn prepare_snapshot_pre_barrier<C: Collector<O> + ?Sized>(&mut self, _: u64, out: &mut C) {
        self.end_input(out);
    }
}
