//! [`ConnectedStreams`]: two streams of possibly different types read by one
//! operator (Flink's `connect`), with `map` (CoMap), `flat_map` (CoFlatMap),
//! `process` with a [`CoProcessFunction`](crate::co_process_function::CoProcessFunction)
//! and, keyed, the same `map` and `flat_map` plus `process` with a
//! [`KeyedCoProcessFunction`] whose per-key state both inputs share.
//!
//! How: each input's records are tagged [`CoInput::First`] or [`CoInput::Second`]
//! in its own chain, and the two tagged streams are unioned into the operator, so
//! one input gate carries both inputs' channels (as Flink's `TaggedUnion` does for
//! `coGroup`). The operator's event time is therefore the minimum over every
//! channel of both inputs: the minimum of the two inputs' watermarks. Keyed, both
//! inputs are partitioned by their key, so records of equal keys meet in one
//! instance whichever input they come from.

use std::marker::PhantomData;

use serde::{Deserialize, Serialize};

use crate::datastream::DataStream;
use crate::functions::Collector;
use crate::keyed_process_function::{KeyedContext, KeyedProcessFunction};
use crate::keyed_stream::KeyedStream;
use crate::stream_type::Record;

/// A record of one of the two inputs of a two-input operator.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CoInput<A, B> {
    /// From the first input (the stream `connect` was called on).
    First(A),
    /// From the second input.
    Second(B),
}

/// Two streams connected for a two-input operator; see
/// [`DataStream::connect`].
pub struct ConnectedStreams<A, B> {
    first: DataStream<A>,
    second: DataStream<B>,
}

impl<A: Record> DataStream<A> {
    /// Connects this stream with `other` for an operator that reads both (Flink's
    /// `connect`), each with its own function and type.
    ///
    /// ```
    /// use flink_core::prelude::*;
    ///
    /// let env = StreamExecutionEnvironment::new();
    /// let numbers = env.from_sequence(1, 3);
    /// let words = env.from_collection(vec!["a".to_string(), "bc".into()]);
    /// let lengths = numbers
    ///     .connect(&words)
    ///     .map(|n: u64| n as usize, |w: String| w.len())
    ///     .collect_vec();
    /// # let _ = lengths;
    /// ```
    pub fn connect<B: Record>(&self, other: &DataStream<B>) -> ConnectedStreams<A, B> {
        ConnectedStreams {
            first: self.clone(),
            second: other.clone(),
        }
    }
}

impl<A: Record, B: Record> ConnectedStreams<A, B> {
    /// Both inputs tagged and unioned; the records keep their timestamps (those of an
    /// input without timestamps have none).
    pub(crate) fn tagged(&self) -> DataStream<CoInput<A, B>> {
        let first = self.first.map(CoInput::<A, B>::First).name("Tag First");
        let second = self.second.map(CoInput::<A, B>::Second).name("Tag Second");
        first.union(&[second])
    }

    /// CoMap: `first` maps the first input's records, `second` the second's, into
    /// one output stream.
    pub fn map<O, F1, F2>(&self, first: F1, second: F2) -> DataStream<O>
    where
        O: Record,
        F1: FnMut(A) -> O + Clone + Send + Sync + 'static,
        F2: FnMut(B) -> O + Clone + Send + Sync + 'static,
    {
        self.tagged().map(co_map(first, second)).name("CoMap")
    }

    /// CoFlatMap: any number of records per input record, from either input.
    ///
    /// ```
    /// use flink_core::prelude::*;
    ///
    /// let env = StreamExecutionEnvironment::new();
    /// let lines = env.from_collection(vec!["to be".to_string()]);
    /// let counts = env.from_sequence(2, 3);
    /// let out = lines
    ///     .connect(&counts)
    ///     .flat_map(
    ///         |line: String, out: &mut dyn Collector<String>| {
    ///             line.split(' ').for_each(|w| out.collect(w.to_string()))
    ///         },
    ///         |n: u64, out: &mut dyn Collector<String>| out.collect(n.to_string()),
    ///     )
    ///     .collect_vec();
    /// # let _ = out;
    /// ```
    pub fn flat_map<O, F1, F2>(&self, first: F1, second: F2) -> DataStream<O>
    where
        O: Record,
        F1: FnMut(A, &mut dyn Collector<O>) + Clone + Send + Sync + 'static,
        F2: FnMut(B, &mut dyn Collector<O>) + Clone + Send + Sync + 'static,
    {
        self.tagged()
            .flat_map(co_flat_map(first, second))
            .name("CoFlatMap")
    }

