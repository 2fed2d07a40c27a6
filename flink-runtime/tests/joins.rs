//! Joins end to end, exact against references computed here by plain loops: the
//! interval join (inclusive and exclusive bounds, negative lower bound), the
//! window join and the window coGroup at parallelism 1, 2 and 4 on out-of-order
//! input; typed build errors; and the interval join across injected failures and
//! restarts from checkpoints (exactly the failure-free output).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flink_core::sources::{RateLimiterStrategy, SequenceSource};
use flink_core::watermark::WatermarkStrategy;
use flink_core::windows::{TimeWindow, TumblingEventTimeWindows, WindowError};
use flink_runtime::prelude::*;

/// An auction: (id, event time ms).
type Auction = (u64, i64);
/// A bid: (auction, price, event time ms).
type Bid = (u64, u64, i64);

const AUCTIONS: u64 = 500;
const BIDS: u64 = 20_000;
/// How far out of order the inputs are, at most.
const DISORDER_MS: u64 = 300;

fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// One auction every 20 ms, up to `DISORDER_MS` early.
fn auctions() -> Vec<Auction> {
    let mut next = xorshift(0x1234_5678_9ABC_DEF1);
    (0..AUCTIONS)
        .map(|id| (id, (id * 20) as i64 - (next() % DISORDER_MS) as i64))
        .collect()
}

/// One bid every 0.5 ms on a recent auction, up to `DISORDER_MS` early.
fn bids() -> Vec<Bid> {
    let mut next = xorshift(0x9E37_79B9_7F4A_7C15);
    (0..BIDS)
        .map(|i| {
            let ts = (i / 2) as i64 - (next() % DISORDER_MS) as i64;
            let auction = (ts.max(0) as u64 / 20).saturating_sub(next() % 30);
            (auction.min(AUCTIONS - 1), next() % 1_000, ts)
        })
        .collect()
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort_unstable();
    v
}

/// Watermarks `DISORDER_MS` behind: no record of these inputs is ever late.
fn strategy<T: 'static>(ts: fn(&T) -> i64) -> WatermarkStrategy<T> {
    WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(DISORDER_MS))
        .with_timestamp_assigner(ts)
}

fn auction_stream(env: &StreamExecutionEnvironment) -> DataStream<Auction> {
    env.from_collection(auctions())
        .assign_timestamps_and_watermarks(strategy(|a: &Auction| a.1))
}

fn bid_stream(env: &StreamExecutionEnvironment) -> DataStream<Bid> {
    env.from_collection(bids())
        .assign_timestamps_and_watermarks(strategy(|b: &Bid| b.2))
}

/// The pairs (auction id, auction time, bid price, bid time) whose bid time lies
/// in `[auction + lower, auction + upper]`.
fn interval_reference(lower: i64, upper: i64) -> Vec<(u64, i64, u64, i64)> {
    let by_id: HashMap<u64, Vec<Auction>> =
        auctions().into_iter().fold(HashMap::new(), |mut m, a| {
            m.entry(a.0).or_default().push(a);
            m
        });
    let mut pairs = Vec::new();
    for b in bids() {
        for a in by_id.get(&b.0).into_iter().flatten() {
            if (a.1 + lower..=a.1 + upper).contains(&b.2) {
                pairs.push((a.0, a.1, b.1, b.2));
            }
        }
    }
    sorted(pairs)
}

fn interval_join(p: usize, lower: i64, upper: i64, exclusive: bool) -> Vec<(u64, i64, u64, i64)> {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(p);
    let joined = auction_stream(&env)
        .key_by(|a: &Auction| a.0)
        .interval_join(&bid_stream(&env).key_by(|b: &Bid| b.0))
        .between(lower, upper);
    let joined = if exclusive {
        joined.lower_bound_exclusive().upper_bound_exclusive()
    } else {
        joined
    };
    let pairs = joined
        .process(
            |a: &Auction, b: &Bid, out: &mut dyn Collector<(u64, i64, u64, i64)>| {
                out.collect((a.0, a.1, b.1, b.2))
            },
        )
        .collect_vec();
    env.execute("interval join").unwrap();
    sorted(pairs.take())
}

