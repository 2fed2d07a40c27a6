//! Where a serialized record of an exchange goes among the consumer subtasks of a
//! given parallelism: the pure routing a restore needs to re-partition the records
//! an unaligned checkpoint stored in flight when the job comes back at another
//! parallelism (Flink's rescaling of channel state). The runtime hands each stored
//! record's bytes (one frame's body, as [`codec`](crate::codec) wrote it) to the
//! edge's router and queues the record at the subtask it names.
//!
//! The rules follow what the edge's [`Partitioner`] does to a live record, so a
//! replayed record lands where a record sent now would:
//!
//! - **hash**: the subtask owning the record's key group at the new parallelism
//!   ([`subtask_of_key_group`]), the same ranges keyed state is restored by, so the
//!   record meets its key's state;
//! - **rebalance** and **forward**: round robin over the new subtasks, from subtask
//!   0, one record at a time (deterministic; each record goes to exactly one);
//! - **broadcast**: every subtask ([`Target::All`]).

use std::any::Any;
use std::marker::PhantomData;

use thiserror::Error;

use crate::codec::decode_off_hot_path;
use crate::key_group::{key_group_of, subtask_of_key_group};
use crate::partitioner::{Partitioner, Target};
use crate::stream_type::Record;

/// Why a stored record cannot be routed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RouteError {
    /// The record's bytes do not decode as the edge's record type (the key of a
    /// hash exchange is read from the decoded record).
    #[error("a record in flight does not decode as {type_name}: {reason}")]
    Undecodable {
        /// The edge's record type.
        type_name: &'static str,
        /// The decoder's error.
        reason: String,
    },
    /// The edge's partitioner is not one of its record type (a graph built wrong).
    #[error("the exchange's partitioner is not one of its record type {type_name}")]
    WrongPartitioner {
        /// The edge's record type.
        type_name: &'static str,
    },
    /// Routing to no subtask at all.
    #[error("an exchange into 0 subtasks")]
    NoSubtasks,
}

/// Routes the serialized records of one exchange to the consumer subtasks of one
/// parallelism. Stateful only for round robin: route the records of an exchange
/// through one router, in a fixed order, for a deterministic spread.
pub trait RecordRouter: Send {
    /// The subtask (or, for a broadcast, every subtask) that `record` (the bytes of
    /// one record, without its frame's length prefix) goes to.
    ///
    /// # Errors
    /// [`RouteError::Undecodable`] when a hash exchange's record does not decode.
    fn route(&mut self, record: &[u8]) -> Result<Target, RouteError>;
}

/// The router of `partitioner` over `subtasks` consumer subtasks and
/// `max_parallelism` key groups.
///
/// # Errors
/// [`RouteError::NoSubtasks`] for 0 subtasks.
pub fn router_for<T: Record>(
    partitioner: &Partitioner<T>,
    subtasks: usize,
    max_parallelism: usize,
) -> Result<Box<dyn RecordRouter>, RouteError> {
    if subtasks == 0 || max_parallelism == 0 {
        return Err(RouteError::NoSubtasks);
    }
    Ok(match partitioner {
        Partitioner::Hash(hasher) => Box::new(HashRouter::<T> {
            hasher: hasher.clone(),
            subtask_of_group: (0..max_parallelism)
                .map(|g| subtask_of_key_group(g, max_parallelism, subtasks))
                .collect(),
            max_parallelism,
            _type: PhantomData,
        }),
        Partitioner::Forward | Partitioner::Rebalance => Box::new(RoundRobin { subtasks, next: 0 }),
        Partitioner::Broadcast => Box::new(Everywhere),
    })
}

/// [`router_for`] with the partitioner erased, as a graph edge keeps it
/// ([`EdgePartitioner::typed`](crate::node::EdgePartitioner::typed)).
///
/// # Errors
/// [`RouteError::WrongPartitioner`] when `partitioner` is not a `Partitioner<T>`;
/// else as [`router_for`].
pub fn erased_router_for<T: Record>(
    partitioner: &(dyn Any + Send + Sync),
    subtasks: usize,
    max_parallelism: usize,
) -> Result<Box<dyn RecordRouter>, RouteError> {
    let typed =
        partitioner
            .downcast_ref::<Partitioner<T>>()
            .ok_or(RouteError::WrongPartitioner {
                type_name: std::any::type_name::<T>(),
            })?;
    router_for(typed, subtasks, max_parallelism)
}

/// A hash exchange: decodes the record, hashes its key, takes its key group's
/// subtask.
struct HashRouter<T> {
    hasher: crate::partitioner::KeyHasher<T>,
    subtask_of_group: Box<[usize]>,
    max_parallelism: usize,
    _type: PhantomData<fn() -> T>,
}

