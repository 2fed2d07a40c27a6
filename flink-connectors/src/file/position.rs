//! A file source reader's checkpointed position: the splits it has left, each named
//! by its index and the parallelism it was cut for, so that positions can be dealt
//! to the readers of a run at another parallelism.

use flink_core::checkpoint::{StateError, decode_state, encode_state};

/// Starts every position in the split-list encoding whose splits have no dead
/// letters out ahead ([`SplitV2`]; still written when no split has, so that a
/// reader of that encoding reads it). The single-split encoding written before it
/// (three varints, [`LegacyPosition`]) never starts with these four bytes: its
/// three varints starting `F`, `S`, `p` end after three bytes.
const MARKER: [u8; 4] = *b"FSp2";

/// Starts every position in the split-list encoding with dead letters out ahead
/// ([`SplitPosition::dead_letters_out_before`]).
const MARKER_V3: [u8; 4] = *b"FSp3";

/// A place in a split: a line's byte offset in one of its files.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub(crate) struct SplitOffset {
    /// The file, counted from the split's first (its files done before it).
    pub(crate) file: u64,
    /// The byte offset in that file.
    pub(crate) offset: u64,
}

/// What is left of one split: the files `index, index + of, index + 2 * of, ..` of
/// the sorted listing (the share of subtask `index` of a run at parallelism `of`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct SplitPosition {
    /// The split's first file in the listing.
    pub(crate) index: u64,
    /// The parallelism the split was cut for: the step between its files.
    pub(crate) of: u64,
    /// Files of the split read to their end.
    pub(crate) files_done: u64,
    /// Byte offset of the next line in the split's next file.
    pub(crate) offset: u64,
    /// Lines of that file read before `offset`.
    pub(crate) lines: u64,
    /// The name of the split's next file, checked on restore; `None` when unknown
    /// (taken before the files were listed, or decoded from the legacy encoding).
    pub(crate) next_file: Option<String>,
    /// The lines of the split from its position up to here went out as far as
    /// they were dead letters: a position taken after part of a batch (a
    /// rate-limited reader's) stops at the batch's first record that did not go
    /// out, while the batch's dead letters behind that record were emitted when the
    /// batch was read. Read again, such lines emit no dead letter.
    pub(crate) dead_letters_out_before: Option<SplitOffset>,
}

/// A split as encoded with [`MARKER`]: no dead letters out ahead.
#[derive(serde::Serialize, serde::Deserialize)]
struct SplitV2 {
    index: u64,
    of: u64,
    files_done: u64,
    offset: u64,
    lines: u64,
    next_file: Option<String>,
}

impl SplitPosition {
    /// The whole of split `index` of `of`, nothing read.
    pub(crate) fn fresh(index: usize, of: usize) -> Self {
        Self {
            index: index as u64,
            of: of as u64,
            files_done: 0,
            offset: 0,
            lines: 0,
            next_file: None,
            dead_letters_out_before: None,
        }
    }

    /// Where the split's next line is.
    pub(crate) fn at(&self) -> SplitOffset {
        SplitOffset {
            file: self.files_done,
            offset: self.offset,
        }
    }

    /// Whether the line at byte `offset` of the split's next file went out already
    /// as a dead letter, if it is one.
    pub(crate) fn dead_letter_out(&self, offset: u64) -> bool {
        let line = SplitOffset {
            file: self.files_done,
            offset,
        };
        self.dead_letters_out_before.is_some_and(|end| line < end)
    }

    /// The listing index of the split's next file (may be past the listing's end).
    pub(crate) fn next_index(&self) -> u64 {
        self.index + self.files_done * self.of
    }

    /// How many files of a listing of `files` the split has.
    pub(crate) fn file_count(&self, files: u64) -> u64 {
        files.saturating_sub(self.index).div_ceil(self.of)
    }
}

/// A reader's position: its splits left, the one being read first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ReaderPosition {
    /// How many files the listing had when the position was taken (`None`: not
    /// listed yet); a restore over another count is refused.
    pub(crate) files: Option<u64>,
    pub(crate) splits: Vec<SplitPosition>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Encoded {
    marker: [u8; 4],
    files: Option<u64>,
    splits: Vec<SplitPosition>,
}

/// The split-list encoding without dead letters out ahead.
#[derive(serde::Serialize, serde::Deserialize)]
struct EncodedV2 {
    marker: [u8; 4],
    files: Option<u64>,
    splits: Vec<SplitV2>,
}

/// The encoding before rescaling: one split, that of the reader's own subtask at the
/// parallelism it was saved with.
#[derive(serde::Serialize, serde::Deserialize)]
struct LegacyPosition {
    files_done: u64,
    offset: u64,
    lines: u64,
}

