//! [`Ledger`]: how many records of one pipeline are inside it, counted by the gateway
//! subtask that admitted them, so that the count stays exact when a record is
//! admitted in one process and ends in another.
//!
//! Every envelope carries its origin (the admitting gateway subtask). Where a record
//! ends (delivered, dead-lettered or counted as an error), its origin's finish count
//! goes up in that process. A gateway subtask's view of its records inside is what it
//! admitted minus what ended of them: here, and, as other processes last reported,
//! there (the runtime carries those totals between processes). Reports only lag, and
//! records only leave meanwhile, so the view bounds the true count from above; only
//! the subtask itself admits against it, so no other admission races it. Each
//! subtask keeps its view under its share of the limit (the shares add up to the
//! limit), so the whole pipeline stays under the limit, never over it, in one process
//! or many.

use super::lock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// The origin of records re-issued from a snapshot on restore: they count as
/// admitted once, in the process that re-issued them (which is also where they end:
/// the stages that store records are chained to the sink).
pub const RESTORED_ORIGIN: u32 = u32::MAX;

/// One gateway subtask of this process.
struct Gateway {
    subtask: usize,
    parallelism: usize,
    /// Its `admitted` metric, which lives as long as the job (over every attempt).
    admitted: Arc<AtomicU64>,
    /// What `admitted` showed when this attempt's subtask registered.
    base: u64,
}

impl Gateway {
    /// Records this attempt's subtask admitted.
    fn admitted(&self) -> u64 {
        self.admitted
            .load(Ordering::Relaxed)
            .saturating_sub(self.base)
    }
}

/// The in-pipeline count of one pipeline in one process. See the module docs.
#[derive(Default)]
pub(crate) struct Ledger {
    /// This process's gateway subtasks.
    gateways: Mutex<Vec<Gateway>>,
    /// Records that ended in this process, by origin (grown on first use).
    finished: RwLock<Vec<AtomicU64>>,
    /// Records that ended in other processes, by reporting process, then origin: the
    /// totals each last reported.
    remote: Mutex<Vec<Vec<u64>>>,
    /// Records re-issued from a snapshot in this process, and those of them ended.
    restored: AtomicU64,
    restored_finished: AtomicU64,
}

impl Ledger {
    /// Registers a gateway subtask of this process and its count of admitted records.
    pub(crate) fn register_gateway(
        &self,
        subtask: usize,
        parallelism: usize,
        admitted: Arc<AtomicU64>,
    ) {
        // Counted from the metric's value now: it keeps counting over attempts.
        let mut gateways = lock(&self.gateways);
        gateways.retain(|g| g.subtask != subtask);
        let base = admitted.load(Ordering::Relaxed);
        gateways.push(Gateway {
            subtask,
            parallelism,
            admitted,
            base,
        });
    }

