//! [`KeyedBroadcastProcessOperator`]: runs a [`KeyedBroadcastProcessFunction`] on the
//! tagged union of a keyed input and a broadcast input.

use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::checkpoint::blob::Blob;
use crate::checkpoint::{DeferredState, RestoredState, StateError, decode_state, encode_state};
use crate::connected_streams::CoInput;
use crate::functions::{Collector, KeySelector};
use crate::keyed_broadcast_process_function::{
    BroadcastContext, KeyedBroadcastContext, KeyedBroadcastProcessFunction,
};
use crate::keyed_process_function::{KeyedContext, KeyedProcessFunction};
use crate::operator::{Emitter, Operator, RuntimeContext, StateScope};
use crate::operators::KeyedProcessFunctionOperator;
use crate::state::BroadcastStates;
use crate::watermark::{NO_TIMESTAMP, TimestampFn, Watermark};

/// A [`KeyedBroadcastProcessFunction`] as the keyed process function of its keyed
/// input, holding the instance's broadcast state.
pub(crate) struct BroadcastAdapter<F, B> {
    f: F,
    declared: Arc<[Arc<str>]>,
    /// Behind a mutex only so that the adapter is `Sync`, as every keyed process
    /// function is; the operator owns it and reaches it with `get_mut`, never
    /// locking.
    broadcast: Mutex<BroadcastStates>,
    _input: PhantomData<fn(B)>,
}

impl<F, B> BroadcastAdapter<F, B> {
    fn new(f: F, declared: Arc<[Arc<str>]>) -> Self {
        Self {
            f,
            broadcast: Mutex::new(BroadcastStates::new(declared.clone())),
            declared,
            _input: PhantomData,
        }
    }

