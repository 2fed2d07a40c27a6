//! [`Timestamped`]: a record with its own event timestamp, the element type a
//! stream with timestamps has inside a job (the API keeps showing `T`).
//!
//! Which streams carry it is decided when the graph is built: after
//! `assign_timestamps_and_watermarks` (or a source with timestamps) every operator
//! is wrapped in [`Stamped`](crate::operators::Stamped), which hands it the bare
//! record and stamps what it emits with the record's timestamp (Flink's
//! `TimestampedCollector`). A stream without timestamps runs the operators
//! unwrapped, on bare records: it pays nothing.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::partitioner::{KeyHash, Partitioner};

/// A record and its event timestamp (ms; [`NO_TIMESTAMP`] for a record without
/// one). Encoded as the timestamp (8 bytes) then the record, so an edge with
/// timestamps costs 8 bytes per record more on the wire and in channel state.
///
/// [`NO_TIMESTAMP`]: crate::watermark::NO_TIMESTAMP
///
/// ```
/// use flink_core::codec::{decode, encode_into};
/// use flink_core::timestamped::Timestamped;
///
/// let r = Timestamped { timestamp: 1_000, value: "bid".to_string() };
/// let mut bytes = Vec::new();
/// encode_into(&r, &mut bytes);
/// assert_eq!(&bytes[..8], &1_000i64.to_le_bytes());
/// assert_eq!(decode::<Timestamped<String>>(&bytes).unwrap(), r);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timestamped<T> {
    /// Event time in ms.
    pub timestamp: i64,
    /// The record.
    pub value: T,
}

// As the pair `(timestamp, value)`: the same bytes a derived struct would have
// in bincode, but decoded through serde's tuple path, which inlines into the
// decoder's loop (a derived struct's visitor measured 5x the instructions).
impl<T: Serialize> Serialize for Timestamped<T> {
    #[inline]
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (self.timestamp, &self.value).serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Timestamped<T> {
    #[inline]
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (timestamp, value) = <(i64, T)>::deserialize(deserializer)?;
        Ok(Self { timestamp, value })
    }
}

/// Whether the records of a stream carry timestamps, decided when the graph is
/// built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timestamps {
    /// Bare records.
    None,
    /// [`Timestamped`] records; some (from a union or connection with a stream
    /// without timestamps) have [`NO_TIMESTAMP`](crate::watermark::NO_TIMESTAMP).
    Some,
    /// [`Timestamped`] records, each with a real timestamp.
    Every,
}

impl Timestamps {
    /// Whether the stream's elements are [`Timestamped`].
    pub(crate) fn carried(self) -> bool {
        self != Timestamps::None
    }

    /// What a union or connection of streams with `self` and `other` carries.
    pub(crate) fn join(self, other: Timestamps) -> Timestamps {
        match (self, other) {
            (Timestamps::None, Timestamps::None) => Timestamps::None,
            (Timestamps::Every, Timestamps::Every) => Timestamps::Every,
            _ => Timestamps::Some,
        }
    }
}

/// The key hash of a timestamped record: its value's.
struct ValueHash<T>(Arc<dyn KeyHash<T>>);

impl<T> KeyHash<Timestamped<T>> for ValueHash<T> {
    #[inline]
    fn hash(&self, record: &Timestamped<T>) -> u32 {
        self.0.hash(&record.value)
    }
}

/// `partitioner` for the timestamped form of its records.
pub(crate) fn lift_partitioner<T: 'static>(
    partitioner: Partitioner<T>,
) -> Partitioner<Timestamped<T>> {
    match partitioner {
        Partitioner::Forward => Partitioner::Forward,
        Partitioner::Rebalance => Partitioner::Rebalance,
        Partitioner::Broadcast => Partitioner::Broadcast,
        Partitioner::Hash(hash) => Partitioner::Hash(Arc::new(ValueHash(hash))),
    }
}
