//! [`KeyedStream`]: a stream partitioned by key, with keyed state.

use std::hash::Hash;
use std::ops::AddAssign;
use std::sync::Arc;

use crate::batch_keys::Keys;
use crate::datastream::{DataStream, DataStreamSink};
use crate::functions::{Collector, ReduceFunction};
use crate::operators::{
    KeyedFinalFoldOperator, KeyedProcessOperator, KeyedReduceOperator, ModeSwitch,
};
use crate::partitioner::{Partitioner, SelectorHash};
use crate::process_context::ProcessContext;
use crate::sink::Sink;
use crate::state::ValueState;
use crate::stream_type::Record;
use crate::tuple_field::TupleField;

/// The key extractor of a keyed stream.
pub type KeyFn<T, K> = Arc<dyn Fn(&T) -> K + Send + Sync>;

/// A stream whose records are routed by key through key groups, so that every record
/// of one key reaches the same parallel instance and its keyed state.
pub struct KeyedStream<K, T> {
    partitioned: DataStream<T>,
    /// The key selector, callable per record and per batch.
    keys: Keys<T, K>,
}

impl<K, T> Clone for KeyedStream<K, T> {
    fn clone(&self) -> Self {
        Self {
            partitioned: self.partitioned.clone(),
            keys: self.keys.clone(),
        }
    }
}

