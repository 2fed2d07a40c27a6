//! The source vocabulary: where a stream's records come from.

use std::time::Duration;

use crate::checkpoint::StateError;
use crate::functions::Collector;
use crate::operator::RuntimeContext;
use crate::watermark::{TimestampFn, Watermark, WatermarkStatus};

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

    /// Whether its readers take over the positions of readers of a run at another
    /// parallelism ([`SourceReader::restore_rescaled`]). A restore that would need it
    /// of a source that cannot fails the submission naming the source.
    fn can_restore_rescaled(&self) -> bool {
        false
    }

    /// The event timestamp of each record, if the source assigns them (a source
    /// making its own watermarks from a timestamp assigner): the stream it starts
    /// carries them, as after `assign_timestamps_and_watermarks`.
    fn timestamps(&self) -> Option<TimestampFn<T>> {
        None
    }

    /// This source, emitting at most as fast as `strategy` allows.
    fn rate_limited(
        self,
        strategy: crate::sources::RateLimiterStrategy,
    ) -> crate::sources::RateLimitedSource<Self>
    where
        Self: Sized,
    {
        crate::sources::RateLimitedSource::new(self, strategy)
    }

    /// Checks what can be checked before the job runs (an input file exists and is
    /// readable, ...). Called when the job is built; an `Err` fails the build with
    /// [`GraphError::InvalidSource`](crate::error::GraphError::InvalidSource) naming
    /// the source, its reason naming the path or setting. What fails later is reported
    /// by the reader through [`fail_operator`](crate::failure::fail_operator).
    ///
    /// # Errors
    /// Why the source cannot work.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Reads the records of one parallel source instance.
pub trait SourceReader<T>: Send {
    /// Emits a batch of records into `out` and says what comes next. A batch should be
    /// short (about a thousand records) so the task can flush and observe cancellation.
    fn poll_next(&mut self, out: &mut SourceOutput<T>) -> SourcePoll;

    /// This reader's position, for a checkpoint taken between two polls: restoring it
    /// must make the reader emit exactly what it would have emitted after this call.
    /// `None` (the default) means the reader cannot be checkpointed: after a restart
    /// it starts over.
    ///
    /// # Errors
    /// When the position cannot be serialized.
    fn snapshot_position(&mut self) -> Result<Option<Vec<u8>>, StateError> {
        Ok(None)
    }

    /// The position for checkpoint `checkpoint_id`: what the runtime calls when it
    /// takes a checkpoint. By default [`snapshot_position`](Self::snapshot_position);
    /// a reader that acts when a checkpoint completes (a Kafka reader committing its
    /// offsets) remembers here which position belongs to which checkpoint.
    ///
    /// # Errors
    /// When the position cannot be serialized.
    fn snapshot_position_for_checkpoint(
        &mut self,
        _checkpoint_id: u64,
    ) -> Result<Option<Vec<u8>>, StateError> {
        self.snapshot_position()
    }

    /// The position this reader would have had if only the first `emitted` records
    /// of its last [`poll_next`](Self::poll_next) batch had gone out, for a wrapper
    /// that holds part of a batch back when a checkpoint is taken (a rate-limited
    /// source): restoring it must make the reader emit exactly the rest of that batch
    /// and what follows, and nothing it emitted besides records (dead letters) again.
    /// Called between two polls, with `emitted` at most the batch's length; the
    /// reader itself moves on from where it is. `None` (the default) means the reader
    /// cannot say: the wrapper then saves the position before the batch and re-reads
    /// it on restore, which is exact only for a reader whose batches after a
    /// position are always the same.
    ///
    /// # Errors
    /// When the position cannot be serialized, or `emitted` exceeds the batch.
    fn snapshot_position_after(&mut self, _emitted: usize) -> Result<Option<Vec<u8>>, StateError> {
        Ok(None)
    }

    /// As [`snapshot_position_after`](Self::snapshot_position_after), for checkpoint
    /// `checkpoint_id` (see
    /// [`snapshot_position_for_checkpoint`](Self::snapshot_position_for_checkpoint)):
    /// a reader that acts on completion acts with this position.
    ///
    /// # Errors
    /// As [`snapshot_position_after`](Self::snapshot_position_after).
    fn snapshot_position_after_for_checkpoint(
        &mut self,
        _checkpoint_id: u64,
        emitted: usize,
    ) -> Result<Option<Vec<u8>>, StateError> {
        self.snapshot_position_after(emitted)
    }

