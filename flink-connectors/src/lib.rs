//! # flink-connectors
//!
//! Sources and sinks that touch the outside world. For now: printing to standard
//! output. Kafka, PostgreSQL, HTTP and files follow.
#![warn(missing_docs)]

pub mod print;

pub use print::{PrintExt, PrintSink};
