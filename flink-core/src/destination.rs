//! Acknowledging destinations: where a record counts as delivered only once the
//! destination says so (a broker's delivery report, a committed database batch, a 2xx
//! HTTP answer).

use futures::future::BoxFuture;
use thiserror::Error;

/// Why a destination did not acknowledge a record.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DeliveryError {
    /// Worth trying again (a timeout, a broken connection, a 503).
    #[error("retryable: {0}")]
    Retryable(String),
    /// Trying again cannot help (a constraint violation, a value that does not fit, a
    /// 400); the record becomes a dead letter.
    #[error("permanent: {0}")]
    Permanent(String),
}

impl DeliveryError {
    /// Whether trying again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable(_))
    }
}

/// A destination that acknowledges each record. `send` may buffer (a batching
/// destination resolves the futures of a whole batch when it commits), so callers keep
/// many sends pending and bound how many.
pub trait AckDestination<T>: Send + Sync + 'static {
    /// Sends `record`; resolves when the destination acknowledged it, or failed.
    fn send(&self, record: T) -> BoxFuture<'static, Result<(), DeliveryError>>;

    /// Delivers whatever is buffered (called at end of input and, later, before a
    /// checkpoint completes); resolves when everything sent so far is acknowledged.
    fn flush(&self) -> BoxFuture<'static, Result<(), DeliveryError>> {
        Box::pin(async { Ok(()) })
    }
}
