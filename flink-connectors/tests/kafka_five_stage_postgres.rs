//! End to end: keyed JSON records from a 4-partition Kafka topic, read by a bounded
//! `KafkaSource` at parallelism 2, through the `FiveStagePipeline` (validation, a
//! simulated flaky service, `PostgresDestination` upserting on the id), with every
//! record accounted for exactly: a row in the table or a dead letter with the right
//! reason. Runs against noida-db and PostgreSQL (see `common::service`).

#[macro_use]
mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::kafka::{Msg, create_topic, produce};
use common::pg::{exec, query_i64};
use common::{KAFKA, POSTGRES, unique};
use flink_connectors::kafka::{
    JsonDeserializer, KafkaSource, KeyValue, StartingOffsets, StringDeserializer,
};
use flink_connectors::postgres::{PostgresConfig, PostgresDestination, SqlValue};
use flink_core::async_io::AsyncFailure;
use flink_core::pipeline::{FiveStagePipeline, PipelineConfig};
use flink_runtime::pipeline_monitor::PipelineReport;
use flink_runtime::prelude::*;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

/// Records produced.
const N: i64 = 2_000;
/// Retries after the first attempt of the service call.
const MAX_RETRIES: u32 = 2;
/// Limit of one attempt of the service call.
const OPERATION_TIMEOUT: Duration = Duration::from_millis(200);

/// A payment as it is on the topic (the Kafka key is its account).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Payment {
    id: i64,
    account: String,
    amount_cents: i64,
}

/// A payment after the service answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Charged {
    id: i64,
    account: String,
    amount_cents: i64,
    fee_cents: i64,
}

/// What happens to record `id`, fixed in advance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fate {
    /// Fails validation (amount not positive): 2 %.
    Invalid,
    /// The service answers.
    Delivered,
    /// The service fails the first attempt (retryable), the retry succeeds: 2 %.
    RetriedOnce,
    /// The service refuses it permanently: 1 %.
    Permanent,
    /// The service never answers: every attempt times out: 1 %.
    TimesOut,
}

fn fate(id: i64) -> Fate {
    match (id % 50, id % 100) {
        (7, _) => Fate::Invalid,
        (13, _) => Fate::RetriedOnce,
        (_, 21) => Fate::Permanent,
        (_, 71) => Fate::TimesOut,
        _ => Fate::Delivered,
    }
}

fn account(id: i64) -> String {
    format!("acct-{}", id % 37)
}

fn payment(id: i64) -> Payment {
    Payment {
        id,
        account: account(id),
        amount_cents: if fate(id) == Fate::Invalid {
            -id
        } else {
            100 + id
        },
    }
}

/// The simulated flaky service: answers at once, except as [`fate`] says. Failures
/// are decided per record, not by timing, so every run fails the same records.
#[derive(Clone, Default)]
struct FlakyService {
    attempts: Arc<Mutex<HashMap<i64, u32>>>,
    calls: Arc<AtomicU64>,
}

impl FlakyService {
    fn charge(
        &self,
        (_, p): (Option<String>, Payment),
    ) -> BoxFuture<'static, Result<Charged, AsyncFailure>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap();
            let n = attempts.entry(p.id).or_insert(0);
            *n += 1;
            *n
        };
        match fate(p.id) {
            Fate::TimesOut => Box::pin(futures::future::pending()),
            Fate::Permanent => Box::pin(futures::future::ready(Err(AsyncFailure::Permanent(
                format!("account {} is closed", p.account),
            )))),
            Fate::RetriedOnce if attempt == 1 => Box::pin(futures::future::ready(Err(
                AsyncFailure::Retryable("service returned 503".into()),
            ))),
            _ => Box::pin(async move {
                Ok(Charged {
                    fee_cents: p.amount_cents / 100,
                    id: p.id,
                    account: p.account,
                    amount_cents: p.amount_cents,
                })
            }),
        }
    }

    /// Attempts made per record.
    fn attempts(&self) -> HashMap<i64, u32> {
        self.attempts.lock().unwrap().clone()
    }
}

