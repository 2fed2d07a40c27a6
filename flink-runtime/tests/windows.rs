//! Event-time windows and timers end to end, against references computed here by
//! plain loops: bids per auction in tumbling windows at parallelism 1, 2 and 4,
//! out-of-order input with late records to a side output, a keyed process function
//! with event-time timers, and windows across injected failures and restarts from
//! checkpoints (exactly the failure-free output).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flink_core::sources::{RateLimiterStrategy, SequenceSource};
use flink_core::watermark::{Watermark, WatermarkGenerator, WatermarkOutput, WatermarkStrategy};
use flink_core::windows::{
    AggregateFunction, SlidingEventTimeWindows, TimeWindow, TumblingEventTimeWindows, WindowError,
};
use flink_runtime::prelude::*;

/// A bid: (auction, price, event time in ms).
type Bid = (u64, u64, i64);

const WINDOW_MS: i64 = 10_000;

/// `n` bids, one every 5 ms of event time, each up to `max_delay_ms` earlier than
/// its slot (so out of order by up to that much), on 50 auctions (xorshift64*).
fn bids(n: u64, max_delay_ms: u64) -> Vec<Bid> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    (0..n)
        .map(|i| {
            let delay = next() % (max_delay_ms + 1);
            let ts = (i * 5) as i64 - delay as i64;
            (next() % 50, next() % 1_000, ts)
        })
        .collect()
}

fn window_end(ts: i64) -> i64 {
    TimeWindow::start_with_offset(ts, 0, WINDOW_MS) + WINDOW_MS
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort_unstable();
    v
}

/// Counts the bids of one auction and window; remembers the auction.
#[derive(Clone)]
struct CountBids;

impl AggregateFunction<Bid, (u64, u64)> for CountBids {
    type Acc = (u64, u64);

    fn create_accumulator(&self) -> (u64, u64) {
        (0, 0)
    }

    fn add(&self, bid: Bid, acc: &mut (u64, u64)) {
        *acc = (bid.0, acc.1 + 1);
    }

    fn get_result(&self, acc: &(u64, u64)) -> (u64, u64) {
        *acc
    }
}

/// Bids per auction and 10 s window, with window ends (process) and without
/// (aggregate), for parallelism `p`; `interval` is the auto-watermark interval.
fn bids_per_auction(p: usize, interval: Duration) {
    let input = bids(20_000, 3_000);
    let mut reference: HashMap<(u64, i64), u64> = HashMap::new();
    for bid in &input {
        *reference.entry((bid.0, window_end(bid.2))).or_default() += 1;
    }
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(p);
    env.set_auto_watermark_interval(interval);
    let windowed = env
        .from_collection(input)
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_secs(3))
                .with_timestamp_assigner(|b: &Bid| b.2),
        )
        .key_by(|b: &Bid| b.0)
        .window(TumblingEventTimeWindows::of(Duration::from_millis(
            WINDOW_MS as u64,
        )));
    let with_ends = windowed
        .process(
            |auction: &u64,
             w: &TimeWindow,
             bids: &[Bid],
             out: &mut dyn Collector<(u64, i64, u64)>| {
                out.collect((*auction, w.end, bids.len() as u64))
            },
        )
        .collect_vec();
    let counts = windowed.aggregate(CountBids).collect_vec();
    env.execute("bids per auction").unwrap();
    let expected: Vec<(u64, i64, u64)> = reference.iter().map(|(k, n)| (k.0, k.1, *n)).collect();
    assert_eq!(
        sorted(with_ends.take()),
        sorted(expected),
        "process at p={p}"
    );
    let expected_counts: Vec<(u64, u64)> = reference.iter().map(|(k, n)| (k.0, *n)).collect();
    assert_eq!(
        sorted(counts.take()),
        sorted(expected_counts),
        "aggregate at p={p}"
    );
}

