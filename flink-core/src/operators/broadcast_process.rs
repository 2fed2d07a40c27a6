//! [`BroadcastProcessOperator`]: runs a [`BroadcastProcessFunction`] on the tagged
//! union of a stream and a broadcast stream.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::broadcast_process_function::{BroadcastProcessFunction, ReadOnlyBroadcastContext};
use crate::checkpoint::blob::Blob;
use crate::checkpoint::{RestoredState, StateError, decode_state, encode_state};
use crate::clock::Clock;
use crate::connected_streams::CoInput;
use crate::functions::Collector;
use crate::keyed_broadcast_process_function::BroadcastContext;
use crate::operator::{ForwardTo, Operator, RuntimeContext, StateScope};
use crate::process_context::{ProcessContext, SideOutputCache};
use crate::state::BroadcastStates;
use crate::timers::processing_time_of;
use crate::watermark::{NO_TIMESTAMP, TimestampFn, Watermark};

/// Runs a [`BroadcastProcessFunction`]. Checkpoints keep the instance's copy of the
/// broadcast state; a restore at another parallelism gives every instance a copy.
pub struct BroadcastProcessOperator<I, B, O, F> {
    f: F,
    broadcast: BroadcastStates,
    side_outputs: SideOutputCache,
    watermark: Watermark,
    clock: Arc<dyn Clock>,
    timestamps: Option<TimestampFn<I>>,
    _types: PhantomData<fn(I, B) -> O>,
}

impl<I, B, O, F> BroadcastProcessOperator<I, B, O, F> {
    /// Runs `f` with the broadcast states named `declared` (event times of the
    /// non-broadcast input from `timestamps`), in the instance `ctx`.
    pub fn new(
        f: F,
        declared: Arc<[Arc<str>]>,
        timestamps: Option<TimestampFn<I>>,
        ctx: &RuntimeContext,
    ) -> Self {
        Self {
            f,
            broadcast: BroadcastStates::new(declared),
            side_outputs: SideOutputCache::new(ctx.side_outputs.clone()),
            watermark: Watermark::MIN,
            clock: ctx.services.clock.clone(),
            timestamps,
            _types: PhantomData,
        }
    }
}

impl<I, B, O, F> Operator<CoInput<I, B>, O> for BroadcastProcessOperator<I, B, O, F>
where
    I: 'static,
    B: 'static,
    O: 'static,
    F: BroadcastProcessFunction<I, B, O>,
{
    fn process<C: Collector<O> + ?Sized>(&mut self, record: CoInput<I, B>, out: &mut C) {
        self.process_timestamped(record, NO_TIMESTAMP, out);
    }

    fn process_timestamped<C: Collector<O> + ?Sized>(
        &mut self,
        record: CoInput<I, B>,
        timestamp: i64,
        out: &mut C,
    ) {
        let now = processing_time_of(self.clock.as_ref());
        let mut forward = ForwardTo(out);
        let out = ProcessContext::new(&mut forward, &mut self.side_outputs, self.watermark);
        match record {
            CoInput::First(record) => {
                let timestamp = match &self.timestamps {
                    Some(t) => Some(t(&record)),
                    None => (timestamp != NO_TIMESTAMP).then_some(timestamp),
                };
                let mut ctx =
                    ReadOnlyBroadcastContext::new(out, &mut self.broadcast, timestamp, now);
                self.f.process_element(record, &mut ctx);
            }
            CoInput::Second(record) => {
                let mut ctx = BroadcastContext::new(out, &mut self.broadcast, None, now);
                self.f.process_broadcast_element(record, &mut ctx);
            }
        }
    }

    fn process_watermark<C: Collector<O> + ?Sized>(&mut self, watermark: Watermark, out: &mut C) {
        self.watermark = watermark;
        out.emit_watermark(watermark);
    }

    fn snapshot_state(&mut self, _: StateScope, _: u64) -> Result<Option<Vec<u8>>, StateError> {
        let maps: Vec<(String, Blob)> = self
            .broadcast
            .snapshot()?
            .into_iter()
            .map(|(name, bytes)| (name, Blob(bytes)))
            .collect();
        encode_state(&maps).map(Some)
    }

    fn restore_state(
        &mut self,
        scope: StateScope,
        restored: &RestoredState,
    ) -> Result<(), StateError> {
        let n = restored.by_subtask.len();
        // Every instance wrote the same state: take old instance i's copy (modulo the
        // old parallelism), as Flink does.
        let copy = (0..n).find_map(|i| restored.own((scope.subtask_index + i) % n));
        if let Some(bytes) = copy {
            let maps: Vec<(String, Blob)> = decode_state(bytes)?;
            self.broadcast.restore(
                maps.into_iter()
                    .map(|(name, blob)| (name, blob.0))
                    .collect(),
            );
        }
        Ok(())
    }
}
