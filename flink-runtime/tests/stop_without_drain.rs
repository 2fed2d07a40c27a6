//! Stop with a savepoint without drain (Flink's default `stop`, `StopMode.NO_DRAIN`)
//! and with a drain (`stop --drain`): without drain no event-time window fires and
//! no final reduction is emitted at the stop, so a run stopped mid-way plus the run
//! restored from its savepoint output exactly what a run without stop outputs; with
//! a drain the windows fire at the stop and the savepoint is taken after the drain,
//! so the restored run does not fire them again. No timing assertions: timing only
//! decides where the stop falls (each test checks it fell mid-run).

use std::path::Path;
use std::time::Duration;

mod common;

use flink_core::sources::{RateLimiterStrategy, SequenceSource};
use flink_core::watermark::WatermarkStrategy;
use flink_core::windows::{TimeWindow, TumblingEventTimeWindows};
use flink_runtime::prelude::*;

const RECORDS: u64 = 60_000;
const KEYS: u64 = 7;
const WINDOW_MS: i64 = 100;
/// Records per second of the paced source: the run would take 6 s, so the stop
/// (right after the first windows fired) falls mid-run even on a loaded machine.
const RATE: f64 = 10_000.0;

/// (key, window end, records in the window).
type Count = (u64, i64, u64);

/// The window counts of `records` (each record `x` at event time `x` ms, key
/// `x % KEYS`), sorted.
fn window_counts(records: impl Iterator<Item = u64>) -> Vec<Count> {
    let mut counts = std::collections::BTreeMap::new();
    for x in records {
        let end = (x as i64 / WINDOW_MS + 1) * WINDOW_MS;
        *counts.entry((x % KEYS, end)).or_insert(0u64) += 1;
    }
    counts
        .into_iter()
        .map(|((k, end), n)| (k, end, n))
        .collect()
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort_unstable();
    v
}

/// The job's environment: parallelism `p`, checkpoints into `dir` (rarely: the
/// savepoint is what counts), no restarts, no source pacing unless `paced`.
fn environment(p: usize, dir: &Path) -> StreamExecutionEnvironment {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(p);
    env.enable_checkpointing(Duration::from_secs(60))
        .set_storage_dir(dir.join("checkpoints"));
    env.set_restart_strategy(RestartStrategy::None);
    env.set_auto_watermark_interval(Duration::from_millis(1));
    env
}

/// The numbers `0..RECORDS`, paced when `paced`.
fn numbers(env: &StreamExecutionEnvironment, paced: bool) -> DataStream<u64> {
    let source = SequenceSource::range(0, RECORDS - 1);
    let source = if paced {
        source.rate_limited(RateLimiterStrategy::per_second(RATE).unwrap())
    } else {
        source.rate_limited(RateLimiterStrategy::per_second(1e9).unwrap())
    };
    env.from_source(source, "Sequence").uid("numbers")
}

/// numbers (event time x ms) -> key_by(x % 7) -> 100 ms tumbling windows counting.
fn windows(env: &StreamExecutionEnvironment, paced: bool) -> DataStream<Count> {
    numbers(env, paced)
        .assign_timestamps_and_watermarks(WatermarkStrategy::monotonous(|x: &u64| *x as i64))
        .uid("timestamps")
        .key_by(|x: &u64| x % KEYS)
        .window(TumblingEventTimeWindows::of(Duration::from_millis(
            WINDOW_MS as u64,
        )))
        .process(
            |key: &u64, w: &TimeWindow, xs: &[u64], out: &mut dyn Collector<Count>| {
                out.collect((*key, w.end, xs.len() as u64))
            },
        )
        .uid("windows")
        .name("Windows")
}

/// Whether operator `name` of `client`'s job emitted a record.
fn emitted(client: &JobClient, name: &str) -> bool {
    client
        .operator_metrics()
        .iter()
        .any(|o| o.name == name && o.records_out > 0)
}

/// Stops `client` as `stop` says once operator `started` emitted a record; returns
/// the savepoint and the records the sources read, checking the stop fell mid-run.
fn stop_mid_run(
    client: JobClient,
    started: &str,
    stop: impl FnOnce(&JobClient) -> CheckpointLocation,
) -> (CheckpointLocation, u64) {
    common::poll_until("output before the stop", || emitted(&client, started));
    let savepoint = stop(&client);
    let result = client
        .wait()
        .expect("a job stopped with a savepoint finishes");
    assert!(result.stopped);
    assert_eq!(result.savepoint.as_ref(), Some(&savepoint));
    assert!(
        savepoint
            .as_directory()
            .expect("a local savepoint")
            .join("_metadata")
            .is_file()
    );
    let read = result.records_read_by_sources();
    assert!(
        0 < read && read < RECORDS,
        "the stop fell mid-run: {read} read"
    );
    (savepoint, read)
}

