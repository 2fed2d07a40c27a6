//! Kafka: a source reading assigned partitions (bounded or unbounded), a sink with
//! bounded in-flight sends, and a producer as an acknowledging destination. Built on
//! librdkafka through `rdkafka` (bundled build).

pub mod deserializer;
pub mod destination;
pub mod error;
mod exactly_once;
mod finished_commit;
mod last_batch;
pub mod offsets;
pub mod serializer;
pub mod sink;
pub mod source;
mod source_position;
mod test_hooks;
mod txn_coordinator;
mod txn_recovery;

pub use deserializer::{
    BytesDeserializer, JsonDeserializer, KafkaRecordDeserializer, KeyValue, StringDeserializer,
    ValueDeserializer, ValueOnly,
};
pub use destination::KafkaDestination;
pub use error::KafkaConnectorError;
pub use exactly_once::{KafkaTransaction, KafkaTransactionWriter};
pub use offsets::{KafkaOffsets, PartitionProgress};
pub use serializer::{BytesSerializer, JsonSerializer, StringSerializer, ValueSerializer};
pub use sink::{DeliveryGuarantee, KafkaSink, KafkaSinkBuilder};
pub use source::{KafkaSource, KafkaSourceBuilder, StartingOffsets};
