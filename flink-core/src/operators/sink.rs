use crate::checkpoint::{RestoredState, StateError};
use crate::failure::fail_operator;
use crate::functions::Collector;
use crate::operator::{Emitter, Operator, StateScope};
use crate::sink::SinkWriter;

/// Hands records to a [`SinkWriter`]; a write error fails the job naming this sink.
pub struct SinkOperator<T> {
    writer: Box<dyn SinkWriter<T>>,
    name: String,
}

impl<T> SinkOperator<T> {
    /// Wraps the writer of sink `name`.
    pub fn new(writer: Box<dyn SinkWriter<T>>, name: String) -> Self {
        Self { writer, name }
    }
}

impl<T: 'static> Operator<T, ()> for SinkOperator<T> {
    #[inline]
    fn process<C: Collector<()> + ?Sized>(&mut self, record: T, _out: &mut C) {
        if let Err(e) = self.writer.write(record) {
            fail_operator(&self.name, format!("sink write failed: {e}"));
        }
    }

    fn process_batch(&mut self, batch: &mut Vec<T>, _out: &mut Emitter<'_, ()>) {
        if let Err(e) = self.writer.write_batch(batch) {
            fail_operator(&self.name, format!("sink write failed: {e}"));
        }
    }

    fn end_input<C: Collector<()> + ?Sized>(&mut self, _out: &mut C) {
        if let Err(e) = self.writer.finish() {
            fail_operator(&self.name, format!("sink finish failed: {e}"));
        }
    }

    fn stop_without_drain(&mut self) {
        if let Err(e) = self.writer.stop_without_drain() {
            fail_operator(&self.name, format!("sink stop failed: {e}"));
        }
    }

    fn snapshot_state(
        &mut self,
        _scope: StateScope,
        checkpoint_id: u64,
    ) -> Result<Option<Vec<u8>>, StateError> {
        self.writer
            .snapshot_state(checkpoint_id)
            .map_err(|e| StateError::Encode(e.to_string()))
    }

    fn restore_state(
        &mut self,
        scope: StateScope,
        restored: &RestoredState,
    ) -> Result<(), StateError> {
        // At another parallelism than saved, saved subtask j's transactions go to
        // instance j % p (each is recovered by exactly one instance).
        let saved = restored.by_subtask.len();
        let p = scope.parallelism.max(1);
        let mine = restored
            .by_subtask
            .iter()
            .enumerate()
            .filter(|(j, _)| {
                if saved == p {
                    *j == scope.subtask_index
                } else {
                    j % p == scope.subtask_index
                }
            })
            .filter_map(|(_, s)| s.as_deref());
        for state in mine {
            self.writer
                .restore_state(state)
                .map_err(|e| StateError::Corrupt(e.to_string()))?;
        }
        Ok(())
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) {
        if let Err(e) = self.writer.notify_checkpoint_complete(checkpoint_id) {
            fail_operator(&self.name, format!("sink commit failed: {e}"));
        }
    }
}
