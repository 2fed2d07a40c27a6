//! Deferred snapshots of window state: the window operator copies its windows
//! (contents and trigger states) and timers at the barrier and goes on; the copy,
//! encoded afterwards on another thread, gives the bytes of the synchronous
//! snapshot of that moment and restores to it, also at another parallelism.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use flink_core::checkpoint::RestoredState;
use flink_core::clock::ManualClock;
use flink_core::functions::Collector;
use flink_core::operator::{Operator, RuntimeContext, StateScope};
use flink_core::operators::{WindowOperator, WindowSettings};
use flink_core::watermark::Watermark;
use flink_core::windows::{
    ProcessWindow, ReduceWindow, SlidingEventTimeWindows, TimeWindow, TumblingEventTimeWindows,
    WindowAssigner,
};

/// (key, event timestamp, value).
type Rec = (u64, i64, u64);
type Key = fn(&Rec) -> u64;
/// (key, window start, records, sum of values).
type Summary = (u64, i64, usize, u64);
type Summarize = fn(&u64, &TimeWindow, &[Rec], &mut dyn Collector<Summary>);

const KEYS: u64 = 5_000;

fn scope(subtask_index: usize, parallelism: usize) -> StateScope {
    StateScope {
        subtask_index,
        parallelism,
        max_parallelism: 128,
    }
}

fn operator<W, A, O>(
    assigner: W,
    agg: A,
    subtask: usize,
    parallelism: usize,
) -> impl Operator<Rec, O>
where
    W: WindowAssigner,
    A: flink_core::windows::WindowAggregation<u64, Rec, O>,
    O: 'static,
{
    let ctx = RuntimeContext::standalone(
        "windows",
        subtask,
        parallelism,
        Arc::new(ManualClock::new()),
    );
    let settings = WindowSettings {
        allowed_lateness_ms: 0,
        late_output: None,
        timestamps: Some(Arc::new(|r: &Rec| r.1)),
    };
    let trigger = assigner.default_trigger();
    WindowOperator::new(
        (|r: &Rec| r.0) as Key,
        assigner,
        agg,
        trigger,
        settings,
        &ctx,
    )
}

fn sum(a: Rec, b: Rec) -> Rec {
    (a.0, a.1.max(b.1), a.2 + b.2)
}

fn summarize(key: &u64, window: &TimeWindow, records: &[Rec], out: &mut dyn Collector<Summary>) {
    let total = records.iter().map(|r| r.2).sum();
    out.collect((*key, window.start, records.len(), total));
}

/// Every key at times 0, 3, .., 27 (values by key and time), then watermark 10.
fn before_barrier<O, Op: Operator<Rec, O>>(op: &mut Op) {
    let mut out = Vec::new();
    for ts in (0..30).step_by(3) {
        for k in 0..KEYS {
            op.process((k, ts, k * 100 + ts as u64), &mut out);
        }
    }
    op.process_watermark(Watermark(10), &mut out);
}

/// What the task does after the barrier: changes every key's windows, opens new
/// ones, fires and cleans up most of them.
fn after_barrier<O, Op: Operator<Rec, O>>(op: &mut Op) {
    let mut out = Vec::new();
    for ts in [12, 29, 31, 38] {
        for k in 0..KEYS {
            op.process((k, ts, 7), &mut out);
        }
    }
    op.process_watermark(Watermark(25), &mut out);
}

/// Everything still pending fired, sorted.
fn rest<O: Ord, Op: Operator<Rec, O>>(op: &mut Op) -> Vec<O> {
    let mut out = Vec::new();
    op.end_input(&mut out);
    out.sort_unstable();
    out
}

/// Takes a deferred snapshot after [`before_barrier`], encodes it on another
/// thread while the task goes on with [`after_barrier`], and checks it against the
/// synchronous snapshot and against an operator that never went past the barrier,
/// restored at parallelism 1 and 3; returns how many results the rest gave.
fn check<O, Op>(make: impl Fn(usize, usize) -> Op) -> usize
where
    O: Ord + Debug,
    Op: Operator<Rec, O>,
{
    let (mut op, mut reference) = (make(0, 1), make(0, 1));
    before_barrier(&mut op);
    before_barrier(&mut reference);
    let sync = op.snapshot_state(scope(0, 1), 1).unwrap().unwrap();
    let deferred = op.snapshot_state_deferred(scope(0, 1), 1).unwrap().unwrap();
    // The task did not encode: it hands the encoding on.
    assert_eq!(format!("{deferred:?}"), "DeferredState::Later");
    let encoding = std::thread::spawn(move || deferred.into_bytes());
    after_barrier(&mut op);
    let bytes = encoding.join().unwrap().unwrap();
    assert_eq!(bytes, sync, "the synchronous snapshot's bytes");
    assert_ne!(op.snapshot_state(scope(0, 1), 2).unwrap().unwrap(), sync);
    let expected = rest(&mut reference);
    let state = RestoredState {
        checkpoint_id: Some(1),
        by_subtask: vec![Some(Arc::from(bytes))].into(),
    };
    for parallelism in [1, 3] {
        let mut got = Vec::new();
        for subtask in 0..parallelism {
            let mut restored = make(subtask, parallelism);
            restored
                .restore_state(scope(subtask, parallelism), &state)
                .unwrap();
            got.extend(rest(&mut restored));
        }
        got.sort_unstable();
        assert_eq!(got, expected, "restored at parallelism {parallelism}");
    }
    expected.len()
}

#[test]
fn a_deferred_snapshot_of_reduce_windows_holds_the_windows_and_timers_of_its_moment() {
    let sliding = SlidingEventTimeWindows::of(Duration::from_millis(10), Duration::from_millis(5));
    let results = check(|subtask, parallelism| {
        let reduce = ReduceWindow::new(sum as fn(Rec, Rec) -> Rec);
        operator(sliding, reduce, subtask, parallelism)
    });
    // Windows [-5, 5) and [0, 10) fired at watermark 10; [5, 15) .. [25, 35) remain.
    assert_eq!(results, 5 * KEYS as usize);
}

#[test]
fn a_deferred_snapshot_of_process_windows_holds_every_record_of_its_moment() {
    let tumbling = TumblingEventTimeWindows::of(Duration::from_millis(10));
    let results = check(|subtask, parallelism| {
        let process = ProcessWindow::new(summarize as Summarize);
        operator(tumbling, process, subtask, parallelism)
    });
    // [0, 10) fired at watermark 10; [10, 20) and [20, 30) remain.
    assert_eq!(results, 2 * KEYS as usize);
}
