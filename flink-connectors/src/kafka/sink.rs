//! A sink producing records to Kafka, with a bound on sends awaiting their delivery
//! report.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flink_core::dead_letter::{DeadLetter, dead_letter_tag};
use flink_core::functions::Collector;
use flink_core::operator::RuntimeContext;
use flink_core::services::CancelFlag;
use flink_core::side_output::SideOutput;
use flink_core::sink::{Sink, SinkError, SinkWriter};
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use serde::Serialize;

use super::error::KafkaConnectorError;
use super::exactly_once::ExactlyOnceKafka;
use super::serializer::{BytesSerializer, JsonSerializer, StringSerializer, ValueSerializer};
use flink_core::transactional::TransactionalSink;

/// The longest a writer waits on the producer before checking for a cancellation.
const WAIT_STEP: Duration = Duration::from_millis(100);

/// What the sink promises about delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryGuarantee {
    /// Fire and forget: `finish()` does not wait for delivery reports, so records
    /// still in flight at the end may be lost; failures reported before then still
    /// count.
    None,
    /// Every record is delivered at least once: `finish()` flushes and waits for
    /// every delivery report, and a failed delivery fails the job (or becomes a dead
    /// letter). The default.
    AtLeastOnce,
    /// Every record is committed exactly once, with Kafka transactions: one per
    /// checkpoint and writer, flushed on the barrier and committed when the
    /// checkpoint completes (see [`KafkaSinkBuilder::transactional_id_prefix`]).
    /// Readers with `isolation.level=read_committed` see each record once. Needs a
    /// transactional id prefix.
    ExactlyOnce,
}

type TopicFn<T> = dyn Fn(&T) -> String + Send + Sync;
type KeyFn<T> = dyn Fn(&T) -> Option<Vec<u8>> + Send + Sync;

pub(super) struct SinkConfig<T> {
    pub(super) properties: Vec<(String, String)>,
    topic: Arc<TopicFn<T>>,
    key: Option<Arc<KeyFn<T>>>,
    serializer: Arc<dyn ValueSerializer<T>>,
    guarantee: DeliveryGuarantee,
    max_in_flight: usize,
    dead_letters: bool,
    pub(super) flush_timeout: Duration,
    /// The brokers to bootstrap from (exactly once speaks to their transaction
    /// coordinators directly on a restore).
    pub(super) bootstrap: String,
    /// Exactly once: the transactional ids' prefix.
    pub(super) transactional_id_prefix: Option<String>,
}

/// Writes records to Kafka topics.
///
/// Each record goes to a fixed topic or one chosen per record, with an optional key
/// (records with equal keys land in the same partition, in order) and a value
/// serializer (bytes, UTF-8, JSON or your own [`ValueSerializer`]). At most
/// [`max_in_flight`](KafkaSinkBuilder::max_in_flight) records await their delivery
/// report; the writer blocks (serving reports) when the bound is reached, which back
/// pressure carries upstream. A failed delivery fails the job with the broker's
/// error, or, with [`dead_letters`](KafkaSinkBuilder::dead_letters), becomes a
/// [`DeadLetter<Vec<u8>>`] (the value bytes) on [`dead_letter_tag::<Vec<u8>>()`] (read
/// it with [`DeadLetterSinkExt`](crate::DeadLetterSinkExt)).
///
/// With [`DeliveryGuarantee::ExactlyOnce`] records go into Kafka transactions
/// committed when a checkpoint completes (Flink's `KafkaSink` with
/// `DeliveryGuarantee.EXACTLY_ONCE`); see
/// [`KafkaSinkBuilder::transactional_id_prefix`] and `docs/connectors.md`.
///
/// ```no_run
/// use flink_connectors::kafka::{DeliveryGuarantee, KafkaSink};
/// use flink_core::prelude::*;
///
/// let sink = KafkaSink::<(String, u64)>::builder()
///     .bootstrap_servers("127.0.0.1:9092")
///     .topic("counts")
///     .key(|(word, _): &(String, u64)| Some(word.as_bytes().to_vec()))
///     .json_values()
///     .delivery_guarantee(DeliveryGuarantee::AtLeastOnce)
///     .build()
///     .unwrap();
/// let env = StreamExecutionEnvironment::new();
/// env.from_collection(vec![("a".to_string(), 1u64)]).sink_to(sink);
/// ```
pub struct KafkaSink<T> {
    config: Arc<SinkConfig<T>>,
}

