//! [`KeyedProcessFunction`]: a function of a keyed stream with per-key state and
//! timers, as Flink's `KeyedProcessFunction`, and the [`KeyedContext`] it is called
//! with.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::functions::Collector;
use crate::process_context::ProcessContext;
use crate::side_output::OutputTag;
use crate::state::ValueState;
use crate::timers::TimerService;

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
    type State: Serialize + DeserializeOwned + Send + 'static;

    /// Called for each record, with the record's key in `ctx`.
    fn process_element(&mut self, record: I, ctx: &mut KeyedContext<'_, K, Self::State, O>);

    /// Called when a timer of `ctx.key()` at `timestamp` fires.
    fn on_timer(&mut self, _timestamp: i64, _ctx: &mut KeyedContext<'_, K, Self::State, O>) {}
}

/// What a [`KeyedProcessFunction`] call sees: the key, its state, its timers, the
/// outputs, and the time.
pub struct KeyedContext<'a, K, S, O> {
    key: &'a K,
    state: ValueState<'a, S>,
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
        timers: TimerService<'a, K>,
        out: ProcessContext<'a, O>,
        timestamp: Option<i64>,
        time_domain: Option<TimeDomain>,
    ) -> Self {
        Self {
            key,
            state,
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

impl<K, S, O> Collector<O> for KeyedContext<'_, K, S, O> {
    fn collect(&mut self, record: O) {
        self.out.collect(record);
    }

    fn flush_before_wait(&mut self) {
        self.out.flush_before_wait();
    }
}
