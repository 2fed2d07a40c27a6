//! [`DataStream`]: a stream of records and the operations that make new streams.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::async_io::{AsyncFunction, AsyncOptions};
use crate::async_sink::AsyncSink;
use crate::collect::{CollectSink, CollectedRecords};
use crate::dead_letter::{DeadLetter, dead_letter_tag};
use crate::environment::NodeSpec;
use crate::environment::StreamExecutionEnvironment;
use crate::error::GraphError;
use crate::functions::{Collector, FilterFunction, FlatMapFunction, MapFunction};
use crate::keyed_stream::KeyedStream;
use crate::node::{ChainingStrategy, EdgePartitioner, NodeKind, OperatorNode};
use crate::operator::{Operator, RuntimeContext};
use crate::operators::{AsyncSinkWriter, AsyncWaitOperator};
use crate::operators::{FilterOperator, FlatMapOperator, MapOperator, SinkOperator};
use crate::partitioner::Partitioner;
use crate::side_output::OutputTag;
use crate::sink::Sink;
use crate::stream_type::{Record, TypeOf};
use crate::timestamped::{Timestamped, Timestamps, lift_partitioner};
use crate::watermark::NO_TIMESTAMP;

/// One upstream of a stream: a node, and how its records are partitioned onward.
#[derive(Clone)]
pub(crate) struct Input {
    pub(crate) node: usize,
    pub(crate) partitioner: Option<EdgePartitioner>,
    /// The side output read, if not the main output.
    pub(crate) tag: Option<String>,
}

/// A stream of records of type `T`, produced by one operator (or a union of several).
///
/// ```
/// use flink_core::prelude::*;
///
/// let env = StreamExecutionEnvironment::new();
/// let evens = env.from_sequence(1, 6).filter(|x| x % 2 == 0).collect_vec();
/// # let _ = evens;
/// ```
pub struct DataStream<T> {
    pub(crate) env: StreamExecutionEnvironment,
    pub(crate) inputs: Vec<Input>,
    /// Whether the records carry event timestamps: then they are
    /// [`Timestamped<T>`] inside the job and every operator reading them runs
    /// wrapped in [`Stamped`](crate::operators::Stamped); decided here, when the
    /// graph is built, so a stream without timestamps runs bare records.
    pub(crate) timestamps: Timestamps,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for DataStream<T> {
    fn clone(&self) -> Self {
        Self {
            env: self.env.clone(),
            inputs: self.inputs.clone(),
            timestamps: self.timestamps,
            _type: PhantomData,
        }
    }
}

impl<T: Record> DataStream<T> {
    pub(crate) fn from_node(env: StreamExecutionEnvironment, node: usize) -> Self {
        Self {
            env,
            inputs: vec![Input {
                node,
                partitioner: None,
                tag: None,
            }],
            timestamps: Timestamps::None,
            _type: PhantomData,
        }
    }

    /// The environment this stream belongs to.
    pub fn env(&self) -> &StreamExecutionEnvironment {
        &self.env
    }

    /// Adds an operator reading this stream; `make` builds one instance per subtask.
    /// The building block of every transformation, and of custom operators.
    ///
    /// ```
    /// use flink_core::prelude::*;
    /// use flink_core::operator::Operator;
    ///
    /// struct Twice;
    /// impl Operator<u64, u64> for Twice {
    ///     fn process<C: Collector<u64> + ?Sized>(&mut self, x: u64, out: &mut C) {
    ///         out.collect(x);
    ///         out.collect(x);
    ///     }
    /// }
    /// let env = StreamExecutionEnvironment::new();
    /// let doubled = env.from_sequence(1, 3).transform("Twice", |_ctx| Twice);
    /// # let _ = doubled;
    /// ```
    ///
    /// On a stream with timestamps the operator sees bare records and what it
    /// emits for a record gets that record's timestamp (see
    /// [`Operator::process_timestamped`] and [`Collector::set_timestamp`]).
    pub fn transform<O, Op, Make>(&self, name: &str, make: Make) -> DataStream<O>
    where
        O: Record,
        Op: Operator<T, O>,
        Make: Fn(&RuntimeContext) -> Op + Send + Sync + 'static,
    {
        if self.timestamps.carried() {
            self.transform_typed::<Timestamped<T>, Timestamped<O>, O, _, _>(
                name,
                move |ctx| crate::operators::Stamped::new(make(ctx)).stamping_side_outputs(ctx),
                self.timestamps,
            )
        } else {
            self.transform_typed::<T, O, O, Op, Make>(name, make, Timestamps::None)
        }
    }

