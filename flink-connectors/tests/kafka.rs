//! Kafka source and sink against a real Kafka-protocol broker (noida-db under
//! `scripts/test.sh`; see `common::service`).

#[macro_use]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::kafka::{
    Msg, create_topic, produce, produce_transactions, produce_with, read_all, watermarks,
};
use common::{KAFKA, unique};
use flink_connectors::DeadLetterSinkExt;
use flink_connectors::kafka::{
    DeliveryGuarantee, KafkaDestination, KafkaSink, KafkaSource, StartingOffsets,
};
use flink_core::dead_letter::dead_letter_tag;
use flink_core::destination::{AckDestination, DeliveryError};
use flink_core::operator::Operator;
use flink_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Event {
    key: String,
    seq: u64,
}

/// Tags each record with the subtask that saw it.
struct Tag(usize);
impl<T: Send + 'static> Operator<T, (usize, T)> for Tag {
    fn process<C: Collector<(usize, T)> + ?Sized>(&mut self, x: T, out: &mut C) {
        out.collect((self.0, x));
    }
}

#[test]
fn parallel_source_reads_each_partition_with_one_subtask_exactly_once() {
    let bootstrap = require_service!(KAFKA);
    let topic = unique("four");
    create_topic(&bootstrap, &topic, 4);
    let msgs: Vec<Msg> = (0..4)
        .flat_map(|p| (0..2_500).map(move |i| (Some(p), None, format!("{p}:{i}").into_bytes())))
        .collect();
    produce(&bootstrap, &topic, &msgs);

    let source = KafkaSource::<String>::builder()
        .bootstrap_servers(&bootstrap)
        .topics([&topic])
        .starting_offsets(StartingOffsets::Earliest)
        .bounded()
        .string_values()
        .build()
        .unwrap();
    let offsets = source.offsets();
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let seen = env
        .from_source(source, "Kafka")
        .transform("Tag", |ctx| Tag(ctx.subtask_index))
        .collect_vec();
    env.execute("four partitions").unwrap();

    let seen = seen.take();
    assert_eq!(seen.len(), 10_000);
    let mut by_partition: BTreeMap<u32, (BTreeSet<usize>, Vec<u32>)> = BTreeMap::new();
    for (subtask, value) in &seen {
        let (p, i) = value.split_once(':').unwrap();
        let entry = by_partition.entry(p.parse().unwrap()).or_default();
        entry.0.insert(*subtask);
        entry.1.push(i.parse().unwrap());
    }
    for (p, (subtasks, seqs)) in &by_partition {
        // Sorted partitions 0..4 round robin: partition p to subtask p % 2, in order.
        assert_eq!(
            subtasks,
            &BTreeSet::from([*p as usize % 2]),
            "partition {p}"
        );
        assert_eq!(seqs, &(0..2_500).collect::<Vec<u32>>(), "partition {p}");
    }
    assert_eq!(by_partition.len(), 4);
    let snapshot = offsets.snapshot();
    assert_eq!(snapshot.len(), 4);
    for ((_, p), progress) in snapshot {
        assert_eq!(progress.subtask, p as usize % 2);
        assert_eq!(
            (progress.next_offset, progress.stop_offset),
            (2_500, Some(2_500))
        );
        assert_eq!(
            (progress.records, progress.dead_letters, progress.lag()),
            (2_500, 0, 0)
        );
    }
}

