//! Deferred (copy-on-write) snapshots of a keyed process function: the task hands
//! out a snapshot handle at the barrier and goes on changing every kind of state;
//! the handle, encoded afterwards on another thread, holds exactly the state at the
//! barrier, and restores to it (also at another parallelism).

use std::collections::BTreeMap;
use std::sync::Arc;

use flink_core::checkpoint::RestoredState;
use flink_core::clock::ManualClock;
use flink_core::operator::{Emitter, Operator, RuntimeContext, StateScope};
use flink_core::operators::KeyedProcessFunctionOperator;
use flink_core::prelude::*;
use flink_core::state::{ListStateDescriptor, MapStateDescriptor};
use flink_core::watermark::Watermark;

/// Probes a key instead of changing it.
const PROBE: u64 = u64::MAX;
/// Clears every state of a key.
const CLEAR: u64 = u64::MAX - 1;

/// What a probe or a timer of a key saw.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Seen {
    /// A probe: the key, its value state, its list, its map.
    State(u64, Option<u64>, Vec<u64>, Vec<(u32, u64)>),
    /// An event-time timer of the key fired at the timestamp.
    Timer(u64, i64),
}

/// Per key: the last value in the function's state, every value in a list state,
/// the last value per residue mod 4 in a map state, an event timer per value.
#[derive(Clone)]
struct Everything {
    list: ListStateDescriptor<u64>,
    map: MapStateDescriptor<u32, u64>,
}

impl KeyedProcessFunction<u64, (u64, u64), Seen> for Everything {
    type State = u64;

    fn process_element(&mut self, (k, x): (u64, u64), ctx: &mut KeyedContext<u64, u64, Seen>) {
        match x {
            PROBE => {
                let value = ctx.state().value().copied();
                let mut list: Vec<u64> = ctx.get_list_state(&self.list).get().copied().collect();
                list.sort_unstable();
                let mut map: Vec<(u32, u64)> = ctx
                    .get_map_state(&self.map)
                    .iter()
                    .map(|(a, b)| (*a, *b))
                    .collect();
                map.sort_unstable();
                ctx.collect(Seen::State(k, value, list, map));
            }
            CLEAR => {
                ctx.state().clear();
                ctx.get_list_state(&self.list).clear();
                ctx.get_map_state(&self.map).clear();
            }
            x => {
                ctx.state().update(x);
                ctx.get_list_state(&self.list).add(x);
                ctx.get_map_state(&self.map).put((x % 4) as u32, x);
                ctx.timer_service()
                    .register_event_time_timer((k * 10 + x % 3) as i64);
            }
        }
    }

    fn on_timer(&mut self, ts: i64, ctx: &mut KeyedContext<u64, u64, Seen>) {
        let k = *ctx.key();
        ctx.collect(Seen::Timer(k, ts));
    }
}

type Key = fn(&(u64, u64)) -> u64;
type Op = KeyedProcessFunctionOperator<u64, (u64, u64), Seen, Key, Everything>;

fn operator(subtask: usize, parallelism: usize) -> Op {
    let ctx = RuntimeContext::standalone(
        "everything",
        subtask,
        parallelism,
        Arc::new(ManualClock::new()),
    );
    let f = Everything {
        list: ListStateDescriptor::new("list"),
        map: MapStateDescriptor::new("map"),
    };
    KeyedProcessFunctionOperator::new((|r: &(u64, u64)| r.0) as Key, f, None, &ctx)
}

fn scope(subtask_index: usize, parallelism: usize) -> StateScope {
    StateScope {
        subtask_index,
        parallelism,
        max_parallelism: 128,
    }
}

fn feed(op: &mut Op, records: impl IntoIterator<Item = (u64, u64)>) -> Vec<Seen> {
    let mut batch: Vec<_> = records.into_iter().collect();
    let mut out = Vec::new();
    op.process_batch(&mut batch, &mut Emitter::collecting(&mut out));
    out
}

const KEYS: u64 = 5_000;

/// Two values for every key.
fn before_barrier() -> impl Iterator<Item = (u64, u64)> {
    (0..2).flat_map(|round| (0..KEYS).map(move |k| (k, k * 4 + round)))
}

