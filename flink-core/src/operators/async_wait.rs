use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{Either, select};

use crate::async_io::{AsyncFailure, AsyncFunction, AsyncOptions, Jitter};
use crate::checkpoint::{RestoredState, StateError};
use crate::failure::{fail_operator, panic_message};
use crate::functions::Collector;
use crate::operator::{Emitter, Operator, RuntimeContext, StateScope};
use crate::services::RuntimeServices;
use crate::watermark::{NO_TIMESTAMP, Watermark};

use super::async_queue_state::{PendingInputs, QueueCodec, QueuedElement};
use super::give_up::{GiveUp, GiveUpObserver};
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

impl AsyncMetrics {
    /// The metrics of a new instance. The gauges start at 0: the metrics outlive an
    /// attempt of the job, and one that failed while waiting or with calls in
    /// flight would otherwise leave them showing a wait (pressure) that no longer
    /// is.
    fn new(m: &crate::metrics::OperatorMetrics) -> Self {
        let metrics = Self {
            in_flight: m.custom("in_flight"),
            queued: m.custom("queued"),
            retries: m.custom("retries"),
            timeouts: m.custom("timeouts"),
            slot_wait_ns: m.custom(SLOT_WAIT_NS),
            waiting_since_ns: m.custom(WAITING_SINCE_NS),
        };
        for gauge in [
            &metrics.in_flight,
            &metrics.queued,
            &metrics.waiting_since_ns,
        ] {
            gauge.store(0, Ordering::Relaxed);
        }
        metrics
    }
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
///
/// With [`storing_queue_in_snapshots`](Self::storing_queue_in_snapshots) (what
/// `DataStream::async_function` uses), a checkpoint stores the input of every call
/// whose result has not left yet, and the watermarks held between them, instead of
/// waiting for the calls on the barrier; a restore issues those calls again first,
/// in their order (as Flink's `AsyncWaitOperator`). Without it, the barrier waits
/// until every call completed.
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
    /// Results waiting for their turn (by sequence number), and the watermarks
    /// between them.
    queue: ResultQueue<(u64, Completion<I, O>)>,
    /// What the queue released, emitted right after (reused: one per completion).
    released: Vec<Released<(u64, Completion<I, O>)>>,
    /// How the queue is stored in a snapshot; `None`: drained on the barrier.
    codec: Option<QueueCodec<I>>,
    /// With a codec: the input of every call whose result has not left, by
    /// sequence number.
    inputs: PendingInputs<I>,
    /// With a codec: the watermarks held in the queue, each with the sequence
    /// number of the first call after it.
    held_watermarks: VecDeque<(u64, Watermark)>,
    /// Restored elements not issued again yet (they go first, before any input).
    to_reissue: VecDeque<QueuedElement<I>>,
    /// On a stream with timestamps ([`keeping_timestamps`](Self::keeping_timestamps)):
    /// the event timestamp of every call whose result has not left, by sequence
    /// number; each result is emitted with its input's (Flink's
    /// `AsyncWaitOperator`). `None` on a stream without: nothing is kept.
    timestamps: Option<PendingInputs<i64>>,
    /// The timestamp of the record being processed (with `timestamps`).
    current_timestamp: i64,
    /// The timestamp the side outputs stamp dead letters with: set to a call's
    /// when its failure becomes one (with `timestamps` and wired side outputs).
    side_timestamp: Option<crate::side_output::RecordTimestamp>,
    subtask_index: usize,
    parallelism: usize,
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
            codec: None,
            inputs: PendingInputs::new(),
            held_watermarks: VecDeque::new(),
            to_reissue: VecDeque::new(),
            timestamps: None,
            current_timestamp: NO_TIMESTAMP,
            side_timestamp: ctx.side_outputs.record_timestamp(),
            subtask_index: ctx.subtask_index,
            parallelism: ctx.parallelism,
            calls: InFlight::new(ctx.services.clone()),
            metrics: AsyncMetrics::new(m),
        }
    }

    /// Stores the queue (calls whose result has not left, and the watermarks
    /// between them) in each snapshot instead of draining it on the barrier, and
    /// issues a restored queue's calls again.
    pub fn storing_queue_in_snapshots(mut self) -> Self
    where
        I: serde::Serialize + serde::de::DeserializeOwned,
    {
        self.codec = Some(QueueCodec::new());
        self
    }

    /// Tells `observer` of every record given up on that ends here (as a dead letter
    /// or a counted error).
    pub(crate) fn observing_give_ups(mut self, observer: GiveUpObserver<I>) -> Self {
        self.give_up.observe(observer);
        self
    }

    /// The records this operator holds and has emitted no result for: restored ones
    /// not issued again, and the inputs of calls whose results have not left. At a
    /// stop without drain they are what its snapshot stores (with
    /// [`storing_queue_in_snapshots`](Self::storing_queue_in_snapshots)).
    pub(crate) fn held_records(&self) -> u64 {
        let restored = self
            .to_reissue
            .iter()
            .filter(|e| matches!(e, QueuedElement::Record(_) | QueuedElement::TimedRecord(..)))
            .count();
        (restored + self.inputs.iter().count()) as u64
    }

    /// Changes every restored record not issued again yet with `f`; how many there
    /// are.
    pub(crate) fn change_restored(&mut self, mut f: impl FnMut(&mut I)) -> u64 {
        let mut n = 0;
        for element in &mut self.to_reissue {
            if let QueuedElement::Record(input) | QueuedElement::TimedRecord(input, _) = element {
                f(input);
                n += 1;
            }
        }
        n
    }

    /// Emits each result with its input record's event timestamp (for a stream
    /// whose records carry them; the operator then runs wrapped in
    /// [`Stamped`](super::Stamped)), also for calls stored in a snapshot.
    pub fn keeping_timestamps(mut self) -> Self {
        self.timestamps = Some(PendingInputs::new());
        self
    }

    /// Issues the calls of a restored queue again, in their order, before anything
    /// else; waits for free slots as any input does.
    fn reissue_restored<C: Collector<O> + ?Sized>(&mut self, out: &mut C) {
        while let Some(element) = self.to_reissue.pop_front() {
            match element {
                QueuedElement::Record(input) => self.reissue(input, NO_TIMESTAMP, out),
                QueuedElement::TimedRecord(input, timestamp) => self.reissue(input, timestamp, out),
                QueuedElement::Watermark(w) => self.enqueue_watermark(Watermark(w), out),
            }
        }
    }

    fn reissue<C: Collector<O> + ?Sized>(&mut self, input: I, timestamp: i64, out: &mut C) {
        if self.occupied >= self.options.capacity {
            self.wait_for_a_slot(out);
        }
        self.start_call(input, timestamp);
        self.drain_ready(out);
    }

    /// The queue as it stands, oldest first: restored elements not issued again,
    /// then the inputs of calls not out yet with the held watermarks between them.
    fn queued_elements(&self) -> Vec<QueuedElement<I>> {
        let mut elements: Vec<QueuedElement<I>> = self.to_reissue.iter().cloned().collect();
        let mut watermarks = self.held_watermarks.iter().peekable();
        for (seq, input) in self.inputs.iter() {
            while let Some((_, w)) = watermarks.next_if(|(before, _)| *before <= seq) {
                elements.push(QueuedElement::Watermark(w.0));
            }
            let timestamp = self.timestamps.as_ref().and_then(|t| t.get(seq));
            elements.push(match timestamp {
                Some(&timestamp) => QueuedElement::TimedRecord(input.clone(), timestamp),
                None => QueuedElement::Record(input.clone()),
            });
        }
        elements.extend(watermarks.map(|(_, w)| QueuedElement::Watermark(w.0)));
        elements
    }

    fn enqueue_watermark<C: Collector<O> + ?Sized>(&mut self, watermark: Watermark, out: &mut C) {
        if self.codec.is_some() {
            self.held_watermarks.push_back((self.next_seq, watermark));
        }
        let mut released = std::mem::take(&mut self.released);
        self.queue
            .watermark(watermark, self.next_seq, &mut |r| released.push(r));
        self.emit_released(&mut released, out);
        self.released = released;
    }

    fn start_call(&mut self, input: I, timestamp: i64) {
        let seq = self.next_seq;
        if self.codec.is_some() {
            self.inputs.push(seq, input.clone());
        }
        if let Some(timestamps) = &mut self.timestamps {
            timestamps.push(seq, timestamp);
        }
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
            .completed(seq, (seq, completion), &mut |r| released.push(r));
        self.emit_released(&mut released, out);
        self.released = released;
    }

    fn emit_released<C: Collector<O> + ?Sized>(
        &mut self,
        released: &mut Vec<Released<(u64, Completion<I, O>)>>,
        out: &mut C,
    ) {
        for r in released.drain(..) {
            match r {
                Released::Result((seq, completion)) => {
                    self.occupied -= 1;
                    self.inputs.remove(seq);
                    self.publish_queued();
                    if let Some(timestamps) = &mut self.timestamps {
                        let timestamp = timestamps.get(seq).copied().unwrap_or(NO_TIMESTAMP);
                        out.set_timestamp(timestamp);
                        if let Some(side) = &self.side_timestamp {
                            side.set(timestamp);
                        }
                        timestamps.remove(seq);
                    }
                    self.emit(completion, out);
                }
                Released::Watermark(w) => {
                    self.held_watermarks.pop_front();
                    out.emit_watermark(w)
                }
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
        self.reissue_restored(out);
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
        if !self.to_reissue.is_empty() {
            self.reissue_restored(out);
        }
        if self.occupied >= self.options.capacity {
            self.wait_for_a_slot(out);
        }
        self.start_call(record, self.current_timestamp);
        self.drain_ready(out);
    }

    fn process_timestamped<C: Collector<O> + ?Sized>(
        &mut self,
        record: I,
        timestamp: i64,
        out: &mut C,
    ) {
        self.current_timestamp = timestamp;
        self.process(record, out);
    }

    fn process_batch(&mut self, batch: &mut Vec<I>, out: &mut Emitter<'_, O>) {
        self.reissue_restored(out);
        // Until its call starts, a record of the batch waits for a free slot here.
        self.unstarted = batch.len();
        self.publish_queued();
        for record in batch.drain(..) {
            self.process(record, out);
        }
        self.unstarted = 0;
    }

    fn process_watermark<C: Collector<O> + ?Sized>(&mut self, watermark: Watermark, out: &mut C) {
        self.reissue_restored(out);
        self.enqueue_watermark(watermark, out);
    }

    fn poll_pending(&mut self, out: &mut Emitter<'_, O>) -> bool {
        self.reissue_restored(out);
        self.drain_ready(out);
        self.in_flight > 0
    }

    fn end_input<C: Collector<O> + ?Sized>(&mut self, out: &mut C) {
        self.reissue_restored(out);
        out.flush_before_wait();
        while self.in_flight > 0 {
            self.complete_some(out);
        }
    }

    /// Without a queue codec, completes every call in flight, so that no input is
    /// lost with a restore; with one, nothing: the queue goes into the snapshot.
    fn prepare_snapshot_pre_barrier<C: Collector<O> + ?Sized>(&mut self, _: u64, out: &mut C) {
        if self.codec.is_none() {
            self.end_input(out);
        }
    }

    fn snapshot_state(&mut self, _: StateScope, _: u64) -> Result<Option<Vec<u8>>, StateError> {
        let Some(codec) = &self.codec else {
            return Ok(None);
        };
        let elements = self.queued_elements();
        if elements.is_empty() {
            return Ok(None);
        }
        codec.encode(&elements).map(Some)
    }

    /// Takes the queues saved by subtasks `j` with `j % parallelism == own index`
    /// (at the parallelism they were saved with: its own), to issue them again.
    fn restore_state(&mut self, _: StateScope, restored: &RestoredState) -> Result<(), StateError> {
        let Some(codec) = &self.codec else {
            return Ok(());
        };
        for (j, bytes) in restored.by_subtask.iter().enumerate() {
            if j % self.parallelism != self.subtask_index {
                continue;
            }
            if let Some(bytes) = bytes {
                self.to_reissue.extend(codec.decode(bytes)?);
            }
        }
        Ok(())
    }
}
