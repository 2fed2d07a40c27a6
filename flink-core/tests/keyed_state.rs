//! Named keyed state (value, list, map, reducing, aggregating) in a keyed process
//! function: per key, several per function, with TTL on the manual clock, through a
//! snapshot and a restore at another parallelism.

use std::sync::Arc;
use std::time::Duration;

use flink_core::checkpoint::{RestoredState, StateError};
use flink_core::clock::ManualClock;
use flink_core::operator::{Emitter, Operator, RuntimeContext, StateScope};
use flink_core::operators::KeyedProcessFunctionOperator;
use flink_core::prelude::*;
use flink_core::state::{
    AggregatingStateDescriptor, ListStateDescriptor, MapStateDescriptor, ReducingStateDescriptor,
    StateTtlConfig, TtlUpdateType, ValueStateDescriptor,
};
use flink_core::windows::AggregateFunction;

fn context(clock: &ManualClock, subtask_index: usize, parallelism: usize) -> RuntimeContext {
    RuntimeContext::standalone("state", subtask_index, parallelism, Arc::new(clock.clone()))
}

/// The mean of the values, as an aggregate function.
#[derive(Clone)]
struct Mean;

impl AggregateFunction<u64, f64> for Mean {
    type Acc = (u64, u64);
    fn create_accumulator(&self) -> (u64, u64) {
        (0, 0)
    }
    fn add(&self, v: u64, acc: &mut (u64, u64)) {
        acc.0 += v;
        acc.1 += 1;
    }
    fn get_result(&self, acc: &(u64, u64)) -> f64 {
        acc.0 as f64 / acc.1 as f64
    }
}

/// What one record sees of its key after adding itself: the previous value, every
/// value in order, count per residue mod 3, the max, the mean.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    key: u64,
    previous: Option<u64>,
    all: Vec<u64>,
    by_residue: Vec<(u64, u32)>,
    max: Option<u64>,
    mean: Option<f64>,
}

#[derive(Clone)]
struct EveryKind {
    last: ValueStateDescriptor<u64>,
    all: ListStateDescriptor<u64>,
    by_residue: MapStateDescriptor<u64, u32>,
    max: ReducingStateDescriptor<u64>,
    mean: AggregatingStateDescriptor<u64, f64, Mean>,
}

impl EveryKind {
    fn new() -> Self {
        Self {
            last: ValueStateDescriptor::new("last"),
            all: ListStateDescriptor::new("all"),
            by_residue: MapStateDescriptor::new("by-residue"),
            max: ReducingStateDescriptor::new("max", |a: u64, b: u64| a.max(b)),
            mean: AggregatingStateDescriptor::new("mean", Mean),
        }
    }
}

impl KeyedProcessFunction<u64, u64, Seen> for EveryKind {
    /// Counts records: the function's own value state beside the named ones.
    type State = u32;

    fn process_element(&mut self, x: u64, ctx: &mut KeyedContext<u64, u32, Seen>) {
        let previous = ctx.get_state(&self.last).value().copied();
        ctx.get_state(&self.last).update(x);
        ctx.get_list_state(&self.all).add(x);
        let mut by_residue = ctx.get_map_state(&self.by_residue);
        let n = by_residue.get(&(x % 3)).copied().unwrap_or(0);
        by_residue.put(x % 3, n + 1);
        let mut by_residue: Vec<(u64, u32)> = by_residue.iter().map(|(k, v)| (*k, *v)).collect();
        by_residue.sort_unstable();
        ctx.get_reducing_state(&self.max).add(x);
        ctx.get_aggregating_state(&self.mean).add(x);
        let count = ctx.state().value().copied().unwrap_or(0);
        ctx.state().update(count + 1);
        let seen = Seen {
            key: *ctx.key(),
            previous,
            all: ctx.get_list_state(&self.all).get().copied().collect(),
            by_residue,
            max: ctx.get_reducing_state(&self.max).get().copied(),
            mean: ctx.get_aggregating_state(&self.mean).get(),
        };
        assert_eq!(seen.all.len(), count as usize + 1, "own state agrees");
        ctx.collect(seen);
    }
}

type EveryKindOp = KeyedProcessFunctionOperator<u64, u64, Seen, fn(&u64) -> u64, EveryKind>;

fn every_kind(clock: &ManualClock, subtask: usize, parallelism: usize) -> EveryKindOp {
    KeyedProcessFunctionOperator::new(
        (|x: &u64| x % 10) as fn(&u64) -> u64,
        EveryKind::new(),
        None,
        &context(clock, subtask, parallelism),
    )
}

fn feed<O, Op: Operator<u64, O>>(op: &mut Op, records: impl IntoIterator<Item = u64>) -> Vec<O> {
    let mut batch: Vec<u64> = records.into_iter().collect();
    let mut out = Vec::new();
    op.process_batch(&mut batch, &mut Emitter::collecting(&mut out));
    out
}

