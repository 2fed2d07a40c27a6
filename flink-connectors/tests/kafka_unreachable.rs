//! Failed delivery reports (no broker answers, messages time out) fail the job with a
//! clear error, or become dead letters: the asynchronous failure path of the Kafka
//! sink and destination. Needs no broker: it uses a port nothing listens on. A
//! cancellation ends every wait of the sink on such a broker.

// Only the cancellation helper is used here, not the service macros.
#[allow(unused_macros)]
mod common;

use common::cancel::cancel_once_blocked;
use flink_connectors::DeadLetterSinkExt;
use flink_connectors::kafka::{KafkaDestination, KafkaSink, StringSerializer};
use flink_core::destination::{AckDestination, DeliveryError};
use flink_runtime::prelude::*;

fn nowhere() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("127.0.0.1:{port}")
}

fn sink(bootstrap: &str, dead_letters: bool) -> KafkaSink<String> {
    KafkaSink::<String>::builder()
        .bootstrap_servers(bootstrap)
        .topic("unreachable")
        .string_values()
        .property("message.timeout.ms", "300")
        .max_in_flight(10)
        .dead_letters(dead_letters)
        .build()
        .unwrap()
}

#[test]
fn timed_out_deliveries_fail_the_job_naming_the_sink() {
    let env = StreamExecutionEnvironment::new();
    env.from_collection((0..50).map(|i| format!("r{i}")).collect::<Vec<_>>())
        .sink_named(sink(&nowhere(), false), "Kafka out");
    let err = env.execute("unreachable").unwrap_err().to_string();
    assert!(err.contains("Kafka out"), "{err}");
    assert!(
        err.contains("delivery to topic unreachable failed"),
        "{err}"
    );
    assert!(err.contains("timed out"), "{err}");
}

#[test]
fn timed_out_deliveries_become_dead_letters_when_asked() {
    let env = StreamExecutionEnvironment::new();
    let dead = env
        .from_collection((0..50).map(|i| format!("r{i}")).collect::<Vec<_>>())
        .sink_with_dead_letters::<Vec<u8>>(sink(&nowhere(), true), "Kafka out")
        .collect_vec();
    env.execute("unreachable").unwrap();
    let dead = dead.take();
    // Every record once, with its payload and the report's error.
    let mut payloads: Vec<String> = dead
        .iter()
        .map(|d| String::from_utf8(d.record.clone()).unwrap())
        .collect();
    payloads.sort_by_key(|p| p[1..].parse::<u32>().unwrap());
    assert_eq!(
        payloads,
        (0..50).map(|i| format!("r{i}")).collect::<Vec<_>>()
    );
    assert!(
        dead.iter()
            .all(|d| d.reason.contains("timed out") && d.operator == "Kafka out")
    );
}

#[test]
fn destination_reports_a_timeout_as_retryable() {
    let dest = KafkaDestination::<String>::new(
        &[
            ("bootstrap.servers", nowhere().as_str()),
            ("message.timeout.ms", "300"),
        ],
        |_| "unreachable".to_string(),
        StringSerializer,
    )
    .unwrap();
    match futures::executor::block_on(dest.send("x".into())) {
        Err(DeliveryError::Retryable(m)) => assert!(m.contains("timed out"), "{m}"),
        other => panic!("{other:?}"),
    }
}

/// A job of `records` records into `sink`, cancelled once the sink received one and
/// is blocked waiting on the producer: it must end.
fn cancel_while_blocked(records: u64, sink: KafkaSink<String>) {
    let env = StreamExecutionEnvironment::new();
    env.from_collection((0..records).map(|i| format!("r{i}")).collect::<Vec<_>>())
        .sink_named(sink, "Kafka out");
    cancel_once_blocked(&env, "Kafka out", 1);
}

/// A sink whose deliveries never complete (no broker, a message timeout of an hour).
fn stuck_sink() -> flink_connectors::kafka::KafkaSinkBuilder<String> {
    KafkaSink::<String>::builder()
        .bootstrap_servers(&nowhere())
        .topic("unreachable")
        .string_values()
        .property("message.timeout.ms", "3600000")
}

#[test]
fn cancel_ends_a_sink_waiting_for_a_free_in_flight_slot() {
    cancel_while_blocked(100, stuck_sink().max_in_flight(10).build().unwrap());
}

#[test]
fn cancel_ends_a_sink_waiting_on_a_full_producer_queue() {
    let sink = stuck_sink()
        .max_in_flight(1_000)
        .property("queue.buffering.max.messages", "5")
        .build()
        .unwrap();
    cancel_while_blocked(100, sink);
}

#[test]
fn cancel_ends_a_sink_flushing_at_the_end_of_input() {
    let sink = stuck_sink()
        .flush_timeout(std::time::Duration::from_secs(3600))
        .build()
        .unwrap();
    cancel_while_blocked(5, sink);
}
