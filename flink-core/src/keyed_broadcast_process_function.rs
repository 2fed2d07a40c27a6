//! [`KeyedBroadcastProcessFunction`]: a keyed stream connected with a broadcast
//! stream (Flink's broadcast state pattern), and the contexts of its two sides.

use std::hash::Hash;
use std::ops::{Deref, DerefMut};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::functions::Collector;
use crate::keyed_process_function::KeyedContext;
use crate::process_context::ProcessContext;
use crate::side_output::OutputTag;
use crate::state::{
    BroadcastState, BroadcastStates, KeyedStateBackend, KeyedStateDescriptor, MapStateDescriptor,
    ReadOnlyBroadcastState, StateValue,
};
use crate::watermark::Watermark;

/// The function of a keyed stream connected with a broadcast stream
/// (see [`BroadcastStream`](crate::broadcast_stream::BroadcastStream)), as Flink's
/// `KeyedBroadcastProcessFunction`: keyed records see their key's state (the
/// function's [`State`](Self::State) and named states), timers and a read-only view
/// of the broadcast state; broadcast records, which reach every parallel instance,
/// read and write the broadcast state.
///
/// Records of the two inputs interleave in no fixed order: a keyed record may
/// arrive before the broadcast record it needs (buffer it in keyed state, or decide
/// on a timer, as in Flink).
pub trait KeyedBroadcastProcessFunction<K, I, B, O>: Clone + Send + Sync + 'static {
    /// The value kept per key (`()` for none).
    type State: Serialize + DeserializeOwned + Clone + Send + 'static;

    /// A record of the keyed input, with its key's state in `ctx`.
    fn process_element(
        &mut self,
        record: I,
        ctx: &mut KeyedBroadcastContext<'_, '_, K, Self::State, O>,
    );

    /// A record of the broadcast input; every parallel instance gets each one. The
    /// context also reaches every key's named state of this instance
    /// ([`BroadcastContext::apply_to_keyed_state`]).
    fn process_broadcast_element(&mut self, record: B, ctx: &mut BroadcastContext<'_, O, K>);

    /// A timer of `ctx.key()` fired at `timestamp`.
    fn on_timer(
        &mut self,
        _timestamp: i64,
        _ctx: &mut KeyedBroadcastContext<'_, '_, K, Self::State, O>,
    ) {
    }
}

/// What the keyed side of a [`KeyedBroadcastProcessFunction`] sees: everything of a
/// [`KeyedContext`] (it dereferences to one) and the broadcast state, read only
/// (Flink's `ReadOnlyContext`).
pub struct KeyedBroadcastContext<'c, 'a, K, S, O> {
    keyed: &'c mut KeyedContext<'a, K, S, O>,
    broadcast: &'c mut BroadcastStates,
}

impl<'c, 'a, K, S, O> KeyedBroadcastContext<'c, 'a, K, S, O> {
    pub(crate) fn new(
        keyed: &'c mut KeyedContext<'a, K, S, O>,
        broadcast: &'c mut BroadcastStates,
    ) -> Self {
        Self { keyed, broadcast }
    }

    /// The broadcast state of `descriptor`, read only.
    ///
    /// # Panics
    /// When `descriptor` was not declared with `broadcast_with` or its name was used
    /// with other types (the operator fails, naming the state).
    pub fn get_broadcast_state<UK, UV>(
        &mut self,
        descriptor: &MapStateDescriptor<UK, UV>,
    ) -> ReadOnlyBroadcastState<'_, UK, UV>
    where
        UK: StateValue + Hash + Eq,
        UV: StateValue,
    {
        ReadOnlyBroadcastState::new(self.broadcast.map(descriptor))
    }
}

impl<'a, K, S, O> Deref for KeyedBroadcastContext<'_, 'a, K, S, O> {
    type Target = KeyedContext<'a, K, S, O>;

    fn deref(&self) -> &Self::Target {
        self.keyed
    }
}

impl<K, S, O> DerefMut for KeyedBroadcastContext<'_, '_, K, S, O> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.keyed
    }
}

impl<K, S, O> Collector<O> for KeyedBroadcastContext<'_, '_, K, S, O> {
    fn collect(&mut self, record: O) {
        self.keyed.collect(record);
    }

    fn flush_before_wait(&mut self) {
        self.keyed.flush_before_wait();
    }
}

/// What the broadcast side of a broadcast process function sees: the broadcast
/// state to read and write, the outputs and the time (Flink's `Context`). It has no
/// current key, so no timers; keyed (`K` the key type), it reaches the named state
/// of every key of its instance with
/// [`apply_to_keyed_state`](Self::apply_to_keyed_state). Non-keyed, `K` is `()`.
pub struct BroadcastContext<'a, O, K = ()> {
    out: ProcessContext<'a, O>,
    broadcast: &'a mut BroadcastStates,
    keyed: Option<&'a mut KeyedStateBackend<K>>,
    processing_time: i64,
}

impl<'a, O, K> BroadcastContext<'a, O, K> {
    pub(crate) fn new(
        out: ProcessContext<'a, O>,
        broadcast: &'a mut BroadcastStates,
        keyed: Option<&'a mut KeyedStateBackend<K>>,
        processing_time: i64,
    ) -> Self {
        Self {
            out,
            broadcast,
            keyed,
            processing_time,
        }
    }

    /// The broadcast state of `descriptor`, to read and write.
    ///
    /// # Panics
    /// As [`KeyedBroadcastContext::get_broadcast_state`].
    pub fn get_broadcast_state<UK, UV>(
        &mut self,
        descriptor: &MapStateDescriptor<UK, UV>,
    ) -> BroadcastState<'_, UK, UV>
    where
        UK: StateValue + Hash + Eq,
        UV: StateValue,
    {
        BroadcastState::new(self.broadcast.map(descriptor))
    }

    /// Emits `value` to the side output `tag`.
    pub fn output<T: 'static>(&mut self, tag: &OutputTag<T>, value: T) {
        self.out.output(tag, value);
    }

    /// The last watermark this operator received.
    pub fn current_watermark(&self) -> Watermark {
        self.out.current_watermark()
    }

    /// The job's processing time (ms on its clock).
    pub fn current_processing_time(&self) -> i64 {
        self.processing_time
    }
}

impl<O, K> BroadcastContext<'_, O, K>
where
    K: Hash + Eq + Clone + Send + Serialize + DeserializeOwned + 'static,
{
    /// Calls `f` with every key of this instance that holds a value of the named
    /// state `descriptor`, and that key's state (Flink's `applyToKeyedState`): to
    /// update or clear it, or to read it and emit afterwards. Expired values (TTL)
    /// are not visited.
    ///
    /// Does nothing in a non-keyed function (it has no keyed state).
    ///
    /// # Panics
    /// As [`KeyedContext::get_state`].
    pub fn apply_to_keyed_state<D>(&mut self, descriptor: &D, mut f: impl FnMut(&K, D::Handle<'_>))
    where
        D: KeyedStateDescriptor<K>,
    {
        let Some(backend) = self.keyed.as_deref_mut() else {
            return;
        };
        for key in descriptor.keys(backend) {
            f(&key, descriptor.handle(backend, &key));
        }
    }
}

impl<O, K> Collector<O> for BroadcastContext<'_, O, K> {
    fn collect(&mut self, record: O) {
        self.out.collect(record);
    }

    fn flush_before_wait(&mut self) {
        self.out.flush_before_wait();
    }
}
