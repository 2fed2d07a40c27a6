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