impl<T> KafkaSink<T> {
    /// A builder.
    pub fn builder() -> KafkaSinkBuilder<T> {
        KafkaSinkBuilder {
            bootstrap: None,
            topic: None,
            key: None,
            serializer: None,
            guarantee: DeliveryGuarantee::AtLeastOnce,
            max_in_flight: 10_000,
            dead_letters: false,
            flush_timeout: Duration::from_secs(60),
            properties: Vec::new(),
            transactional_id_prefix: None,
        }
    }
}

/// Builds a [`KafkaSink`].
pub struct KafkaSinkBuilder<T> {
    bootstrap: Option<String>,
    topic: Option<Arc<TopicFn<T>>>,
    key: Option<Arc<KeyFn<T>>>,
    serializer: Option<Arc<dyn ValueSerializer<T>>>,
    guarantee: DeliveryGuarantee,
    max_in_flight: usize,
    dead_letters: bool,
    flush_timeout: Duration,
    properties: Vec<(String, String)>,
    transactional_id_prefix: Option<String>,
}

impl<T> KafkaSinkBuilder<T> {
    /// The brokers to bootstrap from (required).
    pub fn bootstrap_servers(mut self, servers: &str) -> Self {
        self.bootstrap = Some(servers.to_string());
        self
    }

    /// Every record goes to `topic`.
    pub fn topic(mut self, topic: &str) -> Self {
        let topic = topic.to_string();
        self.topic = Some(Arc::new(move |_: &T| topic.clone()));
        self
    }

    /// Each record goes to the topic `f` names.
    pub fn topic_fn(mut self, f: impl Fn(&T) -> String + Send + Sync + 'static) -> Self {
        self.topic = Some(Arc::new(f));
        self
    }

    /// The message key of each record (`None`: no key).
    pub fn key(mut self, f: impl Fn(&T) -> Option<Vec<u8>> + Send + Sync + 'static) -> Self {
        self.key = Some(Arc::new(f));
        self
    }

    /// Serializes values with `serializer`.
    pub fn value_serializer(mut self, serializer: impl ValueSerializer<T>) -> Self {
        self.serializer = Some(Arc::new(serializer));
        self
    }

    /// Values as the records' UTF-8 `Display` text.
    pub fn string_values(self) -> Self
    where
        T: std::fmt::Display,
    {
        self.value_serializer(StringSerializer)
    }

    /// Values as the records' bytes.
    pub fn bytes_values(self) -> Self
    where
        T: AsRef<[u8]>,
    {
        self.value_serializer(BytesSerializer)
    }

    /// Values as JSON documents.
    pub fn json_values(self) -> Self
    where
        T: Serialize + 'static,
    {
        self.value_serializer(JsonSerializer::<T>::new())
    }

    /// None, at-least-once (the default) or exactly-once.
    pub fn delivery_guarantee(mut self, guarantee: DeliveryGuarantee) -> Self {
        self.guarantee = guarantee;
        self
    }

    /// Records awaiting a delivery report per writer at most (default 10,000).
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// Failed deliveries and unserializable records become dead letters instead of
    /// failing the job.
    pub fn dead_letters(mut self, on: bool) -> Self {
        self.dead_letters = on;
        self
    }

