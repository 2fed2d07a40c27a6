//! Kafka through the async sink (`AsyncSink::per_record(KafkaDestination ..)`) against
//! a real Kafka-protocol broker (noida-db under `scripts/test.sh`): every record lands
//! in the topic exactly once with requests and records in flight bounded, and a record
//! the broker can never take becomes a dead letter.

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::async_sink::Counted;
use common::kafka::{create_topic, read_all};
use common::{KAFKA, unique};
use flink_connectors::kafka::KafkaDestination;
use flink_core::async_sink::{AsyncSink, AsyncSinkOptions, PerRecord};
use flink_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Event {
    id: u64,
    pad: String,
}

fn event(id: u64) -> Event {
    Event {
        id,
        pad: String::new(),
    }
}

#[test]
fn every_record_lands_once_with_bounded_requests_in_flight() {
    let bootstrap = require_service!(KAFKA);
    let topic = unique("async_sink");
    create_topic(&bootstrap, &topic, 3);
    let n = 5_000u64;
    let dest = KafkaDestination::<Event>::json(&bootstrap, &topic)
        .unwrap()
        .with_key(|e: &Event| Some(e.id.to_string().into_bytes()));
    let (dest, peaks) = Counted::new(PerRecord(Arc::new(dest)));
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.from_collection((1..=n).map(event).collect::<Vec<_>>())
        .rebalance()
        .sink_to_async(
            AsyncSink::new(dest).options(
                AsyncSinkOptions::new()
                    .max_batch_size(100)
                    .max_in_flight_requests(4)
                    .max_buffered_records(400),
            ),
        );
    let result = env.execute("kafka async sink").unwrap();

    // Count every id read back, by key and by value: each exactly once.
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    for m in read_all(&bootstrap, &topic, 3, n as usize) {
        let e: Event = serde_json::from_slice(&m.value).unwrap();
        assert_eq!(m.key, Some(e.id.to_string().into_bytes()));
        *seen.entry(e.id).or_default() += 1;
    }
    let missing = (1..=n).filter(|id| !seen.contains_key(id)).count();
    let twice: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).collect();
    assert_eq!((seen.len() as u64, missing), (n, 0));
    assert!(twice.is_empty(), "written more than once: {twice:?}");

    let sink = result.operator("Async Sink").unwrap();
    assert_eq!(sink.custom("delivered"), Some(n));
    assert_eq!(sink.custom("in_flight"), Some(0));
    // 2 instances x 4 requests x 100 records at most.
    assert!(
        (1..=8).contains(&peaks.max_requests()),
        "{} requests in flight",
        peaks.max_requests()
    );
    assert!(
        peaks.max_records() <= 800,
        "{} records in flight",
        peaks.max_records()
    );
}

#[test]
fn a_record_the_broker_refuses_becomes_a_dead_letter() {
    let bootstrap = require_service!(KAFKA);
    let topic = unique("async_sink_large");
    create_topic(&bootstrap, &topic, 1);
    let t = topic.clone();
    let dest = KafkaDestination::<Event>::new(
        &[
            ("bootstrap.servers", bootstrap.as_str()),
            ("message.max.bytes", "2000"),
        ],
        move |_| t.clone(),
        flink_connectors::kafka::JsonSerializer::<Event>::new(),
    )
    .unwrap();
    let mut input: Vec<Event> = (1..=100).map(event).collect();
    input[41].pad = "y".repeat(10_000); // id 42: larger than message.max.bytes
    let env = StreamExecutionEnvironment::new();
    let sink = env.from_collection(input).sink_to_async(
        AsyncSink::per_record(dest)
            .options(AsyncSinkOptions::new().max_batch_size(10).dead_letters()),
    );
    let dead = sink.dead_letters::<Event>().collect_vec();
    let result = env.execute("kafka async sink too large").unwrap();
    let dead = dead.take();
    assert_eq!(
        dead.iter().map(|d| d.record.id).collect::<Vec<_>>(),
        vec![42]
    );
    let error = dead[0].last_error.as_deref().unwrap();
    assert!(error.contains("too large"), "{error}");
    assert_eq!(dead[0].attempts, 1, "a permanent failure is not retried");
    let mut ids: Vec<u64> = read_all(&bootstrap, &topic, 1, 99)
        .iter()
        .map(|m| serde_json::from_slice::<Event>(&m.value).unwrap().id)
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=100).filter(|&id| id != 42).collect::<Vec<_>>());
    let sink = result.operator("Async Sink").unwrap();
    assert_eq!(
        (sink.custom("delivered"), sink.custom("dead_letters")),
        (Some(99), Some(1))
    );
}
