//! [`KeyedProcessFunction`]: a function of a keyed stream with per-key state and
//! timers, as Flink's `KeyedProcessFunction`, and the [`KeyedContext`] it is called
//! with.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::functions::Collector;
use crate::process_context::ProcessContext;
use crate::side_output::OutputTag;
use crate::state::{
    AggregatingState, AggregatingStateDescriptor, KeyedStateBackend, KeyedValueState, ListState,
    ListStateDescriptor, MapState, MapStateDescriptor, ReducingState, ReducingStateDescriptor,
    StateKind, StateValue, ValueState, ValueStateDescriptor,
};
use crate::timers::TimerService;
use crate::windows::AggregateFunction;

/// Which clock fired a timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeDomain {
    /// The watermark passed the timer.
    EventTime,
    /// The job's clock passed the timer.
    ProcessingTime,
}

/// A keyed function with one value state per key and timers (see
/// [`KeyedStream::process_function`](crate::keyed_stream::KeyedStream::process_function)).
/// One instance runs per parallel subtask and serves every key of it; per-key data
/// belongs in the [`State`](Self::State), which checkpoints keep by key group with the
/// key's timers.
pub trait KeyedProcessFunction<K, I, O>: Clone + Send + Sync + 'static {
    /// The value kept per key (`()` for none).
    type State: Serialize + DeserializeOwned + Clone + Send + 'static;

    /// Called for each record, with the record's key in `ctx`.
    fn process_element(&mut self, record: I, ctx: &mut KeyedContext<'_, K, Self::State, O>);

    /// Called when a timer of `ctx.key()` at `timestamp` fires.
    fn on_timer(&mut self, _timestamp: i64, _ctx: &mut KeyedContext<'_, K, Self::State, O>) {}
}

/// What a [`KeyedProcessFunction`] call sees: the key, its state, its timers, the
/// outputs, and the time.
///
/// Besides the function's own [`State`](KeyedProcessFunction::State), the key's
/// named states are obtained with their descriptors, as many as the function
/// declares (Flink's `getRuntimeContext().getListState(..)` and the like):
///
/// ```
/// use flink_core::prelude::*;
/// use flink_core::state::{ListStateDescriptor, MapStateDescriptor};
///
/// /// Per user: the pages visited in order, and how often each.
/// #[derive(Clone)]
/// struct Visits {
///     pages: ListStateDescriptor<String>,
///     counts: MapStateDescriptor<String, u32>,
/// }
///
/// impl KeyedProcessFunction<u32, (u32, String), (u32, String, u32, usize)> for Visits {
///     type State = ();
///
///     fn process_element(
///         &mut self,
///         (user, page): (u32, String),
///         ctx: &mut KeyedContext<u32, (), (u32, String, u32, usize)>,
///     ) {
///         ctx.get_list_state(&self.pages).add(page.clone());
///         let mut counts = ctx.get_map_state(&self.counts);
///         let n = counts.get(&page).copied().unwrap_or(0) + 1;
///         counts.put(page.clone(), n);
///         let visited = ctx.get_list_state(&self.pages).get().count();
///         ctx.collect((user, page, n, visited));
///     }
/// }
///
/// let env = StreamExecutionEnvironment::new();
/// let visits = Visits {
///     pages: ListStateDescriptor::new("pages"),
///     counts: MapStateDescriptor::new("counts"),
/// };
/// let out = env
///     .from_collection(vec![(1u32, "a".to_string()), (1, "b".into()), (1, "a".into())])
///     .key_by(|r: &(u32, String)| r.0)
///     .process_function(visits)
///     .collect_vec();
/// # let _ = out;
/// ```
pub struct KeyedContext<'a, K, S, O> {
    key: &'a K,
    state: ValueState<'a, S>,
    named: &'a mut KeyedStateBackend<K>,
    timers: TimerService<'a, K>,
    out: ProcessContext<'a, O>,
    timestamp: Option<i64>,
    time_domain: Option<TimeDomain>,
}

impl<'a, K, S, O> KeyedContext<'a, K, S, O> {
    /// The context of one call.
    pub(crate) fn new(
        key: &'a K,
        state: ValueState<'a, S>,
        named: &'a mut KeyedStateBackend<K>,
        timers: TimerService<'a, K>,
        out: ProcessContext<'a, O>,
        timestamp: Option<i64>,
        time_domain: Option<TimeDomain>,
    ) -> Self {
        Self {
            key,
            state,
            named,
            timers,
            out,
            timestamp,
            time_domain,
        }
    }

