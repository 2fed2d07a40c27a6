//! How records of an edge are spread over the downstream instances.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::key_group::{key_group_of, stable_key_hash, subtask_of_key_group};

/// The partitioning of an edge, as shown in plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PartitionKind {
    /// Instance `i` sends to instance `i` only; needs equal parallelism; chainable.
    Forward,
    /// Round robin over all downstream instances.
    Rebalance,
    /// By key group of a stable key hash.
    Hash,
    /// Every record to every downstream instance.
    Broadcast,
}

impl fmt::Display for PartitionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Self::Forward => "FORWARD",
            Self::Rebalance => "REBALANCE",
            Self::Hash => "HASH",
            Self::Broadcast => "BROADCAST",
        };
        f.write_str(s)
    }
}

/// The stable key hash of records of type `T`, one record or a whole batch per call.
pub type KeyHasher<T> = Arc<dyn KeyHash<T>>;

/// Hashes the key of a record. A batch is hashed in one dynamic call, so that the key
/// selector and the hash inline into one loop instead of costing two calls per record.
pub trait KeyHash<T>: Send + Sync {
    /// The stable key hash of `record`'s key.
    fn hash(&self, record: &T) -> u32;

    /// Appends the stable key hash of each record of `records` to `hashes`, in order.
    fn hash_batch(&self, records: &[T], hashes: &mut Vec<u32>) {
        hashes.extend(records.iter().map(|r| self.hash(r)));
    }
}

/// The [`KeyHash`] of a key selector: [`stable_key_hash`] of the key it extracts.
pub struct SelectorHash<F>(pub F);

impl<T, K, F> KeyHash<T> for SelectorHash<F>
where
    K: Serialize,
    F: Fn(&T) -> K + Send + Sync,
{
    #[inline]
    fn hash(&self, record: &T) -> u32 {
        stable_key_hash(&(self.0)(record))
    }

    fn hash_batch(&self, records: &[T], hashes: &mut Vec<u32>) {
        hashes.extend(records.iter().map(|r| stable_key_hash(&(self.0)(r))));
    }
}

/// The partitioning of an edge whose records are of type `T`.
pub enum Partitioner<T> {
    /// See [`PartitionKind::Forward`].
    Forward,
    /// See [`PartitionKind::Rebalance`].
    Rebalance,
    /// See [`PartitionKind::Hash`].
    Hash(KeyHasher<T>),
    /// See [`PartitionKind::Broadcast`].
    Broadcast,
}

impl<T> Clone for Partitioner<T> {
    fn clone(&self) -> Self {
        match self {
            Self::Forward => Self::Forward,
            Self::Rebalance => Self::Rebalance,
            Self::Hash(h) => Self::Hash(h.clone()),
            Self::Broadcast => Self::Broadcast,
        }
    }
}

impl<T> Partitioner<T> {
    /// The kind, for plans.
    pub fn kind(&self) -> PartitionKind {
        match self {
            Self::Forward => PartitionKind::Forward,
            Self::Rebalance => PartitionKind::Rebalance,
            Self::Hash(_) => PartitionKind::Hash,
            Self::Broadcast => PartitionKind::Broadcast,
        }
    }
}

/// Where one record goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// To one channel.
    Channel(usize),
    /// To every channel.
    All,
}

/// A partitioner bound to one producing instance: picks a target per record.
pub struct ChannelSelector<T> {
    partitioner: Partitioner<T>,
    channels: usize,
    max_parallelism: usize,
    /// The channel of each key group (for `Hash`): a table lookup per record.
    channel_of_group: Box<[u32]>,
    /// `max_parallelism - 1` when it is a power of two that fits the hash's 32 bits.
    group_mask: Option<u32>,
    next: usize,
}

/// The mask that takes a hash to its key group, if `max_parallelism` allows one.
fn group_mask(max_parallelism: usize) -> Option<u32> {
    let m = u32::try_from(max_parallelism).ok()?;
    m.is_power_of_two().then(|| m - 1)
}

impl<T> ChannelSelector<T> {
    /// Selects among `channels` downstream channels. The round robin of `Rebalance`
    /// starts at `start` so parallel producers do not all hit channel 0 first.
    pub fn new(
        partitioner: Partitioner<T>,
        channels: usize,
        max_parallelism: usize,
        start: usize,
    ) -> Self {
        let channel_of_group = match &partitioner {
            Partitioner::Hash(_) => (0..max_parallelism)
                .map(|group| subtask_of_key_group(group, max_parallelism, channels) as u32)
                .collect(),
            _ => Box::default(),
        };
        Self {
            partitioner,
            channels,
            max_parallelism,
            channel_of_group,
            group_mask: group_mask(max_parallelism),
            next: start % channels.max(1),
        }
    }

