//! Window join and coGroup (Flink's `DataStream.join` / `coGroup`): the records of
//! two streams with equal keys in one window meet when the window fires.

use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use super::unpartitioned;
use crate::connected_streams::CoInput;
use crate::datastream::DataStream;
use crate::functions::Collector;
use crate::side_output::OutputTag;
use crate::stream_type::Record;
use crate::windows::{DefaultTrigger, TimeWindow, Trigger, WindowAssigner, WindowedStream};

/// A key extractor of one side.
type Key<T, K> = Arc<dyn Fn(&T) -> K + Send + Sync>;

impl<A: Record> DataStream<A> {
    /// Joins this stream with `other` in windows (Flink's `join`): give the keys
    /// with `where_` and `equal_to`, the windows with `window`, then `apply` a
    /// function to each pair of records of equal key in one window.
    ///
    /// ```
    /// use std::time::Duration;
    /// use flink_core::prelude::*;
    /// use flink_core::watermark::WatermarkStrategy;
    /// use flink_core::windows::TumblingEventTimeWindows;
    ///
    /// let env = StreamExecutionEnvironment::new();
    /// // Clicks (user, ms) and views (user, page, ms) of the same user in one 10 s window.
    /// let clicks = env
    ///     .from_collection(vec![(1u32, 1_000i64), (2, 3_000), (1, 15_000)])
    ///     .assign_timestamps_and_watermarks(WatermarkStrategy::monotonous(|c: &(u32, i64)| c.1));
    /// let views = env
    ///     .from_collection(vec![(1u32, 7u32, 2_000i64), (1, 8, 12_000)])
    ///     .assign_timestamps_and_watermarks(WatermarkStrategy::monotonous(|v: &(u32, u32, i64)| v.2));
    /// let pairs = clicks
    ///     .join(&views)
    ///     .where_(|c: &(u32, i64)| c.0)
    ///     .equal_to(|v: &(u32, u32, i64)| v.0)
    ///     .window(TumblingEventTimeWindows::of(Duration::from_secs(10)))
    ///     .apply(|c: &(u32, i64), v: &(u32, u32, i64)| (c.0, c.1, v.1))
    ///     .collect_vec();
    /// # let _ = pairs;
    /// ```
    pub fn join<B: Record>(&self, other: &DataStream<B>) -> JoinedStreams<A, B> {
        JoinedStreams {
            first: self.clone(),
            second: other.clone(),
        }
    }

    /// Groups this stream and `other` by key and window (Flink's `coGroup`): when a
    /// window fires, each key present in it gets the records of both sides, either
    /// of which may be empty.
    ///
    /// ```
    /// use std::time::Duration;
    /// use flink_core::prelude::*;
    /// use flink_core::watermark::WatermarkStrategy;
    /// use flink_core::windows::TumblingEventTimeWindows;
    ///
    /// let env = StreamExecutionEnvironment::new();
    /// // Orders (customer, ms) and payments (customer, ms): per customer and minute,
    /// // how many of each.
    /// let orders = env
    ///     .from_collection(vec![(1u32, 1_000i64), (1, 2_000), (2, 3_000)])
    ///     .assign_timestamps_and_watermarks(WatermarkStrategy::monotonous(|o: &(u32, i64)| o.1));
    /// let payments = env
    ///     .from_collection(vec![(1u32, 5_000i64)])
    ///     .assign_timestamps_and_watermarks(WatermarkStrategy::monotonous(|p: &(u32, i64)| p.1));
    /// let balance = orders
    ///     .co_group(&payments)
    ///     .where_(|o: &(u32, i64)| o.0)
    ///     .equal_to(|p: &(u32, i64)| p.0)
    ///     .window(TumblingEventTimeWindows::of(Duration::from_secs(60)))
    ///     .apply(|o: &[(u32, i64)], p: &[(u32, i64)], out: &mut dyn Collector<(usize, usize)>| {
    ///         out.collect((o.len(), p.len()))
    ///     })
    ///     .collect_vec();
    /// # let _ = balance;
    /// ```
    pub fn co_group<B: Record>(&self, other: &DataStream<B>) -> CoGroupedStreams<A, B> {
        CoGroupedStreams {
            first: self.clone(),
            second: other.clone(),
        }
    }
}

/// Two streams to be co-grouped; see [`DataStream::co_group`].
pub struct CoGroupedStreams<A, B> {
    first: DataStream<A>,
    second: DataStream<B>,
}

impl<A: Record, B: Record> CoGroupedStreams<A, B> {
    /// The key of the first stream's records.
    pub fn where_<K, KA>(&self, key: KA) -> CoGroupedWhere<K, A, B>
    where
        KA: Fn(&A) -> K + Send + Sync + 'static,
    {
        CoGroupedWhere {
            first: self.first.clone(),
            second: self.second.clone(),
            key: Arc::new(key),
        }
    }
}