impl<T: Record> RecordRouter for HashRouter<T> {
    fn route(&mut self, record: &[u8]) -> Result<Target, RouteError> {
        let value = decode_off_hot_path::<T>(record).map_err(|e| RouteError::Undecodable {
            type_name: std::any::type_name::<T>(),
            reason: e.to_string(),
        })?;
        let group = key_group_of(self.hasher.hash(&value), self.max_parallelism);
        Ok(Target::Channel(self.subtask_of_group[group]))
    }
}

/// Rebalance and forward: no key, so any spread is right; round robin keeps it
/// even and deterministic.
struct RoundRobin {
    subtasks: usize,
    next: usize,
}

impl RecordRouter for RoundRobin {
    fn route(&mut self, _: &[u8]) -> Result<Target, RouteError> {
        let to = self.next;
        self.next = (self.next + 1) % self.subtasks;
        Ok(Target::Channel(to))
    }
}

/// A broadcast: every subtask.
struct Everywhere;

impl RecordRouter for Everywhere {
    fn route(&mut self, _: &[u8]) -> Result<Target, RouteError> {
        Ok(Target::All)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::codec::encode_into;
    use crate::key_group::subtask_of_key;
    use crate::partitioner::{KeyHasher, SelectorHash};
    use crate::timestamped::Timestamped;

    fn bytes<T: serde::Serialize>(value: &T) -> Vec<u8> {
        let mut out = Vec::new();
        encode_into(value, &mut out);
        out
    }

    fn by_key() -> Partitioner<(u64, String)> {
        let hasher: KeyHasher<(u64, String)> = Arc::new(SelectorHash(|r: &(u64, String)| r.0));
        Partitioner::Hash(hasher)
    }

    #[test]
    fn a_keyed_record_goes_to_the_subtask_owning_its_key_group() {
        for max_parallelism in [7, 128, 32_768] {
            for subtasks in 1..=5 {
                let mut router = router_for(&by_key(), subtasks, max_parallelism).unwrap();
                for key in (0..1_000u64).chain([u64::MAX]) {
                    let record = bytes(&(key, format!("v{key}")));
                    assert_eq!(
                        router.route(&record).unwrap(),
                        Target::Channel(subtask_of_key(&key, max_parallelism, subtasks)),
                        "key {key}, {subtasks} subtasks, max parallelism {max_parallelism}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_keyed_record_goes_where_a_live_record_of_the_edge_goes() {
        use crate::partitioner::ChannelSelector;
        for subtasks in 1..=4 {
            let mut live = ChannelSelector::new(by_key(), subtasks, 128, 0);
            let mut router = router_for(&by_key(), subtasks, 128).unwrap();
            for key in 0..500u64 {
                let record = (key * 7919, "x".to_string());
                assert_eq!(router.route(&bytes(&record)).unwrap(), live.select(&record));
            }
        }
    }

    #[test]
    fn timestamped_records_route_by_the_key_of_their_value() {
        let hasher: KeyHasher<Timestamped<u64>> =
            Arc::new(SelectorHash(|r: &Timestamped<u64>| r.value));
        let mut router = router_for(&Partitioner::Hash(hasher), 3, 128).unwrap();
        for key in 0..300u64 {
            let record = Timestamped {
                timestamp: 1_000 + key as i64,
                value: key,
            };
            assert_eq!(
                router.route(&bytes(&record)).unwrap(),
                Target::Channel(subtask_of_key(&key, 128, 3))
            );
        }
    }

    #[test]
    fn rebalance_and_forward_spread_every_record_once_round_robin() {
        for partitioner in [Partitioner::<u64>::Rebalance, Partitioner::Forward] {
            let mut router = router_for(&partitioner, 3, 128).unwrap();
            let routed: Vec<Target> = (0..7u64)
                .map(|x| router.route(&bytes(&x)).unwrap())
                .collect();
            let expected: Vec<Target> = [0, 1, 2, 0, 1, 2, 0].map(Target::Channel).to_vec();
            assert_eq!(routed, expected);
        }
    }

    #[test]
    fn broadcast_goes_everywhere() {
        let mut router = router_for(&Partitioner::<u64>::Broadcast, 4, 128).unwrap();
        assert_eq!(router.route(&bytes(&1u64)).unwrap(), Target::All);
    }

    #[test]
    fn what_cannot_be_routed_is_a_typed_error() {
        let mut router = router_for(&by_key(), 2, 128).unwrap();
        assert!(matches!(
            router.route(&[1, 2, 3]),
            Err(RouteError::Undecodable { .. })
        ));
        assert_eq!(
            router_for(&by_key(), 0, 128).err(),
            Some(RouteError::NoSubtasks)
        );
        let other: Partitioner<u32> = Partitioner::Rebalance;
        let err = erased_router_for::<u64>(&other, 2, 128).err().unwrap();
        assert!(matches!(err, RouteError::WrongPartitioner { .. }), "{err}");
        assert!(erased_router_for::<u32>(&other, 2, 128).is_ok());
    }
}
