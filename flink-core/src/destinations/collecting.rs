//! [`CollectingDestination`]: acknowledges every record and keeps it in memory.

use std::sync::{Arc, Mutex, MutexGuard};

use futures::future::BoxFuture;

use crate::destination::{AckDestination, DeliveryError};

/// Keeps every record it is sent, acknowledging at once; clones share the records.
/// For tests and examples: memory grows with the records delivered.
///
/// ```
/// use flink_core::prelude::*;
/// use flink_core::destinations::CollectingDestination;
///
/// let store = CollectingDestination::<u64>::new();
/// let _ = futures::executor::block_on(store.send(7));
/// assert_eq!(store.take(), vec![7]);
/// assert!(store.is_empty());
/// ```
pub struct CollectingDestination<T> {
    records: Arc<Mutex<Vec<T>>>,
}

impl<T> CollectingDestination<T> {
    /// An empty collection.
    pub fn new() -> Self {
        Self {
            records: Arc::default(),
        }
    }

    fn records(&self) -> MutexGuard<'_, Vec<T>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many records were delivered.
    pub fn len(&self) -> usize {
        self.records().len()
    }

    /// Whether nothing was delivered (or everything was taken).
    pub fn is_empty(&self) -> bool {
        self.records().is_empty()
    }

    /// Takes the records delivered so far, in delivery order.
    pub fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.records())
    }
}

impl<T> Clone for CollectingDestination<T> {
    fn clone(&self) -> Self {
        Self {
            records: self.records.clone(),
        }
    }
}

impl<T> Default for CollectingDestination<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Send + 'static> AckDestination<T> for CollectingDestination<T> {
    fn send(&self, record: T) -> BoxFuture<'static, Result<(), DeliveryError>> {
        self.records().push(record);
        Box::pin(async { Ok(()) })
    }
}
