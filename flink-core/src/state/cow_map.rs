//! [`CowMap`]: a keyed state table with copy-on-write snapshots (the role of Flink's
//! `CopyOnWriteStateMap` in its hashmap state backend).
//!
//! The table is split into [`SHARDS`] hash tables by bits of each key's hash. A
//! snapshot ([`CowMap::snapshot`]) only marks every non-empty shard as shared and
//! hands the snapshot a reference to it: the task stops for a few hundred pointer
//! moves, whatever the size of the state. The first access of the task to a shared
//! shard takes it back: for itself alone if the snapshot let go of it already, or as
//! a copy of that shard (1/[`SHARDS`] of the table) if the snapshot still holds it.
//! The snapshot is read (encoded) on another thread, one shard at a time, so the
//! copies the task makes are spread over the records that follow the barrier, and a
//! shard the task never touches again is never copied.
//!
//! Why a mutex per shared shard: the snapshot's reader and the task copying the shard
//! read it at the same time, which `Arc` alone allows only for `Sync` values; the
//! mutex keeps state types `Send` only (as Flink's are any serializable type). Nobody
//! ever writes a shared shard: the task writes only shards it owns.

use std::hash::{BuildHasher, Hash};
use std::sync::{Arc, Mutex, PoisonError};

use hashbrown::hash_table::Entry;
use hashbrown::{DefaultHashBuilder, HashTable};

/// log2 of [`SHARDS`].
const SHARD_BITS: u32 = 8;

/// Shards per map: copy-on-write copies one shard at a time.
pub const SHARDS: usize = 1 << SHARD_BITS;

/// The shard is the top bits of the hash times this odd constant (Fibonacci
/// hashing): they depend on every bit of the hash, so keys spread over the shards
/// whatever the hasher's seed (taken straight from bits 40..48 of foldhash's
/// hash, 1,000 consecutive keys once fell into 91 of the 256 shards), and they are
/// not the bits hashbrown takes a table's bucket (low) and tag (top 7) from, so
/// both stay spread within a shard.
const SHARD_MIX: u64 = 0x9E37_79B9_7F4A_7C15;

/// One shard's entries.
type Table<K, V> = HashTable<(K, V)>;

/// A shard shared with snapshots; nobody writes it.
type Shared<K, V> = Arc<Mutex<Table<K, V>>>;

/// A hash map from key to value whose [`snapshot`](Self::snapshot) costs a pointer
/// per shard and copies a shard only when the map changes it while a snapshot still
/// holds it (module docs). Reads take `&mut self`, as they may take a shard back.
///
/// ```
/// use flink_core::state::CowMap;
///
/// let mut counts = CowMap::new();
/// counts.insert("a", 1u64);
/// let snapshot = counts.snapshot();
/// *counts.get_mut(&"a").unwrap() += 1; // after the snapshot: not in it
/// counts.insert("b", 1);
/// let mut seen = Vec::new();
/// snapshot.for_each(|k, v| seen.push((*k, *v)));
/// assert_eq!(seen, vec![("a", 1)]);
/// assert_eq!(counts.get_mut(&"a"), Some(&mut 2));
/// ```
pub struct CowMap<K, V> {
    hasher: DefaultHashBuilder,
    /// The shards the map owns; a shared shard's slot is empty meanwhile.
    tables: Box<[Table<K, V>]>,
    /// The shards shared with snapshots, by shard.
    shared: Box<[Option<Shared<K, V>>]>,
    /// How many of `shared` are set: when none (between a checkpoint's encoding
    /// and the next barrier), an access checks nothing else.
    shared_count: usize,
    len: usize,
}

impl<K, V> Default for CowMap<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> std::fmt::Debug for CowMap<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CowMap")
            .field("len", &self.len)
            .field("shared_shards", &self.shared_count)
            .finish_non_exhaustive()
    }
}