    /// Partitions both inputs by key (`first` for the first input's records,
    /// `second` for the second's): records with equal keys meet in one instance,
    /// for a [`KeyedCoProcessFunction`].
    pub fn key_by<K, KA, KB>(&self, first: KA, second: KB) -> ConnectedKeyedStreams<K, A, B>
    where
        K: Record + std::hash::Hash + Eq,
        KA: Fn(&A) -> K + Send + Sync + 'static,
        KB: Fn(&B) -> K + Send + Sync + 'static,
    {
        let keyed = self.tagged().key_by(move |r: &CoInput<A, B>| match r {
            CoInput::First(a) => first(a),
            CoInput::Second(b) => second(b),
        });
        ConnectedKeyedStreams { keyed }
    }
}

/// Two connected streams partitioned by one key; see [`ConnectedStreams::key_by`].
pub struct ConnectedKeyedStreams<K, A, B> {
    keyed: KeyedStream<K, CoInput<A, B>>,
}

impl<K, A, B> ConnectedKeyedStreams<K, A, B>
where
    K: Record + std::hash::Hash + Eq,
    A: Record,
    B: Record,
{
    /// Keyed CoMap: `first` maps the first input's records, `second` the second's,
    /// after both were partitioned by key (records of equal keys from either input
    /// meet in one instance, in the order each input sent them).
    ///
    /// ```
    /// use flink_core::prelude::*;
    ///
    /// let env = StreamExecutionEnvironment::new();
    /// let orders = env.from_collection(vec![(1u32, 2u64)]);
    /// let refunds = env.from_collection(vec![(1u32, 5i64)]);
    /// let changes = orders
    ///     .connect(&refunds)
    ///     .key_by(|o| o.0, |r| r.0)
    ///     .map(|o| (o.0, o.1 as i64), |r| (r.0, -r.1))
    ///     .collect_vec();
    /// # let _ = changes;
    /// ```
    pub fn map<O, F1, F2>(&self, first: F1, second: F2) -> DataStream<O>
    where
        O: Record,
        F1: FnMut(A) -> O + Clone + Send + Sync + 'static,
        F2: FnMut(B) -> O + Clone + Send + Sync + 'static,
    {
        self.keyed.map(co_map(first, second)).name("Keyed CoMap")
    }

    /// Keyed CoFlatMap: any number of records per record of either input, after
    /// both were partitioned by key.
    pub fn flat_map<O, F1, F2>(&self, first: F1, second: F2) -> DataStream<O>
    where
        O: Record,
        F1: FnMut(A, &mut dyn Collector<O>) + Clone + Send + Sync + 'static,
        F2: FnMut(B, &mut dyn Collector<O>) + Clone + Send + Sync + 'static,
    {
        self.keyed
            .flat_map(co_flat_map(first, second))
            .name("Keyed CoFlatMap")
    }

    /// Runs `f` on both inputs with per-key state and timers shared by both (Flink's
    /// `KeyedCoProcessFunction`).
    ///
    /// ```
    /// use flink_core::prelude::*;
    /// use flink_core::connected_streams::KeyedCoProcessFunction;
    ///
    /// /// Orders (product, quantity) priced by the product's price (product, cents),
    /// /// whichever arrives first.
    /// #[derive(Clone)]
    /// struct Enrich;
    ///
    /// impl KeyedCoProcessFunction<u32, (u32, u64), (u32, u64), (u32, u64)> for Enrich {
    ///     /// The price if known, and the quantities still waiting for it.
    ///     type State = (Option<u64>, Vec<u64>);
    ///
    ///     fn process_element1(&mut self, order: (u32, u64), ctx: &mut KeyedContext<u32, Self::State, (u32, u64)>) {
    ///         let (price, mut waiting) = ctx.state().take().unwrap_or_default();
    ///         match price {
    ///             Some(cents) => ctx.collect((order.0, order.1 * cents)),
    ///             None => waiting.push(order.1),
    ///         }
    ///         ctx.state().update((price, waiting));
    ///     }
    ///
    ///     fn process_element2(&mut self, price: (u32, u64), ctx: &mut KeyedContext<u32, Self::State, (u32, u64)>) {
    ///         let (_, waiting) = ctx.state().take().unwrap_or_default();
    ///         for quantity in waiting {
    ///             ctx.collect((price.0, quantity * price.1));
    ///         }
    ///         ctx.state().update((Some(price.1), Vec::new()));
    ///     }
    /// }
    ///
    /// let env = StreamExecutionEnvironment::new();
    /// let orders = env.from_collection(vec![(1u32, 2u64), (2, 1)]);
    /// let prices = env.from_collection(vec![(1u32, 250u64), (2, 100)]);
    /// let totals = orders
    ///     .connect(&prices)
    ///     .key_by(|o: &(u32, u64)| o.0, |p: &(u32, u64)| p.0)
    ///     .process(Enrich)
    ///     .collect_vec();
    /// # let _ = totals;
    /// ```
    pub fn process<O, F>(&self, f: F) -> DataStream<O>
    where
        O: Record,
        F: KeyedCoProcessFunction<K, A, B, O>,
    {
        self.keyed
            .process_function(CoProcessAdapter {
                f,
                _inputs: PhantomData,
            })
            .name("Keyed CoProcess Function")
    }
}

