//! [`ListState`]: the current key's list of a named list state.

use std::hash::Hash;

use super::CowMap;

use super::backend::{StateValue, get_or_insert_with, live};
use super::ttl::{Stamped, TtlClock};

/// The current key's list of a state declared with a
/// [`ListStateDescriptor`](super::ListStateDescriptor) (Flink's `ListState`). With a
/// TTL each element expires on its own.
pub struct ListState<'a, K, T> {
    entries: &'a mut CowMap<K, Vec<Stamped<T>>>,
    key: &'a K,
    ttl: TtlClock,
}

impl<'a, K, T> ListState<'a, K, T>
where
    K: Hash + Eq + Clone,
    T: StateValue,
{
    pub(crate) fn new(
        entries: &'a mut CowMap<K, Vec<Stamped<T>>>,
        key: &'a K,
        ttl: TtlClock,
    ) -> Self {
        Self { entries, key, ttl }
    }

    /// The key's elements in the order they were added (none if the list is empty).
    pub fn get(&mut self) -> impl Iterator<Item = &T> {
        let ttl = self.ttl;
        live(self.entries, self.key, &ttl)
            .into_iter()
            .flat_map(move |list| {
                list.iter_mut().map(move |e| {
                    ttl.touch(&mut e.stamp);
                    &e.value
                })
            })
    }

    /// Appends `value`.
    pub fn add(&mut self, value: T) {
        let stamped = self.ttl.stamp(value);
        get_or_insert_with(self.entries, self.key, Vec::new).push(stamped);
    }

    /// Appends every value of `values`.
    pub fn add_all(&mut self, values: impl IntoIterator<Item = T>) {
        let ttl = self.ttl;
        let mut values = values.into_iter().map(|v| ttl.stamp(v)).peekable();
        if values.peek().is_some() {
            get_or_insert_with(self.entries, self.key, Vec::new).extend(values);
        }
    }

    /// Replaces the key's list by `values`.
    pub fn update(&mut self, values: impl IntoIterator<Item = T>) {
        self.clear();
        self.add_all(values);
    }

    /// Takes the key's elements out, leaving its list empty.
    pub fn take(&mut self) -> Vec<T> {
        let ttl = self.ttl;
        if live(self.entries, self.key, &ttl).is_none() {
            return Vec::new();
        }
        self.entries
            .remove(self.key)
            .map(|list| list.into_iter().map(|e| e.value).collect())
            .unwrap_or_default()
    }

    /// Whether the key's list is empty.
    pub fn is_empty(&mut self) -> bool {
        let ttl = self.ttl;
        live(self.entries, self.key, &ttl).is_none()
    }

    /// Empties the key's list.
    pub fn clear(&mut self) {
        self.entries.remove(self.key);
    }
}
