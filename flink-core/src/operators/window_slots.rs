//! [`WindowSlots`]: the window operator's table of per-key, per-window state.

use std::hash::{BuildHasher, Hash};

use hashbrown::{DefaultHashBuilder, HashTable};

use crate::windows::TimeWindow;

/// What the window operator keeps per key and window, in one hash table whose hash
/// of `(key, window)` is the key's hash mixed with a [`WindowHash`]: a run of
/// records for one window (a tumbling window's second) hashes that window once, as
/// the operator keeps the hash of the window it last assigned. A lookup then hashes
/// only the key: one word for an integer key instead of three.
pub(super) struct WindowSlots<K, V> {
    table: HashTable<(K, TimeWindow, V)>,
    keys: DefaultHashBuilder,
}

/// The hash of a window, mixed into its keys' hashes (see [`WindowSlots`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct WindowHash(u64);

impl WindowHash {
    /// The hash of `window`: both ends multiplied into one word, its high bits
    /// folded into the low ones (the table indexes by the low bits).
    #[inline]
    pub(super) fn of(window: &TimeWindow) -> Self {
        const SPREAD: u64 = 0x9e37_79b9_7f4a_7c15;
        let h =
            ((window.start as u64).wrapping_mul(SPREAD) ^ window.end as u64).wrapping_mul(SPREAD);
        Self(h ^ (h >> 32))
    }
}

impl<K: Hash + Eq, V> WindowSlots<K, V> {
    /// An empty table.
    pub(super) fn new() -> Self {
        Self {
            table: HashTable::new(),
            keys: DefaultHashBuilder::default(),
        }
    }

    #[inline(always)]
    fn hash(&self, key: &K, window: WindowHash) -> u64 {
        self.keys.hash_one(key) ^ window.0
    }

    /// The hash of an entry, when the table grows.
    fn hash_entry(keys: &DefaultHashBuilder, (key, window, _): &(K, TimeWindow, V)) -> u64 {
        keys.hash_one(key) ^ WindowHash::of(window).0
    }

    /// Whether an entry is the one of `key` and `window`.
    #[inline(always)]
    fn is<'a>(key: &'a K, window: &'a TimeWindow) -> impl Fn(&(K, TimeWindow, V)) -> bool + 'a {
        move |(k, w, _)| w == window && k == key
    }

    /// The slot of `key` and `window` (whose hash is `hash`), created with `make`
    /// when there is none.
    #[inline(always)]
    pub(super) fn get_or_insert_with(
        &mut self,
        key: &K,
        window: TimeWindow,
        hash: WindowHash,
        make: impl FnOnce() -> V,
    ) -> &mut V
    where
        K: Clone,
    {
        let h = self.hash(key, hash);
        match self.table.find_entry(h, Self::is(key, &window)) {
            Ok(found) => &mut found.into_mut().2,
            Err(absent) => Self::insert_new(
                absent.into_table(),
                &self.keys,
                h,
                (key.clone(), window, make()),
            ),
        }
    }

    /// Adds an entry known to be absent (out of line: once per window and key).
    #[inline(never)]
    fn insert_new<'a>(
        table: &'a mut HashTable<(K, TimeWindow, V)>,
        keys: &DefaultHashBuilder,
        h: u64,
        entry: (K, TimeWindow, V),
    ) -> &'a mut V {
        &mut table
            .insert_unique(h, entry, |e| Self::hash_entry(keys, e))
            .into_mut()
            .2
    }

    /// The slot of `key` and `window`, if any.
    pub(super) fn get_mut(&mut self, key: &K, window: &TimeWindow) -> Option<&mut V> {
        let h = self.hash(key, WindowHash::of(window));
        self.table
            .find_mut(h, Self::is(key, window))
            .map(|(_, _, v)| v)
    }

    /// Removes the slot of `key` and `window`, returning it.
    pub(super) fn remove(&mut self, key: &K, window: &TimeWindow) -> Option<V> {
        let h = self.hash(key, WindowHash::of(window));
        self.table
            .find_entry(h, Self::is(key, window))
            .ok()
            .map(|entry| entry.remove().0.2)
    }

    /// Sets the slot of `key` and `window` (replacing any).
    pub(super) fn insert(&mut self, key: K, window: TimeWindow, value: V) {
        let h = self.hash(&key, WindowHash::of(&window));
        match self.table.find_entry(h, Self::is(&key, &window)) {
            Ok(found) => found.into_mut().2 = value,
            Err(absent) => {
                Self::insert_new(absent.into_table(), &self.keys, h, (key, window, value));
            }
        }
    }

    /// Every key, window and slot, in no particular order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&K, &TimeWindow, &V)> {
        self.table.iter().map(|(k, w, v)| (k, w, v))
    }

    /// How many windows hold state.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether no window holds state.
    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_found_by_key_and_window_whichever_way_they_went_in() {
        let mut slots = WindowSlots::<u64, u32>::new();
        let (a, b) = (TimeWindow::new(0, 1_000), TimeWindow::new(1_000, 2_000));
        *slots.get_or_insert_with(&7, a, WindowHash::of(&a), || 1) += 10;
        slots.insert(7, b, 2);
        slots.insert(8, a, 3);
        assert_eq!(
            *slots.get_or_insert_with(&7, a, WindowHash::of(&a), || 0),
            11
        );
        assert_eq!(slots.get_mut(&7, &b), Some(&mut 2));
        slots.insert(7, b, 5);
        assert_eq!(slots.len(), 3);
        assert_eq!(slots.remove(&7, &b), Some(5));
        assert_eq!(slots.remove(&7, &b), None);
        assert_eq!(slots.get_mut(&9, &a), None);
        let mut all: Vec<_> = slots.iter().map(|(k, w, v)| (*k, *w, *v)).collect();
        all.sort();
        assert_eq!(all, vec![(7, a, 11), (8, a, 3)]);
    }

    #[test]
    fn thousands_of_windows_per_key_survive_growth() {
        let mut slots = WindowSlots::<u64, i64>::new();
        for key in 0..10u64 {
            for start in (0..5_000i64).step_by(10) {
                let w = TimeWindow::new(start, start + 10);
                *slots.get_or_insert_with(&key, w, WindowHash::of(&w), || 0) += start;
            }
        }
        assert_eq!(slots.len(), 5_000);
        for key in 0..10u64 {
            for start in (0..5_000i64).step_by(10) {
                let w = TimeWindow::new(start, start + 10);
                assert_eq!(slots.get_mut(&key, &w), Some(&mut start.clone()));
            }
        }
    }
}