#[test]
fn interval_join_exact_at_parallelism_1_2_4() {
    // Bids from 100 ms before to 1 s after their auction opened.
    let expected = interval_reference(-100, 1_000);
    assert!(
        expected.len() > 1_000,
        "the input joins: {}",
        expected.len()
    );
    for p in [1, 2, 4] {
        assert_eq!(interval_join(p, -100, 1_000, false), expected, "p={p}");
    }
    // Exclusive bounds are the inclusive ones moved inwards by 1 ms.
    let expected = interval_reference(1, 399);
    assert!(!expected.is_empty());
    assert_eq!(interval_join(2, 0, 400, true), expected);
    // Bids on the left: the auction opened from 1 s to 100 ms before the bid, an
    // interval entirely before the left record.
    let expected = interval_reference(100, 1_000);
    assert!(!expected.is_empty());
    for p in [1, 2] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        let pairs = bid_stream(&env)
            .key_by(|b: &Bid| b.0)
            .interval_join(&auction_stream(&env).key_by(|a: &Auction| a.0))
            .between(-1_000, -100)
            .process(
                |b: &Bid, a: &Auction, out: &mut dyn Collector<(u64, i64, u64, i64)>| {
                    out.collect((a.0, a.1, b.1, b.2))
                },
            )
            .collect_vec();
        env.execute("interval join, bids first").unwrap();
        assert_eq!(sorted(pairs.take()), expected, "bids first, p={p}");
    }
}

/// (key, window end, left records, right records) per key and 1 s window.
type Groups = BTreeMap<(u64, i64), (Vec<Auction>, Vec<Bid>)>;

fn window_end(ts: i64) -> i64 {
    TimeWindow::start_with_offset(ts, 0, 1_000) + 1_000
}

fn groups() -> Groups {
    let mut groups = Groups::new();
    for a in auctions() {
        groups
            .entry((a.0 % 50, window_end(a.1)))
            .or_default()
            .0
            .push(a);
    }
    for b in bids() {
        groups
            .entry((b.0 % 50, window_end(b.2)))
            .or_default()
            .1
            .push(b);
    }
    groups
}

#[test]
fn window_join_and_co_group_exact_at_parallelism_1_2_4() {
    let groups = groups();
    let mut joined = Vec::new();
    for (a, b) in groups.values() {
        for x in a {
            for y in b {
                joined.push((x.0, y.1, y.2));
            }
        }
    }
    let joined = sorted(joined);
    let cogrouped: Vec<(u64, i64, usize, usize)> = groups
        .iter()
        .map(|(k, (a, b))| (k.0, k.1, a.len(), b.len()))
        .collect();
    assert!(cogrouped.iter().any(|g| g.2 == 0) && cogrouped.iter().any(|g| g.3 == 0));
    for p in [1, 2, 4] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        let window = TumblingEventTimeWindows::of(Duration::from_secs(1));
        let pairs = auction_stream(&env)
            .join(&bid_stream(&env))
            .where_(|a: &Auction| a.0 % 50)
            .equal_to(|b: &Bid| b.0 % 50)
            .window(window)
            .apply(|a: &Auction, b: &Bid| (a.0, b.1, b.2))
            .collect_vec();
        let counts = auction_stream(&env)
            .co_group(&bid_stream(&env))
            .where_(|a: &Auction| a.0 % 50)
            .equal_to(|b: &Bid| b.0 % 50)
            .window(window)
            .process(
                |k: &u64,
                 w: &TimeWindow,
                 a: &[Auction],
                 b: &[Bid],
                 out: &mut dyn Collector<(u64, i64, usize, usize)>| {
                    out.collect((*k, w.end, a.len(), b.len()))
                },
            )
            .collect_vec();
        env.execute("window joins").unwrap();
        assert_eq!(sorted(pairs.take()), joined, "join at p={p}");
        assert_eq!(sorted(counts.take()), cogrouped, "coGroup at p={p}");
    }
}

