//! Unit tests of the window functions on the window operator, driven by hand on the
//! manual clock: `aggregate` (one accumulator per key and window), `process` (every
//! record and the window's metadata), `reduce` and `aggregate` combined with a
//! process function, accumulators merged by session windows, and sliding windows in
//! processing time.

use std::time::Duration;

use super::tests::{ByKey, Rec, context, operator_of};
use super::*;
use crate::clock::ManualClock;
use crate::windows::{
    AggregateFunction, AggregateProcessWindow, AggregateWindow, DefaultTrigger,
    EventTimeSessionWindows, ProcessWindow, ReduceProcessWindow, SlidingProcessingTimeWindows,
    TumblingEventTimeWindows,
};

type Op<W, A, O> = ByKey<O, W, A, DefaultTrigger>;

/// The window operator under test, with no lateness and the assigner's default
/// trigger.
fn window_operator<W, A, O>(assigner: W, agg: A, ctx: &RuntimeContext) -> Op<W, A, O>
where
    W: WindowAssigner,
    A: WindowAggregation<u8, Rec, O>,
{
    let trigger = assigner.default_trigger();
    operator_of(assigner, agg, trigger, 0, ctx)
}

/// The average of the values, with its count: the accumulator is (sum, count), so
/// the operator keeps two numbers per key and window, never the records.
#[derive(Clone)]
struct Average;

impl AggregateFunction<Rec, (f64, u64)> for Average {
    type Acc = (u64, u64);

    fn create_accumulator(&self) -> (u64, u64) {
        (0, 0)
    }

    fn add(&self, value: Rec, acc: &mut (u64, u64)) {
        acc.0 += u64::from(value.2);
        acc.1 += 1;
    }

    fn get_result(&self, acc: &(u64, u64)) -> (f64, u64) {
        (acc.0 as f64 / acc.1 as f64, acc.1)
    }

    fn can_merge(&self) -> bool {
        true
    }

    fn merge(&self, acc: &mut (u64, u64), other: (u64, u64)) {
        acc.0 += other.0;
        acc.1 += other.1;
    }
}

#[test]
fn aggregate_keeps_one_accumulator_per_key_and_window_and_emits_its_result() {
    let clock = ManualClock::new();
    let ctx = context(&clock);
    let tumbling = TumblingEventTimeWindows::of(Duration::from_millis(10));
    let mut op = window_operator(tumbling, AggregateWindow(Average, PhantomData), &ctx);
    let mut out: Vec<(f64, u64)> = Vec::new();
    for r in [(1, 1, 2), (1, 5, 4), (2, 3, 10), (1, 12, 7), (1, 9, 6)] {
        op.process(r, &mut out);
    }
    // Key 1 [0, 10): 2, 4, 6; key 2 [0, 10): 10; key 1 [10, 20): 7.
    assert_eq!(op.windows.len(), 3, "one accumulator per key and window");
    op.process_watermark(Watermark(9), &mut out);
    out.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(out, [(4.0, 3), (10.0, 1)]);
    op.end_input(&mut out);
    assert_eq!(out[2..], [(7.0, 1)]);
    assert!(op.windows.is_empty());
}

#[test]
fn process_sees_every_record_of_the_window_with_its_key_and_bounds() {
    let clock = ManualClock::new();
    let ctx = context(&clock);
    let tumbling = TumblingEventTimeWindows::of(Duration::from_millis(10));
    let describe =
        |key: &u8, window: &TimeWindow, records: &[Rec], out: &mut dyn Collector<String>| {
            let values: Vec<u32> = records.iter().map(|r| r.2).collect();
            out.collect(format!(
                "key {key} [{}, {}) {values:?}",
                window.start, window.end
            ));
        };
    let mut op = window_operator(tumbling, ProcessWindow(describe), &ctx);
    let mut out = Vec::new();
    for r in [(3, 14, 1), (3, 11, 2), (3, 19, 3), (4, 10, 9)] {
        op.process(r, &mut out);
    }
    op.process_watermark(Watermark(19), &mut out);
    out.sort();
    assert_eq!(out, ["key 3 [10, 20) [1, 2, 3]", "key 4 [10, 20) [9]"]);
}