#[test]
fn kafka_map_kafka_delivers_every_record_once_in_key_order() {
    let bootstrap = require_service!(KAFKA);
    let (input, output) = (unique("in"), unique("out"));
    create_topic(&bootstrap, &input, 4);
    create_topic(&bootstrap, &output, 3);
    let n = 20_000u64;
    let msgs: Vec<Msg> = (0..n)
        .map(|seq| {
            let e = Event {
                key: format!("k{}", seq % 37),
                seq,
            };
            (
                None,
                Some(e.key.clone().into_bytes()),
                serde_json::to_vec(&e).unwrap(),
            )
        })
        .collect();
    produce(&bootstrap, &input, &msgs);

    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.from_source(
        KafkaSource::<Event>::builder()
            .bootstrap_servers(&bootstrap)
            .topics([&input])
            .bounded()
            .json_values()
            .build()
            .unwrap(),
        "Kafka in",
    )
    .map(|e: Event| Event {
        key: e.key.to_uppercase(),
        seq: e.seq,
    })
    .sink_to(
        KafkaSink::<Event>::builder()
            .bootstrap_servers(&bootstrap)
            .topic(&output)
            .key(|e: &Event| Some(e.key.clone().into_bytes()))
            .json_values()
            .delivery_guarantee(DeliveryGuarantee::AtLeastOnce)
            .max_in_flight(1_000)
            .build()
            .unwrap(),
    );
    let result = env.execute("kafka to kafka").unwrap();
    assert_eq!(result.operator("Kafka in").unwrap().records_out, n);

    let out = read_all(&bootstrap, &output, 3, n as usize);
    assert_eq!(out.len(), n as usize, "every record exactly once");
    let seqs: BTreeSet<u64> = out
        .iter()
        .map(|r| serde_json::from_slice::<Event>(&r.value).unwrap().seq)
        .collect();
    assert_eq!(seqs.len(), n as usize);
    // Per key: one output partition, sequence numbers increasing with the offset.
    let mut last: BTreeMap<String, (i32, i64, u64)> = BTreeMap::new();
    let mut sorted = out.clone();
    sorted.sort_by_key(|r| (r.partition, r.offset));
    for r in sorted {
        let e: Event = serde_json::from_slice(&r.value).unwrap();
        assert_eq!(r.key.as_deref(), Some(e.key.as_bytes()));
        assert!(e.key.starts_with('K'));
        if let Some((p, _, seq)) = last.get(&e.key) {
            assert_eq!(*p, r.partition, "key {} in one partition", e.key);
            assert!(
                *seq < e.seq,
                "key {} out of order: {seq} then {}",
                e.key,
                e.seq
            );
        }
        last.insert(e.key.clone(), (r.partition, r.offset, e.seq));
    }
    assert_eq!(last.len(), 37);
}

#[test]
fn malformed_messages_become_dead_letters_and_the_job_finishes() {
    let bootstrap = require_service!(KAFKA);
    let topic = unique("bad");
    create_topic(&bootstrap, &topic, 2);
    let msgs: Vec<Msg> = (0..1_000u64)
        .map(|seq| {
            let value = match seq % 50 {
                7 => b"{\"key\": \"k\", \"seq\": ".to_vec(),
                13 => vec![0xff, 0xfe, b'{'],
                _ => serde_json::to_vec(&Event {
                    key: "k".into(),
                    seq,
                })
                .unwrap(),
            };
            (Some((seq % 2) as i32), None, value)
        })
        .collect();
    produce(&bootstrap, &topic, &msgs);

    // JSON: both kinds of bad message are dead letters.
    let source = KafkaSource::<Event>::builder()
        .bootstrap_servers(&bootstrap)
        .topics([&topic])
        .bounded()
        .json_values()
        .build()
        .unwrap();
    let offsets = source.offsets();
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let events = env.from_source(source, "Kafka json");
    let dead = events
        .side_output(&dead_letter_tag::<Vec<u8>>())
        .collect_vec();
    let good = events.collect_vec();
    env.execute("dead letters").unwrap();
    let (good, dead) = (good.take(), dead.take());
    assert_eq!((good.len(), dead.len()), (960, 40));
    assert_eq!(good.len() + dead.len(), 1_000);
    assert_eq!((offsets.records(), offsets.dead_letters()), (960, 40));
    for d in &dead {
        assert_eq!(d.operator, "Kafka json");
        assert!(d.reason.starts_with("invalid JSON: "), "{}", d.reason);
        assert!(
            d.reason.contains(&format!("topic {topic}, partition ")),
            "{}",
            d.reason
        );
    }
    assert_eq!(
        dead.iter()
            .filter(|d| d.record == vec![0xff, 0xfe, b'{'])
            .count(),
        20
    );

    // UTF-8 strings: only the invalid UTF-8 ones are dead letters.
    let env = StreamExecutionEnvironment::new();
    let lines = env.from_source(
        KafkaSource::<String>::builder()
            .bootstrap_servers(&bootstrap)
            .topics([&topic])
            .bounded()
            .string_values()
            .build()
            .unwrap(),
        "Kafka text",
    );
    let dead = lines
        .side_output(&dead_letter_tag::<Vec<u8>>())
        .collect_vec();
    let good = lines.collect_vec();
    env.execute("utf8 dead letters").unwrap();
    let dead = dead.take();
    assert_eq!((good.len(), dead.len()), (980, 20));
    assert!(
        dead.iter().all(|d| d.reason.starts_with("invalid UTF-8")),
        "{:?}",
        dead[0]
    );
}