    /// Adds an operator whose records are `RI` in and `RO` out inside the job
    /// (`T` or [`Timestamped<T>`], as `self.timestamps` says, in; `O` or
    /// [`Timestamped<O>`], as `timestamps` says, out).
    pub(crate) fn transform_typed<RI, RO, O, Op, Make>(
        &self,
        name: &str,
        make: Make,
        timestamps: Timestamps,
    ) -> DataStream<O>
    where
        RI: Record,
        RO: Record,
        O: Record,
        Op: Operator<RI, RO>,
        Make: Fn(&RuntimeContext) -> Op + Send + Sync + 'static,
    {
        let kind = NodeKind::Operator(Arc::new(OperatorNode::<RI, RO, Op, Make>::new(make)));
        let id = self.env.add_node(name, kind, TypeOf::<RO>::arc(), false);
        self.connect_to::<RI>(id);
        let mut next = DataStream::from_node(self.env.clone(), id);
        next.timestamps = timestamps;
        next
    }

    /// Adds an operator that needs no timestamps and whose output has none (a
    /// sink): on a stream with timestamps they are dropped on its way in, batches
    /// staying batches.
    fn transform_unstamped<O, Op, Make>(&self, name: &str, make: Make) -> DataStream<O>
    where
        O: Record,
        Op: Operator<T, O>,
        Make: Fn(&RuntimeContext) -> Op + Send + Sync + 'static,
    {
        if self.timestamps.carried() {
            self.transform_typed::<Timestamped<T>, O, O, _, _>(
                name,
                move |ctx| crate::operators::Unstamped::new(make(ctx)),
                Timestamps::None,
            )
        } else {
            self.transform_typed::<T, O, O, Op, Make>(name, make, Timestamps::None)
        }
    }

    /// Wires this stream's inputs to `target`, whose input records are `RI`.
    fn connect_to<RI: 'static>(&self, target: usize) {
        for input in &self.inputs {
            let partitioner = input
                .partitioner
                .clone()
                .unwrap_or_else(|| EdgePartitioner::new(Partitioner::<RI>::Forward, false));
            self.env
                .add_edge(input.node, target, partitioner, input.tag.clone());
        }
    }

    /// This stream with timestamps on every record: its own, or [`NO_TIMESTAMP`]
    /// for a stream without them (to join a union with streams that have them).
    /// Each input is stamped before its partitioning, in its producer's chain.
    fn with_timestamps_carried(&self) -> DataStream<T> {
        if self.timestamps.carried() {
            return self.clone();
        }
        let mut stamped = self.clone();
        stamped.timestamps = Timestamps::Some;
        for input in &mut stamped.inputs {
            let make = |_: &RuntimeContext| {
                crate::operators::StampWith::new(|_: &T| NO_TIMESTAMP, |r: T| r)
            };
            let kind =
                NodeKind::Operator(Arc::new(OperatorNode::<T, Timestamped<T>, _, _>::new(make)));
            let id = self.env.add_node(
                "No Timestamps",
                kind,
                TypeOf::<Timestamped<T>>::arc(),
                false,
            );
            // Same parallelism as the producer, so the stamping chains into it.
            let parallelism = self.env.inner.borrow().nodes[input.node].parallelism;
            self.env.with_node(id, |n| n.parallelism = parallelism);
            self.env.add_edge(
                input.node,
                id,
                EdgePartitioner::new(Partitioner::<T>::Forward, false),
                input.tag.take(),
            );
            input.node = id;
            input.partitioner = input.partitioner.take().map(|edge| {
                let typed = edge
                    .typed
                    .downcast_ref::<Partitioner<T>>()
                    .expect("a stream's partitioner is of its record type")
                    .clone();
                EdgePartitioner::new(lift_partitioner(typed), edge.explicit)
            });
        }
        stamped
    }

