//! [`WatermarkAssigner`]: turns record timestamps into watermarks.

use crate::functions::Collector;
use crate::operator::{Emitter, Operator};
use crate::watermark::{Watermark, WatermarkStrategy};

/// On a record-at-a-time input, at most one watermark per this many records: each
/// one costs a network event buffer and, in an async operator, a barrier.
const RECORDS_PER_WATERMARK: u64 = 1024;

/// Tracks the newest timestamp and emits the strategy's watermark after each batch
/// of input in which it advanced, and [`Watermark::MAX`] when the input ends.
pub struct WatermarkAssigner<T> {
    strategy: WatermarkStrategy<T>,
    max_timestamp: i64,
    emitted: Watermark,
    since_emitted: u64,
}

impl<T> WatermarkAssigner<T> {
    /// An assigner following `strategy`.
    pub fn new(strategy: WatermarkStrategy<T>) -> Self {
        Self {
            strategy,
            max_timestamp: i64::MIN,
            emitted: Watermark::MIN,
            since_emitted: 0,
        }
    }

    fn observe(&mut self, record: &T) {
        self.max_timestamp = self.max_timestamp.max((self.strategy.timestamp)(record));
        self.since_emitted += 1;
    }

    fn emit_if_advanced<C: Collector<T> + ?Sized>(&mut self, out: &mut C) {
        let current = Watermark(
            self.max_timestamp
                .saturating_sub(self.strategy.max_out_of_orderness_ms)
                .saturating_sub(1),
        );
        if current > self.emitted {
            self.emitted = current;
            self.since_emitted = 0;
            out.emit_watermark(current);
        }
    }
}

impl<T: Send + 'static> Operator<T, T> for WatermarkAssigner<T> {
    fn process<C: Collector<T> + ?Sized>(&mut self, record: T, out: &mut C) {
        self.observe(&record);
        out.collect(record);
        if self.since_emitted >= RECORDS_PER_WATERMARK {
            self.emit_if_advanced(out);
        }
    }

    fn process_batch(&mut self, batch: &mut Vec<T>, out: &mut Emitter<'_, T>) {
        for record in batch.iter() {
            self.observe(record);
        }
        out.batch().append(batch);
        self.emit_if_advanced(out);
    }

    fn end_input<C: Collector<T> + ?Sized>(&mut self, out: &mut C) {
        out.emit_watermark(Watermark::MAX);
    }

    /// Watermarks from upstream are superseded by the ones this operator makes.
    fn process_watermark<C: Collector<T> + ?Sized>(&mut self, _watermark: Watermark, _out: &mut C) {
    }
}