/// Produces more records into the topic the first time it sees a record: after the
/// source resolved its end offsets.
struct ProduceMoreOnce {
    bootstrap: String,
    topic: String,
    done: Arc<AtomicBool>,
}

impl Operator<String, String> for ProduceMoreOnce {
    fn process<C: Collector<String> + ?Sized>(&mut self, x: String, out: &mut C) {
        if !self.done.swap(true, Ordering::SeqCst) {
            let more: Vec<Msg> = (0..500)
                .map(|i| (Some(0), None, format!("late {i}").into_bytes()))
                .collect();
            produce(&self.bootstrap, &self.topic, &more);
        }
        out.collect(x);
    }
}

#[test]
fn bounded_source_stops_at_the_end_offsets_seen_at_start() {
    let bootstrap = require_service!(KAFKA);
    let topic = unique("bounded");
    create_topic(&bootstrap, &topic, 1);
    let msgs: Vec<Msg> = (0..3_000)
        .map(|i| (Some(0), None, format!("early {i}").into_bytes()))
        .collect();
    produce(&bootstrap, &topic, &msgs);

    let done = Arc::new(AtomicBool::new(false));
    let env = StreamExecutionEnvironment::new();
    let (b, t, d) = (bootstrap.clone(), topic.clone(), done.clone());
    let read = env
        .from_source(
            KafkaSource::<String>::builder()
                .bootstrap_servers(&bootstrap)
                .topics([&topic])
                .bounded()
                .string_values()
                .build()
                .unwrap(),
            "Kafka",
        )
        .transform("Produce more", move |_| ProduceMoreOnce {
            bootstrap: b.clone(),
            topic: t.clone(),
            done: d.clone(),
        })
        .collect_vec();
    env.execute("bounded").unwrap();
    assert!(done.load(Ordering::SeqCst));
    let read = read.take();
    assert_eq!(read.len(), 3_000);
    assert!(read.iter().all(|r| r.starts_with("early")));
    // The 500 late records are there, for a later reader.
    assert_eq!(read_all(&bootstrap, &topic, 1, 3_500).len(), 3_500);
}

/// Runs `job` on its own thread and returns what it returns, or fails loudly when it
/// did not finish within `secs` seconds (a bounded reader waiting forever, say) instead of
/// hanging the suite.
fn finishes_within<T: Send + 'static>(secs: u64, job: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(job());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(secs)) {
        Ok(out) => out,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("the job did not finish within {secs} s")
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("the job failed"),
    }
}

#[test]
fn bounded_source_ends_at_transaction_markers_and_skips_aborted_records() {
    let bootstrap = require_service!(KAFKA);
    let topic = unique("txn");
    create_topic(&bootstrap, &topic, 1);
    let batch = |from: u32, to: u32| -> Vec<Msg> {
        (from..to)
            .map(|i| (Some(0), None, format!("{i}").into_bytes()))
            .collect()
    };
    produce_transactions(
        &bootstrap,
        &topic,
        &[(batch(0, 10), true), (batch(10, 15), false)],
    );
    // Offsets 0-9 committed records, 10 the commit marker, 11-15 aborted records, 16 the
    // abort marker: the end offset is 17, and no message is ever delivered at 16.
    assert_eq!(watermarks(&bootstrap, &topic, 1), vec![(0, 17)]);

    for (isolation, expected) in [("read_committed", 0..10), ("read_uncommitted", 0..15)] {
        let source = KafkaSource::<String>::builder()
            .bootstrap_servers(&bootstrap)
            .topics([&topic])
            .bounded()
            .string_values()
            .property("isolation.level", isolation)
            .build()
            .unwrap();
        let offsets = source.offsets();
        let read = finishes_within(60, move || {
            let env = StreamExecutionEnvironment::new();
            let read = env.from_source(source, "Kafka").collect_vec();
            env.execute("bounded over transactions").unwrap();
            read.take()
        });
        let mut read: Vec<u32> = read.iter().map(|r| r.parse().unwrap()).collect();
        read.sort();
        assert_eq!(read, expected.clone().collect::<Vec<_>>(), "{isolation}");
        let progress = offsets.snapshot()[&(topic.clone(), 0)];
        assert_eq!(
            (progress.next_offset, progress.stop_offset, progress.lag()),
            (17, Some(17), 0),
            "{isolation}"
        );
        assert_eq!(
            (progress.records, progress.dead_letters),
            (expected.len() as u64, 0),
            "{isolation}"
        );
    }
}