#[test]
fn reduce_and_aggregate_combined_with_process_hand_the_result_and_the_window_on() {
    let clock = ManualClock::new();
    let ctx = context(&clock);
    let tumbling = TumblingEventTimeWindows::of(Duration::from_millis(10));
    let sum = |a: Rec, b: Rec| (a.0, a.1.max(b.1), a.2 + b.2);
    let stamp =
        |key: &u8, window: &TimeWindow, total: Rec, out: &mut dyn Collector<(u8, i64, u32)>| {
            out.collect((*key, window.end, total.2));
        };
    let mut reduced = window_operator(tumbling, ReduceProcessWindow(sum, stamp), &ctx);
    let average_at_end =
        |key: &u8, window: &TimeWindow, (avg, n): (f64, u64), out: &mut dyn Collector<String>| {
            out.collect(format!("{key}@{}: {avg} of {n}", window.end));
        };
    let mut averaged = window_operator(
        tumbling,
        AggregateProcessWindow(Average, average_at_end, PhantomData),
        &ctx,
    );
    let (mut sums, mut averages) = (Vec::new(), Vec::new());
    for r in [(1, 0, 1), (1, 4, 2), (1, 15, 5), (2, 7, 3)] {
        reduced.process(r, &mut sums);
        averaged.process(r, &mut averages);
    }
    reduced.end_input(&mut sums);
    averaged.end_input(&mut averages);
    sums.sort();
    averages.sort();
    assert_eq!(sums, [(1, 10, 3), (1, 20, 5), (2, 10, 3)]);
    assert_eq!(averages, ["1@10: 1.5 of 2", "1@20: 5 of 1", "2@10: 3 of 1"]);
}

#[test]
fn session_windows_merge_aggregate_accumulators_not_records() {
    let clock = ManualClock::new();
    let ctx = context(&clock);
    let sessions = EventTimeSessionWindows::with_gap(Duration::from_millis(10));
    let mut op = window_operator(sessions, AggregateWindow(Average, PhantomData), &ctx);
    let mut out: Vec<(f64, u64)> = Vec::new();
    // Sessions [0, 10) and [15, 25) until 7 bridges them into [0, 25).
    for r in [(1, 0, 2), (1, 15, 4)] {
        op.process(r, &mut out);
    }
    assert_eq!(op.sessions[&1].len(), 2);
    op.process((1, 7, 6), &mut out);
    assert_eq!(op.sessions[&1].len(), 1, "7 bridged the two sessions");
    op.process_watermark(Watermark(23), &mut out);
    assert!(out.is_empty(), "[0, 25) fires at 24");
    op.process_watermark(Watermark(24), &mut out);
    assert_eq!(out, [(4.0, 3)], "the merged accumulator holds all three");
    assert!(op.windows.is_empty() && op.sessions.is_empty());
}

#[test]
fn sliding_processing_time_windows_fire_each_pane_as_the_manual_clock_passes_its_end() {
    let clock = ManualClock::new();
    let ctx = context(&clock);
    let sliding =
        SlidingProcessingTimeWindows::of(Duration::from_millis(100), Duration::from_millis(50));
    let sum = |a: Rec, b: Rec| (a.0, a.1, a.2 + b.2);
    let stamp = |_: &u8, window: &TimeWindow, total: Rec, out: &mut dyn Collector<(i64, u32)>| {
        out.collect((window.end, total.2));
    };
    let mut op = window_operator(sliding, ReduceProcessWindow(sum, stamp), &ctx);
    let mut out = Vec::new();
    // At 10 ms: windows [-50, 50) and [0, 100).
    clock.advance(Duration::from_millis(10));
    op.process((1, 0, 1), &mut out);
    // At 60 ms: windows [0, 100) and [50, 150).
    clock.advance(Duration::from_millis(50));
    op.process((1, 0, 10), &mut out);
    assert_eq!(
        out,
        [],
        "[-50, 50) fires when a poll sees the clock past 49"
    );
    op.poll_pending(&mut Emitter::collecting(&mut out));
    assert_eq!(out, [(50, 1)]);
    clock.advance(Duration::from_millis(38));
    op.poll_pending(&mut Emitter::collecting(&mut out));
    assert_eq!(out.len(), 1, "[0, 100) fires when the clock reaches 99");
    clock.advance(Duration::from_millis(1));
    op.poll_pending(&mut Emitter::collecting(&mut out));
    assert_eq!(out[1..], [(100, 11)]);
    op.end_input(&mut out);
    assert_eq!(out[2..], [(150, 10)]);
}
