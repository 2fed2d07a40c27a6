use std::hash::Hash;
use std::marker::PhantomData;

use hashbrown::HashMap;

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
        let next = match self.state.remove(&key) {
            Some(acc) => self.f.reduce(acc, record),
            None => record,
        };
        out.collect(next.clone());
        self.state.insert(key, next);
    }
}
