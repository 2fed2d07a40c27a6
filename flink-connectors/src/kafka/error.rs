//! Errors of the Kafka connectors.

use thiserror::Error;

/// Why a Kafka source or sink could not be built or failed.
#[derive(Debug, Error)]
pub enum KafkaConnectorError {
    /// A required builder option was not given.
    #[error("kafka: missing option `{0}`")]
    Missing(&'static str),
    /// An option has an unusable value.
    #[error("kafka: invalid option: {0}")]
    Invalid(String),
    /// librdkafka reported an error.
    #[error("kafka: {context}: {source}")]
    Client {
        /// What was being done.
        context: String,
        /// The client error.
        source: rdkafka::error::KafkaError,
    },
    /// A record could not be delivered to the broker.
    #[error("kafka: delivery to topic {topic} failed: {message}")]
    Delivery {
        /// The topic.
        topic: String,
        /// The broker's or client's message.
        message: String,
    },
    /// A Kafka-protocol request (the exactly-once sink's transaction recovery) could
    /// not be made or answered.
    #[error("kafka: broker {broker}: {message}")]
    Protocol {
        /// The broker's `host:port`.
        broker: String,
        /// What went wrong.
        message: String,
    },
    /// A transaction coordinator refused a request.
    #[error(
        "kafka: {request} for transactional id {transactional_id} failed: Kafka error code {error_code}"
    )]
    Coordinator {
        /// The transactional id.
        transactional_id: String,
        /// The request (`FindCoordinator`, `DescribeTransactions`, `EndTxn`).
        request: &'static str,
        /// Kafka's error code.
        error_code: i16,
    },
    /// A restored checkpoint's pre-committed transaction can no longer be
    /// committed: the broker aborted it (its `transaction.timeout.ms` passed before
    /// the restore), or forgot it. Its records are lost; the restore fails rather
    /// than go on silently.
    #[error(
        "kafka: the transaction of {transactional_id} (checkpoint {checkpoint:?}) cannot be \
         committed: the broker says {state}; its records are lost (was the job down \
         longer than transaction.timeout.ms?)"
    )]
    TransactionLost {
        /// The transactional id.
        transactional_id: String,
        /// The checkpoint it was pre-committed for.
        checkpoint: Option<u64>,
        /// What the coordinator said (`CompleteAbort`, `unknown id`, ...).
        state: String,
    },
    /// A record could not be serialized.
    #[error("kafka: cannot serialize a record: {0}")]
    Serialize(String),
}

impl KafkaConnectorError {
    pub(crate) fn client(
        context: impl Into<String>,
    ) -> impl FnOnce(rdkafka::error::KafkaError) -> Self {
        let context = context.into();
        move |source| Self::Client { context, source }
    }
}
