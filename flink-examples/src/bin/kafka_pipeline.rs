//! Kafka -> five-stage pipeline -> PostgreSQL, against real services.
//!
//! Produces a demo topic of orders (keyed by customer, JSON), reads it back with a
//! bounded `KafkaSource` at parallelism 2, runs it through the `FiveStagePipeline`
//! (validation, normalisation, the simulated flaky pricing service of
//! `flink_examples::workload`) into a PostgreSQL table upserted on the order id, prints
//! the pipeline's status while it runs, then the exact accounting and the row count.
//!
//! ```sh
//! . "$(scripts/services.sh start)"
//! cargo run --release -p flink-examples --bin kafka_pipeline -- [records]
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use flink_connectors::kafka::{KafkaSink, KafkaSource, StartingOffsets};
use flink_connectors::postgres::{PostgresConfig, PostgresDestination, SqlValue};
use flink_core::pipeline::{FiveStagePipeline, PipelineConfig};
use flink_examples::workload::{
    Customers, Order, Origin, PricedOrder, PricingService, ServiceProfile, normalize, order,
    validate,
};
use flink_runtime::pipeline_monitor::{PipelineMonitor, PipelineReport};
use flink_runtime::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

const TABLE: &str = "kafka_pipeline_orders";
const PARTITIONS: i32 = 4;

fn env_var(name: &str) -> anyhow::Result<String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => bail!(
            "{name} is not set: start the broker and the database with \
             `. \"$(scripts/services.sh start)\"` (it exports FLINK_RS_KAFKA_BOOTSTRAP \
             and FLINK_RS_POSTGRES_URL), then run this example again"
        ),
    }
}

fn create_topic(bootstrap: &str, topic: &str) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .context("Kafka admin client")?;
    let new = NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1));
    let results = futures::executor::block_on(admin.create_topics(
        [&new],
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
    ))
    .with_context(|| format!("creating topic {topic} on {bootstrap}"))?;
    for r in results {
        if let Err((t, e)) = r {
            bail!("creating topic {t}: {e}");
        }
    }
    Ok(())
}

/// Runs `sql` statements, or the query `count` and returns its single i64.
fn postgres(url: &str, sql: &str, count: bool) -> anyhow::Result<i64> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        tokio::spawn(conn);
        if count {
            let row = client.query_one(sql, &[]).await.context("row count")?;
            Ok(row.get::<_, i64>(0))
        } else {
            client
                .batch_execute(sql)
                .await
                .context("creating the table")?;
            Ok(0)
        }
    })
}

/// Kafka -> five-stage pipeline -> PostgreSQL against the services of
/// `scripts/services.sh start` (FLINK_RS_KAFKA_BOOTSTRAP, FLINK_RS_POSTGRES_URL).
#[derive(Parser)]
#[command(name = "kafka_pipeline")]
struct Args {
    /// Orders to produce to the demo topic and run through the pipeline.
    #[arg(default_value_t = 20_000)]
    records: u64,
    /// Serve the pipeline job's REST API and Prometheus metrics while it runs (on
    /// 127.0.0.1:8081 unless ADDR says otherwise; see docs/rest-api.md).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8081")]
    web_ui: Option<std::net::SocketAddr>,
}

