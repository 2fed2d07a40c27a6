//! [`ProcessFunction`]: a function of a non-keyed stream with the context of the
//! record (its timestamp, the time, side outputs), as Flink's `ProcessFunction`.
//! Timers need a key, so its context has no timer service: a function that needs
//! timers runs on a [`KeyedStream`](crate::keyed_stream::KeyedStream) (Flink throws
//! at run time when one is registered here; in flink-rs such a call does not
//! compile).

use std::marker::PhantomData;
use std::sync::Arc;

use crate::checkpoint::{RestoredState, StateError};
use crate::clock::Clock;
use crate::datastream::DataStream;
use crate::functions::Collector;
use crate::operator::{ForwardTo, Operator, RuntimeContext, StateScope};
use crate::process_context::{ProcessContext, SideOutputCache};
use crate::side_output::OutputTag;
use crate::state::{
    ListStateDescriptor, OperatorListState, OperatorListStates, Redistribution, StateValue,
};
use crate::stream_type::Record;
use crate::timers::processing_time_of;
use crate::watermark::{NO_TIMESTAMP, TimestampFn, Watermark};

/// A function called per record of a non-keyed stream with a
/// [`ProcessFunctionContext`] (see [`DataStream::process`]). Implemented by
/// closures `FnMut(I, &mut ProcessFunctionContext<O>)` too.
pub trait ProcessFunction<I, O>: Clone + Send + Sync + 'static {
    /// Called for each record; emits with `ctx.collect` and `ctx.output`.
    fn process_element(&mut self, record: I, ctx: &mut ProcessFunctionContext<'_, O>);
}

impl<I, O, F> ProcessFunction<I, O> for F
where
    F: FnMut(I, &mut ProcessFunctionContext<'_, O>) + Clone + Send + Sync + 'static,
{
    fn process_element(&mut self, record: I, ctx: &mut ProcessFunctionContext<'_, O>) {
        self(record, ctx)
    }
}

/// What a [`ProcessFunction`] call sees (Flink's `ProcessFunction.Context`): the
/// main and side outputs, the record's timestamp, the current watermark, the
/// job's processing time and the instance's operator list states.
pub struct ProcessFunctionContext<'a, O> {
    out: ProcessContext<'a, O>,
    timestamp: Option<i64>,
    clock: &'a dyn Clock,
    lists: &'a mut OperatorListStates,
}

impl<'a, O> ProcessFunctionContext<'a, O> {
    /// The context of one call.
    pub(crate) fn new(
        out: ProcessContext<'a, O>,
        timestamp: Option<i64>,
        clock: &'a dyn Clock,
        lists: &'a mut OperatorListStates,
    ) -> Self {
        Self {
            out,
            timestamp,
            clock,
            lists,
        }
    }

    /// This instance's list of `descriptor` (Flink's operator `getListState`):
    /// checkpointed with the instance; on a restore at another parallelism the
    /// saved instances' lists are dealt out round-robin (even split), so every
    /// element lands on exactly one instance.
    ///
    /// ```
    /// use flink_core::prelude::*;
    /// use flink_core::state::ListStateDescriptor;
    ///
    /// let seen = ListStateDescriptor::<u64>::new("seen");
    /// let env = StreamExecutionEnvironment::new();
    /// env.from_sequence(1, 10).process(move |x: u64, ctx| {
    ///     let mut list = ctx.list_state(&seen);
    ///     list.add(x);
    ///     let n = list.len() as u64;
    ///     ctx.collect(n);
    /// });
    /// ```
    ///
    /// # Panics
    /// When the name is used with two types, or also as a union list state.
    pub fn list_state<T: StateValue>(
        &mut self,
        descriptor: &ListStateDescriptor<T>,
    ) -> OperatorListState<'_, T> {
        OperatorListState::new(self.lists.list(descriptor, Redistribution::EvenSplit))
    }

    /// This instance's union list of `descriptor` (Flink's `getUnionListState`):
    /// on any restore every instance gets the elements of every saved instance.
    ///
    /// ```
    /// use flink_core::prelude::*;
    /// use flink_core::state::ListStateDescriptor;
    ///
    /// let offsets = ListStateDescriptor::<u64>::new("offsets");
    /// let env = StreamExecutionEnvironment::new();
    /// env.from_sequence(1, 10).process(move |x: u64, ctx| {
    ///     ctx.union_list_state(&offsets).update(vec![x]);
    ///     ctx.collect(x);
    /// });
    /// ```
    ///
    /// # Panics
    /// When the name is used with two types, or also as an even-split list state.
    pub fn union_list_state<T: StateValue>(
        &mut self,
        descriptor: &ListStateDescriptor<T>,
    ) -> OperatorListState<'_, T> {
        OperatorListState::new(self.lists.list(descriptor, Redistribution::Union))
    }

    /// The record's event timestamp, if the stream has timestamps.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// Emits `value` to the side output `tag`.
    pub fn output<T: 'static>(&mut self, tag: &OutputTag<T>, value: T) {
        self.out.output(tag, value);
    }

    /// The last watermark this operator received ([`Watermark::MIN`] before any).
    pub fn current_watermark(&self) -> Watermark {
        self.out.current_watermark()
    }

    /// The job's processing time (ms on its clock).
    pub fn current_processing_time(&self) -> i64 {
        processing_time_of(self.clock)
    }
}