/// A function of two keyed inputs with per-key state and timers shared by both, as
/// Flink's `KeyedCoProcessFunction`. The context is the one of
/// [`KeyedProcessFunction`]: [`KeyedContext::state`] (one value per key, checkpointed),
/// [`KeyedContext::timer_service`], [`KeyedContext::timestamp`] (if both inputs have
/// timestamps), side outputs.
pub trait KeyedCoProcessFunction<K, A, B, O>: Clone + Send + Sync + 'static {
    /// The value kept per key, shared by both inputs.
    type State: Serialize + serde::de::DeserializeOwned + Clone + Send + 'static;

    /// A record of the first input.
    fn process_element1(&mut self, record: A, ctx: &mut KeyedContext<'_, K, Self::State, O>);

    /// A record of the second input.
    fn process_element2(&mut self, record: B, ctx: &mut KeyedContext<'_, K, Self::State, O>);

    /// A timer of the current key fired at `timestamp`.
    fn on_timer(&mut self, _timestamp: i64, _ctx: &mut KeyedContext<'_, K, Self::State, O>) {}
}

/// Runs a [`KeyedCoProcessFunction`] as the keyed process function of the tagged
/// union of its inputs.
struct CoProcessAdapter<F, A, B> {
    f: F,
    _inputs: PhantomData<fn(A, B)>,
}

impl<F: Clone, A, B> Clone for CoProcessAdapter<F, A, B> {
    fn clone(&self) -> Self {
        Self {
            f: self.f.clone(),
            _inputs: PhantomData,
        }
    }
}

impl<K, A, B, O, F> KeyedProcessFunction<K, CoInput<A, B>, O> for CoProcessAdapter<F, A, B>
where
    A: 'static,
    B: 'static,
    F: KeyedCoProcessFunction<K, A, B, O>,
{
    type State = F::State;

    fn process_element(
        &mut self,
        record: CoInput<A, B>,
        ctx: &mut KeyedContext<'_, K, Self::State, O>,
    ) {
        match record {
            CoInput::First(a) => self.f.process_element1(a, ctx),
            CoInput::Second(b) => self.f.process_element2(b, ctx),
        }
    }

    fn on_timer(&mut self, timestamp: i64, ctx: &mut KeyedContext<'_, K, Self::State, O>) {
        self.f.on_timer(timestamp, ctx);
    }
}

/// One function of a tagged record: `first` for the first input's, `second` for the
/// second's (CoMap, keyed or not).
fn co_map<A, B, O>(
    mut first: impl FnMut(A) -> O + Clone,
    mut second: impl FnMut(B) -> O + Clone,
) -> impl FnMut(CoInput<A, B>) -> O + Clone {
    move |r| match r {
        CoInput::First(a) => first(a),
        CoInput::Second(b) => second(b),
    }
}

/// [`co_map`] for functions with any number of results (CoFlatMap).
fn co_flat_map<A, B, O>(
    mut first: impl FnMut(A, &mut dyn Collector<O>) + Clone,
    mut second: impl FnMut(B, &mut dyn Collector<O>) + Clone,
) -> impl FnMut(CoInput<A, B>, &mut dyn Collector<O>) + Clone {
    move |r, out| match r {
        CoInput::First(a) => first(a, out),
        CoInput::Second(b) => second(b, out),
    }
}
