use std::marker::PhantomData;

use crate::functions::{Collector, FilterFunction};
use crate::operator::{Emitter, Operator};

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

    #[inline]
    fn process_batch(&mut self, batch: &mut Vec<T>, out: &mut Emitter<'_, T>) {
        // Filter in place, then hand the same allocation on: no copy of survivors
        // into a second vector. `out` is empty here, so the swap leaves `batch` empty.
        let f = &mut self.f;
        batch.retain(|r| f.filter(r));
        let out = out.batch();
        if out.is_empty() {
            std::mem::swap(batch, out);
        } else {
            out.append(batch);
        }
    }
}
