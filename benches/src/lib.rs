//! Shared pieces of the flink-rs benchmarks: a counting sink and process memory.

pub mod progress;
pub mod window_jobs;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flink_core::environment::StreamExecutionEnvironment;
use flink_core::operator::RuntimeContext;
use flink_core::sink::{Sink, SinkError, SinkWriter};

/// Counts records; optionally paces itself to a rate with a busy wait (as the Flink
/// reference's sink does), publishing every record when `live`.
#[derive(Clone)]
pub struct CountingSink {
    count: Arc<AtomicU64>,
    pace_per_second: u64,
    live: bool,
}

impl CountingSink {
    /// An unpaced sink that publishes its count when it finishes.
    pub fn new() -> Self {
        Self {
            count: Arc::default(),
            pace_per_second: 0,
            live: false,
        }
    }

    /// A sink paced to `per_second` records, publishing every record.
    pub fn paced(per_second: u64) -> Self {
        Self {
            count: Arc::default(),
            pace_per_second: per_second,
            live: true,
        }
    }

    /// The shared count.
    pub fn count(&self) -> Arc<AtomicU64> {
        self.count.clone()
    }
}

impl Default for CountingSink {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Send + 'static> Sink<T> for CountingSink {
    fn create_writer(&self, _: &RuntimeContext) -> Box<dyn SinkWriter<T>> {
        let interval = (self.pace_per_second > 0)
            .then(|| Duration::from_nanos(1_000_000_000 / self.pace_per_second));
        Box::new(CountingWriter {
            local: 0,
            shared: self.count.clone(),
            live: self.live,
            interval,
            next_deadline: None,
        })
    }
}

struct CountingWriter {
    local: u64,
    shared: Arc<AtomicU64>,
    live: bool,
    interval: Option<Duration>,
    next_deadline: Option<Instant>,
}

impl<T> SinkWriter<T> for CountingWriter {
    #[inline]
    fn write(&mut self, _: T) -> Result<(), SinkError> {
        if let Some(interval) = self.interval {
            let deadline = self.next_deadline.unwrap_or_else(Instant::now) + interval;
            self.next_deadline = Some(deadline);
            while Instant::now() < deadline {
                std::hint::spin_loop();
            }
        }
        if self.live {
            self.shared.fetch_add(1, Ordering::Relaxed);
        } else {
            self.local += 1;
        }
        Ok(())
    }

    fn write_batch(&mut self, batch: &mut Vec<T>) -> Result<(), SinkError> {
        if self.interval.is_none() && !self.live {
            self.local += batch.len() as u64;
            batch.clear();
            return Ok(());
        }
        for record in batch.drain(..) {
            self.write(record)?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.shared.fetch_add(self.local, Ordering::Relaxed);
        Ok(())
    }
}

/// Resident set size and its peak (VmRSS, VmHWM) of this process, in KiB.
pub fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The `keyed` job on `env`: a sequence of `n` -> map to `(x % 1000, 1)` -> key_by ->
/// running sum -> counting sink, at parallelism 2. Returns the sink's count.
pub fn keyed_job(env: &StreamExecutionEnvironment, n: u64) -> Arc<AtomicU64> {
    keyed_job_over::<1_000>(env, n)
}

/// [`keyed_job`] over a stream with event timestamps (`x / 10` ms, monotonous
/// watermarks, as the `window` job's): what carrying timestamps costs a keyed
/// running sum.
pub fn keyed_timestamps_job(env: &StreamExecutionEnvironment, n: u64) -> Arc<AtomicU64> {
    env.set_parallelism(2);
    let sink = CountingSink::new();
    let count = sink.count();
    env.from_sequence(1, n)
        .assign_timestamps_and_watermarks(
            flink_core::watermark::WatermarkStrategy::<u64>::monotonous(|x| (x / 10) as i64),
        )
        .map(|x: u64| (x % 1_000, 1u64))
        .key_by(|r: &(u64, u64)| r.0)
        .sum(|r: &mut (u64, u64)| &mut r.1)
        .sink_to(sink);
    count
}

/// [`keyed_job`] over `KEYS` keys: the map emits `(x % KEYS, 1)` (a constant, so the
/// remainder compiles to a multiplication as with a literal).
pub fn keyed_job_over<const KEYS: u64>(env: &StreamExecutionEnvironment, n: u64) -> Arc<AtomicU64> {
    env.set_parallelism(2);
    let sink = CountingSink::new();
    let count = sink.count();
    env.from_sequence(1, n)
        .map(|x: u64| (x % KEYS, 1u64))
        .key_by(|r: &(u64, u64)| r.0)
        .sum(|r: &mut (u64, u64)| &mut r.1)
        .sink_to(sink);
    count
}
