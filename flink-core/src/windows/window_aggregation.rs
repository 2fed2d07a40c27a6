//! [`WindowAggregation`]: what a window keeps per key and window and what it emits
//! when it fires: reduce, aggregate or process (with or without an evictor).

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{AggregateFunction, Evictor, TimeWindow, TimestampedElements};
use crate::functions::Collector;

/// The state of one key's window and its result (the window operator's function).
/// Built by [`WindowedStream`](super::WindowedStream)'s `reduce`, `aggregate` and
/// `process`.
pub trait WindowAggregation<K, I, O>: Clone + Send + Sync + 'static {
    /// What is kept per key and window (`Clone`: a checkpoint copies it at the
    /// barrier and encodes the copy later).
    type Acc: Clone + Serialize + DeserializeOwned + Send + 'static;

    /// Adds `record` at `timestamp` to the window's state (`None` for a window's
    /// first record).
    fn add(&mut self, acc: &mut Option<Self::Acc>, record: I, timestamp: i64);

    /// The window fired: emits its result (an evicting window also drops records).
    fn emit(
        &mut self,
        key: &K,
        window: &TimeWindow,
        acc: &mut Self::Acc,
        out: &mut dyn Collector<O>,
    );

    /// Whether [`merge`](Self::merge) works (session windows need it).
    fn can_merge(&self) -> bool {
        true
    }

    /// Folds `other`, the state of a window merged away, into `acc`.
    fn merge(&mut self, acc: &mut Option<Self::Acc>, other: Self::Acc);
}

/// Keeps one reduced value per window and emits it (Flink's `reduce`).
pub struct ReduceWindow<F>(pub(crate) F);

impl<F> ReduceWindow<F> {
    /// Windows reduced by `f` (what `WindowedStream::reduce` builds; for operators
    /// made by hand, as in tests).
    pub fn new(f: F) -> Self {
        Self(f)
    }
}

impl<F: Clone> Clone for ReduceWindow<F> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<K, T, F> WindowAggregation<K, T, T> for ReduceWindow<F>
where
    T: Clone + Serialize + DeserializeOwned + Send + 'static,
    F: FnMut(T, T) -> T + Clone + Send + Sync + 'static,
{
    type Acc = T;

    #[inline]
    fn add(&mut self, acc: &mut Option<T>, record: T, _: i64) {
        *acc = Some(match acc.take() {
            Some(so_far) => (self.0)(so_far, record),
            None => record,
        });
    }

    fn emit(&mut self, _: &K, _: &TimeWindow, acc: &mut T, out: &mut dyn Collector<T>) {
        out.collect(acc.clone());
    }

    fn merge(&mut self, acc: &mut Option<T>, other: T) {
        <Self as WindowAggregation<K, T, T>>::add(self, acc, other, 0);
    }
}

/// Keeps one reduced value per window and hands it, with the key and the window,
/// to a function (Flink's `reduce(reduceFunction, windowFunction)`).
pub struct ReduceProcessWindow<F, P>(pub(crate) F, pub(crate) P);

impl<F: Clone, P: Clone> Clone for ReduceProcessWindow<F, P> {
    fn clone(&self) -> Self {
        Self(self.0.clone(), self.1.clone())
    }
}

impl<K, T, R, F, P> WindowAggregation<K, T, R> for ReduceProcessWindow<F, P>
where
    T: Clone + Serialize + DeserializeOwned + Send + 'static,
    F: FnMut(T, T) -> T + Clone + Send + Sync + 'static,
    P: FnMut(&K, &TimeWindow, T, &mut dyn Collector<R>) + Clone + Send + Sync + 'static,
{
    type Acc = T;

    #[inline]
    fn add(&mut self, acc: &mut Option<T>, record: T, _: i64) {
        *acc = Some(match acc.take() {
            Some(so_far) => (self.0)(so_far, record),
            None => record,
        });
    }

    fn emit(&mut self, key: &K, window: &TimeWindow, acc: &mut T, out: &mut dyn Collector<R>) {
        (self.1)(key, window, acc.clone(), out);
    }

    fn merge(&mut self, acc: &mut Option<T>, other: T) {
        <Self as WindowAggregation<K, T, R>>::add(self, acc, other, 0);
    }
}

/// Keeps one accumulator per window and emits its result (Flink's `aggregate`).
pub struct AggregateWindow<A, I>(pub(crate) A, pub(crate) PhantomData<fn(I)>);

impl<A: Clone, I> Clone for AggregateWindow<A, I> {
    fn clone(&self) -> Self {
        Self(self.0.clone(), PhantomData)
    }
}

impl<K, I, O, A> WindowAggregation<K, I, O> for AggregateWindow<A, I>
where
    I: 'static,
    A: AggregateFunction<I, O>,
{
    type Acc = A::Acc;

    #[inline]
    fn add(&mut self, acc: &mut Option<A::Acc>, record: I, _: i64) {
        let acc = acc.get_or_insert_with(|| self.0.create_accumulator());
        self.0.add(record, acc);
    }

    fn emit(&mut self, _: &K, _: &TimeWindow, acc: &mut A::Acc, out: &mut dyn Collector<O>) {
        out.collect(self.0.get_result(acc));
    }

    fn can_merge(&self) -> bool {
        self.0.can_merge()
    }

    fn merge(&mut self, acc: &mut Option<A::Acc>, other: A::Acc) {
        match acc {
            Some(acc) => self.0.merge(acc, other),
            None => *acc = Some(other),
        }
    }
}

