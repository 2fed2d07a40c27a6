//! The flow of the rescale tests: a job committing through an exactly-once sink is
//! stopped with a savepoint at parallelism 2 mid-run, then restored at another
//! parallelism into the same sink. No timing assertions: timing only decides where
//! the savepoint falls.

use std::fmt::Debug;
use std::path::Path;
use std::time::Duration;

use flink_core::stream_type::Record;
use flink_runtime::prelude::*;

use super::wait_until;

/// An environment at `parallelism`, checkpointing every 20 ms into `dir`, without
/// restarts.
pub fn environment(parallelism: usize, dir: &Path) -> StreamExecutionEnvironment {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(parallelism);
    env.enable_checkpointing(Duration::from_millis(20))
        .set_storage_dir(dir);
    env.set_restart_strategy(RestartStrategy::None);
    env
}

/// `records` -> map, sleeping 1 ms on each record `slow` picks (uid "slow") ->
/// `out` (uid "sink").
pub fn slowed_into<T: Record + Sync>(
    records: DataStream<T>,
    slow: impl Fn(&T) -> bool + Clone + Send + Sync + 'static,
    out: &TransactionalCollectingSink<T>,
) {
    records
        .map(move |record: T| {
            if slow(&record) {
                std::thread::sleep(Duration::from_millis(1));
            }
            record
        })
        .uid("slow")
        .sink_to(out.clone())
        .uid("sink");
}

/// Runs `env` (the job at parallelism 2, `records` to read, committing to `out`)
/// as `name` and stops it with a savepoint into `savepoints` once it committed
/// something. Checks that the savepoint fell mid-run and that everything read
/// before it, and nothing after, is committed; returns the savepoint.
pub fn savepoint_at_two<T: Clone>(
    env: &StreamExecutionEnvironment,
    name: &str,
    savepoints: &Path,
    out: &TransactionalCollectingSink<T>,
    records: u64,
) -> CheckpointLocation {
    let client = env.execute_async(name).unwrap();
    wait_until("a first commit", || out.committed_transactions() > 0);
    let savepoint = client
        .stop_with_savepoint(savepoints)
        .expect("the savepoint completes");
    let result = client
        .wait()
        .expect("a job stopped with a savepoint finishes");
    assert!(result.stopped);
    let read = result.records_read_by_sources();
    assert!(
        0 < read && read < records,
        "the savepoint fell mid-run: {read} read"
    );
    // Everything read before the savepoint is committed, nothing after it was read.
    assert_eq!(out.committed().len() as u64, read);
    savepoint
}

/// Runs `env` (restored from a savepoint of [`savepoint_at_two`], after which `out`
/// held `before` records) to its end as `name`, and checks that it read exactly
/// what the first run had not and that both runs together committed every one of
/// `expected` (sorted) exactly once; `what` names the run in failures.
pub fn restored_run<T: Ord + Clone + Debug>(
    env: &StreamExecutionEnvironment,
    name: &str,
    out: &TransactionalCollectingSink<T>,
    before: u64,
    expected: &[T],
    what: &str,
) {
    let result = env.execute(name).expect("the restored job runs to its end");
    assert!(result.restarts.is_empty());
    // The restored run read exactly what the first one had not ...
    assert_eq!(
        result.records_read_by_sources(),
        expected.len() as u64 - before,
        "{what}"
    );
    // ... and both together committed every record exactly once.
    let mut committed = out.committed();
    committed.sort_unstable();
    assert_eq!(committed, expected, "{what}");
}