fn bounded_strings(
    bootstrap: &str,
    topic: &str,
    group: &str,
    start: StartingOffsets,
    commit: bool,
) -> Vec<String> {
    let env = StreamExecutionEnvironment::new();
    let read = env
        .from_source(
            KafkaSource::<String>::builder()
                .bootstrap_servers(bootstrap)
                .topic_pattern(&regex_escape(topic))
                .group_id(group)
                .starting_offsets(start)
                .commit_offsets(commit)
                .bounded()
                .string_values()
                .build()
                .unwrap(),
            "Kafka",
        )
        .collect_vec();
    env.execute("starting offsets").unwrap();
    read.take()
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

#[test]
fn starting_offsets_latest_timestamp_and_committed() {
    let bootstrap = require_service!(KAFKA);
    let topic = unique("start");
    create_topic(&bootstrap, &topic, 2);
    let batch = |from: u32, to: u32| -> Vec<Msg> {
        (from..to)
            .map(|i| (Some((i % 2) as i32), None, format!("{i}").into_bytes()))
            .collect()
    };
    // Record timestamps two and one hours ago, well inside the default retention
    // (retention.ms 7 days). They must not be fixed instants near the epoch: the broker
    // deletes records older than the retention (noida-db sweeps about once a second),
    // which moved the log start to 50 or 125 in the middle of this test.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let hour = 3_600_000;
    produce_with(&bootstrap, &topic, &batch(0, 100), Some(now - 2 * hour));
    produce_with(&bootstrap, &topic, &batch(100, 250), Some(now - hour));
    assert_eq!(watermarks(&bootstrap, &topic, 2), vec![(0, 125), (0, 125)]);

    assert_eq!(
        bounded_strings(&bootstrap, &topic, "g1", StartingOffsets::Latest, false).len(),
        0
    );
    let mut from_ts = bounded_strings(
        &bootstrap,
        &topic,
        "g1",
        StartingOffsets::Timestamp(now - 3 * hour / 2),
        false,
    );
    from_ts.sort_by_key(|s| s.parse::<u32>().unwrap());
    assert_eq!(
        from_ts,
        (100..250).map(|i| i.to_string()).collect::<Vec<_>>()
    );

    let group = unique("group");
    // No committed offsets yet: from the earliest; then commit where it ended.
    assert_eq!(
        bounded_strings(&bootstrap, &topic, &group, StartingOffsets::Committed, true).len(),
        250
    );
    produce(&bootstrap, &topic, &batch(250, 310));
    assert_eq!(watermarks(&bootstrap, &topic, 2), vec![(0, 155), (0, 155)]);
    let mut rest = bounded_strings(&bootstrap, &topic, &group, StartingOffsets::Committed, true);
    rest.sort_by_key(|s| s.parse::<u32>().unwrap());
    assert_eq!(rest, (250..310).map(|i| i.to_string()).collect::<Vec<_>>());
}

#[test]
fn sink_delivery_failure_fails_the_job_or_becomes_a_dead_letter() {
    let bootstrap = require_service!(KAFKA);
    let topic = unique("big");
    create_topic(&bootstrap, &topic, 1);
    let sink = |dead_letters: bool| {
        KafkaSink::<String>::builder()
            .bootstrap_servers(&bootstrap)
            .topic(&topic)
            .string_values()
            // The client refuses messages above 2,000 bytes: a permanent failure.
            .property("message.max.bytes", "2000")
            .dead_letters(dead_letters)
            .build()
            .unwrap()
    };
    let records = || {
        (0..100)
            .map(|i| {
                if i % 10 == 3 {
                    "x".repeat(5_000)
                } else {
                    format!("r{i}")
                }
            })
            .collect::<Vec<_>>()
    };

    let env = StreamExecutionEnvironment::new();
    let dead = env
        .from_collection(records())
        .sink_with_dead_letters::<Vec<u8>>(sink(true), "Kafka sink")
        .collect_vec();
    env.execute("dead letters").unwrap();
    let dead = dead.take();
    assert_eq!(dead.len(), 10);
    assert!(
        dead.iter()
            .all(|d| d.record.len() == 5_000 && d.reason.contains("too large")),
        "{}",
        dead[0].reason
    );
    assert_eq!(read_all(&bootstrap, &topic, 1, 90).len(), 90);

    let env = StreamExecutionEnvironment::new();
    env.from_collection(records())
        .sink_named(sink(false), "Kafka sink");
    let err = env.execute("fails").unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("Kafka sink") && text.contains("too large"),
        "{text}"
    );
}

