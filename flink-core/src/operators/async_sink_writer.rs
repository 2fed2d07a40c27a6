use std::collections::{BTreeMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{Either, select};

use crate::async_io::Jitter;
use crate::async_sink::{AsyncSinkOptions, BatchDestination};
use crate::checkpoint::{RestoredState, StateError};
use crate::destination::DeliveryError;
use crate::failure::{fail_operator, panic_message};
use crate::functions::Collector;
use crate::operator::{Emitter, Operator, RuntimeContext, StateScope};
use crate::services::RuntimeServices;

use super::give_up::GiveUp;
use super::in_flight::InFlight;
use super::state_codec::StateCodec;

/// An entry that failed for good: the record, its attempts, the last error.
type Failed<T> = (T, u32, DeliveryError);

/// A request's entries, shared by the request and (for snapshots) the writer until
/// it completes; a mutex, not a bare `Arc`, so that records need not be `Sync`.
type SharedBatch<T> = Arc<Mutex<Vec<T>>>;

fn entries<T>(batch: &Mutex<Vec<T>>) -> MutexGuard<'_, Vec<T>> {
    batch.lock().unwrap_or_else(|p| p.into_inner())
}

/// The end of one request, all attempts included.
enum RequestOutcome<T> {
    /// Every entry of request `request` was delivered or failed for good.
    Done {
        request: u64,
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
    /// Entries (buffered or in requests not yet complete) the last snapshot stored.
    snapshotted: Arc<AtomicU64>,
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
///
/// With [`storing_buffer_in_snapshots`](Self::storing_buffer_in_snapshots) (what
/// `DataStream::sink_to_async` uses), a checkpoint stores the buffered entries and
/// those of requests not yet complete instead of writing them on the barrier, and a
/// restore sends them again (Flink's `AsyncSinkWriter` state). An entry whose request
/// completed after the checkpoint is then sent twice: at least once, exactly once
/// only for an idempotent destination. Without it, the barrier waits until
/// everything buffered was written and the destination flushed.
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
    /// How the entries are stored in a snapshot; `None`: written on the barrier.
    codec: Option<StateCodec<Vec<T>>>,
    /// With a codec: the entries of every request not yet complete, by request.
    in_flight_entries: BTreeMap<u64, SharedBatch<T>>,
    subtask_index: usize,
    parallelism: usize,
}

impl<T: Clone + Send + 'static> AsyncSinkWriter<T> {
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
                snapshotted: m.custom("snapshotted"),
            },
            codec: None,
            in_flight_entries: BTreeMap::new(),
            subtask_index: ctx.subtask_index,
            parallelism: ctx.parallelism,
        }
    }

    /// Stores the buffered entries and those of requests not yet complete in each
    /// snapshot instead of writing them on the barrier, and sends a restored
    /// instance's entries again.
    pub fn storing_buffer_in_snapshots(mut self) -> Self
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        self.codec = Some(StateCodec::new());
        self
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
        let id = self.next_request;
        let jitter = Jitter::new(self.jitter_seed.wrapping_add(id));
        self.next_request += 1;
        let batch = Arc::new(Mutex::new(batch));
        if self.codec.is_some() {
            self.in_flight_entries.insert(id, batch.clone());
        }
        let request = deliver(
            self.destination.clone(),
            id,
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
            RequestOutcome::Done {
                request,
                delivered,
                failed,
            } => {
                self.in_flight_entries.remove(&request);
                (delivered, failed)
            }
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
/// again (alone) while the strategy allows. The batch is shared with the writer
/// (which stores it in snapshots until the request completes); entries are copied
/// only when some fail.
async fn deliver<T: Clone + Send + 'static>(
    destination: Arc<dyn BatchDestination<T>>,
    request: u64,
    batch: SharedBatch<T>,
    options: Arc<AsyncSinkOptions>,
    services: RuntimeServices,
    mut jitter: Jitter,
    (retries, timeouts): (Arc<AtomicU64>, Arc<AtomicU64>),
) -> RequestOutcome<T> {
    let total = entries(&batch).len();
    // The entries of a retry, once some failed.
    let mut retrying: Option<Vec<T>> = None;
    let mut failed: Vec<Failed<T>> = Vec::new();
    let mut attempt = 0;
    loop {
        attempt += 1;
        // The destination takes the entries by reference only to start the request.
        let (submitted, sent) = match retrying.as_deref() {
            Some(retry) => (destination.submit(retry), retry.len()),
            None => {
                let all = entries(&batch);
                (destination.submit(&all), all.len())
            }
        };
        let answer = select(submitted, services.clock.sleep(options.request_timeout)).await;
        let errors = match answer {
            Either::Left((Ok(errors), _)) => errors,
            Either::Left((Err(fatal), _)) => return RequestOutcome::Fatal(fatal.to_string()),
            Either::Right(_) => {
                timeouts.fetch_add(1, Ordering::Relaxed);
                let timed_out = DeliveryError::Retryable(format!(
                    "request timed out after {:?}",
                    options.request_timeout
                ));
                (0..sent).map(|i| (i, timed_out.clone())).collect()
            }
        };
        if errors.is_empty() {
            break;
        }
        let pending = retrying.take().unwrap_or_else(|| entries(&batch).clone());
        let retry = split_failures(pending, errors, attempt, &mut failed);
        if retry.is_empty() {
            break;
        }
        match options.retry.delay_after(attempt, &mut jitter) {
            Some(delay) => {
                retries.fetch_add(retry.len() as u64, Ordering::Relaxed);
                services.clock.sleep(delay).await;
                retrying = Some(retry.into_iter().map(|(record, _)| record).collect());
            }
            None => {
                failed.extend(retry.into_iter().map(|(r, e)| (r, attempt, e)));
                break;
            }
        }
    }
    RequestOutcome::Done {
        request,
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

impl<T: Clone + Send + 'static> Operator<T, ()> for AsyncSinkWriter<T> {
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

    /// Without a codec, sends and completes everything buffered and flushes the
    /// destination: what precedes the barrier is written. With one, nothing: the
    /// entries not yet written go into the snapshot and the barrier does not wait.
    fn prepare_snapshot_pre_barrier<C: Collector<()> + ?Sized>(&mut self, _: u64, out: &mut C) {
        if self.codec.is_none() {
            self.end_input(out);
        }
    }

    /// The entries of the requests not yet complete (oldest first), then the
    /// buffered ones.
    fn snapshot_state(&mut self, _: StateScope, _: u64) -> Result<Option<Vec<u8>>, StateError> {
        let Some(codec) = &self.codec else {
            return Ok(None);
        };
        let mut all: Vec<T> = Vec::with_capacity(self.records_in_flight + self.buffer.len());
        for batch in self.in_flight_entries.values() {
            all.extend(entries(batch).iter().cloned());
        }
        all.extend(self.buffer.iter().cloned());
        self.metrics
            .snapshotted
            .store(all.len() as u64, Ordering::Relaxed);
        if all.is_empty() {
            return Ok(None);
        }
        codec.encode(&all).map(Some)
    }

    /// Takes the entries saved by subtasks `j` with `j % parallelism == own index`,
    /// to send them again before any new input.
    fn restore_state(&mut self, _: StateScope, restored: &RestoredState) -> Result<(), StateError> {
        let Some(codec) = &self.codec else {
            return Ok(());
        };
        for (j, bytes) in restored.by_subtask.iter().enumerate() {
            if j % self.parallelism != self.subtask_index {
                continue;
            }
            if let Some(bytes) = bytes {
                self.buffer.extend(codec.decode(bytes)?);
            }
        }
        if !self.buffer.is_empty() {
            self.oldest_at = Some(self.services.clock.now());
        }
        self.publish_gauges();
        Ok(())
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
