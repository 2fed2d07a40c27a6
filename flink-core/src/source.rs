//! The source vocabulary: where a stream's records come from.

use std::time::Duration;

use crate::functions::Collector;
use crate::operator::RuntimeContext;

/// Whether a source ends by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boundedness {
    /// The source reaches an end; the job finishes when all its sources do.
    Bounded,
    /// The source runs until the job is cancelled.
    Unbounded,
}

/// What a [`SourceReader::poll_next`] call achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourcePoll {
    /// Records were emitted and more may follow at once.
    MoreAvailable,
    /// Nothing is available now; poll again after roughly this long.
    Pending(Duration),
    /// The reader has emitted its last record.
    Finished,
}

/// A description of where records come from. One reader is created per parallel
/// source instance; the source splits the work among them.
pub trait Source<T>: Send + Sync + 'static {
    /// Bounded or unbounded.
    fn boundedness(&self) -> Boundedness;

    /// Creates the reader of one parallel instance.
    fn create_reader(&self, ctx: &RuntimeContext) -> Box<dyn SourceReader<T>>;

    /// Whether the source can only run with parallelism one (such as an iterator).
    fn is_parallel(&self) -> bool {
        true
    }
}

/// Reads the records of one parallel source instance.
pub trait SourceReader<T>: Send {
    /// Emits a batch of records into `out` and says what comes next. A batch should be
    /// short (about a thousand records) so the task can flush and observe cancellation.
    fn poll_next(&mut self, out: &mut dyn Collector<T>) -> SourcePoll;
}