#[test]
fn join_definitions_that_cannot_work_are_typed_errors_when_the_job_is_built() {
    let env = StreamExecutionEnvironment::new();
    auction_stream(&env)
        .key_by(|a: &Auction| a.0)
        .interval_join(&bid_stream(&env).key_by(|b: &Bid| b.0))
        .between(10, 10)
        .lower_bound_exclusive()
        .process(|_: &Auction, _: &Bid, _: &mut dyn Collector<u64>| {})
        .collect_vec();
    let error = env.execute("empty interval").unwrap_err().to_string();
    let expected = WindowError::InvalidJoinBounds {
        lower_ms: 11,
        upper_ms: 10,
    };
    assert!(error.contains(&expected.to_string()), "{error}");

    let env = StreamExecutionEnvironment::new();
    env.from_collection(auctions())
        .key_by(|a: &Auction| a.0)
        .interval_join(&bid_stream(&env).key_by(|b: &Bid| b.0))
        .between(0, 10)
        .process(|_: &Auction, _: &Bid, _: &mut dyn Collector<u64>| {})
        .collect_vec();
    let error = env.execute("no timestamps").unwrap_err().to_string();
    assert!(
        error.contains(&WindowError::JoinWithoutTimestamps.to_string()),
        "{error}"
    );

    let env = StreamExecutionEnvironment::new();
    env.from_collection(auctions())
        .join(&bid_stream(&env))
        .where_(|a: &Auction| a.0)
        .equal_to(|b: &Bid| b.0)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
        .apply(|a: &Auction, _: &Bid| a.0)
        .collect_vec();
    let error = env
        .execute("window join without timestamps")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(&WindowError::NoTimestamps.to_string()),
        "{error}"
    );
}

const RECORDS: u64 = 40_000;

/// The auction a sequence number's bid is for (ten numbers per auction: the
/// multiples of 10 open auction `x / 10` at time `x`, the others bid on a recent one).
fn bid_auction(x: u64) -> Option<u64> {
    (x / 10).checked_sub(x % 7)
}

/// sequence (ts = x ms, a failure at each point) -> auctions and bids -> interval
/// join [0, 50] ms -> transactional sink.
fn interval_job(
    p: usize,
    points: HashSet<u64>,
    dir: &std::path::Path,
) -> (
    StreamExecutionEnvironment,
    TransactionalCollectingSink<(u64, u64)>,
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
    let numbers = env
        .from_source(source, "Sequence")
        .map(move |x: u64| {
            if points.contains(&x) && fired.lock().unwrap().insert(x) {
                panic!("injected failure at record {x}");
            }
            x
        })
        .assign_timestamps_and_watermarks(WatermarkStrategy::monotonous(|x: &u64| *x as i64));
    let auctions = numbers
        .filter(|x: &u64| x.is_multiple_of(10))
        .key_by(|x: &u64| x / 10);
    let bids = numbers
        .filter(|x: &u64| !x.is_multiple_of(10) && bid_auction(*x).is_some())
        .key_by(|x: &u64| bid_auction(*x).unwrap_or(0));
    auctions
        .interval_join(&bids)
        .between(0, 50)
        .process(|a: &u64, b: &u64, out: &mut dyn Collector<(u64, u64)>| out.collect((a / 10, *b)))
        .sink_to(out.clone());
    (env, out)
}

