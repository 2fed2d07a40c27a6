//! [`ModeSwitch`]: one of two operators, chosen when the instance is created (the
//! streaming or the batch form of a keyed aggregation).

use crate::checkpoint::{DeferredState, RestoredState, StateError};
use crate::functions::Collector;
use crate::operator::{Emitter, Operator, StateScope};
use crate::operators::PerRecordStamps;
use crate::timestamped::Timestamped;
use crate::watermark::{Watermark, WatermarkStatus};

/// Runs `Streaming` or `Batch`, delegating every call. The choice is checked once
/// per batch of records, so the operator inside runs at its own speed.
pub enum ModeSwitch<S, B> {
    /// The streaming form.
    Streaming(S),
    /// The batch form.
    Batch(B),
}

macro_rules! delegate {
    ($self:ident, $op:ident => $call:expr) => {
        match $self {
            ModeSwitch::Streaming($op) => $call,
            ModeSwitch::Batch($op) => $call,
        }
    };
}

impl<I, O, S, B> Operator<I, O> for ModeSwitch<S, B>
where
    S: Operator<I, O>,
    B: Operator<I, O>,
{
    #[inline]
    fn process<C: Collector<O> + ?Sized>(&mut self, record: I, out: &mut C) {
        delegate!(self, op => op.process(record, out))
    }

    #[inline]
    fn process_timestamped<C: Collector<O> + ?Sized>(
        &mut self,
        record: I,
        timestamp: i64,
        out: &mut C,
    ) {
        delegate!(self, op => op.process_timestamped(record, timestamp, out))
    }

    #[inline]
    fn process_batch(&mut self, batch: &mut Vec<I>, out: &mut Emitter<'_, O>) {
        delegate!(self, op => op.process_batch(batch, out))
    }

    #[inline]
    fn process_timestamped_batch<C: Collector<Timestamped<O>> + ?Sized>(
        &mut self,
        batch: &mut Vec<Timestamped<I>>,
        out: &mut PerRecordStamps<'_, C>,
    ) {
        delegate!(self, op => op.process_timestamped_batch(batch, out))
    }

    fn poll_pending(&mut self, out: &mut Emitter<'_, O>) -> bool {
        delegate!(self, op => op.poll_pending(out))
    }

    fn end_input<C: Collector<O> + ?Sized>(&mut self, out: &mut C) {
        delegate!(self, op => op.end_input(out))
    }

    fn process_watermark<C: Collector<O> + ?Sized>(&mut self, watermark: Watermark, out: &mut C) {
        delegate!(self, op => op.process_watermark(watermark, out))
    }

    fn process_watermark_status<C: Collector<O> + ?Sized>(
        &mut self,
        status: WatermarkStatus,
        out: &mut C,
    ) {
        delegate!(self, op => op.process_watermark_status(status, out))
    }

    fn prepare_snapshot_pre_barrier<C: Collector<O> + ?Sized>(
        &mut self,
        checkpoint_id: u64,
        out: &mut C,
    ) {
        delegate!(self, op => op.prepare_snapshot_pre_barrier(checkpoint_id, out))
    }

    fn snapshot_state(
        &mut self,
        scope: StateScope,
        checkpoint_id: u64,
    ) -> Result<Option<Vec<u8>>, StateError> {
        delegate!(self, op => op.snapshot_state(scope, checkpoint_id))
    }

    fn snapshot_state_deferred(
        &mut self,
        scope: StateScope,
        checkpoint_id: u64,
    ) -> Result<Option<DeferredState>, StateError> {
        delegate!(self, op => op.snapshot_state_deferred(scope, checkpoint_id))
    }

    fn restore_state(
        &mut self,
        scope: StateScope,
        restored: &RestoredState,
    ) -> Result<(), StateError> {
        delegate!(self, op => op.restore_state(scope, restored))
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) {
        delegate!(self, op => op.notify_checkpoint_complete(checkpoint_id))
    }

    fn stop_without_drain(&mut self) {
        delegate!(self, op => op.stop_without_drain())
    }
}
