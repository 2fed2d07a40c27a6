//! Buffer debloating (Flink's FLIP-183) on the manual clock: an input gate whose
//! consumer reads at a known rate announces a buffer size that follows that rate, the
//! producer cuts its buffers there, and the bytes in flight stay near the target.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use flink_core::buffer_debloat::BufferDebloatConfig;
use flink_core::clock::ManualClock;
use flink_runtime::network::{
    CancelToken, GateItem, GatePoll, InputGate, IoMetrics, NetworkConfig, PartitionWriter,
    ResultPartition, Waiting, local_connect,
};

const BUFFER: usize = 32 * 1024;
/// One record: 12 bytes, 16 with its length prefix.
const RECORD: [u8; 12] = [7; 12];
const FRAMED: u64 = 16;

/// What one run measured.
struct Run {
    /// Bytes written but not yet consumed once the producer waits on a full pipeline.
    in_flight: u64,
    /// The size the gate announced last, as its metric shows it.
    metric: Option<usize>,
    /// The size the producer's subpartition got.
    at_producer: Option<usize>,
    /// Average bytes of the producer's last shipped buffers.
    recent_buffer_bytes: u64,
}

/// Waits until the producer is blocked on a full pipeline: it waits for a buffer and
/// none is free (or its channel has the most buffers queued it may have).
fn wait_until_full(partition: &ResultPartition, out_metrics: &IoMetrics) {
    let guard = Instant::now();
    loop {
        let blocked = out_metrics.waiting() == Waiting::Output
            && (!partition.pool().has_free() || partition.stats().queued >= 10);
        if blocked {
            return;
        }
        assert!(
            guard.elapsed() < Duration::from_secs(30),
            "producer never waited"
        );
        thread::sleep(Duration::from_micros(50));
    }
}

/// A producer writing as fast as it may into one channel; the consumer reads
/// `steps` buffers, advancing the manual clock so that it consumes `rate` bytes/s.
fn run(debloat: BufferDebloatConfig, rate: u64, steps: usize) -> Run {
    let config = NetworkConfig::default();
    let cancel = CancelToken::new();
    let (out_metrics, in_metrics) = (IoMetrics::new(), IoMetrics::new());
    let mut gate = InputGate::new(1, &config, cancel.clone(), Arc::clone(&in_metrics)).unwrap();
    let clock = ManualClock::new();
    gate.enable_debloating(&debloat, Arc::new(clock.clone()));
    let partition = ResultPartition::with_max_buffers_per_channel(
        1,
        config.default_partition_pool_size(1),
        BUFFER,
        cancel.clone(),
        Arc::clone(&out_metrics),
        10,
    )
    .unwrap();
    local_connect(&partition, 0, &gate, 0).unwrap();

    let produced = Arc::new(AtomicU64::new(0));
    let producer = {
        let (partition, produced) = (Arc::clone(&partition), Arc::clone(&produced));
        thread::spawn(move || {
            let mut writer = PartitionWriter::new(partition).unwrap();
            while writer.emit(0, &RECORD).is_ok() {
                produced.fetch_add(FRAMED, Ordering::Relaxed);
            }
        })
    };

    let mut consumed = 0u64;
    let (mut shipped_at, mut bytes_at) = (0, 0);
    for step in 0..steps {
        let mut bytes = 0u64;
        let guard = Instant::now();
        loop {
            let polled = gate
                .poll(Duration::from_millis(10), &mut |item| {
                    if let GateItem::Record { bytes: r, .. } = item {
                        bytes += r.len() as u64 + 4;
                    }
                })
                .unwrap();
            if polled == GatePoll::Processed {
                break;
            }
            assert!(guard.elapsed() < Duration::from_secs(30), "no data arrived");
        }
        consumed += bytes;
        // Let the producer fill the pipeline again, so every period ends full, as
        // under steady back pressure (and the test does not depend on scheduling).
        wait_until_full(&partition, &out_metrics);
        // Reading these bytes took bytes / rate on the job's clock.
        clock.advance(Duration::from_nanos(bytes * 1_000_000_000 / rate));
        if step == steps - 20 {
            shipped_at = out_metrics.buffers_shipped();
            bytes_at = out_metrics.bytes_shipped();
        }
    }
    let recent_buffer_bytes =
        (out_metrics.bytes_shipped() - bytes_at) / (out_metrics.buffers_shipped() - shipped_at);
    let in_flight = produced.load(Ordering::Relaxed) - consumed;
    let run = Run {
        in_flight,
        metric: in_metrics.debloated_buffer_size(),
        at_producer: partition.announced_buffer_size(0).unwrap(),
        recent_buffer_bytes,
    };
    cancel.cancel();
    producer.join().unwrap();
    run
}

#[test]
fn in_flight_bytes_stay_near_the_target_at_the_measured_rate() {
    let rate = 50_000; // bytes per second
    let config = BufferDebloatConfig::default();
    // The target's worth of data at the rate.
    let target_bytes = rate * config.target.as_millis() as u64 / 1000;
    let debloated = run(config, rate, 400);
    let size = debloated
        .metric
        .expect("debloating reports its buffer size");
    assert_eq!(debloated.at_producer, Some(size), "the producer got it");
    assert!((256..BUFFER).contains(&size), "announced {size}");
    assert!(
        debloated.recent_buffer_bytes <= size as u64,
        "buffers of {} bytes shipped after {size} was announced",
        debloated.recent_buffer_bytes
    );
    // The target's data at the rate, plus the threshold within which a size is not
    // re-announced, plus one buffer being filled.
    let bound = target_bytes * 125 / 100 + size as u64;
    assert!(
        debloated.in_flight >= target_bytes * 75 / 100,
        "{} bytes",
        debloated.in_flight
    );
    assert!(
        debloated.in_flight <= bound,
        "{} bytes in flight, more than {bound} (the target at {rate} B/s)",
        debloated.in_flight
    );

    // Without debloating the same pipeline holds every buffer full.
    let bloated = run(BufferDebloatConfig::disabled(), rate, 60);
    assert_eq!(bloated.metric, None);
    assert_eq!(bloated.at_producer, None);
    assert!(
        bloated.in_flight > 10 * BUFFER as u64,
        "{} bytes in flight without debloating",
        bloated.in_flight
    );
}

#[test]
fn the_announced_size_follows_the_rate() {
    let slow = run(BufferDebloatConfig::default(), 20_000, 300)
        .metric
        .unwrap();
    let fast = run(BufferDebloatConfig::default(), 80_000, 300)
        .metric
        .unwrap();
    // Four times the rate over about as many buffers in flight: about four times
    // the size (the buffers counted differ a little from one reading to the next).
    let ratio = fast as f64 / slow as f64;
    assert!(
        (2.5..=6.0).contains(&ratio),
        "{slow} -> {fast}: x{ratio:.2}"
    );
    // A consumer far faster than the full buffers need keeps them whole.
    assert_eq!(
        run(BufferDebloatConfig::default(), 10_000_000, 1000).metric,
        Some(BUFFER)
    );
}
