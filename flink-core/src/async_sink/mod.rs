//! The async sink: a sink whose writes are asynchronous requests, as Flink's
//! `AsyncSinkWriter`. Records are buffered and sent in batches, with a bounded number
//! of requests in flight, a timeout per request, retries of what failed retryably,
//! dead letters (or a job failure) for what failed for good, and back pressure when
//! the buffer is full. What is buffered is sent when a batch is full, when the oldest
//! record has waited `max_time_in_buffer`, and at the end of input.
//!
//! Write to it with [`DataStream::sink_to_async`](crate::datastream::DataStream::sink_to_async).

mod destination;
mod options;
mod sink;

pub use destination::{BatchDestination, PerRecord, SubmitResult};
pub use options::{AsyncSinkOptions, AsyncSinkOptionsError};
pub use sink::AsyncSink;
