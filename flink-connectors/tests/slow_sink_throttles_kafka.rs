//! A deliberately slow PostgreSQL sink throttles a Kafka source: the records the
//! source has read but the database has not acknowledged stay bounded, while the
//! consumer lag stays large. Counts only, no timing assertions.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::kafka::{Msg, create_topic, produce};
use common::pg::exec;
use common::{KAFKA, POSTGRES, unique};
use flink_connectors::kafka::{KafkaOffsets, KafkaSource};
use flink_connectors::postgres::{PostgresConfig, PostgresSink, PostgresSinkMetrics, SqlValue};
use flink_runtime::prelude::*;

const RECORDS: i64 = 200_000;
/// Rows per INSERT, and batches that may wait for the database.
const BATCH: usize = 100;
const PENDING: usize = 2;

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !f() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// (read by the source, acknowledged by the database, lag).
fn sample(offsets: &KafkaOffsets, metrics: &PostgresSinkMetrics) -> (u64, u64, i64) {
    // Read the sink first: it can only be behind the source.
    let written = metrics.rows_written();
    (offsets.records(), written, offsets.lag())
}

#[test]
fn a_slow_postgres_sink_throttles_the_kafka_source() {
    let (bootstrap, url) = require_service!(KAFKA, POSTGRES);
    let topic = unique("slow");
    create_topic(&bootstrap, &topic, 1);
    let msgs: Vec<Msg> = (0..RECORDS)
        .map(|i| (Some(0), None, i.to_string().into_bytes()))
        .collect();
    produce(&bootstrap, &topic, &msgs);
    let table = unique("slow");
    exec(
        &url,
        &format!(
            "CREATE TABLE {table} (id bigint PRIMARY KEY);
             CREATE FUNCTION {table}_slow() RETURNS trigger AS $$
             BEGIN PERFORM pg_sleep(0.02); RETURN NULL; END $$ LANGUAGE plpgsql;
             CREATE TRIGGER {table}_slow BEFORE INSERT ON {table}
               FOR EACH STATEMENT EXECUTE FUNCTION {table}_slow();"
        ),
    );

    let source = KafkaSource::<String>::builder()
        .bootstrap_servers(&bootstrap)
        .topics([&topic])
        .unbounded()
        .string_values()
        .build()
        .unwrap();
    let offsets = source.offsets();
    let sink = PostgresSink::new(
        PostgresConfig::new(&url, &table, ["id"], |s: &String| {
            vec![SqlValue::Int(s.parse().unwrap())]
        })
        .batch_size(BATCH)
        .max_pending_batches(PENDING),
    )
    .unwrap();
    let metrics = sink.metrics();
    let env = StreamExecutionEnvironment::new();
    env.set_buffer_size(1024);
    env.from_source(source, "Kafka")
        .map(|s: String| s)
        .disable_chaining()
        .sink_named(sink, "Slow Postgres")
        .disable_chaining();
    let job = env.execute_async("slow sink").unwrap();

    // In flight between the source and the database at most: the source task's
    // last poll (1,024) and its network buffers, the sink task's input buffers
    // (1 KiB buffers of ~10-byte records), the sink's open batch and its pending
    // batches. 20,000 is far above that and far below the 200,000 records waiting.
    const BOUND: u64 = 20_000;
    let mut samples = Vec::new();
    for target in [2_000u64, 4_000, 6_000] {
        wait_for("the sink to write more", || {
            metrics.rows_written() >= target
        });
        let (read, written, lag) = sample(&offsets, &metrics);
        samples.push((read, written, lag));
        assert!(read >= written);
        assert!(
            read - written <= BOUND,
            "{} records in flight: {samples:?}",
            read - written
        );
        assert!(
            lag >= RECORDS - (written + BOUND) as i64,
            "lag {lag}: {samples:?}"
        );
    }
    let ops = job.operator_metrics();
    // The readers publish their lag as an operator metric too; it is large while the
    // sink holds the source back.
    let metric_lag: u64 = ops.iter().filter_map(|o| o.custom("consumer_lag")).sum();
    assert!(
        metric_lag >= RECORDS as u64 - (samples[2].1 + BOUND),
        "consumer_lag metric {metric_lag}: {samples:?}"
    );
    job.cancel();
    let _ = job.wait();
    // The source did go on reading as the sink wrote (throttled, not stopped).
    assert!(samples[2].0 > samples[0].0, "{samples:?}");
    eprintln!("slow sink samples (read, written, lag): {samples:?}");
    eprintln!("operators: {ops:?}");
}
