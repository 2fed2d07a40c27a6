use std::hash::Hash;
use std::marker::PhantomData;

use hashbrown::HashMap;
use hashbrown::hash_map::Entry;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::checkpoint::keyed::{restore_slots, snapshot_slots};
use crate::checkpoint::{DeferredState, RestoredState, StateError};
use crate::functions::{Collector, KeySelector, ReduceFunction};
use crate::operator::{Emitter, Operator, StateScope};

/// Keeps a running reduction per key and emits the new value for every record, as
/// Flink's keyed `reduce` does.
pub struct KeyedReduceOperator<K, T, KS, F> {
    key: KS,
    f: F,
    /// Each key's accumulator; `None` only while the reduce function runs (it takes
    /// the accumulator by value), which lets it be reduced where it lies in the map.
    state: HashMap<K, Option<T>>,
    /// The keys of the batch at hand (reused).
    keys: Vec<K>,
    _types: PhantomData<fn(T)>,
}

impl<K, T, KS, F> KeyedReduceOperator<K, T, KS, F> {
    /// A reduction of `f` over records grouped by `key`.
    pub fn new(key: KS, f: F) -> Self {
        Self {
            key,
            f,
            state: HashMap::new(),
            keys: Vec::new(),
            _types: PhantomData,
        }
    }
}

