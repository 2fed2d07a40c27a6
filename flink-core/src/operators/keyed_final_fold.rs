//! [`KeyedFinalFoldOperator`]: folds each key's records into one value and emits
//! one result per key when the input ends (keyed aggregations in batch mode).

use std::hash::Hash;
use std::marker::PhantomData;

use hashbrown::HashMap;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::checkpoint::keyed::{restore_slots, snapshot_slots};
use crate::checkpoint::{RestoredState, StateError};
use crate::functions::{Collector, KeySelector};
use crate::operator::{Operator, StateScope};

/// Keeps one accumulator per key, emits nothing per record, and at the end of input
/// one `finish(key, accumulator)` per key (Flink's batch execution of keyed
/// aggregations). Its state has the layout of the streaming operator it stands in
/// for (one optional value per key), checkpointed by key group.
pub struct KeyedFinalFoldOperator<K, I, A, O, KS, Fold, Finish> {
    key: KS,
    fold: Fold,
    finish: Finish,
    /// Each key's accumulator; `None` only while `fold` runs.
    state: HashMap<K, Option<A>>,
    _types: PhantomData<fn(I) -> O>,
}

impl<K, I, A, O, KS, Fold, Finish> KeyedFinalFoldOperator<K, I, A, O, KS, Fold, Finish> {
    /// Folds records grouped by `key` with `fold(accumulator so far, record)` and
    /// emits `finish(key, accumulator)` per key at the end.
    pub fn new(key: KS, fold: Fold, finish: Finish) -> Self {
        Self {
            key,
            fold,
            finish,
            state: HashMap::new(),
            _types: PhantomData,
        }
    }
}

impl<K, I, A, O, KS, Fold, Finish> Operator<I, O>
    for KeyedFinalFoldOperator<K, I, A, O, KS, Fold, Finish>
where
    K: Hash + Eq + Send + Serialize + DeserializeOwned + 'static,
    I: 'static,
    A: Send + Serialize + DeserializeOwned + 'static,
    O: 'static,
    KS: KeySelector<I, K>,
    Fold: FnMut(Option<A>, I) -> A + Send + 'static,
    Finish: FnMut(K, A) -> O + Send + 'static,
{
    #[inline]
    fn process<C: Collector<O> + ?Sized>(&mut self, record: I, _out: &mut C) {
        let key = self.key.key(&record);
        let slot = self.state.entry(key).or_insert(None);
        *slot = Some((self.fold)(slot.take(), record));
    }

    fn end_input<C: Collector<O> + ?Sized>(&mut self, out: &mut C) {
        for (key, acc) in self.state.drain() {
            if let Some(acc) = acc {
                out.collect((self.finish)(key, acc));
            }
        }
    }

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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emits_one_result_per_key_at_the_end_only() {
        let mut op = KeyedFinalFoldOperator::new(
            |r: &(u8, u64)| r.0,
            |acc: Option<u64>, r: (u8, u64)| acc.unwrap_or(0) + r.1,
            |k: u8, sum: u64| (k, sum),
        );
        let mut out = Vec::new();
        for r in [(1, 1), (2, 10), (1, 2), (1, 3), (2, 20)] {
            op.process(r, &mut out);
        }
        assert!(out.is_empty());
        op.end_input(&mut out);
        out.sort_unstable();
        assert_eq!(out, vec![(1, 6), (2, 30)]);
    }
}