    /// Gives the stream event time: each record's timestamp and the watermarks of
    /// `strategy`'s generator, asked on every auto-watermark interval of the job's
    /// clock (the [`auto_watermark_interval`](crate::config::ExecutionConfig::auto_watermark_interval)
    /// configured when this is called; default 200 ms) and after each record for
    /// punctuated ones; [`Watermark::MAX`](crate::watermark::Watermark::MAX) when the
    /// input ends.
    ///
    /// ```
    /// use std::time::Duration;
    /// use flink_core::prelude::*;
    /// use flink_core::watermark::WatermarkStrategy;
    ///
    /// let env = StreamExecutionEnvironment::new();
    /// env.set_auto_watermark_interval(Duration::from_millis(50));
    /// // Readings of (sensor, millisecond timestamp), up to 5 s out of order.
    /// let readings = env
    ///     .from_collection(vec![(1u32, 1_000i64), (2, 7_000), (1, 3_000)])
    ///     .assign_timestamps_and_watermarks(
    ///         WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_secs(5))
    ///             .with_timestamp_assigner(|r: &(u32, i64)| r.1),
    ///     );
    /// # let _ = readings;
    /// ```
    pub fn assign_timestamps_and_watermarks(
        &self,
        strategy: crate::watermark::WatermarkStrategy<T>,
    ) -> DataStream<T> {
        let interval = self.env.config().auto_watermark_interval;
        let has_assigner = strategy.timestamp.is_some();
        if strategy.idleness.is_some_and(|d| d.is_zero()) {
            self.env
                .record_error(crate::error::GraphError::InvalidWatermarkStrategy {
                    operator: "Timestamps/Watermarks".to_string(),
                    reason: "the idleness timeout must be greater than zero".to_string(),
                });
        }
        let name = "Timestamps/Watermarks";
        let assigner = move |ctx: &RuntimeContext| {
            crate::operators::WatermarkAssigner::new(
                strategy.clone(),
                ctx.services.clock.clone(),
                interval,
            )
        };
        use crate::operators::StampingAssigner;
        if self.timestamps.carried() {
            // Without a timestamp assigner the records keep theirs (as in Flink).
            let timestamps = if has_assigner {
                Timestamps::Every
            } else {
                self.timestamps
            };
            self.transform_typed::<Timestamped<T>, Timestamped<T>, T, _, _>(
                name,
                move |ctx| {
                    StampingAssigner::new(assigner(ctx), |r: Timestamped<T>| (r.value, r.timestamp))
                },
                timestamps,
            )
        } else if has_assigner {
            self.transform_typed::<T, Timestamped<T>, T, _, _>(
                name,
                move |ctx| StampingAssigner::new(assigner(ctx), |r: T| (r, NO_TIMESTAMP)),
                Timestamps::Every,
            )
        } else {
            // Watermarks only: the records stay bare.
            self.transform_typed::<T, T, T, _, _>(name, assigner, Timestamps::None)
        }
    }

    /// Transforms each record with `f`.
    ///
    /// ```
    /// use flink_core::prelude::*;
    /// let env = StreamExecutionEnvironment::new();
    /// let lengths = env.from_collection(vec!["a".to_string(), "bcd".into()]).map(|s| s.len());
    /// # let _ = lengths;
    /// ```
    pub fn map<O: Record, F>(&self, f: F) -> DataStream<O>
    where
        F: FnMut(T) -> O + Clone + Send + Sync + 'static,
    {
        self.map_with(f)
    }

