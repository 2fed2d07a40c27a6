//! A Kafka reader's checkpointed position: where it is in each partition, and how
//! such positions of several readers merge on a restore.

use std::collections::HashMap;

use flink_core::checkpoint::{StateError, decode_state, encode_state};
use serde::{Deserialize, Serialize};

/// Where a reader is in one of its partitions: its checkpointed position is a list
/// of these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct PartitionPosition {
    pub(super) topic: String,
    pub(super) partition: i32,
    /// The offset of the next record to emit.
    pub(super) next_offset: i64,
    /// Where a bounded partition stops (the end offset seen when the job started).
    pub(super) stop: Option<i64>,
    /// Offsets at or after `next_offset` whose messages already went out as dead
    /// letters, ascending: a position taken after part of a batch (a rate-limited
    /// reader's) stops before the batch's first record not emitted, while the
    /// batch's dead letters behind it were emitted when the batch was read. Read
    /// again, these messages emit nothing.
    pub(super) dead_letters_out: Vec<i64>,
}

/// The encoding before `dead_letters_out`.
#[derive(Deserialize)]
struct LegacyPartitionPosition {
    topic: String,
    partition: i32,
    next_offset: i64,
    stop: Option<i64>,
}

/// The first byte of the current encoding: bincode starts no integer with it
/// (255 is a reserved varint discriminant), so no legacy list (whose length comes
/// first) decodes as the current encoding, nor the other way round.
const CURRENT: u8 = 255;

/// The bytes of a reader's position.
///
/// # Errors
/// When it cannot be serialized.
pub(super) fn encode_positions(positions: &[PartitionPosition]) -> Result<Vec<u8>, StateError> {
    encode_state(&(CURRENT, positions))
}

/// A reader's position, of either encoding.
///
/// # Errors
/// When the bytes are neither.
pub(super) fn decode_positions(bytes: &[u8]) -> Result<Vec<PartitionPosition>, StateError> {
    if let Ok((CURRENT, positions)) = decode_state::<(u8, Vec<PartitionPosition>)>(bytes) {
        return Ok(positions);
    }
    let legacy: Vec<LegacyPartitionPosition> = decode_state(bytes)?;
    Ok(legacy
        .into_iter()
        .map(|p| PartitionPosition {
            topic: p.topic,
            partition: p.partition,
            next_offset: p.next_offset,
            stop: p.stop,
            dead_letters_out: Vec::new(),
        })
        .collect())
}

/// The positions of several instances by partition. A partition found in more than
/// one (an instance snapshotted before it started repeats the position it was
/// restored with, which another instance may have passed since) takes the furthest
/// offset: a partition's position only moves forward. Its dead letters out are
/// those of every copy still ahead of that offset (all copies come from one
/// checkpoint, so each such dead letter did go out).
pub(super) fn merge_positions(
    lists: impl IntoIterator<Item = Vec<PartitionPosition>>,
) -> HashMap<(String, i32), PartitionPosition> {
    let mut merged: HashMap<(String, i32), PartitionPosition> = HashMap::new();
    for p in lists.into_iter().flatten() {
        match merged.entry((p.topic.clone(), p.partition)) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                let mut dead = std::mem::take(&mut e.get_mut().dead_letters_out);
                dead.extend_from_slice(&p.dead_letters_out);
                if p.next_offset > e.get().next_offset {
                    e.insert(p);
                }
                let kept = e.get_mut();
                dead.retain(|&d| d >= kept.next_offset);
                dead.sort_unstable();
                dead.dedup();
                kept.dead_letters_out = dead;
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(p);
            }
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(partition: i32, next_offset: i64, dead: &[i64]) -> PartitionPosition {
        PartitionPosition {
            topic: "t".into(),
            partition,
            next_offset,
            stop: Some(100),
            dead_letters_out: dead.to_vec(),
        }
    }

    #[test]
    fn merged_positions_keep_each_partition_at_its_furthest_offset() {
        // Instance 0 had partitions 0 and 2; instance 1 snapshotted before it started
        // and repeats partition 2 at the offset both were restored with.
        let merged = merge_positions([
            vec![pos(0, 7, &[]), pos(2, 40, &[])],
            vec![pos(2, 31, &[]), pos(1, 5, &[])],
        ]);
        let mut got: Vec<_> = merged
            .values()
            .map(|p| (p.partition, p.next_offset))
            .collect();
        got.sort_unstable();
        assert_eq!(got, [(0, 7), (1, 5), (2, 40)]);
    }

    #[test]
    fn merged_positions_keep_the_dead_letters_out_ahead_of_the_offset() {
        // The stale copy (restored with dead letters 33 and 45 out) and the owner,
        // which read a batch from 31 and was saved at 40 with 42 out since.
        let merged = merge_positions([
            vec![pos(2, 31, &[33, 45])],
            vec![pos(2, 40, &[42, 45])],
            vec![pos(2, 31, &[33, 45])],
        ]);
        assert_eq!(merged[&("t".to_string(), 2)], pos(2, 40, &[42, 45]));
        // Copies at the same offset: the union.
        let merged = merge_positions([vec![pos(1, 5, &[9])], vec![pos(1, 5, &[6, 9])]]);
        assert_eq!(merged[&("t".to_string(), 1)], pos(1, 5, &[6, 9]));
    }

    #[test]
    fn positions_of_either_encoding_decode() {
        let legacy = encode_state(&vec![(String::from("t"), 3i32, 7i64, Some(9i64))]).unwrap();
        let expected = PartitionPosition {
            partition: 3,
            stop: Some(9),
            ..pos(0, 7, &[])
        };
        assert_eq!(decode_positions(&legacy).unwrap(), [expected]);
        let current = vec![pos(0, 7, &[8, 11]), pos(1, 2, &[])];
        assert_eq!(
            decode_positions(&encode_positions(&current).unwrap()).unwrap(),
            current
        );
        assert!(decode_positions(b"junk").is_err());
        assert!(decode_positions(&legacy[..legacy.len() - 2]).is_err());
    }
}
