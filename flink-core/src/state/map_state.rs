//! [`MapState`]: the current key's map of a named map state.

use std::collections::HashMap as StdHashMap;
use std::hash::Hash;

use super::CowMap;

use super::backend::{StateValue, get_or_insert_with, live};
use super::ttl::{Stamped, TtlClock};

/// The entries of one key's map (std's map: serde-serializable).
pub(crate) type UserMap<UK, UV> = StdHashMap<UK, Stamped<UV>>;

/// The current key's map of a state declared with a
/// [`MapStateDescriptor`](super::MapStateDescriptor) (Flink's `MapState`). With a
/// TTL each entry expires on its own.
pub struct MapState<'a, K, UK, UV> {
    entries: &'a mut CowMap<K, UserMap<UK, UV>>,
    key: &'a K,
    ttl: TtlClock,
}

impl<'a, K, UK, UV> MapState<'a, K, UK, UV>
where
    K: Hash + Eq + Clone,
    UK: StateValue + Hash + Eq,
    UV: StateValue,
{
    pub(crate) fn new(
        entries: &'a mut CowMap<K, UserMap<UK, UV>>,
        key: &'a K,
        ttl: TtlClock,
    ) -> Self {
        Self { entries, key, ttl }
    }

    /// The value of `user_key`, if present.
    pub fn get(&mut self, user_key: &UK) -> Option<&UV> {
        let ttl = self.ttl;
        let entry = live(self.entries, self.key, &ttl)?.get_mut(user_key)?;
        ttl.touch(&mut entry.stamp);
        Some(&entry.value)
    }

    /// Sets `user_key` to `value`.
    pub fn put(&mut self, user_key: UK, value: UV) {
        let stamped = self.ttl.stamp(value);
        get_or_insert_with(self.entries, self.key, StdHashMap::new).insert(user_key, stamped);
    }

    /// Sets every entry of `entries`.
    pub fn put_all(&mut self, entries: impl IntoIterator<Item = (UK, UV)>) {
        for (k, v) in entries {
            self.put(k, v);
        }
    }

    /// Removes `user_key`, returning its value.
    pub fn remove(&mut self, user_key: &UK) -> Option<UV> {
        let ttl = self.ttl;
        let map = live(self.entries, self.key, &ttl)?;
        let removed = map.remove(user_key).map(|e| e.value);
        if map.is_empty() {
            self.entries.remove(self.key);
        }
        removed
    }

    /// Whether `user_key` is present.
    pub fn contains(&mut self, user_key: &UK) -> bool {
        self.get(user_key).is_some()
    }

    /// The key's entries, in no particular order.
    pub fn iter(&mut self) -> impl Iterator<Item = (&UK, &UV)> {
        let ttl = self.ttl;
        live(self.entries, self.key, &ttl)
            .into_iter()
            .flat_map(move |map| {
                map.iter_mut().map(move |(k, e)| {
                    ttl.touch(&mut e.stamp);
                    (k, &e.value)
                })
            })
    }

    /// The key's user keys.
    pub fn keys(&mut self) -> impl Iterator<Item = &UK> {
        self.iter().map(|(k, _)| k)
    }

    /// The key's values.
    pub fn values(&mut self) -> impl Iterator<Item = &UV> {
        self.iter().map(|(_, v)| v)
    }

    /// Whether the key's map is empty.
    pub fn is_empty(&mut self) -> bool {
        let ttl = self.ttl;
        live(self.entries, self.key, &ttl).is_none()
    }

    /// Empties the key's map.
    pub fn clear(&mut self) {
        self.entries.remove(self.key);
    }
}
