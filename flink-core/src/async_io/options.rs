use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use super::function::AsyncFailure;
use super::retry::{RetryStrategy, RetryStrategyError};

/// Whether results keep the input order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMode {
    /// Results leave in input order (a slow call holds back later results).
    Ordered,
    /// Results leave as they complete.
    Unordered,
}

/// What a call that failed its last attempt does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Fail the job, naming the operator.
    FailJob,
    /// Emit a dead letter on the operator's dead-letter side output and go on.
    DeadLetter,
    /// Count it in the operator's `errors` metric, log it, and go on.
    Count,
}

/// Decides whether a failure may be retried.
pub type RetryPredicate = Arc<dyn Fn(&AsyncFailure) -> bool + Send + Sync>;

/// How an async operator calls its function.
#[derive(Clone)]
pub struct AsyncOptions {
    /// Ordered or unordered results.
    pub mode: OutputMode,
    /// Limit of one attempt.
    pub timeout: Duration,
    /// Calls in flight at most; when full, the operator stops taking input (back
    /// pressure).
    pub capacity: usize,
    /// Retries.
    pub retry: RetryStrategy,
    /// Which failures are retried (default: all but `Permanent`).
    pub retry_if: RetryPredicate,
    /// What a final failure does.
    pub on_failure: FailurePolicy,
    /// Seed of the retry jitter (per parallel instance it is mixed with the index).
    pub jitter_seed: u64,
}

impl std::fmt::Debug for AsyncOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncOptions")
            .field("mode", &self.mode)
            .field("timeout", &self.timeout)
            .field("capacity", &self.capacity)
            .field("retry", &self.retry)
            .field("on_failure", &self.on_failure)
            .finish()
    }
}

/// An [`AsyncOptions`] value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AsyncOptionsError {
    /// Capacity must be at least one call.
    #[error("async capacity must be at least 1")]
    ZeroCapacity,
    /// A zero timeout would fail every call.
    #[error("async timeout must be greater than zero")]
    ZeroTimeout,
    /// The retry strategy cannot work.
    #[error(transparent)]
    Retry(#[from] RetryStrategyError),
}

impl Default for AsyncOptions {
    fn default() -> Self {
        Self {
            mode: OutputMode::Unordered,
            timeout: Duration::from_secs(30),
            capacity: 100,
            retry: RetryStrategy::NoRetry,
            retry_if: Arc::new(|f| !matches!(f, AsyncFailure::Permanent(_))),
            on_failure: FailurePolicy::FailJob,
            jitter_seed: 0,
        }
    }
}

impl AsyncOptions {
    /// Unordered results, 30 s timeout, capacity 100, no retry, failures fail the job.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets ordered (`true`) or unordered results.
    pub fn ordered(mut self, ordered: bool) -> Self {
        self.mode = if ordered {
            OutputMode::Ordered
        } else {
            OutputMode::Unordered
        };
        self
    }

    /// Sets the timeout of one attempt.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the in-flight bound.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Sets the retry strategy.
    pub fn retry(mut self, retry: RetryStrategy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets which failures are retried.
    pub fn retry_if(mut self, f: impl Fn(&AsyncFailure) -> bool + Send + Sync + 'static) -> Self {
        self.retry_if = Arc::new(f);
        self
    }

    /// Sends final failures to the dead-letter side output instead of failing the job.
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
    pub fn validate(&self) -> Result<(), AsyncOptionsError> {
        if self.capacity == 0 {
            return Err(AsyncOptionsError::ZeroCapacity);
        }
        if self.timeout.is_zero() {
            return Err(AsyncOptionsError::ZeroTimeout);
        }
        self.retry.validate()?;
        Ok(())
    }
}
