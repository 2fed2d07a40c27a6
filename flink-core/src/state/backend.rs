//! [`KeyedStateBackend`]: the named keyed states of one operator instance, on the
//! heap: one table per state name, each mapping a key to its value, checkpointed
//! key by key (and so by key group) beside the operator's other keyed state.

use std::any::Any;
use std::collections::HashMap as StdHashMap;
use std::hash::Hash;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::CowMap;
use super::descriptors::Common;
use super::ttl::{Stamped, StateTtlConfig, TtlClock};
use crate::checkpoint::blob::Blob;
use crate::checkpoint::keyed::{KeyGroupWriter, decode_groups, encode_groups, owned_groups};
use crate::checkpoint::{RestoredState, StateError};
use crate::clock::Clock;
use crate::operator::StateScope;
use crate::timers::processing_time_of;

/// The kind of a named state; a name holds one kind, with one type, for the life of
/// the job and its savepoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StateKind {
    /// One value per key.
    Value,
    /// A list per key.
    List,
    /// A map per key.
    Map,
    /// One value per key, folded with a reduce function.
    Reducing,
    /// One accumulator per key of an aggregate function.
    Aggregating,
}

/// A named state's value type: what checkpoints can keep (serde) and a task can
/// own.
///
/// `Clone` because a snapshot shares the state with the task (copy on write): the
/// task copies what it changes while a checkpoint is being written (as Flink's
/// hashmap backend copies with the state's serializer).
pub trait StateValue: Serialize + DeserializeOwned + Clone + Send + 'static {}
impl<T: Serialize + DeserializeOwned + Clone + Send + 'static> StateValue for T {}

/// What a table stores per key: a stamped value, list or map, whose expired parts
/// can be dropped.
pub(crate) trait StoredValue: Serialize + DeserializeOwned + Clone + Send + 'static {
    /// Drops what has expired at `ttl`; says whether anything is left.
    fn retain_live(&mut self, ttl: &TtlClock) -> bool;
}

impl<T: Serialize + DeserializeOwned + Clone + Send + 'static> StoredValue for Stamped<T> {
    fn retain_live(&mut self, ttl: &TtlClock) -> bool {
        !ttl.is_expired(self.stamp)
    }
}

impl<T: Serialize + DeserializeOwned + Clone + Send + 'static> StoredValue for Vec<Stamped<T>> {
    fn retain_live(&mut self, ttl: &TtlClock) -> bool {
        self.retain(|e| !ttl.is_expired(e.stamp));
        !self.is_empty()
    }
}

impl<UK, UV> StoredValue for StdHashMap<UK, Stamped<UV>>
where
    UK: Serialize + DeserializeOwned + Hash + Eq + Clone + Send + 'static,
    UV: Serialize + DeserializeOwned + Clone + Send + 'static,
{
    fn retain_live(&mut self, ttl: &TtlClock) -> bool {
        self.retain(|_, e| !ttl.is_expired(e.stamp));
        !self.is_empty()
    }
}

/// The current key's live value in `entries`, after dropping what expired.
pub(crate) fn live<'m, K: Hash + Eq + Clone, V: StoredValue>(
    entries: &'m mut CowMap<K, V>,
    key: &K,
    ttl: &TtlClock,
) -> Option<&'m mut V> {
    if ttl.has_ttl() {
        let keep = entries.get_mut(key)?.retain_live(ttl);
        if !keep {
            entries.remove(key);
            return None;
        }
    }
    entries.get_mut(key)
}

/// The value of `key` in `entries`, inserted with `create` if missing.
pub(crate) fn get_or_insert_with<'m, K: Hash + Eq + Clone, V: Clone>(
    entries: &'m mut CowMap<K, V>,
    key: &K,
    create: impl FnOnce() -> V,
) -> &'m mut V {
    // One lookup; the key is cloned only when it is inserted.
    entries.get_or_insert_with(key, create)
}

/// Every named state at a checkpoint, to be encoded (on any thread).
pub(crate) type EncodeNamed = Box<dyn FnOnce() -> Result<Vec<NamedTable>, StateError> + Send>;

/// One named state's entries, typed.
struct Table<K, V> {
    name: Arc<str>,
    kind: StateKind,
    ttl: Option<StateTtlConfig>,
    entries: CowMap<K, V>,
    /// Accesses since expired values were last swept out of the whole table.
    accesses: usize,
}

/// The fewest accesses between two sweeps of a table with a TTL.
const MIN_SWEEP_INTERVAL: usize = 1024;

