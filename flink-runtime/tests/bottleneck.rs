//! The bottleneck `JobClient` names: in jobs limited by a slow map in the middle, a
//! slow sink, a slow async call, and by their source, the verdict, once stable, names
//! the right task and operator (or says that no task is the bottleneck).

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use common::paced::PacedSink;
use flink_core::async_io::{AsyncFailure, AsyncOptions};
use flink_runtime::precise_timer::precise_sleep;
use flink_runtime::prelude::*;

/// Guard against a hang only: the verdicts settle within a few windows.
const GUARD: Duration = Duration::from_secs(60);
/// Consecutive windows that must agree before a verdict counts as settled.
const STABLE: usize = 3;

/// What identifies a verdict across windows: its kind, the task and the operator
/// it names.
fn identity(v: &BottleneckVerdict) -> String {
    match v {
        BottleneckVerdict::Task(b) => format!(
            "task {} / {}",
            b.task,
            b.hottest_operator().map_or("-", |o| o.name.as_str())
        ),
        BottleneckVerdict::SourceBound { sources } => format!("source-bound {sources:?}"),
        other => format!("{other:?}"),
    }
}

/// Asks once per window until [`STABLE`] windows in a row give the same verdict.
fn settled(client: &JobClient) -> BottleneckVerdict {
    let started = Instant::now();
    let mut last = String::new();
    let mut same = 0;
    loop {
        assert!(
            started.elapsed() < GUARD,
            "the verdict did not settle; last: {last}"
        );
        let verdict = client.bottleneck();
        let id = identity(&verdict);
        if verdict == BottleneckVerdict::Measuring || id != last {
            same = 1;
        } else {
            same += 1;
        }
        last = id;
        if same >= STABLE && verdict != BottleneckVerdict::Measuring {
            eprintln!("settled: {verdict}");
            return verdict;
        }
        std::thread::sleep(Duration::from_millis(1_050));
    }
}

/// Stops the job with a drain and checks that every record read reached the sink.
fn stop_exactly(client: JobClient, written: &AtomicU64) {
    client.stop();
    let result = client.wait().expect("a stopped job ends successfully");
    assert!(result.stopped);
    assert_eq!(
        written.load(std::sync::atomic::Ordering::SeqCst),
        result.records_read_by_sources()
    );
}

fn sink(pause: Duration) -> (PacedSink, Arc<AtomicU64>) {
    let written = Arc::new(AtomicU64::new(0));
    (
        PacedSink {
            pause,
            written: written.clone(),
        },
        written,
    )
}

fn env() -> StreamExecutionEnvironment {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1);
    env.set_buffer_size(64);
    env
}

fn assert_named(verdict: &BottleneckVerdict, task: &str, operator: &str, holds_back: &str) {
    let b = verdict
        .task()
        .unwrap_or_else(|| panic!("expected {task} as the bottleneck, got: {verdict}"));
    assert!(b.task.contains(task), "{verdict}");
    assert_eq!(b.hottest_operator().unwrap().name, operator, "{verdict}");
    assert!(
        b.held_back.iter().any(|u| u.contains(holds_back)),
        "{verdict}"
    );
    assert!(b.busy_ms_per_s >= 500.0, "{verdict}");
    assert!(b.records_in_per_s > 0.0, "{verdict}");
}

#[test]
fn a_slow_map_in_the_middle_is_the_bottleneck() {
    let env = env();
    let (sink, written) = sink(Duration::ZERO);
    env.from_sequence(1, 100_000_000)
        .rebalance()
        .map(|x: u64| {
            std::thread::sleep(Duration::from_millis(1));
            x
        })
        .name("Slow Map")
        .rebalance()
        .sink_to(sink)
        .name("Fast Sink");
    let client = env.execute_async("slow map").unwrap();
    let verdict = settled(&client);
    assert_named(&verdict, "Slow Map", "Slow Map", "Sequence Source");
    assert!(verdict.to_string().starts_with("bottleneck: Slow Map"));
    stop_exactly(client, &written);
}

#[test]
fn a_slow_sink_is_the_bottleneck() {
    let env = env();
    let (sink, written) = sink(Duration::from_millis(1));
    env.from_sequence(1, 100_000_000)
        .map(|x: u64| x + 1)
        .name("Cheap Map")
        .rebalance()
        .sink_to(sink)
        .name("Slow Sink");
    let client = env.execute_async("slow sink").unwrap();
    let verdict = settled(&client);
    assert_named(&verdict, "Slow Sink", "Slow Sink", "Sequence Source");
    stop_exactly(client, &written);
}

#[test]
fn a_slow_async_call_is_the_bottleneck() {
    let env = env();
    let (sink, written) = sink(Duration::ZERO);
    env.from_sequence(1, 100_000_000)
        .rebalance()
        .async_function(
            |x: u64| async move {
                precise_sleep(Duration::from_millis(2)).await;
                Ok::<u64, AsyncFailure>(x)
            },
            AsyncOptions::new()
                .capacity(2)
                .timeout(Duration::from_secs(3600)),
        )
        .name("Slow Lookup")
        .rebalance()
        .sink_to(sink)
        .name("Fast Sink");
    let client = env.execute_async("slow async").unwrap();
    let verdict = settled(&client);
    assert_named(&verdict, "Slow Lookup", "Slow Lookup", "Sequence Source");
    stop_exactly(client, &written);
}

#[test]
fn a_slow_source_means_no_task_is_the_bottleneck() {
    let env = env();
    let (sink, written) = sink(Duration::ZERO);
    env.from_generator(Some(100_000_000), |i| {
        // Reading is what takes the time: the source is the limit.
        std::thread::sleep(Duration::from_micros(200));
        i
    })
    .rebalance()
    .map(|x: u64| x * 2)
    .name("Cheap Map")
    .sink_to(sink)
    .name("Fast Sink");
    let client = env.execute_async("slow source").unwrap();
    let verdict = settled(&client);
    assert_eq!(
        verdict,
        BottleneckVerdict::SourceBound {
            sources: vec!["Generator Source".into()]
        },
        "{verdict}"
    );
    assert!(verdict.to_string().contains("source-bound"));
    stop_exactly(client, &written);
}

#[test]
fn inside_a_chain_the_slow_operator_is_the_one_named() {
    let env = env();
    let (sink, written) = sink(Duration::ZERO);
    env.from_sequence(1, 100_000_000)
        .rebalance()
        .map(|x: u64| x + 1)
        .name("Parse")
        .map(|x: u64| {
            std::thread::sleep(Duration::from_millis(1));
            x
        })
        .name("Enrich")
        .map(|x: u64| x * 2)
        .name("Format")
        .sink_to(sink)
        .name("Fast Sink");
    let client = env.execute_async("slow chain link").unwrap();
    let verdict = settled(&client);
    assert_named(&verdict, "Enrich", "Enrich", "Sequence Source");
    let b = verdict.task().unwrap();
    // One task runs the whole chain; the sleeping link takes nearly all its time.
    assert_eq!(b.operators.len(), 4, "{verdict}");
    assert!(b.operators[0].share > 0.8, "{:?}", b.operators);
    stop_exactly(client, &written);
}
