//! Per-partition watermarks of the Kafka source, against the test broker (noida-db
//! under `scripts/test.sh`; see `common::service`): one reader owns two partitions
//! whose timestamps interleave, one lagging the other by 100 s. The reader's
//! watermark is the minimum over its partitions, so, however the broker's fetches
//! interleave the partitions, no record arrives behind the watermark (a watermark
//! following the faster partition, or one generator over both, makes the lagging
//! partition's records late), and every watermark observed is one the partitions'
//! timestamps allow. Watermarks are observed through a `KeyedProcessFunction`'s
//! timer service. No timing assertions.

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::kafka::create_topic;
use common::{KAFKA, unique};
use flink_connectors::kafka::{KafkaSource, StartingOffsets};
use flink_core::keyed_process_function::{KeyedContext, KeyedProcessFunction};
use flink_core::watermark::WatermarkStrategy;
use flink_core::windows::{TimeWindow, TumblingEventTimeWindows};
use flink_runtime::prelude::*;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

/// Records per partition.
const PER_PARTITION: i64 = 5_000;
/// Partition 1 lags partition 0 by this many ms.
const LAG: i64 = 100_000;

/// Partition 0's first timestamp (ms): a few minutes ago, so that the broker's
/// retention (by record timestamp) keeps every record and none is in the future.
fn base() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    now.as_millis() as i64 - 200_000
}

/// The timestamp of record `i` of partition `p` (its value holds it too).
fn timestamp(base: i64, p: i32, i: i64) -> i64 {
    base + 10 * i - if p == 1 { LAG } else { 0 }
}

/// A 2-partition topic, records interleaved by index, each with its Kafka
/// timestamp set.
fn topic(bootstrap: &str, base: i64) -> String {
    let topic = unique("wm-in");
    create_topic(bootstrap, &topic, 2);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    for i in 0..PER_PARTITION {
        for p in 0..2 {
            let ts = timestamp(base, p, i);
            let value = serde_json::to_vec(&(p, ts)).unwrap();
            let mut record = BaseRecord::<(), Vec<u8>>::to(&topic)
                .partition(p)
                .payload(&value)
                .timestamp(ts);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((_, back)) => {
                        record = back;
                        producer.poll(Duration::from_millis(10));
                    }
                }
            }
        }
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    topic
}

/// Emits (partition, record timestamp, stream timestamp, watermark before it).
#[derive(Clone)]
struct Observe;

type Seen = (i32, i64, Option<i64>, i64);

impl KeyedProcessFunction<u8, (i32, i64), Seen> for Observe {
    type State = ();

    fn process_element(&mut self, (p, ts): (i32, i64), ctx: &mut KeyedContext<'_, u8, (), Seen>) {
        let watermark = ctx.timer_service().current_watermark();
        let stream_ts = ctx.timestamp();
        ctx.collect((p, ts, stream_ts, watermark));
    }
}

fn run(bootstrap: &str, base: i64, strategy: WatermarkStrategy<(i32, i64)>) -> Vec<Seen> {
    let topic = topic(bootstrap, base);
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1);
    let source = KafkaSource::<(i32, i64)>::builder()
        .bootstrap_servers(bootstrap)
        .topics([&topic])
        .group_id(&unique("wm-group"))
        .starting_offsets(StartingOffsets::Earliest)
        .bounded()
        .json_values()
        // Small fetches, so the reader sees the partitions interleaved.
        .property("max.partition.fetch.bytes", "1024")
        .with_watermarks(strategy)
        // A watermark after every poll: as many chances to get it wrong as there are.
        .watermark_interval(Duration::ZERO)
        .build()
        .unwrap();
    let out = env
        .from_source(source, "Kafka")
        .key_by(|_: &(i32, i64)| 0u8)
        .process_function(Observe)
        .collect_vec();
    env.execute("kafka watermarks").expect("the job runs");
    out.take()
}