    /// Transforms each record with a named [`MapFunction`]. (`map` takes closures:
    /// a closure infers its parameter types only when the bound names `FnMut`.)
    pub fn map_with<O: Record, F>(&self, f: F) -> DataStream<O>
    where
        F: MapFunction<T, O> + Clone + Sync,
    {
        if self.timestamps.carried() {
            // The map's own batch loop, over the timestamped records.
            return self.transform_typed::<Timestamped<T>, Timestamped<O>, O, _, _>(
                "Map",
                move |_| {
                    let mut f = f.clone();
                    MapOperator::new(move |r: Timestamped<T>| Timestamped {
                        timestamp: r.timestamp,
                        value: f.map(r.value),
                    })
                },
                self.timestamps,
            );
        }
        self.transform("Map", move |_| MapOperator::new(f.clone()))
    }

    /// Keeps the records for which `f` is true.
    ///
    /// ```
    /// use flink_core::prelude::*;
    /// let env = StreamExecutionEnvironment::new();
    /// let odd = env.from_sequence(1, 9).filter(|x| x % 2 == 1);
    /// # let _ = odd;
    /// ```
    pub fn filter<F>(&self, f: F) -> DataStream<T>
    where
        F: FnMut(&T) -> bool + Clone + Send + Sync + 'static,
    {
        self.filter_with(f)
    }

    /// Keeps the records a named [`FilterFunction`] accepts. (`filter` takes closures:
    /// a closure over `&T` only infers its signature when the bound names `FnMut`.)
    pub fn filter_with<F>(&self, f: F) -> DataStream<T>
    where
        F: FilterFunction<T> + Clone + Sync,
    {
        if self.timestamps.carried() {
            // The filter's own batch loop, over the timestamped records.
            return self.transform_typed::<Timestamped<T>, Timestamped<T>, T, _, _>(
                "Filter",
                move |_| {
                    let mut f = f.clone();
                    FilterOperator::new(move |r: &Timestamped<T>| f.filter(&r.value))
                },
                self.timestamps,
            );
        }
        self.transform("Filter", move |_| FilterOperator::new(f.clone()))
    }

    /// Emits any number of records per input record.
    ///
    /// ```
    /// use flink_core::prelude::*;
    /// let env = StreamExecutionEnvironment::new();
    /// let words = env
    ///     .from_collection(vec!["to be or not".to_string()])
    ///     .flat_map(|line, out: &mut dyn Collector<String>| {
    ///         line.split(' ').for_each(|w| out.collect(w.to_string()))
    ///     });
    /// # let _ = words;
    /// ```
    pub fn flat_map<O: Record, F>(&self, f: F) -> DataStream<O>
    where
        F: FnMut(T, &mut dyn Collector<O>) + Clone + Send + Sync + 'static,
    {
        self.flat_map_with(f)
    }

    /// Emits every item of the collection or iterator `f` returns per record (Rust's
    /// `Iterator::flat_map`; [`flat_map`](Self::flat_map) hands `f` a collector
    /// instead).
    ///
    /// ```
    /// use flink_core::prelude::*;
    /// let env = StreamExecutionEnvironment::new();
    /// let words = env
    ///     .from_collection(vec!["to be".to_string()])
    ///     .flat_map_iter(|line| line.split(' ').map(String::from).collect::<Vec<_>>());
    /// let countdowns = env.from_sequence(1, 3).flat_map_iter(|n| (0..n).rev());
    /// # let _ = (words, countdowns);
    /// ```
    pub fn flat_map_iter<O, It, F>(&self, f: F) -> DataStream<O>
    where
        O: Record,
        It: IntoIterator<Item = O>,
        F: FnMut(T) -> It + Clone + Send + Sync + 'static,
    {
        let mut f = f;
        self.flat_map(move |record, out| {
            for item in f(record) {
                out.collect(item);
            }
        })
    }

