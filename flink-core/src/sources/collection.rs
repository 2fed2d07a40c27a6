//! A source over the elements of a `Vec`, split among its readers by index ranges.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;

use crate::checkpoint::{StateError, decode_state, encode_state};
use crate::operator::RuntimeContext;
use crate::source::{Boundedness, Source, SourceOutput, SourcePoll, SourceReader};
use crate::sources::BATCH;

/// Emits the elements of a `Vec`, split into contiguous shares among the readers.
///
/// A reader's position names the index ranges of the `Vec` it has left, so the
/// positions of a run at one parallelism can be dealt to the readers of a run at
/// another ([`Source::can_restore_rescaled`]): every element not emitted before the
/// savepoint is emitted exactly once after it.
pub struct CollectionSource<T> {
    items: Arc<Vec<T>>,
}

impl<T> CollectionSource<T> {
    /// A source over `items`.
    pub fn new(items: Vec<T>) -> Self {
        Self {
            items: Arc::new(items),
        }
    }
}

impl<T: Clone + Send + Sync + 'static> Source<T> for CollectionSource<T> {
    fn boundedness(&self) -> Boundedness {
        Boundedness::Bounded
    }

    fn can_restore_rescaled(&self) -> bool {
        true
    }

    fn create_reader(&self, ctx: &RuntimeContext) -> Box<dyn SourceReader<T>> {
        let share = share(self.items.len(), ctx.subtask_index, ctx.parallelism);
        let mut reader = CollectionReader {
            items: self.items.clone(),
            share: share.clone(),
            ranges: VecDeque::new(),
            before_last: VecDeque::new(),
            last_records: 0,
        };
        reader.take_ranges(std::iter::once(share));
        Box::new(reader)
    }
}

/// The share of reader `index` of `parallelism` in a `Vec` of `len` elements.
fn share(len: usize, index: usize, parallelism: usize) -> Range<usize> {
    len * index / parallelism..len * (index + 1) / parallelism
}

/// Starts every position in the range-list encoding. The encoding written before it
/// (one varint: the count of records the reader emitted from its share) never starts
/// with these four bytes: a varint starting with `C` ends after one byte.
const MARKER: [u8; 4] = *b"CLr2";

/// A reader's position: the index ranges `[next, end)` of the `Vec` it has left, the
/// one being read first.
#[derive(serde::Serialize, serde::Deserialize)]
struct CollectionPosition {
    marker: [u8; 4],
    /// The length of the `Vec` the position was taken over; a restore over a `Vec`
    /// of another length is refused.
    len: u64,
    ranges: Vec<(u64, u64)>,
}

/// Reads its index ranges of the shared `Vec` in turn, cloning each element.
struct CollectionReader<T> {
    items: Arc<Vec<T>>,
    /// This reader's own share: what a position of the earlier encoding counts in.
    share: Range<usize>,
    /// The ranges left, the one being read first; none empty.
    ranges: VecDeque<Range<usize>>,
    /// The ranges left before the last poll (its allocation reused), and how many
    /// elements that poll emitted: for the position after part of its batch.
    before_last: VecDeque<Range<usize>>,
    last_records: usize,
}

impl<T> CollectionReader<T> {
    /// Takes the ranges of the range-list `position`, or `None` if it is of the
    /// earlier encoding.
    fn decode(&self, position: &[u8]) -> Result<Option<Vec<Range<usize>>>, StateError> {
        let Ok(decoded) = decode_state::<CollectionPosition>(position) else {
            return Ok(None);
        };
        if decoded.marker != MARKER {
            return Ok(None);
        }
        let len = self.items.len();
        if decoded.len != len as u64 {
            return Err(StateError::Corrupt(format!(
                "the collection source position was taken over {} elements, this \
                 collection has {len}",
                decoded.len
            )));
        }
        decoded
            .ranges
            .into_iter()
            .map(
                |(next, end)| match (usize::try_from(next), usize::try_from(end)) {
                    (Ok(next), Ok(end)) if next <= end && end <= len => Ok(next..end),
                    _ => Err(StateError::Corrupt(format!(
                        "the collection source range {next}..{end} is not within its {len} elements"
                    ))),
                },
            )
            .collect::<Result<_, _>>()
            .map(Some)
    }

    fn take_ranges(&mut self, ranges: impl IntoIterator<Item = Range<usize>>) {
        self.ranges = ranges.into_iter().filter(|r| !r.is_empty()).collect();
        self.before_last.clear();
        self.last_records = 0;
    }

