//! Key groups: how a key finds its parallel instance, stably across processes and
//! releases.
//!
//! A key is serialized with bincode 2's standard configuration (a documented, stable
//! wire format), hashed with MurmurHash3 x86_32 (seed 0) over those bytes, and mapped to
//! a key group `hash % max_parallelism`; a key group maps to subtask
//! `key_group * parallelism / max_parallelism`, exactly as in Flink. Neither Rust's
//! `Hash` nor `DefaultHasher` is used: both may change between releases.

use serde::Serialize;

use crate::key_hash::Murmur3;
pub use crate::key_hash::{reference_key_hash, stable_key_hash};

/// MurmurHash3 x86_32 of `data` with `seed`.
pub fn murmur3_32(data: &[u8], seed: u32) -> u32 {
    let mut murmur = Murmur3::new(seed);
    murmur.write(data);
    murmur.finish()
}

/// The key group of a key hash.
#[inline]
pub fn key_group_of(hash: u32, max_parallelism: usize) -> usize {
    // In 32 bits (the hash's width) the division is the cheaper one; a larger
    // `max_parallelism` keeps every hash as it is, as `hash % max_parallelism` would.
    match u32::try_from(max_parallelism) {
        Ok(m) => (hash % m) as usize,
        Err(_) => hash as usize,
    }
}

/// The parallel instance that owns `key_group`.
pub fn subtask_of_key_group(key_group: usize, max_parallelism: usize, parallelism: usize) -> usize {
    key_group * parallelism / max_parallelism
}

/// The parallel instance a key goes to.
pub fn subtask_of_key<K: Serialize + ?Sized>(
    key: &K,
    max_parallelism: usize,
    parallelism: usize,
) -> usize {
    let hash = stable_key_hash(key);
    subtask_of_key_group(
        key_group_of(hash, max_parallelism),
        max_parallelism,
        parallelism,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur3_matches_published_vectors() {
        assert_eq!(murmur3_32(b"", 0), 0);
        assert_eq!(murmur3_32(b"", 1), 0x514e_28b7);
        assert_eq!(murmur3_32(b"hello", 0), 0x248b_fa47);
        assert_eq!(
            murmur3_32(b"The quick brown fox jumps over the lazy dog", 0),
            0x2e4f_f723
        );
    }

    #[test]
    fn key_placement_is_fixed_across_runs_and_releases() {
        // These values are part of the wire contract: changing them moves keyed state.
        let placed: Vec<usize> = ["a", "b", "flink", "rust"]
            .iter()
            .map(|k| subtask_of_key(k, 128, 4))
            .collect();
        assert_eq!(placed, FIXED_STR_PLACEMENT);
        let placed: Vec<usize> = (0u64..6).map(|k| subtask_of_key(&k, 128, 4)).collect();
        assert_eq!(placed, FIXED_U64_PLACEMENT);
    }

    #[test]
    fn the_reference_hash_gives_the_same_fixed_placement() {
        let place = |hash: u32| subtask_of_key_group(key_group_of(hash, 128), 128, 4);
        let placed: Vec<usize> = ["a", "b", "flink", "rust"]
            .iter()
            .map(|k| place(reference_key_hash(k, &mut Vec::new())))
            .collect();
        assert_eq!(placed, FIXED_STR_PLACEMENT);
        let placed: Vec<usize> = (0u64..6)
            .map(|k| place(reference_key_hash(&k, &mut Vec::new())))
            .collect();
        assert_eq!(placed, FIXED_U64_PLACEMENT);
    }

    const FIXED_STR_PLACEMENT: [usize; 4] = [3, 2, 3, 3];
    const FIXED_U64_PLACEMENT: [usize; 6] = [1, 1, 0, 3, 1, 2];

    #[test]
    fn every_key_group_maps_into_range() {
        for kg in 0..128 {
            assert!(subtask_of_key_group(kg, 128, 3) < 3);
        }
    }
}
