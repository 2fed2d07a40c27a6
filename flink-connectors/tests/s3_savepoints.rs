//! Savepoints and restore on an S3-compatible object store by URL, with the same
//! calls as for a local directory: a keyed running sum checkpointing to
//! `s3://<bucket>/<path>` stops with a savepoint into the bucket at parallelism 2
//! and restores from it at 1 and 3 with every key's exact sum and every record
//! committed exactly once; `latest_checkpoint` finds the newest checkpoint in the
//! bucket; a missing or damaged savepoint in the bucket is a clear error and
//! nothing starts. Needs the moto server of `scripts/services.sh start`.

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::wait_until;
use flink_runtime::checkpoint::{RestoreError, latest_checkpoint};
use flink_runtime::prelude::*;
use object_store::ObjectStore;

const RECORDS: u64 = 200_000;
const KEYS: u64 = 100;
const JOB: &str = "sums";

/// (key, record, running sum of the key) as the job commits it.
type Sum = (u64, u64, u64);

/// sequence -> map, sleeping now and then if `slow` -> key_by -> running sum per
/// key -> sink, checkpointing to the bucket URL `storage`.
fn job(
    parallelism: usize,
    storage: &str,
    out: &TransactionalCollectingSink<Sum>,
    slow: bool,
) -> StreamExecutionEnvironment {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(parallelism);
    env.enable_checkpointing(Duration::from_millis(50))
        .set_storage_url(storage);
    env.set_restart_strategy(RestartStrategy::None);
    env.from_sequence(0, RECORDS - 1)
        .uid("numbers")
        .map(move |x: u64| {
            // Slow: a millisecond every 200 records in the first half, then one per
            // record, so the job cannot end before the savepoint the test takes
            // after its first commit, however loaded the machine (before, under
            // load, it sometimes read every record first).
            if slow && (x >= RECORDS / 2 || x.is_multiple_of(200)) {
                std::thread::sleep(Duration::from_millis(1));
            }
            (x % KEYS, x)
        })
        .uid("tag")
        .key_by(|r: &(u64, u64)| r.0)
        .process(
            |key: &u64,
             (_, x): (u64, u64),
             sum: &mut ValueState<u64>,
             out: &mut dyn Collector<Sum>| {
                let next = sum.value().copied().unwrap_or(0) + x;
                sum.update(next);
                out.collect((*key, x, next));
            },
        )
        .uid("sums")
        .sink_to(out.clone())
        .uid("sink");
    env
}

/// Runs the slow job at parallelism 2, checkpointing to `base/checkpoints`, and
/// stops it with a savepoint into `base/savepoints` once it committed something;
/// returns the savepoint's URL.
fn savepoint_at_two(base: &str, out: &TransactionalCollectingSink<Sum>) -> CheckpointLocation {
    let env = job(2, &format!("{base}/checkpoints"), out, true);
    let client = env.execute_async(JOB).unwrap();
    wait_until("first commit", || out.committed_transactions() > 0);
    let savepoint = client
        .stop_with_savepoint(format!("{base}/savepoints"))
        .expect("the savepoint completes");
    let result = client
        .wait()
        .expect("a job stopped with a savepoint finishes");
    assert_eq!(result.savepoint.as_ref(), Some(&savepoint));
    let prefix = format!("{base}/savepoints/savepoint-{JOB}-");
    assert!(
        matches!(&savepoint, CheckpointLocation::Url(url) if url.starts_with(&prefix)),
        "the savepoint is in the bucket: {savepoint}"
    );
    let read = result.records_read_by_sources();
    assert!(
        0 < read && read < RECORDS,
        "the savepoint fell mid-run: {read} read"
    );
    assert_eq!(out.committed().len() as u64, read);
    savepoint
}

/// Each key's largest running sum in `committed`.
fn final_sums(committed: &[Sum]) -> BTreeMap<u64, u64> {
    let mut last: BTreeMap<u64, u64> = BTreeMap::new();
    for &(key, _, sum) in committed {
        let v = last.entry(key).or_default();
        *v = (*v).max(sum);
    }
    last
}

/// Each key's sum over all records, as a run without a savepoint ends.
fn expected_sums() -> BTreeMap<u64, u64> {
    (0..KEYS)
        .map(|k| (k, (0..RECORDS).filter(|x| x % KEYS == k).sum()))
        .collect()
}

