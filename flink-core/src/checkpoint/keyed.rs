//! Keyed state in a checkpoint: the entries of an instance, grouped by key group, so
//! that an instance restored at another parallelism takes exactly the key groups it
//! now owns (Flink's key-group ranges).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::checkpoint::snapshot::{RestoredState, StateError, decode_state, encode_state};
use crate::key_group::{key_group_of, stable_key_hash, subtask_of_key_group};
use crate::operator::StateScope;

/// The keyed state of one instance: each key group's entries, encoded on their own.
#[derive(Serialize, Deserialize)]
struct KeyedSnapshot {
    /// Number of key groups the state was written with; restoring needs the same.
    max_parallelism: u32,
    /// (key group, bincode of `Vec<(K, V)>`), by ascending key group.
    groups: Vec<Group>,
}

/// One key group's entries; the bytes as one blob (see [`blob`](super::blob)).
#[derive(Serialize, Deserialize)]
struct Group(u32, #[serde(with = "super::blob")] Vec<u8>);

/// Encodes `entries` grouped by key group.
///
/// # Errors
/// When a key or value cannot be serialized.
pub fn snapshot_keyed<'a, K, V>(
    entries: impl Iterator<Item = (&'a K, &'a V)>,
    max_parallelism: usize,
) -> Result<Vec<u8>, StateError>
where
    K: Serialize + 'a,
    V: Serialize + 'a,
{
    let mut writer = KeyGroupWriter::new(max_parallelism);
    for (k, v) in entries {
        writer.add(k, v)?;
    }
    writer.finish()
}

/// Writes keyed state as [`snapshot_keyed`] does, one entry at a time: each entry is
/// encoded into its key group's bytes at once, so entries can come from tables read
/// one after another (a [`CowSnapshot`](crate::state::CowSnapshot)'s shards) and
/// nothing holds references to all of them.
pub(crate) struct KeyGroupWriter {
    max_parallelism: usize,
    /// Per key group: its entries so far and their encoding (bincode of each
    /// `(K, V)`, back to back: a `Vec<(K, V)>` without its length).
    groups: Vec<(u64, Vec<u8>)>,
}

impl KeyGroupWriter {
    /// A writer for state of `max_parallelism` key groups.
    pub(crate) fn new(max_parallelism: usize) -> Self {
        Self {
            max_parallelism,
            groups: Vec::new(),
        }
    }

    /// Adds the entry `(k, v)` to its key group.
    ///
    /// # Errors
    /// When the key or value cannot be serialized.
    pub(crate) fn add<K: Serialize, V: Serialize>(
        &mut self,
        k: &K,
        v: &V,
    ) -> Result<(), StateError> {
        let group = key_group_of(stable_key_hash(k), self.max_parallelism);
        if group >= self.groups.len() {
            self.groups.resize_with(group + 1, Default::default);
        }
        let (count, bytes) = &mut self.groups[group];
        bincode::serde::encode_into_std_write((k, v), bytes, bincode::config::standard())
            .map_err(|e| StateError::Encode(e.to_string()))?;
        *count += 1;
        Ok(())
    }

    /// The keyed state: every non-empty key group's entries, by ascending group.
    ///
    /// # Errors
    /// Never in practice (lengths and bytes always encode).
    pub(crate) fn finish(self) -> Result<Vec<u8>, StateError> {
        let groups = self
            .groups
            .into_iter()
            .enumerate()
            .filter(|(_, (count, _))| *count > 0)
            .map(|(g, (count, entries))| {
                // A `Vec`'s bincode: its length, then its elements.
                let mut bytes = bincode::encode_to_vec(count, bincode::config::standard())
                    .map_err(|e| StateError::Encode(e.to_string()))?;
                bytes.extend_from_slice(&entries);
                Ok(Group(g as u32, bytes))
            })
            .collect::<Result<Vec<_>, StateError>>()?;
        encode_state(&KeyedSnapshot {
            max_parallelism: self.max_parallelism as u32,
            groups,
        })
    }
}

/// The entries that the instance of `scope` owns, from every instance's snapshot in
/// `restored`.
///
/// # Errors
/// A corrupt snapshot, or one written with another number of key groups.
pub fn restore_keyed<K, V>(
    restored: &RestoredState,
    scope: StateScope,
) -> Result<Vec<(K, V)>, StateError>
where
    K: DeserializeOwned,
    V: DeserializeOwned,
{
    decode_groups(&owned_groups(restored, scope)?)
}

/// The key groups that the instance of `scope` owns, still encoded: (key group,
/// bincode of `Vec<(K, V)>`), for state whose types are known only later.
///
/// # Errors
/// A corrupt snapshot, or one written with another number of key groups.
pub(crate) fn owned_groups(
    restored: &RestoredState,
    scope: StateScope,
) -> Result<Vec<(u32, Vec<u8>)>, StateError> {
    let StateScope {
        subtask_index: subtask,
        parallelism,
        max_parallelism,
    } = scope;
    let mut out = Vec::new();
    for bytes in restored.all() {
        let snapshot: KeyedSnapshot = decode_state(bytes)?;
        if snapshot.max_parallelism as usize != max_parallelism {
            return Err(StateError::Corrupt(format!(
                "keyed state was written with max parallelism {}, the job has {max_parallelism}",
                snapshot.max_parallelism
            )));
        }
        out.extend(
            snapshot
                .groups
                .into_iter()
                .filter(|Group(group, _)| {
                    subtask_of_key_group(*group as usize, max_parallelism, parallelism) == subtask
                })
                .map(|Group(group, bytes)| (group, bytes)),
        );
    }
    Ok(out)
}

