//! The harness's event-time jobs: `window` (the Flink reference's shape) and the
//! Nexmark queries q5 and q7, each with a plain single-threaded loop over the same
//! input as the reference for its rate and its result.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use flink_connectors::nexmark::{Event, EventGenerator, NexmarkConfig, NexmarkSource};
use flink_core::datastream::DataStream;
use flink_core::environment::StreamExecutionEnvironment;
use flink_core::operator::RuntimeContext;
use flink_core::sink::{Sink, SinkError, SinkWriter};
use flink_core::watermark::WatermarkStrategy;
use flink_core::windows::{
    AggregateFunction, SlidingEventTimeWindows, TimeWindow, TumblingEventTimeWindows,
};

/// Adds up field 1 of the `(key, count)` records it gets and counts them:
/// the window job's check that the window counts add up to N.
#[derive(Clone, Default)]
pub struct SummingSink {
    sum: Arc<AtomicU64>,
    records: Arc<AtomicU64>,
}

impl SummingSink {
    /// The sum of field 1 over every record, once the job ended.
    pub fn sum(&self) -> u64 {
        self.sum.load(Ordering::Relaxed)
    }

    /// How many records (windows) arrived, once the job ended.
    pub fn records(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }
}

impl Sink<WindowRecord> for SummingSink {
    fn create_writer(&self, _: &RuntimeContext) -> Box<dyn SinkWriter<WindowRecord>> {
        Box::new(SummingWriter {
            sink: self.clone(),
            sum: 0,
            records: 0,
        })
    }
}

struct SummingWriter {
    sink: SummingSink,
    sum: u64,
    records: u64,
}

impl SinkWriter<WindowRecord> for SummingWriter {
    fn write(&mut self, record: WindowRecord) -> Result<(), SinkError> {
        self.sum += record.1;
        self.records += 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.sink.sum.fetch_add(self.sum, Ordering::Relaxed);
        self.sink.records.fetch_add(self.records, Ordering::Relaxed);
        Ok(())
    }
}

/// A record of the `window` job: (key, count).
pub type WindowRecord = (u64, u64);

/// The Flink reference's `window` job: sequence 1..=n (p=1) -> event time x / 10
/// ms with monotonous watermarks (p=1) -> map to `(x % 100, 1)` (p=1; the record
/// keeps its timestamp) -> key_by -> tumbling 1 s event-time windows ->
/// reduce(sum) at p=2 -> a summing sink. As in Flink, records on the wire are the
/// 16-byte pair plus their 8-byte timestamp.
pub fn window_job(env: &StreamExecutionEnvironment, n: u64) -> SummingSink {
    env.set_parallelism(2);
    let sink = SummingSink::default();
    env.from_sequence(1, n)
        .set_parallelism(1)
        .assign_timestamps_and_watermarks(WatermarkStrategy::<u64>::monotonous(|x| (x / 10) as i64))
        .set_parallelism(1)
        .map(|x| (x % 100, 1u64))
        .set_parallelism(1)
        .key_by(|r| r.0)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
        .reduce(|a, b| (a.0, a.1 + b.1))
        .sink_to(sink.clone());
    sink
}

/// The number of windows the `window` job emits for `n`: one per key and second
/// that has records (second `s` holds `x` in `s * 10,000 ..= s * 10,000 + 9,999`).
pub fn window_job_windows(n: u64) -> u64 {
    (0..=n / 10_000)
        .map(|s| {
            let (lo, hi) = ((s * 10_000).max(1), (s * 10_000 + 9_999).min(n));
            if hi >= lo { (hi - lo + 1).min(100) } else { 0 }
        })
        .sum()
}

/// Repeatable Nexmark events at the generator's default rate (10,000 per second
/// of event time).
pub fn nexmark_config() -> NexmarkConfig {
    NexmarkConfig {
        base_time: 1_700_000_000_000,
        ..NexmarkConfig::default()
    }
}

/// A bid as the queries need it: (auction, price, time ms).
pub type Bid = (u64, u64, i64);

fn bid_of(event: &Event) -> Option<Bid> {
    match event {
        Event::Bid(b) => Some((b.auction as u64, b.price as u64, b.date_time as i64)),
        _ => None,
    }
}

