//! [`CallbackDestination`]: a destination that is a function.

use std::future::Future;
use std::marker::PhantomData;

use futures::future::BoxFuture;

use crate::destination::{AckDestination, DeliveryError};

/// Delivers each record by calling a function; its result is the acknowledgment.
///
/// [`new`](Self::new) takes an async function (the ack is the future's result),
/// [`blocking`](Self::blocking) a plain one (acknowledged as soon as it returns).
///
/// ```
/// use flink_core::prelude::*;
/// use flink_core::destinations::CallbackDestination;
/// use flink_core::pipeline::FiveStagePipeline;
///
/// let notify = CallbackDestination::blocking(|order: u64| {
///     if order % 1_000 == 0 {
///         Err(DeliveryError::Permanent(format!("order {order} is blocked")))
///     } else {
///         Ok(())
///     }
/// });
/// let pipeline = FiveStagePipeline::<u64, u64>::builder()
///     .key(|x| x.to_string())
///     .call(|x: u64| async move { Ok::<u64, String>(x) })
///     .destination(notify)
///     .build()
///     .unwrap();
/// # let _ = pipeline;
/// ```
pub struct CallbackDestination<T, F> {
    send: F,
    _record: PhantomData<fn(T)>,
}

impl<T, F, Fut> CallbackDestination<T, F>
where
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), DeliveryError>> + Send + 'static,
{
    /// Acknowledges a record when the future `send(record)` resolves `Ok`.
    pub fn new(send: F) -> Self {
        Self {
            send,
            _record: PhantomData,
        }
    }
}

impl<T, G> CallbackDestination<T, Blocking<G>>
where
    G: Fn(T) -> Result<(), DeliveryError> + Send + Sync + 'static,
{
    /// Acknowledges a record when `send(record)` returns `Ok`. The function runs on
    /// the FinalSink's thread, so it should be quick.
    pub fn blocking(send: G) -> Self {
        Self {
            send: Blocking(send),
            _record: PhantomData,
        }
    }
}

/// A plain function used as a [`CallbackDestination`].
pub struct Blocking<G>(G);

impl<T, F, Fut> AckDestination<T> for CallbackDestination<T, F>
where
    T: 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), DeliveryError>> + Send + 'static,
{
    fn send(&self, record: T) -> BoxFuture<'static, Result<(), DeliveryError>> {
        Box::pin((self.send)(record))
    }
}

impl<T, G> AckDestination<T> for CallbackDestination<T, Blocking<G>>
where
    T: 'static,
    G: Fn(T) -> Result<(), DeliveryError> + Send + Sync + 'static,
{
    fn send(&self, record: T) -> BoxFuture<'static, Result<(), DeliveryError>> {
        let result = (self.send.0)(record);
        Box::pin(async move { result })
    }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;

    use super::*;

    fn reject_zero(x: u64) -> Result<(), DeliveryError> {
        if x == 0 {
            Err(DeliveryError::Retryable("zero".into()))
        } else {
            Ok(())
        }
    }

    #[test]
    fn the_callbacks_result_is_the_acknowledgment() {
        let async_form = CallbackDestination::new(|x: u64| async move { reject_zero(x) });
        let blocking_form = CallbackDestination::blocking(reject_zero);
        assert_eq!(block_on(async_form.send(1)), Ok(()));
        assert_eq!(block_on(blocking_form.send(1)), Ok(()));
        assert!(block_on(async_form.send(0)).unwrap_err().is_retryable());
        assert!(block_on(blocking_form.send(0)).unwrap_err().is_retryable());
    }
}