impl<O> Collector<O> for ProcessFunctionContext<'_, O> {
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

/// Runs a [`ProcessFunction`] per record.
pub struct ProcessOperator<I, O, F> {
    f: F,
    lists: OperatorListStates,
    side_outputs: SideOutputCache,
    watermark: Watermark,
    clock: Arc<dyn Clock>,
    timestamps: Option<TimestampFn<I>>,
    _types: PhantomData<fn(I) -> O>,
}

impl<I, O, F> ProcessOperator<I, O, F> {
    /// Runs `f` (event times from `timestamps`, if the stream has them) in the
    /// instance `ctx`.
    pub fn new(f: F, timestamps: Option<TimestampFn<I>>, ctx: &RuntimeContext) -> Self {
        Self {
            f,
            lists: OperatorListStates::default(),
            side_outputs: SideOutputCache::new(ctx.side_outputs.clone()),
            watermark: Watermark::MIN,
            clock: ctx.services.clock.clone(),
            timestamps,
            _types: PhantomData,
        }
    }
}

impl<I: 'static, O: 'static, F: ProcessFunction<I, O>> Operator<I, O> for ProcessOperator<I, O, F> {
    fn process<C: Collector<O> + ?Sized>(&mut self, record: I, out: &mut C) {
        let timestamp = self.timestamps.as_ref().map(|t| t(&record));
        self.process_at(record, timestamp, out);
    }

    fn process_timestamped<C: Collector<O> + ?Sized>(
        &mut self,
        record: I,
        timestamp: i64,
        out: &mut C,
    ) {
        self.process_at(
            record,
            (timestamp != NO_TIMESTAMP).then_some(timestamp),
            out,
        );
    }

    fn process_watermark<C: Collector<O> + ?Sized>(&mut self, watermark: Watermark, out: &mut C) {
        self.watermark = watermark;
        out.emit_watermark(watermark);
    }

    /// The operator list states, if the function has any.
    fn snapshot_state(&mut self, _: StateScope, _: u64) -> Result<Option<Vec<u8>>, StateError> {
        if self.lists.is_empty() {
            return Ok(None);
        }
        self.lists.snapshot().map(Some)
    }

    /// Every saved instance's lists, dealt out to this one.
    fn restore_state(
        &mut self,
        scope: StateScope,
        restored: &RestoredState,
    ) -> Result<(), StateError> {
        self.lists
            .restore(restored, scope.subtask_index, scope.parallelism)
    }
}

impl<I: 'static, O: 'static, F: ProcessFunction<I, O>> ProcessOperator<I, O, F> {
    /// Calls the function for `record`, whose event time is `timestamp`.
    fn process_at<C: Collector<O> + ?Sized>(
        &mut self,
        record: I,
        timestamp: Option<i64>,
        out: &mut C,
    ) {
        let mut forward = ForwardTo(out);
        let out = ProcessContext::new(&mut forward, &mut self.side_outputs, self.watermark);
        let mut ctx =
            ProcessFunctionContext::new(out, timestamp, self.clock.as_ref(), &mut self.lists);
        self.f.process_element(record, &mut ctx);
    }
}

impl<T: Record> DataStream<T> {
    /// Runs `f` per record with a [`ProcessFunctionContext`] (Flink's non-keyed
    /// `process`): any number of outputs, side outputs, the record's timestamp, the
    /// current watermark and processing time. No timers: those need a
    /// [`KeyedStream`](crate::keyed_stream::KeyedStream). A named
    /// [`ProcessFunction`] goes to [`process_function`](Self::process_function).
    ///
    /// ```
    /// use flink_core::prelude::*;
    ///
    /// let env = StreamExecutionEnvironment::new();
    /// let odd = OutputTag::<u64>::new("odd");
    /// let tag = odd.clone();
    /// let halves = env
    ///     .from_sequence(1, 10)
    ///     .process(move |x, ctx| {
    ///         if x % 2 == 0 { ctx.collect(x / 2) } else { ctx.output(&tag, x) }
    ///     })
    ///     .collect_vec();
    /// # let _ = halves;
    /// ```
    pub fn process<O, F>(&self, f: F) -> DataStream<O>
    where
        O: Record,
        F: FnMut(T, &mut ProcessFunctionContext<'_, O>) + Clone + Send + Sync + 'static,
    {
        self.process_function(f)
    }

    /// Runs a [`ProcessFunction`] per record; see [`process`](Self::process).
    pub fn process_function<O: Record, F: ProcessFunction<T, O>>(&self, f: F) -> DataStream<O> {
        self.transform("Process", move |ctx| {
            ProcessOperator::new(f.clone(), None, ctx)
        })
    }
}

#[cfg(test)]
mod tests {

    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;

    /// Emits (record, its timestamp, the watermark, processing time).
    #[derive(Clone)]
    struct Times;

    type Out = (i64, Option<i64>, i64, i64);