    /// Applies a named [`FlatMapFunction`].
    pub fn flat_map_with<O: Record, F>(&self, f: F) -> DataStream<O>
    where
        F: FlatMapFunction<T, O> + Clone + Sync,
    {
        self.transform("FlatMap", move |_| FlatMapOperator::new(f.clone()))
    }

    /// Partitions the stream by a key: records with equal keys meet in one instance.
    ///
    /// ```
    /// use flink_core::prelude::*;
    /// let env = StreamExecutionEnvironment::new();
    /// let sums = env
    ///     .from_sequence(1, 100)
    ///     .map(|x| (x % 3, x))
    ///     .key_by(|pair: &(u64, u64)| pair.0)
    ///     .sum(|pair: &mut (u64, u64)| &mut pair.1);
    /// # let _ = sums;
    /// ```
    pub fn key_by<K, F>(&self, key: F) -> KeyedStream<K, T>
    where
        K: Record + std::hash::Hash + Eq,
        F: Fn(&T) -> K + Send + Sync + 'static,
    {
        KeyedStream::new(self.clone(), key)
    }

    /// Windows over the whole stream, not per key (Flink's `windowAll`): one
    /// instance (parallelism 1) sees every record; the window functions get the key
    /// `()`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use flink_core::prelude::*;
    /// use flink_core::watermark::WatermarkStrategy;
    /// use flink_core::windows::TumblingEventTimeWindows;
    ///
    /// let env = StreamExecutionEnvironment::new();
    /// // The sum of each 10 ms of the sequence, where x is its time in ms.
    /// let sums = env
    ///     .from_sequence(0, 99)
    ///     .assign_timestamps_and_watermarks(WatermarkStrategy::monotonous(|x: &u64| *x as i64))
    ///     .window_all(TumblingEventTimeWindows::of(Duration::from_millis(10)))
    ///     .reduce(|a: u64, b: u64| a + b);
    /// # let _ = sums;
    /// ```
    pub fn window_all<W: crate::windows::WindowAssigner>(
        &self,
        assigner: W,
    ) -> crate::windows::WindowedStream<(), T, W> {
        crate::windows::WindowedStream::all(self.key_by(|_: &T| ()), assigner)
    }

    /// Merges streams of the same type; the next operator reads them all.
    ///
    /// ```
    /// use flink_core::prelude::*;
    /// let env = StreamExecutionEnvironment::new();
    /// let all = env.from_sequence(1, 3).union(&[env.from_sequence(10, 12)]);
    /// # let _ = all;
    /// ```
    ///
    /// Records keep their timestamps; if some of the streams have timestamps and
    /// others not, the records of the others have none
    /// ([`NO_TIMESTAMP`]: `ctx.timestamp()` is
    /// `None`, and an event-time window on the union is a build error).
    pub fn union(&self, others: &[DataStream<T>]) -> DataStream<T> {
        let timestamps = others
            .iter()
            .fold(self.timestamps, |t, other| t.join(other.timestamps));
        let carry = |s: &DataStream<T>| {
            if timestamps.carried() {
                s.with_timestamps_carried()
            } else {
                s.clone()
            }
        };
        let mut merged = carry(self);
        for other in others {
            merged.inputs.extend(carry(other).inputs);
        }
        merged.timestamps = timestamps;
        merged
    }

    pub(crate) fn with_partitioner(&self, partitioner: Partitioner<T>) -> DataStream<T> {
        if self.timestamps.carried() {
            self.with_edge_partitioner(EdgePartitioner::new(lift_partitioner(partitioner), true))
        } else {
            self.with_edge_partitioner(EdgePartitioner::new(partitioner, true))
        }
    }

    /// Partitions by `edge`, whose partitioner is of the records as the job holds
    /// them (`T` or [`Timestamped<T>`]).
    pub(crate) fn with_edge_partitioner(&self, edge: EdgePartitioner) -> DataStream<T> {
        let mut next = self.clone();
        for input in &mut next.inputs {
            input.partitioner = Some(edge.clone());
        }
        next
    }