#[test]
fn interval_join_restarted_from_checkpoints_after_failures_commits_the_failure_free_output() {
    let expected: Vec<(u64, u64)> = (0..RECORDS)
        .filter(|x| !x.is_multiple_of(10))
        .filter_map(|x| bid_auction(x).map(|a| (a, x)))
        .filter(|(a, x)| (a * 10..=a * 10 + 50).contains(x))
        .collect();
    let expected = sorted(expected);
    assert!(expected.len() > 10_000);
    for p in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let points: HashSet<u64> = [7_919, 21_013, 33_331].into();
        let (env, out) = interval_job(p, points, dir.path());
        let result = env.execute("interval join across failures").unwrap();
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

#[test]
fn a_co_group_with_a_purging_count_trigger_fires_every_n_records_of_either_side() {
    use flink_core::windows::{CountTrigger, GlobalWindows, PurgingTrigger};
    // Per key of 50: however both inputs interleave, each firing holds 100
    // records, and a key fires once per full 100.
    let mut per_key: HashMap<u64, usize> = HashMap::new();
    for a in auctions() {
        *per_key.entry(a.0 % 50).or_default() += 1;
    }
    for b in bids() {
        *per_key.entry(b.0 % 50).or_default() += 1;
    }
    let expected: Vec<(u64, usize)> = sorted(
        per_key
            .iter()
            .flat_map(|(k, n)| std::iter::repeat_n((*k, 100), n / 100))
            .collect(),
    );
    for p in [1, 2] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        let groups = auction_stream(&env)
            .co_group(&bid_stream(&env))
            .where_(|a: &Auction| a.0 % 50)
            .equal_to(|b: &Bid| b.0 % 50)
            .window(GlobalWindows::create())
            .trigger(PurgingTrigger::of(CountTrigger::of(100)))
            .process(
                |k: &u64,
                 _: &TimeWindow,
                 a: &[Auction],
                 b: &[Bid],
                 out: &mut dyn Collector<(u64, usize)>| {
                    out.collect((*k, a.len() + b.len()))
                },
            )
            .collect_vec();
        env.execute("co_group with a count trigger").unwrap();
        assert_eq!(sorted(groups.take()), expected, "p={p}");
    }
}

/// sequence (ts = x ms, a failure at each point) -> auctions and bids -> window
/// join on the auction in 100 ms tumbling windows -> transactional sink.
fn window_join_job(
    p: usize,
    points: HashSet<u64>,
    dir: &std::path::Path,
) -> (
    StreamExecutionEnvironment,
    TransactionalCollectingSink<(u64, u64)>,
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
    let numbers = env
        .from_source(source, "Sequence")
        .map(move |x: u64| {
            if points.contains(&x) && fired.lock().unwrap().insert(x) {
                panic!("injected failure at record {x}");
            }
            x
        })
        .assign_timestamps_and_watermarks(WatermarkStrategy::monotonous(|x: &u64| *x as i64));
    let auctions = numbers.filter(|x: &u64| x.is_multiple_of(10));
    let bids = numbers.filter(|x: &u64| !x.is_multiple_of(10) && bid_auction(*x).is_some());
    auctions
        .join(&bids)
        .where_(|a: &u64| a / 10)
        .equal_to(|b: &u64| bid_auction(*b).unwrap_or(0))
        .window(TumblingEventTimeWindows::of(Duration::from_millis(100)))
        .apply(|a: &u64, b: &u64| (a / 10, *b))
        .sink_to(out.clone());
    (env, out)
}

#[test]
fn window_join_restarted_from_checkpoints_after_failures_commits_the_failure_free_output() {
    let expected: Vec<(u64, u64)> = (0..RECORDS)
        .filter(|x| !x.is_multiple_of(10))
        .filter_map(|x| bid_auction(x).map(|a| (a, x)))
        .filter(|(a, x)| a * 10 / 100 == x / 100)
        .collect();
    let expected = sorted(expected);
    assert!(expected.len() > 10_000, "{}", expected.len());
    for p in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let points: HashSet<u64> = [9_001, 22_222, 35_353].into();
        let (env, out) = window_join_job(p, points, dir.path());
        let result = env.execute("window join across failures").unwrap();
        assert!(!result.restarts.is_empty(), "failures were injected");
        let checkpoints = result.checkpoints.expect("checkpointing was on");
        assert!(
            checkpoints.completed >= 1,
            "restores start from checkpoints"
        );
        assert_eq!(sorted(out.committed()), expected, "p={p}");
    }
}
