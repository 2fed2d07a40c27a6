//! [`KeyedValueState`]: the current key's value of a named value state.

use std::hash::Hash;

use super::CowMap;

use super::backend::{StateValue, live};
use super::ttl::{Stamped, TtlClock};

/// The current key's value of a state declared with a
/// [`ValueStateDescriptor`](super::ValueStateDescriptor) (Flink's `ValueState`
/// obtained with `getState`).
pub struct KeyedValueState<'a, K, T> {
    entries: &'a mut CowMap<K, Stamped<T>>,
    key: &'a K,
    ttl: TtlClock,
}

impl<'a, K, T> KeyedValueState<'a, K, T>
where
    K: Hash + Eq + Clone,
    T: StateValue,
{
    pub(crate) fn new(entries: &'a mut CowMap<K, Stamped<T>>, key: &'a K, ttl: TtlClock) -> Self {
        Self { entries, key, ttl }
    }

    /// The key's value, if one was set and has not expired.
    pub fn value(&mut self) -> Option<&T> {
        let ttl = self.ttl;
        let stored = live(self.entries, self.key, &ttl)?;
        ttl.touch(&mut stored.stamp);
        Some(&stored.value)
    }

    /// Sets the key's value.
    pub fn update(&mut self, value: T) {
        let stamped = self.ttl.stamp(value);
        match self.entries.get_mut(self.key) {
            Some(stored) => *stored = stamped,
            None => {
                self.entries.insert(self.key.clone(), stamped);
            }
        }
    }

    /// Takes the key's value out, leaving it without one.
    pub fn take(&mut self) -> Option<T> {
        let ttl = self.ttl;
        live(self.entries, self.key, &ttl)?;
        self.entries.remove(self.key).map(|s| s.value)
    }

    /// Forgets the key's value.
    pub fn clear(&mut self) {
        self.entries.remove(self.key);
    }
}
