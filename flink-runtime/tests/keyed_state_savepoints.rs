//! Named keyed state (list and map) through a savepoint: a job stopped with a
//! savepoint at parallelism 2 and restored at 1 and 3 ends with every key's list and
//! map exactly as a run without a savepoint leaves them. No timing assertions:
//! timing only decides where the savepoint falls.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

mod common;

use flink_core::state::{ListStateDescriptor, MapStateDescriptor};
use flink_runtime::prelude::*;

const RECORDS: u64 = 20_000;
const KEYS: u64 = 50;

/// (key, record, list length, list sum, map entries, count of the record's residue
/// mod 7) after the record.
type Seen = (u64, u64, usize, u64, usize, u32);

/// Keeps every record of its key in a list and counts them by residue mod 7 in a map.
#[derive(Clone)]
struct ListAndMap {
    list: ListStateDescriptor<u64>,
    by_residue: MapStateDescriptor<u8, u32>,
}

impl KeyedProcessFunction<u64, (u64, u64), Seen> for ListAndMap {
    type State = ();

    fn process_element(&mut self, (key, x): (u64, u64), ctx: &mut KeyedContext<u64, (), Seen>) {
        let mut list = ctx.get_list_state(&self.list);
        list.add(x);
        let (len, sum) = list.get().fold((0, 0), |(n, s), v| (n + 1, s + v));
        let mut map = ctx.get_map_state(&self.by_residue);
        let residue = (x % 7) as u8;
        let count = map.get(&residue).copied().unwrap_or(0) + 1;
        map.put(residue, count);
        let entries = map.iter().count();
        ctx.collect((key, x, len, sum, entries, count));
    }
}

fn job(
    parallelism: usize,
    dir: &Path,
    out: &TransactionalCollectingSink<Seen>,
    slow: bool,
) -> StreamExecutionEnvironment {
    let env = common::rescale::environment(parallelism, dir);
    env.from_sequence(0, RECORDS - 1)
        .uid("numbers")
        .map(move |x: u64| {
            if slow && x.is_multiple_of(20) {
                std::thread::sleep(Duration::from_millis(1));
            }
            (x % KEYS, x)
        })
        .uid("tag")
        .key_by(|r: &(u64, u64)| r.0)
        .process_function(ListAndMap {
            list: ListStateDescriptor::new("records"),
            by_residue: MapStateDescriptor::new("by-residue"),
        })
        .uid("lists")
        .sink_to(out.clone())
        .uid("sink");
    env
}

fn savepoint_at_two(dir: &Path, out: &TransactionalCollectingSink<Seen>) -> CheckpointLocation {
    let env = job(2, &dir.join("checkpoints"), out, true);
    common::rescale::savepoint_at_two(&env, "lists", &dir.join("savepoints"), out, RECORDS)
}

fn restore_at(parallelism: usize) {
    let dir = tempfile::tempdir().unwrap();
    let out = TransactionalCollectingSink::new();
    let savepoint = savepoint_at_two(dir.path(), &out);
    let env = job(parallelism, &dir.path().join("checkpoints"), &out, false);
    env.restore_from(&savepoint);
    env.execute("lists")
        .expect("the restored job runs to its end");
    let committed = out.committed();
    assert_eq!(committed.len() as u64, RECORDS, "every record once");
    // The two source instances interleave, so the order of a key's records varies
    // from run to run; what each record saw of its key's list and map does not: the
    // n-th record of a key saw n elements, the n-th of a residue a count of n, the
    // last the key's whole sum, exactly as without a savepoint.
    let mut lengths: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    let mut counts: BTreeMap<(u64, u64), Vec<u32>> = BTreeMap::new();
    let mut last: BTreeMap<u64, (usize, u64, usize)> = BTreeMap::new();
    for &(key, x, len, sum, entries, count) in &committed {
        lengths.entry(key).or_default().push(len);
        counts.entry((key, x % 7)).or_default().push(count);
        let l = last.entry(key).or_default();
        if len > l.0 {
            *l = (len, sum, entries);
        }
    }
    for key in 0..KEYS {
        let xs: Vec<u64> = (0..RECORDS).filter(|x| x % KEYS == key).collect();
        let mut seen = lengths.remove(&key).unwrap_or_default();
        seen.sort_unstable();
        assert!(
            seen.iter().copied().eq(1..=xs.len()),
            "parallelism {parallelism}, key {key}: list lengths {seen:?}"
        );
        let residues: std::collections::BTreeSet<u64> = xs.iter().map(|x| x % 7).collect();
        assert_eq!(
            last[&key],
            (xs.len(), xs.iter().sum(), residues.len()),
            "parallelism {parallelism}, key {key}: final list and map"
        );
        for r in residues {
            let n = xs.iter().filter(|x| *x % 7 == r).count() as u32;
            let mut seen = counts.remove(&(key, r)).unwrap_or_default();
            seen.sort_unstable();
            assert!(
                seen.iter().copied().eq(1..=n),
                "parallelism {parallelism}, key {key}, residue {r}: counts {seen:?}"
            );
        }
    }
}

#[test]
fn list_and_map_state_saved_at_two_restore_at_one() {
    restore_at(1);
}

#[test]
fn list_and_map_state_saved_at_two_restore_at_three() {
    restore_at(3);
}
