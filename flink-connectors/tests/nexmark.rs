//! Nexmark queries end to end on the `nexmark` crate's events (through
//! `NexmarkSource`), exact at parallelism 1, 2 and 4 against plain single-threaded
//! references over the same generator: q5 (hot items), q7 (highest bid), q8 (new
//! users who opened auctions) and an interval join (bids within 10 s after their
//! auction opened).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use flink_connectors::nexmark::{Event, NexmarkConfig, NexmarkSource};
use flink_core::watermark::WatermarkStrategy;
use flink_core::windows::{
    AggregateFunction, SlidingEventTimeWindows, TimeWindow, TumblingEventTimeWindows,
};
use flink_runtime::prelude::*;
use nexmark::EventGenerator;

/// Events per run: 120 s of event time at 500 events/s.
const EVENTS: u64 = 60_000;
const SECOND: i64 = 1_000;

/// A bid: (auction, bidder, price, time ms).
type Bid = (u64, u64, u64, i64);
/// An auction: (id, seller, time ms).
type Auction = (u64, u64, i64);
/// A person: (id, name, time ms).
type Person = (u64, String, i64);

/// Repeatable events: a fixed base time and a constant rate.
fn config() -> NexmarkConfig {
    NexmarkConfig {
        base_time: 1_700_000_000_000,
        first_rate: 500,
        next_rate: 500,
        ..NexmarkConfig::default()
    }
}

fn bid_of(e: &Event) -> Option<Bid> {
    match e {
        Event::Bid(b) => Some((
            b.auction as u64,
            b.bidder as u64,
            b.price as u64,
            b.date_time as i64,
        )),
        _ => None,
    }
}

fn auction_of(e: &Event) -> Option<Auction> {
    match e {
        Event::Auction(a) => Some((a.id as u64, a.seller as u64, a.date_time as i64)),
        _ => None,
    }
}

fn person_of(e: &Event) -> Option<Person> {
    match e {
        Event::Person(p) => Some((p.id as u64, p.name.clone(), p.date_time as i64)),
        _ => None,
    }
}

/// The reference's input: the same events, generated in one loop.
fn events() -> Vec<Event> {
    EventGenerator::new(config())
        .take(EVENTS as usize)
        .collect()
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort_unstable();
    v
}

/// The job's events at parallelism `p`: each reader's in time order.
fn source(p: usize) -> (StreamExecutionEnvironment, DataStream<Event>) {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(p);
    let events = env.from_source(NexmarkSource::new(config(), EVENTS), "Nexmark");
    (env, events)
}

fn bids(events: &DataStream<Event>) -> DataStream<Bid> {
    events
        .flat_map_iter(|e| bid_of(&e))
        .assign_timestamps_and_watermarks(WatermarkStrategy::<Bid>::monotonous(|b| b.3))
}

fn auctions(events: &DataStream<Event>) -> DataStream<Auction> {
    events
        .flat_map_iter(|e| auction_of(&e))
        .assign_timestamps_and_watermarks(WatermarkStrategy::<Auction>::monotonous(|a| a.2))
}

fn persons(events: &DataStream<Event>) -> DataStream<Person> {
    events
        .flat_map_iter(|e| person_of(&e))
        .assign_timestamps_and_watermarks(WatermarkStrategy::<Person>::monotonous(|p| p.2))
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
}

/// q5, hot items: bids per auction in 10 s windows sliding by 2 s; per window, the
/// auctions with the most bids, as (window end, auction, bids).
fn q5_reference() -> Vec<(i64, u64, u64)> {
    let mut counts: HashMap<(i64, u64), u64> = HashMap::new();
    for b in events().iter().filter_map(bid_of) {
        let mut start = TimeWindow::start_with_offset(b.3, 0, 2 * SECOND);
        while start > b.3 - 10 * SECOND {
            *counts.entry((start + 10 * SECOND, b.0)).or_default() += 1;
            start -= 2 * SECOND;
        }
    }
    let mut max: HashMap<i64, u64> = HashMap::new();
    for ((end, _), n) in &counts {
        let m = max.entry(*end).or_default();
        *m = (*m).max(*n);
    }
    sorted(
        counts
            .iter()
            .filter(|((end, _), n)| max[end] == **n)
            .map(|((end, auction), n)| (*end, *auction, *n))
            .collect(),
    )
}

fn q5(p: usize) -> Vec<(i64, u64, u64)> {
    let (env, events) = source(p);
    let hot = bids(&events)
        .key_by(|b| b.0)
        .window(SlidingEventTimeWindows::of(
            Duration::from_secs(10),
            Duration::from_secs(2),
        ))
        .aggregate_process(Count, |auction, w, n, out| {
            out.collect((*auction, w.end, n))
        })
        // A window's counts carry its last millisecond as their time: the second
        // window needs no timestamps assigned again.
        .key_by(|r| r.1)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(2)))
        .process(|end, _, counts, out| {
            let max = counts.iter().map(|c| c.2).max().unwrap_or(0);
            for c in counts.iter().filter(|c| c.2 == max) {
                out.collect((*end, c.0, c.2));
            }
        })
        .collect_vec();
    env.execute("nexmark q5").unwrap();
    sorted(hot.take())
}