/// What every run must show: all records once, none behind the watermark, the
/// watermark never going back and always at most the slower partition's newest
/// timestamp minus one, and watermarks actually emitted while reading.
fn check(base: i64, seen: &[Seen]) {
    assert_eq!(seen.len() as i64, 2 * PER_PARTITION);
    let mut newest = [i64::MIN; 2];
    let mut last_watermark = i64::MIN;
    let mut distinct = 0;
    for &(p, ts, _, watermark) in seen {
        assert!(
            watermark < ts,
            "record {ts} of partition {p} behind the watermark {watermark}"
        );
        assert!(watermark >= last_watermark, "the watermark went back");
        if watermark > last_watermark {
            distinct += 1;
        }
        last_watermark = watermark;
        // Until partition 1 ends (partition 0 first: same counts, so at least its
        // last record came after partition 0's), the slower one bounds it.
        if newest[1] < timestamp(base, 1, PER_PARTITION - 1)
            && newest[0] < timestamp(base, 0, PER_PARTITION - 1)
        {
            let slow = newest[0].min(newest[1]);
            let allowed = if slow == i64::MIN {
                watermark == i64::MIN
            } else {
                watermark < slow
            };
            assert!(
                allowed,
                "watermark {watermark} ahead of the slower partition's {slow}"
            );
        }
        newest[p as usize] = newest[p as usize].max(ts);
    }
    assert!(
        distinct > 1,
        "watermarks advanced while reading: {distinct}"
    );
    let mut records: Vec<(i32, i64)> = seen.iter().map(|&(p, ts, _, _)| (p, ts)).collect();
    records.sort_unstable();
    let expected: Vec<(i32, i64)> = (0..2)
        .flat_map(|p| (0..PER_PARTITION).map(move |i| (p, timestamp(base, p, i))))
        .collect();
    assert_eq!(records, expected);
}

#[test]
fn kafka_timestamps_give_the_minimum_over_partitions() {
    let bootstrap = require_service!(KAFKA);
    let base = base();
    let seen = run(
        &bootstrap,
        base,
        WatermarkStrategy::for_monotonous_timestamps(),
    );
    check(base, &seen);
    // Without an assigner the stream carries no timestamps of its own.
    assert!(seen.iter().all(|s| s.2.is_none()));
}

#[test]
fn an_assigner_gives_the_minimum_over_partitions_and_stream_timestamps() {
    // The assigner reads the value, which holds the same timestamps.
    let bootstrap = require_service!(KAFKA);
    let base = base();
    let seen = run(
        &bootstrap,
        base,
        WatermarkStrategy::monotonous(|r: &(i32, i64)| r.1),
    );
    check(base, &seen);
    assert!(seen.iter().all(|s| s.2 == Some(s.1)));
}

#[test]
fn a_zero_idleness_is_refused_when_the_source_is_built() {
    let err = KafkaSource::<(i32, i64)>::builder()
        .bootstrap_servers("127.0.0.1:1")
        .topics(["t"])
        .json_values()
        .with_watermarks(
            WatermarkStrategy::for_monotonous_timestamps().with_idleness(Duration::ZERO),
        )
        .build()
        .err()
        .expect("refused");
    assert!(err.to_string().contains("idleness"), "{err}");
}

/// Tumbling 1 s event-time windows over the source's own timestamps and
/// watermarks: each window holds exactly the records of its second, none is late
/// (a record behind the watermark would go to the late side output), at p = 1 (one
/// reader, both partitions) and p = 2 (a reader per partition).
#[test]
fn windows_over_per_partition_watermarks_count_every_record_on_time() {
    let bootstrap = require_service!(KAFKA);
    let base = base();
    let topic = topic(&bootstrap, base);
    let mut expected: BTreeMap<i64, u64> = BTreeMap::new();
    for p in 0..2 {
        for i in 0..PER_PARTITION {
            let ts = timestamp(base, p, i);
            *expected
                .entry(ts - ts.rem_euclid(1_000) + 1_000)
                .or_default() += 1;
        }
    }
    for parallelism in [1, 2] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(parallelism);
        let source = KafkaSource::<(i32, i64)>::builder()
            .bootstrap_servers(&bootstrap)
            .topics([&topic])
            .group_id(&unique("wm-group"))
            .starting_offsets(StartingOffsets::Earliest)
            .bounded()
            .json_values()
            // Small fetches, so the reader sees the partitions interleaved.
            .property("max.partition.fetch.bytes", "1024")
            .with_watermarks(WatermarkStrategy::monotonous(|r: &(i32, i64)| r.1))
            .watermark_interval(Duration::ZERO)
            .build()
            .unwrap();
        let late = OutputTag::<(i32, i64)>::new("late");
        let counts = env
            .from_source(source, "Kafka")
            .key_by(|_: &(i32, i64)| 0u8)
            .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
            .side_output_late_data(&late)
            .process(
                |_: &u8,
                 w: &TimeWindow,
                 records: &[(i32, i64)],
                 out: &mut dyn Collector<(i64, u64)>| {
                    out.collect((w.end, records.len() as u64))
                },
            );
        let late_seen = counts.side_output(&late).collect_vec();
        let counts = counts.collect_vec();
        env.execute("kafka windows").expect("the job runs");
        let late = late_seen.take();
        assert!(
            late.is_empty(),
            "p={parallelism}: {} records late, the first {:?}",
            late.len(),
            late.first()
        );
        let got: BTreeMap<i64, u64> = counts.take().into_iter().collect();
        assert_eq!(got, expected, "p={parallelism}");
    }
}
