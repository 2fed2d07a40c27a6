//! [`Evictor`]: removes records from a window before or after its function runs.

use serde::{Deserialize, Serialize};

use super::{TimeWindow, WindowError};

/// The records of a window with their timestamps (event time, or the processing
/// time they arrived at for processing-time windows), oldest first, as an evictor
/// sees them (Flink's `Iterable<TimestampedValue>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimestampedElements<T> {
    timestamps: Vec<i64>,
    values: Vec<T>,
}

impl<T> Default for TimestampedElements<T> {
    fn default() -> Self {
        Self {
            timestamps: Vec::new(),
            values: Vec::new(),
        }
    }
}

impl<T> TimestampedElements<T> {
    /// Adds `value` at `timestamp`.
    pub fn push(&mut self, timestamp: i64, value: T) {
        self.timestamps.push(timestamp);
        self.values.push(value);
    }

    /// How many records.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The records' timestamps, in the records' order.
    pub fn timestamps(&self) -> &[i64] {
        &self.timestamps
    }

    /// The records.
    pub fn values(&self) -> &[T] {
        &self.values
    }

    /// Removes the `n` oldest records.
    pub fn remove_first(&mut self, n: usize) {
        let n = n.min(self.len());
        self.timestamps.drain(..n);
        self.values.drain(..n);
    }

    /// Keeps the records for which `keep(timestamp, value)` holds.
    pub fn retain(&mut self, mut keep: impl FnMut(i64, &T) -> bool) {
        let kept: Vec<bool> = self
            .timestamps
            .iter()
            .zip(&self.values)
            .map(|(ts, v)| keep(*ts, v))
            .collect();
        let mut flags = kept.iter();
        self.values.retain(|_| *flags.next().unwrap_or(&true));
        let mut flags = kept.iter();
        self.timestamps.retain(|_| *flags.next().unwrap_or(&true));
    }

    /// Appends `other`'s records (merged session windows).
    pub fn append(&mut self, mut other: Self) {
        self.timestamps.append(&mut other.timestamps);
        self.values.append(&mut other.values);
    }
}

/// Removes records of a window when it fires, before and/or after the window
/// function sees them (Flink's `Evictor`); removed records are gone from the
/// window for good. Evicting needs the records, so it comes with `process` on an
/// [`EvictingWindowedStream`](super::EvictingWindowedStream). Built in:
/// [`CountEvictor`](super::CountEvictor), [`TimeEvictor`](super::TimeEvictor).
pub trait Evictor<T>: Clone + Send + Sync + 'static {
    /// Before the window function runs.
    fn evict_before(&self, elements: &mut TimestampedElements<T>, window: &TimeWindow);

    /// After the window function ran.
    fn evict_after(&self, elements: &mut TimestampedElements<T>, window: &TimeWindow);

    /// Checks the definition; the job fails to build with this error.
    ///
    /// # Errors
    /// A definition that cannot work, such as a count of zero.
    fn validate(&self) -> Result<(), WindowError> {
        Ok(())
    }
}
