//! Per-record event timestamps end to end (Flink's semantics), against references
//! computed here by plain loops: map, flat_map, filter and process keep the input
//! record's timestamp across chains and the network; a window's results carry its
//! last millisecond, an event-time timer's output (main and side) its time, an interval join's
//! pairs the later of both times; a second event-time window after a map and after
//! a window needs no timestamps assigned again; a union with a stream without
//! timestamps gives its records none; async results (ordered and unordered) carry
//! their input record's timestamp, processing-time window results their window's
//! last millisecond.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use flink_core::stream_type::Record;
use flink_core::watermark::WatermarkStrategy;
use flink_core::windows::{TimeWindow, TumblingEventTimeWindows, WindowError};
use flink_runtime::prelude::*;

/// (key, price, event time in ms).
type Rec = (u64, u64, i64);

/// `n` records, one every 3 ms, up to 500 ms out
/// of order.
fn records(n: u64) -> Vec<(u64, u64, i64)> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    };
    (0..n)
        .map(|i| {
            let ts = (i * 3) as i64 - (next() % 500) as i64;
            (next() % 20, next() % 100, ts)
        })
        .collect()
}

fn timed(
    env: &StreamExecutionEnvironment,
    input: &[(u64, u64, i64)],
) -> DataStream<(u64, u64, i64)> {
    env.from_collection(input.to_vec())
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(500))
                .with_timestamp_assigner(|r: &(u64, u64, i64)| r.2),
        )
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort_unstable();
    v
}

/// Each output with the timestamp `ctx.timestamp()` says it has.
fn with_timestamps<T: Record>(stream: &DataStream<T>) -> DataStream<(T, Option<i64>)> {
    stream.process(
        |x: T, ctx: &mut ProcessFunctionContext<'_, (T, Option<i64>)>| {
            let ts = ctx.timestamp();
            ctx.collect((x, ts))
        },
    )
}

#[test]
fn map_flat_map_filter_and_process_keep_each_records_timestamp_across_the_network() {
    let input = records(3_000);
    let mut expected = Vec::new();
    for &(key, price, ts) in &input {
        for y in [price * 2, price * 2 + 1] {
            if !y.is_multiple_of(3) {
                expected.push(((key, y), Some(ts)));
            }
        }
    }
    let expected = sorted(expected);
    for p in [1, 2] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        // The time field is gone after the map: the timestamps travel by themselves.
        let derived = timed(&env, &input)
            .map(|(key, price, _)| (key, price * 2))
            .rebalance()
            .flat_map(|(key, y), out: &mut dyn Collector<(u64, u64)>| {
                out.collect((key, y));
                out.collect((key, y + 1));
            })
            .filter(|r: &(u64, u64)| !r.1.is_multiple_of(3))
            .key_by(|r: &(u64, u64)| r.0)
            .process_function(PassOn);
        let out = with_timestamps(&derived.rebalance()).collect_vec();
        env.execute("timestamps through operators").unwrap();
        assert_eq!(sorted(out.take()), expected, "p={p}");
    }
}

/// A keyed process function that passes records on (its output keeps their time).
#[derive(Clone)]
struct PassOn;

impl KeyedProcessFunction<u64, (u64, u64), (u64, u64)> for PassOn {
    type State = ();

    fn process_element(&mut self, r: (u64, u64), ctx: &mut KeyedContext<'_, u64, (), (u64, u64)>) {
        ctx.collect(r);
    }

