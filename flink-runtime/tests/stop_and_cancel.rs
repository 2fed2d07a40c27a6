//! Ending a running job: `stop()` drains it so every record read reaches the sinks
//! (exact counts), `cancel()` ends it at once and reports what it abandoned, also
//! when a sink waits on a service that never answers. End-of-job actions run only
//! after a successful end, once every task (the sinks included) finished.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use flink_core::async_io::{AsyncFailure, AsyncOptions};
use flink_core::operator::RuntimeContext;
use flink_core::pipeline::{FiveStagePipeline, PipelineConfig};
use flink_core::services::RuntimeServices;
use flink_core::sources::SequenceSource;
use flink_runtime::pipeline_monitor::PipelineReport;
use flink_runtime::precise_timer::precise_sleep;
use flink_runtime::prelude::*;
use futures::future::BoxFuture;

mod common;
use common::until;

/// Guard against a hang only; nothing asserts how fast a job ends.
const GUARD: Duration = Duration::from_secs(10);

/// Keeps every record, a little slowly (the pacing only makes the stream stay in
/// flight; nothing is timed); marks each writer finished.
#[derive(Clone, Default)]
struct PacedSink {
    received: Arc<Mutex<Vec<u64>>>,
    count: Arc<AtomicU64>,
    finished: Arc<AtomicU64>,
}

impl Sink<u64> for PacedSink {
    fn create_writer(&self, _: &RuntimeContext) -> Box<dyn SinkWriter<u64>> {
        Box::new(self.clone())
    }
}

impl SinkWriter<u64> for PacedSink {
    fn write(&mut self, record: u64) -> Result<(), SinkError> {
        std::thread::sleep(Duration::from_micros(20));
        self.received.lock().unwrap().push(record);
        self.count.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.finished.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Runs `wait` on another thread; fails the test if it has not returned after
/// [`GUARD`].
fn wait_guarded(client: JobClient) -> Result<JobExecutionResult, JobError> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(client.wait());
    });
    rx.recv_timeout(GUARD)
        .expect("the job did not end within the guard timeout")
}

/// Each reader `r` of `p` of the unbounded sequence emits `r, r+p, ..`: what arrived
/// must be, per reader, everything from its start without a gap.
fn assert_prefixes(mut received: Vec<u64>, p: u64) {
    received.sort_unstable();
    let before = received.len();
    received.dedup();
    assert_eq!(received.len(), before, "duplicates at the sink");
    for r in 0..p {
        let mine: Vec<u64> = received.iter().copied().filter(|x| x % p == r).collect();
        let expected: Vec<u64> = (0..mine.len() as u64).map(|i| r + i * p).collect();
        assert_eq!(mine, expected, "reader {r} has a gap");
    }
}

#[test]
fn stop_drains_an_unbounded_job_so_every_record_read_reaches_the_sink() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let sink = PacedSink::default();
    env.from_source(SequenceSource::unbounded(), "Endless")
        .rebalance()
        .async_function(
            |x: u64| async move {
                precise_sleep(Duration::from_micros(100 + x % 7 * 50)).await;
                Ok::<u64, AsyncFailure>(x)
            },
            AsyncOptions::new()
                .ordered(false)
                .capacity(50)
                .timeout(Duration::from_secs(3600)),
        )
        .sink_to(sink.clone());
    let client = env.execute_async("stop with drain").unwrap();
    let observer = client.observer();
    let control = client.control();
    // Stop from another thread while this one waits.
    let count = sink.count.clone();
    let stopper = std::thread::spawn(move || {
        until("records at the sink", || {
            count.load(Ordering::SeqCst) >= 5_000
        });
        control.stop();
    });
    let result = wait_guarded(client).expect("a stopped job ends successfully");
    stopper.join().unwrap();

    assert!(result.stopped);
    let received = sink.received.lock().unwrap().clone();
    assert!(received.len() >= 5_000);
    assert_eq!(result.records_read_by_sources(), received.len() as u64);
    assert_eq!(result.records_at_sinks(), received.len() as u64);
    assert_eq!(
        result.operator("Endless").unwrap().records_out,
        received.len() as u64
    );
    assert_eq!(
        sink.finished.load(Ordering::SeqCst),
        2,
        "every writer finished"
    );
    let async_op = result.operator("Async Function").unwrap();
    assert_eq!(async_op.custom("queued"), Some(0));
    assert_eq!(async_op.custom("in_flight"), Some(0));
    assert_prefixes(received, 2);
    // The live view agrees with the result.
    let live = observer.operator_metrics();
    assert_eq!(live, result.operators);
}