#[test]
fn bids_per_auction_in_tumbling_windows_exact_at_parallelism_1_2_4() {
    for p in [1, 2, 4] {
        bids_per_auction(p, Duration::from_millis(200));
    }
    // Watermarks after every batch: windows fire while the input still runs.
    bids_per_auction(2, Duration::ZERO);
}

/// A punctuated bounded-out-of-orderness generator (bound in ms): the watermark
/// moves with every record, so which records are late does not depend on batching
/// or timing.
struct EveryRecord(i64);

impl WatermarkGenerator<Bid> for EveryRecord {
    fn on_event(&mut self, _: &Bid, ts: i64, out: &mut WatermarkOutput) {
        out.emit_watermark(Watermark(ts - self.0 - 1));
    }

    fn on_periodic_emit(&mut self, _: &mut WatermarkOutput) {}
}

#[test]
fn records_later_than_the_watermark_go_to_the_side_output_exactly() {
    // Up to 3 s out of order, watermarks only 1 s behind: some bids are late.
    let input = bids(20_000, 3_000);
    let (mut on_time, mut late) = (HashMap::<(u64, i64), u64>::new(), Vec::new());
    let mut watermark = i64::MIN;
    for bid in &input {
        if window_end(bid.2) - 1 <= watermark {
            late.push(*bid);
        } else {
            *on_time.entry((bid.0, window_end(bid.2))).or_default() += 1;
        }
        watermark = watermark.max(bid.2 - 1_001);
    }
    assert!(late.len() > 100, "the input has late bids: {}", late.len());
    for p in [1, 3] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        let tag = OutputTag::<Bid>::new("late bids");
        let counts = env
            .from_collection(input.clone())
            // One reader and one generator see every bid in order, as the reference.
            .set_parallelism(1)
            .assign_timestamps_and_watermarks(
                WatermarkStrategy::for_generator(|| EveryRecord(1_000))
                    .with_timestamp_assigner(|b: &Bid| b.2),
            )
            .set_parallelism(1)
            .key_by(|b: &Bid| b.0)
            .window(TumblingEventTimeWindows::of(Duration::from_millis(
                WINDOW_MS as u64,
            )))
            .side_output_late_data(&tag)
            .process(
                |auction: &u64,
                 w: &TimeWindow,
                 bids: &[Bid],
                 out: &mut dyn Collector<(u64, i64, u64)>| {
                    out.collect((*auction, w.end, bids.len() as u64))
                },
            );
        let late_seen = counts.side_output(&tag).collect_vec();
        let counts = counts.collect_vec();
        env.execute("late bids").unwrap();
        let expected: Vec<(u64, i64, u64)> = on_time.iter().map(|(k, n)| (k.0, k.1, *n)).collect();
        assert_eq!(sorted(counts.take()), sorted(expected.clone()), "p={p}");
        assert_eq!(sorted(late_seen.take()), sorted(late.clone()), "p={p}");
    }
}

#[test]
fn invalid_windows_are_typed_errors_when_the_job_is_built() {
    let env = StreamExecutionEnvironment::new();
    env.from_sequence(1, 10)
        .assign_timestamps_and_watermarks(WatermarkStrategy::monotonous(|x: &u64| *x as i64))
        .key_by(|x: &u64| x % 2)
        .window(TumblingEventTimeWindows::of(Duration::ZERO))
        .reduce(|a: u64, b: u64| a + b)
        .collect_vec();
    let error = env.execute("zero window").unwrap_err().to_string();
    assert!(
        error.contains(&WindowError::ZeroSize.to_string()),
        "{error}"
    );

    let env = StreamExecutionEnvironment::new();
    env.from_sequence(1, 10)
        .map(|x: u64| x)
        .key_by(|x: &u64| x % 2)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
        .reduce(|a: u64, b: u64| a + b)
        .collect_vec();
    let error = env.execute("no timestamps").unwrap_err().to_string();
    assert!(
        error.contains(&WindowError::NoTimestamps.to_string()),
        "{error}"
    );

    // A slide above the size would leave records in no window. (A negative
    // lateness cannot be written: `allowed_lateness` takes a `Duration`.)
    let env = StreamExecutionEnvironment::new();
    env.from_sequence(1, 10)
        .assign_timestamps_and_watermarks(WatermarkStrategy::monotonous(|x: &u64| *x as i64))
        .key_by(|x: &u64| x % 2)
        .window(SlidingEventTimeWindows::of(
            Duration::from_secs(5),
            Duration::from_secs(10),
        ))
        .reduce(|a: u64, b: u64| a + b)
        .collect_vec();
    let error = env.execute("slide above size").unwrap_err().to_string();
    let slide_above_size = WindowError::SlideLargerThanSize {
        size_ms: 5_000,
        slide_ms: 10_000,
    };
    assert!(error.contains(&slide_above_size.to_string()), "{error}");
}