    fn on_timer(&mut self, _: i64, _: &mut KeyedContext<'_, u64, (), (u64, u64)>) {}
}

#[test]
fn a_second_event_time_window_after_a_map_and_after_a_window_needs_no_timestamps_again() {
    let input = records(6_000);
    // First: per key group (key % 4) and 1 s window, the sum of prices. Second:
    // per group and 5 s window, how many 1 s windows had records and their total.
    let mut first: BTreeMap<(u64, i64), u64> = BTreeMap::new();
    for &(key, price, ts) in &input {
        let start = TimeWindow::start_with_offset(ts, 0, 1_000);
        *first.entry((key % 4, start + 1_000)).or_default() += price;
    }
    let mut second: BTreeMap<(u64, i64), (u64, u64)> = BTreeMap::new();
    for (&(group, end), &sum) in &first {
        // The first window's result has the time end - 1.
        let start = TimeWindow::start_with_offset(end - 1, 0, 5_000);
        let e = second.entry((group, start + 5_000)).or_default();
        *e = (e.0 + 1, e.1 + sum);
    }
    let expected: Vec<(u64, i64, u64, u64)> = second
        .iter()
        .map(|(&(g, end), &(n, sum))| (g, end, n, sum))
        .collect();
    assert!(expected.len() > 10);
    for p in [1, 2, 4] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        let out = timed(&env, &input)
            .map(|(key, price, _)| (key % 4, price))
            .key_by(|r: &(u64, u64)| r.0)
            .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
            .reduce(|a: (u64, u64), b: (u64, u64)| (a.0, a.1 + b.1))
            .map(|(group, sum)| (group, 1u64, sum))
            .key_by(|r: &(u64, u64, u64)| r.0)
            .window(TumblingEventTimeWindows::of(Duration::from_secs(5)))
            .reduce_process(
                |a: (u64, u64, u64), b: (u64, u64, u64)| (a.0, a.1 + b.1, a.2 + b.2),
                |group: &u64,
                 w: &TimeWindow,
                 r: (u64, u64, u64),
                 out: &mut dyn Collector<(u64, i64, u64, u64)>| {
                    out.collect((*group, w.end, r.1, r.2))
                },
            )
            .collect_vec();
        env.execute("windows after a map and a window").unwrap();
        assert_eq!(sorted(out.take()), expected, "p={p}");
    }
}

/// Counts a key's records until 1 s after its first one, then emits the count.
#[derive(Clone)]
struct CountForASecond;

impl KeyedProcessFunction<u64, (u64, u64, i64), (u64, u64)> for CountForASecond {
    type State = u64;

    fn process_element(
        &mut self,
        r: (u64, u64, i64),
        ctx: &mut KeyedContext<'_, u64, u64, (u64, u64)>,
    ) {
        let n = ctx.state().value().copied().unwrap_or(0);
        if n == 0 {
            let at = r.2 + 1_000;
            ctx.timer_service().register_event_time_timer(at);
        }
        ctx.state().update(n + 1);
    }

    fn on_timer(&mut self, _: i64, ctx: &mut KeyedContext<'_, u64, u64, (u64, u64)>) {
        let key = *ctx.key();
        let n = ctx.state().take().expect("a timer follows a record");
        ctx.collect((key, n));
    }
}

#[test]
fn window_results_carry_the_windows_last_millisecond_and_timer_outputs_their_time() {
    let input = records(2_000);
    let ends: BTreeSet<(u64, i64)> = input
        .iter()
        .map(|&(key, _, ts)| (key, TimeWindow::start_with_offset(ts, 0, 1_000) + 1_000))
        .collect();
    for p in [1, 2] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        let windows = timed(&env, &input)
            .key_by(|r: &(u64, u64, i64)| r.0)
            .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
            .process(
                |key: &u64,
                 w: &TimeWindow,
                 _: &[(u64, u64, i64)],
                 out: &mut dyn Collector<(u64, i64)>| {
                    out.collect((*key, w.end))
                },
            );
        let windows = with_timestamps(&windows).collect_vec();
        let timers = timed(&env, &input)
            .key_by(|r: &(u64, u64, i64)| r.0)
            .process_function(CountForASecond);
        let timers = with_timestamps(&timers).collect_vec();
        env.execute("window and timer timestamps").unwrap();
        let windows = windows.take();
        assert_eq!(windows.len(), ends.len(), "p={p}");
        for ((key, end), ts) in &windows {
            assert!(ends.contains(&(*key, *end)));
            assert_eq!(*ts, Some(end - 1), "p={p}: the window's last millisecond");
        }
        // Each count ends at its timer: 1 s after the key's first record in it.
        let timers = timers.take();
        assert_eq!(
            timers.iter().map(|((_, n), _)| n).sum::<u64>(),
            input.len() as u64,
            "p={p}"
        );
        for ((key, _), ts) in &timers {
            let ts = ts.expect("a timer's output has its time");
            let opened = ts - 1_000;
            assert!(
                input.iter().any(|r| r.0 == *key && r.2 == opened),
                "p={p}: {ts} is 1 s after one of key {key}'s records"
            );
        }
    }
}

