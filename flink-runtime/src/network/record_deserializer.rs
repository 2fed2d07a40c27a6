//! Re-assembles length-prefixed records from the data buffers of one input channel.

use super::error::NetworkError;
use super::record_serializer::LENGTH_PREFIX;

/// Per-channel deserializer. Records contained in one buffer are handed out as slices
/// into that buffer (no copy); a record spanning buffers is collected in one reusable
/// vector owned by the channel.
#[derive(Debug, Default)]
pub struct RecordDeserializer {
    spill: Vec<u8>,
    expected: usize,
    spanning: bool,
}

impl RecordDeserializer {
    /// A deserializer with no partial record.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a record started in an earlier buffer is still incomplete.
    pub fn is_mid_record(&self) -> bool {
        self.spanning
    }

    /// The record started in earlier buffers and not complete yet, as the frame it
    /// began (length prefix, then the bytes so far); `None` between records. Fed to
    /// a fresh deserializer it leaves it in the same state.
    pub fn partial_frame(&self) -> Option<Vec<u8>> {
        self.spanning.then(|| {
            let len = u32::try_from(self.expected).expect("a frame length fits its prefix");
            let mut frame = Vec::with_capacity(LENGTH_PREFIX + self.spill.len());
            frame.extend_from_slice(&len.to_le_bytes());
            frame.extend_from_slice(&self.spill);
            frame
        })
    }

    /// Feed the bytes of one data buffer, calling `on_record` for every completed record
    /// in order. `channel` is used for error reports only.
    #[inline]
    pub fn feed(
        &mut self,
        data: &[u8],
        channel: usize,
        mut on_record: impl FnMut(&[u8]),
    ) -> Result<(), NetworkError> {
        self.feed_framed(data, channel, &mut on_record, |_| 0)
    }

    /// Like [`feed`](Self::feed), but first offers the bytes of `data` from its first
    /// frame on (they may end inside a frame) to `on_run`, which decodes the complete
    /// frames it wants from their start and returns the bytes they took: the frames are
    /// walked once, by the consumer. Complete frames it left come to `on_record` one by
    /// one, as does a record completed from earlier buffers.
    #[inline]
    pub fn feed_framed(
        &mut self,
        data: &[u8],
        channel: usize,
        mut on_record: impl FnMut(&[u8]),
        mut on_run: impl FnMut(&[u8]) -> usize,
    ) -> Result<(), NetworkError> {
        let mut pos = 0;
        if self.spanning {
            let need = self.expected - self.spill.len();
            let n = need.min(data.len());
            self.spill.extend_from_slice(&data[..n]);
            pos = n;
            if self.spill.len() < self.expected {
                return Ok(());
            }
            on_record(&self.spill);
            self.spill.clear();
            self.spanning = false;
        }
        if pos < data.len() {
            pos += on_run(&data[pos..]).min(data.len() - pos);
        }
        let mut rest = flink_core::codec::frames(&data[pos..]);
        for record in rest.by_ref() {
            on_record(record);
        }
        self.keep_cut_record(rest.rest(), channel)
    }