impl ReaderPosition {
    /// The bytes of this position.
    ///
    /// # Errors
    /// When it cannot be serialized.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, StateError> {
        if self
            .splits
            .iter()
            .any(|s| s.dead_letters_out_before.is_some())
        {
            return encode_state(&Encoded {
                marker: MARKER_V3,
                files: self.files,
                splits: self.splits.clone(),
            });
        }
        let splits = self.splits.iter().map(SplitV2::from).collect();
        encode_state(&EncodedV2 {
            marker: MARKER,
            files: self.files,
            splits,
        })
    }

    /// Decodes a position saved by the reader of subtask `subtask` of `parallelism`
    /// (the legacy encoding holds that reader's own split).
    ///
    /// # Errors
    /// When the bytes are neither encoding.
    pub(crate) fn decode(
        bytes: &[u8],
        subtask: usize,
        parallelism: usize,
    ) -> Result<Self, StateError> {
        match Self::decode_split_list(bytes) {
            Some(position) => Ok(position),
            None => {
                let legacy: LegacyPosition = decode_state(bytes).map_err(not_a_position)?;
                let split = SplitPosition {
                    files_done: legacy.files_done,
                    offset: legacy.offset,
                    lines: legacy.lines,
                    ..SplitPosition::fresh(subtask, parallelism)
                };
                Ok(Self {
                    files: None,
                    splits: vec![split],
                })
            }
        }
    }

    /// Decodes a position saved at another parallelism: only the split-list encoding
    /// says which split it is of.
    ///
    /// # Errors
    /// When the bytes are not a split list.
    pub(crate) fn decode_rescaled(bytes: &[u8]) -> Result<Self, StateError> {
        if let Some(position) = Self::decode_split_list(bytes) {
            return Ok(position);
        }
        match decode_state::<LegacyPosition>(bytes) {
            Ok(_) => Err(StateError::Corrupt(
                "this file source position was saved before file source positions could \
                 be rescaled: restore it at the parallelism it was saved with, then take a \
                 new savepoint"
                    .into(),
            )),
            Err(e) => Err(not_a_position(e)),
        }
    }

    /// The positions of several readers as one: their splits in turn. They must have
    /// been taken over the same listing, and no split may appear twice.
    ///
    /// # Errors
    /// Positions over listings of different sizes, or sharing a split.
    pub(crate) fn merge(positions: Vec<Self>) -> Result<Self, StateError> {
        let mut merged = Self::default();
        for position in positions {
            if let (Some(a), Some(b)) = (merged.files, position.files)
                && a != b
            {
                return Err(StateError::Corrupt(format!(
                    "file source positions taken over listings of {a} and {b} files"
                )));
            }
            merged.files = merged.files.or(position.files);
            for split in position.splits {
                if merged
                    .splits
                    .iter()
                    .any(|s| (s.index, s.of) == (split.index, split.of))
                {
                    return Err(StateError::Corrupt(format!(
                        "file split {} of {} is in two positions",
                        split.index, split.of
                    )));
                }
                merged.splits.push(split);
            }
        }
        Ok(merged)
    }

    /// The split-list encoding (with dead letters out ahead or not), if `bytes` are
    /// one whose splits are well formed.
    fn decode_split_list(bytes: &[u8]) -> Option<Self> {
        let (files, splits) = match decode_state::<Encoded>(bytes) {
            Ok(e) if e.marker == MARKER_V3 => (e.files, e.splits),
            _ => {
                let e: EncodedV2 = decode_state(bytes).ok()?;
                if e.marker != MARKER {
                    return None;
                }
                (
                    e.files,
                    e.splits.into_iter().map(SplitPosition::from).collect(),
                )
            }
        };
        let valid = splits.iter().all(|s| s.of > 0 && s.index < s.of);
        valid.then_some(Self { files, splits })
    }
}

impl From<&SplitPosition> for SplitV2 {
    fn from(s: &SplitPosition) -> Self {
        Self {
            index: s.index,
            of: s.of,
            files_done: s.files_done,
            offset: s.offset,
            lines: s.lines,
            next_file: s.next_file.clone(),
        }
    }
}

impl From<SplitV2> for SplitPosition {
    fn from(s: SplitV2) -> Self {
        Self {
            index: s.index,
            of: s.of,
            files_done: s.files_done,
            offset: s.offset,
            lines: s.lines,
            next_file: s.next_file,
            dead_letters_out_before: None,
        }
    }
}

