//! A Kafka source stopped with a savepoint at parallelism 2 and restored at 1, 3
//! and 4, against the test broker (noida-db under `scripts/test.sh`; see
//! `common::service`): the partitions are assigned anew, each resumes from its saved
//! offset in exactly one reader, and the records committed by both runs are the
//! topic's records exactly once. No timing assertions: timing only decides where the
//! savepoint falls.

#[macro_use]
mod common;

use std::path::Path;
use std::time::Duration;

use common::kafka::{Msg, create_topic, produce};
use common::wait_until;
use common::{KAFKA, unique};
use flink_connectors::kafka::{KafkaSource, StartingOffsets};
use flink_runtime::prelude::*;

const RECORDS: u64 = 20_000;
const PARTITIONS: i32 = 4;

/// A topic of `PARTITIONS` partitions holding `0..RECORDS`, record `x` in partition
/// `x % PARTITIONS`.
fn topic(bootstrap: &str) -> String {
    let topic = unique("rescale-in");
    create_topic(bootstrap, &topic, PARTITIONS);
    let messages: Vec<Msg> = (0..RECORDS)
        .map(|x| {
            (
                Some((x % PARTITIONS as u64) as i32),
                None,
                x.to_string().into_bytes(),
            )
        })
        .collect();
    produce(bootstrap, &topic, &messages);
    topic
}

/// Kafka (bounded, uid "kafka") -> map, sleeping now and then if `slow` (uid
/// "slow") -> transactional collecting sink (uid "sink").
fn job(
    bootstrap: &str,
    topic: &str,
    parallelism: usize,
    dir: &Path,
    out: &TransactionalCollectingSink<u64>,
    slow: bool,
) -> StreamExecutionEnvironment {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(parallelism);
    env.enable_checkpointing(Duration::from_millis(20))
        .set_storage_dir(dir);
    env.set_restart_strategy(RestartStrategy::None);
    let source = KafkaSource::<u64>::builder()
        .bootstrap_servers(bootstrap)
        .topics([topic])
        .group_id(&unique("rescale-group"))
        .starting_offsets(StartingOffsets::Earliest)
        .bounded()
        .json_values()
        .build()
        .unwrap();
    env.from_source(source, "Kafka")
        .uid("kafka")
        .map(move |x: u64| {
            if slow && x.is_multiple_of(100) {
                std::thread::sleep(Duration::from_millis(1));
            }
            x
        })
        .uid("slow")
        .sink_to(out.clone())
        .uid("sink");
    env
}

/// Runs the slow job at parallelism 2 and stops it with a savepoint once it
/// committed something; returns the savepoint.
fn savepoint_at_two(
    bootstrap: &str,
    topic: &str,
    dir: &Path,
    out: &TransactionalCollectingSink<u64>,
) -> CheckpointLocation {
    let env = job(bootstrap, topic, 2, &dir.join("checkpoints"), out, true);
    let client = env.execute_async("kafka at 2").unwrap();
    wait_until("a first commit", || out.committed_transactions() > 0);
    let savepoint = client
        .stop_with_savepoint(dir.join("savepoints"))
        .expect("the savepoint completes");
    let result = client
        .wait()
        .expect("a job stopped with a savepoint finishes");
    assert!(result.stopped);
    let read = result.records_read_by_sources();
    assert!(
        0 < read && read < RECORDS,
        "the savepoint fell mid-run: {read} read"
    );
    // Everything read before the savepoint is committed, nothing after it was read.
    assert_eq!(out.committed().len() as u64, read);
    savepoint
}

fn restore_at(parallelism: usize) {
    let bootstrap = require_service!(KAFKA);
    let topic = topic(&bootstrap);
    let dir = tempfile::tempdir().unwrap();
    let out = TransactionalCollectingSink::new();
    let savepoint = savepoint_at_two(&bootstrap, &topic, dir.path(), &out);
    let before = out.committed().len() as u64;
    let env = job(
        &bootstrap,
        &topic,
        parallelism,
        &dir.path().join("checkpoints"),
        &out,
        false,
    );
    env.restore_from(&savepoint);
    let result = env
        .execute("kafka restored")
        .expect("the restored job runs to its end");
    assert!(result.restarts.is_empty());
    // The restored run read exactly what the first one had not ...
    assert_eq!(
        result.records_read_by_sources(),
        RECORDS - before,
        "parallelism {parallelism}"
    );
    // ... and both together committed every record exactly once.
    let mut records = out.committed();
    records.sort_unstable();
    assert_eq!(
        records,
        (0..RECORDS).collect::<Vec<_>>(),
        "parallelism {parallelism}"
    );
}

#[test]
fn a_kafka_source_saved_at_two_restores_at_one() {
    restore_at(1);
}

#[test]
fn a_kafka_source_saved_at_two_restores_at_three() {
    restore_at(3);
}

#[test]
fn a_kafka_source_saved_at_two_restores_at_four() {
    restore_at(4);
}
