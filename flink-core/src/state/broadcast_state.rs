//! Broadcast state: maps that every parallel instance of a broadcast-connected
//! operator keeps a full copy of, written only by the broadcast side (Flink's
//! `BroadcastState` and `ReadOnlyBroadcastState`).

use std::any::Any;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

use super::StateValue;
use super::descriptors::MapStateDescriptor;
use super::value_codec::{decode_value, encode_value};
use crate::checkpoint::StateError;

/// A broadcast map of any types.
trait AnyBroadcastMap: Send {
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn encode(&self) -> Result<Vec<u8>, StateError>;
}

impl<UK, UV> AnyBroadcastMap for HashMap<UK, UV>
where
    UK: StateValue + Hash + Eq,
    UV: StateValue,
{
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn encode(&self) -> Result<Vec<u8>, StateError> {
        encode_value(self)
    }
}

/// The broadcast states of one operator instance, by descriptor name: the ones
/// declared with `broadcast_with`, created when first used; restored ones stay
/// encoded until then (their types are known only at that point).
pub struct BroadcastStates {
    declared: Arc<[Arc<str>]>,
    maps: Vec<(Arc<str>, Box<dyn AnyBroadcastMap>)>,
    restored: Vec<(String, Vec<u8>)>,
}

impl std::fmt::Debug for BroadcastStates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BroadcastStates")
            .field("declared", &self.declared)
            .finish_non_exhaustive()
    }
}

impl BroadcastStates {
    /// Empty states of the `declared` names.
    pub fn new(declared: Arc<[Arc<str>]>) -> Self {
        Self {
            declared,
            maps: Vec::new(),
            restored: Vec::new(),
        }
    }

    /// The map of `descriptor`.
    ///
    /// # Panics
    /// When the name was not declared with `broadcast_with`, was used with other
    /// types, or restored bytes do not decode as this map (the operator fails,
    /// naming the state).
    pub(crate) fn map<UK, UV>(
        &mut self,
        descriptor: &MapStateDescriptor<UK, UV>,
    ) -> &mut HashMap<UK, UV>
    where
        UK: StateValue + Hash + Eq,
        UV: StateValue,
    {
        let name = &descriptor.common.name;
        let index = match self.maps.iter().position(|(n, _)| n == name) {
            Some(index) => index,
            None => self.create::<UK, UV>(name),
        };
        self.maps[index]
            .1
            .as_any_mut()
            .downcast_mut::<HashMap<UK, UV>>()
            .unwrap_or_else(|| {
                panic!(
                    "broadcast state '{name}' is used with two types (now {})",
                    std::any::type_name::<HashMap<UK, UV>>()
                )
            })
    }

    fn create<UK, UV>(&mut self, name: &Arc<str>) -> usize
    where
        UK: StateValue + Hash + Eq,
        UV: StateValue,
    {
        if !self.declared.contains(name) {
            panic!(
                "broadcast state '{name}' was not declared: pass its descriptor to broadcast_with (declared: {:?})",
                self.declared
            );
        }
        let mut map: HashMap<UK, UV> = HashMap::new();
        if let Some(at) = self.restored.iter().position(|(n, _)| **n == **name) {
            let (_, bytes) = self.restored.swap_remove(at);
            map = decode_value(&bytes).unwrap_or_else(|e| {
                panic!(
                    "broadcast state '{name}' cannot be restored as {}: {e}",
                    std::any::type_name::<HashMap<UK, UV>>()
                )
            });
        }
        self.maps.push((name.clone(), Box::new(map)));
        self.maps.len() - 1
    }

    /// Every map, encoded, by name (restored ones nobody used since as they were).
    ///
    /// # Errors
    /// A value that cannot be serialized.
    pub(crate) fn snapshot(&self) -> Result<Vec<(String, Vec<u8>)>, StateError> {
        let mut out = Vec::with_capacity(self.maps.len() + self.restored.len());
        for (name, map) in &self.maps {
            out.push((name.to_string(), map.encode()?));
        }
        out.extend(self.restored.iter().cloned());
        Ok(out)
    }

    /// Starts from the maps of a snapshot.
    pub(crate) fn restore(&mut self, maps: Vec<(String, Vec<u8>)>) {
        self.maps.clear();
        self.restored = maps;
    }
}

/// A broadcast map as the broadcast side sees it: read and write (Flink's
/// `BroadcastState`). Every instance receives every broadcast record, so updating
/// the state from the record alone keeps all copies equal.
pub struct BroadcastState<'a, UK, UV> {
    map: &'a mut HashMap<UK, UV>,
}

impl<'a, UK: Hash + Eq, UV> BroadcastState<'a, UK, UV> {
    pub(crate) fn new(map: &'a mut HashMap<UK, UV>) -> Self {
        Self { map }
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &UK) -> Option<&UV> {
        self.map.get(key)
    }

    /// Sets `key` to `value`, returning the previous value.
    pub fn put(&mut self, key: UK, value: UV) -> Option<UV> {
        self.map.insert(key, value)
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &UK) -> Option<UV> {
        self.map.remove(key)
    }

    /// Whether `key` is present.
    pub fn contains(&self, key: &UK) -> bool {
        self.map.contains_key(key)
    }

    /// The entries, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&UK, &UV)> {
        self.map.iter()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.map.clear();
    }
}

/// A broadcast map as the keyed side sees it: read only, as its copy must stay equal
/// to every other instance's (Flink's `ReadOnlyBroadcastState`).
pub struct ReadOnlyBroadcastState<'a, UK, UV> {
    map: &'a HashMap<UK, UV>,
}

impl<'a, UK: Hash + Eq, UV> ReadOnlyBroadcastState<'a, UK, UV> {
    pub(crate) fn new(map: &'a HashMap<UK, UV>) -> Self {
        Self { map }
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &UK) -> Option<&'a UV> {
        self.map.get(key)
    }

    /// Whether `key` is present.
    pub fn contains(&self, key: &UK) -> bool {
        self.map.contains_key(key)
    }

    /// The entries, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a UK, &'a UV)> {
        self.map.iter()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
