use std::fmt;
use std::future::Future;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::destination::DeliveryError;

/// Why one attempt of an async call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AsyncFailure {
    /// The attempt did not complete within the configured timeout.
    Timeout(Duration),
    /// A failure worth retrying (by default every failure but `Permanent`).
    Retryable(String),
    /// A failure no retry can fix.
    Permanent(String),
}

impl fmt::Display for AsyncFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(d) => write!(f, "timed out after {d:?}"),
            Self::Retryable(m) => write!(f, "{m}"),
            Self::Permanent(m) => write!(f, "permanent: {m}"),
        }
    }
}

impl From<String> for AsyncFailure {
    fn from(message: String) -> Self {
        Self::Retryable(message)
    }
}

impl From<&str> for AsyncFailure {
    fn from(message: &str) -> Self {
        Self::Retryable(message.to_string())
    }
}

impl From<DeliveryError> for AsyncFailure {
    fn from(e: DeliveryError) -> Self {
        match e {
            DeliveryError::Retryable(m) => Self::Retryable(m),
            DeliveryError::Permanent(m) => Self::Permanent(m),
        }
    }
}

/// An asynchronous function of a record: `invoke` starts one attempt. It takes the
/// input by reference because a retry calls it again with the same input.
///
/// Closures `Fn(I) -> impl Future<Output = Result<O, E>>` implement it (the input is
/// cloned per attempt), for any error `E` convertible into [`AsyncFailure`] (`String`,
/// `&str`, [`DeliveryError`]).
pub trait AsyncFunction<I, O>: Send + Sync + 'static {
    /// Starts one attempt for `input`.
    fn invoke(&self, input: &I) -> BoxFuture<'static, Result<O, AsyncFailure>>;
}

impl<I, O, E, F, Fut> AsyncFunction<I, O> for F
where
    I: Clone,
    F: Fn(I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, E>> + Send + 'static,
    E: Into<AsyncFailure>,
{
    fn invoke(&self, input: &I) -> BoxFuture<'static, Result<O, AsyncFailure>> {
        let fut = self(input.clone());
        Box::pin(async move { fut.await.map_err(Into::into) })
    }
}
