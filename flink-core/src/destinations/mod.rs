//! Ready-made [`AckDestination`](crate::destination::AckDestination)s for the
//! FinalSink stage: a callback and an in-memory collection. The connectors crate
//! adds Kafka, PostgreSQL and HTTP.

mod callback;
mod collecting;

pub use callback::CallbackDestination;
pub use collecting::CollectingDestination;