#[test]
fn kafka_destination_acknowledges_with_delivery_reports() {
    let bootstrap = require_service!(KAFKA);
    let topic = unique("dest");
    create_topic(&bootstrap, &topic, 2);
    let dest = KafkaDestination::<Event>::json(&bootstrap, &topic).unwrap();
    let acks: Vec<_> = (0..500)
        .map(|seq| {
            dest.send(Event {
                key: "a".into(),
                seq,
            })
        })
        .collect();
    let results = futures::executor::block_on(futures::future::join_all(acks));
    assert!(results.iter().all(Result::is_ok));
    futures::executor::block_on(dest.flush()).unwrap();
    assert_eq!(read_all(&bootstrap, &topic, 2, 500).len(), 500);

    let small = KafkaDestination::<String>::new(
        &[
            ("bootstrap.servers", bootstrap.as_str()),
            ("message.max.bytes", "2000"),
        ],
        {
            let t = topic.clone();
            move |_| t.clone()
        },
        flink_connectors::kafka::StringSerializer,
    )
    .unwrap();
    let err = futures::executor::block_on(small.send("y".repeat(10_000))).unwrap_err();
    assert!(
        matches!(err, DeliveryError::Permanent(ref m) if m.contains("too large")),
        "{err:?}"
    );
}

#[test]
fn sink_routes_records_to_a_topic_per_record_and_reads_keys_back() {
    let bootstrap = require_service!(KAFKA);
    let (even, odd) = (unique("even"), unique("odd"));
    create_topic(&bootstrap, &even, 1);
    create_topic(&bootstrap, &odd, 1);
    let (e, o) = (even.clone(), odd.clone());
    let env = StreamExecutionEnvironment::new();
    env.from_sequence(1, 1_001).sink_to(
        KafkaSink::<u64>::builder()
            .bootstrap_servers(&bootstrap)
            .topic_fn(move |x: &u64| {
                if x.is_multiple_of(2) {
                    e.clone()
                } else {
                    o.clone()
                }
            })
            .key(|x: &u64| Some(format!("key-{}", x % 3).into_bytes()))
            .string_values()
            .build()
            .unwrap(),
    );
    env.execute("route").unwrap();

    // Read the odd topic back with keys: (Option<String>, u64).
    use flink_connectors::kafka::{JsonDeserializer, KeyValue, StringDeserializer};
    let env = StreamExecutionEnvironment::new();
    let read = env
        .from_source(
            KafkaSource::<(Option<String>, u64)>::builder()
                .bootstrap_servers(&bootstrap)
                .topics([&odd])
                .bounded()
                .deserializer(KeyValue::new(
                    StringDeserializer,
                    JsonDeserializer::<u64>::new(),
                ))
                .build()
                .unwrap(),
            "Kafka",
        )
        .collect_vec();
    env.execute("read odd").unwrap();
    let read = read.take();
    assert_eq!(read.len(), 501);
    assert!(
        read.iter()
            .all(|(k, v)| v % 2 == 1 && k.as_deref() == Some(format!("key-{}", v % 3).as_str()))
    );
    assert_eq!(read_all(&bootstrap, &even, 1, 500).len(), 500);
}

/// Keeps every id it receives, a little slowly, so a stop comes while records are
/// still on their way (the pacing is not timed or asserted).
#[derive(Clone, Default)]
struct PacedIds(Arc<std::sync::Mutex<Vec<u32>>>);

impl flink_core::sink::Sink<String> for PacedIds {
    fn create_writer(
        &self,
        _: &flink_core::operator::RuntimeContext,
    ) -> Box<dyn flink_core::sink::SinkWriter<String>> {
        Box::new(self.clone())
    }
}

impl flink_core::sink::SinkWriter<String> for PacedIds {
    fn write(&mut self, record: String) -> Result<(), flink_core::sink::SinkError> {
        std::thread::sleep(std::time::Duration::from_micros(50));
        self.0.lock().unwrap().push(record.parse()?);
        Ok(())
    }
}

impl PacedIds {
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// The group's committed offsets of partitions `0..partitions` (-1: none).
fn committed(bootstrap: &str, topic: &str, group: &str, partitions: i32) -> Vec<i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let list = consumer
        .committed_offsets(tpl, std::time::Duration::from_secs(10))
        .unwrap();
    (0..partitions)
        .map(|p| match list.find_partition(topic, p).unwrap().offset() {
            rdkafka::Offset::Offset(o) => o,
            _ => -1,
        })
        .collect()
}

