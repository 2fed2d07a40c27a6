//! [`BroadcastStream`]: a stream every parallel instance of the next operator
//! receives in full, with the broadcast states it fills (Flink's
//! `broadcast(MapStateDescriptor...)`), connected to a keyed stream for a
//! [`KeyedBroadcastProcessFunction`].
//!
//! How: as for [`connect`](crate::datastream::DataStream::connect), both inputs
//! are tagged ([`CoInput`]) and unioned into one operator; the keyed input's edge
//! is hash-partitioned by its key and the broadcast input's edge broadcast, so each
//! instance gets its keys' records and every broadcast record.

use std::hash::Hash;
use std::sync::Arc;

use crate::broadcast_process_function::BroadcastProcessFunction;
use crate::connected_streams::CoInput;
use crate::datastream::DataStream;
use crate::keyed_broadcast_process_function::KeyedBroadcastProcessFunction;
use crate::keyed_stream::{KeyFn, KeyedStream};
use crate::partitioner::{KeyHash, Partitioner};
use crate::state::MapStateDescriptor;
use crate::stream_type::Record;

/// A stream to broadcast, with the names of the broadcast states its records fill;
/// see [`DataStream::broadcast_with`].
pub struct BroadcastStream<B> {
    stream: DataStream<B>,
    declared: Vec<Arc<str>>,
}

impl<B: Record> DataStream<B> {
    /// Broadcasts this stream for the broadcast state pattern (Flink's
    /// `broadcast(descriptor)`): connect it to a keyed stream with
    /// [`KeyedStream::connect_broadcast`]; every parallel instance receives every
    /// record and keeps its own copy of the state `descriptor` names (declare more
    /// with [`BroadcastStream::with_state`]). A TTL on the descriptor does not
    /// apply: broadcast state never expires, as in Flink.
    pub fn broadcast_with<UK, UV>(
        &self,
        descriptor: &MapStateDescriptor<UK, UV>,
    ) -> BroadcastStream<B> {
        BroadcastStream {
            stream: self.clone(),
            declared: vec![descriptor.common.name.clone()],
        }
    }
}

impl<B> BroadcastStream<B> {
    /// Declares one more broadcast state the records fill.
    pub fn with_state<UK, UV>(mut self, descriptor: &MapStateDescriptor<UK, UV>) -> Self {
        self.declared.push(descriptor.common.name.clone());
        self
    }
}

/// Hashes a tagged record of the keyed input by its key. Only the keyed input's
/// edge uses it: a broadcast record never reaches it (it would hash as 0).
struct FirstKeyHash<I, K>(KeyFn<I, K>);

impl<I, B, K: serde::Serialize> KeyHash<CoInput<I, B>> for FirstKeyHash<I, K> {
    fn hash(&self, record: &CoInput<I, B>) -> u32 {
        match record {
            CoInput::First(r) => crate::key_group::stable_key_hash(&(self.0)(r)),
            CoInput::Second(_) => 0,
        }
    }
}

/// A keyed stream connected with a broadcast stream; see
/// [`KeyedStream::connect_broadcast`].
pub struct KeyedBroadcastConnectedStream<K, I, B> {
    keyed: KeyedStream<K, I>,
    broadcast: BroadcastStream<B>,
}

impl<K, I> KeyedStream<K, I>
where
    K: Record + Hash + Eq,
    I: Record,
{
    /// Connects this keyed stream with `broadcast` (Flink's
    /// `keyedStream.connect(broadcastStream)`), for a
    /// [`KeyedBroadcastProcessFunction`].
    pub fn connect_broadcast<B: Record>(
        &self,
        broadcast: &BroadcastStream<B>,
    ) -> KeyedBroadcastConnectedStream<K, I, B> {
        KeyedBroadcastConnectedStream {
            keyed: self.clone(),
            broadcast: BroadcastStream {
                stream: broadcast.stream.clone(),
                declared: broadcast.declared.clone(),
            },
        }
    }
}

