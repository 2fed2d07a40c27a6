//! [`WindowAssigner`]: which windows a record belongs to.

use super::{DefaultTrigger, TimeWindow, WindowError};

/// Puts a record, by its time, into windows (Flink's `WindowAssigner`).
pub trait WindowAssigner: Clone + Send + Sync + 'static {
    /// Appends the windows that hold time `timestamp` (ms) to `into`.
    fn assign_windows(&self, timestamp: i64, into: &mut Vec<TimeWindow>);

    /// Whether records are placed by their event timestamp (else: by the job's clock).
    fn is_event_time(&self) -> bool;

    /// Checks the definition; the job fails to build with this error.
    ///
    /// # Errors
    /// A size or slide of zero, a slide above the size, an offset out of range.
    fn validate(&self) -> Result<(), WindowError>;

    /// The times `[from, to)` around `timestamp` that all get the same windows as
    /// it, if the assigner can say (tumbling and sliding windows can): the window
    /// operator then reuses one assignment for the records of that span instead of
    /// assigning each (a division per record). `None` (the default) assigns every
    /// record.
    fn same_windows_span(&self, _timestamp: i64) -> Option<(i64, i64)> {
        None
    }

    /// Whether overlapping windows of one key merge into one (session windows,
    /// Flink's `MergingWindowAssigner`).
    fn is_merging(&self) -> bool {
        false
    }

    /// The trigger used unless the windowed stream sets another.
    fn default_trigger(&self) -> DefaultTrigger {
        if self.is_event_time() {
            DefaultTrigger::EventTime
        } else {
            DefaultTrigger::ProcessingTime
        }
    }
}