#[test]
fn interval_join_pairs_carry_the_later_of_both_times() {
    let input = records(2_000);
    let (left, right): (Vec<Rec>, Vec<Rec>) = input.iter().partition(|r| r.1 % 2 == 0);
    let mut expected = Vec::new();
    for l in &left {
        for r in &right {
            if l.0 == r.0 && r.2 >= l.2 - 50 && r.2 <= l.2 + 100 {
                expected.push(((l.2, r.2), Some(l.2.max(r.2))));
            }
        }
    }
    let expected = sorted(expected);
    assert!(expected.len() > 100);
    for p in [1, 2] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        let pairs = timed(&env, &left)
            .key_by(|r: &(u64, u64, i64)| r.0)
            .interval_join(&timed(&env, &right).key_by(|r: &(u64, u64, i64)| r.0))
            .between(-50, 100)
            .process(
                |l: &(u64, u64, i64), r: &(u64, u64, i64), out: &mut dyn Collector<(i64, i64)>| {
                    out.collect((l.2, r.2))
                },
            );
        let pairs = with_timestamps(&pairs).collect_vec();
        env.execute("interval join timestamps").unwrap();
        assert_eq!(sorted(pairs.take()), expected, "p={p}");
    }
}

#[test]
fn records_of_a_stream_without_timestamps_have_none_in_a_union_with_one_with_them() {
    let input = records(500);
    let mut expected: Vec<((u64, u64), Option<i64>)> =
        input.iter().map(|r| ((r.0, r.1), Some(r.2))).collect();
    expected.extend((1..=100).map(|x| ((1_000, x), None)));
    let expected = sorted(expected);
    for p in [1, 2] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        let with = timed(&env, &input).map(|(key, price, _)| (key, price));
        let without = env.from_sequence(1, 100).map(|x| (1_000u64, x));
        let all = with.union(&[without.rebalance()]);
        let out = with_timestamps(&all.rebalance()).collect_vec();
        env.execute("union").unwrap();
        assert_eq!(sorted(out.take()), expected, "p={p}");
    }

    // An event-time window needs every record's time.
    let env = StreamExecutionEnvironment::new();
    let with = timed(&env, &input).map(|(key, price, _)| (key, price));
    let without = env.from_sequence(1, 100).map(|x| (1_000u64, x));
    with.union(&[without])
        .key_by(|r: &(u64, u64)| r.0)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
        .reduce(|a: (u64, u64), b: (u64, u64)| (a.0, a.1 + b.1))
        .collect_vec();
    let error = env.execute("mixed").unwrap_err().to_string();
    assert!(
        error.contains(&WindowError::NoTimestamps.to_string()),
        "{error}"
    );
}

/// A future that is pending once (waking itself) before it is ready.
struct YieldOnce(bool);

impl std::future::Future for YieldOnce {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

#[test]
fn async_results_carry_their_input_records_timestamp_ordered_and_unordered() {
    use flink_core::async_io::AsyncOptions;
    let input = records(2_000);
    let expected = sorted(
        input
            .iter()
            .map(|&(key, price, ts)| ((key, price * 2), Some(ts)))
            .collect(),
    );
    for (p, ordered) in [(1, true), (2, true), (1, false), (2, false)] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        let enriched = timed(&env, &input).async_function(
            // Some calls take longer, so unordered results overtake earlier ones.
            |(key, price, _): (u64, u64, i64)| async move {
                if price % 7 == 0 {
                    YieldOnce(false).await;
                }
                Ok::<_, String>((key, price * 2))
            },
            AsyncOptions::new().ordered(ordered).capacity(16),
        );
        let out = with_timestamps(&enriched).collect_vec();
        env.execute("async timestamps").unwrap();
        assert_eq!(
            sorted(out.take()),
            expected,
            "p={p} ordered={ordered}: each result has its input's timestamp"
        );
    }
}

