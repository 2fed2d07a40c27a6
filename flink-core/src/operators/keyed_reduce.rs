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
use crate::operators::PerRecordStamps;
use crate::timestamped::Timestamped;

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

    /// As [`process_batch`](Self::process_batch), for records with timestamps.
    #[inline]
    fn process_timestamped_batch<C: Collector<Timestamped<T>> + ?Sized>(
        &mut self,
        batch: &mut Vec<Timestamped<T>>,
        out: &mut PerRecordStamps<'_, C>,
    ) {
        let mut keys = std::mem::take(&mut self.keys);
        self.key.keys_of_stamped(batch, &mut keys);
        for (key, record) in keys.drain(..).zip(batch.drain(..)) {
            self.reduce_keyed(key, record.value, out.record(record.timestamp));
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
    use crate::operators::ModeSwitch;

    type Pair = (u8, u64);

    const SCOPE: StateScope = StateScope {
        subtask_index: 0,
        parallelism: 1,
        max_parallelism: 128,
    };

    type Summing = KeyedReduceOperator<u8, Pair, fn(&Pair) -> u8, fn(Pair, Pair) -> Pair>;

    /// A running sum of the second field per first field.
    fn summing() -> Summing {
        KeyedReduceOperator::new(|r| r.0, |a, b| (a.0, a.1 + b.1))
    }

    /// `op` after `records`, what it emitted.
    fn fed(op: &mut impl Operator<Pair, Pair>, records: &[Pair]) -> Vec<Pair> {
        let mut out = Vec::new();
        for &r in records {
            op.process(r, &mut out);
        }
        out
    }

    /// A fresh instance restored from `bytes`.
    fn restored(bytes: Vec<u8>) -> impl Operator<Pair, Pair> {
        let restored = RestoredState {
            checkpoint_id: Some(1),
            by_subtask: vec![Some(std::sync::Arc::from(bytes))].into(),
        };
        let mut again = summing();
        again.restore_state(SCOPE, &restored).unwrap();
        again
    }

    #[test]
    fn emits_the_running_reduction_of_each_key() {
        let mut op = summing();
        let out = fed(&mut op, &[(1, 1), (2, 10), (1, 2), (1, 3), (2, 20)]);
        assert_eq!(out, vec![(1, 1), (2, 10), (1, 3), (1, 6), (2, 30)]);
        assert_eq!(op.state.len(), 2);
    }

    #[test]
    fn a_batch_with_timestamps_is_keyed_in_one_call_and_each_result_keeps_its_records_time() {
        // Record i at time 100 + i.
        let from_100 = |records: &[Pair]| -> Vec<_> {
            (records.iter().zip(100..))
                .map(|(&value, timestamp)| Timestamped { timestamp, value })
                .collect()
        };
        let mut op = crate::operators::Stamped::new(ModeSwitch::<_, Summing>::Streaming(
            KeyedReduceOperator::new(
                crate::batch_keys::Keys::new(|r: &Pair| r.0),
                |a: Pair, b: Pair| (a.0, a.1 + b.1),
            ),
        ));
        let mut out = Vec::new();
        let mut batch = from_100(&[(1, 1), (2, 10), (1, 2), (1, 3), (2, 20)]);
        op.process_batch(&mut batch, &mut Emitter::collecting(&mut out));
        assert_eq!(out, from_100(&[(1, 1), (2, 10), (1, 3), (1, 6), (2, 30)]));
    }

    #[test]
    fn a_restored_instance_continues_each_key_where_the_snapshot_left_it() {
        let mut op = summing();
        fed(&mut op, &[(1, 1), (2, 10), (1, 2)]);
        let mut again = restored(op.snapshot_state(SCOPE, 1).unwrap().unwrap());
        assert_eq!(fed(&mut again, &[(1, 5), (2, 5)]), vec![(1, 8), (2, 15)]);
    }

    #[test]
    fn a_deferred_snapshot_holds_the_state_of_its_moment_whatever_follows() {
        let mut op = summing();
        fed(&mut op, &[(1, 1), (2, 10), (1, 2)]);
        let mut at_snapshot = summing();
        fed(&mut at_snapshot, &[(1, 3), (2, 10)]);
        let deferred = op.snapshot_state_deferred(SCOPE, 1).unwrap().unwrap();
        // The task goes on before the encoding runs.
        fed(&mut op, &[(1, 100), (3, 7)]);
        let bytes = deferred.into_bytes().unwrap();
        let expected = at_snapshot.snapshot_state(SCOPE, 1).unwrap().unwrap();
        assert_eq!(bytes, expected, "encoded as the synchronous snapshot");
        let out = fed(&mut restored(bytes), &[(1, 5), (2, 5), (3, 1)]);
        assert_eq!(
            out,
            vec![(1, 8), (2, 15), (3, 1)],
            "nothing after the snapshot"
        );
    }
}
