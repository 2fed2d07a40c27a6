//! Back pressure is physical: a stalled sink throttles the source, and the records in
//! flight never exceed what the bounded pools can hold.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use std::time::{Duration, Instant};

use flink_core::operator::RuntimeContext;
use flink_runtime::network::LENGTH_PREFIX;
use flink_runtime::prelude::*;

/// Permits the test hands out; the sink takes one per record.
#[derive(Default)]
struct Permits {
    available: Mutex<u64>,
    changed: Condvar,
}

impl Permits {
    fn release(&self, n: u64) {
        *self.available.lock().unwrap() += n;
        self.changed.notify_all();
    }

    fn take(&self) {
        let mut a = self.available.lock().unwrap();
        while *a == 0 {
            a = self.changed.wait(a).unwrap();
        }
        *a -= 1;
    }
}

struct GatedSink {
    permits: Arc<Permits>,
    consumed: Arc<AtomicU64>,
}

struct GatedWriter {
    permits: Arc<Permits>,
    consumed: Arc<AtomicU64>,
}

impl Sink<u64> for GatedSink {
    fn create_writer(&self, _: &RuntimeContext) -> Box<dyn SinkWriter<u64>> {
        Box::new(GatedWriter {
            permits: self.permits.clone(),
            consumed: self.consumed.clone(),
        })
    }
}

impl SinkWriter<u64> for GatedWriter {
    fn write(&mut self, _: u64) -> Result<(), SinkError> {
        self.permits.take();
        self.consumed.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

const BUFFER_SIZE: usize = 1024;
/// The longest the test waits for the sink to take the permits of one round: a guard
/// against a hang, not a timing assertion.
const ROUND_GUARD: Duration = Duration::from_secs(30);

/// Bytes of one record on the wire: the length prefix and the record as the codec
/// writes it (fixed-width integers, so every `u64` takes the same room).
fn record_bytes() -> usize {
    let mut encoded = Vec::new();
    flink_core::codec::encode_into(&(1u64 << 40), &mut encoded);
    LENGTH_PREFIX + encoded.len()
}

#[test]
fn a_stalled_sink_throttles_the_source_within_the_pool_bound() {
    let env = StreamExecutionEnvironment::new();
    env.set_buffer_size(BUFFER_SIZE);
    let emitted = Arc::new(AtomicU64::new(0));
    let consumed = Arc::new(AtomicU64::new(0));
    let permits = Arc::new(Permits::default());
    let counter = emitted.clone();
    env.from_sequence(1 << 40, (1 << 40) + 50_000_000)
        .map(move |x: u64| {
            counter.fetch_add(1, Ordering::SeqCst);
            x
        })
        .rebalance()
        .sink_to(GatedSink {
            permits: permits.clone(),
            consumed: consumed.clone(),
        })
        .disable_chaining();
    let client = env.execute_async("stalled sink").unwrap();

    // Sender pool (1 subpartition: 1*2 + 8 buffers) + receiver (2 exclusive + 8
    // floating) + the serializer's current buffer + the records of one buffer the
    // sink has decoded into its batch (that buffer is already recycled) + the source
    // batch being serialized.
    let config = env.config();
    let buffers = (2 + config.floating_buffers_per_gate)
        + (config.exclusive_buffers_per_channel + config.floating_buffers_per_gate)
        + 2;
    assert_eq!(record_bytes(), 4 + 8, "fixed-width u64 records");
    let bound =
        (buffers * (BUFFER_SIZE / record_bytes() + 1)) as u64 + flink_core::sources::SOURCE_BATCH;

    for round in 1..=20u64 {
        // The sink is stalled between rounds; the pause only makes the stall long
        // compared with the source's work, nothing is asserted about time.
        std::thread::sleep(Duration::from_millis(5));
        permits.release(1_000);
        let started = Instant::now();
        while consumed.load(Ordering::SeqCst) < round * 1_000 {
            assert!(
                started.elapsed() < ROUND_GUARD,
                "round {round}: the sink took {} of {} records within {ROUND_GUARD:?}",
                consumed.load(Ordering::SeqCst),
                round * 1_000
            );
            std::thread::yield_now();
        }
        let in_flight = emitted.load(Ordering::SeqCst) - consumed.load(Ordering::SeqCst);
        assert!(
            in_flight <= bound,
            "round {round}: {in_flight} records in flight > bound {bound}"
        );
    }

    let source = client
        .task_metrics()
        .into_iter()
        .find(|t| t.task.starts_with("Sequence Source"))
        .unwrap();
    let shares = source.shares();
    assert!(
        shares.back_pressured_ms_per_s > 500.0,
        "source should be mostly back-pressured: {shares:?}"
    );
    assert_eq!(shares.level(), BackPressureLevel::High);
    client.cancel();
    permits.release(u64::MAX / 2);
    assert!(matches!(
        client.wait().unwrap_err(),
        JobError::Cancelled { .. }
    ));
}
