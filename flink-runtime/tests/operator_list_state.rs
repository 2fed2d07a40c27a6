//! Operator (non-keyed) list state across a savepoint and a rescale: a non-keyed
//! process function keeps every record it saw in an even-split list and its count
//! in a union list; stopped with a savepoint at parallelism 2 and restored at 1
//! and 3, the even-split lists hold exactly the saved elements, each on one
//! instance, every instance's union list holds both saved counts, and every record
//! is committed exactly once over both runs. Both runs commit into one sink (one
//! destination), as a restored job does: the restore commits the savepoint's
//! transactions again, which only the same destination recognises as committed
//! already. No timing assertions: timing only decides where the savepoint falls.

use std::path::Path;

mod common;

use common::rescale;
use flink_core::sources::{RateLimiterStrategy, SequenceSource};
use flink_core::state::ListStateDescriptor;
use flink_runtime::prelude::*;

const PACED: u64 = 50_000;

/// What the job commits: `(RECORD, [x])` per record, and after a restore, per
/// instance, its restored lists as `(EVEN, list)` and `(UNION, list)`.
type Out = (u8, Vec<u64>);
const RECORD: u8 = 0;
const EVEN: u8 = 1;
const UNION: u8 = 2;

/// paced sequence `0..PACED` -> rebalance -> process (uid "lists": "seen", every
/// record, even split; "count", this instance's count, union) -> sink.
fn job(
    parallelism: usize,
    dir: &Path,
    out: &TransactionalCollectingSink<Out>,
    rate: f64,
) -> StreamExecutionEnvironment {
    let env = rescale::environment(parallelism, dir);
    let strategy = RateLimiterStrategy::per_second(rate).unwrap();
    let seen = ListStateDescriptor::<u64>::new("seen");
    let count = ListStateDescriptor::<u64>::new("count");
    let mut first_call = true;
    let src = env
        .from_source(
            SequenceSource::range(0, PACED - 1).rate_limited(strategy),
            "Paced",
        )
        .uid("paced");
    src.rebalance()
        .process(move |x: u64, ctx| {
            if std::mem::take(&mut first_call) {
                let restored: Vec<u64> = ctx.list_state(&seen).get().copied().collect();
                let counts: Vec<u64> = ctx.union_list_state(&count).get().copied().collect();
                if !counts.is_empty() {
                    ctx.collect((EVEN, restored));
                    ctx.collect((UNION, counts));
                }
            }
            let mut list = ctx.list_state(&seen);
            list.add(x);
            let n = list.len() as u64;
            ctx.union_list_state(&count).update(vec![n]);
            ctx.collect((RECORD, vec![x]));
        })
        .uid("lists")
        .sink_to(out.clone())
        .uid("sink");
    env
}

/// The lists committed with `tag`, sorted by their first element.
fn with_tag(out: &TransactionalCollectingSink<Out>, tag: u8) -> Vec<Vec<u64>> {
    let mut lists: Vec<Vec<u64>> = out
        .committed()
        .into_iter()
        .filter(|(t, _)| *t == tag)
        .map(|(_, list)| list)
        .collect();
    lists.sort();
    lists
}

/// Stops the job at parallelism 2 with a savepoint and restores it at
/// `parallelism` into the same sink, as a restored job writes into the same
/// destination: the restore commits the savepoint's pre-committed transactions
/// again (the stopped run committed them already), which only one ledger sees as
/// the same transactions (docs/checkpoints.md, two-phase commit).
fn restore_at(parallelism: usize) {
    let dir = tempfile::tempdir().unwrap();
    let out = TransactionalCollectingSink::new();
    let env = job(2, dir.path(), &out, 20_000.0);
    let savepoint =
        rescale::savepoint_at_two(&env, "lists", &dir.path().join("savepoints"), &out, PACED);
    // Every record committed before the savepoint is in a saved "seen" list.
    let mut saved: Vec<u64> = with_tag(&out, RECORD).concat();
    saved.sort_unstable();
    assert_eq!(
        with_tag(&out, EVEN),
        Vec::<Vec<u64>>::new(),
        "nothing restored at first"
    );

    let env = job(parallelism, dir.path(), &out, 1_000_000.0);
    env.restore_from(&savepoint);
    let result = env
        .execute("lists")
        .expect("the restored job runs to its end");
    assert!(result.restarts.is_empty());

    // Only the restored run reports lists.
    let even = with_tag(&out, EVEN);
    assert_eq!(even.len(), parallelism, "one report per instance");
    let mut dealt: Vec<u64> = even.concat();
    dealt.sort_unstable();
    assert_eq!(
        dealt, saved,
        "p={parallelism}: every saved element on exactly one instance"
    );
    let sizes: Vec<usize> = even.iter().map(Vec::len).collect();
    let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
    assert!(max - min <= 1, "p={parallelism}: an even split: {sizes:?}");

    let unions = with_tag(&out, UNION);
    assert_eq!(unions.len(), parallelism, "one report per instance");
    for counts in &unions {
        assert_eq!(
            counts.len(),
            2,
            "p={parallelism}: both saved instances' counts"
        );
        assert_eq!(counts.iter().sum::<u64>(), saved.len() as u64);
    }
    assert!(
        unions.windows(2).all(|w| w[0] == w[1]),
        "the same union everywhere"
    );

    // Exactly once over both runs: every record committed once, none twice.
    let mut records: Vec<u64> = with_tag(&out, RECORD).concat();
    records.sort_unstable();
    assert_eq!(
        records,
        (0..PACED).collect::<Vec<_>>(),
        "p={parallelism}: every record committed exactly once"
    );
}

#[test]
fn operator_list_state_saved_at_two_restores_at_one() {
    restore_at(1);
}

#[test]
fn operator_list_state_saved_at_two_restores_at_three() {
    restore_at(3);
}