    /// Checkpoint `checkpoint_id` completed (and every one before it: completions are
    /// cumulative and a notification may be missed). Called between two polls. Flink's
    /// `KafkaSource` commits the offsets of that checkpoint to the consumer group here.
    fn notify_checkpoint_complete(&mut self, _checkpoint_id: u64) {}

    /// Moves a fresh reader to a position [`snapshot_position`](Self::snapshot_position)
    /// returned, before its first poll.
    ///
    /// # Errors
    /// When the bytes are not such a position.
    fn restore_position(&mut self, _position: &[u8]) -> Result<(), StateError> {
        Err(StateError::Corrupt(
            "this source reader cannot restore a position".into(),
        ))
    }

    /// Moves a fresh reader to the positions of one or more readers of a run at
    /// another parallelism (a restore after rescaling): the saved positions are dealt
    /// round-robin to the new readers (saved subtask `j` goes to reader `j % p`, as
    /// Flink redistributes a source's splits), and each must then emit exactly what
    /// the readers it takes over would have emitted together. The default refuses,
    /// so a source whose positions cannot be split or merged fails the restore
    /// naming itself rather than losing or repeating records.
    ///
    /// # Errors
    /// When the reader cannot take over other readers' positions, or the bytes are
    /// not such positions.
    fn restore_rescaled(&mut self, _positions: &[&[u8]]) -> Result<(), StateError> {
        Err(StateError::Corrupt(
            "this source cannot be restored at another parallelism than it was saved with".into(),
        ))
    }
}

/// The saved positions reader `subtask` of `parallelism` takes over when a source
/// saved at another parallelism is restored ([`SourceReader::restore_rescaled`]):
/// saved subtask `j` goes to reader `j % parallelism`, as Flink redistributes a
/// source's splits.
///
/// ```
/// use flink_core::source::dealt_to;
///
/// let saved = ["a", "b", "c"];
/// assert_eq!(dealt_to(&saved, 0, 2).collect::<Vec<_>>(), [&"a", &"c"]);
/// ```
pub fn dealt_to<T>(
    saved: impl IntoIterator<Item = T>,
    subtask: usize,
    parallelism: usize,
) -> impl Iterator<Item = T> {
    saved
        .into_iter()
        .enumerate()
        .filter(move |(j, _)| j % parallelism == subtask)
        .map(|(_, position)| position)
}

/// Collects the records of one [`SourceReader::poll_next`] call; the batch then
/// enters the chain in one hand-off. A concrete type (not a trait object) so that a
/// reader's per-record `collect` compiles to a push.
///
/// A reader that makes its own watermarks (a Kafka source tracking them per
/// partition) emits them here too: the task forwards the newest watermark after the
/// poll's records, an [`Active`](WatermarkStatus::Active) status before them and an
/// [`Idle`](WatermarkStatus::Idle) one after them.
#[derive(Debug)]
pub struct SourceOutput<T> {
    pub(crate) batch: Vec<T>,
    watermark: Option<Watermark>,
    status: Option<WatermarkStatus>,
}

impl<T> SourceOutput<T> {
    /// An empty output.
    pub fn new() -> Self {
        Self {
            batch: Vec::new(),
            watermark: None,
            status: None,
        }
    }

    /// Takes the watermark emitted in this poll, if any (the newest).
    pub fn take_watermark(&mut self) -> Option<Watermark> {
        self.watermark.take()
    }

    /// Takes the watermark status emitted in this poll, if any (the last).
    pub fn take_watermark_status(&mut self) -> Option<WatermarkStatus> {
        self.status.take()
    }

    /// Records collected so far in this poll.
    pub fn len(&self) -> usize {
        self.batch.len()
    }

    /// Whether nothing was collected in this poll.
    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    /// Takes the collected records (for tests of readers).
    pub fn take(&mut self) -> Vec<T> {
        std::mem::take(&mut self.batch)
    }
}

impl<T> Default for SourceOutput<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Collector<T> for SourceOutput<T> {
    #[inline(always)]
    fn collect(&mut self, record: T) {
        self.batch.push(record);
    }

    fn emit_watermark(&mut self, watermark: Watermark) {
        self.watermark = Some(self.watermark.map_or(watermark, |w| w.max(watermark)));
    }

    fn emit_watermark_status(&mut self, status: WatermarkStatus) {
        self.status = Some(status);
    }
}