    /// Spreads records round robin over the next operator's instances.
    pub fn rebalance(&self) -> DataStream<T> {
        self.with_partitioner(Partitioner::Rebalance)
    }

    /// Sends every record to every instance of the next operator.
    pub fn broadcast(&self) -> DataStream<T> {
        self.with_partitioner(Partitioner::Broadcast)
    }

    /// Sends instance `i`'s records to instance `i` of the next operator (equal
    /// parallelism required).
    pub fn forward(&self) -> DataStream<T> {
        self.with_partitioner(Partitioner::Forward)
    }

    fn modify(self, setting: &'static str, f: impl FnOnce(&mut NodeSpec)) -> Self {
        match self.inputs.as_slice() {
            [only] => self.env.with_node(only.node, f),
            inputs => self.env.record_error(GraphError::NotAnOperator {
                setting,
                inputs: inputs.len(),
            }),
        }
        self
    }

    /// Names the operator that produces this stream.
    pub fn name(self, name: &str) -> Self {
        self.modify("name", |n| n.name = name.to_string())
    }

    /// Gives the producing operator a stable id (Flink's `uid`): its state in
    /// checkpoints and savepoints is stored under it, and a job restored with
    /// `restore_from` finds it by it, even after operators were added, removed or
    /// renamed. Without one the id is generated from the operator's position in the
    /// graph, which changes when the graph does; set uids on stateful operators,
    /// sources and sinks of jobs you will restore from savepoints. Two operators
    /// with the same uid are a [`GraphError::DuplicateUid`] when the job is built.
    ///
    /// ```
    /// use flink_core::prelude::*;
    ///
    /// let env = StreamExecutionEnvironment::new();
    /// env.from_sequence(1, 10)
    ///     .uid("numbers")
    ///     .key_by(|x: &u64| x % 2)
    ///     .reduce(|a: u64, b: u64| a + b)
    ///     .uid("sums")
    ///     .collect_vec();
    /// ```
    pub fn uid(self, uid: &str) -> Self {
        self.modify("uid", |n| n.uid = Some(uid.to_string()))
    }

    /// Sets the producing operator's parallelism.
    pub fn set_parallelism(self, parallelism: usize) -> Self {
        self.modify("set_parallelism", |n| n.parallelism = Some(parallelism))
    }

    /// Keeps the producing operator out of any chain.
    pub fn disable_chaining(self) -> Self {
        self.modify("disable_chaining", |n| n.chaining = ChainingStrategy::Never)
    }

    /// Drops the dead letters of the producing operator on purpose, if no stream
    /// reads them: they are counted (`OperatorSummary::dead_letters_discarded` in the
    /// runtime's job result) instead of failing the job. Without this, the first dead
    /// letter an operator emits while no stream reads its
    /// [`dead_letters`](Self::dead_letters) fails the job, naming the operator and
    /// the reason.
    ///
    /// ```
    /// use std::time::Duration;
    /// use flink_core::prelude::*;
    /// use flink_core::async_io::AsyncOptions;
    ///
    /// let env = StreamExecutionEnvironment::new();
    /// let ok = env
    ///     .from_sequence(1, 10)
    ///     .async_function(
    ///         |x: u64| async move { if x == 5 { Err("five") } else { Ok(x) } },
    ///         AsyncOptions::new().timeout(Duration::from_secs(1)).dead_letters(),
    ///     )
    ///     .discard_dead_letters()
    ///     .collect_vec();
    /// # let _ = ok;
    /// ```
    pub fn discard_dead_letters(self) -> Self {
        self.modify("discard_dead_letters", |n| n.discard_dead_letters = true)
    }

    /// Starts a new chain at the producing operator.
    pub fn start_new_chain(self) -> Self {
        self.modify("start_new_chain", |n| n.chaining = ChainingStrategy::Head)
    }

