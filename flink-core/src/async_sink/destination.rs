//! [`BatchDestination`]: where an async sink sends its batches.

use std::sync::Arc;

use futures::future::{BoxFuture, join_all};

use crate::destination::{AckDestination, DeliveryError};
use crate::sink::SinkError;

/// What one submitted batch came to: the entries that were not delivered, by their
/// index in the batch, with why; or an error no retry can fix, which fails the job.
pub type SubmitResult = Result<Vec<(usize, DeliveryError)>, SinkError>;

/// A destination taking batches of records in asynchronous requests (Flink's
/// `AsyncSinkWriter#submitRequestEntries`). Entries reported as
/// [`DeliveryError::Retryable`] are sent again per the sink's retry strategy;
/// [`DeliveryError::Permanent`] ones become dead letters at once.
pub trait BatchDestination<T>: Send + Sync + 'static {
    /// Sends `batch` in one request; resolves when the destination answered. The
    /// future owns what it needs (it may outlive the call).
    fn submit(&self, batch: &[T]) -> BoxFuture<'static, SubmitResult>;

    /// Delivers whatever the destination itself still buffers; called at the end of
    /// input once every request completed.
    fn flush(&self) -> BoxFuture<'static, Result<(), DeliveryError>> {
        Box::pin(async { Ok(()) })
    }
}

/// Any [`AckDestination`] as a [`BatchDestination`]: a batch is one acknowledged send
/// per record, all in flight at once (a destination that batches by itself, such as
/// PostgreSQL's or Kafka's, gathers them into its own batches).
pub struct PerRecord<D: ?Sized>(pub Arc<D>);

impl<T, D> BatchDestination<T> for PerRecord<D>
where
    T: Clone + Send + 'static,
    D: AckDestination<T> + ?Sized,
{
    fn submit(&self, batch: &[T]) -> BoxFuture<'static, SubmitResult> {
        let acks: Vec<_> = batch.iter().map(|r| self.0.send(r.clone())).collect();
        Box::pin(async move {
            let failed = join_all(acks)
                .await
                .into_iter()
                .enumerate()
                .filter_map(|(i, ack)| ack.err().map(|e| (i, e)))
                .collect();
            Ok(failed)
        })
    }

    fn flush(&self) -> BoxFuture<'static, Result<(), DeliveryError>> {
        self.0.flush()
    }
}