/// Emits each key's count once the watermark passes 1 s after its first record,
/// then starts over.
#[derive(Clone)]
struct CountPerSecond;

impl KeyedProcessFunction<u64, Bid, (u64, i64, u64)> for CountPerSecond {
    type State = u64;

    fn process_element(&mut self, bid: Bid, ctx: &mut KeyedContext<'_, u64, u64, (u64, i64, u64)>) {
        let count = ctx.state().value().copied().unwrap_or(0);
        if count == 0 {
            let ts = ctx.timestamp().expect("the stream has timestamps");
            assert_eq!(ts, bid.2);
            ctx.timer_service().register_event_time_timer(ts + 1_000);
        }
        ctx.state().update(count + 1);
    }

    fn on_timer(&mut self, ts: i64, ctx: &mut KeyedContext<'_, u64, u64, (u64, i64, u64)>) {
        let key = *ctx.key();
        let count = ctx.state().take().expect("a timer follows a record");
        ctx.collect((key, ts, count));
    }
}

#[test]
fn event_time_timers_fire_in_order_once_the_watermark_passes() {
    // In order: timers are deterministic.
    let input = bids(10_000, 0);
    let mut open: HashMap<u64, (i64, u64)> = HashMap::new();
    let mut expected = Vec::new();
    for bid in &input {
        open.entry(bid.0).or_insert((bid.2 + 1_000, 0)).1 += 1;
        // The watermark after this bid is its time minus one: timers at or
        // below it fire.
        let due: Vec<u64> = open
            .iter()
            .filter(|(_, (at, _))| *at < bid.2)
            .map(|(k, _)| *k)
            .collect();
        for k in due {
            let (at, n) = open.remove(&k).unwrap();
            expected.push((k, at, n));
        }
    }
    expected.extend(open.iter().map(|(k, (at, n))| (*k, *at, *n)));
    for p in [1, 2] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        let out = env
            .from_collection(input.clone())
            .set_parallelism(1)
            .assign_timestamps_and_watermarks(
                WatermarkStrategy::for_generator(|| EveryRecord(0))
                    .with_timestamp_assigner(|b: &Bid| b.2),
            )
            .set_parallelism(1)
            .key_by(|b: &Bid| b.0)
            .process_function(CountPerSecond)
            .collect_vec();
        env.execute("timers").unwrap();
        assert_eq!(sorted(out.take()), sorted(expected.clone()), "p={p}");
    }
}

const RECORDS: u64 = 60_000;

