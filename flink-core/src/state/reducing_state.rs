//! [`ReducingState`]: the current key's value of a named reducing state.

use std::hash::Hash;

use super::CowMap;

use super::backend::{StateValue, live};
use super::descriptors::ReduceFn;
use super::ttl::{Stamped, TtlClock};

/// The current key's value of a state declared with a
/// [`ReducingStateDescriptor`](super::ReducingStateDescriptor) (Flink's
/// `ReducingState`): every added value is folded into it with the reduce function.
pub struct ReducingState<'a, K, T> {
    entries: &'a mut CowMap<K, Stamped<T>>,
    key: &'a K,
    ttl: TtlClock,
    reduce: &'a ReduceFn<T>,
}

impl<'a, K, T> ReducingState<'a, K, T>
where
    K: Hash + Eq + Clone,
    T: StateValue,
{
    pub(crate) fn new(
        entries: &'a mut CowMap<K, Stamped<T>>,
        key: &'a K,
        ttl: TtlClock,
        reduce: &'a ReduceFn<T>,
    ) -> Self {
        Self {
            entries,
            key,
            ttl,
            reduce,
        }
    }

    /// The reduction of the key's values so far, if any.
    pub fn get(&mut self) -> Option<&T> {
        let ttl = self.ttl;
        let stored = live(self.entries, self.key, &ttl)?;
        ttl.touch(&mut stored.stamp);
        Some(&stored.value)
    }

    /// Folds `value` into the key's reduction.
    pub fn add(&mut self, value: T) {
        let ttl = self.ttl;
        // The reduce function takes the current value by value: take it out with
        // its key and put the result back under the same key (no clone).
        let (key, next) = match live(self.entries, self.key, &ttl) {
            Some(_) => {
                let (key, current) = self.entries.remove_entry(self.key).expect("live");
                (key, (self.reduce)(current.value, value))
            }
            None => (self.key.clone(), value),
        };
        self.entries.insert(key, ttl.stamp(next));
    }

    /// Forgets the key's reduction.
    pub fn clear(&mut self) {
        self.entries.remove(self.key);
    }
}
