//! Measures the Kafka and PostgreSQL connectors end to end against the test services
//! (`. "$(scripts/services.sh start)"` first):
//!
//! ```sh
//! cargo run --release -p flink-connectors --example connector_throughput -- 1000000
//! ```
//!
//! 1. `from_sequence -> map -> KafkaSink` (JSON values, keyed), parallelism 2;
//! 2. bounded `KafkaSource` (JSON) -> discard, parallelism 2;
//! 3. bounded `KafkaSource` -> `PostgresSink` (batches of 1,000), parallelism 2.

use std::time::{Duration, Instant};

use flink_connectors::kafka::{KafkaSink, KafkaSource};
use flink_connectors::postgres::{PostgresConfig, PostgresSink, SqlValue};
use flink_core::sink::{Sink, SinkError, SinkWriter};
use flink_runtime::prelude::*;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Event {
    id: u64,
    key: String,
    amount: i64,
}

struct Discard;
impl<T: Send + 'static> Sink<T> for Discard {
    fn create_writer(&self, _: &flink_core::operator::RuntimeContext) -> Box<dyn SinkWriter<T>> {
        Box::new(Discard)
    }
}
impl<T> SinkWriter<T> for Discard {
    fn write(&mut self, _: T) -> Result<(), SinkError> {
        Ok(())
    }
    fn write_batch(&mut self, batch: &mut Vec<T>) -> Result<(), SinkError> {
        batch.clear();
        Ok(())
    }
}

fn report(what: &str, n: u64, took: Duration) {
    println!(
        "{what:<40} {n:>9} records in {:>7.2} s = {:>10.0} records/s",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map_or(1_000_000, |a| a.parse().unwrap());
    let bootstrap = std::env::var("FLINK_RS_KAFKA_BOOTSTRAP").expect("FLINK_RS_KAFKA_BOOTSTRAP");
    let pg = std::env::var("FLINK_RS_POSTGRES_URL").expect("FLINK_RS_POSTGRES_URL");
    let topic = format!("throughput_{}", std::process::id());

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    futures::executor::block_on(admin.create_topics(
        [&NewTopic::new(&topic, 4, TopicReplication::Fixed(1))],
        &AdminOptions::new(),
    ))
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));

    // Extra producer properties: FLINK_RS_PRODUCER_PROPS="linger.ms=20,batch.size=1000000".
    let props: Vec<(String, String)> = std::env::var("FLINK_RS_PRODUCER_PROPS")
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let mut sink = KafkaSink::<Event>::builder()
        .bootstrap_servers(&bootstrap)
        .topic(&topic)
        .key(|e: &Event| Some(e.key.as_bytes().to_vec()))
        .json_values();
    for (k, v) in &props {
        sink = sink.property(k, v);
    }
    env.from_sequence(1, n)
        .map(|id: u64| Event {
            id,
            key: format!("k{}", id % 1000),
            amount: (id % 997) as i64,
        })
        .sink_to(sink.build().unwrap());
    let started = Instant::now();
    env.execute("produce").unwrap();
    report("sequence -> KafkaSink (JSON, keyed)", n, started.elapsed());
    if std::env::var("FLINK_RS_PRODUCE_ONLY").is_ok() {
        return;
    }

    let source = || {
        KafkaSource::<Event>::builder()
            .bootstrap_servers(&bootstrap)
            .topics([&topic])
            .bounded()
            .json_values()
            .build()
            .unwrap()
    };
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let s = source();
    let offsets = s.offsets();
    env.from_source(s, "Kafka").sink_to(Discard);
    let started = Instant::now();
    env.execute("consume").unwrap();
    assert_eq!(offsets.records(), n);
    report("KafkaSource (JSON) -> discard", n, started.elapsed());

    let table = format!("throughput_{}", std::process::id());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (c, conn) = tokio_postgres::connect(&pg, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        c.batch_execute(&format!(
            "CREATE TABLE {table} (id bigint PRIMARY KEY, key text, amount integer)"
        ))
        .await
        .unwrap();
    });
    let sink = PostgresSink::new(
        PostgresConfig::new(&pg, &table, ["id", "key", "amount"], |e: &Event| {
            vec![
                SqlValue::Int(e.id as i64),
                SqlValue::from(e.key.as_str()),
                SqlValue::Int(e.amount),
            ]
        })
        .batch_size(1_000),
    )
    .unwrap();
    let metrics = sink.metrics();
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.from_source(source(), "Kafka").sink_to(sink);
    let started = Instant::now();
    env.execute("kafka to postgres").unwrap();
    assert_eq!(metrics.rows_written(), n);
    report(
        "KafkaSource -> PostgresSink (1,000/batch)",
        n,
        started.elapsed(),
    );
}
