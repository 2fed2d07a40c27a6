//! The async sink: batching, bounds on requests and buffered records, flushing on
//! time and at the end, retries, dead letters and fatal errors. Delays that matter run
//! on a ManualClock; nothing asserts wall time.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flink_core::async_io::RetryStrategy;
use flink_core::async_sink::{AsyncSink, AsyncSinkOptions, BatchDestination, SubmitResult};
use flink_core::clock::{Clock, ManualClock};
use flink_core::source::{Boundedness, Source, SourceOutput, SourcePoll, SourceReader};
use flink_runtime::precise_timer::precise_sleep;
use flink_runtime::prelude::*;
use futures::future::BoxFuture;

mod common;
use common::until;

/// A destination that records each batch, counts concurrent requests, and fails the
/// entries a rule picks.
#[derive(Clone, Default)]
struct Recorder {
    batches: Arc<Mutex<Vec<Vec<u64>>>>,
    current: Arc<AtomicUsize>,
    max_concurrent: Arc<AtomicUsize>,
    /// Entries failed so far (for "fail the first attempt" rules).
    failed_once: Arc<Mutex<Vec<u64>>>,
    /// Stops answering until set (to hold requests in flight).
    open: Arc<AtomicBool>,
    flushed: Arc<AtomicUsize>,
    rule: Option<fn(u64, bool) -> Option<DeliveryError>>,
}

impl Recorder {
    fn open() -> Self {
        let r = Self::default();
        r.open.store(true, Ordering::SeqCst);
        r
    }

    fn delivered(&self) -> Vec<u64> {
        let mut all: Vec<u64> = self.batches.lock().unwrap().concat();
        all.sort_unstable();
        all
    }
}

impl BatchDestination<u64> for Recorder {
    fn submit(&self, batch: &[u64]) -> BoxFuture<'static, SubmitResult> {
        let me = self.clone();
        let batch = batch.to_vec();
        Box::pin(async move {
            let now = me.current.fetch_add(1, Ordering::SeqCst) + 1;
            me.max_concurrent.fetch_max(now, Ordering::SeqCst);
            while !me.open.load(Ordering::SeqCst) {
                precise_sleep(Duration::from_micros(200)).await;
            }
            precise_sleep(Duration::from_micros(100)).await;
            let mut failed = Vec::new();
            let mut ok = Vec::new();
            for (i, &x) in batch.iter().enumerate() {
                let seen = me.failed_once.lock().unwrap().contains(&x);
                match me.rule.and_then(|rule| rule(x, seen)) {
                    Some(e) => {
                        me.failed_once.lock().unwrap().push(x);
                        failed.push((i, e));
                    }
                    None => ok.push(x),
                }
            }
            me.batches.lock().unwrap().push(ok);
            me.current.fetch_sub(1, Ordering::SeqCst);
            Ok(failed)
        })
    }

    fn flush(&self) -> BoxFuture<'static, Result<(), DeliveryError>> {
        self.flushed.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    }
}

#[test]
fn delivers_everything_in_bounded_batches_and_requests() {
    let dest = Recorder::open();
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.from_sequence(1, 10_000).rebalance().sink_to_async(
        AsyncSink::new(dest.clone()).options(
            AsyncSinkOptions::new()
                .max_batch_size(64)
                .max_in_flight_requests(3)
                .max_buffered_records(256),
        ),
    );
    let result = env.execute("async sink").unwrap();
    assert_eq!(dest.delivered(), (1..=10_000).collect::<Vec<_>>());
    assert!(dest.batches.lock().unwrap().iter().all(|b| b.len() <= 64));
    let max = dest.max_concurrent.load(Ordering::SeqCst);
    assert!(
        (1..=6).contains(&max),
        "{max} requests in flight > 3 x 2 instances"
    );
    let sink = result.operator("Async Sink").unwrap();
    assert_eq!(sink.records_in, 10_000);
    assert_eq!(sink.custom("delivered"), Some(10_000));
    assert_eq!(sink.custom("in_flight"), Some(0));
    assert_eq!(
        dest.flushed.load(Ordering::SeqCst),
        2,
        "one flush per instance"
    );
}

