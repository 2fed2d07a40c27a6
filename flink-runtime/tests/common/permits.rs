//! [`Permits`]: lets a test hold a stage of a job record by record, so queues fill
//! up in front of it (records in flight) by count, never by timing.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Guard against a hang (not a timing assertion).
const GUARD: Duration = Duration::from_secs(120);

/// Permits for a gated stage: it handles a record only with one.
#[derive(Default)]
pub struct Permits {
    /// (granted, used); `u64::MAX` granted: open.
    counts: Mutex<(u64, u64)>,
    changed: Condvar,
}

impl Permits {
    /// Takes a permit, waiting for one.
    pub fn acquire(&self) {
        let mut c = self.counts.lock().unwrap();
        while c.1 >= c.0 {
            c = self.changed.wait(c).unwrap();
        }
        c.1 += 1;
        self.changed.notify_all();
    }

    /// Grants `n` more.
    pub fn grant(&self, n: u64) {
        let mut c = self.counts.lock().unwrap();
        c.0 = c.0.saturating_add(n);
        self.changed.notify_all();
    }

    /// No more holding back.
    pub fn open(&self) {
        self.grant(u64::MAX);
    }

    /// Permits used so far.
    pub fn used(&self) -> u64 {
        self.counts.lock().unwrap().1
    }

    /// Waits until `n` permits were used.
    pub fn wait_used(&self, n: u64) {
        let deadline = Instant::now() + GUARD;
        let mut c = self.counts.lock().unwrap();
        while c.1 < n {
            assert!(
                Instant::now() < deadline,
                "the gated stage stopped at {} of {n}",
                c.1
            );
            c = self
                .changed
                .wait_timeout(c, Duration::from_millis(100))
                .unwrap()
                .0;
        }
    }
}
