//! Where a Kafka source is, per partition: a shared handle, for metrics now and for
//! checkpoints later.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// One partition's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PartitionProgress {
    /// The subtask reading the partition.
    pub subtask: usize,
    /// The offset of the next record to read (what a checkpoint stores).
    pub next_offset: i64,
    /// The partition's end offset (high watermark) as last seen.
    pub high_watermark: i64,
    /// In bounded mode, the end offset the reader stops at; `None` when unbounded.
    pub stop_offset: Option<i64>,
    /// Records emitted from this partition.
    pub records: u64,
    /// Messages of this partition that became dead letters.
    pub dead_letters: u64,
}

impl PartitionProgress {
    /// Records behind the end of the partition: `high_watermark - next_offset`.
    pub fn lag(&self) -> i64 {
        (self.high_watermark - self.next_offset).max(0)
    }
}

/// The current offsets of every partition a [`KafkaSource`](super::KafkaSource)
/// reads, shared by all its readers. Clone it freely; every clone sees the same state.
#[derive(Debug, Clone, Default)]
pub struct KafkaOffsets {
    inner: Arc<Mutex<BTreeMap<(String, i32), PartitionProgress>>>,
}

impl KafkaOffsets {
    /// A snapshot of every assigned partition's progress, by (topic, partition).
    pub fn snapshot(&self) -> BTreeMap<(String, i32), PartitionProgress> {
        self.lock().clone()
    }

    /// Total consumer lag (records behind the high watermarks last seen).
    pub fn lag(&self) -> i64 {
        self.lock().values().map(PartitionProgress::lag).sum()
    }

    /// Records the partitions of parallel reader `subtask` are behind their high
    /// watermarks.
    pub fn lag_of_subtask(&self, subtask: usize) -> u64 {
        let lag: i64 = self
            .lock()
            .values()
            .filter(|p| p.subtask == subtask)
            .map(PartitionProgress::lag)
            .sum();
        u64::try_from(lag).unwrap_or(0)
    }

    /// Total records emitted.
    pub fn records(&self) -> u64 {
        self.lock().values().map(|p| p.records).sum()
    }

    /// Total dead letters.
    pub fn dead_letters(&self) -> u64 {
        self.lock().values().map(|p| p.dead_letters).sum()
    }

    pub(crate) fn update(
        &self,
        topic: &str,
        partition: i32,
        f: impl FnOnce(&mut PartitionProgress),
    ) {
        let mut map = self.lock();
        f(map.entry((topic.to_string(), partition)).or_default());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, i32), PartitionProgress>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}