/// sequence (ts = x ms) -> map (panics once at each failure point) -> timestamps ->
/// key_by(x % 7) -> 100 ms tumbling windows counting -> transactional sink.
fn windowed_job(
    p: usize,
    points: HashSet<u64>,
    dir: &std::path::Path,
) -> (
    StreamExecutionEnvironment,
    TransactionalCollectingSink<(u64, i64, u64)>,
) {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(p);
    env.enable_checkpointing(Duration::from_millis(5))
        .set_storage_dir(dir);
    env.set_restart_strategy(RestartStrategy::FixedDelay {
        attempts: 10,
        delay: Duration::ZERO,
    });
    env.set_auto_watermark_interval(Duration::from_millis(1));
    let source = SequenceSource::range(0, RECORDS - 1)
        .rate_limited(RateLimiterStrategy::per_second(300_000.0).unwrap());
    let fired = Arc::new(Mutex::new(HashSet::new()));
    let out = TransactionalCollectingSink::new();
    env.from_source(source, "Sequence")
        .map(move |x: u64| {
            if points.contains(&x) && fired.lock().unwrap().insert(x) {
                panic!("injected failure at record {x}");
            }
            x
        })
        .assign_timestamps_and_watermarks(WatermarkStrategy::monotonous(|x: &u64| *x as i64))
        .key_by(|x: &u64| x % 7)
        .window(TumblingEventTimeWindows::of(Duration::from_millis(100)))
        .process(
            |key: &u64, w: &TimeWindow, xs: &[u64], out: &mut dyn Collector<(u64, i64, u64)>| {
                out.collect((*key, w.end, xs.len() as u64))
            },
        )
        .sink_to(out.clone());
    (env, out)
}

#[test]
fn windows_restarted_from_checkpoints_after_failures_commit_the_failure_free_output() {
    let mut reference: HashMap<(u64, i64), u64> = HashMap::new();
    for x in 0..RECORDS {
        *reference
            .entry((x % 7, (x as i64 / 100 + 1) * 100))
            .or_default() += 1;
    }
    let expected: Vec<(u64, i64, u64)> = reference.iter().map(|(k, n)| (k.0, k.1, *n)).collect();
    let expected = sorted(expected);
    for p in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let points: HashSet<u64> = [7_919, 21_013, 33_331, 47_777, 58_001].into();
        let (env, out) = windowed_job(p, points, dir.path());
        let result = env.execute("windows across failures").unwrap();
        assert!(!result.restarts.is_empty(), "failures were injected");
        let checkpoints = result.checkpoints.expect("checkpointing was on");
        assert!(
            checkpoints.completed >= 1,
            "restores start from checkpoints"
        );
        for restart in &result.restarts {
            assert!(
                restart.cause.contains("injected failure"),
                "{}",
                restart.cause
            );
        }
        assert_eq!(sorted(out.committed()), expected, "p={p}");
    }
}

/// The highest price of one auction and window.
#[derive(Clone)]
struct MaxPrice;

impl AggregateFunction<Bid, u64> for MaxPrice {
    type Acc = u64;

    fn create_accumulator(&self) -> u64 {
        0
    }

    fn add(&self, bid: Bid, acc: &mut u64) {
        *acc = (*acc).max(bid.1);
    }

    fn get_result(&self, acc: &u64) -> u64 {
        *acc
    }
}

#[test]
fn highest_bid_per_window_and_per_auction_and_window_exact_at_parallelism_1_2_4() {
    // Nexmark q7's shape: the highest bid of each 10 s window over all auctions
    // (window_all + reduce; ties go to the earlier bid: the reduce keeps the first
    // of equal prices), and per auction with the window (aggregate_process).
    let input = bids(20_000, 3_000);
    let mut per_window: HashMap<i64, Bid> = HashMap::new();
    let mut per_auction: HashMap<(u64, i64), u64> = HashMap::new();
    for bid in &input {
        let end = window_end(bid.2);
        let best = per_window.entry(end).or_insert(*bid);
        if bid.1 > best.1 {
            *best = *bid;
        }
        let max = per_auction.entry((bid.0, end)).or_default();
        *max = (*max).max(bid.1);
    }
    for p in [1, 2, 4] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        let timed = env
            .from_collection(input.clone())
            // One reader: the order of equal prices is the input's, as the reference.
            .set_parallelism(1)
            .assign_timestamps_and_watermarks(
                WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_secs(3))
                    .with_timestamp_assigner(|b: &Bid| b.2),
            )
            .set_parallelism(1);
        let highest = timed
            .window_all(TumblingEventTimeWindows::of(Duration::from_millis(
                WINDOW_MS as u64,
            )))
            .reduce(|a: Bid, b: Bid| if b.1 > a.1 { b } else { a })
            .collect_vec();
        let by_auction = timed
            .key_by(|b: &Bid| b.0)
            .window(TumblingEventTimeWindows::of(Duration::from_millis(
                WINDOW_MS as u64,
            )))
            .aggregate_process(
                MaxPrice,
                |auction: &u64,
                 w: &TimeWindow,
                 max: u64,
                 out: &mut dyn Collector<(u64, i64, u64)>| {
                    out.collect((*auction, w.end, max))
                },
            )
            .collect_vec();
        env.execute("highest bids").unwrap();
        let expected: Vec<Bid> = per_window.values().copied().collect();
        assert_eq!(
            sorted(highest.take()),
            sorted(expected),
            "window_all at p={p}"
        );
        let expected: Vec<(u64, i64, u64)> =
            per_auction.iter().map(|(k, m)| (k.0, k.1, *m)).collect();
        assert_eq!(
            sorted(by_auction.take()),
            sorted(expected),
            "aggregate_process at p={p}"
        );
    }
}

