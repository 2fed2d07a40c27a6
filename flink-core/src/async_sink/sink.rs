//! [`AsyncSink`]: a batch destination with its options, ready for
//! [`DataStream::sink_to_async`](crate::datastream::DataStream::sink_to_async).

use std::sync::Arc;

use crate::destination::AckDestination;

use super::destination::{BatchDestination, PerRecord};
use super::options::AsyncSinkOptions;

/// An async sink: where batches go and how they are bounded and retried.
///
/// ```
/// use std::time::Duration;
/// use flink_core::prelude::*;
/// use flink_core::async_sink::{AsyncSink, AsyncSinkOptions};
/// use flink_core::destinations::CollectingDestination;
///
/// let store = CollectingDestination::<u64>::new();
/// let env = StreamExecutionEnvironment::new();
/// env.from_sequence(1, 1_000).sink_to_async(
///     AsyncSink::per_record(store.clone()).options(
///         AsyncSinkOptions::new()
///             .max_batch_size(100)
///             .max_in_flight_requests(4)
///             .max_time_in_buffer(Duration::from_millis(50)),
///     ),
/// );
/// # let _ = store;
/// ```
pub struct AsyncSink<T> {
    pub(crate) destination: Arc<dyn BatchDestination<T>>,
    pub(crate) options: AsyncSinkOptions,
}

impl<T> Clone for AsyncSink<T> {
    fn clone(&self) -> Self {
        Self {
            destination: self.destination.clone(),
            options: self.options.clone(),
        }
    }
}

impl<T: 'static> AsyncSink<T> {
    /// A sink sending batches to `destination`, with the default options.
    pub fn new(destination: impl BatchDestination<T>) -> Self {
        Self {
            destination: Arc::new(destination),
            options: AsyncSinkOptions::default(),
        }
    }

    /// A sink over an acknowledging destination: each record of a batch is one
    /// acknowledged send (see [`PerRecord`]).
    pub fn per_record(destination: impl AckDestination<T>) -> Self
    where
        T: Clone + Send,
    {
        Self::new(PerRecord(Arc::new(destination)))
    }

    /// Sets the options.
    pub fn options(mut self, options: AsyncSinkOptions) -> Self {
        self.options = options;
        self
    }

    /// The options it runs with.
    pub fn current_options(&self) -> &AsyncSinkOptions {
        &self.options
    }
}
