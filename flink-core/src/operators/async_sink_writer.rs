use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{Either, select};

use crate::async_io::Jitter;
use crate::async_sink::{AsyncSinkOptions, BatchDestination};
use crate::destination::DeliveryError;
use crate::failure::{fail_operator, panic_message};
use crate::functions::Collector;
use crate::operator::{Emitter, Operator, RuntimeContext};
use crate::services::RuntimeServices;

use super::give_up::GiveUp;
use super::in_flight::InFlight;

/// An entry that failed for good: the record, its attempts, the last error.
type Failed<T> = (T, u32, DeliveryError);

/// The end of one request, all attempts included.
enum RequestOutcome<T> {
    /// Every entry was delivered or failed for good.
    Done {
        delivered: usize,
        failed: Vec<Failed<T>>,
    },
    /// The destination reported an error no retry can fix.
    Fatal(String),
}

/// Live counters and gauges of the sink, reported as metrics.
struct SinkMetrics {
    buffered: Arc<AtomicU64>,
    in_flight_requests: Arc<AtomicU64>,
    in_flight_records: Arc<AtomicU64>,
    queued: Arc<AtomicU64>,
    delivered: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
    retries: Arc<AtomicU64>,
    timeouts: Arc<AtomicU64>,
}

/// Writes records through a [`BatchDestination`] in asynchronous batches, as Flink's
/// `AsyncSinkWriter`: records wait in a bounded buffer; a full batch (or, once the
/// oldest buffered record waited `max_time_in_buffer`, a partial one) goes out as a
/// request while fewer than `max_in_flight_requests` are in flight. Requests are
/// polled on the task's own thread. When the buffer is full the operator waits for a
/// request to complete, which is how it applies back pressure. Entries that failed
/// retryably (or whose request timed out) are sent again per the retry strategy,
/// inside the same request slot; entries that failed for good fail the job or become
/// dead letters; a fatal error fails the job naming the sink.
pub struct AsyncSinkWriter<T> {
    destination: Arc<dyn BatchDestination<T>>,
    options: Arc<AsyncSinkOptions>,
    services: RuntimeServices,
    name: String,
    buffer: VecDeque<T>,
    /// When the oldest buffered record arrived (job clock); `None` when empty.
    oldest_at: Option<Duration>,
    requests: InFlight<RequestOutcome<T>>,
    /// Records inside requests in flight.
    records_in_flight: usize,
    next_request: u64,
    jitter_seed: u64,
    /// Completed requests, reused between polls.
    completed: Vec<RequestOutcome<T>>,
    give_up: GiveUp<T>,
    metrics: SinkMetrics,
}