fn main() -> anyhow::Result<()> {
    let Args { records, web_ui } = Args::parse();
    flink_examples::init_logging();
    let bootstrap = env_var("FLINK_RS_KAFKA_BOOTSTRAP")?;
    let url = env_var("FLINK_RS_POSTGRES_URL")?;
    let millis = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let topic = format!("kafka_pipeline_orders_{millis}");

    // 1. The demo topic: `records` orders keyed by customer, as JSON.
    create_topic(&bootstrap, &topic)?;
    let env = StreamExecutionEnvironment::new();
    let origin = Origin::new();
    env.from_generator(Some(records), move |i| order(i, &origin, Customers::Spread))
        .sink_to(
            KafkaSink::<Order>::builder()
                .bootstrap_servers(&bootstrap)
                .topic(&topic)
                .key(|o| Some(o.customer.clone().into_bytes()))
                .json_values()
                .build()?,
        );
    env.execute("produce demo orders")?;
    println!("produced {records} orders to topic {topic} ({PARTITIONS} partitions)");

    // 2. The table, upserted on the order id.
    postgres(
        &url,
        &format!(
            "DROP TABLE IF EXISTS {TABLE};
             CREATE TABLE {TABLE} (id bigint PRIMARY KEY, customer text NOT NULL,
               amount_cents bigint NOT NULL, tax_cents bigint NOT NULL)"
        ),
        false,
    )?;
    let destination = PostgresDestination::new(
        PostgresConfig::new(
            &url,
            TABLE,
            ["id", "customer", "amount_cents", "tax_cents"],
            |p: &PricedOrder| {
                vec![
                    SqlValue::Int(p.order.id as i64),
                    SqlValue::from(p.order.customer.as_str()),
                    SqlValue::Int(p.order.amount_cents),
                    SqlValue::Int(p.tax_cents),
                ]
            },
        )
        .upsert_on(["id"]),
    )?;

    // 3. Kafka -> five-stage pipeline -> PostgreSQL.
    let service = PricingService::new(ServiceProfile {
        seed: 42,
        base_latency: Duration::from_micros(500),
        error_rate: 0.05,   // failed first attempts, retried
        timeout_rate: 0.01, // never answered: time out, then dead letters
        outage: None,
    });
    let mut config = PipelineConfig::default();
    config.egress.operation_timeout = Duration::from_millis(100);
    config.egress.max_retries = 2;
    config.final_sink.destination = format!("postgres {TABLE}");
    config.final_sink.acknowledgment_timeout = Duration::from_secs(30);
    config.monitoring_interval = Duration::from_secs(1);
    let pricing = service.clone();
    let pipeline = FiveStagePipeline::<Order, PricedOrder>::builder()
        .config(config)
        .key(|o| o.customer.clone())
        .validate(validate)
        .preprocess(|o| Ok(normalize(o)))
        .call(move |o| pricing.price(o))
        .destination(destination)
        .build()?;
    let source = KafkaSource::<Order>::builder()
        .bootstrap_servers(&bootstrap)
        .topics([&topic])
        .starting_offsets(StartingOffsets::Earliest)
        .bounded()
        .json_values()
        .build()?;
    let env = StreamExecutionEnvironment::new();
    flink_examples::serve_web_ui(&env, web_ui);
    env.set_parallelism(2);
    let orders = env.from_source(source, "Kafka orders");
    // Messages that are not orders become dead letters of the source itself.
    let malformed = orders.dead_letters::<Vec<u8>>().collect_vec();
    let out = orders.apply_pipeline(&pipeline);
    let delivered = out.delivered.collect_vec();
    let dead_letters = out.dead_letters.collect_vec();
    let undelivered = out.undelivered.collect_vec();
    let client = env.execute_async("kafka -> five-stage -> postgres")?;
    if let (Some(address), Some(id)) = (client.web_ui_address(), client.job_id()) {
        println!("REST API: http://{address}/jobs/{id}  metrics: http://{address}/metrics");
    }
    // Progress: records that ended (delivered or dead-lettered) of those produced, and
    // the pipeline's health; the per-stage table comes once, at the end.
    let bar = ProgressBar::new(records).with_style(
        ProgressStyle::with_template("{bar:30} {pos:>7}/{len:7} {per_sec:>12} eta {eta:>3} {msg}")?
            .progress_chars("=> "),
    );
    let last_status = Arc::new(Mutex::new(None));
    let (status_bar, last) = (bar.clone(), last_status.clone());
    let monitor = PipelineMonitor::start(
        client.observer(),
        out.state.clone(),
        &out.config,
        move |status| {
            // Ended: acknowledged at the sink, or a dead letter or error of any stage.
            let ended: u64 = status
                .stages
                .iter()
                .map(|s| s.counts.dead_lettered + s.counts.errors)
                .sum::<u64>()
                + status.stages[4].counts.emitted;
            status_bar.set_position(ended);
            status_bar.set_message(format!(
                "{} (pressure {:.2}), {} in the pipeline",
                status.health, status.overall_pressure, status.in_pipeline
            ));
            *last.lock().unwrap_or_else(|p| p.into_inner()) = Some(status.table());
        },
    )?;
    let result = client.wait()?;
    drop(monitor);
    bar.finish();
    if let Some(table) = last_status.lock().unwrap_or_else(|p| p.into_inner()).take() {
        println!("last status:\n{table}");
    }

    // 4. What happened to every record.
    let report = PipelineReport::new(&result.operators);
    println!(
        "pipeline report ({:.2} s, {} service calls):\n{report}",
        result.duration.as_secs_f64(),
        service.calls()
    );
    let (delivered, dead_letters, undelivered) =
        (delivered.take(), dead_letters.take(), undelivered.take());
    let malformed = malformed.take();
    println!("malformed messages (not orders): {}", malformed.len());
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for d in &dead_letters {
        let cause = match &d.last_error {
            Some(e) => format!("{}: {} ({e})", d.operator, d.reason),
            None => format!("{}: {}", d.operator, d.reason),
        };
        // Validation reasons name the order; group them by their common part.
        let cause = match cause.split_once(": order ") {
            Some((head, _)) => format!("{head}: order .. has amount <= 0"),
            None => cause,
        };
        *reasons.entry(cause).or_default() += 1;
    }
    for d in &undelivered {
        *reasons
            .entry(format!("{}: {}", d.operator, d.reason))
            .or_default() += 1;
    }
    println!("dead letters by cause:");
    for (cause, n) in &reasons {
        println!("  {n:>6}  {cause}");
    }
    let rows = postgres(&url, &format!("SELECT count(*) FROM {TABLE}"), true)?;
    let dead = dead_letters.len() + undelivered.len();
    println!(
        "rows in {TABLE}: {rows} (receipts {}); {rows} rows + {dead} dead letters = {} of {records} orders",
        delivered.len(),
        rows as u64 + dead as u64
    );
    ensure!(
        report.accounted() && report.received() == records,
        "accounting mismatch:\n{report}"
    );
    ensure!(
        rows as u64 + dead as u64 == records,
        "{rows} rows + {dead} dead letters != {records} orders"
    );
    Ok(())
}
