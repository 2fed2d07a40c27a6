//! A rate-limited Kafka source over a topic of several partitions, with messages
//! that become dead letters, stopped with a savepoint at parallelism 2 while its
//! readers hold part of a batch back, and restored at 2 and at 3, against the test
//! broker (see `common::service`). A Kafka reader's batches depend on what the
//! broker returned, so the held batch cannot be read again alike: the savepoint
//! holds the Kafka reader's position after the records that went out, and the
//! records (and dead letters) committed by both runs are the topic's exactly once.
//! No timing assertions: timing only decides where the savepoint falls, and the
//! test asserts it fell mid-batch.

#[macro_use]
mod common;

use std::path::Path;
use std::time::Duration;

use common::kafka::{Msg, create_topic, group_offsets, produce};
use common::wait_until;
use common::{KAFKA, unique};
use flink_connectors::kafka::{KafkaOffsets, KafkaSource, StartingOffsets};
use flink_core::dead_letter::dead_letter_tag;
use flink_core::sources::RateLimiterStrategy;
use flink_runtime::prelude::*;

const MESSAGES: u64 = 8_000;
const PARTITIONS: i32 = 4;
/// The first run's rate over both readers: 200 records a burst per reader, a
/// fraction of a Kafka batch (up to 1,000 records).
const PACED: f64 = 4_000.0;

/// Whether message `x` is not JSON (a dead letter).
fn bad(x: u64) -> bool {
    x % 50 == 7
}

/// A topic of `PARTITIONS` partitions holding `0..MESSAGES`, message `x` in
/// partition `x % PARTITIONS`: `x` as JSON, or `bad-x` if `bad(x)`.
fn topic(bootstrap: &str) -> String {
    let topic = unique("paced-in");
    create_topic(bootstrap, &topic, PARTITIONS);
    let messages: Vec<Msg> = (0..MESSAGES)
        .map(|x| {
            let value = if bad(x) {
                format!("bad-{x}")
            } else {
                x.to_string()
            };
            (
                Some((x % PARTITIONS as u64) as i32),
                None,
                value.into_bytes(),
            )
        })
        .collect();
    produce(bootstrap, &topic, &messages);
    topic
}

/// What both runs commit: the records and the dead letters' values.
#[derive(Clone)]
struct Out {
    records: TransactionalCollectingSink<u64>,
    dead: TransactionalCollectingSink<String>,
}

/// Kafka (bounded, at `rate` records a second, committing its offsets to `group`
/// on checkpoints, uid "kafka") -> transactional collecting sink (uid "sink"); its
/// dead letters' values -> another (uid "dead-sink"). With the source's offsets
/// handle.
fn job(
    bootstrap: &str,
    (topic, group): (&str, &str),
    parallelism: usize,
    dir: &Path,
    out: &Out,
    rate: f64,
) -> (StreamExecutionEnvironment, KafkaOffsets) {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(parallelism);
    env.enable_checkpointing(Duration::from_millis(20))
        .set_storage_dir(dir);
    env.set_restart_strategy(RestartStrategy::None);
    let source = KafkaSource::<u64>::builder()
        .bootstrap_servers(bootstrap)
        .topics([topic])
        .group_id(group)
        .commit_offsets(true)
        .starting_offsets(StartingOffsets::Earliest)
        .bounded()
        .json_values()
        .build()
        .unwrap();
    let offsets = source.offsets();
    let rate = RateLimiterStrategy::per_second(rate).unwrap();
    let records = env
        .from_source(source.rate_limited(rate), "Kafka")
        .uid("kafka");
    records
        .side_output(&dead_letter_tag::<Vec<u8>>())
        .map(|d| String::from_utf8(d.record).unwrap())
        .uid("dead-values")
        .sink_to(out.dead.clone())
        .uid("dead-sink");
    records.sink_to(out.records.clone()).uid("sink");
    (env, offsets)
}

