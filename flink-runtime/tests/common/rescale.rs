//! The flow of the savepoint tests: a job committing through an exactly-once sink
//! is stopped with a savepoint at parallelism 2 mid-run, then restored (at any
//! parallelism) into the same sink. No timing assertions: timing only decides where
//! the savepoint falls.

use std::path::Path;
use std::time::Duration;

use flink_runtime::prelude::*;

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

/// Runs `env` (the job at parallelism 2, `records` to read, committing to `out`)
/// as `name` and stops it with a savepoint into `savepoints` once it committed
/// something. Checks that the job stopped naming the savepoint, that the savepoint
/// fell mid-run, and that everything read before it, and nothing after, is
/// committed; returns the savepoint.
pub fn savepoint_at_two<T: Clone>(
    env: &StreamExecutionEnvironment,
    name: &str,
    savepoints: &Path,
    out: &TransactionalCollectingSink<T>,
    records: u64,
) -> CheckpointLocation {
    let client = env.execute_async(name).unwrap();
    super::poll_until("a first commit", || out.committed_transactions() > 0);
    let savepoint = client
        .stop_with_savepoint(savepoints)
        .expect("the savepoint completes");
    let result = client
        .wait()
        .expect("a job stopped with a savepoint finishes");
    assert_eq!(result.savepoint.as_ref(), Some(&savepoint));
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