#[test]
fn a_full_buffer_stops_taking_input() {
    let dest = Recorder::default(); // closed: requests stay in flight
    let env = StreamExecutionEnvironment::new();
    env.from_sequence(1, 100_000).sink_to_async(
        AsyncSink::new(dest.clone()).options(
            AsyncSinkOptions::new()
                .max_batch_size(10)
                .max_in_flight_requests(2)
                .max_buffered_records(50),
        ),
    );
    let client = env.execute_async("held").unwrap();
    let sink = |name: &str| client.operator_metrics().last().unwrap().custom(name);
    // 2 requests x 10 records in flight and 50 buffered: the sink is full and waits.
    until("the sink to fill up", || {
        sink("in_flight") == Some(20) && sink("buffered") == Some(50)
    });
    let read = || client.operator_metrics()[0].records_out;
    let before = read();
    for _ in 0..10_000 {
        std::thread::yield_now();
    }
    assert_eq!(read(), before, "the source went on while the sink was full");
    assert!(before < 100_000);
    assert_eq!(sink("in_flight"), Some(20));
    assert_eq!(sink("buffered"), Some(50));
    dest.open.store(true, Ordering::SeqCst);
    let result = client.wait().unwrap();
    assert_eq!(
        result.operator("Async Sink").unwrap().custom("delivered"),
        Some(100_000)
    );
    assert_eq!(dest.delivered().len(), 100_000);
}

/// Emits `n` records, then nothing more until the job is stopped or cancelled.
struct Trickle(u64);

struct TrickleReader {
    left: u64,
}

impl Source<u64> for Trickle {
    fn boundedness(&self) -> Boundedness {
        Boundedness::Unbounded
    }

    fn create_reader(
        &self,
        _: &flink_core::operator::RuntimeContext,
    ) -> Box<dyn SourceReader<u64>> {
        Box::new(TrickleReader { left: self.0 })
    }
}

impl SourceReader<u64> for TrickleReader {
    fn poll_next(&mut self, out: &mut SourceOutput<u64>) -> SourcePoll {
        if self.left > 0 {
            out.collect(self.left);
            self.left -= 1;
            SourcePoll::MoreAvailable
        } else {
            SourcePoll::Pending(Duration::from_millis(1))
        }
    }
}

#[test]
fn a_partial_batch_goes_out_once_it_waited_max_time_in_buffer() {
    let clock = ManualClock::new();
    let dest = Recorder::open();
    let env = StreamExecutionEnvironment::new();
    env.set_clock(Arc::new(clock.clone()));
    env.from_source(Trickle(3), "trickle")
        .disable_chaining()
        .sink_to_async(
            AsyncSink::new(dest.clone()).options(
                AsyncSinkOptions::new()
                    .max_batch_size(100)
                    .max_time_in_buffer(Duration::from_secs(1)),
            ),
        );
    let client = env.execute_async("trickle").unwrap();
    until("three records buffered", || {
        client.operator_metrics().last().unwrap().custom("buffered") == Some(3)
    });
    clock.advance(Duration::from_millis(999));
    for _ in 0..1_000 {
        std::thread::yield_now();
    }
    assert!(
        dest.delivered().is_empty(),
        "sent before max_time_in_buffer"
    );
    clock.advance(Duration::from_millis(1));
    until("the partial batch to be delivered", || {
        dest.delivered() == vec![1, 2, 3]
    });
    client.cancel();
    assert!(matches!(client.wait(), Err(JobError::Cancelled { .. })));
}

fn fail_multiples_of_ten_once(x: u64, seen: bool) -> Option<DeliveryError> {
    if x.is_multiple_of(10) && !seen {
        Some(DeliveryError::Retryable(format!("{x} busy")))
    } else if x.is_multiple_of(97) {
        Some(DeliveryError::Permanent(format!("{x} refused")))
    } else {
        None
    }
}

#[test]
fn retryable_entries_are_resent_and_permanent_ones_become_dead_letters() {
    let dest = Recorder {
        rule: Some(fail_multiples_of_ten_once),
        ..Recorder::open()
    };
    let env = StreamExecutionEnvironment::new();
    let sink = env.from_sequence(1, 1_000).sink_to_async(
        AsyncSink::new(dest.clone()).options(
            AsyncSinkOptions::new()
                .max_batch_size(50)
                .retry(RetryStrategy::FixedDelay {
                    delay: Duration::from_millis(1),
                    max_attempts: 2,
                })
                .dead_letters(),
        ),
    );
    let dead = sink.dead_letters::<u64>().collect_vec();
    let result = env.execute("retries").unwrap();
    let refused: Vec<u64> = (1..=1_000).filter(|x| x % 97 == 0).collect();
    let mut dead: Vec<_> = dead.take();
    dead.sort_by_key(|d| d.record);
    assert_eq!(dead.iter().map(|d| d.record).collect::<Vec<_>>(), refused);
    assert!(dead[0].last_error.as_deref().unwrap().contains("refused"));
    assert_eq!(dead[0].operator, "Async Sink");
    let delivered: Vec<u64> = (1..=1_000).filter(|x| x % 97 != 0).collect();
    assert_eq!(dest.delivered(), delivered);
    let sink = result.operator("Async Sink").unwrap();
    // The 100 multiples of 10 fail once (970 is refused for good on its retry).
    assert_eq!(sink.custom("retries"), Some(100));
    assert_eq!(sink.custom("dead_letters"), Some(refused.len() as u64));
    assert_eq!(
        sink.custom("delivered").unwrap() + sink.custom("dead_letters").unwrap(),
        1_000
    );
}