/// An unbounded (or bounded) job reading `topic` from `group`'s committed offsets
/// into `sink`, committing at a successful end.
fn committed_reader(
    bootstrap: &str,
    topic: &str,
    group: &str,
    bounded: bool,
    sink: &PacedIds,
) -> JobClient {
    let builder = KafkaSource::<String>::builder()
        .bootstrap_servers(bootstrap)
        .topics([topic])
        .group_id(group)
        .starting_offsets(StartingOffsets::Committed)
        .commit_offsets(true)
        .string_values();
    let builder = if bounded { builder.bounded() } else { builder };
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    // Small buffers: the records in flight when the stop comes stay a small share of
    // the topic (32 KiB buffers hold thousands of these ~10-byte records each).
    env.set_buffer_size(1024);
    env.from_source(builder.build().unwrap(), "Kafka")
        .rebalance()
        .sink_to(sink.clone());
    env.execute_async("committed reader").unwrap()
}

#[test]
fn a_stopped_job_commits_only_what_it_finished_and_a_restart_loses_nothing() {
    let bootstrap = require_service!(KAFKA);
    let topic = unique("stop");
    let group = unique("stop-group");
    const N: u32 = 100_000;
    create_topic(&bootstrap, &topic, 2);
    let msgs: Vec<Msg> = (0..N)
        .map(|i| (Some((i % 2) as i32), None, i.to_string().into_bytes()))
        .collect();
    produce(&bootstrap, &topic, &msgs);

    // Run 1: unbounded, stopped midway. The stop drains: everything read is at the
    // sink, and exactly that is committed.
    let first = PacedIds::default();
    let client = committed_reader(&bootstrap, &topic, &group, false, &first);
    let watch = first.clone();
    let control = client.control();
    let stopper = std::thread::spawn(move || {
        for _ in 0..6_000 {
            if watch.len() >= N as usize / 10 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        control.stop();
    });
    let result = finishes_within(60, move || client.wait()).expect("stopped job");
    stopper.join().unwrap();
    let first = first.0.lock().unwrap().clone();
    assert!(result.stopped);
    assert!(
        first.len() >= N as usize / 10 && first.len() < N as usize,
        "midway: {}",
        first.len()
    );
    assert_eq!(result.records_read_by_sources(), first.len() as u64);
    assert_eq!(result.records_at_sinks(), first.len() as u64);
    let after_stop = committed(&bootstrap, &topic, &group, 2);
    assert_eq!(
        after_stop.iter().sum::<i64>(),
        first.len() as i64,
        "{after_stop:?}"
    );

    // A cancelled run commits nothing: the next run still starts where run 1 ended.
    let abandoned = PacedIds::default();
    let client = committed_reader(&bootstrap, &topic, &group, false, &abandoned);
    for _ in 0..6_000 {
        if abandoned.len() >= 100 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    client.cancel();
    let cancelled = finishes_within(60, move || client.wait());
    assert!(
        matches!(cancelled, Err(JobError::Cancelled { .. })),
        "{cancelled:?}"
    );
    assert!(abandoned.len() >= 100);
    assert_eq!(committed(&bootstrap, &topic, &group, 2), after_stop);

    // Run 2: bounded, from the committed offsets, to the end.
    let second = PacedIds::default();
    let client = committed_reader(&bootstrap, &topic, &group, true, &second);
    let result = finishes_within(60, move || client.wait()).expect("bounded job");
    assert!(!result.stopped);
    let second = second.0.lock().unwrap().clone();
    assert_eq!(
        committed(&bootstrap, &topic, &group, 2),
        vec![N as i64 / 2; 2]
    );

    // Together the two runs cover every input; duplicates are counted (none here:
    // run 1 committed exactly what it finished with).
    let union: BTreeSet<u32> = first.iter().chain(&second).copied().collect();
    assert_eq!(union, (0..N).collect::<BTreeSet<u32>>());
    let duplicates = first.len() + second.len() - N as usize;
    eprintln!(
        "run 1 (stopped): {} records, run 2 (bounded): {} records, duplicates: {duplicates}",
        first.len(),
        second.len()
    );
    assert_eq!(
        duplicates,
        0,
        "run 1: {}, run 2: {}",
        first.len(),
        second.len()
    );
}
