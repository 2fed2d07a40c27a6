//! How records of an edge are spread over the downstream instances.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::key_group::{key_group_of, subtask_of_key_group};

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

/// A function giving the stable key hash of a record of type `T`.
pub type KeyHasher<T> = Arc<dyn Fn(&T) -> u32 + Send + Sync>;

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
    /// The channel of each key group (for `Hash`), so a record costs one division.
    channel_of_group: Box<[u32]>,
    next: usize,
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
                let hash = hasher(record);
                let group = key_group_of(hash, self.max_parallelism);
                Target::Channel(self.channel_of_group[group] as usize)
            }
            Partitioner::Broadcast => Target::All,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key_group::{stable_key_hash, subtask_of_key};

    #[test]
    fn hash_targets_are_the_key_group_placement() {
        for max_parallelism in [1, 7, 128, 32_768] {
            for channels in 1..=5.min(max_parallelism) {
                let hasher: KeyHasher<u64> = Arc::new(|k: &u64| stable_key_hash(k));
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
}