#[test]
fn processing_time_window_results_carry_the_windows_last_millisecond() {
    use std::sync::Arc;

    use flink_core::clock::ManualClock;
    use flink_core::windows::TumblingProcessingTimeWindows;
    let input = records(3_000);
    for p in [1, 2] {
        let clock = ManualClock::new();
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        env.set_clock(Arc::new(clock.clone()));
        // The clock moves on while the job runs (every 500th record), so windows
        // fire on it mid-run as well as at the end of input.
        let ticking = clock.clone();
        let windows = timed(&env, &input)
            .map(move |r: (u64, u64, i64)| {
                if r.1 == 0 {
                    ticking.advance(Duration::from_millis(150));
                }
                r
            })
            .key_by(|r: &(u64, u64, i64)| r.0)
            .window(TumblingProcessingTimeWindows::of(Duration::from_millis(
                100,
            )))
            .process(
                |key: &u64,
                 w: &TimeWindow,
                 records: &[(u64, u64, i64)],
                 out: &mut dyn Collector<(u64, i64, u64)>| {
                    out.collect((*key, w.end, records.len() as u64))
                },
            );
        let out = with_timestamps(&windows).collect_vec();
        env.execute("processing-time window timestamps").unwrap();
        let out = out.take();
        assert_eq!(
            out.iter().map(|((_, _, n), _)| n).sum::<u64>(),
            input.len() as u64,
            "p={p}: every record in one window"
        );
        for ((key, end, _), ts) in &out {
            assert_eq!(*ts, Some(end - 1), "p={p}: key {key}'s window ending {end}");
        }
    }
}

/// Watermarks that follow each record's timestamp at once (punctuated), so which
/// records are late does not depend on when a periodic watermark is emitted.
struct EveryRecord;

impl flink_core::watermark::WatermarkGenerator<Rec> for EveryRecord {
    fn on_event(
        &mut self,
        _: &Rec,
        timestamp: i64,
        out: &mut flink_core::watermark::WatermarkOutput,
    ) {
        out.emit_watermark(flink_core::watermark::Watermark(timestamp));
    }

    fn on_periodic_emit(&mut self, _: &mut flink_core::watermark::WatermarkOutput) {}
}

/// Emits each key's count 1 s after its first record, as [`CountForASecond`], and
/// the timer's time into a side output.
#[derive(Clone)]
struct CountForASecondNoting(OutputTag<(u64, i64)>);

impl KeyedProcessFunction<u64, Rec, (u64, u64)> for CountForASecondNoting {
    type State = u64;

    fn process_element(&mut self, r: Rec, ctx: &mut KeyedContext<'_, u64, u64, (u64, u64)>) {
        CountForASecond.process_element(r, ctx);
    }

    fn on_timer(&mut self, ts: i64, ctx: &mut KeyedContext<'_, u64, u64, (u64, u64)>) {
        let key = *ctx.key();
        ctx.output(&self.0, (key, ts));
        CountForASecond.on_timer(ts, ctx);
    }
}

#[test]
fn side_outputs_of_an_event_time_timer_carry_its_time() {
    let input = records(2_000);
    for p in [1, 2] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        let tag = OutputTag::<(u64, i64)>::new("timers");
        let counts = timed(&env, &input)
            .key_by(|r: &Rec| r.0)
            .process_function(CountForASecondNoting(tag.clone()));
        let noted = with_timestamps(&counts.side_output(&tag)).collect_vec();
        let counts = counts.collect_vec();
        env.execute("timer side output timestamps").unwrap();
        let noted = noted.take();
        assert_eq!(
            noted.len(),
            counts.take().len(),
            "p={p}: one note per timer"
        );
        for ((key, at), ts) in &noted {
            assert_eq!(*ts, Some(*at), "p={p}: key {key}'s timer at {at}");
        }
    }
}

