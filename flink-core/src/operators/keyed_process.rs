use std::hash::Hash;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::checkpoint::keyed::{KeyGroupWriter, restore_keyed};
use crate::checkpoint::{DeferredState, RestoredState, StateError};
use crate::functions::{Collector, KeySelector};
use crate::operator::{ForwardTo, Operator, RuntimeContext, StateScope};
use crate::process_context::{ProcessContext, SideOutputCache};
use crate::state::{CowMap, ValueState};
use crate::watermark::Watermark;

/// Runs a keyed process function with one [`ValueState`] per key, its side outputs
/// and the current watermark.
pub struct KeyedProcessOperator<K, I, O, S, KS, F> {
    key: KS,
    f: F,
    /// Each key's value state; a value the function clears leaves the map. `None`
    /// only while the function runs: the value is used where it lies.
    state: CowMap<K, Option<S>>,
    side_outputs: SideOutputCache,
    watermark: Watermark,
    _types: PhantomData<fn(I) -> O>,
}

impl<K, I, O, S, KS, F> KeyedProcessOperator<K, I, O, S, KS, F> {
    /// Runs `f` for records grouped by `key`, in the operator instance `ctx`.
    pub fn new(key: KS, f: F, ctx: &RuntimeContext) -> Self {
        Self {
            key,
            f,
            state: CowMap::new(),
            side_outputs: SideOutputCache::new(ctx.side_outputs.clone()),
            watermark: Watermark::MIN,
            _types: PhantomData,
        }
    }
}

impl<K, I, O, S, KS, F> Operator<I, O> for KeyedProcessOperator<K, I, O, S, KS, F>
where
    K: Hash + Eq + Clone + Send + Serialize + DeserializeOwned + 'static,
    I: 'static,
    O: 'static,
    S: Clone + Send + Serialize + DeserializeOwned + 'static,
    KS: KeySelector<I, K>,
    F: FnMut(&K, I, &mut ValueState<'_, S>, &mut ProcessContext<'_, O>) + Send + 'static,
{
    /// Each key's value state, grouped by key group.
    fn snapshot_state(
        &mut self,
        scope: StateScope,
        checkpoint_id: u64,
    ) -> Result<Option<Vec<u8>>, StateError> {
        crate::checkpoint::encode_now(self.snapshot_state_deferred(scope, checkpoint_id))
    }

    /// A copy-on-write snapshot of the value states (a pointer per shard of the
    /// map), encoded later on the checkpoint's thread.
    fn snapshot_state_deferred(
        &mut self,
        scope: StateScope,
        _: u64,
    ) -> Result<Option<DeferredState>, StateError> {
        let states = self.state.snapshot();
        Ok(Some(DeferredState::later(move || {
            let mut writer = KeyGroupWriter::new(scope.max_parallelism);
            states.try_for_each(|key, state| match state {
                Some(state) => writer.add(key, state),
                None => Ok(()),
            })?;
            writer.finish()
        })))
    }

    fn restore_state(
        &mut self,
        scope: StateScope,
        restored: &RestoredState,
    ) -> Result<(), StateError> {
        let entries = restore_keyed::<K, S>(restored, scope)?;
        self.state = entries.into_iter().map(|(k, v)| (k, Some(v))).collect();
        Ok(())
    }

    #[inline]
    fn process<C: Collector<O> + ?Sized>(&mut self, record: I, out: &mut C) {
        let key = self.key.key(&record);
        let mut forward = ForwardTo(out);
        let mut ctx = ProcessContext::new(&mut forward, &mut self.side_outputs, self.watermark);
        // A key seen before costs one hash lookup and its state is used where it lies;
        // a new key, or a cleared one, costs a second (to insert or remove it).
        if let Some((stored, slot)) = self.state.get_key_value_mut(&key) {
            (self.f)(stored, record, &mut ValueState::new(slot), &mut ctx);
            if slot.is_none() {
                self.state.remove(&key);
            }
        } else {
            let mut slot = None;
            (self.f)(&key, record, &mut ValueState::new(&mut slot), &mut ctx);
            if slot.is_some() {
                self.state.insert(key, slot);
            }
        }
    }

    fn process_watermark<C: Collector<O> + ?Sized>(&mut self, watermark: Watermark, out: &mut C) {
        self.watermark = watermark;
        out.emit_watermark(watermark);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;

    fn context() -> RuntimeContext {
        RuntimeContext::standalone("count", 0, 1, Arc::new(ManualClock::new()))
    }

    #[test]
    fn keeps_state_per_key_and_forgets_cleared_keys() {
        // Counts per key and clears a key's count when it reaches 3.
        let count = |key: &u8,
                     _x: u8,
                     n: &mut ValueState<'_, u32>,
                     out: &mut ProcessContext<'_, (u8, u32)>| {
            let next = n.value().copied().unwrap_or(0) + 1;
            if next == 3 {
                n.clear();
            } else {
                n.update(next);
            }
            out.collect((*key, next));
        };
        let mut op = KeyedProcessOperator::new(|x: &u8| *x, count, &context());
        let mut out = Vec::new();
        for x in [1, 2, 1, 1, 2, 1] {
            op.process(x, &mut out);
        }
        assert_eq!(out, vec![(1, 1), (2, 1), (1, 2), (1, 3), (2, 2), (1, 1)]);
        assert_eq!(op.state.len(), 2, "key 1 was cleared, then set again");
        op.process(2, &mut out);
        assert_eq!(op.state.len(), 1, "key 2 reached 3 and was cleared");
    }

    #[test]
    fn a_deferred_snapshot_holds_the_values_of_its_moment() {
        let sum = |key: &u32,
                   x: u64,
                   n: &mut ValueState<'_, u64>,
                   out: &mut ProcessContext<'_, (u32, u64)>| {
            let next = n.value().copied().unwrap_or(0) + x;
            if next >= 1_000_000 {
                n.clear();
            } else {
                n.update(next);
            }
            out.collect((*key, next));
        };
        let key = |x: &u64| (*x % 1000) as u32;
        let scope = StateScope {
            subtask_index: 0,
            parallelism: 1,
            max_parallelism: 128,
        };
        let mut op = KeyedProcessOperator::new(key, sum, &context());
        let mut out = Vec::new();
        for x in 0..5000u64 {
            op.process(x, &mut out);
        }
        let deferred = op.snapshot_state_deferred(scope, 1).unwrap().unwrap();
        // After the barrier: every key changes, half of them are cleared.
        for x in 0..1000u64 {
            op.process(if x % 2 == 0 { 1_000_000 } else { x }, &mut out);
        }
        let restored = RestoredState {
            checkpoint_id: Some(1),
            by_subtask: vec![Some(Arc::from(deferred.into_bytes().unwrap()))].into(),
        };
        let mut again = KeyedProcessOperator::new(key, sum, &context());
        again.restore_state(scope, &restored).unwrap();
        assert_eq!(again.state.len(), 1000);
        let mut seen = Vec::new();
        for k in 0..1000u64 {
            again.process(k + 1000 * 1000, &mut seen);
        }
        // Key k held k + (k + 1000) + ... + (k + 4000) = 5k + 10000 at the barrier.
        let expected: Vec<(u32, u64)> = (0..1000u64)
            .map(|k| (k as u32, 5 * k + 10_000 + k + 1_000_000))
            .collect();
        assert_eq!(seen, expected);
    }
}
