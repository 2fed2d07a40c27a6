//! Broadcast state through a savepoint: rules broadcast to a keyed stream at
//! parallelism 2, stopped with a savepoint after every instance stored every rule,
//! restored at 3 (the rules source has ended and is not read again): every instance
//! of the restored job, also the new one, applies every rule from its restored copy.
//! No timing assertions: timing only decides where the savepoint falls.

use std::path::Path;
use std::time::Duration;

mod common;

use flink_core::keyed_broadcast_process_function::{
    BroadcastContext, KeyedBroadcastContext, KeyedBroadcastProcessFunction,
};
use flink_runtime::prelude::*;

const RECORDS: u64 = 20_000;
const KEYS: u64 = 64;
const RULES: u64 = 4;

/// (record, its rule's multiplier, 0 if the rule is unknown); (u64::MAX, rule, 1)
/// when an instance stores a rule.
type Out = (u64, u64, u64);

#[derive(Clone)]
struct Apply {
    rules: MapStateDescriptor<u64, u64>,
}

impl KeyedBroadcastProcessFunction<u64, u64, (u64, u64), Out> for Apply {
    type State = ();

    fn process_element(&mut self, x: u64, ctx: &mut KeyedBroadcastContext<u64, (), Out>) {
        let rule = x % RULES;
        let multiplier = ctx
            .get_broadcast_state(&self.rules)
            .get(&rule)
            .copied()
            .unwrap_or(0);
        ctx.collect((x, rule, multiplier));
    }

    fn process_broadcast_element(
        &mut self,
        (rule, multiplier): (u64, u64),
        ctx: &mut BroadcastContext<Out, u64>,
    ) {
        ctx.get_broadcast_state(&self.rules).put(rule, multiplier);
        ctx.collect((u64::MAX, rule, 1));
    }
}

fn job(
    parallelism: usize,
    dir: &Path,
    out: &TransactionalCollectingSink<Out>,
    slow: bool,
    sink_uid: &str,
) -> StreamExecutionEnvironment {
    let env = common::rescale::environment(parallelism, dir);
    let rules = MapStateDescriptor::<u64, u64>::new("rules");
    let rule_stream = env
        .from_collection((0..RULES).map(|r| (r, r + 10)).collect())
        .set_parallelism(1)
        .uid("rules")
        .broadcast_with(&rules);
    env.from_sequence(0, RECORDS - 1)
        .uid("numbers")
        .map(move |x| {
            if slow && x.is_multiple_of(20) {
                std::thread::sleep(Duration::from_millis(1));
            }
            x
        })
        .uid("pace")
        .key_by(|x| x % KEYS)
        .connect_broadcast(&rule_stream)
        .process(Apply { rules })
        .uid("apply")
        .sink_to(out.clone())
        .uid(sink_uid);
    env
}

#[test]
fn broadcast_state_saved_at_two_reaches_every_instance_at_three() {
    let dir = tempfile::tempdir().unwrap();
    let first = TransactionalCollectingSink::new();
    let env = job(2, &dir.path().join("checkpoints"), &first, true, "sink");
    let client = env.execute_async("rules").unwrap();
    let stored = || first.committed().iter().filter(|o| o.0 == u64::MAX).count() as u64;
    common::poll_until("both instances storing every rule", || {
        stored() == 2 * RULES
    });
    let savepoint = client
        .stop_with_savepoint(dir.path().join("savepoints"))
        .expect("the savepoint completes");
    let result = client
        .wait()
        .expect("a job stopped with a savepoint finishes");
    let read_before = result.records_read_by_sources() - RULES;
    assert!(read_before < RECORDS, "the savepoint fell mid-run");

    // Restored at 3 into a new sink: the rules are not read again.
    let second = TransactionalCollectingSink::new();
    let env = job(
        3,
        &dir.path().join("checkpoints"),
        &second,
        false,
        "new sink",
    );
    env.restore_from(&savepoint).allow_non_restored_state(true);
    env.execute("rules")
        .expect("the restored job runs to its end");
    let after = second.committed();
    assert_eq!(
        after.len() as u64,
        RECORDS - read_before,
        "the rest of the records, once"
    );
    for &(x, rule, multiplier) in &after {
        assert_ne!(x, u64::MAX, "no rule was read again");
        assert_eq!(multiplier, rule + 10, "record {x} found its rule");
    }
    // Every instance of the restored job processed records: each had a copy.
    let keys: std::collections::BTreeSet<u64> = after.iter().map(|o| o.0 % KEYS).collect();
    assert_eq!(keys.len() as u64, KEYS);
}