/// What every key holds after [`before_barrier`], from first principles.
fn expected_at_barrier() -> Vec<Seen> {
    let mut seen = Vec::new();
    for k in 0..KEYS {
        let values = [k * 4, k * 4 + 1];
        let mut map: BTreeMap<u32, u64> = BTreeMap::new();
        for x in values {
            map.insert((x % 4) as u32, x);
        }
        seen.push(Seen::State(
            k,
            Some(values[1]),
            values.to_vec(),
            map.into_iter().collect(),
        ));
        let mut timers: Vec<i64> = values.iter().map(|x| (k * 10 + x % 3) as i64).collect();
        timers.dedup();
        seen.extend(timers.into_iter().map(|ts| Seen::Timer(k, ts)));
    }
    seen.sort();
    seen
}

/// Every key's state and timers as instances restored from `snapshots` (written
/// at the parallelism of their count) see them at `parallelism`.
fn restored_view(snapshots: &[Vec<u8>], parallelism: usize) -> Vec<Seen> {
    let restored = RestoredState {
        checkpoint_id: Some(1),
        by_subtask: snapshots
            .iter()
            .map(|b| Some(Arc::from(b.clone())))
            .collect::<Vec<_>>()
            .into(),
    };
    let mut seen = Vec::new();
    for subtask in 0..parallelism {
        let mut op = operator(subtask, parallelism);
        op.restore_state(scope(subtask, parallelism), &restored)
            .unwrap();
        let owned = (0..KEYS)
            .filter(|k| flink_core::key_group::subtask_of_key(k, 128, parallelism) == subtask);
        seen.extend(feed(&mut op, owned.map(|k| (k, PROBE))));
        op.process_watermark(Watermark(i64::MAX), &mut seen);
    }
    // A probe leaves no state behind, so probed keys without state do not show.
    seen.retain(|s| !matches!(s, Seen::State(_, None, l, m) if l.is_empty() && m.is_empty()));
    seen.sort();
    seen
}

#[test]
fn state_changed_after_the_barrier_stays_out_of_the_deferred_snapshot() {
    let mut op = operator(0, 1);
    feed(&mut op, before_barrier());
    let deferred = op.snapshot_state_deferred(scope(0, 1), 1).unwrap().unwrap();
    // After the barrier: every key changes (a new value, or cleared), new keys
    // come, timers of the old keys fire, before the snapshot is encoded.
    feed(
        &mut op,
        (0..KEYS).map(|k| (k, if k % 3 == 0 { CLEAR } else { k * 4 + 2 })),
    );
    feed(&mut op, (KEYS..KEYS + 500).map(|k| (k, k * 4)));
    let mut fired = Vec::new();
    op.process_watermark(Watermark(((KEYS / 2) * 10) as i64), &mut fired);
    assert!(fired.len() > 4_000, "timers fired after the barrier");
    let encoding = std::thread::spawn(move || deferred.into_bytes().unwrap());
    // The task goes on while the snapshot is encoded on the other thread.
    feed(&mut op, (0..KEYS).map(|k| (k, k * 4 + 3)));
    let bytes = encoding.join().unwrap();

    let expected = expected_at_barrier();
    assert_eq!(restored_view(std::slice::from_ref(&bytes), 1), expected);

    // The same state as a synchronous snapshot at the barrier, decoded.
    let mut twin = operator(0, 1);
    feed(&mut twin, before_barrier());
    let sync = twin.snapshot_state(scope(0, 1), 1).unwrap().unwrap();
    assert_eq!(bytes.len(), sync.len(), "same entries, same encoding size");
    assert_eq!(restored_view(&[sync], 1), expected);
}

#[test]
fn a_deferred_snapshot_at_two_instances_restores_at_one_three_and_four() {
    let mut snapshots = Vec::new();
    for subtask in 0..2 {
        let mut op = operator(subtask, 2);
        let owned = before_barrier()
            .filter(|(k, _)| flink_core::key_group::subtask_of_key(k, 128, 2) == subtask);
        feed(&mut op, owned);
        let deferred = op
            .snapshot_state_deferred(scope(subtask, 2), 1)
            .unwrap()
            .unwrap();
        feed(&mut op, (0..KEYS).map(|k| (k, CLEAR)));
        snapshots.push(deferred.into_bytes().unwrap());
    }
    let expected = expected_at_barrier();
    for parallelism in [1, 3, 4] {
        assert_eq!(
            restored_view(&snapshots, parallelism),
            expected,
            "parallelism {parallelism}"
        );
    }
}