impl<K: Hash + Eq + Clone, V: StoredValue> Table<K, V> {
    /// Counts an access at `ttl`'s time; once there were as many as the table has
    /// entries (and at least [`MIN_SWEEP_INTERVAL`]), drops every expired value
    /// (Flink's incremental cleanup, amortized to about one entry checked per
    /// access), so that keys never read again do not keep their expired values.
    fn sweep_if_due(&mut self, ttl: &TtlClock) {
        if !ttl.has_ttl() {
            return;
        }
        self.accesses += 1;
        if self.accesses >= self.entries.len().max(MIN_SWEEP_INTERVAL) {
            self.entries.retain(|_, v| v.retain_live(ttl));
            self.accesses = 0;
        }
    }
}

/// A [`Table`] of any value type.
trait AnyTable<K>: Send {
    fn name(&self) -> &str;
    fn kind(&self) -> StateKind;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn purge_expired(&mut self, now: i64);
    /// A copy-on-write snapshot of the entries, encoded when called.
    fn snapshot(&mut self, max_parallelism: usize) -> EncodeTable;
    fn is_empty(&self) -> bool;
}

/// A named state's entries at a checkpoint, to be encoded (on any thread).
type EncodeTable = Box<dyn FnOnce() -> Result<NamedTable, StateError> + Send>;

impl<K, V> AnyTable<K> for Table<K, V>
where
    K: Hash + Eq + Clone + Send + Serialize + 'static,
    V: StoredValue,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> StateKind {
        self.kind
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn purge_expired(&mut self, now: i64) {
        if self.ttl.is_some() {
            let ttl = TtlClock::new(self.ttl, now);
            self.entries.retain(|_, v| v.retain_live(&ttl));
        }
    }

    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn snapshot(&mut self, max_parallelism: usize) -> EncodeTable {
        let entries = self.entries.snapshot();
        let (name, kind) = (self.name.clone(), self.kind);
        Box::new(move || {
            let mut writer = KeyGroupWriter::new(max_parallelism);
            entries
                .try_for_each(|k, v| writer.add(k, v))
                .and_then(|()| writer.finish())
                .map(|bytes| NamedTable {
                    name: name.to_string(),
                    kind,
                    state: Blob(bytes),
                })
                .map_err(|e| StateError::Encode(format!("state '{name}': {e}")))
        })
    }
}

/// A named state restored from a checkpoint and not used since: its key groups stay
/// encoded until the function first asks for the state (only then is its type
/// known), and go into the next checkpoint as they are if it never does.
struct RestoredTable {
    name: Arc<str>,
    kind: StateKind,
    /// Shared with the snapshots that carry it on.
    groups: Arc<Vec<(u32, Vec<u8>)>>,
}

/// One named state in a checkpoint: its entries grouped by key group, as
/// [`snapshot_keyed`] writes them.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct NamedTable {
    pub(crate) name: String,
    pub(crate) kind: StateKind,
    pub(crate) state: Blob,
}

/// The named keyed states of an operator instance (Flink's heap keyed state
/// backend): per state name, a table from key to value. Tables are created when a
/// function first asks for a state with its descriptor.
///
/// A snapshot drops expired values, then takes a copy-on-write snapshot of every
/// table ([`CowMap`]): the encoding, state by state and key group by key group, can
/// run on another thread while the task goes on (docs/checkpoints.md).
pub struct KeyedStateBackend<K> {
    tables: Vec<Box<dyn AnyTable<K>>>,
    restored: Vec<RestoredTable>,
    clock: Arc<dyn Clock>,
}

impl<K> std::fmt::Debug for KeyedStateBackend<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedStateBackend")
            .field(
                "states",
                &self.tables.iter().map(|t| t.name()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl<K> KeyedStateBackend<K> {
    /// An empty backend whose TTLs run on `clock` (the job's).
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            tables: Vec::new(),
            restored: Vec::new(),
            clock,
        }
    }
}