impl<K, T> KeyedStream<K, T>
where
    K: Record + Hash + Eq,
    T: Record,
{
    pub(crate) fn new<F>(stream: DataStream<T>, key: F) -> Self
    where
        F: Fn(&T) -> K + Send + Sync + 'static,
    {
        let key = Arc::new(key);
        // The partitioner keeps the selector's own type, so that hashing a batch
        // inlines it rather than calling through `KeyFn` per record.
        let hash_key = key.clone();
        let partitioned = if stream.timestamps.carried() {
            let partitioner = Partitioner::Hash(Arc::new(SelectorHash(
                move |record: &crate::timestamped::Timestamped<T>| hash_key(&record.value),
            )));
            stream.with_edge_partitioner(crate::node::EdgePartitioner::new(partitioner, true))
        } else {
            let partitioner =
                Partitioner::Hash(Arc::new(SelectorHash(move |record: &T| hash_key(record))));
            stream.with_partitioner(partitioner)
        };
        let keys = Keys::shared(key);
        Self { partitioned, keys }
    }

    /// The key extractor.
    pub fn key_selector(&self) -> KeyFn<T, K> {
        self.keys.one()
    }

    /// The key extractor with its per-batch entry points.
    pub(crate) fn keys(&self) -> &Keys<T, K> {
        &self.keys
    }

    /// The stream, hash-partitioned by key, for operators that are not keyed themselves.
    pub fn partitioned(&self) -> &DataStream<T> {
        &self.partitioned
    }

    /// Emits the running reduction of each key, one result per input record; in
    /// [batch mode](crate::runtime_mode::RuntimeMode::Batch), one final result per
    /// key at the end of input.
    ///
    /// ```
    /// use flink_core::prelude::*;
    /// let env = StreamExecutionEnvironment::new();
    /// let longest = env
    ///     .from_collection(vec![("a".to_string(), 3u64), ("a".into(), 5)])
    ///     .key_by(|r| r.0.clone())
    ///     .reduce(|x, y| if y.1 > x.1 { y } else { x });
    /// # let _ = longest;
    /// ```
    pub fn reduce<F>(&self, f: F) -> DataStream<T>
    where
        F: FnMut(T, T) -> T + Clone + Send + Sync + 'static,
    {
        self.reduce_with(f)
    }

    /// Like [`reduce`](Self::reduce), with a named [`ReduceFunction`]. (`reduce`
    /// takes closures, whose parameter types it infers.)
    pub fn reduce_with<F>(&self, f: F) -> DataStream<T>
    where
        F: ReduceFunction<T> + Clone + Sync,
    {
        let (key, keys) = (self.keys.one(), self.keys.clone());
        let mode = self.partitioned.env.resolved_mode();
        self.partitioned.transform("Keyed Reduce", move |_| {
            let key = key.clone();
            if mode.is_batch() {
                let mut f = f.clone();
                ModeSwitch::Batch(KeyedFinalFoldOperator::new(
                    move |r: &T| key(r),
                    move |acc: Option<T>, r: T| match acc {
                        Some(acc) => f.reduce(acc, r),
                        None => r,
                    },
                    |_: K, acc: T| acc,
                ))
            } else {
                ModeSwitch::Streaming(KeyedReduceOperator::new(keys.clone(), f.clone()))
            }
        })
    }

    /// Emits, per record, the record with `field` replaced by the running sum of that
    /// field over its key (Flink's `sum(position)`).
    ///
    /// ```
    /// use flink_core::prelude::*;
    /// let env = StreamExecutionEnvironment::new();
    /// let counts = env
    ///     .from_collection(vec![("x".to_string(), 1u64), ("x".into(), 1)])
    ///     .key_by(|r: &(String, u64)| r.0.clone())
    ///     .sum(|r: &mut (String, u64)| &mut r.1);
    /// # let _ = counts;
    /// ```
    pub fn sum<N, F>(&self, field: F) -> DataStream<T>
    where
        N: AddAssign + Copy,
        F: Fn(&mut T) -> &mut N + Clone + Send + Sync + 'static,
    {
        self.reduce(move |mut acc: T, mut value: T| {
            let add = *field(&mut value);
            *field(&mut acc) += add;
            acc
        })
    }

    /// Emits, per record, the first record of its key with `field` replaced by the
    /// smallest value of that field seen so far for the key (Flink's `min(position)`:
    /// the other fields stay those of the key's first record; see
    /// [`min_by`](Self::min_by) for the whole record holding the minimum).
    ///
    /// ```
    /// use flink_core::prelude::*;
    /// let env = StreamExecutionEnvironment::new();
    /// let lowest = env
    ///     .from_collection(vec![("x".to_string(), 5i64), ("x".into(), -2)])
    ///     .key_by(|r: &(String, i64)| r.0.clone())
    ///     .min(|r: &mut (String, i64)| &mut r.1);
    /// # let _ = lowest;
    /// ```
    pub fn min<N, F>(&self, field: F) -> DataStream<T>
    where
        N: PartialOrd + Copy + 'static,
        F: Fn(&mut T) -> &mut N + Clone + Send + Sync + 'static,
    {
        self.keep_field(field, |candidate, current| candidate < current)
    }

    /// Like [`min`](Self::min), with the largest value of `field` (Flink's
    /// `max(position)`).
    ///
    /// ```
    /// use flink_core::prelude::*;
    /// let env = StreamExecutionEnvironment::new();
    /// let highest = env
    ///     .from_collection(vec![(1u32, 5u64), (1, 9)])
    ///     .key_by(|r: &(u32, u64)| r.0)
    ///     .max(|r: &mut (u32, u64)| &mut r.1);
    /// # let _ = highest;
    /// ```
    pub fn max<N, F>(&self, field: F) -> DataStream<T>
    where
        N: PartialOrd + Copy + 'static,
        F: Fn(&mut T) -> &mut N + Clone + Send + Sync + 'static,
    {
        self.keep_field(field, |candidate, current| candidate > current)
    }

    /// Emits, per record, the record of its key with the smallest `field` so far; on a
    /// tie the earlier record stays (Flink's `minBy(position)`).
    ///
    /// ```
    /// use flink_core::prelude::*;
    /// let env = StreamExecutionEnvironment::new();
    /// let cheapest = env
    ///     .from_collection(vec![("apple".to_string(), 3u64), ("apple".into(), 2)])
    ///     .key_by(|r: &(String, u64)| r.0.clone())
    ///     .min_by(|r: &(String, u64)| r.1);
    /// # let _ = cheapest;
    /// ```
    pub fn min_by<N, F>(&self, field: F) -> DataStream<T>
    where
        N: PartialOrd,
        F: Fn(&T) -> N + Clone + Send + Sync + 'static,
    {
        self.keep_record(move |value, acc| field(value) < field(acc))
    }

    /// Like [`min_by`](Self::min_by), with the largest `field` (Flink's
    /// `maxBy(position)`).
    ///
    /// ```
    /// use flink_core::prelude::*;
    /// let env = StreamExecutionEnvironment::new();
    /// let best = env
    ///     .from_collection(vec![(7u64, 10u64), (7, 12)])
    ///     .key_by(|bid: &(u64, u64)| bid.0)
    ///     .max_by(|bid: &(u64, u64)| bid.1);
    /// # let _ = best;
    /// ```
    pub fn max_by<N, F>(&self, field: F) -> DataStream<T>
    where
        N: PartialOrd,
        F: Fn(&T) -> N + Clone + Send + Sync + 'static,
    {
        self.keep_record(move |value, acc| field(value) > field(acc))
    }

    /// [`sum`](Self::sum) of the tuple field at position `I` (Flink's `sum(1)`): no
    /// accessor closure for tuples.
    ///
    /// ```
    /// use flink_core::prelude::*;
    /// let env = StreamExecutionEnvironment::new();
    /// let counts = env
    ///     .from_collection(vec![("x".to_string(), 1u64), ("x".into(), 1)])
    ///     .key_by(|r| r.0.clone())
    ///     .sum_at::<1>()
    ///     .collect_vec();
    /// # let _ = counts;
    /// ```
    pub fn sum_at<const I: usize>(&self) -> DataStream<T>
    where
        T: TupleField<I>,
        <T as TupleField<I>>::Value: AddAssign + Copy,
    {
        self.sum(<T as TupleField<I>>::field_mut)
    }

    /// [`min`](Self::min) of the tuple field at position `I` (Flink's `min(1)`).
    ///
    /// ```
    /// use flink_core::prelude::*;
    /// let env = StreamExecutionEnvironment::new();
    /// let lowest = env
    ///     .from_collection(vec![(1u32, 5i64), (1, -2)])
    ///     .key_by(|r| r.0)
    ///     .min_at::<1>();
    /// # let _ = lowest;
    /// ```
    pub fn min_at<const I: usize>(&self) -> DataStream<T>
    where
        T: TupleField<I>,
        <T as TupleField<I>>::Value: PartialOrd + Copy + 'static,
    {
        self.min(<T as TupleField<I>>::field_mut)
    }

    /// [`max`](Self::max) of the tuple field at position `I` (Flink's `max(1)`).
    ///
    /// ```
    /// use flink_core::prelude::*;
    /// let env = StreamExecutionEnvironment::new();
    /// let highest = env
    ///     .from_collection(vec![(1u32, 5u64), (1, 9)])
    ///     .key_by(|r| r.0)
    ///     .max_at::<1>();
    /// # let _ = highest;
    /// ```
    pub fn max_at<const I: usize>(&self) -> DataStream<T>
    where
        T: TupleField<I>,
        <T as TupleField<I>>::Value: PartialOrd + Copy + 'static,
    {
        self.max(<T as TupleField<I>>::field_mut)
    }

    /// [`min_by`](Self::min_by) the tuple field at position `I` (Flink's `minBy(1)`):
    /// the whole record holding the smallest value.
    ///
    /// ```
    /// use flink_core::prelude::*;
    /// let env = StreamExecutionEnvironment::new();
    /// let cheapest = env
    ///     .from_collection(vec![("apple".to_string(), 3u64, 'a'), ("apple".into(), 2, 'b')])
    ///     .key_by(|r| r.0.clone())
    ///     .min_by_at::<1>();
    /// # let _ = cheapest;
    /// ```
    pub fn min_by_at<const I: usize>(&self) -> DataStream<T>
    where
        T: TupleField<I>,
        <T as TupleField<I>>::Value: PartialOrd,
    {
        self.keep_record(|value, acc| TupleField::<I>::field(value) < TupleField::<I>::field(acc))
    }

    /// [`max_by`](Self::max_by) the tuple field at position `I` (Flink's `maxBy(1)`).
    ///
    /// ```
    /// use flink_core::prelude::*;
    /// let env = StreamExecutionEnvironment::new();
    /// let best = env
    ///     .from_collection(vec![(7u64, 10u64), (7, 12)])
    ///     .key_by(|bid| bid.0)
    ///     .max_by_at::<1>();
    /// # let _ = best;
    /// ```
    pub fn max_by_at<const I: usize>(&self) -> DataStream<T>
    where
        T: TupleField<I>,
        <T as TupleField<I>>::Value: PartialOrd,
    {
        self.keep_record(|value, acc| TupleField::<I>::field(value) > TupleField::<I>::field(acc))
    }

    /// Emits, per record, its key and how many records of that key have been seen so
    /// far, this one included; in [batch mode](crate::runtime_mode::RuntimeMode::Batch),
    /// one final count per key at the end of input.
    ///
    /// ```
    /// use flink_core::prelude::*;
    /// let env = StreamExecutionEnvironment::new();
    /// let words = env.from_collection(["to", "be", "or", "not", "to", "be"].map(String::from).to_vec());
    /// let counts = words.key_by(|w: &String| w.clone()).count();
    /// # let _ = counts;
    /// ```
    pub fn count(&self) -> DataStream<(K, u64)> {
        let key = self.keys.one();
        let mode = self.partitioned.env.resolved_mode();
        self.partitioned.transform("Keyed Process", move |ctx| {
            let key = key.clone();
            if mode.is_batch() {
                ModeSwitch::Batch(KeyedFinalFoldOperator::new(
                    move |r: &T| key(r),
                    |n: Option<u64>, _: T| n.unwrap_or(0) + 1,
                    |key: K, n: u64| (key, n),
                ))
            } else {
                let count = |key: &K,
                             _record: T,
                             seen: &mut ValueState<'_, u64>,
                             out: &mut ProcessContext<'_, (K, u64)>| {
                    let n = seen.value().copied().unwrap_or(0) + 1;
                    seen.update(n);
                    out.collect((key.clone(), n));
                };
                ModeSwitch::Streaming(KeyedProcessOperator::new(move |r: &T| key(r), count, ctx))
            }
        })
    }

    /// A running reduce that keeps the accumulated record and overwrites its `field`
    /// with a new record's value when `replaces(new, current)`.
    /// Emits, per record, the record of its key kept so far: a new one replaces it
    /// when `replaces(new, kept)` (the `min_by`/`max_by` family).
    fn keep_record<F>(&self, replaces: F) -> DataStream<T>
    where
        F: Fn(&T, &T) -> bool + Clone + Send + Sync + 'static,
    {
        self.reduce(
            move |kept: T, value: T| {
                if replaces(&value, &kept) { value } else { kept }
            },
        )
    }

    fn keep_field<N, F>(&self, field: F, replaces: fn(&N, &N) -> bool) -> DataStream<T>
    where
        N: Copy + 'static,
        F: Fn(&mut T) -> &mut N + Clone + Send + Sync + 'static,
    {
        self.reduce(move |mut acc: T, mut value: T| {
            let candidate = *field(&mut value);
            let current = field(&mut acc);
            if replaces(&candidate, current) {
                *current = candidate;
            }
            acc
        })
    }

    /// Runs `f` per record with the key and that key's [`ValueState`].
    ///
    /// ```
    /// use flink_core::prelude::*;
    /// let env = StreamExecutionEnvironment::new();
    /// // Emit each key's count every time it grows.
    /// let counts = env.from_sequence(1, 10).key_by(|x: &u64| x % 2).process(
    ///     |key: &u64, _x: u64, count: &mut ValueState<u64>, out: &mut dyn Collector<(u64, u64)>| {
    ///         let n = count.value().copied().unwrap_or(0) + 1;
    ///         count.update(n);
    ///         out.collect((*key, n));
    ///     },
    /// );
    /// # let _ = counts;
    /// ```
    pub fn process<O, S, F>(&self, f: F) -> DataStream<O>
    where
        O: Record,
        S: serde::Serialize + serde::de::DeserializeOwned + Clone + Send + 'static,
        F: FnMut(&K, T, &mut ValueState<'_, S>, &mut dyn Collector<O>)
            + Clone
            + Send
            + Sync
            + 'static,
    {
        let mut f = f;
        self.process_with_context(
            move |key: &K,
                  record: T,
                  state: &mut ValueState<'_, S>,
                  ctx: &mut ProcessContext<'_, O>| { f(key, record, state, ctx) },
        )
    }

    /// Like [`process`](Self::process), with a [`ProcessContext`] that also emits to
    /// typed side outputs and tells the current watermark.
    ///
    /// ```
    /// use flink_core::prelude::*;
    ///
    /// let env = StreamExecutionEnvironment::new();
    /// let repeats = OutputTag::<u64>::new("repeats");
    /// let tag = repeats.clone();
    /// // First sighting of each value goes on; later ones go to a side output.
    /// let first = env.from_collection(vec![3u64, 5, 3, 3]).key_by(|x: &u64| *x).process_with_context(
    ///     move |_key: &u64, x: u64, seen: &mut ValueState<bool>, ctx: &mut ProcessContext<u64>| {
    ///         if seen.value().is_some() {
    ///             ctx.output(&tag, x);
    ///         } else {
    ///             seen.update(true);
    ///             ctx.collect(x);
    ///         }
    ///     },
    /// );
    /// let again = first.side_output(&repeats).collect_vec();
    /// # let _ = again;
    /// ```
    pub fn process_with_context<O, S, F>(&self, f: F) -> DataStream<O>
    where
        O: Record,
        S: serde::Serialize + serde::de::DeserializeOwned + Clone + Send + 'static,
        F: FnMut(&K, T, &mut ValueState<'_, S>, &mut ProcessContext<'_, O>)
            + Clone
            + Send
            + Sync
            + 'static,
    {
        let key = self.keys.one();
        self.partitioned.transform("Keyed Process", move |ctx| {
            let key = key.clone();
            KeyedProcessOperator::new(move |r: &T| key(r), f.clone(), ctx)
        })
    }

    /// Runs a [`KeyedProcessFunction`](crate::keyed_process_function::KeyedProcessFunction) (Flink's `process(KeyedProcessFunction)`):
    /// per-key state and timers, fired in timestamp order once the watermark (event
    /// time) or the job's clock (processing time) passes them.
    ///
    /// ```
    /// use std::time::Duration;
    /// use flink_core::prelude::*;
    /// use flink_core::watermark::WatermarkStrategy;
    ///
    /// /// Emits (key, count) once the watermark passes 10 ms after a key's first record.
    /// #[derive(Clone)]
    /// struct CountFor10Ms;
    ///
    /// impl KeyedProcessFunction<u64, (u64, i64), (u64, u32)> for CountFor10Ms {
    ///     type State = u32;
    ///
    ///     fn process_element(&mut self, r: (u64, i64), ctx: &mut KeyedContext<u64, u32, (u64, u32)>) {
    ///         let count = ctx.state().value().copied().unwrap_or(0);
    ///         if count == 0 {
    ///             ctx.timer_service().register_event_time_timer(r.1 + 10);
    ///         }
    ///         ctx.state().update(count + 1);
    ///     }
    ///
    ///     fn on_timer(&mut self, _ts: i64, ctx: &mut KeyedContext<u64, u32, (u64, u32)>) {
    ///         let key = *ctx.key();
    ///         if let Some(count) = ctx.state().take() {
    ///             ctx.collect((key, count));
    ///         }
    ///     }
    /// }
    ///
    /// let env = StreamExecutionEnvironment::new();
    /// let counts = env
    ///     .from_collection(vec![(1u64, 0i64), (2, 3), (1, 5), (1, 30)])
    ///     .assign_timestamps_and_watermarks(WatermarkStrategy::monotonous(|r: &(u64, i64)| r.1))
    ///     .key_by(|r: &(u64, i64)| r.0)
    ///     .process_function(CountFor10Ms)
    ///     .collect_vec();
    /// # let _ = counts;
    /// ```
    pub fn process_function<O, F>(&self, f: F) -> DataStream<O>
    where
        O: Record,
        F: crate::keyed_process_function::KeyedProcessFunction<K, T, O>,
    {
        let key = self.keys.one();
        self.partitioned
            .transform("Keyed Process Function", move |ctx| {
                let key = key.clone();
                crate::operators::KeyedProcessFunctionOperator::new(
                    move |r: &T| key(r),
                    f.clone(),
                    None,
                    ctx,
                )
            })
    }

    /// Cuts each key's records into the windows of `assigner` (Flink's
    /// `window(..)`); say what each window emits with `reduce`, `aggregate` or
    /// `process` on the result. See [`WindowedStream`](crate::windows::WindowedStream).
    pub fn window<W: crate::windows::WindowAssigner>(
        &self,
        assigner: W,
    ) -> crate::windows::WindowedStream<K, T, W> {
        crate::windows::WindowedStream::new(self.clone(), assigner)
    }

    /// Maps records after key partitioning.
    pub fn map<O: Record, F>(&self, f: F) -> DataStream<O>
    where
        F: FnMut(T) -> O + Clone + Send + Sync + 'static,
    {
        self.partitioned.map(f)
    }

    /// Filters records after key partitioning.
    pub fn filter<F>(&self, f: F) -> DataStream<T>
    where
        F: FnMut(&T) -> bool + Clone + Send + Sync + 'static,
    {
        self.partitioned.filter(f)
    }

    /// Flat-maps records after key partitioning.
    pub fn flat_map<O: Record, F>(&self, f: F) -> DataStream<O>
    where
        F: FnMut(T, &mut dyn Collector<O>) + Clone + Send + Sync + 'static,
    {
        self.partitioned.flat_map(f)
    }

    /// Calls `f` asynchronously per record after key partitioning; see
    /// [`DataStream::async_function`].
    pub fn async_function<O, F>(
        &self,
        f: F,
        options: crate::async_io::AsyncOptions,
    ) -> DataStream<O>
    where
        O: Record,
        F: crate::async_io::AsyncFunction<T, O>,
    {
        self.partitioned.async_function(f, options)
    }

    /// Writes the key-partitioned stream to `sink`.
    pub fn sink_to(&self, sink: impl Sink<T>) -> DataStreamSink {
        self.partitioned.sink_to(sink)
    }

    /// Writes the partitioned stream through an async sink
    /// (see [`DataStream::sink_to_async`]).
    pub fn sink_to_async(&self, sink: crate::async_sink::AsyncSink<T>) -> DataStreamSink {
        self.partitioned.sink_to_async(sink)
    }
}
