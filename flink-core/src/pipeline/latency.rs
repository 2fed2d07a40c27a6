use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Buckets grow by 2^(1/16) (~4.4 %), from 1 us to ~2^32 us (over an hour).
const STEPS_PER_DOUBLING: f64 = 16.0;
const BUCKETS: usize = 32 * 16 + 1;

/// A lock-free latency histogram with ~4 % resolution: fixed memory, any number of
/// samples.
pub struct LatencyHistogram {
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
        }
    }
}

fn bucket_of(d: Duration) -> usize {
    let us = d.as_secs_f64() * 1e6;
    if us <= 1.0 {
        return 0;
    }
    ((us.log2() * STEPS_PER_DOUBLING).ceil() as usize).min(BUCKETS - 1)
}

fn upper_bound(bucket: usize) -> Duration {
    Duration::from_secs_f64(2f64.powf(bucket as f64 / STEPS_PER_DOUBLING) / 1e6)
}

impl LatencyHistogram {
    /// Records one latency.
    pub fn record(&self, d: Duration) {
        self.buckets[bucket_of(d)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The `q` quantile (0.0..=1.0), as the upper bound of its bucket; `None` when
    /// empty.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(upper_bound(i));
            }
        }
        Some(upper_bound(BUCKETS - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_bucket_resolution() {
        let h = LatencyHistogram::default();
        for ms in 1..=100u64 {
            h.record(Duration::from_millis(ms));
        }
        let p50 = h.quantile(0.5).unwrap().as_secs_f64() * 1e3;
        let p99 = h.quantile(0.99).unwrap().as_secs_f64() * 1e3;
        assert!((50.0..=50.0 * 1.05).contains(&p50), "{p50}");
        assert!((99.0..=99.0 * 1.05).contains(&p99), "{p99}");
        assert_eq!(h.count(), 100);
    }
}