/// The bids of the first `events` events, read by `p` parallel readers, with
/// monotonous watermarks per reader.
fn bids(env: &StreamExecutionEnvironment, events: u64) -> DataStream<Bid> {
    env.from_source(NexmarkSource::new(nexmark_config(), events), "Nexmark")
        .flat_map_iter(|e| bid_of(&e))
        .assign_timestamps_and_watermarks(WatermarkStrategy::<Bid>::monotonous(|b| b.2))
}

/// Counts records.
#[derive(Clone)]
struct Count;

impl AggregateFunction<Bid, u64> for Count {
    type Acc = u64;

    fn create_accumulator(&self) -> u64 {
        0
    }

    fn add(&self, _: Bid, acc: &mut u64) {
        *acc += 1;
    }

    fn get_result(&self, acc: &u64) -> u64 {
        *acc
    }

    fn can_merge(&self) -> bool {
        true
    }

    fn merge(&self, acc: &mut u64, other: u64) {
        *acc += other;
    }
}

/// Nexmark q5 (hot items) over `events` events at parallelism `p`: bids per
/// auction in 10 s windows sliding by 2 s, then per window the auctions with the
/// most bids; the results go to `out`.
pub fn nexmark_q5(env: &StreamExecutionEnvironment, events: u64, out: impl Sink<(i64, u64, u64)>) {
    bids(env, events)
        .key_by(|b| b.0)
        .window(SlidingEventTimeWindows::of(
            Duration::from_secs(10),
            Duration::from_secs(2),
        ))
        .aggregate_process(Count, |auction, w, n, out| {
            out.collect((*auction, w.end, n))
        })
        // A window's counts carry its last millisecond as their time.
        .key_by(|r| r.1)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(2)))
        .process(|end, _, counts, out| {
            let max = counts.iter().map(|c| c.2).max().unwrap_or(0);
            for c in counts.iter().filter(|c| c.2 == max) {
                out.collect((*end, c.0, c.2));
            }
        })
        .sink_to(out);
}

/// Nexmark q7 (highest bid) over `events` events: per 10 s tumbling window, the
/// bids at its highest price, as (window end, auction, price, time).
pub fn nexmark_q7(
    env: &StreamExecutionEnvironment,
    events: u64,
    out: impl Sink<(i64, u64, u64, i64)>,
) {
    bids(env, events)
        .key_by(|b| b.2.div_euclid(10_000))
        .window(TumblingEventTimeWindows::of(Duration::from_secs(10)))
        .process(|_, w, bids, out| {
            let max = bids.iter().map(|b| b.1).max().unwrap_or(0);
            for b in bids.iter().filter(|b| b.1 == max) {
                out.collect((w.end, b.0, b.1, b.2));
            }
        })
        .sink_to(out);
}

/// q5 as a plain loop over the generator: how many (window, auction) results.
pub fn q5_reference_loop(events: u64) -> u64 {
    let mut counts: HashMap<(i64, u64), u64> = HashMap::new();
    for event in EventGenerator::new(nexmark_config()).take(events as usize) {
        if let Some(b) = bid_of(&event) {
            let mut start = TimeWindow::start_with_offset(b.2, 0, 2_000);
            while start > b.2 - 10_000 {
                *counts.entry((start + 10_000, b.0)).or_default() += 1;
                start -= 2_000;
            }
        }
    }
    let mut max: HashMap<i64, u64> = HashMap::new();
    for ((end, _), n) in &counts {
        let m = max.entry(*end).or_default();
        *m = (*m).max(*n);
    }
    counts
        .iter()
        .filter(|((end, _), n)| max[end] == **n)
        .count() as u64
}

/// q7 as a plain loop over the generator: how many highest bids.
pub fn q7_reference_loop(events: u64) -> u64 {
    // Per window: the highest price and how many bids have it.
    let mut highest: HashMap<i64, (u64, u64)> = HashMap::new();
    for event in EventGenerator::new(nexmark_config()).take(events as usize) {
        if let Some(b) = bid_of(&event) {
            let entry = highest.entry(b.2.div_euclid(10_000)).or_insert((b.1, 0));
            if b.1 > entry.0 {
                *entry = (b.1, 0);
            }
            if b.1 == entry.0 {
                entry.1 += 1;
            }
        }
    }
    highest.values().map(|(_, n)| n).sum()
}