/// What a single instance that never stopped emits for `x` after `0..x`.
fn expected(x: u64) -> Seen {
    let key = x % 10;
    let all: Vec<u64> = (0..=x).filter(|v| v % 10 == key).collect();
    let mut by_residue: Vec<(u64, u32)> = Vec::new();
    for r in 0..3 {
        let n = all.iter().filter(|v| *v % 3 == r).count() as u32;
        if n > 0 {
            by_residue.push((r, n));
        }
    }
    Seen {
        key,
        previous: all.len().checked_sub(2).map(|i| all[i]),
        max: all.iter().max().copied(),
        mean: Some(all.iter().sum::<u64>() as f64 / all.len() as f64),
        by_residue,
        all,
    }
}

#[test]
fn every_kind_of_state_is_kept_per_key() {
    let clock = ManualClock::new();
    let mut op = every_kind(&clock, 0, 1);
    let out = feed(&mut op, 0..100);
    assert_eq!(out, (0..100).map(expected).collect::<Vec<_>>());
}

fn scope(subtask_index: usize, parallelism: usize) -> StateScope {
    StateScope {
        subtask_index,
        parallelism,
        max_parallelism: 128,
    }
}

/// Snapshots of two instances that processed `0..n` (split by key group).
fn snapshots_at_two(clock: &ManualClock, n: u64) -> Result<RestoredState, StateError> {
    let mut by_subtask = Vec::new();
    for subtask in 0..2 {
        let mut op = every_kind(clock, subtask, 2);
        let mine = (0..n).filter(|x| owner(x % 10, 2) == subtask);
        feed(&mut op, mine);
        by_subtask.push(op.snapshot_state(scope(subtask, 2), 1)?.map(Arc::from));
    }
    Ok(RestoredState {
        checkpoint_id: Some(1),
        by_subtask: by_subtask.into(),
    })
}

fn owner(key: u64, parallelism: usize) -> usize {
    use flink_core::key_group::{key_group_of, stable_key_hash, subtask_of_key_group};
    subtask_of_key_group(key_group_of(stable_key_hash(&key), 128), 128, parallelism)
}

#[test]
fn every_kind_of_state_survives_a_restore_at_another_parallelism() {
    let clock = ManualClock::new();
    let restored = snapshots_at_two(&clock, 100).unwrap();
    for parallelism in [1, 3, 4] {
        let mut out = Vec::new();
        for subtask in 0..parallelism {
            let mut op = every_kind(&clock, subtask, parallelism);
            op.restore_state(scope(subtask, parallelism), &restored)
                .unwrap();
            out.extend(feed(
                &mut op,
                (100..200).filter(|x| owner(x % 10, parallelism) == subtask),
            ));
        }
        out.sort_by_key(|s| *s.all.last().unwrap());
        assert_eq!(
            out,
            (100..200).map(expected).collect::<Vec<_>>(),
            "parallelism {parallelism}"
        );
    }
}

#[test]
fn state_nobody_asked_for_since_a_restore_goes_into_the_next_snapshot_as_it_was() {
    let clock = ManualClock::new();
    let restored = snapshots_at_two(&clock, 100).unwrap();
    // Restored at 1, snapshotted again without a record, restored again at 2.
    let mut op = every_kind(&clock, 0, 1);
    op.restore_state(scope(0, 1), &restored).unwrap();
    let again = RestoredState {
        checkpoint_id: Some(2),
        by_subtask: vec![op.snapshot_state(scope(0, 1), 2).unwrap().map(Arc::from)].into(),
    };
    let mut out = Vec::new();
    for subtask in 0..2 {
        let mut op = every_kind(&clock, subtask, 2);
        op.restore_state(scope(subtask, 2), &again).unwrap();
        out.extend(feed(
            &mut op,
            (100..200).filter(|x| owner(x % 10, 2) == subtask),
        ));
    }
    out.sort_by_key(|s| *s.all.last().unwrap());
    assert_eq!(out, (100..200).map(expected).collect::<Vec<_>>());
}

/// (key, write?): a write sets the value state and appends to the list; every
/// record emits what the key's value and list hold afterwards.
#[derive(Clone)]
struct Expiring {
    value: ValueStateDescriptor<u64>,
    list: ListStateDescriptor<u64>,
    map: MapStateDescriptor<u64, u64>,
}

fn expiring(update_type: TtlUpdateType) -> Expiring {
    let ttl = StateTtlConfig::builder(Duration::from_millis(10))
        .update_type(update_type)
        .build()
        .unwrap();
    Expiring {
        value: ValueStateDescriptor::new("value").with_ttl(ttl),
        list: ListStateDescriptor::new("list").with_ttl(ttl),
        map: MapStateDescriptor::new("map").with_ttl(ttl),
    }
}