/// Keeps every record of a window and hands them all, with the key and the window,
/// to a function (Flink's `process(ProcessWindowFunction)`).
pub struct ProcessWindow<F>(pub(crate) F);

impl<F> ProcessWindow<F> {
    /// Windows whose records are all handed to `f` (what `WindowedStream::process`
    /// builds; for operators made by hand, as in tests).
    pub fn new(f: F) -> Self {
        Self(f)
    }
}

impl<F: Clone> Clone for ProcessWindow<F> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<K, I, O, F> WindowAggregation<K, I, O> for ProcessWindow<F>
where
    I: Clone + Serialize + DeserializeOwned + Send + 'static,
    F: FnMut(&K, &TimeWindow, &[I], &mut dyn Collector<O>) + Clone + Send + Sync + 'static,
{
    type Acc = Vec<I>;

    #[inline]
    fn add(&mut self, acc: &mut Option<Vec<I>>, record: I, _: i64) {
        acc.get_or_insert_with(Vec::new).push(record);
    }

    fn emit(&mut self, key: &K, window: &TimeWindow, acc: &mut Vec<I>, out: &mut dyn Collector<O>) {
        (self.0)(key, window, acc, out);
    }

    fn merge(&mut self, acc: &mut Option<Vec<I>>, mut other: Vec<I>) {
        acc.get_or_insert_with(Vec::new).append(&mut other);
    }
}

/// Keeps every record of a window with its timestamp; when it fires, an evictor
/// removes records before and after the function sees them (Flink's
/// `EvictingWindowOperator`).
pub struct EvictingProcessWindow<F, E>(pub(crate) F, pub(crate) E);

impl<F: Clone, E: Clone> Clone for EvictingProcessWindow<F, E> {
    fn clone(&self) -> Self {
        Self(self.0.clone(), self.1.clone())
    }
}

impl<K, I, O, F, E> WindowAggregation<K, I, O> for EvictingProcessWindow<F, E>
where
    I: Clone + Serialize + DeserializeOwned + Send + 'static,
    F: FnMut(&K, &TimeWindow, &[I], &mut dyn Collector<O>) + Clone + Send + Sync + 'static,
    E: Evictor<I>,
{
    type Acc = TimestampedElements<I>;

    #[inline]
    fn add(&mut self, acc: &mut Option<Self::Acc>, record: I, timestamp: i64) {
        acc.get_or_insert_with(TimestampedElements::default)
            .push(timestamp, record);
    }

    fn emit(
        &mut self,
        key: &K,
        window: &TimeWindow,
        acc: &mut Self::Acc,
        out: &mut dyn Collector<O>,
    ) {
        self.1.evict_before(acc, window);
        (self.0)(key, window, acc.values(), out);
        self.1.evict_after(acc, window);
    }

    fn merge(&mut self, acc: &mut Option<Self::Acc>, other: Self::Acc) {
        acc.get_or_insert_with(TimestampedElements::default)
            .append(other);
    }
}

/// Keeps one accumulator per window and hands its result, with the key and the
/// window, to a function (Flink's `aggregate(aggregateFunction, windowFunction)`).
pub struct AggregateProcessWindow<A, F, I, O>(
    pub(crate) A,
    pub(crate) F,
    pub(crate) PhantomData<fn(I) -> O>,
);

impl<A: Clone, F: Clone, I, O> Clone for AggregateProcessWindow<A, F, I, O> {
    fn clone(&self) -> Self {
        Self(self.0.clone(), self.1.clone(), PhantomData)
    }
}

impl<K, I, O, R, A, F> WindowAggregation<K, I, R> for AggregateProcessWindow<A, F, I, O>
where
    I: 'static,
    O: 'static,
    A: AggregateFunction<I, O>,
    F: FnMut(&K, &TimeWindow, O, &mut dyn Collector<R>) + Clone + Send + Sync + 'static,
{
    type Acc = A::Acc;

    #[inline]
    fn add(&mut self, acc: &mut Option<A::Acc>, record: I, _: i64) {
        let acc = acc.get_or_insert_with(|| self.0.create_accumulator());
        self.0.add(record, acc);
    }

    fn emit(&mut self, key: &K, window: &TimeWindow, acc: &mut A::Acc, out: &mut dyn Collector<R>) {
        (self.1)(key, window, self.0.get_result(acc), out);
    }

    fn can_merge(&self) -> bool {
        self.0.can_merge()
    }

    fn merge(&mut self, acc: &mut Option<A::Acc>, other: A::Acc) {
        match acc {
            Some(acc) => self.0.merge(acc, other),
            None => *acc = Some(other),
        }
    }
}
