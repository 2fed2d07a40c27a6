//! Writes length-prefixed records into a subpartition's current buffer, spanning buffers.

use super::buffer::Buffer;
use super::error::NetworkError;

/// Size of the record length prefix (u32 little endian).
pub use flink_core::codec::LENGTH_PREFIX;

/// Per-subpartition serializer state: the partially filled current buffer.
///
/// A record is written as a u32 little-endian length followed by its bytes. A record that
/// does not fit continues in the next buffer(s). The 4-byte prefix is never split: if fewer
/// than 4 bytes remain, the buffer is finished first.
#[derive(Debug, Default)]
pub struct RecordSerializer {
    current: Option<Buffer>,
}

impl RecordSerializer {
    /// Whether the current buffer holds any bytes.
    pub fn has_data(&self) -> bool {
        self.current.as_ref().is_some_and(|b| !b.is_empty())
    }

    /// A serializer without a current buffer.
    pub fn new() -> Self {
        Self { current: None }
    }

    /// Fast path: append the record to the current buffer if it fits completely.
    /// A memcpy, no lock, no allocation. Returns `false` if the slow path is needed.
    #[inline]
    pub fn try_write(&mut self, record: &[u8]) -> bool {
        if let Some(buf) = &mut self.current
            && buf.remaining() >= LENGTH_PREFIX + record.len()
        {
            buf.append_record(record);
            return true;
        }
        false
    }

    /// Room to encode the next record in place: the current buffer's space after its
    /// length prefix, empty without a current buffer. A record that fits is completed
    /// by [`commit`](Self::commit); one that does not goes through [`write`](Self::write),
    /// so the bytes on the wire are the same either way.
    #[inline]
    pub fn spare(&mut self) -> &mut [u8] {
        match &mut self.current {
            Some(buf) => buf.record_spare_mut(),
            None => &mut [],
        }
    }

    /// Completes a record of `len` bytes encoded into [`spare`](Self::spare).
    ///
    /// # Panics
    /// If there is no current buffer or `len` exceeds the spare room (a caller bug).
    #[inline]
    pub fn commit(&mut self, len: usize) {
        self.current
            .as_mut()
            .expect("commit after spare returned room")
            .commit_record(len);
    }

    /// Raw room of the current buffer for several complete frames (each a length
    /// prefix, then the record) written back to back; empty without a current buffer.
    /// Follow with [`commit_frames`](Self::commit_frames).
    #[inline]
    pub fn spare_frames(&mut self) -> &mut [u8] {
        match &mut self.current {
            Some(buf) => buf.spare_mut(),
            None => &mut [],
        }
    }

    /// Completes `len` bytes of complete frames written into [`spare_frames`](Self::spare_frames).
    ///
    /// # Panics
    /// If there is no current buffer or `len` exceeds its room (a caller bug).
    #[inline]
    pub fn commit_frames(&mut self, len: usize) {
        self.current
            .as_mut()
            .expect("commit after spare_frames returned room")
            .commit(len);
    }

    /// General path: write `record`, taking fresh buffers from `request` and handing every
    /// filled buffer to `emit` in order.
    pub fn write(
        &mut self,
        record: &[u8],
        request: &mut dyn FnMut() -> Result<Buffer, NetworkError>,
        emit: &mut dyn FnMut(Buffer) -> Result<(), NetworkError>,
    ) -> Result<(), NetworkError> {
        if u32::try_from(record.len()).is_err() {
            return Err(NetworkError::RecordTooLarge(record.len()));
        }
        // A buffer with room for the complete length prefix.
        loop {
            match &self.current {
                Some(b) if b.remaining() >= LENGTH_PREFIX => break,
                Some(_) => {
                    let full = self.current.take().expect("checked");
                    emit(full)?;
                }
                None => self.current = Some(request()?),
            }
        }
        let buf = self.current.as_mut().expect("ensured above");
        if buf.remaining() >= LENGTH_PREFIX + record.len() {
            buf.append_record(record);
            return Ok(());
        }
        buf.append(&(record.len() as u32).to_le_bytes());
        let mut rest = record;
        loop {
            let buf = match &mut self.current {
                Some(b) => b,
                None => self.current.insert(request()?),
            };
            let n = buf.append(rest);
            rest = &rest[n..];
            if buf.remaining() == 0 {
                let full = self.current.take().expect("present");
                emit(full)?;
            }
            if rest.is_empty() {
                return Ok(());
            }
        }
    }