#[test]
fn windows_stopped_without_drain_fire_once_across_the_stop_and_the_restore() {
    let expected = window_counts(0..RECORDS);
    for p in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let env = environment(p, dir.path());
        let first = windows(&env, true).collect_vec();
        let client = env.execute_async("windows").unwrap();
        let (savepoint, _) = stop_mid_run(client, "Windows", |c| {
            c.stop_with_savepoint(dir.path().join("savepoints"))
                .unwrap()
        });
        let first = first.take();
        // Only windows the watermark passed before the savepoint fired, each whole:
        // none fired at the stop with part of its records.
        for count in &first {
            assert!(
                expected.binary_search(count).is_ok(),
                "p={p}: a partial window fired at the stop: {count:?}"
            );
        }
        let env = environment(p, dir.path());
        let second = windows(&env, false).collect_vec();
        env.restore_from(&savepoint);
        env.execute("windows restored").unwrap();
        let mut both = first;
        both.extend(second.take());
        assert_eq!(sorted(both), expected, "p={p}");
    }
}

#[test]
fn committed_windows_stopped_without_drain_are_exact_after_the_restore() {
    let expected = window_counts(0..RECORDS);
    let dir = tempfile::tempdir().unwrap();
    let out = TransactionalCollectingSink::<Count>::new();
    let env = environment(2, dir.path());
    windows(&env, true).sink_to(out.clone()).uid("sink");
    let client = env.execute_async("windows").unwrap();
    let (savepoint, _) = stop_mid_run(client, "Windows", |c| {
        c.stop_with_savepoint(dir.path().join("savepoints"))
            .unwrap()
    });
    // What the first run committed is whole windows only.
    let first = out.committed();
    assert!(!first.is_empty());
    for count in &first {
        assert!(
            expected.binary_search(count).is_ok(),
            "a partial window was committed at the stop: {count:?}"
        );
    }
    let env = environment(2, dir.path());
    windows(&env, false).sink_to(out.clone()).uid("sink");
    env.restore_from(&savepoint);
    env.execute("windows restored").unwrap();
    // Commits of a transaction are idempotent, so the shared sink holds each
    // committed transaction once: every window exactly once over both runs.
    assert_eq!(sorted(out.committed()), expected);
}

/// numbers -> (x % 7, x) -> key_by -> sum: in batch mode one final sum per key.
fn final_sums(env: &StreamExecutionEnvironment, paced: bool) -> CollectedRecords<(u64, u64)> {
    numbers(env, paced)
        .map(|x: u64| (x % KEYS, x))
        .uid("pairs")
        .key_by(|r: &(u64, u64)| r.0)
        .sum(|r: &mut (u64, u64)| &mut r.1)
        .uid("sums")
        .collect_vec()
}

#[test]
fn a_final_reduction_stopped_without_drain_emits_nothing_until_the_restored_end() {
    let dir = tempfile::tempdir().unwrap();
    let env = environment(2, dir.path());
    env.set_runtime_mode(RuntimeMode::Batch);
    let first = final_sums(&env, true);
    let client = env.execute_async("sums").unwrap();
    // Batch mode emits nothing before the end: wait for the source to read.
    let (savepoint, _) = stop_mid_run(client, "Sequence", |c| {
        c.stop_with_savepoint(dir.path().join("savepoints"))
            .unwrap()
    });
    assert_eq!(first.take(), Vec::new(), "no partial final sum at the stop");
    let env = environment(2, dir.path());
    env.set_runtime_mode(RuntimeMode::Batch);
    let second = final_sums(&env, false);
    env.restore_from(&savepoint);
    env.execute("sums restored").unwrap();
    let expected: Vec<(u64, u64)> = (0..KEYS)
        .map(|k| (k, (0..RECORDS).filter(|x| x % KEYS == k).sum()))
        .collect();
    assert_eq!(sorted(second.take()), expected);
}

#[test]
fn a_stop_with_a_drain_fires_the_windows_then_takes_the_savepoint() {
    let dir = tempfile::tempdir().unwrap();
    // One source instance: the records read are 0..read, in order.
    let env = environment(1, dir.path());
    let first = windows(&env, true).collect_vec();
    let client = env.execute_async("windows").unwrap();
    let (savepoint, read) = stop_mid_run(client, "Windows", |c| {
        c.stop_with_savepoint_and_drain(dir.path().join("savepoints"))
            .unwrap()
    });
    // The drain fired every window of what was read, the last ones partial.
    assert_eq!(sorted(first.take()), window_counts(0..read));
    // The savepoint was taken after the drain: it holds no window the first run
    // fired, so the restored run counts only the records after it.
    let env = environment(1, dir.path());
    let second = windows(&env, false).collect_vec();
    env.restore_from(&savepoint);
    env.execute("windows restored").unwrap();
    assert_eq!(sorted(second.take()), window_counts(read..RECORDS));
}
