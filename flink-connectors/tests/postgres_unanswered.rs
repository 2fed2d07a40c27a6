//! A PostgreSQL server that accepts connections but never answers: the sink's waits
//! (for a free batch slot, for the last acknowledgments at the end of input) end when
//! the job is cancelled. Needs no database: a listener that never replies stands in.

use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use flink_connectors::postgres::{PostgresConfig, PostgresSink, SqlValue};
use flink_runtime::prelude::*;

/// A server that accepts every connection and never says a word; returns its URL.
fn silent_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    format!("postgres://postgres@127.0.0.1:{port}/postgres")
}

fn sink() -> PostgresSink<u64> {
    let config = PostgresConfig::new(&silent_server(), "never", ["n"], |n: &u64| {
        vec![SqlValue::Int(*n as i64)]
    })
    .batch_size(10)
    .max_pending_batches(1);
    PostgresSink::new(config).unwrap()
}

/// Cancels the job once its sink received `records`, then fails the test unless
/// the job ends within a guard time (against a hang; no timing is asserted).
fn cancel_and_expect_the_end(env: &StreamExecutionEnvironment, records: u64) {
    let client = env.execute_async("silent postgres").unwrap();
    let observer = client.observer();
    let sink_in = move || {
        observer
            .operator_metrics()
            .iter()
            .find(|o| o.name == "Postgres")
            .map_or(0, |o| o.records_in)
    };
    for _ in 0..1_000 {
        if sink_in() >= records {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(sink_in() >= records, "the sink never received its records");
    // Time for the writer to enter its wait; only the end of the job is asserted.
    std::thread::sleep(Duration::from_millis(200));
    client.cancel();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(client.wait());
    });
    let result = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the cancelled job did not end");
    assert!(
        matches!(result, Err(JobError::Cancelled { .. })),
        "{result:?}"
    );
}

#[test]
fn cancel_ends_a_sink_waiting_for_a_free_batch_slot() {
    // Batches of 10, one pending: the third batch waits for a slot forever.
    let env = StreamExecutionEnvironment::new();
    env.from_collection((0..1_000u64).collect::<Vec<_>>())
        .sink_named(sink(), "Postgres");
    cancel_and_expect_the_end(&env, 1_000);
}

#[test]
fn cancel_ends_a_sink_waiting_for_its_last_acknowledgments() {
    // Input ends at once; `finish` waits for the writer that never hears back.
    let env = StreamExecutionEnvironment::new();
    env.from_collection((0..5u64).collect::<Vec<_>>())
        .sink_named(sink(), "Postgres");
    cancel_and_expect_the_end(&env, 5);
}
