//! Broadcast state in checkpoints: each instance snapshots its copy with its keyed
//! state; restored at another parallelism, every instance gets a full copy and
//! each key its keyed state.

use std::sync::Arc;

use flink_core::broadcast_process_function::{BroadcastProcessFunction, ReadOnlyBroadcastContext};
use flink_core::checkpoint::RestoredState;
use flink_core::clock::ManualClock;
use flink_core::connected_streams::CoInput;
use flink_core::keyed_broadcast_process_function::{
    BroadcastContext, KeyedBroadcastContext, KeyedBroadcastProcessFunction,
};
use flink_core::operator::{Emitter, Operator, RuntimeContext, StateScope};
use flink_core::operators::{BroadcastProcessOperator, KeyedBroadcastProcessOperator};
use flink_core::prelude::*;

fn context(subtask_index: usize, parallelism: usize) -> RuntimeContext {
    RuntimeContext::standalone(
        "rules",
        subtask_index,
        parallelism,
        Arc::new(ManualClock::new()),
    )
}

fn scope(subtask_index: usize, parallelism: usize) -> StateScope {
    StateScope {
        subtask_index,
        parallelism,
        max_parallelism: 128,
    }
}

/// Keyed records are numbers keyed by themselves mod 10, counted per key; each
/// emits (key, count, the broadcast labels as a sorted list). Broadcast records
/// are labels.
#[derive(Clone)]
struct Labelled {
    labels: MapStateDescriptor<String, ()>,
}

type Out = (u64, u32, Vec<String>);

impl KeyedBroadcastProcessFunction<u64, u64, String, Out> for Labelled {
    type State = u32;

    fn process_element(&mut self, _: u64, ctx: &mut KeyedBroadcastContext<u64, u32, Out>) {
        let n = ctx.state().value().copied().unwrap_or(0) + 1;
        ctx.state().update(n);
        let mut labels: Vec<String> = ctx
            .get_broadcast_state(&self.labels)
            .iter()
            .map(|(l, _)| l.clone())
            .collect();
        labels.sort();
        let key = *ctx.key();
        ctx.collect((key, n, labels));
    }

    fn process_broadcast_element(&mut self, label: String, ctx: &mut BroadcastContext<Out, u64>) {
        ctx.get_broadcast_state(&self.labels).put(label, ());
    }
}

type Op = KeyedBroadcastProcessOperator<u64, u64, String, Out, fn(&u64) -> u64, Labelled>;

fn operator(subtask: usize, parallelism: usize) -> Op {
    let labels = MapStateDescriptor::new("labels");
    KeyedBroadcastProcessOperator::new(
        (|x: &u64| x % 10) as fn(&u64) -> u64,
        Labelled { labels },
        vec![Arc::from("labels")].into(),
        None,
        &context(subtask, parallelism),
    )
}

fn feed(op: &mut Op, records: Vec<CoInput<u64, String>>) -> Vec<Out> {
    let mut batch = records;
    let mut out = Vec::new();
    op.process_batch(&mut batch, &mut Emitter::collecting(&mut out));
    out
}

fn owner(key: u64, parallelism: usize) -> usize {
    use flink_core::key_group::{key_group_of, stable_key_hash, subtask_of_key_group};
    subtask_of_key_group(key_group_of(stable_key_hash(&key), 128), 128, parallelism)
}

#[test]
fn every_instance_restores_a_full_copy_at_another_parallelism() {
    let labels = || {
        vec![
            CoInput::Second("a".to_string()),
            CoInput::Second("b".into()),
        ]
    };
    // At parallelism 2: both instances get every label, and their keys' numbers.
    let mut by_subtask = Vec::new();
    for subtask in 0..2 {
        let mut op = operator(subtask, 2);
        let mut records = labels();
        records.extend(
            (0..100)
                .filter(|x| owner(x % 10, 2) == subtask)
                .map(CoInput::First),
        );
        feed(&mut op, records);
        by_subtask.push(
            op.snapshot_state(scope(subtask, 2), 1)
                .unwrap()
                .map(Arc::from),
        );
    }
    let restored = RestoredState {
        checkpoint_id: Some(1),
        by_subtask: by_subtask.into(),
    };
    for parallelism in [1, 3, 4] {
        let mut out = Vec::new();
        for subtask in 0..parallelism {
            let mut op = operator(subtask, parallelism);
            op.restore_state(scope(subtask, parallelism), &restored)
                .unwrap();
            // Every instance, including those that had no copy before, reads both
            // labels; a label broadcast now reaches every copy.
            let mut records = vec![CoInput::Second("c".to_string())];
            records.extend(
                (0..10)
                    .filter(|k| owner(*k, parallelism) == subtask)
                    .map(CoInput::First),
            );
            out.extend(feed(&mut op, records));
        }
        out.sort();
        let expected: Vec<Out> = (0..10)
            .map(|k| (k, 11, vec!["a".into(), "b".into(), "c".into()]))
            .collect();
        assert_eq!(out, expected, "parallelism {parallelism}");
    }
}

/// Reads a broadcast state nobody declared.
#[derive(Clone)]
struct Undeclared;

