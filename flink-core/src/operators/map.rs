use std::marker::PhantomData;

use crate::functions::{Collector, MapFunction};
use crate::operator::{Emitter, Operator};

/// Applies a [`MapFunction`] to every record.
pub struct MapOperator<F, I, O> {
    f: F,
    _types: PhantomData<fn(I) -> O>,
}

impl<F, I, O> MapOperator<F, I, O> {
    /// Wraps `f`.
    pub fn new(f: F) -> Self {
        Self {
            f,
            _types: PhantomData,
        }
    }
}

impl<F: MapFunction<I, O>, I: 'static, O: 'static> Operator<I, O> for MapOperator<F, I, O> {
    #[inline(always)]
    fn process<C: Collector<O> + ?Sized>(&mut self, record: I, out: &mut C) {
        out.collect(self.f.map(record));
    }

    #[inline]
    fn process_batch(&mut self, batch: &mut Vec<I>, out: &mut Emitter<'_, O>) {
        // An exact-size iterator: one capacity check for the whole batch.
        let f = &mut self.f;
        out.batch().extend(batch.drain(..).map(|r| f.map(r)));
    }
}
