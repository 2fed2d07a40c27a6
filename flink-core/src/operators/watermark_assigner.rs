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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Records what reaches it, watermarks included.
    #[derive(Default)]
    struct Recorder(Vec<String>);

    impl Collector<i64> for Recorder {
        fn collect(&mut self, record: i64) {
            self.0.push(format!("r{record}"));
        }

        fn emit_watermark(&mut self, watermark: Watermark) {
            self.0.push(format!("w{}", watermark.0));
        }
    }

    #[test]
    fn emits_max_timestamp_minus_out_of_orderness_minus_one_then_max_at_the_end() {
        let strategy =
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(10), |x: &i64| *x);
        let mut assigner = WatermarkAssigner::new(strategy);
        let mut out = Recorder::default();
        // Out of order within the batch: the newest timestamp counts.
        let mut input: Vec<i64> = (0..RECORDS_PER_WATERMARK as i64).rev().collect();
        for x in input.drain(..) {
            assigner.process(x, &mut out);
        }
        // An upstream watermark is superseded, not forwarded.
        assigner.process_watermark(Watermark(5_000), &mut out);
        assigner.end_input(&mut out);
        let watermarks: Vec<&String> = out.0.iter().filter(|s| s.starts_with('w')).collect();
        let last_record = RECORDS_PER_WATERMARK as i64 - 1;
        assert_eq!(
            watermarks,
            [
                &format!("w{}", last_record - 10 - 1),
                &format!("w{}", i64::MAX)
            ]
        );
        assert_eq!(out.0.len(), RECORDS_PER_WATERMARK as usize + 2);
    }
}