impl<K, V> CowMap<K, V> {
    /// An empty map (its empty shards allocate nothing).
    pub fn new() -> Self {
        Self {
            hasher: DefaultHashBuilder::default(),
            tables: (0..SHARDS).map(|_| Table::new()).collect(),
            shared: (0..SHARDS).map(|_| None).collect(),
            shared_count: 0,
            len: 0,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the map has no entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A snapshot of every entry now: shares every non-empty shard (no entry is
    /// copied). The map stays fully usable; what it changes from now on is not in
    /// the snapshot.
    pub fn snapshot(&mut self) -> CowSnapshot<K, V> {
        let mut shards = Vec::new();
        for (table, shared) in self.tables.iter_mut().zip(self.shared.iter_mut()) {
            match shared {
                // Untouched since an earlier snapshot that still holds it: the same
                // entries, shared once more.
                Some(shard) => shards.push(shard.clone()),
                None if table.is_empty() => {}
                None => {
                    let shard = Arc::new(Mutex::new(std::mem::take(table)));
                    shards.push(shard.clone());
                    *shared = Some(shard);
                    self.shared_count += 1;
                }
            }
        }
        CowSnapshot {
            shards,
            len: self.len,
        }
    }
}

impl<K: Clone, V: Clone> CowMap<K, V> {
    /// Makes shard `index` the map's own (taken back from snapshots).
    #[inline(always)]
    fn own(&mut self, index: usize) {
        if self.shared_count != 0 && self.shared[index].is_some() {
            self.take_back(index);
        }
    }

    /// Makes shared shard `index` the map's own again: the table itself if no
    /// snapshot holds it any more, else a copy (the snapshot keeps the original).
    #[cold]
    #[inline(never)]
    fn take_back(&mut self, index: usize) {
        let Some(shared) = self.shared[index].take() else {
            return;
        };
        self.shared_count -= 1;
        self.tables[index] = match Arc::try_unwrap(shared) {
            Ok(table) => table.into_inner().unwrap_or_else(PoisonError::into_inner),
            Err(shared) => shared
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        };
    }

    /// Takes back every shard (for operations over all entries).
    fn own_all(&mut self) {
        for index in 0..SHARDS {
            if self.shared_count == 0 {
                return;
            }
            self.own(index);
        }
    }

    /// Every entry, mutable, in no particular order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        self.own_all();
        self.tables
            .iter_mut()
            .flat_map(|table| table.iter_mut().map(|(k, v)| (&*k, v)))
    }

    /// Keeps the entries for which `keep` says so.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        self.own_all();
        let mut len = 0;
        for table in self.tables.iter_mut() {
            table.retain(|(k, v)| keep(k, v));
            len += table.len();
        }
        self.len = len;
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.tables.iter_mut().for_each(|t| *t = Table::new());
        self.shared.iter_mut().for_each(|s| *s = None);
        self.shared_count = 0;
        self.len = 0;
    }
}

impl<K: Hash + Eq + Clone, V: Clone> CowMap<K, V> {
    /// The hash of `key` and the index of its shard.
    #[inline(always)]
    fn locate(&self, key: &K) -> (u64, usize) {
        let hash = self.hasher.hash_one(key);
        (
            hash,
            (hash.wrapping_mul(SHARD_MIX) >> (64 - SHARD_BITS)) as usize,
        )
    }

    /// The value of `key`, mutable.
    #[inline]
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.get_key_value_mut(key).map(|(_, v)| v)
    }

    /// The stored key and the value of `key`, mutable.
    #[inline]
    pub fn get_key_value_mut(&mut self, key: &K) -> Option<(&K, &mut V)> {
        let (hash, index) = self.locate(key);
        self.own(index);
        self.tables[index]
            .find_mut(hash, |(k, _)| k == key)
            .map(|(k, v)| (&*k, v))
    }

    /// Whether `key` has a value.
    #[inline]
    pub fn contains_key(&mut self, key: &K) -> bool {
        self.get_mut(key).is_some()
    }