/// Counts records (of any auction: the key is the window function's).
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
}

#[test]
fn hot_items_sliding_counts_then_the_top_auction_per_window_exact_at_parallelism_1_2_4() {
    // Nexmark q5's shape: bids per auction in 10 s windows sliding by 2 s, then per
    // window the highest count (the lowest auction id on a tie).
    const SIZE: i64 = 10_000;
    const SLIDE: i64 = 2_000;
    let input = bids(20_000, 1_000);
    let mut counts: HashMap<(u64, i64), u64> = HashMap::new();
    for bid in &input {
        let mut start = TimeWindow::start_with_offset(bid.2, 0, SLIDE);
        while start > bid.2 - SIZE {
            *counts.entry((bid.0, start + SIZE)).or_default() += 1;
            start -= SLIDE;
        }
    }
    let mut top: HashMap<i64, (u64, u64)> = HashMap::new();
    for ((auction, end), n) in &counts {
        let best = top.entry(*end).or_insert((*n, *auction));
        if (*n, std::cmp::Reverse(*auction)) > (best.0, std::cmp::Reverse(best.1)) {
            *best = (*n, *auction);
        }
    }
    let expected = sorted(top.iter().map(|(end, (n, a))| (*end, *n, *a)).collect());
    for p in [1, 2, 4] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        let hot = env
            .from_collection(input.clone())
            .assign_timestamps_and_watermarks(
                WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_secs(1))
                    .with_timestamp_assigner(|b: &Bid| b.2),
            )
            .key_by(|b: &Bid| b.0)
            .window(SlidingEventTimeWindows::of(
                Duration::from_millis(SIZE as u64),
                Duration::from_millis(SLIDE as u64),
            ))
            .aggregate_process(
                Count,
                |auction: &u64,
                 w: &TimeWindow,
                 n: u64,
                 out: &mut dyn Collector<(u64, i64, u64)>| {
                    out.collect((*auction, w.end, n))
                },
            )
            // A window's results carry its last millisecond as their time: the
            // second window needs no timestamps assigned again.
            .key_by(|r: &(u64, i64, u64)| r.1)
            .window(TumblingEventTimeWindows::of(Duration::from_millis(
                SLIDE as u64,
            )))
            .process(
                |end: &i64,
                 _: &TimeWindow,
                 counts: &[(u64, i64, u64)],
                 out: &mut dyn Collector<(i64, u64, u64)>| {
                    let best = counts
                        .iter()
                        .max_by_key(|(auction, _, n)| (*n, std::cmp::Reverse(*auction)))
                        .expect("a window has records");
                    out.collect((*end, best.2, best.0))
                },
            )
            .collect_vec();
        env.execute("hot items").unwrap();
        assert_eq!(sorted(hot.take()), expected, "p={p}");
    }
}
