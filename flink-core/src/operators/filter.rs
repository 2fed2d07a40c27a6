use std::marker::PhantomData;

use crate::functions::{Collector, FilterFunction};
use crate::operator::Operator;

/// Keeps records accepted by a [`FilterFunction`].
pub struct FilterOperator<F, T> {
    f: F,
    _types: PhantomData<fn(T)>,
}

impl<F, T> FilterOperator<F, T> {
    /// Wraps `f`.
    pub fn new(f: F) -> Self {
        Self {
            f,
            _types: PhantomData,
        }
    }
}

impl<F: FilterFunction<T>, T: 'static> Operator<T, T> for FilterOperator<F, T> {
    #[inline(always)]
    fn process<C: Collector<T> + ?Sized>(&mut self, record: T, out: &mut C) {
        if self.f.filter(&record) {
            out.collect(record);
        }
    }
}
