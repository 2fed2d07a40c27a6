//! The sink vocabulary: where a stream's records finally go.

use std::error::Error;

use crate::operator::RuntimeContext;

/// An error a sink reports; it fails the job, naming the sink operator.
pub type SinkError = Box<dyn Error + Send + Sync>;

/// A destination for records. One writer is created per parallel sink instance.
pub trait Sink<T>: Send + Sync + 'static {
    /// Creates the writer of one parallel instance.
    fn create_writer(&self, ctx: &RuntimeContext) -> Box<dyn SinkWriter<T>>;
}

/// Writes the records of one parallel sink instance.
pub trait SinkWriter<T>: Send {
    /// Writes one record.
    fn write(&mut self, record: T) -> Result<(), SinkError>;
    /// Writes a batch of records in order, leaving `batch` empty. Override it when a
    /// batch can be written more cheaply than record by record.
    fn write_batch(&mut self, batch: &mut Vec<T>) -> Result<(), SinkError> {
        for record in batch.drain(..) {
            self.write(record)?;
        }
        Ok(())
    }

    /// Called once after the last record: flush and commit what is buffered.
    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    /// Called instead of [`finish`](Self::finish) when the job stops without drain
    /// right after a savepoint's barrier: every record written belongs to the
    /// savepoint, and none follows. The default calls `finish`, so a
    /// two-phase-commit writer pre-commits what it holds (nothing past the
    /// savepoint) and commits it when the savepoint completes.
    ///
    /// # Errors
    /// Fails the job.
    fn stop_without_drain(&mut self) -> Result<(), SinkError> {
        self.finish()
    }

    /// Snapshots what this writer must remember across a restart (a two-phase-commit
    /// writer: its pre-committed transactions); `None` (the default) for nothing.
    /// Called on the checkpoint barrier, after every record before it was written.
    ///
    /// # Errors
    /// Fails the job (and so restarts it).
    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<Option<Vec<u8>>, SinkError> {
        Ok(None)
    }

    /// Restores what [`snapshot_state`](Self::snapshot_state) returned in the
    /// checkpoint the job restarts from, before the first record.
    ///
    /// # Errors
    /// Fails the job.
    fn restore_state(&mut self, _state: &[u8]) -> Result<(), SinkError> {
        Ok(())
    }

    /// Checkpoint `checkpoint_id` completed ([`FINAL_SNAPSHOT_ID`] once the input
    /// ended and the checkpoint holding the final snapshot completed).
    ///
    /// [`FINAL_SNAPSHOT_ID`]: crate::checkpoint::FINAL_SNAPSHOT_ID
    ///
    /// # Errors
    /// Fails the job.
    fn notify_checkpoint_complete(&mut self, _checkpoint_id: u64) -> Result<(), SinkError> {
        Ok(())
    }
}