    /// Calls `f` asynchronously for each record with bounded concurrency, a timeout per
    /// attempt and retries, as `options` say. Results are ordered or not per the
    /// options; calls that fail for good fail the job or, with
    /// `options.dead_letters()`, go to [`dead_letters`](Self::dead_letters).
    ///
    /// ```
    /// use std::time::Duration;
    /// use flink_core::prelude::*;
    /// use flink_core::async_io::{AsyncOptions, RetryStrategy};
    ///
    /// let env = StreamExecutionEnvironment::new();
    /// let enriched = env.from_sequence(1, 100).async_function(
    ///     |x: u64| async move { if x % 50 == 0 { Err("unlucky") } else { Ok(x * 10) } },
    ///     AsyncOptions::new()
    ///         .ordered(true)
    ///         .timeout(Duration::from_secs(1))
    ///         .capacity(10)
    ///         .retry(RetryStrategy::FixedDelay { delay: Duration::from_millis(1), max_attempts: 3 })
    ///         .dead_letters(),
    /// );
    /// let failed = enriched.dead_letters::<u64>().collect_vec();
    /// let ok = enriched.collect_vec();
    /// # let _ = (failed, ok);
    /// ```
    pub fn async_function<O, F>(&self, f: F, options: AsyncOptions) -> DataStream<O>
    where
        O: Record,
        F: AsyncFunction<T, O>,
    {
        if let Err(error) = options.validate() {
            self.env.record_error(GraphError::InvalidAsyncOptions {
                operator: "Async Function".into(),
                error,
            });
        }
        let (f, options) = (Arc::new(f), Arc::new(options));
        // Each result keeps its input record's timestamp (Flink's AsyncWaitOperator),
        // kept per call only on a stream with timestamps.
        let timestamps = self.timestamps.carried();
        self.transform("Async Function", move |ctx| {
            let operator = AsyncWaitOperator::new(f.clone(), options.clone(), ctx)
                .storing_queue_in_snapshots();
            if timestamps {
                operator.keeping_timestamps()
            } else {
                operator
            }
        })
    }

    /// The dead letters of the operator producing this stream, whose input records
    /// were of type `R`.
    pub fn dead_letters<R: Record>(&self) -> DataStream<DeadLetter<R>> {
        self.side_output(&dead_letter_tag::<R>())
    }

    /// The side output `tag` of the operator producing this stream, as a stream.
    pub fn side_output<S: Record>(&self, tag: &OutputTag<S>) -> DataStream<S> {
        let [only] = self.inputs.as_slice() else {
            self.env.record_error(GraphError::NotAnOperator {
                setting: "side_output",
                inputs: self.inputs.len(),
            });
            return DataStream {
                env: self.env.clone(),
                inputs: Vec::new(),
                timestamps: Timestamps::None,
                _type: PhantomData,
            };
        };
        // On a stream with timestamps the side output keeps each record's (as in
        // Flink); some may have none (emitted outside a record), so `Some`.
        let timestamps = if self.timestamps.carried() {
            Timestamps::Some
        } else {
            Timestamps::None
        };
        self.env.with_node(only.node, |n| {
            if !n.side_types.iter().any(|(id, _)| id == tag.id()) {
                let side_type = if timestamps.carried() {
                    TypeOf::<Timestamped<S>>::arc()
                } else {
                    TypeOf::<S>::arc()
                };
                n.side_types.push((tag.id().to_string(), side_type));
            }
        });
        DataStream {
            env: self.env.clone(),
            inputs: vec![Input {
                node: only.node,
                partitioner: None,
                tag: Some(tag.id().to_string()),
            }],
            timestamps,
            _type: PhantomData,
        }
    }

    /// Writes the stream to `sink`.
    pub fn sink_to(&self, sink: impl Sink<T>) -> DataStreamSink {
        self.sink_named(sink, "Sink")
    }

