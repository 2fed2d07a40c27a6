//! A PostgreSQL server that accepts connections but never answers: the sink's waits
//! (for a free batch slot, for the last acknowledgments at the end of input) end when
//! the job is cancelled. Needs no database: a listener that never replies stands in.

// Only the cancellation helper is used here, not the service macros.
#[allow(unused_macros)]
mod common;

use std::net::TcpListener;

use common::cancel::cancel_once_blocked;
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

/// A job of `records` records into the sink, cancelled once the sink received them
/// all: it must end.
fn cancel_and_expect_the_end(records: u64) {
    let env = StreamExecutionEnvironment::new();
    env.from_collection((0..records).collect::<Vec<_>>())
        .sink_named(sink(), "Postgres");
    cancel_once_blocked(&env, "Postgres", records);
}

#[test]
fn cancel_ends_a_sink_waiting_for_a_free_batch_slot() {
    // Batches of 10, one pending: the third batch waits for a slot forever.
    cancel_and_expect_the_end(1_000);
}

#[test]
fn cancel_ends_a_sink_waiting_for_its_last_acknowledgments() {
    // Input ends at once; `finish` waits for the writer that never hears back.
    cancel_and_expect_the_end(5);
}
