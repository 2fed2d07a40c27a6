//! [`WindowAggregation`]: what a window keeps per key and window and what it emits
//! when it fires: reduce, aggregate or process.

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{AggregateFunction, TimeWindow};
use crate::functions::Collector;

/// The state of one key's window and its result (the window operator's function).
/// Built by [`WindowedStream`](super::WindowedStream)'s `reduce`, `aggregate` and
/// `process`.
pub trait WindowAggregation<K, I, O>: Clone + Send + Sync + 'static {
    /// What is kept per key and window.
    type Acc: Serialize + DeserializeOwned + Send + 'static;

    /// Adds `record` to the window's state (`None` for a window's first record).
    fn add(&mut self, acc: &mut Option<Self::Acc>, record: I);

    /// The window fired: emits its result.
    fn emit(&mut self, key: &K, window: &TimeWindow, acc: &Self::Acc, out: &mut dyn Collector<O>);
}

/// Keeps one reduced value per window and emits it (Flink's `reduce`).
pub struct ReduceWindow<F>(pub(crate) F);

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
    fn add(&mut self, acc: &mut Option<T>, record: T) {
        *acc = Some(match acc.take() {
            Some(so_far) => (self.0)(so_far, record),
            None => record,
        });
    }

    fn emit(&mut self, _: &K, _: &TimeWindow, acc: &T, out: &mut dyn Collector<T>) {
        out.collect(acc.clone());
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
    fn add(&mut self, acc: &mut Option<A::Acc>, record: I) {
        let acc = acc.get_or_insert_with(|| self.0.create_accumulator());
        self.0.add(record, acc);
    }

    fn emit(&mut self, _: &K, _: &TimeWindow, acc: &A::Acc, out: &mut dyn Collector<O>) {
        out.collect(self.0.get_result(acc));
    }
}

/// Keeps every record of a window and hands them all, with the key and the window,
/// to a function (Flink's `process(ProcessWindowFunction)`).
pub struct ProcessWindow<F>(pub(crate) F);

impl<F: Clone> Clone for ProcessWindow<F> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<K, I, O, F> WindowAggregation<K, I, O> for ProcessWindow<F>
where
    I: Serialize + DeserializeOwned + Send + 'static,
    F: FnMut(&K, &TimeWindow, &[I], &mut dyn Collector<O>) + Clone + Send + Sync + 'static,
{
    type Acc = Vec<I>;

    #[inline]
    fn add(&mut self, acc: &mut Option<Vec<I>>, record: I) {
        acc.get_or_insert_with(Vec::new).push(record);
    }

    fn emit(&mut self, key: &K, window: &TimeWindow, acc: &Vec<I>, out: &mut dyn Collector<O>) {
        (self.0)(key, window, acc, out);
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
    fn add(&mut self, acc: &mut Option<A::Acc>, record: I) {
        let acc = acc.get_or_insert_with(|| self.0.create_accumulator());
        self.0.add(record, acc);
    }

    fn emit(&mut self, key: &K, window: &TimeWindow, acc: &A::Acc, out: &mut dyn Collector<R>) {
        (self.1)(key, window, self.0.get_result(acc), out);
    }
}