    /// Sets the value of `key`; returns the one it replaces.
    #[inline]
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let (hash, index) = self.locate(&key);
        self.own(index);
        let hasher = &self.hasher;
        let table = &mut self.tables[index];
        match table.entry(hash, |(k, _)| *k == key, |(k, _)| hasher.hash_one(k)) {
            Entry::Occupied(mut entry) => Some(std::mem::replace(&mut entry.get_mut().1, value)),
            Entry::Vacant(entry) => {
                entry.insert((key, value));
                self.len += 1;
                None
            }
        }
    }

    /// The value of `key`, inserted with `create` first if it has none.
    #[inline]
    pub fn get_or_insert_with(&mut self, key: &K, create: impl FnOnce() -> V) -> &mut V {
        let (hash, index) = self.locate(key);
        self.own(index);
        let hasher = &self.hasher;
        let table = &mut self.tables[index];
        match table.entry(hash, |(k, _)| k == key, |(k, _)| hasher.hash_one(k)) {
            Entry::Occupied(entry) => &mut entry.into_mut().1,
            Entry::Vacant(entry) => {
                self.len += 1;
                &mut entry.insert((key.clone(), create())).into_mut().1
            }
        }
    }

    /// Removes `key`; returns its value.
    #[inline]
    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.remove_entry(key).map(|(_, v)| v)
    }

    /// Removes `key`; returns the stored key and its value.
    #[inline]
    pub fn remove_entry(&mut self, key: &K) -> Option<(K, V)> {
        let (hash, index) = self.locate(key);
        self.own(index);
        let removed = self.tables[index]
            .find_entry(hash, |(k, _)| k == key)
            .ok()
            .map(|entry| entry.remove().0);
        self.len -= usize::from(removed.is_some());
        removed
    }

    /// Every key, cloned.
    pub fn keys(&mut self) -> Vec<K> {
        self.iter_mut().map(|(k, _)| k.clone()).collect()
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Extend<(K, V)> for CowMap<K, V> {
    fn extend<T: IntoIterator<Item = (K, V)>>(&mut self, entries: T) {
        for (k, v) in entries {
            self.insert(k, v);
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> FromIterator<(K, V)> for CowMap<K, V> {
    fn from_iter<T: IntoIterator<Item = (K, V)>>(entries: T) -> Self {
        let mut map = Self::new();
        map.extend(entries);
        map
    }
}

/// The entries of a [`CowMap`] at the moment of [`CowMap::snapshot`], readable on any
/// thread while the map goes on changing.
pub struct CowSnapshot<K, V> {
    shards: Vec<Shared<K, V>>,
    len: usize,
}

impl<K, V> CowSnapshot<K, V> {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Calls `f` with every entry, in no particular order, one shard at a time (the
    /// map's task waits only if it takes back the very shard being read).
    pub fn for_each(&self, mut f: impl FnMut(&K, &V)) {
        for shard in &self.shards {
            let table = shard.lock().unwrap_or_else(PoisonError::into_inner);
            for (k, v) in table.iter() {
                f(k, v);
            }
        }
    }

    /// Like [`for_each`](Self::for_each), stopping at the first error.
    ///
    /// # Errors
    /// The first error `f` returns.
    pub fn try_for_each<E>(&self, mut f: impl FnMut(&K, &V) -> Result<(), E>) -> Result<(), E> {
        for shard in &self.shards {
            let table = shard.lock().unwrap_or_else(PoisonError::into_inner);
            for (k, v) in table.iter() {
                f(k, v)?;
            }
        }
        Ok(())
    }
}

impl<K, V> std::fmt::Debug for CowSnapshot<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CowSnapshot")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn contents(snapshot: &CowSnapshot<u64, u64>) -> BTreeMap<u64, u64> {
        let mut out = BTreeMap::new();
        snapshot.for_each(|k, v| {
            assert!(out.insert(*k, *v).is_none(), "key {k} twice");
        });
        out
    }

    #[test]
    fn behaves_as_a_map() {
        let mut map = CowMap::new();
        let mut model = BTreeMap::new();
        for i in 0..20_000u64 {
            let k = i * 7919 % 5000;
            match i % 5 {
                0 => assert_eq!(map.remove(&k), model.remove(&k)),
                1 => *map.get_or_insert_with(&k, || 0) += i,
                _ => assert_eq!(map.insert(k, i), model.insert(k, i)),
            }
            if i % 5 == 1 {
                *model.entry(k).or_insert(0) += i;
            }
            assert_eq!(map.len(), model.len());
        }
        for (k, v) in &model {
            assert_eq!(map.get_mut(k), Some(&mut v.clone()));
        }
        map.retain(|k, _| k % 2 == 0);
        model.retain(|k, _| k % 2 == 0);
        assert_eq!(map.len(), model.len());
        let mut keys = map.keys();
        keys.sort_unstable();
        assert_eq!(keys, model.keys().copied().collect::<Vec<_>>());
    }

    #[test]
    fn a_snapshot_keeps_the_entries_of_its_moment_exactly() {
        let mut map: CowMap<u64, u64> = (0..10_000).map(|k| (k, k)).collect();
        let before: BTreeMap<u64, u64> = (0..10_000).map(|k| (k, k)).collect();
        let snapshot = map.snapshot();
        // Every kind of change after the snapshot, over every shard.
        for k in 0..10_000 {
            match k % 4 {
                0 => *map.get_mut(&k).unwrap() += 1,
                1 => assert_eq!(map.remove(&k), Some(k)),
                2 => assert_eq!(map.insert(k, 0), Some(k)),
                _ => {}
            }
        }
        map.insert(20_000, 1);
        let second = map.snapshot();
        map.retain(|_, _| false);
        assert_eq!(contents(&snapshot), before, "first snapshot");
        let mut expected = BTreeMap::new();
        for k in 0..10_000 {
            match k % 4 {
                0 => expected.insert(k, k + 1),
                1 => None,
                2 => expected.insert(k, 0),
                _ => expected.insert(k, k),
            };
        }
        expected.insert(20_000, 1);
        assert_eq!(contents(&second), expected, "second snapshot");
        assert_eq!(second.len(), expected.len());
        assert!(map.is_empty());
    }

    #[test]
    fn a_dropped_snapshot_gives_its_shards_back_without_a_copy() {
        let mut map: CowMap<u64, u64> = (0..1000).map(|k| (k, k)).collect();
        drop(map.snapshot());
        assert!(map.shared_count > 100, "{} shards shared", map.shared_count);
        map.insert(5, 6);
        map.iter_mut().for_each(|(_, v)| *v += 1);
        assert_eq!(map.shared_count, 0);
        assert_eq!(map.get_mut(&5), Some(&mut 7));
        assert_eq!(map.len(), 1000);
    }

    #[test]
    fn a_snapshot_is_read_on_another_thread_while_the_map_changes() {
        let mut map: CowMap<u64, Vec<u64>> = (0..50_000).map(|k| (k, vec![k])).collect();
        let snapshot = map.snapshot();
        let reader = std::thread::spawn(move || {
            let mut sum = 0;
            snapshot.for_each(|_, v| sum += v.iter().sum::<u64>());
            sum
        });
        for k in 0..50_000 {
            map.get_mut(&k).unwrap().push(1);
        }
        assert_eq!(reader.join().unwrap(), (0..50_000).sum::<u64>());
        assert_eq!(map.get_mut(&7), Some(&mut vec![7, 1]));
    }
}
