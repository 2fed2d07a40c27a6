//! Collecting a stream into memory, for tests and small jobs.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::operator::RuntimeContext;
use crate::sink::{Sink, SinkError, SinkWriter};

/// The records a [`collect_vec`](crate::datastream::DataStream::collect_vec) sink
/// gathered. Each parallel instance appends its records in order when it finishes.
pub struct CollectedRecords<T> {
    records: Arc<Mutex<Vec<T>>>,
}

impl<T> Default for CollectedRecords<T> {
    fn default() -> Self {
        Self {
            records: Arc::default(),
        }
    }
}

impl<T> Clone for CollectedRecords<T> {
    fn clone(&self) -> Self {
        Self {
            records: self.records.clone(),
        }
    }
}

impl<T> CollectedRecords<T> {
    fn lock(&self) -> MutexGuard<'_, Vec<T>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the records gathered so far.
    pub fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.lock())
    }

    /// Takes the records, sorted: handy because parallel instances interleave.
    pub fn take_sorted(&self) -> Vec<T>
    where
        T: Ord,
    {
        let mut v = self.take();
        v.sort();
        v
    }

    /// How many records were gathered.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing was gathered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub(crate) struct CollectSink<T> {
    records: CollectedRecords<T>,
}

impl<T> CollectSink<T> {
    pub(crate) fn new(records: CollectedRecords<T>) -> Self {
        Self { records }
    }
}

impl<T: Send + 'static> Sink<T> for CollectSink<T> {
    fn create_writer(&self, _ctx: &RuntimeContext) -> Box<dyn SinkWriter<T>> {
        Box::new(CollectWriter {
            local: Vec::new(),
            records: self.records.clone(),
        })
    }
}

struct CollectWriter<T> {
    local: Vec<T>,
    records: CollectedRecords<T>,
}

impl<T: Send> SinkWriter<T> for CollectWriter<T> {
    fn write(&mut self, record: T) -> Result<(), SinkError> {
        self.local.push(record);
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.records.lock().append(&mut self.local);
        Ok(())
    }
}