    /// Keeps the start of a record the next buffer continues (`tail`: what follows
    /// the last complete frame of a buffer).
    fn keep_cut_record(&mut self, tail: &[u8], channel: usize) -> Result<(), NetworkError> {
        let Some((prefix, started)) = tail.split_first_chunk::<LENGTH_PREFIX>() else {
            return match tail.len() {
                0 => Ok(()),
                trailing => Err(NetworkError::CorruptStream {
                    channel,
                    reason: format!("{trailing} trailing bytes, no full length prefix"),
                }),
            };
        };
        self.expected = u32::from_le_bytes(*prefix) as usize;
        self.spill.clear();
        self.spill.extend_from_slice(started);
        self.spanning = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(records: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for r in records {
            v.extend_from_slice(&(r.len() as u32).to_le_bytes());
            v.extend_from_slice(r);
        }
        v
    }

    #[test]
    fn reassembles_across_arbitrary_cuts() {
        let records: Vec<Vec<u8>> = (0..20).map(|i| vec![i as u8; i * 7]).collect();
        let refs: Vec<&[u8]> = records.iter().map(|r| r.as_slice()).collect();
        let bytes = encode(&refs);
        // Cut only at points that do not split a length prefix in a way a writer never would:
        // feed the whole stream in one piece and in record-aligned pieces.
        let mut d = RecordDeserializer::new();
        let mut out = Vec::new();
        d.feed(&bytes, 0, |r| out.push(r.to_vec())).unwrap();
        assert_eq!(out, records);
        assert!(!d.is_mid_record());
    }

    #[test]
    fn a_partial_frame_resumes_in_a_fresh_deserializer() {
        let bytes = encode(&[b"hello world"]);
        let mut first = RecordDeserializer::new();
        first
            .feed(&bytes[..7], 0, |_| panic!("incomplete"))
            .unwrap();
        let partial = first.partial_frame().unwrap();
        let mut second = RecordDeserializer::new();
        second.feed(&partial, 0, |_| panic!("incomplete")).unwrap();
        let mut out = Vec::new();
        second
            .feed(&bytes[7..], 0, |r| out.push(r.to_vec()))
            .unwrap();
        assert_eq!(out, vec![b"hello world".to_vec()]);
        assert_eq!(second.partial_frame(), None);
    }

    #[test]
    fn spanning_record() {
        let bytes = encode(&[&[7u8; 10]]);
        let mut d = RecordDeserializer::new();
        let mut out = Vec::new();
        d.feed(&bytes[..6], 0, |r| out.push(r.to_vec())).unwrap();
        assert!(d.is_mid_record());
        d.feed(&bytes[6..9], 0, |r| out.push(r.to_vec())).unwrap();
        d.feed(&bytes[9..], 0, |r| out.push(r.to_vec())).unwrap();
        assert_eq!(out, vec![vec![7u8; 10]]);
    }

    /// A consumer of runs that takes every complete frame, as the record decoder does.
    fn take_all(runs: &mut Vec<Vec<u8>>) -> impl FnMut(&[u8]) -> usize + '_ {
        |run| {
            let mut frames = flink_core::codec::frames(run);
            let records: Vec<u8> = frames.by_ref().flat_map(<[u8]>::to_vec).collect();
            runs.push(records);
            run.len() - frames.rest().len()
        }
    }

    #[test]
    fn complete_records_come_as_one_run_and_a_spanning_one_alone() {
        let bytes = encode(&[&[1; 3], &[2; 5], &[3; 9]]);
        let mut d = RecordDeserializer::new();
        let (mut singles, mut runs) = (Vec::new(), Vec::new());
        // Cut inside the third record: two complete frames, then a spill.
        d.feed_framed(
            &bytes[..20],
            0,
            |r| singles.push(r.to_vec()),
            take_all(&mut runs),
        )
        .unwrap();
        assert_eq!(runs, vec![[[1u8; 3].as_slice(), &[2; 5]].concat()]);
        assert!(singles.is_empty() && d.is_mid_record());
        d.feed_framed(
            &bytes[20..],
            0,
            |r| singles.push(r.to_vec()),
            take_all(&mut runs),
        )
        .unwrap();
        assert_eq!(singles, vec![vec![3u8; 9]]);
        assert_eq!(runs.len(), 1, "nothing was left in the second piece");
        assert!(!d.is_mid_record());
    }

    #[test]
    fn frames_the_run_consumer_leaves_come_one_by_one() {
        let bytes = encode(&[&[1; 3], &[2; 5], &[3; 9]]);
        let mut d = RecordDeserializer::new();
        let mut singles = Vec::new();
        // The consumer takes the first frame only (7 bytes); the buffer ends mid-record.
        d.feed_framed(&bytes[..20], 0, |r| singles.push(r.to_vec()), |_| 7)
            .unwrap();
        assert_eq!(singles, vec![vec![2u8; 5]]);
        assert!(d.is_mid_record());
        d.feed_framed(&bytes[20..], 0, |r| singles.push(r.to_vec()), |_| 0)
            .unwrap();
        assert_eq!(singles, vec![vec![2u8; 5], vec![3u8; 9]]);
    }

    #[test]
    fn split_prefix_is_corrupt() {
        let mut d = RecordDeserializer::new();
        assert!(d.feed(&[1, 0], 3, |_| {}).is_err());
    }
}
