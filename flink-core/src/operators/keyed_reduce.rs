use std::hash::Hash;
use std::marker::PhantomData;

use hashbrown::HashMap;
use hashbrown::hash_map::Entry;

use crate::functions::{Collector, KeySelector, ReduceFunction};
use crate::operator::Operator;

/// Keeps a running reduction per key and emits the new value for every record, as
/// Flink's keyed `reduce` does.
pub struct KeyedReduceOperator<K, T, KS, F> {
    key: KS,
    f: F,
    state: HashMap<K, T>,
    _types: PhantomData<fn(T)>,
}

impl<K, T, KS, F> KeyedReduceOperator<K, T, KS, F> {
    /// A reduction of `f` over records grouped by `key`.
    pub fn new(key: KS, f: F) -> Self {
        Self {
            key,
            f,
            state: HashMap::new(),
            _types: PhantomData,
        }
    }
}

impl<K, T, KS, F> Operator<T, T> for KeyedReduceOperator<K, T, KS, F>
where
    K: Hash + Eq + Send + 'static,
    T: Clone + Send + 'static,
    KS: KeySelector<T, K>,
    F: ReduceFunction<T>,
{
    fn process<C: Collector<T> + ?Sized>(&mut self, record: T, out: &mut C) {
        let key = self.key.key(&record);
        // One hash lookup per record: the accumulator is reduced where it lies.
        let f = &mut self.f;
        match self.state.entry(key) {
            Entry::Occupied(acc) => {
                let next = acc.replace_entry_with(|_, acc| Some(f.reduce(acc, record)));
                // The closure always returns `Some`, so the entry stays occupied.
                if let Entry::Occupied(next) = next {
                    out.collect(next.get().clone());
                }
            }
            Entry::Vacant(slot) => out.collect(slot.insert(record).clone()),
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
}
