//! [`RateWindow`]: per-second rates (busy / back-pressured / idle time, records in and
//! out) over the window between two readings of the job, taken only when someone asks.

use std::time::{Duration, Instant};

use crate::task_metrics::{TaskMetricsSnapshot, TimeShares};

/// The shortest window rates are computed over; a reading sooner than this after the
/// previous one reuses the last rates, so frequent requests (several clients, a UI
/// and a scraper) neither shrink the window to noise nor cost more.
pub(crate) const MIN_WINDOW: Duration = Duration::from_secs(1);

/// Every shown subtask's metrics at one moment, by vertex and then subtask.
#[derive(Debug, Clone)]
pub(crate) struct Reading {
    pub(crate) at: Instant,
    pub(crate) tasks: Vec<TaskMetricsSnapshot>,
    /// The state of each subtask.
    pub(crate) states: Vec<crate::cluster::SubtaskState>,
    /// (records in, records out) of each subtask, as its vertex counts them.
    pub(crate) records: Vec<(u64, u64)>,
    /// Bytes each subtask shipped to the network.
    pub(crate) bytes_out: Vec<u64>,
    /// Bytes each subtask received from the network.
    pub(crate) bytes_in: Vec<u64>,
}

/// Rates of every subtask over one window.
#[derive(Debug, Clone)]
pub(crate) struct Rates {
    pub(crate) shares: Vec<TimeShares>,
    pub(crate) records_in_per_s: Vec<f64>,
    pub(crate) records_out_per_s: Vec<f64>,
    /// How long the window was.
    pub(crate) window: Duration,
}

/// The previous reading and the rates last computed from it.
#[derive(Debug)]
pub(crate) struct RateWindow {
    previous: Reading,
    latest: Option<Rates>,
}

impl RateWindow {
    /// A window opening at `first`.
    pub(crate) fn new(first: Reading) -> Self {
        Self {
            previous: first,
            latest: None,
        }
    }

    /// The rates up to `now`: over the window since the previous reading when it is
    /// at least [`MIN_WINDOW`] long (and `now` then opens the next one); otherwise the
    /// rates computed last, or, before any, over the short window so far.
    pub(crate) fn rates(&mut self, now: Reading) -> Rates {
        let window = now.at.saturating_duration_since(self.previous.at);
        if window >= MIN_WINDOW {
            let rates = between(&self.previous, &now);
            self.previous = now;
            self.latest = Some(rates.clone());
            return rates;
        }
        match &self.latest {
            Some(rates) => rates.clone(),
            None => between(&self.previous, &now),
        }
    }
}

fn between(before: &Reading, now: &Reading) -> Rates {
    let window = now.at.saturating_duration_since(before.at);
    let secs = window.as_secs_f64().max(1e-9);
    let per_s = |n: u64, b: u64| n.saturating_sub(b) as f64 / secs;
    Rates {
        shares: now
            .tasks
            .iter()
            .zip(&before.tasks)
            .map(|(n, b)| n.shares_since(b))
            .collect(),
        records_in_per_s: now
            .records
            .iter()
            .zip(&before.records)
            .map(|(n, b)| per_s(n.0, b.0))
            .collect(),
        records_out_per_s: now
            .records
            .iter()
            .zip(&before.records)
            .map(|(n, b)| per_s(n.1, b.1))
            .collect(),
        window,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(at: Instant, elapsed_ms: u64, bp_ms: u64, records: (u64, u64)) -> Reading {
        Reading {
            at,
            tasks: vec![TaskMetricsSnapshot {
                task: "t".into(),
                subtask: 0,
                parallelism: 1,
                elapsed: Duration::from_millis(elapsed_ms),
                ended: false,
                back_pressured: Duration::from_millis(bp_ms),
                idle: Duration::ZERO,
                out_pool_usage: 0.0,
                in_pool_usage: 0.0,
                debloated_buffer_size: None,
                flush_ticks: 0,
            }],
            states: vec![crate::cluster::SubtaskState::Running],
            records: vec![records],
            bytes_out: vec![0],
            bytes_in: vec![0],
        }
    }

    #[test]
    fn rolls_only_after_the_minimum_window() {
        let t0 = Instant::now();
        let mut w = RateWindow::new(reading(t0, 0, 0, (0, 0)));
        // 2 s later: 1.5 s back-pressured, 200 records out.
        let r = w.rates(reading(t0 + Duration::from_secs(2), 2000, 1500, (0, 200)));
        assert_eq!(r.shares[0].back_pressured_ms_per_s, 750.0);
        assert_eq!(r.records_out_per_s[0], 100.0);
        // 100 ms later: too soon, the same rates.
        let again = w.rates(reading(
            t0 + Duration::from_millis(2100),
            2100,
            1500,
            (0, 999),
        ));
        assert_eq!(again.records_out_per_s[0], 100.0);
        // 1 s after the roll: the new window, idle of back pressure.
        let next = w.rates(reading(t0 + Duration::from_secs(3), 3000, 1500, (0, 300)));
        assert_eq!(next.shares[0].back_pressured_ms_per_s, 0.0);
        assert_eq!(next.records_out_per_s[0], 100.0);
    }
}
