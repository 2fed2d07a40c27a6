//! A Kafka source stopped with a savepoint at parallelism 2 and restored at 1, 3
//! and 4, against the test broker (noida-db under `scripts/test.sh`; see
//! `common::service`): the partitions are assigned anew, each resumes from its saved
//! offset in exactly one reader, and the records committed by both runs are the
//! topic's records exactly once. No timing assertions: timing only decides where the
//! savepoint falls.

#[macro_use]
mod common;

use std::path::Path;

use common::kafka::{Msg, create_topic, produce};
use common::rescale;
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
    let env = rescale::environment(parallelism, dir);
    let source = KafkaSource::<u64>::builder()
        .bootstrap_servers(bootstrap)
        .topics([topic])
        .group_id(&unique("rescale-group"))
        .starting_offsets(StartingOffsets::Earliest)
        .bounded()
        .json_values()
        .build()
        .unwrap();
    rescale::slowed_into(
        env.from_source(source, "Kafka").uid("kafka"),
        move |x: &u64| slow && x.is_multiple_of(10),
        out,
    );
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
    rescale::savepoint_at_two(&env, "kafka at 2", &dir.join("savepoints"), out, RECORDS)
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
    rescale::restored_run(
        &env,
        "kafka restored",
        &out,
        before,
        &(0..RECORDS).collect::<Vec<_>>(),
        &format!("parallelism {parallelism}"),
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