/// Never answers: every request times out.
struct Silent;

impl BatchDestination<u64> for Silent {
    fn submit(&self, _: &[u64]) -> BoxFuture<'static, SubmitResult> {
        Box::pin(futures::future::pending())
    }
}

#[test]
fn requests_that_time_out_are_retried_then_dead_lettered() {
    let clock = ManualClock::new();
    let env = StreamExecutionEnvironment::new();
    env.set_clock(Arc::new(clock.clone()));
    let sink = env.from_collection(vec![1u64, 2, 3]).sink_to_async(
        AsyncSink::new(Silent).options(
            AsyncSinkOptions::new()
                .max_batch_size(10)
                .request_timeout(Duration::from_secs(5))
                .retry(RetryStrategy::FixedDelay {
                    delay: Duration::from_secs(1),
                    max_attempts: 2,
                })
                .dead_letters(),
        ),
    );
    let dead = sink.dead_letters::<u64>().collect_vec();
    let client = env.execute_async("silent").unwrap();
    // Attempt 1 times out at 5 s, the retry waits 1 s, attempt 2 times out at 11 s.
    for step in [5, 1, 5] {
        until("the next timer", || clock.pending_sleeps() == 1);
        assert_eq!(
            clock.next_deadline().unwrap() - clock.now(),
            Duration::from_secs(step)
        );
        clock.advance(Duration::from_secs(step));
    }
    let result = client.wait().unwrap();
    let mut dead: Vec<u64> = dead.take().into_iter().map(|d| d.record).collect();
    dead.sort_unstable();
    assert_eq!(dead, vec![1, 2, 3]);
    let sink = result.operator("Async Sink").unwrap();
    assert_eq!(sink.custom("timeouts"), Some(2));
    assert_eq!(sink.custom("delivered"), Some(0));
}

/// Fails every request with an error no retry can fix.
struct Broken;

impl BatchDestination<u64> for Broken {
    fn submit(&self, _: &[u64]) -> BoxFuture<'static, SubmitResult> {
        Box::pin(async { Err("credentials rejected".into()) })
    }
}

