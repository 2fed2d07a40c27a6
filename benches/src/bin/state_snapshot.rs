//! What a snapshot of keyed state costs: bytes and time per MB for a keyed process
//! function's own value state alone, and with a list and a map state beside it,
//! over `keys` keys, in CPU time of the snapshotting thread: the synchronous
//! snapshot, the task's stop for the deferred (copy-on-write) one and its encoding,
//! and what the copies cost the records right after the barrier; what a keyed `sum`
//! stops for with its deferred snapshot; what event-time windows (reduce windows,
//! `keys` keys x 3 windows, and process windows, `keys` / 4 keys x 8 records) stop
//! for with theirs against their synchronous snapshot; and the per-record cost of
//! the copy-on-write map against a plain hash map (docs/checkpoints.md quotes the
//! output).
//!
//! `cargo run --release -p benches --bin state_snapshot -- [keys]`

use std::sync::Arc;

use flink_core::checkpoint::RestoredState;
use flink_core::clock::ManualClock;
use flink_core::operator::{Emitter, Operator, RuntimeContext, StateScope};
use flink_core::operators::{
    KeyedProcessFunctionOperator, KeyedReduceOperator, WindowOperator, WindowSettings,
};
use flink_core::prelude::*;
use flink_core::state::CowMap;
use flink_core::windows::{
    ProcessWindow, ReduceWindow, TimeWindow, TumblingEventTimeWindows, WindowAggregation,
    WindowAssigner,
};

fn context() -> RuntimeContext {
    RuntimeContext::standalone("state", 0, 1, Arc::new(ManualClock::new()))
}

/// Per key: its last record as the function's value state and, if `named`, every
/// record in a list state and by residue mod 4 in a map state.
#[derive(Clone)]
struct Fill {
    named: bool,
    list: ListStateDescriptor<u64>,
    map: MapStateDescriptor<u32, u64>,
}

impl KeyedProcessFunction<u64, (u64, u64), ()> for Fill {
    type State = u64;

    fn process_element(&mut self, (k, round): (u64, u64), ctx: &mut KeyedContext<u64, u64, ()>) {
        let x = k * 4 + round;
        ctx.state().update(x);
        if self.named {
            ctx.get_list_state(&self.list).add(x);
            ctx.get_map_state(&self.map).put(round as u32, x);
        }
    }
}

/// This thread's time on a CPU (from /proc/thread-self/schedstat), so that other
/// processes on a busy machine do not count.
fn cpu_time() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e9)
}

fn measure(label: &str, keys: u64, named: bool) {
    let scope = StateScope {
        subtask_index: 0,
        parallelism: 1,
        max_parallelism: 128,
    };
    let f = Fill {
        named,
        list: ListStateDescriptor::new("list"),
        map: MapStateDescriptor::new("map"),
    };
    let key = (|r: &(u64, u64)| r.0) as fn(&(u64, u64)) -> u64;
    let mut op = KeyedProcessFunctionOperator::new(key, f.clone(), None, &context());
    let mut out = Vec::new();
    for round in 0..4 {
        let mut batch: Vec<(u64, u64)> = (0..keys).map(|k| (k, round)).collect();
        op.process_batch(&mut batch, &mut Emitter::collecting(&mut out));
    }
    let mut best = f64::MAX;
    let mut bytes = Vec::new();
    for _ in 0..3 {
        let start = cpu_time();
        bytes = op.snapshot_state(scope, 1).unwrap().unwrap();
        best = best.min(cpu_time() - start);
    }
    // The deferred snapshot: the task's stop (the handle), the encoding it defers,
    // and a round over every key while the snapshot is still held (every shard is
    // copied once) against the same round without a snapshot.
    let (mut stop, mut deferred, mut round_held, mut round_free) =
        (f64::MAX, f64::MAX, f64::MAX, f64::MAX);
    let round = |op: &mut KeyedProcessFunctionOperator<_, _, _, _, _>, r: u64| {
        let mut batch: Vec<(u64, u64)> = (0..keys).map(|k| (k, r)).collect();
        let mut out = Vec::new();
        let start = cpu_time();
        op.process_batch(&mut batch, &mut Emitter::collecting(&mut out));
        cpu_time() - start
    };
    for _ in 0..3 {
        // Wall time: too short for the scheduler's CPU time accounting.
        let start = std::time::Instant::now();
        let state = op.snapshot_state_deferred(scope, 1).unwrap().unwrap();
        stop = stop.min(start.elapsed().as_secs_f64());
        // Round 3 again: the value state stays as it was (lists grow).
        round_held = round_held.min(round(&mut op, 3));
        let start = cpu_time();
        let encoded = state.into_bytes().unwrap();
        deferred = deferred.min(cpu_time() - start);
        assert!(encoded.len() >= bytes.len(), "the snapshot's state or more");
        round_free = round_free.min(round(&mut op, 3));
    }
    let restored = RestoredState {
        checkpoint_id: Some(1),
        by_subtask: vec![Some(Arc::from(bytes.clone()))].into(),
    };
    let start = cpu_time();
    let mut back = KeyedProcessFunctionOperator::new(key, f, None, &context());
    back.restore_state(scope, &restored).unwrap();
    let restore = cpu_time() - start;
    let mb = bytes.len() as f64 / 1e6;
    println!(
        "{label}: keys={keys} bytes={} ({:.1} B/key) snapshot={:.1} ms ({:.1} ms/MB, {:.0} MB/s) restore={:.1} ms",
        bytes.len(),
        bytes.len() as f64 / keys as f64,
        best * 1e3,
        best * 1e3 / mb,
        mb / best,
        restore * 1e3
    );
    println!(
        "  deferred: task stops {:.1} us (the handle, wall time), encoding {:.1} ms off the task; \
         a round of {keys} records {:.1} ms while the snapshot is held (copies) against {:.1} ms",
        stop * 1e6,
        deferred * 1e3,
        round_held * 1e3,
        round_free * 1e3
    );
}