impl<K> KeyedStateBackend<K>
where
    K: Hash + Eq + Clone + Send + Serialize + DeserializeOwned + 'static,
{
    /// The entries of the state `common` describes, of `kind` and value type `V`,
    /// with its TTL at the current time.
    ///
    /// # Panics
    /// When the name was used with another kind or type (a programming error, like
    /// Flink's; the operator fails naming it), or restored bytes do not decode as
    /// `V`.
    pub(crate) fn table<V: StoredValue>(
        &mut self,
        common: &Common,
        kind: StateKind,
    ) -> (&mut CowMap<K, V>, TtlClock) {
        let now = match common.ttl {
            Some(_) => processing_time_of(self.clock.as_ref()),
            None => 0,
        };
        let ttl = TtlClock::new(common.ttl, now);
        let index = match self.tables.iter().position(|t| t.name() == &*common.name) {
            Some(index) => index,
            None => self.create::<V>(common, kind),
        };
        let table = &mut self.tables[index];
        let found = table.kind();
        let Some(table) = table.as_any_mut().downcast_mut::<Table<K, V>>() else {
            panic!(
                "state '{}' is used with two types ({found:?} state, then {kind:?} state of {})",
                common.name,
                std::any::type_name::<V>()
            );
        };
        if table.kind != kind {
            panic!(
                "state '{}' is used as {:?} state and as {kind:?} state",
                common.name, table.kind
            );
        }
        table.sweep_if_due(&ttl);
        (&mut table.entries, ttl)
    }

    /// The keys holding a live value of the state `common` describes (expired
    /// values are dropped first).
    pub(crate) fn live_keys<V: StoredValue>(&mut self, common: &Common, kind: StateKind) -> Vec<K> {
        let (entries, ttl) = self.table::<V>(common, kind);
        if ttl.has_ttl() {
            entries.retain(|_, v| v.retain_live(&ttl));
        }
        entries.keys()
    }

    /// Creates the table of a state, with its restored entries; returns its index.
    fn create<V: StoredValue>(&mut self, common: &Common, kind: StateKind) -> usize {
        let mut entries = CowMap::new();
        if let Some(at) = self.restored.iter().position(|t| t.name == common.name) {
            let restored = self.restored.swap_remove(at);
            if restored.kind != kind {
                panic!(
                    "state '{}' was checkpointed as {:?} state and is now used as {kind:?} state",
                    common.name, restored.kind
                );
            }
            let restored = decode_groups::<K, V>(&restored.groups).unwrap_or_else(|e| {
                panic!(
                    "state '{}' cannot be restored as {}: {e}",
                    common.name,
                    std::any::type_name::<V>()
                )
            });
            entries.extend(restored);
        }
        self.tables.push(Box::new(Table {
            name: common.name.clone(),
            kind,
            ttl: common.ttl,
            entries,
            accesses: 0,
        }));
        self.tables.len() - 1
    }

    /// Takes back the named states of a checkpoint: per state, every instance's
    /// snapshot of it, of which this instance (`scope`) keeps its key groups.
    ///
    /// # Errors
    /// A corrupt snapshot.
    pub(crate) fn restore(
        &mut self,
        tables: Vec<(String, StateKind, RestoredState)>,
        scope: StateScope,
    ) -> Result<(), StateError> {
        self.tables.clear();
        self.restored.clear();
        for (name, kind, restored) in tables {
            let groups = owned_groups(&restored, scope)?;
            self.restored.push(RestoredTable {
                name: name.into(),
                kind,
                groups: Arc::new(groups),
            });
        }
        Ok(())
    }

    /// Drops expired values and takes a copy-on-write snapshot of every state; the
    /// returned closure encodes it (on any thread) as it was at this moment.
    pub(crate) fn snapshot_deferred(&mut self, max_parallelism: usize) -> EncodeNamed {
        let now = processing_time_of(self.clock.as_ref());
        let mut live = Vec::with_capacity(self.tables.len());
        for table in &mut self.tables {
            table.purge_expired(now);
            live.push(table.snapshot(max_parallelism));
        }
        let restored: Vec<_> = self
            .restored
            .iter()
            .map(|t| (t.name.clone(), t.kind, t.groups.clone()))
            .collect();
        Box::new(move || {
            let mut out = Vec::with_capacity(live.len() + restored.len());
            for encode in live {
                out.push(encode()?);
            }
            for (name, kind, groups) in restored {
                out.push(NamedTable {
                    name: name.to_string(),
                    kind,
                    state: Blob(encode_groups(&groups, max_parallelism)?),
                });
            }
            Ok(out)
        })
    }

    /// Whether no state holds any key (restored or live).
    pub fn is_empty(&self) -> bool {
        self.restored.iter().all(|t| t.groups.is_empty())
            && self.tables.iter().all(|t| t.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;
    use crate::state::ttl::Stamped;
    use crate::state::{StateTtlConfig, ValueStateDescriptor};

    #[test]
    fn expired_values_of_keys_never_read_again_are_swept_out() {
        let clock = ManualClock::new();
        let mut backend = KeyedStateBackend::<u64>::new(Arc::new(clock.clone()));
        let ttl = StateTtlConfig::builder(Duration::from_millis(10))
            .build()
            .unwrap();
        let descriptor = ValueStateDescriptor::<u64>::new("v").with_ttl(ttl);
        let write = |backend: &mut KeyedStateBackend<u64>, key: u64| {
            let (entries, ttl) =
                backend.table::<Stamped<u64>>(&descriptor.common, StateKind::Value);
            entries.insert(key, ttl.stamp(key));
            entries.len()
        };
        for key in 0..3000 {
            write(&mut backend, key);
        }
        clock.advance(Duration::from_millis(10));
        // 3,000 accesses of one other key: the 3,000 expired values go.
        let mut len = 0;
        for _ in 0..3000 {
            len = write(&mut backend, u64::MAX);
        }
        assert_eq!(len, 1);
    }
}