    /// The target of `record`.
    #[inline]
    pub fn select(&mut self, record: &T) -> Target {
        match &self.partitioner {
            Partitioner::Forward => Target::Channel(0),
            Partitioner::Rebalance => {
                let c = self.next;
                self.next = if c + 1 == self.channels { 0 } else { c + 1 };
                Target::Channel(c)
            }
            Partitioner::Hash(hasher) => {
                let hash = hasher.hash(record);
                let group = key_group_of(hash, self.max_parallelism);
                Target::Channel(self.channel_of_group[group] as usize)
            }
            Partitioner::Broadcast => Target::All,
        }
    }

    /// Appends the channel of each record of `records` to `out`, in order, as
    /// [`select`](Self::select) would pick them one by one; `false` (nothing appended)
    /// for a broadcast, whose records go to every channel.
    pub fn select_channels(&mut self, records: &[T], out: &mut Vec<u32>) -> bool {
        match &self.partitioner {
            Partitioner::Forward => out.resize(out.len() + records.len(), 0),
            Partitioner::Rebalance => {
                for _ in records {
                    let c = self.next;
                    self.next = if c + 1 == self.channels { 0 } else { c + 1 };
                    out.push(c as u32);
                }
            }
            Partitioner::Hash(hasher) => {
                let from = out.len();
                hasher.hash_batch(records, out);
                let hashes = &mut out[from..];
                match self.group_mask {
                    // `hash % m` is `hash & (m - 1)` for a power of two: no division per
                    // record (a 32-bit division costs ~10 cycles, a third of a keyed
                    // record's exchange).
                    Some(mask) => {
                        for slot in hashes {
                            *slot = self.channel_of_group[(*slot & mask) as usize];
                        }
                    }
                    None => {
                        for slot in hashes {
                            *slot =
                                self.channel_of_group[key_group_of(*slot, self.max_parallelism)];
                        }
                    }
                }
            }
            Partitioner::Broadcast => return false,
        }
        true
    }

    /// Whether every record goes to every channel.
    pub fn is_broadcast(&self) -> bool {
        matches!(self.partitioner, Partitioner::Broadcast)
    }

    /// The number of downstream channels.
    pub fn channels(&self) -> usize {
        self.channels
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key_group::subtask_of_key;

    #[test]
    fn hash_targets_are_the_key_group_placement() {
        for max_parallelism in [1, 7, 128, 32_768] {
            for channels in 1..=5.min(max_parallelism) {
                let hasher: KeyHasher<u64> = Arc::new(SelectorHash(|k: &u64| *k));
                let mut selector =
                    ChannelSelector::new(Partitioner::Hash(hasher), channels, max_parallelism, 0);
                for key in (0..2_000u64).chain([u64::MAX, 1 << 40]) {
                    assert_eq!(
                        selector.select(&key),
                        Target::Channel(subtask_of_key(&key, max_parallelism, channels)),
                        "key {key}, max parallelism {max_parallelism}, {channels} channels"
                    );
                }
            }
        }
    }

    #[test]
    fn a_batch_goes_where_its_records_go_one_by_one() {
        let records: Vec<u64> = (0..3_000).chain([u64::MAX, 1 << 40]).collect();
        let hash: KeyHasher<u64> = Arc::new(SelectorHash(|k: &u64| *k));
        for partitioner in [
            Partitioner::Forward,
            Partitioner::Rebalance,
            Partitioner::Hash(hash),
        ] {
            // A power of two (masked) and two that are not (divided).
            for (channels, max_parallelism) in (1..=4).flat_map(|c| [(c, 128), (c, 7), (c, 100)]) {
                let mut one =
                    ChannelSelector::new(partitioner.clone(), channels, max_parallelism, 1);
                let mut batch =
                    ChannelSelector::new(partitioner.clone(), channels, max_parallelism, 1);
                let expected: Vec<Target> = records.iter().map(|r| one.select(r)).collect();
                let mut picked = vec![7];
                assert!(batch.select_channels(&records[..1_000], &mut picked));
                assert!(batch.select_channels(&records[1_000..], &mut picked));
                let picked: Vec<Target> = picked[1..]
                    .iter()
                    .map(|&c| Target::Channel(c as usize))
                    .collect();
                assert_eq!(
                    picked,
                    expected,
                    "{:?}, {channels} channels, max parallelism {max_parallelism}",
                    partitioner.kind()
                );
            }
        }
        let mut broadcast = ChannelSelector::new(Partitioner::<u64>::Broadcast, 3, 128, 0);
        let mut picked = vec![];
        assert!(!broadcast.select_channels(&records, &mut picked));
        assert!(picked.is_empty());
    }
}
