//! [`AggregatingState`]: the current key's accumulator of a named aggregating state.

use std::hash::Hash;
use std::marker::PhantomData;

use super::CowMap;

use super::backend::{get_or_insert_with, live};
use super::ttl::{Stamped, TtlClock};
use crate::windows::AggregateFunction;

/// The current key's accumulator of a state declared with an
/// [`AggregatingStateDescriptor`](super::AggregatingStateDescriptor) (Flink's
/// `AggregatingState`): values are added into it and the result read from it.
pub struct AggregatingState<'a, K, I, O, F: AggregateFunction<I, O>> {
    entries: &'a mut CowMap<K, Stamped<F::Acc>>,
    key: &'a K,
    ttl: TtlClock,
    function: &'a F,
    _types: PhantomData<fn(I) -> O>,
}

impl<'a, K, I, O, F> AggregatingState<'a, K, I, O, F>
where
    K: Hash + Eq + Clone,
    F: AggregateFunction<I, O>,
    F::Acc: Clone,
{
    pub(crate) fn new(
        entries: &'a mut CowMap<K, Stamped<F::Acc>>,
        key: &'a K,
        ttl: TtlClock,
        function: &'a F,
    ) -> Self {
        Self {
            entries,
            key,
            ttl,
            function,
            _types: PhantomData,
        }
    }

    /// The result of the key's accumulator, if anything was added.
    pub fn get(&mut self) -> Option<O> {
        let ttl = self.ttl;
        let stored = live(self.entries, self.key, &ttl)?;
        ttl.touch(&mut stored.stamp);
        Some(self.function.get_result(&stored.value))
    }

    /// Adds `value` into the key's accumulator (a new one if it has none).
    pub fn add(&mut self, value: I) {
        let ttl = self.ttl;
        // An expired accumulator is dropped first, so the value starts a new one.
        live(self.entries, self.key, &ttl);
        let function = self.function;
        let stored = get_or_insert_with(self.entries, self.key, || {
            ttl.stamp(function.create_accumulator())
        });
        function.add(value, &mut stored.value);
        stored.stamp = ttl.stamp(()).stamp;
    }

    /// Forgets the key's accumulator.
    pub fn clear(&mut self) {
        self.entries.remove(self.key);
    }
}
