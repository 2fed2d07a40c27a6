//! [`StageSignals`]: what makes a stage's pressure, sampled over short windows of the
//! job's clock: the share of time it waited for a free slot, and the share of its
//! records that failed or (at the sink) were slower than the threshold.
//!
//! A stage running at its configured concurrency is not under pressure; a stage
//! waiting for a slot, failing, or answering slowly is.

use super::lock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::clock::Clock;

/// Shortest window over which shares are computed: short enough for the gateway to
/// react within a few milliseconds, long enough to average over many records.
const WINDOW: Duration = Duration::from_millis(20);

/// The meters of one operator instance in a stage.
#[derive(Clone)]
pub struct StageMeters {
    /// Records received.
    pub received: Arc<AtomicU64>,
    /// Records that failed for good (dead letters and counted errors).
    pub failed: Vec<Arc<AtomicU64>>,
    /// Total time waited for a free slot, in ns of the job's clock.
    pub wait_total_ns: Arc<AtomicU64>,
    /// Start of the wait going on now (ns + 1), or 0.
    pub waiting_since_ns: Arc<AtomicU64>,
}

impl StageMeters {
    /// Time waited up to `now`, the wait going on included.
    fn waited(&self, now: u64) -> u64 {
        let since = self.waiting_since_ns.load(Ordering::Relaxed);
        let ongoing = if since == 0 {
            0
        } else {
            now.saturating_sub(since - 1)
        };
        self.wait_total_ns.load(Ordering::Relaxed) + ongoing
    }

    fn failed(&self) -> u64 {
        self.failed.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// Totals of one stage at the start of the current window.
#[derive(Clone, Copy, Default)]
struct Totals {
    waited_ns: u64,
    received: u64,
    failed: u64,
}

/// The last computed shares of one stage.
#[derive(Clone, Copy, Default, Debug, PartialEq)]
pub struct Shares {
    /// Share of time waiting for a free slot (the busiest instance).
    pub waiting: f64,
    /// Share of received records that failed for good.
    pub failing: f64,
}

/// What the last complete window measured.
#[derive(Clone, Copy, Default, Debug, PartialEq)]
pub struct WindowSignals {
    /// Per stage, by index.
    pub stages: [Shares; 5],
    /// Share of acknowledged records slower than the threshold.
    pub slow_share: f64,
    /// Records that left the pipeline (delivered, dead-lettered or counted) per second.
    pub finish_rate: f64,
}

#[derive(Default)]
struct Window {
    started: Option<u64>,
    totals: Vec<Totals>,
    /// (slow, acknowledged, finished) at the window's start.
    counts: (u64, u64, u64),
    last: WindowSignals,
}

/// Signals of every stage of one pipeline.
#[derive(Default)]
pub struct StageSignals {
    clock: OnceLock<Arc<dyn Clock>>,
    meters: Mutex<Vec<(usize, StageMeters)>>,
    window: Mutex<Window>,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl StageSignals {
    /// Registers the meters of one instance of stage `stage` (an index).
    pub fn register(&self, stage: usize, meters: StageMeters, clock: Arc<dyn Clock>) {
        let _ = self.clock.set(clock);
        lock(&self.meters).push((stage, meters));
    }

    /// Forgets every registered instance (a new attempt registers its own).
    pub fn clear(&self) {
        lock(&self.meters).clear();
        *lock(&self.window) = Window::default();
    }

    /// The signals of the last complete window, recomputed when a window passed;
    /// `slow`, `acked` and `finished` are the pipeline's running counts of slow and
    /// acknowledged records and of records that left it.
    pub fn window(&self, slow: u64, acked: u64, finished: u64) -> WindowSignals {
        let Some(clock) = self.clock.get() else {
            return WindowSignals::default();
        };
        let now = nanos(clock.now());
        let mut w = lock(&self.window);
        let meters = lock(&self.meters);
        let due = w
            .started
            .is_none_or(|s| now.saturating_sub(s) >= nanos(WINDOW))
            || w.totals.len() != meters.len();
        if !due {
            return w.last;
        }
        let elapsed = w.started.map_or(0, |s| now.saturating_sub(s));
        let totals: Vec<Totals> = meters
            .iter()
            .map(|(_, m)| Totals {
                waited_ns: m.waited(now),
                received: m.received.load(Ordering::Relaxed),
                failed: m.failed(),
            })
            .collect();
        if elapsed > 0 && w.totals.len() == totals.len() {
            let stages: Vec<usize> = meters.iter().map(|(stage, _)| *stage).collect();
            let (slow0, acked0, finished0) = w.counts;
            w.last = WindowSignals {
                stages: stage_shares(&stages, &totals, &w.totals, elapsed),
                slow_share: share(slow.saturating_sub(slow0), acked.saturating_sub(acked0)),
                finish_rate: finished.saturating_sub(finished0) as f64 / (elapsed as f64 / 1e9),
            };
        }
        w.totals = totals;
        w.started = Some(now);
        w.counts = (slow, acked, finished);
        w.last
    }
}

/// `part` of `whole`, in `0.0..=1.0` (0 when nothing happened).
fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 / whole as f64).min(1.0)
    }
}

/// Per stage over one window: the busiest instance's share of time waiting, and the
/// share of the stage's received records that failed.
fn stage_shares(stages: &[usize], now: &[Totals], before: &[Totals], elapsed: u64) -> [Shares; 5] {
    let mut shares = [Shares::default(); 5];
    let mut counts = [(0u64, 0u64); 5];
    for ((&stage, n), b) in stages.iter().zip(now).zip(before) {
        let waited = n.waited_ns.saturating_sub(b.waited_ns);
        let s = &mut shares[stage];
        s.waiting = s.waiting.max(share(waited, elapsed));
        counts[stage].0 += n.received.saturating_sub(b.received);
        counts[stage].1 += n.failed.saturating_sub(b.failed);
    }
    for (s, (received, failed)) in shares.iter_mut().zip(counts) {
        s.failing = share(failed, received);
    }
    shares
}