    /// One record admitted by gateway subtask `origin` ended in this process.
    pub(crate) fn finish(&self, origin: u32) {
        if origin == RESTORED_ORIGIN {
            self.restored_finished.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let i = origin as usize;
        {
            let finished = self.finished.read().unwrap_or_else(|p| p.into_inner());
            if let Some(count) = finished.get(i) {
                count.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        let mut finished = self.finished.write().unwrap_or_else(|p| p.into_inner());
        while finished.len() <= i {
            finished.push(AtomicU64::new(0));
        }
        finished[i].fetch_add(1, Ordering::Relaxed);
    }

    /// `n` records re-issued from a snapshot in this process: they are inside.
    pub(crate) fn restored(&self, n: u64) {
        self.restored.fetch_add(n, Ordering::Relaxed);
    }

    /// Records that ended in this process, by origin: what it reports to the others.
    pub(crate) fn finished_here(&self) -> Vec<u64> {
        let finished = self.finished.read().unwrap_or_else(|p| p.into_inner());
        finished.iter().map(|c| c.load(Ordering::Relaxed)).collect()
    }

    /// Process `sender` reported `totals` (records ended there, by origin).
    pub(crate) fn apply_remote(&self, sender: usize, totals: Vec<u64>) {
        let mut remote = lock(&self.remote);
        if remote.len() <= sender {
            remote.resize(sender + 1, Vec::new());
        }
        // Totals only grow; a reordered older report must not take any back.
        let known = &mut remote[sender];
        if known.len() < totals.len() {
            known.resize(totals.len(), 0);
        }
        for (k, t) in known.iter_mut().zip(totals) {
            *k = (*k).max(t);
        }
    }

    /// Records of this process's gateways (and re-issued here) that ended, as known
    /// here now.
    pub(crate) fn finished_of_own(&self) -> u64 {
        let gateways = lock(&self.gateways);
        gateways
            .iter()
            .map(|g| self.ended_of(g.subtask))
            .sum::<u64>()
            + self.restored_finished.load(Ordering::Relaxed)
    }

    /// Records admitted by gateway subtask `subtask` known to have ended: here, and
    /// in the other processes as they last reported.
    fn ended_of(&self, subtask: usize) -> u64 {
        let here = self
            .finished
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(subtask)
            .map_or(0, |c| c.load(Ordering::Relaxed));
        let there: u64 = lock(&self.remote)
            .iter()
            .map(|r| r.get(subtask).copied().unwrap_or(0))
            .sum();
        here + there
    }

    /// Records that entered through this process's gateways in this attempt or were
    /// re-issued here, and those of them known to have ended (wherever they ended).
    pub(crate) fn balance(&self) -> (u64, u64) {
        let entered = lock(&self.gateways)
            .iter()
            .map(Gateway::admitted)
            .sum::<u64>()
            + self.restored.load(Ordering::Relaxed);
        (entered, self.finished_of_own())
    }

    /// Records of this process's gateways (and re-issued here) not known to have
    /// ended: an upper bound of those really inside.
    pub(crate) fn in_pipeline(&self) -> u64 {
        let (entered, ended) = self.balance();
        entered.saturating_sub(ended)
    }

    /// What gateway subtask `subtask` of this process counts against its share: its
    /// records not known to have ended, plus its part of the records re-issued here
    /// and still inside (shared evenly among this process's gateway subtasks,
    /// rounded up, so together they cover all of them).
    pub(crate) fn in_pipeline_of(&self, subtask: usize) -> u64 {
        let gateways = lock(&self.gateways);
        let Some(gateway) = gateways.iter().find(|g| g.subtask == subtask) else {
            return 0;
        };
        let finished = self.ended_of(subtask);
        let restored_inside = self
            .restored
            .load(Ordering::Relaxed)
            .saturating_sub(self.restored_finished.load(Ordering::Relaxed));
        let restored_part = restored_inside.div_ceil(gateways.len() as u64);
        (gateway.admitted() + restored_part).saturating_sub(finished)
    }

    /// How many gateway subtasks run in this process.
    pub(crate) fn local_gateways(&self) -> usize {
        lock(&self.gateways).len()
    }

    /// This process's share of a limit of `limit` records inside the whole pipeline:
    /// the shares of its gateway subtasks, `limit / parallelism` each and one more
    /// for the first `limit % parallelism`, so the shares of all subtasks add up to
    /// `limit` exactly (in one process: all of it).
    pub(crate) fn share_of(&self, limit: u64) -> u64 {
        lock(&self.gateways)
            .iter()
            .map(|g| subtask_share(limit, g.subtask, g.parallelism))
            .sum()
    }

    /// Forgets every count: a new attempt of the job starts (its records re-issued
    /// from the snapshot are counted again as they are restored).
    pub(crate) fn reset(&self) {
        lock(&self.gateways).clear();
        self.finished
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        lock(&self.remote).clear();
        self.restored.store(0, Ordering::Relaxed);
        self.restored_finished.store(0, Ordering::Relaxed);
    }
}

/// Gateway subtask `g` of `parallelism`'s share of `limit`.
pub(crate) fn subtask_share(limit: u64, g: usize, parallelism: usize) -> u64 {
    let p = parallelism.max(1) as u64;
    limit / p + u64::from((g as u64) < limit % p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(v: u64) -> Arc<AtomicU64> {
        Arc::new(AtomicU64::new(v))
    }

    #[test]
    fn shares_add_up_to_the_limit() {
        for (limit, p) in [(10, 3), (2, 2), (1_000, 7), (5, 5)] {
            let total: u64 = (0..p).map(|g| subtask_share(limit, g, p)).sum();
            assert_eq!(total, limit);
        }
    }

    #[test]
    fn records_ending_elsewhere_count_once_reported_and_reports_never_go_back() {
        // This process runs gateway subtask 1 of 2; subtask 0 runs elsewhere.
        let ledger = Ledger::default();
        let admitted = counter(0);
        ledger.register_gateway(1, 2, admitted.clone());
        assert_eq!(ledger.share_of(101), 50);
        admitted.store(10, Ordering::Relaxed);
        // 3 of ours end here, 1 of the other's too (reported, not ours).
        for origin in [1, 1, 1, 0] {
            ledger.finish(origin);
        }
        assert_eq!(ledger.finished_here(), vec![1, 3]);
        assert_eq!(ledger.in_pipeline(), 7);
        assert_eq!(ledger.in_pipeline_of(1), 7);
        assert_eq!(ledger.in_pipeline_of(0), 0, "not a gateway of this process");
        // Process 2 reports 4 of ours ended there; an older report changes nothing.
        ledger.apply_remote(2, vec![0, 4]);
        ledger.apply_remote(2, vec![0, 2]);
        assert_eq!(ledger.in_pipeline(), 3);
        // Re-issued records count once, wherever their origin was.
        ledger.restored(2);
        ledger.finish(RESTORED_ORIGIN);
        assert_eq!(ledger.in_pipeline(), 4);
        assert_eq!(ledger.in_pipeline_of(1), 4);
        ledger.reset();
        assert_eq!(ledger.in_pipeline(), 0);
        assert_eq!(ledger.share_of(100), 0);
        // The next attempt's subtask counts from the metric's value now.
        ledger.register_gateway(1, 2, admitted.clone());
        admitted.fetch_add(3, Ordering::Relaxed);
        assert_eq!(ledger.in_pipeline_of(1), 3);
    }
}