/// The per-record path of a keyed `process` (find the key's slot, change it where
/// it lies) over `keys` keys, in a plain hash map and in the copy-on-write map.
fn measure_map_path(keys: u64) {
    const ROUNDS: u64 = 8;
    // The map keyed `process` kept its slots in before [`CowMap`].
    let mut plain: hashbrown::HashMap<u64, Option<u64>> = hashbrown::HashMap::new();
    let mut cow: CowMap<u64, Option<u64>> = CowMap::new();
    for k in 0..keys {
        plain.insert(k, Some(0));
        cow.insert(k, Some(0));
    }
    // A fixed scrambled order, as keys come from a stream.
    let order: Vec<u64> = (0..keys)
        .map(|i| i.wrapping_mul(0x9E37_79B9) % keys)
        .collect();
    let (mut t_plain, mut t_cow) = (f64::MAX, f64::MAX);
    for _ in 0..3 {
        let start = cpu_time();
        for _ in 0..ROUNDS {
            for k in &order {
                if let Some((_, Some(v))) = plain.get_key_value_mut(k) {
                    *v += 1;
                }
            }
        }
        t_plain = t_plain.min(cpu_time() - start);
        let start = cpu_time();
        for _ in 0..ROUNDS {
            for k in &order {
                if let Some((_, Some(v))) = cow.get_key_value_mut(k) {
                    *v += 1;
                }
            }
        }
        t_cow = t_cow.min(cpu_time() - start);
    }
    let n = (ROUNDS * keys) as f64;
    println!(
        "per-record map path over {keys} keys: hash map {:.1} ns, copy-on-write map {:.1} ns",
        t_plain * 1e9 / n,
        t_cow * 1e9 / n
    );
}

/// The best of three of an operator's snapshot costs, in seconds of CPU: the task's
/// stop for a deferred snapshot (the copy), the encoding it defers, and a
/// synchronous snapshot; with the deferred bytes (checked equal to the synchronous
/// ones if `same_bytes`: a hash table's copy may list its entries in another order).
fn snapshot_costs<I, O, Op: Operator<I, O>>(
    op: &mut Op,
    scope: StateScope,
    same_bytes: bool,
) -> (Vec<u8>, [f64; 3]) {
    let mut best = [f64::MAX; 3];
    let mut bytes = Vec::new();
    for _ in 0..3 {
        let start = cpu_time();
        let state = op.snapshot_state_deferred(scope, 1).unwrap().unwrap();
        let copied = cpu_time();
        bytes = state.into_bytes().unwrap();
        let encoded = cpu_time();
        let now = op.snapshot_state(scope, 1).unwrap().unwrap();
        let took = [copied - start, encoded - copied, cpu_time() - encoded];
        if same_bytes {
            assert_eq!(
                now, bytes,
                "the deferred encoding gives the synchronous bytes"
            );
        }
        for (b, t) in best.iter_mut().zip(took) {
            *b = b.min(t);
        }
    }
    (bytes, best)
}

