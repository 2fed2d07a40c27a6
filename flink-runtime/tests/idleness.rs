//! `WatermarkStrategy::with_idleness` end to end on the manual clock: a keyed
//! event-time window job at parallelism 2 whose second source instance never gets a
//! record fires its windows once that instance goes idle, and holds them without
//! idleness (its channel's watermark stays at the minimum) until the job stops.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flink_core::clock::ManualClock;
use flink_core::operator::RuntimeContext;
use flink_core::sink::{Sink, SinkError, SinkWriter};
use flink_core::source::{Boundedness, Source, SourceOutput, SourcePoll, SourceReader};
use flink_core::watermark::WatermarkStrategy;
use flink_core::windows::{TimeWindow, TumblingEventTimeWindows};
use flink_runtime::prelude::*;

/// Records 0..N, event time = value in ms, all read by source instance 0.
const N: u64 = 100;
const WINDOW_MS: u64 = 10;
/// A guard against a hang, never a timing assertion.
const GUARD: Duration = Duration::from_secs(30);

/// Unbounded: instance 0 emits 0..N once, then nothing; every other instance
/// never emits anything. Both run until the job stops.
struct SkewedSource;

struct SkewedReader {
    pending: Vec<u64>,
}

impl Source<u64> for SkewedSource {
    fn boundedness(&self) -> Boundedness {
        Boundedness::Unbounded
    }

    fn create_reader(&self, ctx: &RuntimeContext) -> Box<dyn SourceReader<u64>> {
        let pending = if ctx.subtask_index == 0 {
            (0..N).collect()
        } else {
            Vec::new()
        };
        Box::new(SkewedReader { pending })
    }
}

impl SourceReader<u64> for SkewedReader {
    fn poll_next(&mut self, out: &mut SourceOutput<u64>) -> SourcePoll {
        if self.pending.is_empty() {
            return SourcePoll::Pending(Duration::from_millis(1));
        }
        for x in self.pending.drain(..) {
            out.collect(x);
        }
        SourcePoll::MoreAvailable
    }
}

/// A window result: (key, window end, records in the window).
type Count = (u64, i64, usize);

/// Makes each record visible at once (the collect sink publishes at the end).
#[derive(Clone, Default)]
struct SharedSink(Arc<Mutex<Vec<Count>>>);

impl SharedSink {
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    fn take_sorted(&self) -> Vec<Count> {
        let mut v = std::mem::take(&mut *self.0.lock().unwrap());
        v.sort();
        v
    }
}

impl Sink<Count> for SharedSink {
    fn create_writer(&self, _ctx: &RuntimeContext) -> Box<dyn SinkWriter<Count>> {
        Box::new(self.clone())
    }
}

impl SinkWriter<Count> for SharedSink {
    fn write(&mut self, record: Count) -> Result<(), SinkError> {
        self.0.lock().unwrap().push(record);
        Ok(())
    }
}

/// (key, window end, records in the window) of every window of 0..N whose end is
/// at most `last_end`.
fn reference(last_end: u64) -> Vec<Count> {
    let mut out: Vec<Count> = (0..N)
        .map(|x| (x % 2, ((x / WINDOW_MS + 1) * WINDOW_MS) as i64))
        .filter(|(_, end)| *end <= last_end as i64)
        .fold(Vec::new(), |mut acc, (key, end)| {
            match acc.iter_mut().find(|(k, e, _)| *k == key && *e == end) {
                Some(entry) => entry.2 += 1,
                None => acc.push((key, end, 1)),
            }
            acc
        });
    out.sort();
    out
}

/// Runs the job; `steps` times advances the clock by one auto-watermark interval
/// (200 ms) and stops early once `until` results arrived. Returns the results seen
/// before the stop, then all of them.
fn run(idleness: Option<Duration>, until: usize, steps: u32) -> (Vec<Count>, Vec<Count>) {
    let clock = ManualClock::new();
    let env = StreamExecutionEnvironment::new();
    env.set_clock(Arc::new(clock.clone()));
    env.set_parallelism(2);
    env.set_buffer_timeout(Some(Duration::ZERO));
    let mut strategy =
        WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(|x: &u64| *x as i64);
    if let Some(timeout) = idleness {
        strategy = strategy.with_idleness(timeout);
    }
    let results = SharedSink::default();
    env.from_source(SkewedSource, "Skewed Source")
        .assign_timestamps_and_watermarks(strategy)
        .key_by(|x: &u64| x % 2)
        .window(TumblingEventTimeWindows::of(Duration::from_millis(
            WINDOW_MS,
        )))
        .process(
            |key: &u64, w: &TimeWindow, xs: &[u64], out: &mut dyn Collector<(u64, i64, usize)>| {
                out.collect((*key, w.end, xs.len()))
            },
        )
        .sink_to(results.clone());
    let client = env.execute_async("idleness").unwrap();
    let started = Instant::now();
    for _ in 0..steps {
        if results.len() >= until || started.elapsed() > GUARD {
            break;
        }
        clock.advance(Duration::from_millis(200));
        // Lets the tasks' idle polls see the new time.
        std::thread::sleep(Duration::from_millis(20));
    }
    let before_stop = results.take_sorted();
    client.stop();
    client.wait().unwrap();
    let mut all = before_stop.clone();
    all.extend(results.take_sorted());
    all.sort();
    (before_stop, all)
}

#[test]
fn an_idle_source_instance_does_not_hold_back_the_windows_of_the_active_one() {
    // The watermark of instance 0 ends at 98: windows ending at or before 90 fire.
    let expected = reference(90);
    assert_eq!(expected.len(), 18);
    let (before_stop, all) = run(Some(Duration::from_secs(1)), expected.len(), 1_000);
    assert_eq!(before_stop, expected, "fired while the job ran");
    // Stopping ends the input (watermark MAX): the last window fires, once.
    assert_eq!(all, reference(N));
}

#[test]
fn without_idleness_a_source_instance_without_records_holds_the_watermark() {
    // 50 intervals are 10 s of the job's clock, ten times the idleness timeout above.
    let (before_stop, all) = run(None, 1, 50);
    assert_eq!(
        before_stop,
        [],
        "no window fires while instance 1 holds the watermark"
    );
    assert_eq!(all, reference(N), "every window fires when the job stops");
}

#[test]
fn an_idleness_timeout_of_zero_is_a_typed_error_when_the_job_is_built() {
    let env = StreamExecutionEnvironment::new();
    env.from_sequence(1, 10)
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::monotonous(|x: &u64| *x as i64).with_idleness(Duration::ZERO),
        )
        .collect_vec();
    match env.execute("zero idleness") {
        Err(JobError::Graph(GraphError::InvalidWatermarkStrategy { operator, reason })) => {
            assert_eq!(operator, "Timestamps/Watermarks");
            assert!(reason.contains("idleness"), "{reason}");
        }
        other => panic!("expected InvalidWatermarkStrategy, got {other:?}"),
    }
}
