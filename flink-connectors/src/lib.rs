//! # flink-connectors
//!
//! Sources and sinks that touch the outside world:
//!
//! - [`print`](mod@print): printing to standard output;
//! - [`file`](mod@file): text and JSON-lines file sources, a rolling part-file sink;
//! - [`kafka`]: a Kafka source and sink (librdkafka through `rdkafka`), and a Kafka
//!   producer as an [`AckDestination`](flink_core::destination::AckDestination);
//! - [`postgres`]: a batching, retrying, upserting PostgreSQL sink and destination;
//! - [`http`]: an HTTP destination and call helper mapping status codes to
//!   [`DeliveryError`](flink_core::destination::DeliveryError)s;
//! - [`nexmark`]: the Nexmark benchmark's events (people, auctions, bids) as a
//!   parallel source;
//! - [`dead_letters`]: attaching a sink so its dead letters can be read as a stream.
//!
//! See `docs/connectors.md` for options and guarantees.
#![warn(missing_docs)]

pub mod dead_letters;
pub mod file;
pub mod http;
pub mod kafka;
pub mod nexmark;
pub mod postgres;
pub mod print;
mod runtime;

pub use dead_letters::DeadLetterSinkExt;
pub use print::{PrintExt, PrintSink};