    /// The ranges left had only the first `emitted` elements of the last poll gone
    /// out: those before it, `emitted` further (the poll read them in turn).
    ///
    /// # Errors
    /// When `emitted` exceeds the elements of the last poll.
    fn ranges_after(&self, emitted: usize) -> Result<Vec<Range<usize>>, StateError> {
        if emitted > self.last_records {
            return Err(StateError::Encode(format!(
                "the position after {emitted} records of a batch of {}",
                self.last_records
            )));
        }
        if emitted == self.last_records {
            return Ok(self.ranges.iter().cloned().collect());
        }
        let mut skip = emitted;
        let mut ranges = Vec::with_capacity(self.before_last.len());
        for range in &self.before_last {
            let taken = skip.min(range.len());
            skip -= taken;
            if taken < range.len() {
                ranges.push(range.start + taken..range.end);
            }
        }
        Ok(ranges)
    }

    /// The bytes of a position with `ranges` left.
    fn encode(&self, ranges: impl Iterator<Item = Range<usize>>) -> Result<Vec<u8>, StateError> {
        encode_state(&CollectionPosition {
            marker: MARKER,
            len: self.items.len() as u64,
            ranges: ranges.map(|r| (r.start as u64, r.end as u64)).collect(),
        })
    }
}

impl<T: Clone + Send + Sync> SourceReader<T> for CollectionReader<T> {
    fn poll_next(&mut self, out: &mut SourceOutput<T>) -> SourcePoll {
        self.before_last.clone_from(&self.ranges);
        let start = out.batch.len();
        let mut room = BATCH as usize;
        while room > 0
            && let Some(range) = self.ranges.front_mut()
        {
            let end = range.end.min(range.start + room);
            out.batch.extend_from_slice(&self.items[range.start..end]);
            room -= end - range.start;
            range.start = end;
            if range.start == range.end {
                self.ranges.pop_front();
            }
        }
        self.last_records = out.batch.len() - start;
        if self.ranges.is_empty() {
            SourcePoll::Finished
        } else {
            SourcePoll::MoreAvailable
        }
    }

    fn snapshot_position(&mut self) -> Result<Option<Vec<u8>>, StateError> {
        self.encode(self.ranges.iter().cloned()).map(Some)
    }

    /// The ranges before the last poll, `emitted` elements further: a collection
    /// has no dead letters, so its position is just that much further.
    fn snapshot_position_after(&mut self, emitted: usize) -> Result<Option<Vec<u8>>, StateError> {
        let ranges = self.ranges_after(emitted)?;
        self.encode(ranges.into_iter()).map(Some)
    }

    /// Takes the ranges of the position; a position of the earlier encoding (the
    /// count of records emitted from this reader's share) skips that many.
    fn restore_position(&mut self, position: &[u8]) -> Result<(), StateError> {
        if let Some(ranges) = self.decode(position)? {
            self.take_ranges(ranges);
            return Ok(());
        }
        let emitted: u64 = decode_state(position)?;
        let next = usize::try_from(emitted)
            .ok()
            .and_then(|emitted| self.share.start.checked_add(emitted))
            .filter(|next| *next <= self.share.end)
            .ok_or_else(|| {
                StateError::Corrupt(format!(
                    "position {emitted} is past the end of this reader's {} items",
                    self.share.len()
                ))
            })?;
        self.take_ranges(std::iter::once(next..self.share.end));
        Ok(())
    }

