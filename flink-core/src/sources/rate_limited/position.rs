//! A rate-limited reader's checkpointed position.

use crate::checkpoint::{StateError, decode_state, encode_state};

/// A rate-limited reader's position: the inner reader's, with what of the batches it
/// holds already went out.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct RatePosition {
    /// The inner reader's position: before its held batch if `skip > 0`; after the
    /// records of it that went out, with `skip` 0, if the inner reader could say
    /// where that is (`SourceReader::snapshot_position_after`).
    pub(super) inner: Option<Vec<u8>>,
    /// Records of that held batch already emitted.
    pub(super) skip: usize,
    /// Batches re-read at a rescaled restore and not all emitted yet: each as the
    /// inner position that reads it first and how many of its records went out.
    /// Only the batch is read from such a position: what follows it is in `inner`.
    pub(super) reread: Vec<(Vec<u8>, usize)>,
}

/// The encoding before rescaled restores: no re-read batches.
#[derive(serde::Serialize, serde::Deserialize)]
struct LegacyRatePosition {
    inner: Option<Vec<u8>>,
    skip: usize,
}

impl RatePosition {
    /// The bytes of this position.
    ///
    /// # Errors
    /// When it cannot be serialized.
    pub(super) fn encode(&self) -> Result<Vec<u8>, StateError> {
        encode_state(self)
    }

    /// Decodes a position of either encoding (a legacy one has no re-read batches;
    /// decoding checks that every byte is used, so neither is taken for the other).
    ///
    /// # Errors
    /// When the bytes are neither.
    pub(super) fn decode(bytes: &[u8]) -> Result<Self, StateError> {
        decode_state::<Self>(bytes).or_else(|e| match decode_state(bytes) {
            Ok(LegacyRatePosition { inner, skip }) => Ok(Self {
                inner,
                skip,
                reread: Vec::new(),
            }),
            Err(_) => Err(e),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_legacy_position_decodes_without_reread_batches() {
        let legacy = encode_state(&LegacyRatePosition {
            inner: Some(vec![1, 2]),
            skip: 3,
        })
        .unwrap();
        let expected = RatePosition {
            inner: Some(vec![1, 2]),
            skip: 3,
            reread: Vec::new(),
        };
        assert_eq!(RatePosition::decode(&legacy).unwrap(), expected);
        let current = RatePosition {
            reread: vec![(vec![4], 5)],
            ..expected
        };
        assert_eq!(
            RatePosition::decode(&current.encode().unwrap()).unwrap(),
            current
        );
        assert!(RatePosition::decode(b"junk").is_err());
    }
}
