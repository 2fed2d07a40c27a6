//! PostgreSQL: a batching sink and an acknowledging destination over `tokio-postgres`,
//! with retries for transient errors, dead letters for rows the database refuses, and
//! idempotent upserts.

pub mod config;
pub mod destination;
pub mod error;
pub mod exactly_once;
pub mod sink;
pub mod value;
mod writer;

pub use config::PostgresConfig;
pub use destination::PostgresDestination;
pub use error::PostgresConnectorError;
pub use exactly_once::PostgresExactlyOnceSink;
pub use sink::{PostgresSink, PostgresSinkMetrics};
pub use value::SqlValue;