    /// Takes the ranges of every position given, in turn. Positions of the earlier
    /// encoding are refused: they count in a share of a parallelism they do not name.
    fn restore_rescaled(&mut self, positions: &[&[u8]]) -> Result<(), StateError> {
        let mut ranges = Vec::new();
        for position in positions {
            match self.decode(position)? {
                Some(taken) => ranges.extend(taken),
                None => {
                    return Err(StateError::Corrupt(
                        "a collection source position of the earlier encoding (a count in \
                         its reader's share) restores only at the parallelism it was saved \
                         with"
                            .into(),
                    ));
                }
            }
        }
        self.take_ranges(ranges);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    /// Elements of the collections below: a few batches per reader at 2.
    const N: u64 = 5_000;

    fn source() -> CollectionSource<u64> {
        CollectionSource::new((0..N).collect())
    }

    fn reader(source: &CollectionSource<u64>, i: usize, p: usize) -> Box<dyn SourceReader<u64>> {
        let ctx = RuntimeContext::standalone("items", i, p, Arc::new(ManualClock::new()));
        source.create_reader(&ctx)
    }

    fn drain(reader: &mut dyn SourceReader<u64>) -> Vec<u64> {
        let mut out = SourceOutput::new();
        while reader.poll_next(&mut out) != SourcePoll::Finished {}
        out.take()
    }

    /// Two readers polled `polls[i]` times each, then saved: what they emitted and
    /// their positions.
    fn saved_at_two(source: &CollectionSource<u64>, polls: [usize; 2]) -> (Vec<u64>, Vec<Vec<u8>>) {
        let (mut emitted, mut saved) = (Vec::new(), Vec::new());
        for (i, polls) in polls.into_iter().enumerate() {
            let mut r = reader(source, i, 2);
            let mut out = SourceOutput::new();
            for _ in 0..polls {
                r.poll_next(&mut out);
            }
            emitted.extend(out.take());
            saved.push(r.snapshot_position().unwrap().unwrap());
        }
        (emitted, saved)
    }

    /// Saved subtask `j`'s position, of `saved`, for reader `i` of `p` (`j % p == i`).
    fn dealt(saved: &[Vec<u8>], i: usize, p: usize) -> Vec<&[u8]> {
        crate::source::dealt_to(saved, i, p)
            .map(Vec::as_slice)
            .collect()
    }

    #[test]
    fn readers_emit_their_shares_in_order_exactly_once() {
        let source = source();
        for p in 1..6 {
            let all: Vec<u64> = (0..p)
                .flat_map(|i| drain(&mut *reader(&source, i, p)))
                .collect();
            assert_eq!(all, (0..N).collect::<Vec<_>>(), "parallelism {p}");
        }
    }

    #[test]
    fn positions_saved_at_two_restore_at_one_three_and_four_exactly_once() {
        let source = source();
        // One batch into the first share, two into the second.
        let (emitted, saved) = saved_at_two(&source, [1, 2]);
        assert_eq!(emitted.len(), 3 * BATCH as usize);
        for p in [1, 3, 4] {
            let mut all = emitted.clone();
            for i in 0..p {
                let mut r = reader(&source, i, p);
                r.restore_rescaled(&dealt(&saved, i, p)).unwrap();
                all.extend(drain(&mut *r));
            }
            all.sort_unstable();
            assert_eq!(all, (0..N).collect::<Vec<_>>(), "parallelism {p}");
        }
    }

    #[test]
    fn positions_after_part_of_a_batch_restore_the_rest_exactly_once() {
        let source = source();
        // Saved at 4 with nothing read (ranges of 1,250), dealt to one reader: its
        // second batch ends 798 into the second range.
        let fresh: Vec<Vec<u8>> = (0..4)
            .map(|i| reader(&source, i, 4).snapshot_position().unwrap().unwrap())
            .collect();
        let mut r = reader(&source, 0, 1);
        r.restore_rescaled(&dealt(&fresh, 0, 1)).unwrap();
        let mut out = SourceOutput::new();
        r.poll_next(&mut out);
        let emitted = out.take();
        r.poll_next(&mut out);
        let last = out.take();
        assert_eq!(last.len(), BATCH as usize);
        assert!(r.snapshot_position_after(last.len() + 1).is_err());
        // Cuts in the first range, at its end, in the second, at the batch's end.
        for cut in [0, 100, 226, 500, BATCH as usize] {
            let saved = vec![r.snapshot_position_after(cut).unwrap().unwrap()];
            for p in [1, 2, 3] {
                let mut all = [&emitted[..], &last[..cut]].concat();
                for i in 0..p {
                    let mut restored = reader(&source, i, p);
                    restored.restore_rescaled(&dealt(&saved, i, p)).unwrap();
                    all.extend(drain(&mut *restored));
                }
                all.sort_unstable();
                assert_eq!(all, (0..N).collect::<Vec<_>>(), "{cut} restored at {p}");
            }
        }
        // The whole batch out: the position now.
        assert_eq!(
            r.snapshot_position_after(last.len()).unwrap(),
            r.snapshot_position().unwrap()
        );
    }

    #[test]
    fn a_reader_restored_from_its_own_position_emits_the_rest_of_its_share() {
        let source = source();
        let mut r = reader(&source, 1, 2);
        r.poll_next(&mut SourceOutput::new());
        let saved = r.snapshot_position().unwrap().unwrap();
        let mut restored = reader(&source, 1, 2);
        restored.restore_position(&saved).unwrap();
        assert_eq!(
            drain(&mut *restored),
            (2_500 + BATCH..N).collect::<Vec<_>>()
        );
    }

    #[test]
    fn an_earlier_count_position_restores_at_its_parallelism_only() {
        let source = source();
        let count = encode_state(&100u64).unwrap();
        let mut r = reader(&source, 1, 2);
        r.restore_position(&count).unwrap();
        assert_eq!(drain(&mut *r), (2_600..N).collect::<Vec<_>>());
        let past = encode_state(&2_501u64).unwrap();
        assert!(reader(&source, 1, 2).restore_position(&past).is_err());
        let err = reader(&source, 0, 3)
            .restore_rescaled(&[&count])
            .unwrap_err();
        assert!(
            err.to_string().contains("restores only at the parallelism"),
            "{err}"
        );
    }

    #[test]
    fn a_position_over_a_collection_of_another_length_is_refused() {
        let (_, saved) = saved_at_two(&source(), [1, 1]);
        let shorter = CollectionSource::new((0..N - 1).collect());
        let err = reader(&shorter, 0, 2)
            .restore_position(&saved[0])
            .unwrap_err();
        assert!(
            err.to_string().contains("taken over 5000 elements"),
            "{err}"
        );
        assert!(
            reader(&shorter, 0, 1)
                .restore_rescaled(&[&saved[0], &saved[1]])
                .is_err()
        );
    }
}