    fn broadcast(&mut self) -> &mut BroadcastStates {
        self.broadcast
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A clone starts with empty broadcast state (clones are made only to create
/// instances, before any record).
impl<F: Clone, B> Clone for BroadcastAdapter<F, B> {
    fn clone(&self) -> Self {
        Self::new(self.f.clone(), self.declared.clone())
    }
}

impl<K, I, B, O, F> KeyedProcessFunction<K, I, O> for BroadcastAdapter<F, B>
where
    B: 'static,
    F: KeyedBroadcastProcessFunction<K, I, B, O>,
{
    type State = F::State;

    fn process_element(&mut self, record: I, ctx: &mut KeyedContext<'_, K, F::State, O>) {
        let broadcast = self
            .broadcast
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        self.f
            .process_element(record, &mut KeyedBroadcastContext::new(ctx, broadcast));
    }

    fn on_timer(&mut self, timestamp: i64, ctx: &mut KeyedContext<'_, K, F::State, O>) {
        let broadcast = self
            .broadcast
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        self.f
            .on_timer(timestamp, &mut KeyedBroadcastContext::new(ctx, broadcast));
    }
}

/// One instance's state in a checkpoint: its keyed state (by key group) and its
/// copy of the broadcast state.
#[derive(Serialize, Deserialize)]
struct BroadcastSnapshot {
    keyed: Option<Blob>,
    broadcast: Vec<(String, Blob)>,
}

/// Runs a [`KeyedBroadcastProcessFunction`]: keyed records with their key's state
/// and timers (as a keyed process function) and a read-only view of the broadcast
/// state; broadcast records with the broadcast state to write. Checkpoints keep the
/// keyed state by key group and each instance's copy of the broadcast state; a
/// restore at another parallelism gives every instance a copy.
pub struct KeyedBroadcastProcessOperator<K, I, B, O, KS, F>
where
    F: KeyedBroadcastProcessFunction<K, I, B, O>,
    B: 'static,
{
    inner: KeyedProcessFunctionOperator<K, I, O, KS, BroadcastAdapter<F, B>>,
}

impl<K, I, B, O, KS, F> KeyedBroadcastProcessOperator<K, I, B, O, KS, F>
where
    F: KeyedBroadcastProcessFunction<K, I, B, O>,
    B: 'static,
{
    /// Runs `f` for keyed records grouped by `key` (event times from `timestamps`)
    /// with the broadcast states named `declared`, in the instance `ctx`.
    pub fn new(
        key: KS,
        f: F,
        declared: Arc<[Arc<str>]>,
        timestamps: Option<TimestampFn<I>>,
        ctx: &RuntimeContext,
    ) -> Self {
        Self {
            inner: KeyedProcessFunctionOperator::new(
                key,
                BroadcastAdapter::new(f, declared),
                timestamps,
                ctx,
            ),
        }
    }
}

impl<K, I, B, O, KS, F> Operator<CoInput<I, B>, O>
    for KeyedBroadcastProcessOperator<K, I, B, O, KS, F>
where
    K: Hash + Eq + Clone + Send + Serialize + DeserializeOwned + 'static,
    I: 'static,
    B: 'static,
    O: 'static,
    KS: KeySelector<I, K>,
    F: KeyedBroadcastProcessFunction<K, I, B, O>,
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
        match record {
            CoInput::First(keyed) if timestamp == NO_TIMESTAMP => self.inner.process(keyed, out),
            CoInput::First(keyed) => self.inner.process_timestamped(keyed, timestamp, out),
            CoInput::Second(broadcast) => {
                self.inner.call_unkeyed(out, |adapter, out, keyed, now| {
                    let states = adapter
                        .broadcast
                        .get_mut()
                        .unwrap_or_else(PoisonError::into_inner);
                    adapter.f.process_broadcast_element(
                        broadcast,
                        &mut BroadcastContext::new(out, states, Some(keyed), now),
                    );
                })
            }
        }
    }

    fn process_batch(&mut self, batch: &mut Vec<CoInput<I, B>>, out: &mut Emitter<'_, O>) {
        for record in batch.drain(..) {
            self.process(record, out);
        }
        // Fires the processing-time timers the clock reached, as after any batch.
        self.inner.poll_pending(out);
    }

    fn poll_pending(&mut self, out: &mut Emitter<'_, O>) -> bool {
        self.inner.poll_pending(out)
    }

    fn process_watermark<C: Collector<O> + ?Sized>(&mut self, watermark: Watermark, out: &mut C) {
        self.inner.process_watermark(watermark, out);
    }

    fn snapshot_state(
        &mut self,
        scope: StateScope,
        id: u64,
    ) -> Result<Option<Vec<u8>>, StateError> {
        crate::checkpoint::encode_now(self.snapshot_state_deferred(scope, id))
    }

    /// The keyed part as the inner operator's deferred snapshot; the broadcast
    /// state (the same small copy in every instance) is encoded at once.
    fn snapshot_state_deferred(
        &mut self,
        scope: StateScope,
        id: u64,
    ) -> Result<Option<DeferredState>, StateError> {
        let keyed = self.inner.snapshot_state_deferred(scope, id)?;
        let broadcast = self.inner.function_mut().broadcast().snapshot()?;
        let broadcast: Vec<_> = broadcast.into_iter().map(|(n, b)| (n, Blob(b))).collect();
        Ok(Some(DeferredState::later(move || {
            let keyed = keyed.map(DeferredState::into_bytes).transpose()?.map(Blob);
            encode_state(&BroadcastSnapshot { keyed, broadcast })
        })))
    }

    fn restore_state(
        &mut self,
        scope: StateScope,
        restored: &RestoredState,
    ) -> Result<(), StateError> {
        let snapshots = restored
            .by_subtask
            .iter()
            .map(|s| {
                s.as_deref()
                    .map(decode_state::<BroadcastSnapshot>)
                    .transpose()
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Every instance wrote the same broadcast state: instance i takes the copy
        // of old instance i (modulo the old parallelism), as Flink does.
        let copy = (0..snapshots.len())
            .map(|i| (scope.subtask_index + i) % snapshots.len())
            .find_map(|i| snapshots[i].as_ref());
        if let Some(copy) = copy {
            self.inner.function_mut().broadcast().restore(
                copy.broadcast
                    .iter()
                    .map(|(n, b)| (n.clone(), b.0.clone()))
                    .collect(),
            );
        }
        let keyed = RestoredState {
            checkpoint_id: restored.checkpoint_id,
            by_subtask: snapshots
                .into_iter()
                .map(|s| s.and_then(|s| s.keyed).map(|b| Arc::from(b.0)))
                .collect::<Vec<_>>()
                .into(),
        };
        self.inner.restore_state(scope, &keyed)
    }
}