impl<K, I, B> KeyedBroadcastConnectedStream<K, I, B>
where
    K: Record + Hash + Eq,
    I: Record,
    B: Record,
{
    /// Runs `f` on both inputs: keyed records with their key's state, broadcast
    /// records with the broadcast state (Flink's `process(KeyedBroadcastProcessFunction)`).
    ///
    /// ```
    /// use flink_core::prelude::*;
    /// use flink_core::broadcast_stream::*;
    /// use flink_core::keyed_broadcast_process_function::*;
    ///
    /// /// Words whose (lower-cased) form is on the broadcast block list are dropped.
    /// #[derive(Clone)]
    /// struct Censor {
    ///     blocked: MapStateDescriptor<String, ()>,
    /// }
    ///
    /// impl KeyedBroadcastProcessFunction<String, String, String, String> for Censor {
    ///     type State = ();
    ///
    ///     fn process_element(&mut self, word: String, ctx: &mut KeyedBroadcastContext<String, (), String>) {
    ///         if !ctx.get_broadcast_state(&self.blocked).contains(&word) {
    ///             ctx.collect(word);
    ///         }
    ///     }
    ///
    ///     fn process_broadcast_element(&mut self, word: String, ctx: &mut BroadcastContext<String, String>) {
    ///         ctx.get_broadcast_state(&self.blocked).put(word.to_lowercase(), ());
    ///     }
    /// }
    ///
    /// let env = StreamExecutionEnvironment::new();
    /// let blocked = MapStateDescriptor::<String, ()>::new("blocked");
    /// let block_list = env.from_collection(vec!["darn".to_string()]).broadcast_with(&blocked);
    /// let words = env.from_collection(vec!["oh".to_string(), "darn".into()]);
    /// let clean = words
    ///     .key_by(|w: &String| w.clone())
    ///     .connect_broadcast(&block_list)
    ///     .process(Censor { blocked })
    ///     .collect_vec();
    /// # let _ = clean;
    /// ```
    pub fn process<O, F>(&self, f: F) -> DataStream<O>
    where
        O: Record,
        F: KeyedBroadcastProcessFunction<K, I, B, O>,
    {
        let key = self.keyed.key_selector();
        let mut keyed_input = self.keyed.partitioned().clone();
        for input in &mut keyed_input.inputs {
            // Tag in the producer's chain; the tagged records are partitioned below.
            input.partitioner = None;
        }
        let first = keyed_input
            .map(CoInput::<I, B>::First)
            .name("Tag Keyed")
            .with_partitioner(Partitioner::Hash(Arc::new(FirstKeyHash(key.clone()))));
        let second = self
            .broadcast
            .stream
            .map(CoInput::<I, B>::Second)
            .name("Tag Broadcast")
            .with_partitioner(Partitioner::Broadcast);
        let tagged = first.union(&[second]);
        let declared: Arc<[Arc<str>]> = self.broadcast.declared.clone().into();
        tagged.transform("Keyed Broadcast Process", move |ctx| {
            let key = key.clone();
            crate::operators::KeyedBroadcastProcessOperator::new(
                move |r: &I| key(r),
                f.clone(),
                declared.clone(),
                None,
                ctx,
            )
        })
    }
}

/// A non-keyed stream connected with a broadcast stream; see
/// [`DataStream::connect_broadcast`].
pub struct BroadcastConnectedStream<I, B> {
    stream: DataStream<I>,
    broadcast: BroadcastStream<B>,
}

impl<I: Record> DataStream<I> {
    /// Connects this stream with `broadcast` (Flink's
    /// `dataStream.connect(broadcastStream)`), for a [`BroadcastProcessFunction`].
    /// This stream's records keep their partitioning; every instance gets every
    /// broadcast record.
    pub fn connect_broadcast<B: Record>(
        &self,
        broadcast: &BroadcastStream<B>,
    ) -> BroadcastConnectedStream<I, B> {
        BroadcastConnectedStream {
            stream: self.clone(),
            broadcast: BroadcastStream {
                stream: broadcast.stream.clone(),
                declared: broadcast.declared.clone(),
            },
        }
    }
}

impl<I: Record, B: Record> BroadcastConnectedStream<I, B> {
    /// Runs `f` on both inputs (Flink's `process(BroadcastProcessFunction)`).
    ///
    /// ```
    /// use flink_core::prelude::*;
    ///
    /// /// Scales each number by the latest broadcast factor (1 before any).
    /// #[derive(Clone)]
    /// struct Scale {
    ///     factor: MapStateDescriptor<(), u64>,
    /// }
    ///
    /// impl BroadcastProcessFunction<u64, u64, u64> for Scale {
    ///     fn process_element(&mut self, x: u64, ctx: &mut ReadOnlyBroadcastContext<u64>) {
    ///         let factor = ctx.get_broadcast_state(&self.factor).get(&()).copied().unwrap_or(1);
    ///         ctx.collect(x * factor);
    ///     }
    ///
    ///     fn process_broadcast_element(&mut self, factor: u64, ctx: &mut BroadcastContext<u64>) {
    ///         ctx.get_broadcast_state(&self.factor).put((), factor);
    ///     }
    /// }
    ///
    /// let env = StreamExecutionEnvironment::new();
    /// let factor = MapStateDescriptor::<(), u64>::new("factor");
    /// let factors = env.from_collection(vec![10u64]).broadcast_with(&factor);
    /// let scaled = env
    ///     .from_sequence(1, 5)
    ///     .connect_broadcast(&factors)
    ///     .process(Scale { factor })
    ///     .collect_vec();
    /// # let _ = scaled;
    /// ```
    pub fn process<O, F>(&self, f: F) -> DataStream<O>
    where
        O: Record,
        F: BroadcastProcessFunction<I, B, O>,
    {
        let first = self.stream.map(CoInput::<I, B>::First).name("Tag Stream");
        let second = self
            .broadcast
            .stream
            .map(CoInput::<I, B>::Second)
            .name("Tag Broadcast")
            .with_partitioner(Partitioner::Broadcast);
        let tagged = first.union(&[second]);
        let declared: Arc<[Arc<str>]> = self.broadcast.declared.clone().into();
        tagged.transform("Broadcast Process", move |ctx| {
            crate::operators::BroadcastProcessOperator::new(f.clone(), declared.clone(), None, ctx)
        })
    }
}