fn not_a_position(e: StateError) -> StateError {
    StateError::Corrupt(format!("not a file source position: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(index: u64, of: u64, files_done: u64) -> SplitPosition {
        SplitPosition {
            files_done,
            offset: 7,
            lines: 1,
            next_file: Some("b.txt".into()),
            ..SplitPosition::fresh(index as usize, of as usize)
        }
    }

    #[test]
    fn a_split_list_round_trips() {
        let position = ReaderPosition {
            files: Some(5),
            splits: vec![split(0, 2, 1), split(1, 2, 0)],
        };
        let bytes = position.encode().unwrap();
        assert_eq!(ReaderPosition::decode(&bytes, 3, 4).unwrap(), position);
        assert_eq!(ReaderPosition::decode_rescaled(&bytes).unwrap(), position);
    }

    #[test]
    fn dead_letters_out_ahead_take_the_newer_encoding_only_when_there_are_some() {
        let plain = ReaderPosition {
            files: Some(5),
            splits: vec![split(0, 2, 1)],
        };
        let bytes = plain.encode().unwrap();
        // Without dead letters out ahead, the encoding before them: the bytes of
        // the struct without the field.
        let v2 = EncodedV2 {
            marker: MARKER,
            files: Some(5),
            splits: vec![SplitV2::from(&split(0, 2, 1))],
        };
        assert_eq!(bytes, encode_state(&v2).unwrap());
        assert_eq!(ReaderPosition::decode_rescaled(&bytes).unwrap(), plain);
        let mut ahead = split(1, 2, 0);
        ahead.dead_letters_out_before = Some(SplitOffset { file: 1, offset: 3 });
        let position = ReaderPosition {
            files: Some(5),
            splits: vec![split(0, 2, 1), ahead],
        };
        let bytes = position.encode().unwrap();
        assert_eq!(bytes[8..12], MARKER_V3);
        assert_eq!(ReaderPosition::decode(&bytes, 0, 1).unwrap(), position);
        assert_eq!(ReaderPosition::decode_rescaled(&bytes).unwrap(), position);
    }

    #[test]
    fn a_line_before_the_end_of_the_dead_letters_out_is_out() {
        let mut s = split(0, 1, 2);
        assert!(!s.dead_letter_out(0));
        s.dead_letters_out_before = Some(SplitOffset {
            file: 2,
            offset: 100,
        });
        assert!(s.dead_letter_out(99));
        assert!(!s.dead_letter_out(100));
        s.files_done = 1;
        assert!(s.dead_letter_out(5_000));
        s.files_done = 3;
        assert!(!s.dead_letter_out(0));
    }

    /// Bytes a file source wrote before positions named their split,
    /// `encode_state(&FilePosition { files_done: 2, offset: 300, lines: 17 })` at
    /// state format 3, and one byte too many.
    const LEGACY: [u8; 14] = [
        0x46, 0x52, 0x53, 0x31, 0x03, 0x00, 0x00, 0x00, 0x02, 0xfb, 0x2c, 0x01, 0x11, 0x00,
    ];

    #[test]
    fn a_legacy_position_is_the_readers_own_split_and_cannot_be_rescaled() {
        let today = LegacyPosition {
            files_done: 2,
            offset: 300,
            lines: 17,
        };
        // The body as the legacy struct encodes it (the header's version may grow).
        assert_eq!(encode_state(&today).unwrap()[8..], LEGACY[8..13]);
        let position = ReaderPosition::decode(&LEGACY[..13], 1, 2).unwrap();
        assert_eq!(position.files, None);
        assert_eq!(
            position.splits,
            [SplitPosition {
                files_done: 2,
                offset: 300,
                lines: 17,
                ..SplitPosition::fresh(1, 2)
            }]
        );
        let err = ReaderPosition::decode_rescaled(&LEGACY[..13]).unwrap_err();
        assert!(
            err.to_string().contains("restore it at the parallelism"),
            "{err}"
        );
    }

    #[test]
    fn corrupt_bytes_are_a_clear_error() {
        for bytes in [&b"garbage"[..], &LEGACY[..], &LEGACY[..10]] {
            let err = ReaderPosition::decode(bytes, 0, 1).unwrap_err();
            assert!(
                err.to_string().contains("not a file source position"),
                "{err}"
            );
            let err = ReaderPosition::decode_rescaled(bytes).unwrap_err();
            assert!(
                err.to_string().contains("not a file source position"),
                "{err}"
            );
        }
        // A split whose index is not below its parallelism is refused.
        let bad = ReaderPosition {
            files: None,
            splits: vec![split(2, 2, 0)],
        };
        assert!(ReaderPosition::decode_rescaled(&bad.encode().unwrap()).is_err());
    }

    #[test]
    fn merged_positions_keep_their_splits_in_turn() {
        let a = ReaderPosition {
            files: Some(4),
            splits: vec![split(0, 2, 1)],
        };
        let b = ReaderPosition {
            files: None,
            splits: vec![split(1, 2, 0)],
        };
        let merged = ReaderPosition::merge(vec![a.clone(), b.clone()]).unwrap();
        assert_eq!(merged.files, Some(4));
        assert_eq!(merged.splits, [split(0, 2, 1), split(1, 2, 0)]);
        let err = ReaderPosition::merge(vec![a.clone(), a.clone()]).unwrap_err();
        assert!(err.to_string().contains("split 0 of 2 is in two"), "{err}");
        let other = ReaderPosition {
            files: Some(5),
            ..b
        };
        let err = ReaderPosition::merge(vec![a, other]).unwrap_err();
        assert!(
            err.to_string().contains("listings of 4 and 5 files"),
            "{err}"
        );
    }

    #[test]
    fn a_splits_files_are_every_of_th_from_its_index() {
        let s = SplitPosition::fresh(1, 3);
        assert_eq!(
            [0, 1, 2, 4, 5, 7].map(|n| s.file_count(n)),
            [0, 0, 1, 1, 2, 2]
        );
        let s = SplitPosition { files_done: 2, ..s };
        assert_eq!(s.next_index(), 7);
    }
}
