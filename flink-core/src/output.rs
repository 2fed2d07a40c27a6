//! [`Output`]: what an operator emits into. Inside a chain it is the next operator
//! (a plain call); at a chain's end it serializes into the network.

use std::any::Any;

use crate::checkpoint::{ChainSnapshot, CheckpointBarrier};
use crate::functions::Collector;

/// The runtime side of a [`Collector`]: records, plus the end-of-input signal that
/// travels down a chain and out over the network.
pub trait Output<T>: Collector<T> + Send {
    /// Takes every record of `batch`, in order, leaving it empty (its allocation is
    /// reused by the caller). Chains pass records in batches so that each hop costs
    /// one call per batch rather than per record.
    fn collect_batch(&mut self, batch: &mut Vec<T>) {
        for record in batch.drain(..) {
            self.collect(record);
        }
    }

    /// Lets operators emit results that became ready without new input; returns
    /// whether any operator downstream still has work pending.
    fn poll_pending(&mut self) -> bool {
        false
    }

    /// No more records will come; flush and propagate.
    fn end_input(&mut self);

    /// The job stops without drain right after a savepoint's barrier (see
    /// [`StopMode::NoDrain`](crate::checkpoint::StopMode::NoDrain)): no end-of-input
    /// work (no final results, no watermark), only what ends the task cleanly (a
    /// sink's [`SinkWriter::stop_without_drain`](crate::sink::SinkWriter::stop_without_drain),
    /// the end of partition on network channels). The default (an output without
    /// operators or channels) does nothing.
    fn stop_without_drain(&mut self) {}

    /// Ship partially filled network buffers now (the buffer timeout fired).
    fn flush(&mut self);

    /// Adds the state of every operator from here to the chain's ends to `into`.
    /// Called between records; the default (an output without operators) adds nothing.
    fn snapshot_state(&mut self, _checkpoint_id: u64, _into: &mut ChainSnapshot) {}

    /// Sends `barrier` on every network channel at the chain's ends, after the
    /// records emitted so far; the default (no network output) does nothing.
    fn emit_barrier(&mut self, _barrier: CheckpointBarrier) {}

    /// Tells every operator from here on that checkpoint `checkpoint_id` completed.
    fn notify_checkpoint_complete(&mut self, _checkpoint_id: u64) {}
}

/// A type-erased `Box<dyn Output<T>>`, used where the graph wires nodes whose record
/// types are only known to the nodes themselves. Downcast once at task set-up.
pub struct AnyOutput(Box<dyn Any + Send>);

impl AnyOutput {
    /// Erases a typed output.
    pub fn new<T: 'static>(output: Box<dyn Output<T>>) -> Self {
        Self(Box::new(output))
    }

    /// Recovers the typed output.
    ///
    /// # Panics
    /// If `T` is not the type it was created with: the graph wiring is broken, a bug
    /// in flink-rs, never a user error.
    pub fn into_typed<T: 'static>(self) -> Box<dyn Output<T>> {
        *self.0.downcast::<Box<dyn Output<T>>>().unwrap_or_else(|_| {
            panic!(
                "output is not of record type {}",
                std::any::type_name::<T>()
            )
        })
    }
}

/// Sends every record to several outputs (a stream consumed by more than one operator).
pub struct FanOut<T> {
    outputs: Vec<Box<dyn Output<T>>>,
}

impl<T> FanOut<T> {
    /// A fan-out over `outputs`; records are cloned for all but the last.
    pub fn new(outputs: Vec<Box<dyn Output<T>>>) -> Self {
        Self { outputs }
    }
}

impl<T: Clone> Collector<T> for FanOut<T> {
    fn collect(&mut self, record: T) {
        if let Some((last, rest)) = self.outputs.split_last_mut() {
            for out in rest {
                out.collect(record.clone());
            }
            last.collect(record);
        }
    }

    fn emit_watermark(&mut self, watermark: crate::watermark::Watermark) {
        for out in &mut self.outputs {
            out.emit_watermark(watermark);
        }
    }

    fn emit_watermark_status(&mut self, status: crate::watermark::WatermarkStatus) {
        for out in &mut self.outputs {
            out.emit_watermark_status(status);
        }
    }
}

impl<T: Clone + Send> Output<T> for FanOut<T> {
    fn collect_batch(&mut self, batch: &mut Vec<T>) {
        if let Some((last, rest)) = self.outputs.split_last_mut() {
            for out in rest {
                out.collect_batch(&mut batch.clone());
            }
            last.collect_batch(batch);
        }
        batch.clear();
    }

    fn end_input(&mut self) {
        for out in &mut self.outputs {
            out.end_input();
        }
    }

    fn stop_without_drain(&mut self) {
        for out in &mut self.outputs {
            out.stop_without_drain();
        }
    }

    fn flush(&mut self) {
        for out in &mut self.outputs {
            out.flush();
        }
    }

    fn poll_pending(&mut self) -> bool {
        let mut pending = false;
        for out in &mut self.outputs {
            pending |= out.poll_pending();
        }
        pending
    }

    fn snapshot_state(&mut self, checkpoint_id: u64, into: &mut ChainSnapshot) {
        for out in &mut self.outputs {
            out.snapshot_state(checkpoint_id, into);
        }
    }

    fn emit_barrier(&mut self, barrier: CheckpointBarrier) {
        for out in &mut self.outputs {
            out.emit_barrier(barrier);
        }
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) {
        for out in &mut self.outputs {
            out.notify_checkpoint_complete(checkpoint_id);
        }
    }
}