#[test]
fn stop_drains_the_five_stage_pipeline_including_the_gateway_queue() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1);
    let mut config = PipelineConfig::default();
    // Slow admission: the gateway's queue fills and holds records when the stop comes.
    config.gateway.max_requests_per_second = 20_000.0;
    config.gateway.queue_size = 500;
    let pipeline = FiveStagePipeline::<u64, u64>::builder()
        .config(config)
        .key(|x| format!("k{}", x % 13))
        .call(|x: u64| async move { Ok::<u64, AsyncFailure>(x) })
        .destination(Delivered)
        .build()
        .unwrap();
    let out = env
        .from_source(SequenceSource::unbounded(), "Endless")
        .apply_pipeline(&pipeline);
    let delivered = out.delivered.collect_vec();
    let dead = out.dead_letters.collect_vec();
    let undelivered = out.undelivered.collect_vec();
    let client = env.execute_async("pipeline stop").unwrap();
    let observer = client.observer();
    let queued = move || {
        observer
            .operator_metrics()
            .iter()
            .filter_map(|o| o.custom("queued"))
            .sum::<u64>()
    };
    until("records waiting in the gateway's queue", || queued() >= 100);
    client.stop();
    let result = wait_guarded(client).expect("a stopped job ends successfully");

    assert!(result.stopped);
    let report = PipelineReport::new(&result.operators);
    assert!(report.accounted(), "{report}");
    assert_eq!(report.received(), result.records_read_by_sources());
    let delivered = delivered.take();
    assert_eq!(delivered.len() as u64, report.delivered());
    assert_eq!(dead.take().len() + undelivered.take().len(), 0);
    assert_eq!(delivered.len() as u64, result.records_read_by_sources());
    assert_prefixes(delivered.into_iter().map(|e| e.payload).collect(), 1);
}

/// Acknowledges every record.
#[derive(Clone)]
struct Delivered;

impl AckDestination<u64> for Delivered {
    fn send(&self, _: u64) -> BoxFuture<'static, Result<(), DeliveryError>> {
        Box::pin(async { Ok(()) })
    }
}

/// A sink whose every write waits for an answer that never comes, through the
/// runtime's cancellable wait.
struct NeverAnswers {
    writes_started: Arc<AtomicU64>,
}

impl Sink<u64> for NeverAnswers {
    fn create_writer(&self, ctx: &RuntimeContext) -> Box<dyn SinkWriter<u64>> {
        Box::new(NeverAnswersWriter {
            services: ctx.services.clone(),
            writes_started: self.writes_started.clone(),
        })
    }
}

struct NeverAnswersWriter {
    services: RuntimeServices,
    writes_started: Arc<AtomicU64>,
}

impl SinkWriter<u64> for NeverAnswersWriter {
    fn write(&mut self, _: u64) -> Result<(), SinkError> {
        self.writes_started.fetch_add(1, Ordering::SeqCst);
        self.services.block_on_in_task(std::future::pending::<()>());
        Ok(())
    }
}

#[test]
fn cancel_ends_a_job_whose_sink_never_answers_and_counts_what_it_abandoned() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1);
    let writes_started = Arc::new(AtomicU64::new(0));
    env.from_source(SequenceSource::unbounded(), "Endless")
        .map(|x: u64| x + 1)
        .sink_to(NeverAnswers {
            writes_started: writes_started.clone(),
        })
        .disable_chaining();
    let client = env.execute_async("sink never answers").unwrap();
    let observer = client.observer();
    until("the sink waiting on its first write", || {
        writes_started.load(Ordering::SeqCst) == 1
    });
    // Let back pressure fill the buffers between the map and the sink.
    let map_out = || {
        observer
            .operator_metrics()
            .iter()
            .find(|o| o.name == "Map")
            .unwrap()
            .records_out
    };
    until("the map blocked by back pressure", || {
        let before = map_out();
        std::thread::sleep(Duration::from_millis(20));
        before > 0 && map_out() == before
    });
    client.cancel();
    let err = wait_guarded(client).unwrap_err();
    let JobError::Cancelled { abandoned } = err else {
        panic!("expected a cancellation, got {err}");
    };
    let ops = observer.operator_metrics();
    let get = |name: &str| ops.iter().find(|o| o.name == name).unwrap().clone();
    let (source, map, sink) = (get("Endless"), get("Map"), get("Sink"));
    assert_eq!(
        source.records_out, map.records_in,
        "chained: nothing between"
    );
    // The sink received the records of one batch and was writing the first.
    assert_eq!(
        abandoned.between_operators,
        map.records_out - sink.records_in
    );
    assert!(abandoned.between_operators > 0);
    assert_eq!(abandoned.inside_operators, 0);
    assert_eq!(writes_started.load(Ordering::SeqCst), 1);
    assert!(err_text_names_the_count(&abandoned));
}

fn err_text_names_the_count(abandoned: &AbandonedRecords) -> bool {
    JobError::Cancelled {
        abandoned: *abandoned,
    }
    .to_string()
    .contains(&format!("{} record(s) abandoned", abandoned.total()))
}

