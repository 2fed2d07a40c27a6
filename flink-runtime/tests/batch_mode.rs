//! Batch runtime mode: keyed reduce, sum, min, max, min_by, max_by and count emit
//! one final result per key at the end of input, equal to the last running result
//! of the same job in streaming mode; Automatic picks batch for bounded sources;
//! batch with an unbounded source is a typed error when the job is built.

use std::collections::BTreeMap;

use flink_runtime::prelude::*;

const N: u64 = 50_000;
const KEYS: u64 = 37;

/// The outputs of one run: the keyed aggregations of (x % KEYS, x).
struct Outputs {
    sum: CollectedRecords<(u64, u64)>,
    min: CollectedRecords<(u64, u64)>,
    max: CollectedRecords<(u64, u64)>,
    max_by: CollectedRecords<(u64, u64)>,
    reduce: CollectedRecords<(u64, u64)>,
    count: CollectedRecords<(u64, u64)>,
}

fn job(mode: RuntimeMode, parallelism: usize) -> (StreamExecutionEnvironment, Outputs) {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(parallelism);
    env.set_runtime_mode(mode);
    let pairs = env
        .from_sequence(0, N - 1)
        .map(|x: u64| (x % KEYS, (x * 7919) % 10_007));
    let keyed = pairs.key_by(|r: &(u64, u64)| r.0);
    let outputs = Outputs {
        sum: keyed.sum(|r: &mut (u64, u64)| &mut r.1).collect_vec(),
        min: keyed.min(|r: &mut (u64, u64)| &mut r.1).collect_vec(),
        max: keyed.max(|r: &mut (u64, u64)| &mut r.1).collect_vec(),
        max_by: keyed.max_by(|r: &(u64, u64)| r.1).collect_vec(),
        reduce: keyed
            .reduce(|a: (u64, u64), b: (u64, u64)| (a.0, a.1 ^ b.1))
            .collect_vec(),
        count: keyed.count().collect_vec(),
    };
    (env, outputs)
}

/// Each key's last value in `records` (the running results of a key grow
/// monotonically in the order they were emitted, and `records` keeps that order per
/// instance).
fn last_per_key(records: Vec<(u64, u64)>) -> BTreeMap<u64, u64> {
    records.into_iter().collect()
}

/// Each key's only value, failing if a key has more than one.
fn one_per_key(records: Vec<(u64, u64)>) -> BTreeMap<u64, u64> {
    let mut out = BTreeMap::new();
    for (key, value) in records {
        assert!(out.insert(key, value).is_none(), "key {key} emitted twice");
    }
    out
}

fn same_final_results(parallelism: usize, mode: RuntimeMode) {
    let (env, streaming) = job(RuntimeMode::Streaming, parallelism);
    env.execute("streaming").unwrap();
    let (env, batch) = job(mode, parallelism);
    env.execute("batch").unwrap();
    for (name, s, b) in [
        ("sum", streaming.sum, batch.sum),
        ("min", streaming.min, batch.min),
        ("max", streaming.max, batch.max),
        ("max_by", streaming.max_by, batch.max_by),
        ("reduce", streaming.reduce, batch.reduce),
        ("count", streaming.count, batch.count),
    ] {
        let s = s.take();
        assert_eq!(s.len() as u64, N, "{name}: streaming emits per record");
        let b = b.take();
        assert_eq!(
            b.len() as u64,
            KEYS,
            "{name}: batch emits one record per key"
        );
        assert_eq!(
            last_per_key(s),
            one_per_key(b),
            "{name} at parallelism {parallelism}"
        );
    }
}

#[test]
fn batch_emits_the_final_result_of_streaming_once_per_key_at_one() {
    same_final_results(1, RuntimeMode::Batch);
}

#[test]
fn batch_emits_the_final_result_of_streaming_once_per_key_at_three() {
    same_final_results(3, RuntimeMode::Batch);
}

#[test]
fn automatic_with_bounded_sources_runs_as_a_batch() {
    same_final_results(2, RuntimeMode::Automatic);
}

#[test]
fn automatic_with_an_unbounded_source_runs_as_a_stream() {
    let env = StreamExecutionEnvironment::new();
    env.set_runtime_mode(RuntimeMode::Automatic);
    env.from_generator(None, |i: u64| i).collect_vec();
    env.from_sequence(1, 10).collect_vec();
    assert_eq!(
        env.stream_graph().unwrap().runtime_mode,
        RuntimeMode::Streaming
    );
}

#[test]
fn batch_with_an_unbounded_source_is_a_typed_error() {
    let env = StreamExecutionEnvironment::new();
    env.set_runtime_mode(RuntimeMode::Batch);
    env.from_generator(None, |i: u64| i)
        .name("Endless")
        .key_by(|x: &u64| x % 2)
        .count()
        .collect_vec();
    let err = env.execute("endless batch").unwrap_err();
    assert!(
        matches!(
            &err,
            JobError::Graph(GraphError::UnboundedSourceInBatchMode { operator }) if operator == "Endless"
        ),
        "{err:?}"
    );
}
