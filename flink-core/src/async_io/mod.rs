//! Asynchronous I/O: calling an external service from a stream without blocking the
//! task, with bounded concurrency, timeouts, retries and dead letters.

mod function;
mod options;
mod retry;

pub use function::{AsyncFailure, AsyncFunction};
pub use options::{AsyncOptions, AsyncOptionsError, FailurePolicy, OutputMode};
pub use retry::{Jitter, RetryStrategy, RetryStrategyError};
