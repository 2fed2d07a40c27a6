//! Whole jobs with exact results at parallelism 1, 2 and 4.

use std::collections::BTreeMap;

use flink_runtime::prelude::*;

const WORDS: [&str; 7] = ["to", "be", "or", "not", "stream", "flink", "rust"];

/// A deterministic text: line `i` holds `i % 13 + 1` words picked by a fixed rule.
fn line(i: u64) -> String {
    (0..i % 13 + 1)
        .map(|j| WORDS[((i * 7 + j * 3) % WORDS.len() as u64) as usize])
        .collect::<Vec<_>>()
        .join(" ")
}

fn expected_word_counts(lines: u64) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for i in 0..lines {
        for w in line(i).split(' ') {
            *counts.entry(w.to_string()).or_insert(0) += 1;
        }
    }
    counts
}

fn word_count(parallelism: usize, lines: u64) -> BTreeMap<String, u64> {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(parallelism).set_buffer_size(1024);
    let counts = env
        .from_generator(Some(lines), line)
        .flat_map(|l: String, out: &mut dyn Collector<(String, u64)>| {
            for w in l.split(' ') {
                out.collect((w.to_string(), 1));
            }
        })
        .key_by(|(w, _): &(String, u64)| w.clone())
        .sum(|r: &mut (String, u64)| &mut r.1)
        .collect_vec();
    let result = env.execute("word count").expect("job runs");
    let words: u64 = expected_word_counts(lines).values().sum();
    assert_eq!(result.operator("FlatMap").unwrap().records_out, words);
    // The running sum emits one update per word; the final count per word is the max.
    let mut finals = BTreeMap::new();
    for (w, c) in counts.take() {
        let e = finals.entry(w).or_insert(0);
        *e = (*e).max(c);
    }
    finals
}

#[test]
fn word_count_is_exact_at_parallelism_1_2_4() {
    let expected = expected_word_counts(5_000);
    for p in [1, 2, 4] {
        assert_eq!(word_count(p, 5_000), expected, "parallelism {p}");
    }
}

#[test]
fn keyed_sum_is_exact_at_parallelism_1_2_4() {
    for p in [1, 2, 4] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        let sums = env
            .from_sequence(1, 100_000)
            .map(|x| (x % 10, x))
            .key_by(|r: &(u64, u64)| r.0)
            .reduce(|a: (u64, u64), b: (u64, u64)| (a.0, a.1 + b.1))
            .collect_vec();
        env.execute("keyed sum").unwrap();
        let mut finals = BTreeMap::new();
        for (k, s) in sums.take() {
            let e = finals.entry(k).or_insert(0);
            *e = (*e).max(s);
        }
        let expected: BTreeMap<u64, u64> = (0..10)
            .map(|k| (k, (1..=100_000u64).filter(|x| x % 10 == k).sum()))
            .collect();
        assert_eq!(finals, expected, "parallelism {p}");
    }
}

#[test]
fn union_delivers_every_record_of_every_input() {
    for p in [1, 2, 4] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        let a = env.from_sequence(1, 1000);
        let b = env.from_sequence(1001, 2500).map(|x| x);
        let c = env.from_collection((2501..=3000).collect::<Vec<u64>>());
        let out = a.union(&[b, c]).map(|x| x + 1).collect_vec();
        env.execute("union").unwrap();
        assert_eq!(
            out.take_sorted(),
            (2..=3001).collect::<Vec<u64>>(),
            "parallelism {p}"
        );
    }
}

#[test]
fn broadcast_sends_every_record_to_every_instance() {
    for p in [1, 2, 4] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        let out = env
            .from_sequence(1, 500)
            .set_parallelism(1)
            .broadcast()
            .map(|x| x * 2)
            .collect_vec();
        env.execute("broadcast").unwrap();
        let mut expected: Vec<u64> = (1..=500).flat_map(|x| vec![x * 2; p]).collect();
        expected.sort();
        assert_eq!(out.take_sorted(), expected, "parallelism {p}");
    }
}

#[test]
fn rebalance_spreads_round_robin_and_keeps_everything() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(3);
    let out = env
        .from_sequence(1, 9_000)
        .set_parallelism(1)
        .rebalance()
        .map(|x| x)
        .collect_vec();
    let result = env.execute("rebalance").unwrap();
    assert_eq!(out.take_sorted(), (1..=9_000).collect::<Vec<u64>>());
    assert_eq!(result.operator("Map").unwrap().records_in, 9_000);
}
