//! [`WindowedStream`]: a keyed stream with a window assigner, awaiting its function.

use std::hash::Hash;
use std::marker::PhantomData;
use std::time::Duration;

use super::millis;
use super::window_aggregation::{
    AggregateProcessWindow, AggregateWindow, ProcessWindow, ReduceProcessWindow, ReduceWindow,
};
use super::{
    AggregateFunction, DefaultTrigger, EvictingWindowedStream, Evictor, TimeWindow, Trigger,
    WindowAggregation, WindowAssigner, WindowError,
};
use crate::datastream::DataStream;
use crate::error::GraphError;
use crate::functions::Collector;
use crate::keyed_stream::KeyedStream;
use crate::operators::{WindowOperator, WindowSettings};
use crate::side_output::OutputTag;
use crate::stream_type::Record;

/// A keyed stream cut into windows (from
/// [`KeyedStream::window`](crate::keyed_stream::KeyedStream::window)); `reduce`,
/// `aggregate` or `process` says what each window emits when it fires.
///
/// ```
/// use std::time::Duration;
/// use flink_core::prelude::*;
/// use flink_core::watermark::WatermarkStrategy;
/// use flink_core::windows::{TimeWindow, TumblingEventTimeWindows};
///
/// let env = StreamExecutionEnvironment::new();
/// let late = OutputTag::<(u64, i64)>::new("late");
/// // Bids as (auction, time ms): the count of bids per auction and 10 s window,
/// // accepting bids up to 2 s after a window's end; later ones to a side output.
/// let counts = env
///     .from_collection(vec![(1u64, 1_000i64), (1, 9_000), (2, 4_000), (1, 12_000)])
///     .assign_timestamps_and_watermarks(WatermarkStrategy::monotonous(|b: &(u64, i64)| b.1))
///     .key_by(|b: &(u64, i64)| b.0)
///     .window(TumblingEventTimeWindows::of(Duration::from_secs(10)))
///     .allowed_lateness(Duration::from_secs(2))
///     .side_output_late_data(&late)
///     .process(|auction: &u64, w: &TimeWindow, bids: &[(u64, i64)], out: &mut dyn Collector<(u64, i64, usize)>| {
///         out.collect((*auction, w.end, bids.len()))
///     });
/// let too_late = counts.side_output(&late).collect_vec();
/// let counts = counts.collect_vec();
/// # let _ = (counts, too_late);
/// ```
pub struct WindowedStream<K, T, W, Tr = DefaultTrigger> {
    keyed: KeyedStream<K, T>,
    assigner: W,
    trigger: Tr,
    allowed_lateness: Duration,
    late_tag: Option<OutputTag<T>>,
    /// `window_all`: one instance sees every record.
    all: bool,
}

impl<K, T, W> WindowedStream<K, T, W>
where
    K: Record + Hash + Eq,
    T: Record,
    W: WindowAssigner,
{
    pub(crate) fn new(keyed: KeyedStream<K, T>, assigner: W) -> Self {
        Self {
            keyed,
            trigger: assigner.default_trigger(),
            assigner,
            allowed_lateness: Duration::ZERO,
            late_tag: None,
            all: false,
        }
    }

    /// Windows over a whole stream, run by one instance (`window_all`).
    pub(crate) fn all(keyed: KeyedStream<K, T>, assigner: W) -> Self {
        Self {
            all: true,
            ..Self::new(keyed, assigner)
        }
    }
}