fn restore_at(base: &str, parallelism: usize) {
    let out = TransactionalCollectingSink::new();
    let savepoint = savepoint_at_two(base, &out);
    let env = job(parallelism, &format!("{base}/checkpoints"), &out, false);
    env.restore_from(&savepoint);
    let result = env.execute(JOB).expect("the restored job runs to its end");
    assert!(result.restarts.is_empty());
    let committed = out.committed();
    let mut records: Vec<u64> = committed.iter().map(|&(_, x, _)| x).collect();
    records.sort_unstable();
    assert_eq!(
        records,
        (0..RECORDS).collect::<Vec<_>>(),
        "every record committed exactly once over both runs, parallelism {parallelism}"
    );
    assert_eq!(
        final_sums(&committed),
        expected_sums(),
        "parallelism {parallelism}"
    );
}

#[test]
fn a_savepoint_in_s3_at_two_restores_at_one() {
    let bucket = require_service!(common::S3);
    restore_at(&format!("{bucket}/{}", common::unique("sp1")), 1);
}

#[test]
fn a_savepoint_in_s3_at_two_restores_at_three() {
    let bucket = require_service!(common::S3);
    restore_at(&format!("{bucket}/{}", common::unique("sp3")), 3);
}

#[test]
fn the_latest_checkpoint_in_s3_is_found_and_restores() {
    let bucket = require_service!(common::S3);
    let base = format!("{bucket}/{}", common::unique("latest"));
    let storage = format!("{base}/checkpoints");
    assert_eq!(latest_checkpoint(storage.as_str(), JOB).unwrap(), None);
    let first = TransactionalCollectingSink::new();
    savepoint_at_two(&base, &first);
    let latest = latest_checkpoint(storage.as_str(), JOB)
        .unwrap()
        .expect("a completed checkpoint in the bucket");
    let prefix = format!("{storage}/{JOB}/chk-");
    assert!(
        matches!(&latest, CheckpointLocation::Url(url) if url.starts_with(&prefix)),
        "{latest}"
    );
    // The checkpoint may be older than the savepoint, so this run re-emits some
    // records; each key's final sum is exact all the same.
    let out = TransactionalCollectingSink::new();
    let env = job(2, &storage, &out, false);
    env.restore_from(latest);
    env.execute(JOB).expect("the restored job runs to its end");
    assert_eq!(final_sums(&out.committed()), expected_sums());
}

/// The bucket's store and the path of `location` in it (the AWS_* variables of
/// the services say where moto is).
fn bucket_store(location: &CheckpointLocation) -> (impl ObjectStore, object_store::path::Path) {
    let url = location.to_string();
    let (bucket, path) = url
        .strip_prefix("s3://")
        .and_then(|rest| rest.split_once('/'))
        .expect("an s3://bucket/path URL");
    let store = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .build()
        .unwrap();
    (store, object_store::path::Path::from(path))
}

fn restore_error(env: &StreamExecutionEnvironment) -> RestoreError {
    match env.execute(JOB) {
        Err(JobError::Restore(e)) => e,
        other => panic!("expected a restore error, got {other:?}"),
    }
}

#[test]
fn a_missing_or_damaged_savepoint_in_s3_is_a_clear_error_and_nothing_starts() {
    let bucket = require_service!(common::S3);
    let base = format!("{bucket}/{}", common::unique("bad"));
    let storage = format!("{base}/checkpoints");
    let out = TransactionalCollectingSink::new();

    let env = job(2, &storage, &out, false);
    env.restore_from(format!("{base}/no-such-savepoint"));
    let err = restore_error(&env);
    assert!(matches!(err, RestoreError::NotACheckpoint { .. }), "{err}");
    assert!(err.to_string().contains("no-such-savepoint"), "{err}");

    let first = TransactionalCollectingSink::new();
    let savepoint = savepoint_at_two(&base, &first);
    // Cut one task file of the savepoint short, in the bucket.
    let (store, path) = bucket_store(&savepoint);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let file = path.child("task-0-0");
    let bytes = runtime
        .block_on(async { store.get(&file).await?.bytes().await })
        .unwrap();
    runtime
        .block_on(store.put(&file, bytes.slice(..bytes.len() / 2).into()))
        .unwrap();
    let env = job(2, &storage, &out, false);
    env.restore_from(&savepoint);
    let err = restore_error(&env);
    assert!(
        matches!(&err, RestoreError::Corrupt { file, reason, .. }
            if file == "task-0-0" && reason.contains("truncated")),
        "{err}"
    );
    assert!(out.committed().is_empty(), "nothing started");
}