#[test]
fn a_fatal_error_fails_the_job_naming_the_sink() {
    let env = StreamExecutionEnvironment::new();
    env.from_sequence(1, 10)
        .sink_to_async(AsyncSink::new(Broken));
    match env.execute("broken") {
        Err(JobError::OperatorFailed {
            operator, message, ..
        }) => {
            assert_eq!(operator, "Async Sink");
            assert!(message.contains("credentials rejected"), "{message}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn invalid_options_are_a_typed_error_when_the_job_is_built() {
    let env = StreamExecutionEnvironment::new();
    env.from_sequence(1, 10).sink_to_async(
        AsyncSink::new(Recorder::open()).options(AsyncSinkOptions::new().max_in_flight_requests(0)),
    );
    let err = env.execute("bad").unwrap_err();
    assert!(
        err.to_string().contains(
            "async sink 'Async Sink': async sink max_in_flight_requests must be at least 1"
        ),
        "{err}"
    );
}

#[test]
fn dead_letters_nobody_reads_fail_the_job_naming_the_sink() {
    let dest = Recorder {
        rule: Some(fail_multiples_of_ten_once),
        ..Recorder::open()
    };
    let env = StreamExecutionEnvironment::new();
    env.from_sequence(1, 200).sink_to_async(
        AsyncSink::new(dest).options(AsyncSinkOptions::new().max_batch_size(50).dead_letters()),
    );
    match env.execute("unread") {
        Err(JobError::OperatorFailed {
            operator, message, ..
        }) => {
            assert_eq!(operator, "Async Sink");
            assert!(message.contains("refused"), "{message}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// Options that keep 20 records in two requests and the rest of 200 buffered.
fn roomy() -> AsyncSinkOptions {
    AsyncSinkOptions::new()
        .max_batch_size(10)
        .max_in_flight_requests(2)
        .max_buffered_records(1_000)
}

/// Trickle(n) -> async sink into `dest`, checkpointing every 10 ms.
fn trickle_into(n: u64, dest: &Recorder, dir: &std::path::Path) -> StreamExecutionEnvironment {
    let env = StreamExecutionEnvironment::new();
    env.enable_checkpointing(Duration::from_millis(10))
        .set_storage_dir(dir);
    env.from_source(Trickle(n), "trickle")
        .uid("trickle")
        .disable_chaining()
        .sink_to_async(AsyncSink::new(dest.clone()).options(roomy()))
        .uid("sink");
    env
}

#[test]
fn a_barrier_stores_what_is_not_yet_written_instead_of_waiting_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let dest = Recorder::default(); // closed: requests stay in flight
    let env = trickle_into(200, &dest, dir.path());
    let client = env.execute_async("held at a barrier").unwrap();
    let sink = |name: &str| client.operator_metrics().last().unwrap().custom(name);
    until("20 records in flight, 180 buffered", || {
        sink("in_flight") == Some(20) && sink("buffered") == Some(180)
    });
    // A checkpoint completes although no write does: its snapshot holds all 200.
    until("a snapshot of the 200 pending writes", || {
        sink("snapshotted") == Some(200)
    });
    assert!(dest.delivered().is_empty());
    dest.open.store(true, Ordering::SeqCst);
    client.stop();
    let result = client.wait().unwrap();
    assert!(result.checkpoints.is_some_and(|c| c.completed > 0));
    assert_eq!(dest.delivered(), (1..=200).collect::<Vec<_>>(), "each once");
}

#[test]
fn entries_stored_in_a_savepoint_are_sent_again_on_restore() {
    let dir = tempfile::tempdir().unwrap();
    let held = Recorder::default(); // closed: nothing is ever written
    let env = trickle_into(200, &held, &dir.path().join("checkpoints"));
    let client = env.execute_async("held").unwrap();
    let sink = |name: &str| client.operator_metrics().last().unwrap().custom(name);
    until("200 records in the sink", || {
        sink("in_flight") == Some(20) && sink("buffered") == Some(180)
    });
    let savepoint = client.trigger_savepoint(dir.path()).unwrap();
    client.cancel();
    let _ = client.wait();
    assert!(held.delivered().is_empty());
    // The same job, reading nothing new: the sink sends what the savepoint held.
    let dest = Recorder::open();
    let env = trickle_into(0, &dest, &dir.path().join("checkpoints"));
    env.restore_from(&savepoint);
    let client = env.execute_async("restored").unwrap();
    until("the restored entries to be delivered", || {
        dest.delivered().len() == 200
    });
    client.stop();
    client.wait().unwrap();
    assert_eq!(dest.delivered(), (1..=200).collect::<Vec<_>>());
}

#[test]
fn after_injected_failures_every_record_is_delivered_with_bounded_duplicates() {
    use std::collections::{BTreeSet, HashSet};

    use flink_core::sources::{RateLimiterStrategy, SequenceSource};
    const RECORDS: u64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let dest = Recorder::open();
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.enable_checkpointing(Duration::from_millis(20))
        .set_storage_dir(dir.path());
    env.set_restart_strategy(RestartStrategy::FixedDelay {
        attempts: 10,
        delay: Duration::ZERO,
    });
    // Slow enough that checkpoints complete while the job runs (~1 s).
    let source = SequenceSource::range(0, RECORDS - 1)
        .rate_limited(RateLimiterStrategy::per_second(20_000.0).unwrap());
    let points: HashSet<u64> = [4_321, 9_876, 15_555].into();
    let fired = Arc::new(Mutex::new(HashSet::new()));
    let seen = fired.clone();
    env.from_source(source, "Sequence")
        .map(move |x: u64| {
            if points.contains(&x) && seen.lock().unwrap().insert(x) {
                panic!("injected failure at record {x}");
            }
            x
        })
        .sink_to_async(AsyncSink::new(dest.clone()).options(roomy()));
    let result = env
        .execute("async sink failures")
        .expect("the job recovers");
    assert_eq!(fired.lock().unwrap().len(), 3, "every failure fired");
    // Two failures may fall into one attempt: at least one restart; one (the
    // later ones at least) restored a checkpoint with the sink's pending entries.
    let restarts = result.restarts.len() as u64;
    assert!(
        result
            .restarts
            .iter()
            .any(|r| r.restored_checkpoint.is_some())
    );
    // Every record delivered ...
    let delivered = dest.delivered();
    let distinct: BTreeSet<u64> = delivered.iter().copied().collect();
    assert_eq!(distinct, (0..RECORDS).collect::<BTreeSet<_>>());
    // ... some twice: those the source read again after a restore, and the entries a
    // snapshot held that were written after it (at most what 2 instances hold: 2
    // requests of 10 and 1,000 buffered each) per restart.
    let duplicates = delivered.len() as u64 - RECORDS;
    let read_again = result.records_read_by_sources() - RECORDS;
    let held = restarts * 2 * (2 * 10 + 1_000);
    assert!(
        duplicates <= read_again + held,
        "{duplicates} duplicates > {read_again} records read again + {held}"
    );
}