impl<K, T, KS, F> Operator<T, T> for KeyedReduceOperator<K, T, KS, F>
where
    K: Hash + Eq + Clone + Send + Serialize + DeserializeOwned + 'static,
    T: Clone + Send + Serialize + DeserializeOwned + 'static,
    KS: KeySelector<T, K>,
    F: ReduceFunction<T>,
{
    /// Each key's accumulator, grouped by key group.
    fn snapshot_state(&mut self, scope: StateScope, _: u64) -> Result<Option<Vec<u8>>, StateError> {
        snapshot_slots(&self.state, scope)
    }

    /// A copy of the accumulators now, encoded later: the task stops for the copy
    /// only (a copy of the table for plain keys and values).
    fn snapshot_state_deferred(
        &mut self,
        scope: StateScope,
        _: u64,
    ) -> Result<Option<DeferredState>, StateError> {
        let copy = self.state.clone();
        Ok(Some(DeferredState::later(move || {
            snapshot_slots(&copy, scope).map(Option::unwrap_or_default)
        })))
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
    fn process<C: Collector<T> + ?Sized>(&mut self, record: T, out: &mut C) {
        let key = self.key.key(&record);
        self.reduce_keyed(key, record, out);
    }

    /// The batch's keys come first, from one call of the selector (no dynamic call
    /// per record when it stands behind one).
    #[inline]
    fn process_batch(&mut self, batch: &mut Vec<T>, out: &mut Emitter<'_, T>) {
        let mut keys = std::mem::take(&mut self.keys);
        self.key.keys(batch, &mut keys);
        for (key, record) in keys.drain(..).zip(batch.drain(..)) {
            self.reduce_keyed(key, record, out);
        }
        self.keys = keys;
    }
}

impl<K, T, KS, F> KeyedReduceOperator<K, T, KS, F>
where
    K: Hash + Eq,
    T: Clone,
    F: ReduceFunction<T>,
{
    /// Folds `record` into its key's accumulator and emits the result.
    #[inline(always)]
    fn reduce_keyed<C: Collector<T> + ?Sized>(&mut self, key: K, record: T, out: &mut C) {
        // One hash lookup per record, and the accumulator is never moved in the map:
        // moving entries out and back (remove/insert, `replace_entry_with`) rewrites
        // control bytes and makes the emitted clone reload what was just stored.
        match self.state.entry(key) {
            Entry::Occupied(mut slot) => {
                let slot = slot.get_mut();
                let next = match slot.take() {
                    Some(acc) => self.f.reduce(acc, record),
                    None => record,
                };
                out.collect(next.clone());
                *slot = Some(next);
            }
            Entry::Vacant(slot) => {
                out.collect(record.clone());
                slot.insert(Some(record));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emits_the_running_reduction_of_each_key() {
        let mut op = KeyedReduceOperator::new(
            |r: &(u8, u64)| r.0,
            |a: (u8, u64), b: (u8, u64)| (a.0, a.1 + b.1),
        );
        let mut out = Vec::new();
        for r in [(1, 1), (2, 10), (1, 2), (1, 3), (2, 20)] {
            op.process(r, &mut out);
        }
        assert_eq!(out, vec![(1, 1), (2, 10), (1, 3), (1, 6), (2, 30)]);
        assert_eq!(op.state.len(), 2);
    }

    #[test]
    fn a_restored_instance_continues_each_key_where_the_snapshot_left_it() {
        let sum = |a: (u8, u64), b: (u8, u64)| (a.0, a.1 + b.1);
        let scope = StateScope {
            subtask_index: 0,
            parallelism: 1,
            max_parallelism: 128,
        };
        let mut op = KeyedReduceOperator::new(|r: &(u8, u64)| r.0, sum);
        let mut out = Vec::new();
        for r in [(1, 1), (2, 10), (1, 2)] {
            op.process(r, &mut out);
        }
        let bytes = op.snapshot_state(scope, 1).unwrap().unwrap();
        let restored = RestoredState {
            checkpoint_id: Some(1),
            by_subtask: vec![Some(std::sync::Arc::from(bytes))].into(),
        };
        let mut again = KeyedReduceOperator::new(|r: &(u8, u64)| r.0, sum);
        again.restore_state(scope, &restored).unwrap();
        let mut out = Vec::new();
        again.process((1, 5), &mut out);
        again.process((2, 5), &mut out);
        assert_eq!(out, vec![(1, 8), (2, 15)]);
    }

    #[test]
    fn a_deferred_snapshot_holds_the_state_of_its_moment_whatever_follows() {
        let sum = |a: (u8, u64), b: (u8, u64)| (a.0, a.1 + b.1);
        let scope = StateScope {
            subtask_index: 0,
            parallelism: 1,
            max_parallelism: 128,
        };
        let mut op = KeyedReduceOperator::new(|r: &(u8, u64)| r.0, sum);
        let mut out = Vec::new();
        for r in [(1, 1), (2, 10), (1, 2)] {
            op.process(r, &mut out);
        }
        let deferred = op.snapshot_state_deferred(scope, 1).unwrap().unwrap();
        // The task goes on before the encoding runs.
        for r in [(1, 100), (3, 7)] {
            op.process(r, &mut out);
        }
        let bytes = deferred.into_bytes().unwrap();
        assert_eq!(
            bytes,
            op_at_snapshot_bytes(scope),
            "encoded as the synchronous snapshot"
        );
        let restored = RestoredState {
            checkpoint_id: Some(1),
            by_subtask: vec![Some(std::sync::Arc::from(bytes))].into(),
        };
        let mut again = KeyedReduceOperator::new(|r: &(u8, u64)| r.0, sum);
        again.restore_state(scope, &restored).unwrap();
        let mut out = Vec::new();
        for r in [(1, 5), (2, 5), (3, 1)] {
            again.process(r, &mut out);
        }
        assert_eq!(
            out,
            vec![(1, 8), (2, 15), (3, 1)],
            "nothing after the snapshot"
        );
    }

    /// The synchronous snapshot of keys 1 -> 3 and 2 -> 10.
    fn op_at_snapshot_bytes(scope: StateScope) -> Vec<u8> {
        let mut op = KeyedReduceOperator::new(
            |r: &(u8, u64)| r.0,
            |a: (u8, u64), b: (u8, u64)| (a.0, a.1 + b.1),
        );
        for r in [(1, 3), (2, 10)] {
            op.process(r, &mut Vec::new());
        }
        op.snapshot_state(scope, 1).unwrap().unwrap()
    }
}