    /// Writes the stream to `sink`, naming the sink operator.
    pub fn sink_named(&self, sink: impl Sink<T>, name: &str) -> DataStreamSink {
        let sink = Arc::new(sink);
        let stream = self.transform_unstamped::<(), _, _>(name, move |ctx| {
            SinkOperator::new(sink.create_writer(ctx), ctx.operator_name.to_string())
        });
        stream
            .env
            .with_node(stream.inputs[0].node, |n| n.is_sink = true);
        DataStreamSink { stream }
    }

    /// Writes the stream through an [`AsyncSink`]: batched asynchronous requests with
    /// bounded requests in flight, a time limit in the buffer, retries, and dead
    /// letters (readable through [`DataStreamSink::dead_letters`]) when its options
    /// say so. The sink operator is named "Async Sink".
    ///
    /// ```
    /// use std::time::Duration;
    /// use flink_core::prelude::*;
    /// use flink_core::async_sink::{AsyncSink, AsyncSinkOptions};
    /// use flink_core::destinations::CallbackDestination;
    ///
    /// let env = StreamExecutionEnvironment::new();
    /// let sink = env.from_sequence(1, 100).sink_to_async(
    ///     AsyncSink::per_record(CallbackDestination::new(|x: u64| async move {
    ///         if x % 10 == 0 { Err(DeliveryError::Permanent(format!("{x} refused"))) } else { Ok(()) }
    ///     }))
    ///     .options(AsyncSinkOptions::new().max_batch_size(10).dead_letters()),
    /// );
    /// let refused = sink.dead_letters::<u64>().collect_vec();
    /// # let _ = refused;
    /// ```
    pub fn sink_to_async(&self, sink: AsyncSink<T>) -> DataStreamSink {
        let name = "Async Sink";
        if let Err(error) = sink.options.validate() {
            self.env.record_error(GraphError::InvalidAsyncSinkOptions {
                operator: name.into(),
                error,
            });
        }
        let (destination, options) = (sink.destination, Arc::new(sink.options));
        let stream = self.transform_unstamped::<(), _, _>(name, move |ctx| {
            AsyncSinkWriter::new(destination.clone(), options.clone(), ctx)
                .storing_buffer_in_snapshots()
        });
        stream
            .env
            .with_node(stream.inputs[0].node, |n| n.is_sink = true);
        DataStreamSink { stream }
    }

    /// Collects every record into memory, readable after the job ran. For tests and
    /// small jobs.
    pub fn collect_vec(&self) -> CollectedRecords<T> {
        let records = CollectedRecords::default();
        self.sink_named(CollectSink::new(records.clone()), "Collect Sink");
        records
    }
}

/// The end of a stream: a sink operator, which can still be named and configured.
pub struct DataStreamSink {
    stream: DataStream<()>,
}

impl DataStreamSink {
    /// Names the sink operator.
    pub fn name(self, name: &str) -> Self {
        Self {
            stream: self.stream.name(name),
        }
    }

    /// Gives the sink a stable id for its state in savepoints, as
    /// [`DataStream::uid`].
    pub fn uid(self, uid: &str) -> Self {
        Self {
            stream: self.stream.uid(uid),
        }
    }

    /// Sets the sink's parallelism.
    pub fn set_parallelism(self, parallelism: usize) -> Self {
        Self {
            stream: self.stream.set_parallelism(parallelism),
        }
    }

    /// Keeps the sink out of any chain.
    pub fn disable_chaining(self) -> Self {
        Self {
            stream: self.stream.disable_chaining(),
        }
    }

    /// The dead letters of the sink (an async sink's records that failed for good),
    /// whose records were of type `R`.
    pub fn dead_letters<R: Record>(&self) -> DataStream<DeadLetter<R>> {
        self.stream.dead_letters::<R>()
    }

    /// Drops the sink's dead letters on purpose (counted), as
    /// [`DataStream::discard_dead_letters`].
    pub fn discard_dead_letters(self) -> Self {
        Self {
            stream: self.stream.discard_dead_letters(),
        }
    }
}