/// (value, list, map entries) after the record.
type Held = (Option<u64>, Vec<u64>, usize);

impl KeyedProcessFunction<u64, (u64, u64), Held> for Expiring {
    type State = ();

    fn process_element(&mut self, (_, write): (u64, u64), ctx: &mut KeyedContext<u64, (), Held>) {
        if write > 0 {
            ctx.get_state(&self.value).update(write);
            ctx.get_list_state(&self.list).add(write);
            ctx.get_map_state(&self.map).put(write, write);
        }
        let value = ctx.get_state(&self.value).value().copied();
        let list = ctx.get_list_state(&self.list).get().copied().collect();
        let map = ctx.get_map_state(&self.map).iter().count();
        ctx.collect((value, list, map));
    }
}

fn ttl_operator(
    clock: &ManualClock,
    update_type: TtlUpdateType,
) -> impl Operator<(u64, u64), Held> {
    KeyedProcessFunctionOperator::new(
        (|r: &(u64, u64)| r.0) as fn(&(u64, u64)) -> u64,
        expiring(update_type),
        None,
        &context(clock, 0, 1),
    )
}

fn step(op: &mut impl Operator<(u64, u64), Held>, record: (u64, u64)) -> Held {
    let mut out = Vec::new();
    op.process(record, &mut out);
    out.pop().unwrap()
}

#[test]
fn expired_values_are_never_returned_and_writes_restart_the_ttl() {
    let clock = ManualClock::new();
    let mut op = ttl_operator(&clock, TtlUpdateType::OnCreateAndWrite);
    assert_eq!(step(&mut op, (1, 5)), (Some(5), vec![5], 1));
    clock.advance(Duration::from_millis(6));
    assert_eq!(step(&mut op, (1, 7)), (Some(7), vec![5, 7], 2));
    clock.advance(Duration::from_millis(4));
    // 10 ms after the first write: its list element and map entry expired alone.
    assert_eq!(step(&mut op, (1, 0)), (Some(7), vec![7], 1));
    clock.advance(Duration::from_millis(6));
    // Reads did not restart the TTL: all expired 10 ms after the last write.
    assert_eq!(step(&mut op, (1, 0)), (None, vec![], 0));
}

#[test]
fn with_read_and_write_a_read_restarts_the_ttl() {
    let clock = ManualClock::new();
    let mut op = ttl_operator(&clock, TtlUpdateType::OnReadAndWrite);
    step(&mut op, (1, 5));
    for _ in 0..5 {
        clock.advance(Duration::from_millis(9));
        assert_eq!(step(&mut op, (1, 0)), (Some(5), vec![5], 1));
    }
    clock.advance(Duration::from_millis(10));
    assert_eq!(step(&mut op, (1, 0)), (None, vec![], 0));
}

#[test]
fn expired_values_are_left_out_of_snapshots() {
    let clock = ManualClock::new();
    let mut op = ttl_operator(&clock, TtlUpdateType::OnCreateAndWrite);
    step(&mut op, (1, 5));
    clock.advance(Duration::from_millis(5));
    step(&mut op, (2, 6));
    clock.advance(Duration::from_millis(5));
    let bytes = op.snapshot_state(scope(0, 1), 1).unwrap().unwrap();
    let restored = RestoredState {
        checkpoint_id: Some(1),
        by_subtask: vec![Some(Arc::from(bytes))].into(),
    };
    let mut back = ttl_operator(&clock, TtlUpdateType::OnCreateAndWrite);
    back.restore_state(scope(0, 1), &restored).unwrap();
    assert_eq!(step(&mut back, (1, 0)), (None, vec![], 0), "key 1 expired");
    assert_eq!(step(&mut back, (2, 0)), (Some(6), vec![6], 1));
}

/// Uses the name "x" as a value state, then as a list state.
#[derive(Clone)]
struct Confused;

impl KeyedProcessFunction<u64, u64, ()> for Confused {
    type State = ();
    fn process_element(&mut self, x: u64, ctx: &mut KeyedContext<u64, (), ()>) {
        ctx.get_state(&ValueStateDescriptor::<u64>::new("x"))
            .update(x);
        ctx.get_list_state(&ListStateDescriptor::<u64>::new("x"))
            .add(x);
    }
}

#[test]
fn one_name_for_two_kinds_of_state_fails_naming_the_state() {
    let clock = ManualClock::new();
    let mut op = KeyedProcessFunctionOperator::new(
        (|x: &u64| *x) as fn(&u64) -> u64,
        Confused,
        None,
        &context(&clock, 0, 1),
    );
    let panic =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| feed(&mut op, [1]))).unwrap_err();
    let message = flink_core::failure::panic_message(panic.as_ref());
    assert!(message.contains("state 'x'"), "{message}");
}