impl KeyedBroadcastProcessFunction<u64, u64, String, ()> for Undeclared {
    type State = ();
    fn process_element(&mut self, _: u64, ctx: &mut KeyedBroadcastContext<u64, (), ()>) {
        ctx.get_broadcast_state(&MapStateDescriptor::<String, ()>::new("other"));
    }
    fn process_broadcast_element(&mut self, _: String, _: &mut BroadcastContext<(), u64>) {}
}

#[test]
fn an_undeclared_broadcast_state_fails_naming_it() {
    let mut op = KeyedBroadcastProcessOperator::new(
        (|x: &u64| *x) as fn(&u64) -> u64,
        Undeclared,
        vec![Arc::from("labels")].into(),
        None,
        &context(0, 1),
    );
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut out = Vec::new();
        op.process(CoInput::First(1), &mut out);
    }))
    .unwrap_err();
    let message = flink_core::failure::panic_message(panic.as_ref());
    assert!(
        message.contains("broadcast state 'other' was not declared"),
        "{message}"
    );
}

/// Non-keyed: emits the broadcast labels (sorted) per record.
#[derive(Clone)]
struct Labels {
    labels: MapStateDescriptor<String, ()>,
}

impl BroadcastProcessFunction<u64, String, Vec<String>> for Labels {
    fn process_element(&mut self, _: u64, ctx: &mut ReadOnlyBroadcastContext<Vec<String>>) {
        let mut labels: Vec<String> = ctx
            .get_broadcast_state(&self.labels)
            .iter()
            .map(|(l, _)| l.clone())
            .collect();
        labels.sort();
        ctx.collect(labels);
    }

    fn process_broadcast_element(
        &mut self,
        label: String,
        ctx: &mut BroadcastContext<Vec<String>>,
    ) {
        ctx.get_broadcast_state(&self.labels).put(label, ());
    }
}

#[test]
fn a_non_keyed_instance_restores_a_full_copy_at_another_parallelism() {
    let operator = |subtask, parallelism| {
        BroadcastProcessOperator::new(
            Labels {
                labels: MapStateDescriptor::new("labels"),
            },
            vec![Arc::from("labels")].into(),
            None,
            &context(subtask, parallelism),
        )
    };
    let mut by_subtask = Vec::new();
    for subtask in 0..2 {
        let mut op = operator(subtask, 2);
        let mut out = Vec::new();
        op.process(CoInput::Second("a".to_string()), &mut out);
        by_subtask.push(
            op.snapshot_state(scope(subtask, 2), 1)
                .unwrap()
                .map(Arc::from),
        );
    }
    let restored = RestoredState {
        checkpoint_id: Some(1),
        by_subtask: by_subtask.into(),
    };
    for subtask in 0..3 {
        let mut op = operator(subtask, 3);
        op.restore_state(scope(subtask, 3), &restored).unwrap();
        let mut out = Vec::new();
        op.process(CoInput::First(1), &mut out);
        assert_eq!(out, vec![vec!["a".to_string()]], "instance {subtask} of 3");
    }
}

/// Keyed numbers wait in a list state until a broadcast "go" arrives; the go
/// releases every key's waiting numbers through `apply_to_keyed_state` (and
/// clears them), after which numbers pass straight through.
#[derive(Clone)]
struct Gate {
    open: MapStateDescriptor<(), ()>,
    waiting: ListStateDescriptor<u64>,
}

impl KeyedBroadcastProcessFunction<u64, u64, (), u64> for Gate {
    type State = ();

    fn process_element(&mut self, x: u64, ctx: &mut KeyedBroadcastContext<u64, (), u64>) {
        if ctx.get_broadcast_state(&self.open).contains(&()) {
            ctx.collect(x);
        } else {
            ctx.get_list_state(&self.waiting).add(x);
        }
    }

    fn process_broadcast_element(&mut self, (): (), ctx: &mut BroadcastContext<u64, u64>) {
        ctx.get_broadcast_state(&self.open).put((), ());
        let mut released = Vec::new();
        ctx.apply_to_keyed_state(&self.waiting, |_key, mut waiting| {
            released.extend(waiting.take());
        });
        released.sort_unstable();
        for x in released {
            ctx.collect(x);
        }
    }
}

#[test]
fn the_broadcast_side_reaches_every_keys_state() {
    let mut op = KeyedBroadcastProcessOperator::new(
        (|x: &u64| x % 7) as fn(&u64) -> u64,
        Gate {
            open: MapStateDescriptor::new("open"),
            waiting: ListStateDescriptor::new("waiting"),
        },
        vec![Arc::from("open")].into(),
        None,
        &context(0, 1),
    );
    let mut out = Vec::new();
    for x in 0..20 {
        op.process(CoInput::First(x), &mut out);
    }
    assert!(out.is_empty(), "all wait");
    op.process(CoInput::Second(()), &mut out);
    assert_eq!(
        out,
        (0..20).collect::<Vec<u64>>(),
        "the go released every key's numbers"
    );
    op.process(CoInput::First(20), &mut out);
    op.process(CoInput::Second(()), &mut out);
    assert_eq!(out.len(), 21, "released once: the lists were emptied");
}