    /// How long `finish()` waits for outstanding deliveries (default 60 s).
    pub fn flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = timeout;
        self
    }

    /// The prefix of the transactional ids, required for
    /// [`DeliveryGuarantee::ExactlyOnce`] (as Flink's `setTransactionalIdPrefix`). It
    /// must be unique per job among every job writing to the cluster (and not
    /// another job's prefix followed by `-<number>`), and stay the same across
    /// restarts of the job: writer `s` of an attempt that restored checkpoint `r`
    /// names its transactions `<prefix>-<s>-<r>-<n>`, and a starting writer commits
    /// the restored checkpoint's transactions and aborts the other open ones of its
    /// subtask (see `docs/connectors.md`).
    pub fn transactional_id_prefix(mut self, prefix: &str) -> Self {
        self.transactional_id_prefix = Some(prefix.to_string());
        self
    }

    /// Sets a librdkafka producer property, passed through as is.
    pub fn property(mut self, key: &str, value: &str) -> Self {
        self.properties.push((key.to_string(), value.to_string()));
        self
    }

    /// Builds the sink.
    ///
    /// # Errors
    /// When the bootstrap servers, the topic or the serializer are missing; with
    /// exactly-once, when the transactional id prefix is missing or empty, or the
    /// connection is not plaintext (`security.protocol`: the restore's transaction
    /// requests speak neither SASL nor TLS).
    pub fn build(self) -> Result<KafkaSink<T>, KafkaConnectorError> {
        let bootstrap = self
            .bootstrap
            .ok_or(KafkaConnectorError::Missing("bootstrap_servers"))?;
        let mut properties = vec![
            ("bootstrap.servers".to_string(), bootstrap.clone()),
            ("linger.ms".into(), "5".into()),
        ];
        properties.extend(self.properties);
        if self.guarantee == DeliveryGuarantee::ExactlyOnce {
            match &self.transactional_id_prefix {
                None => return Err(KafkaConnectorError::Missing("transactional_id_prefix")),
                Some(p) if p.is_empty() => {
                    return Err(KafkaConnectorError::Invalid(
                        "the transactional id prefix is empty".into(),
                    ));
                }
                Some(_) => {}
            }
            let security = properties
                .iter()
                .rev()
                .find(|(k, _)| k == "security.protocol")
                .map(|(_, v)| v.to_ascii_lowercase());
            if security.is_some_and(|s| s != "plaintext") {
                return Err(KafkaConnectorError::Invalid(
                    "exactly-once needs security.protocol=plaintext: committing a \
                     restored transaction speaks the Kafka protocol without SASL or TLS"
                        .into(),
                ));
            }
        }
        Ok(KafkaSink {
            config: Arc::new(SinkConfig {
                properties,
                topic: self.topic.ok_or(KafkaConnectorError::Missing("topic"))?,
                key: self.key,
                serializer: self
                    .serializer
                    .ok_or(KafkaConnectorError::Missing("value serializer"))?,
                guarantee: self.guarantee,
                max_in_flight: self.max_in_flight,
                dead_letters: self.dead_letters,
                flush_timeout: self.flush_timeout,
                bootstrap,
                transactional_id_prefix: self.transactional_id_prefix,
            }),
        })
    }
}

/// A failed delivery, as the report said.
pub(super) struct Failure {
    topic: String,
    payload: Vec<u8>,
    error: String,
}

#[derive(Default)]
pub(super) struct Reports {
    in_flight: AtomicUsize,
    failures: Mutex<Vec<Failure>>,
}

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        if let Err((error, message)) = result {
            let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            failures.push(Failure {
                topic: message.topic().to_string(),
                payload: message.payload().unwrap_or_default().to_vec(),
                error: error.to_string(),
            });
        }
    }
}

impl<T: Send + 'static> Sink<T> for KafkaSink<T> {
    fn create_writer(&self, ctx: &RuntimeContext) -> Box<dyn SinkWriter<T>> {
        if self.config.guarantee == DeliveryGuarantee::ExactlyOnce {
            let sink = ExactlyOnceKafka {
                config: self.config.clone(),
            };
            return TransactionalSink(sink).create_writer(ctx);
        }
        let producer = create_producer(&self.config.properties, None)
            .unwrap_or_else(|e| panic!("kafka sink: {e}"));
        Box::new(KafkaWriter::new(self.config.clone(), producer, ctx))
    }
}

/// A producer with the sink's properties (and a transactional id, for exactly once).
pub(super) fn create_producer(
    properties: &[(String, String)],
    transactional_id: Option<&str>,
) -> Result<BaseProducer<Reports>, KafkaConnectorError> {
    let mut cc = ClientConfig::new();
    for (k, v) in properties {
        cc.set(k, v);
    }
    if let Some(id) = transactional_id {
        cc.set("transactional.id", id);
    }
    cc.create_with_context(Reports::default())
        .map_err(KafkaConnectorError::client("create the producer"))
}

pub(super) struct KafkaWriter<T> {
    config: Arc<SinkConfig<T>>,
    pub(super) producer: BaseProducer<Reports>,
    operator: String,
    dead_letters: SideOutput<DeadLetter<Vec<u8>>>,
    /// Every wait on the producer (a full in-flight window, a full queue, the final
    /// flush) gives up when the job is cancelled: a broker that never answers must
    /// not keep the task alive.
    cancelled: CancelFlag,
}