impl<T: Send + 'static> AsyncSinkWriter<T> {
    /// An instance sending to `destination` with `options`.
    pub fn new(
        destination: Arc<dyn BatchDestination<T>>,
        options: Arc<AsyncSinkOptions>,
        ctx: &RuntimeContext,
    ) -> Self {
        let m = &ctx.metrics;
        Self {
            give_up: GiveUp::new(options.on_failure, ctx),
            destination,
            jitter_seed: options.jitter_seed ^ (ctx.subtask_index as u64).wrapping_mul(0x9e37_79b9),
            buffer: VecDeque::with_capacity(options.max_buffered_records),
            options,
            services: ctx.services.clone(),
            name: ctx.operator_name.to_string(),
            oldest_at: None,
            requests: InFlight::new(ctx.services.clone()),
            records_in_flight: 0,
            next_request: 0,
            completed: Vec::new(),
            metrics: SinkMetrics {
                buffered: m.custom("buffered"),
                in_flight_requests: m.custom("in_flight_requests"),
                in_flight_records: m.custom("in_flight"),
                queued: m.custom("queued"),
                delivered: m.custom("delivered"),
                requests: m.custom("requests"),
                retries: m.custom("retries"),
                timeouts: m.custom("timeouts"),
            },
        }
    }

    /// Whether the oldest buffered record has waited long enough to go out in a
    /// partial batch.
    fn buffer_timed_out(&self) -> bool {
        self.oldest_at.is_some_and(|at| {
            self.services.clock.now().saturating_sub(at) >= self.options.max_time_in_buffer
        })
    }

    /// Starts requests while slots are free: full batches, and partial ones when
    /// `flush_all` is set or the buffer timed out.
    fn send_ready(&mut self, flush_all: bool) {
        let flush_partial = flush_all || self.buffer_timed_out();
        while self.requests.len() < self.options.max_in_flight_requests
            && !self.buffer.is_empty()
            && (flush_partial || self.buffer.len() >= self.options.max_batch_size)
        {
            let n = self.buffer.len().min(self.options.max_batch_size);
            let batch: Vec<T> = self.buffer.drain(..n).collect();
            self.start_request(batch);
        }
        if self.buffer.is_empty() {
            self.oldest_at = None;
        }
        self.publish_gauges();
    }

    fn start_request(&mut self, batch: Vec<T>) {
        self.records_in_flight += batch.len();
        self.metrics.requests.fetch_add(1, Ordering::Relaxed);
        let jitter = Jitter::new(self.jitter_seed.wrapping_add(self.next_request));
        self.next_request += 1;
        let request = deliver(
            self.destination.clone(),
            batch,
            self.options.clone(),
            self.services.clone(),
            jitter,
            (self.metrics.retries.clone(), self.metrics.timeouts.clone()),
        );
        self.requests.push(Box::pin(async move {
            match AssertUnwindSafe(request).catch_unwind().await {
                Ok(outcome) => outcome,
                Err(payload) => RequestOutcome::Fatal(format!(
                    "the destination panicked: {}",
                    panic_message(&*payload)
                )),
            }
        }));
    }

    fn publish_gauges(&self) {
        let m = &self.metrics;
        m.buffered
            .store(self.buffer.len() as u64, Ordering::Relaxed);
        m.in_flight_requests
            .store(self.requests.len() as u64, Ordering::Relaxed);
        m.in_flight_records
            .store(self.records_in_flight as u64, Ordering::Relaxed);
        // What the sink holds: the records a cancellation would abandon.
        m.queued.store(
            (self.buffer.len() + self.records_in_flight) as u64,
            Ordering::Relaxed,
        );
    }

    /// Handles the requests that completed since the last poll; waits for one first
    /// when `wait` is set.
    fn complete_requests(&mut self, wait: bool) {
        let mut completed = std::mem::take(&mut self.completed);
        if wait {
            self.requests.wait_ready(&mut completed);
        } else {
            self.requests.poll_ready(&mut completed);
        }
        for outcome in completed.drain(..) {
            self.finish(outcome);
        }
        self.completed = completed;
        self.publish_gauges();
    }

    fn finish(&mut self, outcome: RequestOutcome<T>) {
        let (delivered, failed) = match outcome {
            RequestOutcome::Done { delivered, failed } => (delivered, failed),
            RequestOutcome::Fatal(message) => {
                fail_operator(&self.name, format!("async sink request failed: {message}"))
            }
        };
        self.records_in_flight -= delivered + failed.len();
        self.metrics
            .delivered
            .fetch_add(delivered as u64, Ordering::Relaxed);
        for (record, attempts, error) in failed {
            self.give_up
                .record(record, attempts, "async sink gave up", &error);
        }
    }
}

