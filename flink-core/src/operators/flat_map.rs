use std::marker::PhantomData;

use crate::functions::{Collector, FlatMapFunction};
use crate::operator::{ForwardTo, Operator};

/// Applies a [`FlatMapFunction`], emitting what it collects.
pub struct FlatMapOperator<F, I, O> {
    f: F,
    _types: PhantomData<fn(I) -> O>,
}

impl<F, I, O> FlatMapOperator<F, I, O> {
    /// Wraps `f`.
    pub fn new(f: F) -> Self {
        Self {
            f,
            _types: PhantomData,
        }
    }
}

impl<F: FlatMapFunction<I, O>, I: 'static, O: 'static> Operator<I, O> for FlatMapOperator<F, I, O> {
    fn process<C: Collector<O> + ?Sized>(&mut self, record: I, out: &mut C) {
        self.f.flat_map(record, &mut ForwardTo(out));
    }
}
