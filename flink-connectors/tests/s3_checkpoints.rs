//! Checkpoints on an S3-compatible object store by URL, without code changes: a
//! keyed job checkpoints to `s3://<bucket>/<path>` (flink-runtime's `s3` feature;
//! endpoint and credentials from the AWS_* variables), fails at injected points,
//! restores from the checkpoints in the bucket, and commits exactly the output of a
//! run without failures. Needs the moto server of `scripts/services.sh start`.

#[macro_use]
mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flink_core::sources::{RateLimiterStrategy, SequenceSource};
use flink_runtime::prelude::*;

const RECORDS: u64 = 20_000;
const BLOCK: u64 = 100;

/// Each key's running sum over its records, as a failure-free run emits it.
fn expected() -> Vec<(u64, u64, u64)> {
    let mut out = Vec::new();
    let mut sum = 0;
    for x in 0..RECORDS {
        if x % BLOCK == 0 {
            sum = 0;
        }
        sum += x;
        out.push((x / BLOCK, x, sum));
    }
    out
}

#[test]
fn a_keyed_job_checkpointing_to_s3_restores_exactly_after_failures() {
    let bucket = require_service!(common::S3);
    let url = format!("{bucket}/{}", common::unique("checkpoints"));
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.enable_checkpointing(Duration::from_millis(20))
        .set_storage_url(url)
        .set_retained_checkpoints(2);
    env.set_restart_strategy(RestartStrategy::FixedDelay {
        attempts: 10,
        delay: Duration::ZERO,
    });
    // Slow enough that checkpoints complete while the job runs (~1 s).
    let source = SequenceSource::range(0, RECORDS - 1)
        .rate_limited(RateLimiterStrategy::per_second(20_000.0).unwrap());
    let points: HashSet<u64> = [4_321, 9_876, 15_555].into();
    let fired = Arc::new(Mutex::new(HashSet::new()));
    let seen = fired.clone();
    let out = TransactionalCollectingSink::new();
    env.from_source(source, "Sequence")
        .map(move |x: u64| {
            if points.contains(&x) && seen.lock().unwrap().insert(x) {
                panic!("injected failure at record {x}");
            }
            (x / BLOCK, x)
        })
        .key_by(|r: &(u64, u64)| r.0)
        .process(
            |key: &u64,
             (_, x): (u64, u64),
             sum: &mut ValueState<u64>,
             out: &mut dyn Collector<(u64, u64, u64)>| {
                let next = sum.value().copied().unwrap_or(0) + x;
                sum.update(next);
                out.collect((*key, x, next));
            },
        )
        .sink_to(out.clone());
    let result = env.execute("s3 checkpoints").expect("the job recovers");
    assert_eq!(fired.lock().unwrap().len(), 3, "every failure fired");
    assert!(!result.restarts.is_empty());
    assert!(
        result
            .restarts
            .iter()
            .any(|r| r.restored_checkpoint.is_some()),
        "a restart restored a checkpoint read back from the bucket: {:#?}",
        result.restarts
    );
    assert!(result.checkpoints.is_some_and(|c| c.completed > 0));
    let mut committed = out.committed();
    committed.sort_unstable();
    assert_eq!(committed, expected());
}
