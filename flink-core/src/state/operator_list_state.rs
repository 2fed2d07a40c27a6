//! Operator (non-keyed) list state, as Flink's `OperatorStateStore.getListState`
//! (even-split redistribution) and `getUnionListState` (every instance gets every
//! element): lists that belong to an operator instance, not to a key, checkpointed
//! with it and dealt out again when a job restores at another parallelism.
//!
//! Each element is encoded on its own, so a restore redistributes the lists
//! before their type is known (it is, only when the function first asks for one):
//! the saved instances' lists are concatenated in subtask order; with even split
//! instance `i` of `p` takes the elements at positions `k` with `k % p == i`, with
//! union every instance takes all.

use std::any::Any;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::StateValue;
use super::descriptors::ListStateDescriptor;
use super::value_codec::{decode_value, encode_value};
use crate::checkpoint::{RestoredState, StateError, decode_state, encode_state};

/// How a list is dealt out when a job restores at another parallelism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Redistribution {
    /// Round-robin over the concatenated lists (Flink's `getListState`).
    EvenSplit,
    /// Every instance gets every element (Flink's `getUnionListState`).
    Union,
}

/// A list of any element type.
trait AnyList: Send {
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn encode(&self) -> Result<Vec<Vec<u8>>, StateError>;
}

impl<T: StateValue> AnyList for Vec<T> {
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn encode(&self) -> Result<Vec<Vec<u8>>, StateError> {
        self.iter().map(encode_value).collect()
    }
}

/// One list in a snapshot: name, redistribution, each element's bytes.
type SavedList = (String, Redistribution, Vec<Vec<u8>>);

/// The operator list states of one operator instance, by descriptor name, created
/// when first used; restored ones stay encoded until then.
#[derive(Default)]
pub struct OperatorListStates {
    lists: Vec<(Arc<str>, Redistribution, Box<dyn AnyList>)>,
    restored: Vec<SavedList>,
}

impl std::fmt::Debug for OperatorListStates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.lists.iter().map(|(n, _, _)| &**n).collect();
        f.debug_struct("OperatorListStates")
            .field("lists", &names)
            .finish_non_exhaustive()
    }
}

impl OperatorListStates {
    /// The list of `descriptor`, redistributed by `mode`.
    ///
    /// # Panics
    /// When the name is used with two types or two modes, or restored bytes do
    /// not decode as `T` (the operator fails, naming the state).
    pub(crate) fn list<T: StateValue>(
        &mut self,
        descriptor: &ListStateDescriptor<T>,
        mode: Redistribution,
    ) -> &mut Vec<T> {
        let name = &descriptor.common.name;
        let index = match self.lists.iter().position(|(n, _, _)| n == name) {
            Some(index) => index,
            None => self.create::<T>(name, mode),
        };
        let (_, saved_mode, list) = &mut self.lists[index];
        assert_eq!(
            *saved_mode, mode,
            "operator list state '{name}' is used with two redistributions"
        );
        list.as_any_mut()
            .downcast_mut::<Vec<T>>()
            .unwrap_or_else(|| panic!("operator list state '{name}' is used with two types"))
    }

    fn create<T: StateValue>(&mut self, name: &Arc<str>, mode: Redistribution) -> usize {
        let mut list: Vec<T> = Vec::new();
        if let Some(at) = self.restored.iter().position(|(n, _, _)| **n == **name) {
            let (_, saved_mode, elements) = self.restored.swap_remove(at);
            assert_eq!(
                saved_mode, mode,
                "operator list state '{name}' was saved with another redistribution"
            );
            list = elements
                .iter()
                .map(|bytes| decode_value(bytes))
                .collect::<Result<_, _>>()
                .unwrap_or_else(|e| {
                    panic!(
                        "operator list state '{name}' cannot be restored as {}: {e}",
                        std::any::type_name::<Vec<T>>()
                    )
                });
        }
        self.lists.push((name.clone(), mode, Box::new(list)));
        self.lists.len() - 1
    }

    /// Whether there is no list at all (nothing to snapshot).
    pub(crate) fn is_empty(&self) -> bool {
        self.lists.is_empty() && self.restored.is_empty()
    }

    /// Every list, each element encoded on its own (restored lists nobody used
    /// since as they were).
    ///
    /// # Errors
    /// An element that cannot be serialized.
    pub(crate) fn snapshot(&self) -> Result<Vec<u8>, StateError> {
        let mut saved: Vec<SavedList> = Vec::with_capacity(self.lists.len());
        for (name, mode, list) in &self.lists {
            saved.push((name.to_string(), *mode, list.encode()?));
        }
        saved.extend(self.restored.iter().cloned());
        encode_state(&saved)
    }

    /// Starts from what every saved instance of the operator snapshotted, dealt
    /// out to instance `subtask` of `parallelism` (see the module's docs).
    ///
    /// # Errors
    /// A snapshot that does not decode.
    pub(crate) fn restore(
        &mut self,
        restored: &RestoredState,
        subtask: usize,
        parallelism: usize,
    ) -> Result<(), StateError> {
        let mut all: Vec<SavedList> = Vec::new();
        for bytes in restored.all() {
            for (name, mode, elements) in decode_state::<Vec<SavedList>>(bytes)? {
                match all.iter_mut().find(|(n, _, _)| *n == name) {
                    Some((_, _, list)) => list.extend(elements),
                    None => all.push((name, mode, elements)),
                }
            }
        }
        let p = parallelism.max(1);
        for (_, mode, elements) in &mut all {
            if *mode == Redistribution::EvenSplit {
                let concatenated = std::mem::take(elements);
                *elements = concatenated
                    .into_iter()
                    .enumerate()
                    .filter(|(k, _)| k % p == subtask)
                    .map(|(_, e)| e)
                    .collect();
            }
        }
        self.lists.clear();
        self.restored = all;
        Ok(())
    }
}

/// An operator instance's list (Flink's operator `ListState`): what it holds is
/// checkpointed with the instance and redistributed on a rescaled restore.
pub struct OperatorListState<'a, T> {
    list: &'a mut Vec<T>,
}

impl<'a, T> OperatorListState<'a, T> {
    pub(crate) fn new(list: &'a mut Vec<T>) -> Self {
        Self { list }
    }

    /// The elements in the order they were added.
    pub fn get(&self) -> impl Iterator<Item = &T> {
        self.list.iter()
    }

    /// Appends `value`.
    pub fn add(&mut self, value: T) {
        self.list.push(value);
    }

    /// Appends every value of `values`.
    pub fn add_all(&mut self, values: impl IntoIterator<Item = T>) {
        self.list.extend(values);
    }

    /// Replaces the list by `values`.
    pub fn update(&mut self, values: Vec<T>) {
        *self.list = values;
    }

    /// Removes every element.
    pub fn clear(&mut self) {
        self.list.clear();
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}
