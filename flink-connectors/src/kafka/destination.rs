//! A Kafka producer as an [`AckDestination`]: a record is acknowledged by the broker's
//! delivery report.

use std::sync::Arc;
use std::time::Duration;

use flink_core::destination::{AckDestination, DeliveryError};
use futures::future::BoxFuture;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use serde::Serialize;

use super::error::KafkaConnectorError;
use super::serializer::{JsonSerializer, ValueSerializer};

type TopicFn<T> = dyn Fn(&T) -> String + Send + Sync;
type KeyFn<T> = dyn Fn(&T) -> Option<Vec<u8>> + Send + Sync;

/// Produces each record to Kafka and resolves its future with the broker's delivery
/// report: `Ok` once the broker has it (as `acks` configures, `all` by default),
/// [`DeliveryError::Retryable`] for a full local queue, a timeout or a broker or
/// network failure, [`DeliveryError::Permanent`] for a record the broker can never
/// take (too large, invalid, unknown topic, not authorized).
///
/// The futures do not need a particular executor: librdkafka's own thread completes
/// them. `flush()` waits (on a helper thread) until every report arrived.
///
/// ```no_run
/// use flink_connectors::kafka::KafkaDestination;
/// use flink_core::destination::AckDestination;
///
/// let dest = KafkaDestination::<serde_json::Value>::json("127.0.0.1:9092", "out").unwrap();
/// let ack = dest.send(serde_json::json!({"id": 1}));
/// futures::executor::block_on(ack).unwrap();
/// ```
pub struct KafkaDestination<T> {
    producer: FutureProducer,
    topic: Arc<TopicFn<T>>,
    key: Option<Arc<KeyFn<T>>>,
    serializer: Arc<dyn ValueSerializer<T>>,
    flush_timeout: Duration,
}

impl<T: Serialize + 'static> KafkaDestination<T> {
    /// JSON values to `topic`, without keys.
    ///
    /// # Errors
    /// When the producer cannot be created.
    pub fn json(bootstrap: &str, topic: &str) -> Result<Self, KafkaConnectorError> {
        let topic = topic.to_string();
        Self::new(
            &[("bootstrap.servers", bootstrap)],
            move |_: &T| topic.clone(),
            JsonSerializer::<T>::new(),
        )
    }
}

impl<T> KafkaDestination<T> {
    /// A producer with `properties` (librdkafka's, `bootstrap.servers` at least),
    /// records to the topic `topic` names, values through `serializer`.
    ///
    /// # Errors
    /// When the producer cannot be created.
    pub fn new(
        properties: &[(&str, &str)],
        topic: impl Fn(&T) -> String + Send + Sync + 'static,
        serializer: impl ValueSerializer<T>,
    ) -> Result<Self, KafkaConnectorError> {
        let mut cc = ClientConfig::new();
        cc.set("acks", "all");
        for (k, v) in properties {
            cc.set(*k, *v);
        }
        let producer = cc
            .create()
            .map_err(KafkaConnectorError::client("create producer"))?;
        Ok(Self {
            producer,
            topic: Arc::new(topic),
            key: None,
            serializer: Arc::new(serializer),
            flush_timeout: Duration::from_secs(60),
        })
    }

    /// The message key of each record.
    pub fn with_key(mut self, key: impl Fn(&T) -> Option<Vec<u8>> + Send + Sync + 'static) -> Self {
        self.key = Some(Arc::new(key));
        self
    }

    /// How long `flush()` waits (default 60 s).
    pub fn with_flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = timeout;
        self
    }
}

/// Whether a producer error can be cured by trying again.
pub(crate) fn delivery_error(e: &KafkaError) -> DeliveryError {
    use RDKafkaErrorCode as C;
    let permanent = matches!(
        e.rdkafka_error_code(),
        Some(
            C::MessageSizeTooLarge
                | C::InvalidMessage
                | C::InvalidMessageSize
                | C::InvalidTopic
                | C::TopicAuthorizationFailed
                | C::InvalidRecord
                | C::UnknownTopic
                | C::UnknownPartition
        )
    );
    if permanent {
        DeliveryError::Permanent(e.to_string())
    } else {
        DeliveryError::Retryable(e.to_string())
    }
}

impl<T: Send + Sync + 'static> AckDestination<T> for KafkaDestination<T> {
    fn send(&self, record: T) -> BoxFuture<'static, Result<(), DeliveryError>> {
        let value = match self.serializer.serialize(&record) {
            Ok(v) => v,
            Err(e) => {
                let err = DeliveryError::Permanent(format!("cannot serialize the record: {e}"));
                return Box::pin(async move { Err(err) });
            }
        };
        let topic = (self.topic)(&record);
        let key = self.key.as_ref().and_then(|k| k(&record));
        let mut rec = FutureRecord::to(&topic).payload(&value);
        if let Some(k) = &key {
            rec = rec.key(k);
        }
        match self.producer.send_result(rec) {
            Ok(delivery) => Box::pin(async move {
                match delivery.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err((e, _))) => Err(delivery_error(&e)),
                    Err(_) => Err(DeliveryError::Retryable(
                        "the producer was dropped before the delivery report".into(),
                    )),
                }
            }),
            Err((e, _)) => {
                let err = delivery_error(&e);
                Box::pin(async move { Err(err) })
            }
        }
    }

    fn flush(&self) -> BoxFuture<'static, Result<(), DeliveryError>> {
        let producer = self.producer.clone();
        let timeout = self.flush_timeout;
        let (tx, rx) = futures::channel::oneshot::channel();
        std::thread::spawn(move || {
            let _ = tx.send(producer.flush(timeout));
        });
        Box::pin(async move {
            match rx.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(DeliveryError::Retryable(format!("flush: {e}"))),
                Err(_) => Err(DeliveryError::Retryable("flush thread ended".into())),
            }
        })
    }
}
