//! Kafka helpers for tests: create topics, produce, read back.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use flink_connectors::kafka::{KafkaSource, StartingOffsets};
use flink_runtime::prelude::*;

/// Creates `topic` with `partitions` partitions and waits until its metadata shows them.
pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let res = futures::executor::block_on(admin.create_topics(
        [&new],
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
    ))
    .expect("create_topics");
    for r in res {
        r.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e:?}"));
    }
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    for _ in 0..100 {
        if let Ok(md) = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))
            && md
                .topics()
                .iter()
                .any(|t| t.name() == topic && t.partitions().len() == partitions as usize)
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("topic {topic} did not appear with {partitions} partitions");
}

/// The (low, high) watermarks of every partition `0..partitions` of `topic`.
pub fn watermarks(bootstrap: &str, topic: &str, partitions: i32) -> Vec<(i64, i64)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("watermarks of {topic}/{p}: {e}"))
        })
        .collect()
}

/// One message to produce: partition (None: by key), key, value.
pub type Msg = (Option<i32>, Option<Vec<u8>>, Vec<u8>);

/// Produces `messages` in order and waits for every delivery.
pub fn produce(bootstrap: &str, topic: &str, messages: &[Msg]) {
    produce_with(bootstrap, topic, messages, None)
}

/// The record for `message` on `topic`.
fn record<'a>(
    topic: &'a str,
    (partition, key, value): &'a Msg,
) -> BaseRecord<'a, Vec<u8>, Vec<u8>> {
    let mut rec = BaseRecord::to(topic).payload(value);
    if let Some(p) = partition {
        rec = rec.partition(*p);
    }
    if let Some(k) = key {
        rec = rec.key(k);
    }
    rec
}

/// As [`produce`], with an explicit timestamp (ms) for every message.
pub fn produce_with(bootstrap: &str, topic: &str, messages: &[Msg], timestamp: Option<i64>) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for message in messages {
        let mut rec = record(topic, message);
        if let Some(ts) = timestamp {
            rec = rec.timestamp(ts);
        }
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((_, back)) => {
                    rec = back;
                    producer.poll(Duration::from_millis(50));
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

/// Produces each batch in a transaction of its own, committed or aborted, with one
/// transactional producer, and waits for every commit or abort.
pub fn produce_transactions(bootstrap: &str, topic: &str, transactions: &[(Vec<Msg>, bool)]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", super::unique("tx"))
        .create()
        .unwrap();
    let timeout = Duration::from_secs(30);
    producer
        .init_transactions(timeout)
        .expect("init_transactions");
    for (messages, commit) in transactions {
        producer.begin_transaction().expect("begin_transaction");
        for message in messages {
            producer
                .send(record(topic, message))
                .map_err(|(e, _)| e)
                .expect("send");
        }
        producer.flush(timeout).expect("flush");
        if *commit {
            producer
                .commit_transaction(timeout)
                .expect("commit_transaction");
        } else {
            producer
                .abort_transaction(timeout)
                .expect("abort_transaction");
        }
    }
}

/// One message read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
}

/// Reads every partition of `topic` from the beginning until `expected` messages
/// arrived (or 60 s passed), in partition order.
pub fn read_all(bootstrap: &str, topic: &str, partitions: i32, expected: usize) -> Vec<Read> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while out.len() < expected && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            out.push(Read {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().unwrap_or_default().to_vec(),
            });
        }
    }
    // Anything beyond `expected` would be a duplicate: look a little longer.
    let settle = std::time::Instant::now() + Duration::from_millis(500);
    while std::time::Instant::now() < settle {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
            out.push(Read {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().unwrap_or_default().to_vec(),
            });
        }
    }
    out
}

/// Every committed record of `topic`, read by a bounded `read_committed` source.
pub fn read_committed(bootstrap: &str, topic: &str) -> Vec<(u64, u64, u64)> {
    let env = StreamExecutionEnvironment::new();
    let source = KafkaSource::<(u64, u64, u64)>::builder()
        .bootstrap_servers(bootstrap)
        .topics([topic])
        .group_id(&super::unique("verify"))
        .starting_offsets(StartingOffsets::Earliest)
        .property("isolation.level", "read_committed")
        .bounded()
        .json_values()
        .build()
        .unwrap();
    let out = env.from_source(source, "Verify").collect_vec();
    env.execute("verify").expect("the verifying job runs");
    let mut records = out.take();
    records.sort_unstable();
    records
}

/// The offsets `group` committed for partitions `0..partitions` of `topic` (-1:
/// none).
pub fn group_offsets(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    (0..partitions)
        .map(
            |p| match committed.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => -1,
            },
        )
        .collect()
}