fn pg_config(url: &str, table: &str) -> PostgresConfig<Charged> {
    PostgresConfig::new(
        url,
        table,
        ["id", "account", "amount_cents", "fee_cents"],
        |c: &Charged| {
            vec![
                SqlValue::Int(c.id),
                SqlValue::from(c.account.as_str()),
                SqlValue::Int(c.amount_cents),
                SqlValue::Int(c.fee_cents),
            ]
        },
    )
    .upsert_on(["id"])
    .batch_size(200)
}

#[test]
fn kafka_five_stage_postgres_accounts_for_every_record() {
    let (bootstrap, url) = require_service!(KAFKA, POSTGRES);

    // Input: N keyed JSON records over 4 partitions (by key).
    let topic = unique("five_stage");
    create_topic(&bootstrap, &topic, 4);
    let msgs: Vec<Msg> = (0..N)
        .map(|id| {
            let p = payment(id);
            (
                None,
                Some(p.account.clone().into_bytes()),
                serde_json::to_vec(&p).unwrap(),
            )
        })
        .collect();
    produce(&bootstrap, &topic, &msgs);

    // Output table, upserted on the id.
    let table = unique("charged");
    exec(
        &url,
        &format!(
            "CREATE TABLE {table} (id bigint PRIMARY KEY, account text NOT NULL, \
             amount_cents bigint NOT NULL, fee_cents bigint NOT NULL)"
        ),
    );

    let service = FlakyService::default();
    let mut config = PipelineConfig::default();
    config.egress.max_retries = MAX_RETRIES;
    config.egress.operation_timeout = OPERATION_TIMEOUT;
    config.egress.base_retry_delay = Duration::from_millis(5);
    config.egress.max_retry_delay = Duration::from_millis(20);
    config.final_sink.destination = "postgres".into();
    // Generous, so that a slow commit on a busy machine is never retried or
    // dead-lettered: the dead letters below are exactly the ones the service caused.
    config.final_sink.acknowledgment_timeout = Duration::from_secs(60);
    let svc = service.clone();
    let pipeline = FiveStagePipeline::<(Option<String>, Payment), Charged>::builder()
        .config(config)
        .key(|(key, _)| key.clone().unwrap_or_default())
        .validate(|(_, p)| {
            if p.amount_cents > 0 {
                Ok(())
            } else {
                Err(format!("payment {} has amount {}", p.id, p.amount_cents))
            }
        })
        .call(move |r: (Option<String>, Payment)| svc.charge(r))
        .destination(PostgresDestination::new(pg_config(&url, &table)).unwrap())
        .build()
        .unwrap();

    let source = KafkaSource::<(Option<String>, Payment)>::builder()
        .bootstrap_servers(&bootstrap)
        .topics([&topic])
        .starting_offsets(StartingOffsets::Earliest)
        .bounded()
        .deserializer(KeyValue::new(
            StringDeserializer,
            JsonDeserializer::<Payment>::new(),
        ))
        .build()
        .unwrap();
    let offsets = source.offsets();
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let out = env.from_source(source, "Kafka").apply_pipeline(&pipeline);
    let delivered = out.delivered.collect_vec();
    let dead_letters = out.dead_letters.collect_vec();
    let undelivered = out.undelivered.collect_vec();
    let result = env.execute("kafka -> five-stage -> postgres").unwrap();
    let (delivered, dead_letters, undelivered) =
        (delivered.take(), dead_letters.take(), undelivered.take());

    // The source read every record, none malformed.
    assert_eq!(
        (offsets.records(), offsets.dead_letters()),
        (N as u64, 0),
        "source"
    );

    // Rows + dead letters = records produced; no id twice.
    let rows = query_i64(&url, &format!("SELECT count(*) FROM {table}"))[0];
    let distinct = query_i64(&url, &format!("SELECT count(DISTINCT id) FROM {table}"))[0];
    assert_eq!(rows, distinct, "duplicate ids in {table}");
    assert_eq!(
        rows as usize + dead_letters.len() + undelivered.len(),
        N as usize,
        "rows {rows} + dead letters {} + undelivered {} != {N}",
        dead_letters.len(),
        undelivered.len()
    );
    assert!(undelivered.is_empty(), "undelivered: {undelivered:?}");
    assert_eq!(delivered.len(), rows as usize, "one receipt per row");

    // Exactly the expected records in the table, and the rest dead-lettered.
    let mut expected: BTreeMap<Fate, BTreeSet<i64>> = BTreeMap::new();
    for id in 0..N {
        expected.entry(fate(id)).or_default().insert(id);
    }
    let in_table: BTreeSet<i64> = query_i64(&url, &format!("SELECT id FROM {table} ORDER BY id"))
        .into_iter()
        .collect();
    let should_deliver: BTreeSet<i64> = expected[&Fate::Delivered]
        .union(&expected[&Fate::RetriedOnce])
        .copied()
        .collect();
    assert_eq!(in_table, should_deliver);
    assert_eq!(
        query_i64(
            &url,
            &format!("SELECT count(*) FROM {table} WHERE fee_cents <> amount_cents / 100")
        ),
        vec![0]
    );
    let receipts: BTreeSet<i64> = delivered.iter().map(|e| e.payload.id).collect();
    assert_eq!(receipts, should_deliver);

    // Each dead letter's reason matches its cause.
    let mut dead_by_fate: BTreeMap<Fate, BTreeSet<i64>> = BTreeMap::new();
    for d in &dead_letters {
        let (kafka_key, p) = &d.record.payload;
        assert_eq!(d.record.key, account(p.id), "KeyGen used the record key");
        assert_eq!(kafka_key.as_deref(), Some(account(p.id).as_str()));
        let f = fate(p.id);
        match f {
            Fate::Invalid => {
                assert_eq!(d.operator, "IngressProcessing", "{d:?}");
                assert_eq!(
                    d.reason,
                    format!(
                        "validation failed: payment {} has amount {}",
                        p.id, p.amount_cents
                    )
                );
                assert_eq!(d.attempts, 1);
            }
            Fate::TimesOut => {
                assert_eq!(d.operator, "AsyncEgressProcessing", "{d:?}");
                assert_eq!(d.attempts, MAX_RETRIES + 1, "{d:?}");
                assert_eq!(
                    d.reason,
                    format!("async call failed after {} attempt(s)", MAX_RETRIES + 1)
                );
                assert_eq!(
                    d.last_error.as_deref(),
                    Some(format!("timed out after {OPERATION_TIMEOUT:?}").as_str()),
                    "{d:?}"
                );
            }
            Fate::Permanent => {
                assert_eq!(d.operator, "AsyncEgressProcessing", "{d:?}");
                assert_eq!(d.attempts, 1, "a permanent failure is not retried: {d:?}");
                assert_eq!(d.reason, "async call failed after 1 attempt(s)");
                assert_eq!(
                    d.last_error.as_deref(),
                    Some(format!("permanent: account {} is closed", p.account).as_str()),
                    "{d:?}"
                );
            }
            Fate::Delivered | Fate::RetriedOnce => {
                panic!("record {} should have been delivered: {d:?}", p.id)
            }
        }
        assert!(
            dead_by_fate.entry(f).or_default().insert(p.id),
            "record {} dead-lettered twice",
            p.id
        );
    }
    for f in [Fate::Invalid, Fate::Permanent, Fate::TimesOut] {
        assert_eq!(dead_by_fate.get(&f), expected.get(&f), "{f:?}");
    }
    assert_eq!(
        (
            expected[&Fate::Invalid].len(),
            expected[&Fate::Permanent].len(),
            expected[&Fate::TimesOut].len(),
            expected[&Fate::RetriedOnce].len(),
        ),
        (40, 20, 20, 40)
    );

    // The service saw each valid record as often as its fate says.
    let attempts = service.attempts();
    for id in 0..N {
        let want = match fate(id) {
            Fate::Invalid => None,
            Fate::Delivered | Fate::Permanent => Some(1),
            Fate::RetriedOnce => Some(2),
            Fate::TimesOut => Some(MAX_RETRIES + 1),
        };
        assert_eq!(attempts.get(&id).copied(), want, "attempts of record {id}");
    }

    // The pipeline's own accounting agrees, exactly.
    let report = PipelineReport::new(&result.operators);
    assert!(report.accounted(), "not accounted:\n{report}");
    assert_eq!(report.received(), N as u64, "{report}");
    assert_eq!(report.delivered(), rows as u64, "{report}");
    assert_eq!(
        report.dead_lettered(),
        (dead_letters.len() + undelivered.len()) as u64,
        "{report}"
    );
    assert_eq!(report.errors(), 0, "{report}");
}