#[test]
fn cancel_counts_records_held_by_an_async_operator() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1);
    let sink = PacedSink::default();
    env.from_source(SequenceSource::unbounded(), "Endless")
        .disable_chaining()
        .async_function(
            // Record 100 and later never get an answer.
            |x: u64| async move {
                if x >= 100 {
                    std::future::pending::<()>().await;
                }
                Ok::<u64, AsyncFailure>(x)
            },
            AsyncOptions::new()
                .ordered(false)
                .capacity(16)
                .timeout(Duration::from_secs(3600)),
        )
        .sink_to(sink.clone());
    let client = env.execute_async("async holds records").unwrap();
    let observer = client.observer();
    let async_op = || {
        observer
            .operator_metrics()
            .into_iter()
            .find(|o| o.name == "Async Function")
            .unwrap()
    };
    until("every slot taken by a call that never ends", || {
        async_op().custom("in_flight") == Some(16)
    });
    until("the first 100 records at the sink", || {
        sink.count.load(Ordering::SeqCst) == 100
    });
    client.cancel();
    let JobError::Cancelled { abandoned } = wait_guarded(client).unwrap_err() else {
        panic!("expected a cancellation");
    };
    let ops = observer.operator_metrics();
    let get = |name: &str| ops.iter().find(|o| o.name == name).unwrap().clone();
    let (source, op, sink_ops) = (get("Endless"), get("Async Function"), get("Sink"));
    // Held inside: the 16 calls plus the rest of the input batch waiting for a slot.
    assert_eq!(abandoned.inside_operators, op.records_in - op.records_out);
    assert!(abandoned.inside_operators >= 16);
    assert_eq!(
        abandoned.between_operators,
        source.records_out - op.records_in
    );
    assert_eq!(op.records_out, sink_ops.records_in);
    assert_eq!(sink_ops.records_in, 100);
    // Every record the source emitted is at the sink or abandoned.
    assert_eq!(
        source.records_out,
        sink_ops.records_in + abandoned.total(),
        "{abandoned}"
    );
}

/// A bounded source that registers an end-of-job action checking that the sink had
/// finished when it ran.
struct WithHook {
    sink_finished: Arc<AtomicU64>,
    hook_ran: Arc<AtomicBool>,
    hook_saw_finished_sinks: Arc<AtomicU64>,
    bounded: bool,
}

impl Source<u64> for WithHook {
    fn boundedness(&self) -> Boundedness {
        if self.bounded {
            Boundedness::Bounded
        } else {
            Boundedness::Unbounded
        }
    }

    fn create_reader(&self, ctx: &RuntimeContext) -> Box<dyn SourceReader<u64>> {
        let (finished, ran, saw) = (
            self.sink_finished.clone(),
            self.hook_ran.clone(),
            self.hook_saw_finished_sinks.clone(),
        );
        ctx.services.on_job_finished.register(Box::new(move || {
            saw.store(finished.load(Ordering::SeqCst), Ordering::SeqCst);
            ran.store(true, Ordering::SeqCst);
        }));
        if self.bounded {
            SequenceSource::range(1, 10_000).create_reader(ctx)
        } else {
            SequenceSource::unbounded().create_reader(ctx)
        }
    }

    fn is_parallel(&self) -> bool {
        false
    }
}

fn hooked_job(bounded: bool) -> (JobClient, WithHook, PacedSink) {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let sink = PacedSink::default();
    let source = WithHook {
        sink_finished: sink.finished.clone(),
        hook_ran: Arc::default(),
        hook_saw_finished_sinks: Arc::default(),
        bounded,
    };
    let view = WithHook {
        sink_finished: source.sink_finished.clone(),
        hook_ran: source.hook_ran.clone(),
        hook_saw_finished_sinks: source.hook_saw_finished_sinks.clone(),
        bounded,
    };
    env.from_source(source, "Hooked")
        .rebalance()
        .sink_to(sink.clone());
    (env.execute_async("hooked").unwrap(), view, sink)
}

#[test]
fn end_of_job_actions_run_after_every_task_finished_and_only_then() {
    // Bounded end: runs, after both sink writers finished.
    let (client, view, _) = hooked_job(true);
    wait_guarded(client).unwrap();
    assert!(view.hook_ran.load(Ordering::SeqCst));
    assert_eq!(view.hook_saw_finished_sinks.load(Ordering::SeqCst), 2);

    // Stopped: runs too.
    let (client, view, sink) = hooked_job(false);
    until("records at the sink", || {
        sink.count.load(Ordering::SeqCst) > 100
    });
    client.stop();
    assert!(wait_guarded(client).unwrap().stopped);
    assert_eq!(view.hook_saw_finished_sinks.load(Ordering::SeqCst), 2);

    // Cancelled: never runs.
    let (client, view, sink) = hooked_job(false);
    until("records at the sink", || {
        sink.count.load(Ordering::SeqCst) > 100
    });
    client.cancel();
    assert!(matches!(
        wait_guarded(client),
        Err(JobError::Cancelled { .. })
    ));
    assert!(!view.hook_ran.load(Ordering::SeqCst));
}