/// A coGroup with the first stream's key; see [`DataStream::co_group`].
pub struct CoGroupedWhere<K, A, B> {
    first: DataStream<A>,
    second: DataStream<B>,
    key: Key<A, K>,
}

impl<K: Record + Hash + Eq, A: Record, B: Record> CoGroupedWhere<K, A, B> {
    /// The key of the second stream's records, to equal the first's.
    pub fn equal_to<KB>(&self, key: KB) -> CoGroupedKeyed<K, A, B>
    where
        KB: Fn(&B) -> K + Send + Sync + 'static,
    {
        CoGroupedKeyed {
            first: self.first.clone(),
            second: self.second.clone(),
            first_key: self.key.clone(),
            second_key: Arc::new(key),
        }
    }
}

/// A coGroup with both keys; see [`DataStream::co_group`].
pub struct CoGroupedKeyed<K, A, B> {
    first: DataStream<A>,
    second: DataStream<B>,
    first_key: Key<A, K>,
    second_key: Key<B, K>,
}

impl<K: Record + Hash + Eq, A: Record, B: Record> CoGroupedKeyed<K, A, B> {
    /// Cuts both streams into the windows of `assigner`.
    pub fn window<W: WindowAssigner>(&self, assigner: W) -> CoGroupedWindowed<K, A, B, W> {
        let (ka, kb) = (self.first_key.clone(), self.second_key.clone());
        let windowed = unpartitioned(&self.first)
            .connect(&unpartitioned(&self.second))
            .tagged()
            .key_by(move |r: &CoInput<A, B>| match r {
                CoInput::First(a) => ka(a),
                CoInput::Second(b) => kb(b),
            })
            .window(assigner);
        CoGroupedWindowed { windowed }
    }
}

/// A coGroup over windows, awaiting its function; see [`DataStream::co_group`].
pub struct CoGroupedWindowed<K, A, B, W, Tr = DefaultTrigger> {
    windowed: WindowedStream<K, CoInput<A, B>, W, Tr>,
}

impl<K, A, B, W, Tr> CoGroupedWindowed<K, A, B, W, Tr>
where
    K: Record + Hash + Eq,
    A: Record,
    B: Record,
    W: WindowAssigner,
    Tr: Trigger<CoInput<A, B>>,
{
    /// Replaces the assigner's default trigger (see [`WindowedStream::trigger`]);
    /// it sees the records of both sides, tagged.
    pub fn trigger<Tr2: Trigger<CoInput<A, B>>>(
        self,
        trigger: Tr2,
    ) -> CoGroupedWindowed<K, A, B, W, Tr2> {
        CoGroupedWindowed {
            windowed: self.windowed.trigger(trigger),
        }
    }

    /// Records may arrive up to `lateness` after their window's end and still
    /// update it; the window fires again (see
    /// [`WindowedStream::allowed_lateness`]).
    pub fn allowed_lateness(self, lateness: Duration) -> Self {
        Self {
            windowed: self.windowed.allowed_lateness(lateness),
        }
    }

    /// Records too late for every window go to the side output `tag`, tagged with
    /// their side (see [`WindowedStream::side_output_late_data`]).
    pub fn side_output_late_data(self, tag: &OutputTag<CoInput<A, B>>) -> Self {
        Self {
            windowed: self.windowed.side_output_late_data(tag),
        }
    }

    /// Calls `f` once per key and window with the records of each side in it
    /// (Flink's `CoGroupFunction`); the records are kept until the window fires.
    pub fn apply<O, F>(&self, f: F) -> DataStream<O>
    where
        O: Record,
        F: FnMut(&[A], &[B], &mut dyn Collector<O>) + Clone + Send + Sync + 'static,
    {
        let mut f = f;
        self.process(
            move |_: &K, _: &TimeWindow, a: &[A], b: &[B], out: &mut dyn Collector<O>| f(a, b, out),
        )
        .name("Window CoGroup")
    }

    /// As [`apply`](Self::apply), with the key and the window.
    pub fn process<O, F>(&self, f: F) -> DataStream<O>
    where
        O: Record,
        F: FnMut(&K, &TimeWindow, &[A], &[B], &mut dyn Collector<O>)
            + Clone
            + Send
            + Sync
            + 'static,
    {
        let mut f = f;
        self.windowed
            .process(
                move |key: &K,
                      window: &TimeWindow,
                      records: &[CoInput<A, B>],
                      out: &mut dyn Collector<O>| {
                    let (mut first, mut second) = (Vec::new(), Vec::new());
                    for r in records {
                        match r {
                            CoInput::First(a) => first.push(a.clone()),
                            CoInput::Second(b) => second.push(b.clone()),
                        }
                    }
                    f(key, window, &first, &second, out);
                },
            )
            .name("Window CoGroup")
    }
}

