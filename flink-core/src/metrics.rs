//! Record counters that cost one plain store per record: a single writer (the task
//! thread) keeps the count and publishes it; any thread may read it live.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A live, single-writer record counter.
#[derive(Debug, Default)]
pub struct Counter {
    local: u64,
    shared: Arc<AtomicU64>,
}

impl Counter {
    /// A counter publishing into `shared`, going on from its value: an operator
    /// restarted after a failure keeps counting where its failed run stopped (one
    /// writer at a time: the failed run's threads ended first).
    pub fn new(shared: Arc<AtomicU64>) -> Self {
        Self {
            local: shared.load(Ordering::Relaxed),
            shared,
        }
    }

    /// Counts one record.
    #[inline(always)]
    pub fn inc(&mut self) {
        self.local += 1;
        self.shared.store(self.local, Ordering::Relaxed);
    }

    /// Counts `n` records.
    #[inline(always)]
    pub fn add(&mut self, n: u64) {
        self.local += n;
        self.shared.store(self.local, Ordering::Relaxed);
    }

    /// The count so far.
    pub fn get(&self) -> u64 {
        self.local
    }
}

/// Records in and out of one parallel instance of an operator.
#[derive(Debug, Default)]
pub struct OperatorMetrics {
    /// Records the operator received.
    pub records_in: Arc<AtomicU64>,
    /// Records the operator emitted.
    pub records_out: Arc<AtomicU64>,
    /// Records written to a side output that nothing consumes.
    pub side_output_unconsumed: Arc<AtomicU64>,
    /// Dead letters no stream reads, dropped on purpose
    /// (`DataStream::discard_dead_letters`).
    pub dead_letters_discarded: Arc<AtomicU64>,
    /// Set while the task thread is inside this operator (a batch, a poll for pending
    /// results, the end of input), cleared when it returns; set and cleared once per
    /// batch, not per record. An operator chained after it sets its own flag, so the
    /// innermost operator whose flag is set is the one working: the runtime samples
    /// these flags to say which operator of a chain takes the most time.
    pub active: Arc<AtomicBool>,
    /// Operator-specific counters and gauges (retries, timeouts, in flight, ...).
    custom: std::sync::Mutex<Vec<(String, Arc<AtomicU64>)>>,
}

impl OperatorMetrics {
    /// The operator-specific metric `name`, created at zero on first use. Counters
    /// are summed over parallel instances in reports; so are gauges (such as
    /// "in_flight"), which then read as the operator's total.
    pub fn custom(&self, name: &str) -> Arc<AtomicU64> {
        let mut custom = self.custom.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, m)) = custom.iter().find(|(n, _)| n == name) {
            return m.clone();
        }
        let m = Arc::new(AtomicU64::new(0));
        custom.push((name.to_string(), m.clone()));
        m
    }

    /// Current values of the operator-specific metrics.
    pub fn custom_snapshot(&self) -> Vec<(String, u64)> {
        let custom = self.custom.lock().unwrap_or_else(|p| p.into_inner());
        custom
            .iter()
            .map(|(n, m)| (n.clone(), m.load(Ordering::Relaxed)))
            .collect()
    }

    /// Current (records in, records out).
    pub fn snapshot(&self) -> (u64, u64) {
        (
            self.records_in.load(Ordering::Relaxed),
            self.records_out.load(Ordering::Relaxed),
        )
    }
}