/// A keyed `sum`'s accumulators ((u64, u64) per key): what the task stops for with
/// the deferred snapshot (a copy of the table) against the encoding it defers and
/// the synchronous snapshot.
fn measure_reduce(keys: u64) {
    let scope = StateScope {
        subtask_index: 0,
        parallelism: 1,
        max_parallelism: 128,
    };
    let sum = |a: (u64, u64), b: (u64, u64)| (a.0, a.1 + b.1);
    let mut op = KeyedReduceOperator::new(|r: &(u64, u64)| r.0, sum);
    let mut out = Vec::new();
    let mut batch: Vec<(u64, u64)> = (0..keys).map(|k| (k, 1)).collect();
    op.process_batch(&mut batch, &mut Emitter::collecting(&mut out));
    let (bytes, [stop, deferred, sync]) = snapshot_costs(&mut op, scope, false);
    println!(
        "keyed sum (u64, u64): keys={keys} bytes={} task stops {:.1} ms (copy), deferred encoding {:.1} ms; synchronous snapshot {:.1} ms",
        bytes.len(),
        stop * 1e3,
        deferred * 1e3,
        sync * 1e3
    );
}

/// (key, event timestamp, value) for the window cases.
type Timed = (u64, i64, u64);

/// The window operator's snapshot costs: the task's stop for the deferred
/// snapshot (the copy of windows and timers, CPU time), the encoding it defers,
/// and the synchronous snapshot; `records` go into 10 ms tumbling event-time
/// windows (no watermark: every window stays open).
fn measure_window<A, O>(label: &str, agg: A, records: &[Timed])
where
    A: WindowAggregation<u64, Timed, O>,
    O: 'static,
{
    let scope = StateScope {
        subtask_index: 0,
        parallelism: 1,
        max_parallelism: 128,
    };
    let tumbling = TumblingEventTimeWindows::of(std::time::Duration::from_millis(10));
    let settings = WindowSettings {
        allowed_lateness_ms: 0,
        late_output: None,
        timestamps: Some(Arc::new(|r: &Timed| r.1)),
    };
    let trigger = tumbling.default_trigger();
    let key = (|r: &Timed| r.0) as fn(&Timed) -> u64;
    let mut op = WindowOperator::new(key, tumbling, agg, trigger, settings, &context());
    let mut out: Vec<O> = Vec::new();
    for r in records {
        op.process(*r, &mut out);
    }
    let (bytes, [stop, deferred, sync]) = snapshot_costs(&mut op, scope, true);
    let mb = bytes.len() as f64 / 1e6;
    println!(
        "{label}: records={} bytes={} ({mb:.1} MB) task stops {:.1} ms (copy, {:.1} ms/MB), \
         deferred encoding {:.1} ms; synchronous snapshot {:.1} ms ({:.1} ms/MB)",
        records.len(),
        bytes.len(),
        stop * 1e3,
        stop * 1e3 / mb,
        deferred * 1e3,
        sync * 1e3,
        sync * 1e3 / mb
    );
}

/// Reduce windows (`keys` keys x 3 windows, one running sum each) and process
/// windows (`keys` / 4 keys x 8 records in one window each).
fn measure_windows(keys: u64) {
    let sum = |a: Timed, b: Timed| (a.0, a.1.max(b.1), a.2 + b.2);
    let reduced: Vec<Timed> = (0..3)
        .flat_map(|w| (0..keys).map(move |k| (k, w * 10, k)))
        .collect();
    measure_window(
        "reduce windows (u64, i64, u64) x 3 per key",
        ReduceWindow::new(sum),
        &reduced,
    );
    let each = |_: &u64, _: &TimeWindow, records: &[Timed], out: &mut dyn Collector<usize>| {
        out.collect(records.len());
    };
    let kept: Vec<Timed> = (0..8)
        .flat_map(|i| (0..keys / 4).map(move |k| (k, i, k + i as u64)))
        .collect();
    measure_window(
        "process windows, 8 records (u64, i64, u64) per key",
        ProcessWindow::new(each),
        &kept,
    );
}

fn main() {
    let keys: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    measure("value state only", keys, false);
    measure("value + list(4) + map(4)", keys, true);
    measure_reduce(keys);
    measure_windows(keys);
    measure_map_path(keys);
}
