//! [`AsyncSinkOptions`]: the knobs of an async sink, as Flink's `AsyncSinkWriterConfiguration`.

use std::time::Duration;

use thiserror::Error;

use crate::async_io::{FailurePolicy, RetryStrategy, RetryStrategyError};

/// How an async sink batches, bounds and retries its requests.
#[derive(Debug, Clone, PartialEq)]
pub struct AsyncSinkOptions {
    /// Records in one request at most.
    pub max_batch_size: usize,
    /// Requests in flight at most per parallel instance.
    pub max_in_flight_requests: usize,
    /// Records buffered (not yet in a request) at most; when full, the sink stops
    /// taking input until a request completes (back pressure).
    pub max_buffered_records: usize,
    /// Longest a record waits in the buffer before a partial batch is sent.
    pub max_time_in_buffer: Duration,
    /// Limit of one attempt of a request; a request that times out is retried like a
    /// retryable failure of all its entries.
    pub request_timeout: Duration,
    /// When entries that failed retryably are sent again.
    pub retry: RetryStrategy,
    /// What entries that failed for good do: fail the job (default), become dead
    /// letters, or be counted as errors.
    pub on_failure: FailurePolicy,
    /// Seed of the retry jitter (mixed with the subtask index).
    pub jitter_seed: u64,
}

impl Default for AsyncSinkOptions {
    /// Flink's defaults where it has them: batches of 500, 50 requests in flight,
    /// 10,000 buffered records, 5 s in the buffer; a 30 s request timeout and up to 5
    /// attempts with exponential backoff from 100 ms.
    fn default() -> Self {
        Self {
            max_batch_size: 500,
            max_in_flight_requests: 50,
            max_buffered_records: 10_000,
            max_time_in_buffer: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            retry: RetryStrategy::ExponentialBackoff {
                initial: Duration::from_millis(100),
                multiplier: 2.0,
                max_delay: Duration::from_secs(10),
                max_attempts: 5,
                jitter: 0.2,
            },
            on_failure: FailurePolicy::FailJob,
            jitter_seed: 0,
        }
    }
}

/// An [`AsyncSinkOptions`] value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AsyncSinkOptionsError {
    /// A bound of zero would never send anything.
    #[error("async sink {field} must be at least 1")]
    Zero {
        /// The setting.
        field: &'static str,
    },
    /// The buffer must hold at least one batch.
    #[error(
        "async sink max_buffered_records ({buffered}) must be at least max_batch_size ({batch})"
    )]
    BufferSmallerThanBatch {
        /// `max_buffered_records`.
        buffered: usize,
        /// `max_batch_size`.
        batch: usize,
    },
    /// A zero duration would time out or flush constantly.
    #[error("async sink {field} must be greater than zero")]
    ZeroDuration {
        /// The setting.
        field: &'static str,
    },
    /// The retry strategy cannot work.
    #[error("async sink {0}")]
    Retry(#[from] RetryStrategyError),
}

impl AsyncSinkOptions {
    /// Flink's defaults (see [`Default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the largest batch.
    pub fn max_batch_size(mut self, n: usize) -> Self {
        self.max_batch_size = n;
        self
    }

    /// Sets the requests in flight per instance.
    pub fn max_in_flight_requests(mut self, n: usize) -> Self {
        self.max_in_flight_requests = n;
        self
    }

    /// Sets the buffer bound.
    pub fn max_buffered_records(mut self, n: usize) -> Self {
        self.max_buffered_records = n;
        self
    }

    /// Sets the longest wait in the buffer.
    pub fn max_time_in_buffer(mut self, d: Duration) -> Self {
        self.max_time_in_buffer = d;
        self
    }

    /// Sets the timeout of one request attempt.
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }

    /// Sets the retry strategy.
    pub fn retry(mut self, retry: RetryStrategy) -> Self {
        self.retry = retry;
        self
    }

    /// Sends entries that failed for good to the dead-letter side output.
    pub fn dead_letters(mut self) -> Self {
        self.on_failure = FailurePolicy::DeadLetter;
        self
    }

    /// Sets the jitter seed.
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.jitter_seed = seed;
        self
    }

    /// Checks every value.
    pub fn validate(&self) -> Result<(), AsyncSinkOptionsError> {
        for (field, n) in [
            ("max_batch_size", self.max_batch_size),
            ("max_in_flight_requests", self.max_in_flight_requests),
            ("max_buffered_records", self.max_buffered_records),
        ] {
            if n == 0 {
                return Err(AsyncSinkOptionsError::Zero { field });
            }
        }
        if self.max_buffered_records < self.max_batch_size {
            return Err(AsyncSinkOptionsError::BufferSmallerThanBatch {
                buffered: self.max_buffered_records,
                batch: self.max_batch_size,
            });
        }
        for (field, d) in [
            ("max_time_in_buffer", self.max_time_in_buffer),
            ("request_timeout", self.request_timeout),
        ] {
            if d.is_zero() {
                return Err(AsyncSinkOptionsError::ZeroDuration { field });
            }
        }
        self.retry.validate()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        assert_eq!(AsyncSinkOptions::new().validate(), Ok(()));
        assert_eq!(
            AsyncSinkOptions::new().max_in_flight_requests(0).validate(),
            Err(AsyncSinkOptionsError::Zero {
                field: "max_in_flight_requests"
            })
        );
        assert_eq!(
            AsyncSinkOptions::new()
                .max_batch_size(100)
                .max_buffered_records(10)
                .validate(),
            Err(AsyncSinkOptionsError::BufferSmallerThanBatch {
                buffered: 10,
                batch: 100
            })
        );
        assert_eq!(
            AsyncSinkOptions::new()
                .max_time_in_buffer(Duration::ZERO)
                .validate(),
            Err(AsyncSinkOptionsError::ZeroDuration {
                field: "max_time_in_buffer"
            })
        );
        let shrinking = RetryStrategy::ExponentialBackoff {
            initial: Duration::from_millis(10),
            multiplier: 0.5,
            max_delay: Duration::from_secs(1),
            max_attempts: 3,
            jitter: 0.0,
        };
        assert_eq!(
            AsyncSinkOptions::new().retry(shrinking).validate(),
            Err(AsyncSinkOptionsError::Retry(
                RetryStrategyError::BadMultiplier("0.5".into())
            ))
        );
    }
}