/// One request: attempts with a timeout each; entries that failed retryably are sent
/// again (alone) while the strategy allows.
async fn deliver<T: Send + 'static>(
    destination: Arc<dyn BatchDestination<T>>,
    mut pending: Vec<T>,
    options: Arc<AsyncSinkOptions>,
    services: RuntimeServices,
    mut jitter: Jitter,
    (retries, timeouts): (Arc<AtomicU64>, Arc<AtomicU64>),
) -> RequestOutcome<T> {
    let total = pending.len();
    let mut failed: Vec<Failed<T>> = Vec::new();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let answer = select(
            destination.submit(&pending),
            services.clock.sleep(options.request_timeout),
        )
        .await;
        let errors = match answer {
            Either::Left((Ok(errors), _)) => errors,
            Either::Left((Err(fatal), _)) => return RequestOutcome::Fatal(fatal.to_string()),
            Either::Right(_) => {
                timeouts.fetch_add(1, Ordering::Relaxed);
                let timed_out = DeliveryError::Retryable(format!(
                    "request timed out after {:?}",
                    options.request_timeout
                ));
                (0..pending.len()).map(|i| (i, timed_out.clone())).collect()
            }
        };
        let retry = split_failures(pending, errors, attempt, &mut failed);
        if retry.is_empty() {
            break;
        }
        match options.retry.delay_after(attempt, &mut jitter) {
            Some(delay) => {
                retries.fetch_add(retry.len() as u64, Ordering::Relaxed);
                services.clock.sleep(delay).await;
                pending = retry.into_iter().map(|(record, _)| record).collect();
            }
            None => {
                failed.extend(retry.into_iter().map(|(r, e)| (r, attempt, e)));
                break;
            }
        }
    }
    RequestOutcome::Done {
        delivered: total - failed.len(),
        failed,
    }
}

/// Sorts the entries of one attempt: delivered ones leave, permanent failures join
/// `failed`, retryable ones are returned with their error.
fn split_failures<T>(
    pending: Vec<T>,
    errors: Vec<(usize, DeliveryError)>,
    attempt: u32,
    failed: &mut Vec<Failed<T>>,
) -> Vec<(T, DeliveryError)> {
    if errors.is_empty() {
        return Vec::new();
    }
    let mut reasons: Vec<Option<DeliveryError>> = vec![None; pending.len()];
    for (i, e) in errors {
        if let Some(slot) = reasons.get_mut(i) {
            *slot = Some(e);
        }
    }
    let mut retry = Vec::new();
    for (record, reason) in pending.into_iter().zip(reasons) {
        match reason {
            None => {}
            Some(e) if e.is_retryable() => retry.push((record, e)),
            Some(e) => failed.push((record, attempt, e)),
        }
    }
    retry
}

impl<T: Send + 'static> Operator<T, ()> for AsyncSinkWriter<T> {
    fn process<C: Collector<()> + ?Sized>(&mut self, record: T, _out: &mut C) {
        if self.buffer.is_empty() {
            self.oldest_at = Some(self.services.clock.now());
        }
        self.buffer.push_back(record);
        // Completions matter when a batch is ready to go (they free its slot); between
        // batches the task's `poll_pending` handles them, so a record costs no poll.
        if self.buffer.len() >= self.options.max_batch_size {
            self.complete_requests(false);
            self.send_ready(false);
        }
        while self.buffer.len() >= self.options.max_buffered_records {
            self.complete_requests(true);
            self.send_ready(false);
        }
    }

    fn poll_pending(&mut self, _out: &mut Emitter<'_, ()>) -> bool {
        self.complete_requests(false);
        self.send_ready(false);
        !self.buffer.is_empty() || self.requests.len() > 0
    }

    /// Sends and completes everything buffered and flushes the destination, as
    /// Flink's async sink does on a checkpoint: what precedes the barrier is written.
    fn prepare_snapshot_pre_barrier<C: Collector<()> + ?Sized>(&mut self, _: u64, out: &mut C) {
        self.end_input(out);
    }

    fn end_input<C: Collector<()> + ?Sized>(&mut self, _out: &mut C) {
        while !self.buffer.is_empty() || self.requests.len() > 0 {
            self.send_ready(true);
            self.complete_requests(true);
        }
        let flush = self.destination.flush();
        let mut flushed = InFlight::new(self.services.clone());
        flushed.push(flush);
        let mut result = Vec::new();
        flushed.wait_ready(&mut result);
        if let Some(Err(e)) = result.pop() {
            fail_operator(&self.name, format!("async sink flush failed: {e}"));
        }
    }
}