    /// The key of the record or timer.
    pub fn key(&self) -> &K {
        self.key
    }

    /// The key's state.
    pub fn state(&mut self) -> &mut ValueState<'a, S> {
        &mut self.state
    }

    /// The key's timers and the current times.
    pub fn timer_service(&mut self) -> &mut TimerService<'a, K> {
        &mut self.timers
    }

    /// The record's event timestamp (if the stream has timestamps), or the firing
    /// timer's timestamp in `on_timer`.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// In `on_timer`: which clock fired the timer; `None` for a record.
    pub fn time_domain(&self) -> Option<TimeDomain> {
        self.time_domain
    }

    /// Emits `value` to the side output `tag`.
    pub fn output<T: 'static>(&mut self, tag: &OutputTag<T>, value: T) {
        self.out.output(tag, value);
    }
}

impl<K, S, O> KeyedContext<'_, K, S, O>
where
    K: std::hash::Hash + Eq + Clone + Send + Serialize + DeserializeOwned + 'static,
{
    /// The key's value of the named value state `descriptor` (Flink's `getState`).
    ///
    /// # Panics
    /// If the state's name was used with another kind or type (the operator fails,
    /// naming it).
    pub fn get_state<T: StateValue>(
        &mut self,
        descriptor: &ValueStateDescriptor<T>,
    ) -> KeyedValueState<'_, K, T> {
        let (entries, ttl) = self.named.table(&descriptor.common, StateKind::Value);
        KeyedValueState::new(entries, self.key, ttl)
    }

    /// The key's list of the named list state `descriptor`.
    ///
    /// # Panics
    /// As [`get_state`](Self::get_state).
    pub fn get_list_state<T: StateValue>(
        &mut self,
        descriptor: &ListStateDescriptor<T>,
    ) -> ListState<'_, K, T> {
        let (entries, ttl) = self.named.table(&descriptor.common, StateKind::List);
        ListState::new(entries, self.key, ttl)
    }

    /// The key's map of the named map state `descriptor`.
    ///
    /// # Panics
    /// As [`get_state`](Self::get_state).
    pub fn get_map_state<UK, UV>(
        &mut self,
        descriptor: &MapStateDescriptor<UK, UV>,
    ) -> MapState<'_, K, UK, UV>
    where
        UK: StateValue + std::hash::Hash + Eq,
        UV: StateValue,
    {
        let (entries, ttl) = self.named.table(&descriptor.common, StateKind::Map);
        MapState::new(entries, self.key, ttl)
    }

    /// The key's value of the named reducing state `descriptor`.
    ///
    /// # Panics
    /// As [`get_state`](Self::get_state).
    pub fn get_reducing_state<'s, T: StateValue>(
        &'s mut self,
        descriptor: &'s ReducingStateDescriptor<T>,
    ) -> ReducingState<'s, K, T> {
        let (entries, ttl) = self.named.table(&descriptor.common, StateKind::Reducing);
        ReducingState::new(entries, self.key, ttl, &descriptor.reduce)
    }

    /// The key's accumulator of the named aggregating state `descriptor`.
    ///
    /// # Panics
    /// As [`get_state`](Self::get_state).
    pub fn get_aggregating_state<'s, I, Out, F>(
        &'s mut self,
        descriptor: &'s AggregatingStateDescriptor<I, Out, F>,
    ) -> AggregatingState<'s, K, I, Out, F>
    where
        F: AggregateFunction<I, Out>,
        F::Acc: Clone,
    {
        let (entries, ttl) = self.named.table(&descriptor.common, StateKind::Aggregating);
        AggregatingState::new(entries, self.key, ttl, &descriptor.function)
    }
}

impl<K, S, O> Collector<O> for KeyedContext<'_, K, S, O> {
    fn collect(&mut self, record: O) {
        self.out.collect(record);
    }

    fn flush_before_wait(&mut self) {
        self.out.flush_before_wait();
    }

    fn set_timestamp(&mut self, timestamp: i64) {
        self.out.set_timestamp(timestamp);
    }
}
