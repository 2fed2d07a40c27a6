//! Closures and named function types both work, and keyed state is per key.

use std::collections::BTreeMap;

use flink_runtime::prelude::*;

#[derive(Clone)]
struct Square;
impl MapFunction<u64, u64> for Square {
    fn map(&mut self, x: u64) -> u64 {
        x * x
    }
}

#[derive(Clone)]
struct Odd;
impl FilterFunction<u64> for Odd {
    fn filter(&mut self, x: &u64) -> bool {
        x % 2 == 1
    }
}

#[derive(Clone)]
struct Digits;
impl FlatMapFunction<u64, u64> for Digits {
    fn flat_map(&mut self, x: u64, out: &mut dyn Collector<u64>) {
        for d in x.to_string().bytes() {
            out.collect(u64::from(d - b'0'));
        }
    }
}

#[derive(Clone)]
struct Max;
impl ReduceFunction<(u64, u64)> for Max {
    fn reduce(&mut self, a: (u64, u64), b: (u64, u64)) -> (u64, u64) {
        if b.1 > a.1 { b } else { a }
    }
}

#[test]
fn named_function_types_work_like_closures() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let out = env
        .from_sequence(1, 20)
        .filter_with(Odd)
        .map_with(Square)
        .flat_map_with(Digits)
        .collect_vec();
    env.execute("named functions").unwrap();
    let mut expected: Vec<u64> = (1..=20u64)
        .filter(|x| x % 2 == 1)
        .flat_map(|x| {
            (x * x)
                .to_string()
                .bytes()
                .map(|d| u64::from(d - b'0'))
                .collect::<Vec<_>>()
        })
        .collect();
    expected.sort();
    assert_eq!(out.take_sorted(), expected);

    let env = StreamExecutionEnvironment::new();
    let maxima = env
        .from_collection(vec![(1u64, 5u64), (2, 1), (1, 9), (2, 7), (1, 3)])
        .key_by(|r: &(u64, u64)| r.0)
        .reduce_with(Max)
        .collect_vec();
    env.execute("named reduce").unwrap();
    assert_eq!(maxima.take(), vec![(1, 5), (2, 1), (1, 9), (2, 7), (1, 9)]);
}

#[test]
fn keyed_process_keeps_one_value_state_per_key() {
    for p in [1, 2, 4] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        // Emits (key, running count) and clears the state every 5th record of a key,
        // so counts run 1..=5 then start again.
        let out = env
            .from_sequence(0, 9_999)
            .key_by(|x: &u64| x % 7)
            .process(
                |key: &u64,
                 _x: u64,
                 count: &mut ValueState<u64>,
                 out: &mut dyn Collector<(u64, u64)>| {
                    let n = count.value().copied().unwrap_or(0) + 1;
                    out.collect((*key, n));
                    if n == 5 {
                        count.clear();
                    } else {
                        count.update(n);
                    }
                },
            )
            .collect_vec();
        env.execute("keyed process").unwrap();
        let records = out.take();
        assert_eq!(records.len(), 10_000);
        let mut per_key: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for (k, n) in records {
            per_key.entry(k).or_default().push(n);
        }
        for (k, counts) in per_key {
            let expected: Vec<u64> = (0..counts.len() as u64).map(|i| i % 5 + 1).collect();
            assert_eq!(counts, expected, "key {k} at parallelism {p}");
        }
    }
}
