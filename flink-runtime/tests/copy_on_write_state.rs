//! Copy-on-write keyed state under injected failures: a keyed process function
//! keeps a running sum as its state, every value in a named list state and the last
//! value per residue in a named map state (all copy-on-write, snapshotted with a
//! handle at the barrier and encoded on the coordinator's thread while the task goes
//! on); 20 seeded panics in one run, and the committed output is exactly the output
//! of a run without failures, aligned and unaligned.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flink_core::sources::{RateLimiterStrategy, SequenceSource};
use flink_core::state::{ListStateDescriptor, MapStateDescriptor};
use flink_runtime::prelude::*;

/// Records in the job; blocks of 100 consecutive numbers are one key each, read by
/// one source instance in order at parallelism 1, 2 and 4.
const RECORDS: u64 = 48_000;
const BLOCK: u64 = 100;

/// What the function emits per record: key, record, running sum, values in the
/// list so far, sum of the map's values (last value per residue mod 4).
type Out = (u64, u64, u64, usize, u64);

/// The failure-free output, from first principles.
fn expected() -> Vec<Out> {
    let mut out = Vec::new();
    let (mut sum, mut seen, mut last) = (0, 0, [0u64; 4]);
    for x in 0..RECORDS {
        if x % BLOCK == 0 {
            (sum, seen, last) = (0, 0, [0; 4]);
        }
        sum += x;
        seen += 1;
        last[(x % 4) as usize] = x;
        out.push((x / BLOCK, x, sum, seen, last.iter().sum()));
    }
    out
}

/// The running sum as the function's state; every value in a list state; the last
/// value per residue mod 4 in a map state.
#[derive(Clone)]
struct Sums {
    all: ListStateDescriptor<u64>,
    last: MapStateDescriptor<u64, u64>,
}

impl KeyedProcessFunction<u64, (u64, u64), Out> for Sums {
    type State = u64;

    fn process_element(&mut self, (key, x): (u64, u64), ctx: &mut KeyedContext<u64, u64, Out>) {
        let sum = ctx.state().value().copied().unwrap_or(0) + x;
        ctx.state().update(sum);
        let mut all = ctx.get_list_state(&self.all);
        all.add(x);
        let seen = all.get().count();
        let mut last = ctx.get_map_state(&self.last);
        last.put(x % 4, x);
        let residues: u64 = last.iter().map(|(_, v)| *v).sum();
        ctx.collect((key, x, sum, seen, residues));
    }
}

fn twenty_failures(parallelism: usize, seed: u64, unaligned: bool) {
    let dir = tempfile::tempdir().unwrap();
    // In the second half of each source instance's range (the sequence splits
    // into `parallelism` consecutive ranges): the first failure comes after many
    // checkpoint intervals, so restarts restore checkpoints (on a loaded machine,
    // failures early in a range came before any checkpoint completed).
    let half = RECORDS / parallelism as u64 / 2;
    let points: HashSet<u64> = common::failure_points(seed, 20, 0..RECORDS / 2)
        .into_iter()
        .map(|y| (y / half) * 2 * half + half + y % half)
        .collect();
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(parallelism);
    env.enable_checkpointing(Duration::from_millis(5))
        .set_storage_dir(dir.path())
        .enable_unaligned_checkpoints(unaligned);
    env.set_restart_strategy(RestartStrategy::FixedDelay {
        attempts: 25,
        delay: Duration::ZERO,
    });
    // Slow enough that checkpoints complete while the job runs.
    let source = SequenceSource::range(0, RECORDS - 1)
        .rate_limited(RateLimiterStrategy::per_second(300_000.0).unwrap());
    let fired = Arc::new(Mutex::new(HashSet::new()));
    let seen = fired.clone();
    let wanted = points.clone();
    let out = TransactionalCollectingSink::new();
    env.from_source(source, "Sequence")
        .map(move |x: u64| {
            if wanted.contains(&x) && seen.lock().unwrap().insert(x) {
                panic!("injected failure at record {x}");
            }
            (x / BLOCK, x)
        })
        .key_by(|r: &(u64, u64)| r.0)
        .process_function(Sums {
            all: ListStateDescriptor::new("all"),
            last: MapStateDescriptor::new("last"),
        })
        .sink_to(out.clone());
    let result = env
        .execute("copy-on-write state, twenty failures")
        .expect("the job recovers from every failure");
    assert_eq!(*fired.lock().unwrap(), points, "every failure fired once");
    assert!(
        (1..=20).contains(&result.restarts.len()),
        "{:#?}",
        result.restarts
    );
    let restored = result
        .restarts
        .iter()
        .filter(|r| r.restored_checkpoint.is_some())
        .count();
    assert!(
        restored >= 1,
        "some restart restored a checkpoint: {:#?}",
        result.restarts
    );
    let mut committed = out.committed();
    committed.sort_unstable();
    assert_eq!(committed, expected(), "committed output at p={parallelism}");
}

#[test]
fn twenty_failures_at_parallelism_1() {
    twenty_failures(1, 11, false);
}

#[test]
fn twenty_failures_at_parallelism_2() {
    twenty_failures(2, 12, false);
}

#[test]
fn twenty_failures_at_parallelism_4() {
    twenty_failures(4, 13, false);
}

#[test]
fn twenty_failures_unaligned_at_parallelism_2() {
    twenty_failures(2, 14, true);
}