impl<K, T, W, Tr> WindowedStream<K, T, W, Tr>
where
    K: Record + Hash + Eq,
    T: Record,
    W: WindowAssigner,
    Tr: Trigger<T>,
{
    /// Replaces the assigner's default trigger (Flink's `trigger(..)`): `trigger`
    /// decides when each window fires and purges. See [`Trigger`].
    pub fn trigger<Tr2: Trigger<T>>(self, trigger: Tr2) -> WindowedStream<K, T, W, Tr2> {
        WindowedStream {
            keyed: self.keyed,
            assigner: self.assigner,
            trigger,
            allowed_lateness: self.allowed_lateness,
            late_tag: self.late_tag,
            all: self.all,
        }
    }

    /// Removes records from each window before and/or after its function sees them
    /// (Flink's `evictor(..)`); the window then keeps its records, so the result
    /// takes a `process` function. See the example on
    /// [`CountEvictor`](super::CountEvictor).
    pub fn evictor<E: Evictor<T>>(self, evictor: E) -> EvictingWindowedStream<K, T, W, Tr, E> {
        EvictingWindowedStream::new(self, evictor)
    }

    /// Records may arrive up to `lateness` (in event time) after their window's end
    /// and still update it; the window fires again for each (Flink's
    /// `allowedLateness`; default zero). A negative lateness cannot be written: the
    /// type is a `Duration`.
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.allowed_lateness = lateness;
        self
    }

    /// Records too late for every window they belong to go to the side output
    /// `tag` (read it with `side_output` on the windowed result) instead of being
    /// dropped and counted in the operator's `numLateRecordsDropped` metric.
    pub fn side_output_late_data(mut self, tag: &OutputTag<T>) -> Self {
        self.late_tag = Some(tag.clone());
        self
    }

    /// Each window emits the reduction of its records; one value is kept per key and
    /// window.
    ///
    /// ```
    /// use std::time::Duration;
    /// use flink_core::prelude::*;
    /// use flink_core::watermark::WatermarkStrategy;
    /// use flink_core::windows::SlidingEventTimeWindows;
    ///
    /// let env = StreamExecutionEnvironment::new();
    /// // (sensor, time ms, reading): the highest reading per sensor over 10 s, every 5 s.
    /// let highest = env
    ///     .from_collection(vec![(1u32, 1_000i64, 7u64), (1, 6_000, 3), (1, 11_000, 5)])
    ///     .assign_timestamps_and_watermarks(WatermarkStrategy::monotonous(|r: &(u32, i64, u64)| r.1))
    ///     .key_by(|r: &(u32, i64, u64)| r.0)
    ///     .window(SlidingEventTimeWindows::of(Duration::from_secs(10), Duration::from_secs(5)))
    ///     .reduce(|a: (u32, i64, u64), b: (u32, i64, u64)| if b.2 > a.2 { b } else { a });
    /// # let _ = highest;
    /// ```
    pub fn reduce<F>(&self, f: F) -> DataStream<T>
    where
        F: FnMut(T, T) -> T + Clone + Send + Sync + 'static,
    {
        self.apply("Window Reduce", ReduceWindow(f))
    }

    /// Each window keeps the reduction of its records and hands it, with the key
    /// and the window, to `f` (Flink's `reduce(reduceFunction, windowFunction)`):
    /// incremental, with the window's metadata.
    ///
    /// ```
    /// use std::time::Duration;
    /// use flink_core::prelude::*;
    /// use flink_core::watermark::WatermarkStrategy;
    /// use flink_core::windows::{TimeWindow, TumblingEventTimeWindows};
    ///
    /// let env = StreamExecutionEnvironment::new();
    /// // Bids as (auction, price, time ms): the highest bid per auction and 10 s,
    /// // with the window's end.
    /// let highest = env
    ///     .from_collection(vec![(1u64, 30u64, 1_000i64), (1, 50, 2_000)])
    ///     .assign_timestamps_and_watermarks(WatermarkStrategy::monotonous(|b: &(u64, u64, i64)| b.2))
    ///     .key_by(|b: &(u64, u64, i64)| b.0)
    ///     .window(TumblingEventTimeWindows::of(Duration::from_secs(10)))
    ///     .reduce_process(
    ///         |a: (u64, u64, i64), b: (u64, u64, i64)| if b.1 > a.1 { b } else { a },
    ///         |auction: &u64, w: &TimeWindow, best: (u64, u64, i64), out: &mut dyn Collector<(u64, i64, u64)>| {
    ///             out.collect((*auction, w.end, best.1))
    ///         },
    ///     );
    /// # let _ = highest;
    /// ```
    pub fn reduce_process<R, F, P>(&self, f: F, process: P) -> DataStream<R>
    where
        R: Record,
        F: FnMut(T, T) -> T + Clone + Send + Sync + 'static,
        P: FnMut(&K, &TimeWindow, T, &mut dyn Collector<R>) + Clone + Send + Sync + 'static,
    {
        self.apply("Window Reduce", ReduceProcessWindow(f, process))
    }

    /// Each window emits `f`'s result; one accumulator is kept per key and window,
    /// never the records.
    ///
    /// ```
    /// use std::time::Duration;
    /// use flink_core::prelude::*;
    /// use flink_core::watermark::WatermarkStrategy;
    /// use flink_core::windows::{AggregateFunction, TumblingEventTimeWindows};
    ///
    /// /// How many records.
    /// #[derive(Clone)]
    /// struct Count;
    /// impl AggregateFunction<(u64, i64), u64> for Count {
    ///     type Acc = u64;
    ///     fn create_accumulator(&self) -> u64 { 0 }
    ///     fn add(&self, _: (u64, i64), acc: &mut u64) { *acc += 1 }
    ///     fn get_result(&self, acc: &u64) -> u64 { *acc }
    /// }
    ///
    /// let env = StreamExecutionEnvironment::new();
    /// let counts = env
    ///     .from_collection(vec![(1u64, 1_000i64), (1, 2_000)])
    ///     .assign_timestamps_and_watermarks(WatermarkStrategy::monotonous(|r: &(u64, i64)| r.1))
    ///     .key_by(|r: &(u64, i64)| r.0)
    ///     .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
    ///     .aggregate(Count);
    /// # let _ = counts;
    /// ```
    pub fn aggregate<O, A>(&self, f: A) -> DataStream<O>
    where
        O: Record,
        A: AggregateFunction<T, O>,
    {
        self.apply("Window Aggregate", AggregateWindow(f, PhantomData))
    }

    /// Each window keeps one accumulator of `agg` and hands its result, with the key
    /// and the window, to `f` (Flink's `aggregate(aggregateFunction,
    /// windowFunction)`): incremental, with the window's metadata.
    ///
    /// ```
    /// use std::time::Duration;
    /// use flink_core::prelude::*;
    /// use flink_core::watermark::WatermarkStrategy;
    /// use flink_core::windows::{AggregateFunction, TimeWindow, TumblingEventTimeWindows};
    ///
    /// /// The highest price.
    /// #[derive(Clone)]
    /// struct MaxPrice;
    /// impl AggregateFunction<(u64, u64, i64), u64> for MaxPrice {
    ///     type Acc = u64;
    ///     fn create_accumulator(&self) -> u64 { 0 }
    ///     fn add(&self, bid: (u64, u64, i64), acc: &mut u64) { *acc = (*acc).max(bid.1) }
    ///     fn get_result(&self, acc: &u64) -> u64 { *acc }
    /// }
    ///
    /// let env = StreamExecutionEnvironment::new();
    /// // Bids as (auction, price, time ms): the highest bid per auction and 10 s.
    /// let highest = env
    ///     .from_collection(vec![(1u64, 30u64, 1_000i64), (1, 50, 2_000), (2, 10, 3_000)])
    ///     .assign_timestamps_and_watermarks(WatermarkStrategy::monotonous(|b: &(u64, u64, i64)| b.2))
    ///     .key_by(|b: &(u64, u64, i64)| b.0)
    ///     .window(TumblingEventTimeWindows::of(Duration::from_secs(10)))
    ///     .aggregate_process(MaxPrice, |auction: &u64, w: &TimeWindow, max: u64, out: &mut dyn Collector<(u64, i64, u64)>| {
    ///         out.collect((*auction, w.end, max))
    ///     });
    /// # let _ = highest;
    /// ```
    pub fn aggregate_process<O, R, A, F>(&self, agg: A, f: F) -> DataStream<R>
    where
        O: 'static,
        R: Record,
        A: AggregateFunction<T, O>,
        F: FnMut(&K, &TimeWindow, O, &mut dyn Collector<R>) + Clone + Send + Sync + 'static,
    {
        self.apply(
            "Window Aggregate",
            AggregateProcessWindow(agg, f, PhantomData),
        )
    }

    /// Each window hands all its records, its key and the window to `f` (Flink's
    /// `ProcessWindowFunction`); the records are kept until the window is cleaned
    /// up. See the example on [`WindowedStream`].
    pub fn process<O, F>(&self, f: F) -> DataStream<O>
    where
        O: Record,
        F: FnMut(&K, &TimeWindow, &[T], &mut dyn Collector<O>) + Clone + Send + Sync + 'static,
    {
        self.apply("Window Process", ProcessWindow(f))
    }

    /// The window operator with `agg`; a window definition that cannot work is a
    /// build error of the job.
    pub(crate) fn apply<O, A>(&self, name: &str, agg: A) -> DataStream<O>
    where
        O: Record,
        A: WindowAggregation<K, T, O>,
    {
        self.apply_checked(name, agg, Ok(()))
    }

    /// What is wrong with the definition with `agg`, if anything.
    fn problem<O, A: WindowAggregation<K, T, O>>(&self, agg: &A) -> Result<(), WindowError> {
        self.assigner.validate()?;
        self.trigger.validate()?;
        if self.assigner.is_event_time()
            && self.keyed.partitioned().timestamps != crate::timestamped::Timestamps::Every
        {
            return Err(WindowError::NoTimestamps);
        }
        if self.assigner.is_merging() && !self.trigger.can_merge() {
            return Err(WindowError::TriggerCannotMerge);
        }
        if self.assigner.is_merging() && !agg.can_merge() {
            return Err(WindowError::AggregateCannotMerge);
        }
        Ok(())
    }

    /// [`apply`](Self::apply), with a problem found by the caller (the evictor's).
    pub(crate) fn apply_checked<O, A>(
        &self,
        name: &str,
        agg: A,
        checked: Result<(), WindowError>,
    ) -> DataStream<O>
    where
        O: Record,
        A: WindowAggregation<K, T, O>,
    {
        let partitioned = self.keyed.partitioned();
        if let Err(error) = checked.and_then(|()| self.problem(&agg)) {
            partitioned.env.record_error(GraphError::InvalidWindow {
                operator: name.to_string(),
                error,
            });
        }
        let keys = self.keyed.keys().clone();
        let assigner = self.assigner.clone();
        let trigger = self.trigger.clone();
        let lateness = millis(self.allowed_lateness);
        let late_tag = self.late_tag.clone();
        let all = self.all;
        let windowed = partitioned.transform(name, move |ctx| {
            let settings = WindowSettings {
                allowed_lateness_ms: lateness,
                late_output: late_tag.as_ref().map(|tag| ctx.side_output(tag)),
                timestamps: None,
            };
            WindowOperator::new(
                keys.clone(),
                assigner.clone(),
                agg.clone(),
                trigger.clone(),
                settings,
                ctx,
            )
        });
        if all {
            windowed.set_parallelism(1)
        } else {
            windowed
        }
    }
}
