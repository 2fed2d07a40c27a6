//! Memory inside a chain is bounded: an operator with a large fan-out hands its
//! output on in batches of at most `EMIT_BATCH` records, whatever the fan-out, so a
//! slow operator behind it never sees (and the chain never holds) fan-out x batch.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use flink_core::operator::{EMIT_BATCH, Emitter, Operator};
use flink_runtime::prelude::*;

const FAN_OUT: u64 = 10_000;
const INPUTS: u64 = 20;

/// Passes records on and remembers the largest batch it was handed.
struct LargestBatch {
    largest: Arc<AtomicUsize>,
}

impl Operator<u64, u64> for LargestBatch {
    fn process<C: Collector<u64> + ?Sized>(&mut self, x: u64, out: &mut C) {
        out.collect(x);
    }

    fn process_batch(&mut self, batch: &mut Vec<u64>, out: &mut Emitter<'_, u64>) {
        self.largest.fetch_max(batch.len(), Ordering::Relaxed);
        for x in batch.drain(..) {
            out.collect(x);
        }
    }
}

/// A sink that takes a pause every thousand records.
struct PacedSink {
    written: Arc<AtomicU64>,
}

impl Sink<u64> for PacedSink {
    fn create_writer(&self, _: &flink_core::operator::RuntimeContext) -> Box<dyn SinkWriter<u64>> {
        Box::new(PacedWriter {
            written: self.written.clone(),
        })
    }
}

struct PacedWriter {
    written: Arc<AtomicU64>,
}

impl SinkWriter<u64> for PacedWriter {
    fn write(&mut self, _: u64) -> Result<(), SinkError> {
        if self
            .written
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(1_000)
        {
            std::thread::sleep(Duration::from_micros(200));
        }
        Ok(())
    }
}

#[test]
fn a_fan_out_of_ten_thousand_is_handed_on_in_bounded_batches() {
    let env = StreamExecutionEnvironment::new();
    let largest = Arc::new(AtomicUsize::new(0));
    let written = Arc::new(AtomicU64::new(0));
    let seen = largest.clone();
    // The 20 inputs arrive in one source batch: without the bound the flat_map would
    // hand on all 200,000 outputs at once.
    env.from_sequence(1, INPUTS)
        .flat_map(|x: u64, out: &mut dyn Collector<u64>| {
            for i in 0..FAN_OUT {
                out.collect(x * FAN_OUT + i);
            }
        })
        .transform("Largest Batch", move |_| LargestBatch {
            largest: seen.clone(),
        })
        .sink_to(PacedSink {
            written: written.clone(),
        });
    let result = env.execute("fan-out").unwrap();
    // One chain: the flat_map's output reaches the next operator by plain calls.
    assert_eq!(result.tasks.len(), 1);
    assert_eq!(written.load(Ordering::Relaxed), INPUTS * FAN_OUT);
    let largest = largest.load(Ordering::Relaxed);
    assert!(
        largest <= EMIT_BATCH,
        "the flat_map handed on {largest} records at once (bound {EMIT_BATCH})"
    );
    assert_eq!(largest, EMIT_BATCH, "full batches go on at the bound");
}