/// The entries of key groups [`owned_groups`] returned.
///
/// # Errors
/// A group that does not decode as `Vec<(K, V)>`.
pub(crate) fn decode_groups<K, V>(groups: &[(u32, Vec<u8>)]) -> Result<Vec<(K, V)>, StateError>
where
    K: DeserializeOwned,
    V: DeserializeOwned,
{
    let mut out = Vec::new();
    for (group, bytes) in groups {
        let (entries, used): (Vec<(K, V)>, usize) =
            bincode::serde::decode_from_slice(bytes, bincode::config::standard())
                .map_err(|e| StateError::Corrupt(format!("key group {group}: {e}")))?;
        if used != bytes.len() {
            return Err(StateError::Corrupt(format!(
                "key group {group}: {} bytes left over",
                bytes.len() - used
            )));
        }
        out.extend(entries);
    }
    Ok(out)
}

/// Encodes key groups [`owned_groups`] returned as [`snapshot_keyed`] would, without
/// decoding them.
///
/// # Errors
/// Never in practice (bytes always encode).
pub(crate) fn encode_groups(
    groups: &[(u32, Vec<u8>)],
    max_parallelism: usize,
) -> Result<Vec<u8>, StateError> {
    #[derive(Serialize)]
    struct GroupRef<'a>(u32, crate::checkpoint::blob::BlobRef<'a>);
    #[derive(Serialize)]
    struct KeyedSnapshotRef<'a> {
        max_parallelism: u32,
        groups: Vec<GroupRef<'a>>,
    }
    encode_state(&KeyedSnapshotRef {
        max_parallelism: max_parallelism as u32,
        groups: groups
            .iter()
            .map(|(g, b)| GroupRef(*g, crate::checkpoint::blob::BlobRef(b)))
            .collect(),
    })
}

/// The state of operators that keep one optional value per key (keyed reduce and
/// keyed process): [`snapshot_keyed`] of the keys that hold a value.
pub(crate) fn snapshot_slots<K, V>(
    state: &hashbrown::HashMap<K, Option<V>>,
    scope: StateScope,
) -> Result<Option<Vec<u8>>, StateError>
where
    K: Serialize,
    V: Serialize,
{
    let entries = state.iter().filter_map(|(k, v)| v.as_ref().map(|v| (k, v)));
    snapshot_keyed(entries, scope.max_parallelism).map(Some)
}

/// What [`snapshot_slots`] wrote, for the key groups this instance owns.
pub(crate) fn restore_slots<K, V>(
    restored: &RestoredState,
    scope: StateScope,
) -> Result<hashbrown::HashMap<K, Option<V>>, StateError>
where
    K: DeserializeOwned + std::hash::Hash + Eq,
    V: DeserializeOwned,
{
    let entries = restore_keyed::<K, V>(restored, scope)?;
    Ok(entries.into_iter().map(|(k, v)| (k, Some(v))).collect())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn restored(snapshots: Vec<Vec<u8>>) -> RestoredState {
        RestoredState {
            checkpoint_id: Some(1),
            by_subtask: snapshots
                .into_iter()
                .map(|s| Some(Arc::from(s)))
                .collect::<Vec<_>>()
                .into(),
        }
    }

    fn scope(subtask_index: usize, parallelism: usize, max_parallelism: usize) -> StateScope {
        StateScope {
            subtask_index,
            parallelism,
            max_parallelism,
        }
    }

    #[test]
    fn every_key_lands_once_at_any_parallelism() {
        let state: Vec<(u64, u64)> = (0..1000).map(|k| (k, k * 10)).collect();
        // Written by two instances (split arbitrarily), read at 1, 3 and 4.
        let a = snapshot_keyed(state[..400].iter().map(|(k, v)| (k, v)), 128).unwrap();
        let b = snapshot_keyed(state[400..].iter().map(|(k, v)| (k, v)), 128).unwrap();
        let restored = restored(vec![a, b]);
        for p in [1, 3, 4] {
            let mut all: Vec<(u64, u64)> = (0..p)
                .flat_map(|s| restore_keyed::<u64, u64>(&restored, scope(s, p, 128)).unwrap())
                .collect();
            all.sort_unstable();
            assert_eq!(all, state, "parallelism {p}");
        }
    }

    #[test]
    fn each_group_is_the_bincode_of_its_entries_as_one_vec() {
        // The format written before entries were encoded one by one: per group, the
        // bincode of `Vec<(K, V)>`. Counts past 250 take a longer length prefix.
        let state: Vec<(u64, String)> = (0..70_000).map(|k| (k, format!("v{k}"))).collect();
        let bytes = snapshot_keyed(state.iter().map(|(k, v)| (k, v)), 4).unwrap();
        let snapshot: KeyedSnapshot = decode_state(&bytes).unwrap();
        assert_eq!(snapshot.groups.len(), 4);
        for Group(group, bytes) in &snapshot.groups {
            let entries: Vec<&(u64, String)> = state
                .iter()
                .filter(|(k, _)| key_group_of(stable_key_hash(k), 4) as u32 == *group)
                .collect();
            assert!(entries.len() > 250 * 64);
            let expected =
                bincode::serde::encode_to_vec(&entries, bincode::config::standard()).unwrap();
            assert_eq!(bytes, &expected, "group {group}");
        }
    }

    #[test]
    fn another_max_parallelism_is_refused() {
        let a = snapshot_keyed([(&1u64, &1u64)].into_iter(), 128).unwrap();
        let err = restore_keyed::<u64, u64>(&restored(vec![a]), scope(0, 1, 256)).unwrap_err();
        assert!(err.to_string().contains("max parallelism 128"), "{err}");
    }
}
