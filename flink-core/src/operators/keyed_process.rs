use std::hash::Hash;
use std::marker::PhantomData;

use hashbrown::HashMap;

use crate::functions::{Collector, KeySelector};
use crate::operator::{ForwardTo, Operator};
use crate::state::ValueState;

/// Runs a keyed process function with one [`ValueState`] per key.
pub struct KeyedProcessOperator<K, I, O, S, KS, F> {
    key: KS,
    f: F,
    state: HashMap<K, S>,
    _types: PhantomData<fn(I) -> O>,
}

impl<K, I, O, S, KS, F> KeyedProcessOperator<K, I, O, S, KS, F> {
    /// Runs `f` for records grouped by `key`.
    pub fn new(key: KS, f: F) -> Self {
        Self {
            key,
            f,
            state: HashMap::new(),
            _types: PhantomData,
        }
    }
}

impl<K, I, O, S, KS, F> Operator<I, O> for KeyedProcessOperator<K, I, O, S, KS, F>
where
    K: Hash + Eq + Send + 'static,
    I: 'static,
    O: 'static,
    S: Send + 'static,
    KS: KeySelector<I, K>,
    F: FnMut(&K, I, &mut ValueState<'_, S>, &mut dyn Collector<O>) + Send + 'static,
{
    fn process<C: Collector<O> + ?Sized>(&mut self, record: I, out: &mut C) {
        let key = self.key.key(&record);
        // Taking the value out and putting it back keeps `key` usable by the function
        // without cloning it per record.
        let mut slot = self.state.remove(&key);
        (self.f)(
            &key,
            record,
            &mut ValueState::new(&mut slot),
            &mut ForwardTo(out),
        );
        if let Some(value) = slot {
            self.state.insert(key, value);
        }
    }
}
