//! [`StampedSource`]: a source whose records carry the timestamps it assigns.

use std::sync::Arc;

use crate::checkpoint::StateError;
use crate::functions::Collector;
use crate::operator::RuntimeContext;
use crate::source::{Boundedness, Source, SourceOutput, SourcePoll, SourceReader};
use crate::timestamped::Timestamped;
use crate::watermark::TimestampFn;

/// A [`Source`] with [`timestamps`](Source::timestamps) (a Kafka source with a
/// watermark strategy) as a source of [`Timestamped`] records: each record is
/// stamped as it is read, in the reader; positions, checkpoints and watermarks
/// are the inner source's.
pub(crate) struct StampedSource<T> {
    inner: Arc<dyn Source<T>>,
    timestamp: TimestampFn<T>,
}

impl<T> StampedSource<T> {
    /// Stamps `inner`'s records with `timestamp`.
    pub(crate) fn new(inner: Arc<dyn Source<T>>, timestamp: TimestampFn<T>) -> Self {
        Self { inner, timestamp }
    }
}

impl<T: Send + 'static> Source<Timestamped<T>> for StampedSource<T> {
    fn boundedness(&self) -> Boundedness {
        self.inner.boundedness()
    }

    fn is_parallel(&self) -> bool {
        self.inner.is_parallel()
    }

    fn can_restore_rescaled(&self) -> bool {
        self.inner.can_restore_rescaled()
    }

    fn validate(&self) -> Result<(), String> {
        self.inner.validate()
    }

    fn create_reader(&self, ctx: &RuntimeContext) -> Box<dyn SourceReader<Timestamped<T>>> {
        Box::new(StampedReader {
            inner: self.inner.create_reader(ctx),
            timestamp: self.timestamp.clone(),
            scratch: SourceOutput::new(),
        })
    }
}

struct StampedReader<T> {
    inner: Box<dyn SourceReader<T>>,
    timestamp: TimestampFn<T>,
    /// What the inner reader emits in one poll, before it is stamped.
    scratch: SourceOutput<T>,
}

impl<T: Send> SourceReader<Timestamped<T>> for StampedReader<T> {
    fn poll_next(&mut self, out: &mut SourceOutput<Timestamped<T>>) -> SourcePoll {
        let poll = self.inner.poll_next(&mut self.scratch);
        for value in self.scratch.batch.drain(..) {
            let timestamp = (self.timestamp)(&value);
            out.collect(Timestamped { timestamp, value });
        }
        if let Some(status) = self.scratch.take_watermark_status() {
            out.emit_watermark_status(status);
        }
        if let Some(watermark) = self.scratch.take_watermark() {
            out.emit_watermark(watermark);
        }
        poll
    }

    fn snapshot_position(&mut self) -> Result<Option<Vec<u8>>, StateError> {
        self.inner.snapshot_position()
    }

    fn snapshot_position_for_checkpoint(
        &mut self,
        checkpoint_id: u64,
    ) -> Result<Option<Vec<u8>>, StateError> {
        self.inner.snapshot_position_for_checkpoint(checkpoint_id)
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) {
        self.inner.notify_checkpoint_complete(checkpoint_id);
    }

    fn restore_position(&mut self, position: &[u8]) -> Result<(), StateError> {
        self.inner.restore_position(position)
    }

    fn restore_rescaled(&mut self, positions: &[&[u8]]) -> Result<(), StateError> {
        self.inner.restore_rescaled(positions)
    }
}