    impl ProcessFunction<i64, Out> for Times {
        fn process_element(&mut self, x: i64, ctx: &mut ProcessFunctionContext<'_, Out>) {
            let out = (
                x,
                ctx.timestamp(),
                ctx.current_watermark().timestamp(),
                ctx.current_processing_time(),
            );
            ctx.collect(out);
        }
    }

    /// Adds each record to the even-split list "seen" and the union list "all";
    /// on a record below 0 emits both lists instead (tagged 0 and 1).
    #[derive(Clone)]
    struct Lists;

    impl ProcessFunction<i64, (u8, Vec<i64>)> for Lists {
        fn process_element(
            &mut self,
            x: i64,
            ctx: &mut ProcessFunctionContext<'_, (u8, Vec<i64>)>,
        ) {
            let (seen, all) = (
                ListStateDescriptor::<i64>::new("seen"),
                ListStateDescriptor::<i64>::new("all"),
            );
            if x < 0 {
                let even: Vec<i64> = ctx.list_state(&seen).get().copied().collect();
                let union: Vec<i64> = ctx.union_list_state(&all).get().copied().collect();
                ctx.collect((0, even));
                ctx.collect((1, union));
            } else {
                ctx.list_state(&seen).add(x);
                ctx.union_list_state(&all).add(x);
            }
        }
    }

    /// Instance `subtask` of `p`, restored from `saved` (one state per saved
    /// instance), asked for its lists: (even-split list, union list).
    fn restored_lists(saved: &[Option<Vec<u8>>], subtask: usize, p: usize) -> (Vec<i64>, Vec<i64>) {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new());
        let ctx = RuntimeContext::standalone("lists", subtask, p, clock);
        let mut op = ProcessOperator::new(Lists, None, &ctx);
        let restored = RestoredState {
            checkpoint_id: Some(1),
            by_subtask: saved.iter().map(|s| s.as_deref().map(Arc::from)).collect(),
        };
        let scope = StateScope {
            subtask_index: subtask,
            parallelism: p,
            max_parallelism: 128,
        };
        op.restore_state(scope, &restored).unwrap();
        let mut out = Vec::new();
        op.process(-1, &mut out);
        let [(0, even), (1, union)] = <[_; 2]>::try_from(out).unwrap() else {
            panic!("two lists");
        };
        (even, union)
    }

    #[test]
    fn operator_list_states_saved_at_two_are_dealt_out_at_one_and_three() {
        // Two instances: the first saw 0..5, the second 10..17.
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new());
        let mut saved = Vec::new();
        for (subtask, records) in [(0, 0..5), (1, 10..17)] {
            let ctx = RuntimeContext::standalone("lists", subtask, 2, clock.clone());
            let mut op = ProcessOperator::new(Lists, None, &ctx);
            for x in records {
                op.process(x, &mut Vec::new());
            }
            let scope = StateScope {
                subtask_index: subtask,
                parallelism: 2,
                max_parallelism: 128,
            };
            saved.push(op.snapshot_state(scope, 1).unwrap());
        }
        let every: Vec<i64> = (0..5).chain(10..17).collect();
        for p in [1, 3] {
            let mut dealt = Vec::new();
            for subtask in 0..p {
                let (even, union) = restored_lists(&saved, subtask, p);
                assert_eq!(union, every, "p={p}: the union list is whole everywhere");
                dealt.push(even);
            }
            let mut all: Vec<i64> = dealt.iter().flatten().copied().collect();
            all.sort_unstable();
            assert_eq!(all, every, "p={p}: each element on exactly one instance");
            let sizes: Vec<usize> = dealt.iter().map(Vec::len).collect();
            assert_eq!(
                sizes,
                if p == 1 { vec![12] } else { vec![4, 4, 4] },
                "p={p}"
            );
        }
        // Round-robin over the concatenation 0..5, 10..17 at p = 3.
        assert_eq!(restored_lists(&saved, 1, 3).0, [1, 4, 12, 15]);
    }

    #[test]
    fn a_function_without_lists_has_no_state() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new());
        let ctx = RuntimeContext::standalone("times", 0, 1, clock);
        let mut op = ProcessOperator::new(Times, None, &ctx);
        op.process(1, &mut Vec::new());
        let scope = StateScope {
            subtask_index: 0,
            parallelism: 1,
            max_parallelism: 128,
        };
        assert_eq!(op.snapshot_state(scope, 1).unwrap(), None);
    }

    #[test]
    fn the_context_tells_the_timestamp_watermark_and_processing_time() {
        let clock = ManualClock::new();
        let ctx = RuntimeContext::standalone("times", 0, 1, Arc::new(clock.clone()));
        let timestamps: TimestampFn<i64> = Arc::new(|x: &i64| x * 10);
        let mut op = ProcessOperator::new(Times, Some(timestamps), &ctx);
        let mut out = Vec::new();
        op.process(1, &mut out);
        op.process_watermark(Watermark(15), &mut Vec::<Out>::new());
        clock.advance(Duration::from_millis(7));
        op.process(2, &mut out);
        assert_eq!(out, [(1, Some(10), i64::MIN, 0), (2, Some(20), 15, 7)]);
    }
}
