//! [`BroadcastProcessFunction`]: a non-keyed stream connected with a broadcast
//! stream, and the read-only context of its non-broadcast side.

use std::hash::Hash;

use crate::functions::Collector;
use crate::keyed_broadcast_process_function::BroadcastContext;
use crate::process_context::ProcessContext;
use crate::side_output::OutputTag;
use crate::state::{BroadcastStates, MapStateDescriptor, ReadOnlyBroadcastState, StateValue};
use crate::watermark::Watermark;

/// The function of a non-keyed stream connected with a broadcast stream (see
/// [`DataStream::connect_broadcast`](crate::datastream::DataStream::connect_broadcast)),
/// as Flink's `BroadcastProcessFunction`: records of the stream read the broadcast
/// state; broadcast records, which reach every parallel instance, write it. No
/// keyed state and no timers (those need a key).
pub trait BroadcastProcessFunction<I, B, O>: Clone + Send + Sync + 'static {
    /// A record of the non-broadcast input.
    fn process_element(&mut self, record: I, ctx: &mut ReadOnlyBroadcastContext<'_, O>);

    /// A record of the broadcast input; every parallel instance gets each one.
    fn process_broadcast_element(&mut self, record: B, ctx: &mut BroadcastContext<'_, O>);
}

/// What the non-broadcast side of a [`BroadcastProcessFunction`] sees: the broadcast
/// state, read only, the outputs and the time (Flink's `ReadOnlyContext`).
pub struct ReadOnlyBroadcastContext<'a, O> {
    out: ProcessContext<'a, O>,
    broadcast: &'a mut BroadcastStates,
    timestamp: Option<i64>,
    processing_time: i64,
}

impl<'a, O> ReadOnlyBroadcastContext<'a, O> {
    pub(crate) fn new(
        out: ProcessContext<'a, O>,
        broadcast: &'a mut BroadcastStates,
        timestamp: Option<i64>,
        processing_time: i64,
    ) -> Self {
        Self {
            out,
            broadcast,
            timestamp,
            processing_time,
        }
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

    /// The record's event timestamp, if the stream has timestamps.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
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

impl<O> Collector<O> for ReadOnlyBroadcastContext<'_, O> {
    fn collect(&mut self, record: O) {
        self.out.collect(record);
    }

    fn flush_before_wait(&mut self) {
        self.out.flush_before_wait();
    }
}