impl<T: 'static> KafkaWriter<T> {
    /// A writer on `producer` for the sink instance `ctx`.
    pub(super) fn new(
        config: Arc<SinkConfig<T>>,
        producer: BaseProducer<Reports>,
        ctx: &RuntimeContext,
    ) -> Self {
        Self {
            config,
            producer,
            operator: ctx.operator_name.to_string(),
            dead_letters: ctx.side_output(&dead_letter_tag::<Vec<u8>>()),
            cancelled: ctx.services.cancelled.clone(),
        }
    }

    /// Whether the job was cancelled.
    pub(super) fn cancelled(&self) -> bool {
        self.cancelled.is_cancelled()
    }

    /// Serves delivery reports for at most [`WAIT_STEP`], unless the job was
    /// cancelled (which ends the task).
    fn wait_step(&self) {
        self.cancelled.stop_task_if_cancelled();
        self.producer.poll(WAIT_STEP);
    }

    /// Waits for every outstanding delivery report, at most `timeout`.
    pub(super) fn flush(&self, timeout: Duration) -> Result<(), KafkaConnectorError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.cancelled.stop_task_if_cancelled();
            let left = deadline.saturating_duration_since(Instant::now());
            match self.producer.flush(left.min(WAIT_STEP)) {
                Ok(()) => return Ok(()),
                Err(e) if left <= WAIT_STEP => {
                    return Err(KafkaConnectorError::client(format!(
                        "flush ({} records still in flight)",
                        self.in_flight()
                    ))(e));
                }
                Err(_) => {}
            }
        }
    }

    fn in_flight(&self) -> usize {
        self.producer.context().in_flight.load(Ordering::Acquire)
    }

    /// Turns reported failures into dead letters or the job's failure.
    pub(super) fn check_failures(&mut self) -> Result<(), KafkaConnectorError> {
        let failures = {
            let mut f = self
                .producer
                .context()
                .failures
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            std::mem::take(&mut *f)
        };
        let Some(first) = failures.first() else {
            return Ok(());
        };
        if !self.config.dead_letters {
            return Err(KafkaConnectorError::Delivery {
                topic: first.topic.clone(),
                message: format!("{} ({} failed deliveries)", first.error, failures.len()),
            });
        }
        for f in failures {
            let reason = format!("delivery to topic {} failed: {}", f.topic, f.error);
            self.dead_letters.collect(
                DeadLetter::new(f.payload, &self.operator, reason).with_last_error(f.error),
            );
        }
        Ok(())
    }

    pub(super) fn send(&mut self, record: &T) -> Result<(), KafkaConnectorError> {
        let value = match self.config.serializer.serialize(record) {
            Ok(v) => v,
            Err(e) if self.config.dead_letters => {
                self.dead_letters.collect(DeadLetter::new(
                    Vec::new(),
                    &self.operator,
                    format!("cannot serialize the record: {e}"),
                ));
                return Ok(());
            }
            Err(e) => return Err(KafkaConnectorError::Serialize(e)),
        };
        let topic = (self.config.topic)(record);
        let key = self.config.key.as_ref().and_then(|k| k(record));
        while self.in_flight() >= self.config.max_in_flight {
            self.wait_step();
        }
        let mut rec = BaseRecord::to(&topic).payload(&value);
        if let Some(k) = &key {
            rec = rec.key(k);
        }
        self.producer
            .context()
            .in_flight
            .fetch_add(1, Ordering::AcqRel);
        loop {
            match self.producer.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    rec = back;
                    self.wait_step();
                }
                Err((e, _)) => {
                    self.producer
                        .context()
                        .in_flight
                        .fetch_sub(1, Ordering::AcqRel);
                    if self.config.dead_letters {
                        let reason = format!("cannot produce to topic {topic}: {e}");
                        self.dead_letters
                            .collect(DeadLetter::new(value, &self.operator, reason));
                        return Ok(());
                    }
                    return Err(KafkaConnectorError::Delivery {
                        topic,
                        message: e.to_string(),
                    });
                }
            }
        }
        Ok(())
    }
}

impl<T: Send + 'static> SinkWriter<T> for KafkaWriter<T> {
    fn write(&mut self, record: T) -> Result<(), SinkError> {
        self.send(&record)?;
        self.producer.poll(Duration::ZERO);
        self.check_failures()?;
        Ok(())
    }

    fn write_batch(&mut self, batch: &mut Vec<T>) -> Result<(), SinkError> {
        for record in batch.drain(..) {
            self.send(&record)?;
        }
        self.producer.poll(Duration::ZERO);
        self.check_failures()?;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        if self.config.guarantee == DeliveryGuarantee::AtLeastOnce {
            self.flush(self.config.flush_timeout)?;
        } else {
            self.producer.poll(Duration::ZERO);
        }
        self.check_failures()?;
        Ok(())
    }
}