/// Runs the paced job at parallelism 2 and stops it with a savepoint once it
/// committed records of every partition; returns the savepoint. Asserts that the savepoint fell
/// while a reader held records it had read from Kafka.
fn savepoint_at_two(bootstrap: &str, topic: &str, dir: &Path, out: &Out) -> CheckpointLocation {
    let group = unique("paced-group");
    let (env, offsets) = job(
        bootstrap,
        (topic, &group),
        2,
        &dir.join("checkpoints"),
        out,
        PACED,
    );
    let client = env.execute_async("paced kafka at 2").unwrap();
    // Until records of every partition went out (a reader restored at 3 then owns
    // a partition that no saved reader dealt to it had, and must resume it at its
    // saved offset all the same).
    wait_until("records of every partition committed", || {
        let committed = out.records.committed();
        (0..PARTITIONS as u64).all(|p| committed.iter().any(|x| x % PARTITIONS as u64 == p))
    });
    let savepoint = client
        .stop_with_savepoint(dir.join("savepoints"))
        .expect("the savepoint completes");
    let result = client
        .wait()
        .expect("a job stopped with a savepoint finishes");
    assert!(result.stopped);
    let read = result.records_read_by_sources();
    let good = (0..MESSAGES).filter(|&x| !bad(x)).count() as u64;
    assert!(
        0 < read && read < good,
        "the savepoint fell mid-run: {read} read"
    );
    // Everything emitted before the savepoint is committed, nothing after it was.
    assert_eq!(out.records.committed().len() as u64, read);
    // The Kafka readers had consumed more messages than went out (records and
    // dead letters, which go out as they are read): some were held back, so the
    // savepoint fell mid-batch. The tasks read nothing after the savepoint.
    let consumed: i64 = offsets.snapshot().values().map(|p| p.next_offset).sum();
    let went_out = read + out.dead.committed().len() as u64;
    assert!(
        consumed as u64 > went_out,
        "the savepoint fell between batches: {consumed} consumed, {went_out} out"
    );
    // The savepoint's completion committed its offsets: in each partition, the
    // first message that had not gone out; nothing held back.
    assert_eq!(
        group_offsets(bootstrap, &group, topic, PARTITIONS),
        first_not_out(out)
    );
    savepoint
}

/// Each partition's offset of its first message that went out neither as a
/// committed record nor as a committed dead letter.
fn first_not_out(out: &Out) -> Vec<i64> {
    let mut went_out: Vec<u64> = out.records.committed();
    let dead = out.dead.committed();
    went_out.extend(
        dead.iter()
            .map(|d| d["bad-".len()..].parse::<u64>().unwrap()),
    );
    let went_out: std::collections::HashSet<u64> = went_out.into_iter().collect();
    let p = PARTITIONS as u64;
    (0..p)
        .map(|partition| {
            let first = (0..MESSAGES / p).find(|o| !went_out.contains(&(o * p + partition)));
            first.map_or(MESSAGES / p, |o| o) as i64
        })
        .collect()
}

fn restore_at(parallelism: usize) {
    let bootstrap = require_service!(KAFKA);
    let topic = topic(&bootstrap);
    let dir = tempfile::tempdir().unwrap();
    let out = Out {
        records: TransactionalCollectingSink::new(),
        dead: TransactionalCollectingSink::new(),
    };
    let savepoint = savepoint_at_two(&bootstrap, &topic, dir.path(), &out);
    let before = out.records.committed().len() as u64;
    let (env, _) = job(
        &bootstrap,
        (&topic, &unique("paced-group")),
        parallelism,
        &dir.path().join("checkpoints"),
        &out,
        1_000_000.0,
    );
    env.restore_from(&savepoint);
    let result = env
        .execute("paced kafka restored")
        .expect("the restored job runs to its end");
    assert!(result.restarts.is_empty());
    let good: Vec<u64> = (0..MESSAGES).filter(|&x| !bad(x)).collect();
    // The restored run read exactly what the first one had not ...
    assert_eq!(
        result.records_read_by_sources(),
        good.len() as u64 - before,
        "parallelism {parallelism}"
    );
    // ... and both together committed every record and every dead letter once.
    let mut records = out.records.committed();
    records.sort_unstable();
    assert_eq!(records, good, "parallelism {parallelism}");
    let mut dead = out.dead.committed();
    dead.sort_unstable();
    let mut expected: Vec<String> = (0..MESSAGES)
        .filter(|&x| bad(x))
        .map(|x| format!("bad-{x}"))
        .collect();
    expected.sort_unstable();
    assert_eq!(dead, expected, "parallelism {parallelism}");
}

#[test]
fn a_paced_kafka_source_saved_mid_batch_at_two_restores_at_two() {
    restore_at(2);
}

#[test]
fn a_paced_kafka_source_saved_mid_batch_at_two_restores_at_three() {
    restore_at(3);
}