#[test]
fn q5_hot_items_exact_at_parallelism_1_2_4() {
    let expected = q5_reference();
    assert!(
        expected.len() >= 55,
        "a result per window: {}",
        expected.len()
    );
    for p in [1, 2, 4] {
        assert_eq!(q5(p), expected, "p={p}");
    }
}

/// q7, highest bid: per 10 s tumbling window, the bids at its highest price, as
/// (window end, auction, bidder, price, time).
fn q7_reference() -> Vec<(i64, u64, u64, u64, i64)> {
    let mut windows: BTreeMap<i64, Vec<Bid>> = BTreeMap::new();
    for b in events().iter().filter_map(bid_of) {
        let end = TimeWindow::start_with_offset(b.3, 0, 10 * SECOND) + 10 * SECOND;
        windows.entry(end).or_default().push(b);
    }
    let mut highest = Vec::new();
    for (end, bids) in windows {
        let max = bids.iter().map(|b| b.2).max().unwrap_or(0);
        highest.extend(
            bids.iter()
                .filter(|b| b.2 == max)
                .map(|b| (end, b.0, b.1, b.2, b.3)),
        );
    }
    sorted(highest)
}

fn q7(p: usize) -> Vec<(i64, u64, u64, u64, i64)> {
    let (env, events) = source(p);
    let highest = bids(&events)
        // The window is the key: windows are spread over the instances.
        .key_by(|b| b.3.div_euclid(10 * SECOND))
        .window(TumblingEventTimeWindows::of(Duration::from_secs(10)))
        .process(|_, w, bids, out| {
            let max = bids.iter().map(|b| b.2).max().unwrap_or(0);
            for b in bids.iter().filter(|b| b.2 == max) {
                out.collect((w.end, b.0, b.1, b.2, b.3));
            }
        })
        .collect_vec();
    env.execute("nexmark q7").unwrap();
    sorted(highest.take())
}

#[test]
fn q7_highest_bid_exact_at_parallelism_1_2_4() {
    let expected = q7_reference();
    assert!(
        expected.len() >= 12,
        "a result per window: {}",
        expected.len()
    );
    for p in [1, 2, 4] {
        assert_eq!(q7(p), expected, "p={p}");
    }
}

/// q8, new users: people who opened an auction in the 10 s window they registered
/// in, as (person, name, window start).
fn q8_reference() -> Vec<(u64, String, i64)> {
    let start = |ts: i64| TimeWindow::start_with_offset(ts, 0, 10 * SECOND);
    let events = events();
    let sellers: std::collections::HashSet<(u64, i64)> = events
        .iter()
        .filter_map(auction_of)
        .map(|a| (a.1, start(a.2)))
        .collect();
    sorted(
        events
            .iter()
            .filter_map(person_of)
            .filter(|p| sellers.contains(&(p.0, start(p.2))))
            .map(|p| (p.0, p.1, start(p.2)))
            .collect(),
    )
}

fn q8(p: usize) -> Vec<(u64, String, i64)> {
    let (env, events) = source(p);
    let new_users = persons(&events)
        .co_group(&auctions(&events))
        .where_(|p| p.0)
        .equal_to(|a| a.1)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(10)))
        .process(|_, w, people, auctions, out| {
            if !auctions.is_empty() {
                for p in people {
                    out.collect((p.0, p.1.clone(), w.start));
                }
            }
        })
        .collect_vec();
    env.execute("nexmark q8").unwrap();
    sorted(new_users.take())
}

#[test]
fn q8_new_users_exact_at_parallelism_1_2_4() {
    let expected = q8_reference();
    assert!(expected.len() >= 10, "new users: {}", expected.len());
    for p in [1, 2, 4] {
        assert_eq!(q8(p), expected, "p={p}");
    }
}

/// Bids placed within 10 s after their auction opened, as (auction, bidder,
/// price, bid time).
fn early_bids_reference() -> Vec<(u64, u64, u64, i64)> {
    let events = events();
    let opened: HashMap<u64, i64> = events
        .iter()
        .filter_map(auction_of)
        .map(|a| (a.0, a.2))
        .collect();
    sorted(
        events
            .iter()
            .filter_map(bid_of)
            .filter(|b| {
                opened
                    .get(&b.0)
                    .is_some_and(|t| (*t..=t + 10 * SECOND).contains(&b.3))
            })
            .map(|b| (b.0, b.1, b.2, b.3))
            .collect(),
    )
}

fn early_bids(p: usize) -> Vec<(u64, u64, u64, i64)> {
    let (env, events) = source(p);
    let early = auctions(&events)
        .key_by(|a| a.0)
        .interval_join(&bids(&events).key_by(|b| b.0))
        .between(0, 10 * SECOND)
        .process(|_, b, out| out.collect(*b))
        .collect_vec();
    env.execute("nexmark early bids").unwrap();
    sorted(early.take())
}

#[test]
fn bids_within_10_s_after_their_auction_opened_exact_at_parallelism_1_2_4() {
    let expected = early_bids_reference();
    assert!(expected.len() >= 1_000, "early bids: {}", expected.len());
    for p in [1, 2, 4] {
        assert_eq!(early_bids(p), expected, "p={p}");
    }
}