    /// Take the current buffer if it holds data (for flushing); an empty one is kept.
    pub fn take_filled(&mut self) -> Option<Buffer> {
        if self.current.as_ref().is_some_and(|b| !b.is_empty()) {
            self.current.take()
        } else {
            None
        }
    }

    /// Drop the current buffer (returning it to its pool).
    pub fn clear(&mut self) {
        self.current = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::buffer_pool::BufferPool;
    use crate::network::cancel::CancelToken;
    use crate::network::record_deserializer::RecordDeserializer;

    /// Serialize `records` into buffers of `size` bytes and read them back buffer by buffer.
    fn round_trip(size: usize, records: &[Vec<u8>]) -> (Vec<Vec<u8>>, Vec<usize>) {
        let pool = BufferPool::new(1000, size, CancelToken::new(), None).unwrap();
        let mut ser = RecordSerializer::new();
        let mut filled: Vec<Vec<u8>> = Vec::new();
        for r in records {
            if !ser.try_write(r) {
                ser.write(r, &mut || pool.request(), &mut |b| {
                    filled.push(b.as_slice().to_vec());
                    Ok(())
                })
                .unwrap();
            }
        }
        if let Some(b) = ser.take_filled() {
            filled.push(b.as_slice().to_vec());
        }
        let mut de = RecordDeserializer::new();
        let mut out = Vec::new();
        for b in &filled {
            de.feed(b, 0, |r| out.push(r.to_vec())).unwrap();
        }
        assert!(!de.is_mid_record());
        (out, filled.iter().map(Vec::len).collect())
    }

    #[test]
    fn records_span_buffers_and_prefix_is_never_split() {
        let records: Vec<Vec<u8>> = (0..200usize)
            .map(|i| vec![i as u8; (i * 13) % 50])
            .collect();
        for size in [8, 9, 10, 11, 16, 33] {
            let (out, lens) = round_trip(size, &records);
            assert_eq!(out, records, "buffer size {size}");
            assert!(lens.iter().all(|l| *l <= size && *l > 0));
        }
    }

    #[test]
    fn buffer_finished_when_prefix_does_not_fit() {
        // 16-byte buffers: 4 + 10 = 14 bytes, 2 remain -> next prefix goes to a new buffer.
        let (out, lens) = round_trip(16, &[vec![1; 10], vec![2; 3]]);
        assert_eq!(out, vec![vec![1; 10], vec![2; 3]]);
        assert_eq!(lens, vec![14, 7]);
    }

    #[test]
    fn records_encoded_in_place_are_framed_like_written_ones() {
        let pool = BufferPool::new(4, 16, CancelToken::new(), None).unwrap();
        let mut in_place = RecordSerializer::new();
        assert!(in_place.spare().is_empty(), "no current buffer yet");
        in_place
            .write(&[9; 2], &mut || pool.request(), &mut |_| Ok(()))
            .unwrap();
        // 16 - 6 = 10 bytes left, 4 of them for the prefix: room for 6.
        let spare = in_place.spare();
        assert_eq!(spare.len(), 6);
        spare[..6].copy_from_slice(&[3; 6]);
        in_place.commit(6);
        assert!(in_place.spare().is_empty(), "full: not even a prefix fits");
        let in_place = in_place.take_filled().unwrap().as_slice().to_vec();

        let mut written = RecordSerializer::new();
        for r in [&[9u8; 2][..], &[3; 6]] {
            written
                .write(r, &mut || pool.request(), &mut |_| Ok(()))
                .unwrap();
        }
        assert_eq!(in_place, written.take_filled().unwrap().as_slice());
    }

    #[test]
    fn empty_records_and_exact_fits() {
        let records = vec![vec![], vec![5; 12], vec![], vec![], vec![6; 4]];
        let (out, _) = round_trip(16, &records);
        assert_eq!(out, records);
    }
}
