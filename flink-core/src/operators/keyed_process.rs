use std::hash::Hash;
use std::marker::PhantomData;

use hashbrown::HashMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::checkpoint::keyed::{restore_slots, snapshot_slots};
use crate::checkpoint::{RestoredState, StateError};
use crate::functions::{Collector, KeySelector};
use crate::operator::{ForwardTo, Operator, RuntimeContext, StateScope};
use crate::process_context::{ProcessContext, SideOutputCache};
use crate::state::ValueState;
use crate::watermark::Watermark;

/// Runs a keyed process function with one [`ValueState`] per key, its side outputs
/// and the current watermark.
pub struct KeyedProcessOperator<K, I, O, S, KS, F> {
    key: KS,
    f: F,
    /// Each key's value state; a value the function clears leaves the map.
    state: HashMap<K, Option<S>>,
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
            state: HashMap::new(),
            side_outputs: SideOutputCache::new(ctx.side_outputs.clone()),
            watermark: Watermark::MIN,
            _types: PhantomData,
        }
    }
}

impl<K, I, O, S, KS, F> Operator<I, O> for KeyedProcessOperator<K, I, O, S, KS, F>
where
    K: Hash + Eq + Send + Serialize + DeserializeOwned + 'static,
    I: 'static,
    O: 'static,
    S: Send + Serialize + DeserializeOwned + 'static,
    KS: KeySelector<I, K>,
    F: FnMut(&K, I, &mut ValueState<'_, S>, &mut ProcessContext<'_, O>) + Send + 'static,
{
    /// Each key's value state, grouped by key group.
    fn snapshot_state(&mut self, scope: StateScope, _: u64) -> Result<Option<Vec<u8>>, StateError> {
        snapshot_slots(&self.state, scope)
    }

    fn restore_state(
        &mut self,
        scope: StateScope,
        restored: &RestoredState,
    ) -> Result<(), StateError> {
        self.state = restore_slots(restored, scope)?;
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
}