#[test]
fn late_records_in_their_side_output_keep_their_timestamps() {
    // In time order, one every 10 ms; after every 50th a record 2 s older, whose
    // 1 s window the watermark (the newest time) has passed. Source and assigner
    // run at parallelism 1, so the order and the watermarks are exactly these.
    let mut input = Vec::new();
    let mut late = Vec::new();
    for i in 0..3_000u64 {
        let ts = (i * 10) as i64;
        input.push((i % 7, i, ts));
        if i % 50 == 49 && ts >= 2_000 {
            let old = (i % 7, 1_000_000 + i, ts - 2_000);
            input.push(old);
            late.push((old, Some(old.2)));
        }
    }
    let on_time = input.len() - late.len();
    for p in [1, 2] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        let tag = OutputTag::<Rec>::new("late");
        let windows = env
            .from_collection(input.clone())
            .set_parallelism(1)
            .assign_timestamps_and_watermarks(
                WatermarkStrategy::for_generator(|| EveryRecord)
                    .with_timestamp_assigner(|r: &Rec| r.2),
            )
            .set_parallelism(1)
            .key_by(|r: &Rec| r.0)
            .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
            .side_output_late_data(&tag)
            .process(
                |_: &u64, _: &TimeWindow, records: &[Rec], out: &mut dyn Collector<u64>| {
                    out.collect(records.len() as u64)
                },
            );
        let late_out = with_timestamps(&windows.side_output(&tag)).collect_vec();
        let counts = windows.collect_vec();
        env.execute("late data timestamps").unwrap();
        assert_eq!(sorted(late_out.take()), sorted(late.clone()), "p={p}");
        assert_eq!(counts.take().iter().sum::<u64>(), on_time as u64, "p={p}");
    }
}

#[test]
fn process_function_side_outputs_keep_each_records_timestamp() {
    let input = records(2_000);
    let expected = sorted(
        input
            .iter()
            .filter(|r| r.1.is_multiple_of(3))
            .map(|&r| (r, Some(r.2)))
            .collect(),
    );
    for p in [1, 2] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        let tag = OutputTag::<Rec>::new("thirds");
        let side = tag.clone();
        let main = timed(&env, &input).process(
            move |r: Rec, ctx: &mut ProcessFunctionContext<'_, u64>| {
                if r.1.is_multiple_of(3) {
                    ctx.output(&side, r);
                } else {
                    ctx.collect(r.1);
                }
            },
        );
        let thirds = with_timestamps(&main.side_output(&tag)).collect_vec();
        let rest = main.collect_vec();
        env.execute("side output timestamps").unwrap();
        assert_eq!(sorted(thirds.take()), expected, "p={p}");
        assert_eq!(rest.take().len(), input.len() - expected.len(), "p={p}");
    }
}

#[test]
fn dead_letters_of_an_async_function_keep_their_records_timestamp() {
    use flink_core::async_io::{AsyncFailure, AsyncOptions};
    let input = records(1_000);
    let failing = |r: &Rec| r.1.is_multiple_of(10);
    let expected = sorted(
        input
            .iter()
            .filter(|r| failing(r))
            .map(|&r| (r, Some(r.2)))
            .collect(),
    );
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let enriched = timed(&env, &input).async_function(
        move |r: Rec| async move {
            if failing(&r) {
                Err(AsyncFailure::Permanent("refused".into()))
            } else {
                Ok(r.1)
            }
        },
        AsyncOptions::new().capacity(8).dead_letters(),
    );
    let letters = enriched
        .dead_letters::<Rec>()
        .process(
            |d: DeadLetter<Rec>, ctx: &mut ProcessFunctionContext<'_, (Rec, Option<i64>)>| {
                let ts = ctx.timestamp();
                ctx.collect((d.record, ts))
            },
        )
        .collect_vec();
    let ok = enriched.collect_vec();
    env.execute("dead letter timestamps").unwrap();
    assert_eq!(sorted(letters.take()), expected);
    assert_eq!(ok.take().len(), input.len() - expected.len());
}
