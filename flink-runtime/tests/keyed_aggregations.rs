//! The keyed aggregations users expect from Flink (`min`, `max`, `min_by`, `max_by`,
//! `count`, beside `sum`), checked record by record over a keyed exchange.

use std::collections::BTreeMap;

use flink_core::stream_type::Record;
use flink_runtime::prelude::*;

/// (key, value, tag) records: the tag tells which record an aggregate came from.
fn input() -> Vec<(u64, i64, u32)> {
    let values = [5i64, -3, 9, -3, 7, 12, 0, 12, -8, 4];
    (0..400u32)
        .map(|i| {
            (
                u64::from(i % 7),
                values[(i as usize * 3) % values.len()] + i64::from(i % 5),
                i,
            )
        })
        .collect()
}

/// Runs `aggregate` over `input()` at parallelism 3 and returns its output per key,
/// in the order each key's records were emitted.
fn per_key<O: Record>(
    aggregate: impl Fn(KeyedStream<u64, (u64, i64, u32)>) -> DataStream<O>,
    key_of: fn(&O) -> u64,
) -> BTreeMap<u64, Vec<O>> {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(3);
    // One source instance, so each key's records arrive in input order.
    let keyed = env
        .from_collection(input())
        .set_parallelism(1)
        .key_by(|r: &(u64, i64, u32)| r.0);
    let out = aggregate(keyed).collect_vec();
    env.execute("keyed aggregations").unwrap();
    let mut by_key: BTreeMap<u64, Vec<O>> = BTreeMap::new();
    for record in out.take() {
        by_key.entry(key_of(&record)).or_default().push(record);
    }
    by_key
}

type Rec = (u64, i64, u32);

/// What a running fold emits per record of each key, computed directly.
fn expected<O>(mut step: impl FnMut(Option<&O>, &(u64, i64, u32)) -> O) -> BTreeMap<u64, Vec<O>> {
    let mut by_key: BTreeMap<u64, Vec<O>> = BTreeMap::new();
    for record in input() {
        let emitted = by_key.entry(record.0).or_default();
        let next = step(emitted.last(), &record);
        emitted.push(next);
    }
    by_key
}

#[test]
fn min_and_max_replace_one_field_of_the_first_record() {
    let min = per_key(|k| k.min(|r: &mut (u64, i64, u32)| &mut r.1), |r| r.0);
    let want = expected(|last: Option<&Rec>, r| match last {
        Some(&(k, v, tag)) => (k, v.min(r.1), tag),
        None => *r,
    });
    assert_eq!(min, want);
    let max = per_key(|k| k.max(|r: &mut (u64, i64, u32)| &mut r.1), |r| r.0);
    let want = expected(|last: Option<&Rec>, r| match last {
        Some(&(k, v, tag)) => (k, v.max(r.1), tag),
        None => *r,
    });
    assert_eq!(max, want);
}

#[test]
fn min_by_and_max_by_keep_the_whole_record_and_the_earlier_on_ties() {
    let min_by = per_key(|k| k.min_by(|r: &(u64, i64, u32)| r.1), |r| r.0);
    let want = expected(|last: Option<&Rec>, r| match last {
        Some(best) if best.1 <= r.1 => *best,
        _ => *r,
    });
    assert_eq!(min_by, want);
    let max_by = per_key(|k| k.max_by(|r: &(u64, i64, u32)| r.1), |r| r.0);
    let want = expected(|last: Option<&Rec>, r| match last {
        Some(best) if best.1 >= r.1 => *best,
        _ => *r,
    });
    assert_eq!(max_by, want);
    // Ties happen in this input, so "the earlier stays" is exercised.
    let values: Vec<i64> = input().iter().filter(|r| r.0 == 0).map(|r| r.1).collect();
    let mut distinct = values.clone();
    distinct.sort();
    distinct.dedup();
    assert!(distinct.len() < values.len());
}

#[test]
fn count_emits_each_keys_running_count() {
    let counts = per_key(|k| k.count(), |r: &(u64, u64)| r.0);
    let want = expected(|last, r| (r.0, last.map_or(1, |&(_, n)| n + 1)));
    assert_eq!(counts, want);
    let total: usize = counts.values().map(Vec::len).sum();
    assert_eq!(total, input().len());
}

#[test]
fn positional_aggregations_of_tuples_equal_the_accessor_ones() {
    let key = |r: &Rec| r.0;
    let sum_at = per_key(|k| k.sum_at::<1>(), key);
    let want = expected(|last: Option<&Rec>, r| match last {
        Some(&(k, v, tag)) => (k, v + r.1, tag),
        None => *r,
    });
    assert_eq!(sum_at, want, "sum_at::<1>()");
    let accessor = |k: KeyedStream<u64, Rec>| k.sum(|r: &mut Rec| &mut r.1);
    assert_eq!(sum_at, per_key(accessor, key), "as sum(|r| &mut r.1)");
    assert_eq!(
        per_key(|k| k.min_at::<1>(), key),
        per_key(|k| k.min(|r: &mut Rec| &mut r.1), key)
    );
    assert_eq!(
        per_key(|k| k.max_at::<2>(), key),
        per_key(|k| k.max(|r: &mut Rec| &mut r.2), key)
    );
    assert_eq!(
        per_key(|k| k.min_by_at::<1>(), key),
        per_key(|k| k.min_by(|r: &Rec| r.1), key)
    );
    assert_eq!(
        per_key(|k| k.max_by_at::<1>(), key),
        per_key(|k| k.max_by(|r: &Rec| r.1), key)
    );
}

#[test]
fn positional_sum_in_batch_mode_emits_one_final_record_per_key() {
    let env = StreamExecutionEnvironment::new();
    env.set_runtime_mode(RuntimeMode::Batch);
    env.set_parallelism(2);
    let sums = env
        .from_collection(input())
        .key_by(|r| r.0)
        .sum_at::<1>()
        .collect_vec();
    env.execute("positional sum, batch").unwrap();
    let mut got: Vec<(u64, i64)> = sums.take().iter().map(|r| (r.0, r.1)).collect();
    got.sort_unstable();
    let mut want: BTreeMap<u64, i64> = BTreeMap::new();
    for r in input() {
        *want.entry(r.0).or_default() += r.1;
    }
    assert_eq!(got, want.into_iter().collect::<Vec<_>>());
}