/// Two streams to be joined in windows; see [`DataStream::join`].
pub struct JoinedStreams<A, B> {
    first: DataStream<A>,
    second: DataStream<B>,
}

impl<A: Record, B: Record> JoinedStreams<A, B> {
    /// The key of the first stream's records.
    pub fn where_<K, KA>(&self, key: KA) -> JoinedWhere<K, A, B>
    where
        KA: Fn(&A) -> K + Send + Sync + 'static,
    {
        JoinedWhere {
            inner: CoGroupedWhere {
                first: self.first.clone(),
                second: self.second.clone(),
                key: Arc::new(key),
            },
        }
    }
}

/// A window join with the first stream's key; see [`DataStream::join`].
pub struct JoinedWhere<K, A, B> {
    inner: CoGroupedWhere<K, A, B>,
}

impl<K: Record + Hash + Eq, A: Record, B: Record> JoinedWhere<K, A, B> {
    /// The key of the second stream's records, to equal the first's.
    pub fn equal_to<KB>(&self, key: KB) -> JoinedKeyed<K, A, B>
    where
        KB: Fn(&B) -> K + Send + Sync + 'static,
    {
        JoinedKeyed {
            inner: self.inner.equal_to(key),
        }
    }
}

/// A window join with both keys; see [`DataStream::join`].
pub struct JoinedKeyed<K, A, B> {
    inner: CoGroupedKeyed<K, A, B>,
}

impl<K: Record + Hash + Eq, A: Record, B: Record> JoinedKeyed<K, A, B> {
    /// Cuts both streams into the windows of `assigner`.
    pub fn window<W: WindowAssigner>(&self, assigner: W) -> JoinedWindowed<K, A, B, W> {
        JoinedWindowed {
            inner: self.inner.window(assigner),
        }
    }
}

/// A window join awaiting its function; see [`DataStream::join`].
pub struct JoinedWindowed<K, A, B, W, Tr = DefaultTrigger> {
    inner: CoGroupedWindowed<K, A, B, W, Tr>,
}

impl<K, A, B, W, Tr> JoinedWindowed<K, A, B, W, Tr>
where
    K: Record + Hash + Eq,
    A: Record,
    B: Record,
    W: WindowAssigner,
    Tr: Trigger<CoInput<A, B>>,
{
    /// Replaces the assigner's default trigger (see [`WindowedStream::trigger`]);
    /// it sees the records of both sides, tagged.
    pub fn trigger<Tr2: Trigger<CoInput<A, B>>>(
        self,
        trigger: Tr2,
    ) -> JoinedWindowed<K, A, B, W, Tr2> {
        JoinedWindowed {
            inner: self.inner.trigger(trigger),
        }
    }

    /// Records may arrive up to `lateness` after their window's end; see
    /// [`WindowedStream::allowed_lateness`].
    pub fn allowed_lateness(self, lateness: Duration) -> Self {
        Self {
            inner: self.inner.allowed_lateness(lateness),
        }
    }

    /// Records too late for every window go to the side output `tag`.
    pub fn side_output_late_data(self, tag: &OutputTag<CoInput<A, B>>) -> Self {
        Self {
            inner: self.inner.side_output_late_data(tag),
        }
    }

    /// Emits `f(a, b)` for every pair of records of equal key in one window, first
    /// stream's record first (Flink's `JoinFunction`: an inner join; a key with
    /// records on one side only emits nothing).
    pub fn apply<O, F>(&self, f: F) -> DataStream<O>
    where
        O: Record,
        F: FnMut(&A, &B) -> O + Clone + Send + Sync + 'static,
    {
        let mut f = f;
        self.flat_apply(move |a: &A, b: &B, out: &mut dyn Collector<O>| out.collect(f(a, b)))
    }

    /// Calls `f` for every pair of records of equal key in one window; it may emit
    /// any number of records (Flink's `FlatJoinFunction`).
    pub fn flat_apply<O, F>(&self, f: F) -> DataStream<O>
    where
        O: Record,
        F: FnMut(&A, &B, &mut dyn Collector<O>) + Clone + Send + Sync + 'static,
    {
        let mut f = f;
        self.inner
            .apply(
                move |first: &[A], second: &[B], out: &mut dyn Collector<O>| {
                    for a in first {
                        for b in second {
                            f(a, b, out);
                        }
                    }
                },
            )
            .name("Window Join")
    }
}
