//! [`KeyedStateDescriptor`]: what every named-state descriptor can do for code that
//! visits many keys' state (the broadcast side's `apply_to_keyed_state`).

use std::hash::Hash;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::backend::KeyedStateBackend;
use super::{
    AggregatingState, AggregatingStateDescriptor, KeyedValueState, ListState, ListStateDescriptor,
    MapState, MapStateDescriptor, ReducingState, ReducingStateDescriptor, StateKind, StateValue,
    ValueStateDescriptor,
};
use crate::state::ttl::Stamped;
use crate::windows::AggregateFunction;

/// A descriptor of a named keyed state: which keys hold a value of it, and the
/// state of one key. Implemented by every state descriptor.
pub trait KeyedStateDescriptor<K> {
    /// The state of one key (such as [`ListState`] for a [`ListStateDescriptor`]).
    type Handle<'a>
    where
        Self: 'a,
        K: 'a;

    /// The keys that hold a live value (expired ones are dropped first).
    fn keys(&self, backend: &mut KeyedStateBackend<K>) -> Vec<K>;

    /// The state of `key`.
    fn handle<'a>(&'a self, backend: &'a mut KeyedStateBackend<K>, key: &'a K) -> Self::Handle<'a>;
}

/// The bound on keys of named state.
pub trait StateKey: Hash + Eq + Clone + Send + Serialize + DeserializeOwned + 'static {}
impl<K: Hash + Eq + Clone + Send + Serialize + DeserializeOwned + 'static> StateKey for K {}

impl<K: StateKey, T: StateValue> KeyedStateDescriptor<K> for ValueStateDescriptor<T> {
    type Handle<'a>
        = KeyedValueState<'a, K, T>
    where
        Self: 'a;

    fn keys(&self, backend: &mut KeyedStateBackend<K>) -> Vec<K> {
        backend.live_keys::<Stamped<T>>(&self.common, StateKind::Value)
    }

    fn handle<'a>(&'a self, backend: &'a mut KeyedStateBackend<K>, key: &'a K) -> Self::Handle<'a> {
        let (entries, ttl) = backend.table(&self.common, StateKind::Value);
        KeyedValueState::new(entries, key, ttl)
    }
}

impl<K: StateKey, T: StateValue> KeyedStateDescriptor<K> for ListStateDescriptor<T> {
    type Handle<'a>
        = ListState<'a, K, T>
    where
        Self: 'a;

    fn keys(&self, backend: &mut KeyedStateBackend<K>) -> Vec<K> {
        backend.live_keys::<Vec<Stamped<T>>>(&self.common, StateKind::List)
    }

    fn handle<'a>(&'a self, backend: &'a mut KeyedStateBackend<K>, key: &'a K) -> Self::Handle<'a> {
        let (entries, ttl) = backend.table(&self.common, StateKind::List);
        ListState::new(entries, key, ttl)
    }
}

impl<K, UK, UV> KeyedStateDescriptor<K> for MapStateDescriptor<UK, UV>
where
    K: StateKey,
    UK: StateValue + Hash + Eq,
    UV: StateValue,
{
    type Handle<'a>
        = MapState<'a, K, UK, UV>
    where
        Self: 'a;

    fn keys(&self, backend: &mut KeyedStateBackend<K>) -> Vec<K> {
        backend.live_keys::<super::map_state::UserMap<UK, UV>>(&self.common, StateKind::Map)
    }

    fn handle<'a>(&'a self, backend: &'a mut KeyedStateBackend<K>, key: &'a K) -> Self::Handle<'a> {
        let (entries, ttl) = backend.table(&self.common, StateKind::Map);
        MapState::new(entries, key, ttl)
    }
}

impl<K: StateKey, T: StateValue> KeyedStateDescriptor<K> for ReducingStateDescriptor<T> {
    type Handle<'a>
        = ReducingState<'a, K, T>
    where
        Self: 'a;

    fn keys(&self, backend: &mut KeyedStateBackend<K>) -> Vec<K> {
        backend.live_keys::<Stamped<T>>(&self.common, StateKind::Reducing)
    }

    fn handle<'a>(&'a self, backend: &'a mut KeyedStateBackend<K>, key: &'a K) -> Self::Handle<'a> {
        let (entries, ttl) = backend.table(&self.common, StateKind::Reducing);
        ReducingState::new(entries, key, ttl, &self.reduce)
    }
}

impl<K, I, O, F> KeyedStateDescriptor<K> for AggregatingStateDescriptor<I, O, F>
where
    K: StateKey,
    F: AggregateFunction<I, O>,
    F::Acc: Clone,
{
    type Handle<'a>
        = AggregatingState<'a, K, I, O, F>
    where
        Self: 'a;

    fn keys(&self, backend: &mut KeyedStateBackend<K>) -> Vec<K> {
        backend.live_keys::<Stamped<F::Acc>>(&self.common, StateKind::Aggregating)
    }

    fn handle<'a>(&'a self, backend: &'a mut KeyedStateBackend<K>, key: &'a K) -> Self::Handle<'a> {
        let (entries, ttl) = backend.table(&self.common, StateKind::Aggregating);
        AggregatingState::new(entries, key, ttl, &self.function)
    }
}
