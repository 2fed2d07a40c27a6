//! Network buffers: fixed-capacity byte segments borrowed from a bounded pool.

use std::sync::Arc;

use super::buffer_pool::PoolInner;

/// What a buffer carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BufferKind {
    /// Length-prefixed record bytes (records may continue in the next buffer).
    Data,
    /// Exactly one encoded [`Event`](super::event::Event).
    Event,
}

/// A fixed-capacity byte segment from a [`BufferPool`](super::buffer_pool::BufferPool),
/// with a fill length and a kind. Dropping it returns the segment to its pool and wakes
/// a waiting requester.
pub struct Buffer {
    segment: Box<[u8]>,
    len: usize,
    /// Where writing stops: the segment's size, or less when the receiver announced a
    /// smaller buffer size (buffer debloating); the segment itself keeps its size.
    limit: usize,
    kind: BufferKind,
    pool: Arc<PoolInner>,
}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buffer")
            .field("len", &self.len)
            .field("capacity", &self.segment.len())
            .field("limit", &self.limit)
            .field("kind", &self.kind)
            .finish()
    }
}

impl Buffer {
    pub(crate) fn new(segment: Box<[u8]>, pool: Arc<PoolInner>) -> Self {
        Self {
            limit: segment.len(),
            segment,
            len: 0,
            kind: BufferKind::Data,
            pool,
        }
    }

    /// Number of valid bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no byte has been written.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Size of the underlying segment.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.segment.len()
    }

    /// Bytes that can still be appended (up to the [`limit`](Self::limit)).
    #[inline]
    pub fn remaining(&self) -> usize {
        self.limit - self.len
    }

    /// How many bytes this buffer is filled to before it counts as full: its
    /// capacity unless [`set_limit`](Self::set_limit) cut it shorter.
    #[inline]
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Cuts the buffer at `limit` bytes (buffer debloating: the receiver announced a
    /// smaller size), clamped to the bytes already written and the capacity.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit.clamp(self.len, self.segment.len());
    }

    /// Data or event buffer.
    #[inline]
    pub fn kind(&self) -> BufferKind {
        self.kind
    }

    /// Change the kind (an event buffer carries exactly one encoded event).
    pub fn set_kind(&mut self, kind: BufferKind) {
        self.kind = kind;
    }

    /// The valid bytes.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        &self.segment[..self.len]
    }

    /// Append as many bytes of `bytes` as fit; returns how many were appended.
    #[inline]
    pub fn append(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.remaining());
        self.segment[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
        n
    }

    /// Append a u32 little-endian length prefix followed by `record`.
    /// The caller guarantees `remaining() >= 4 + record.len()`.
    #[inline]
    pub(crate) fn append_record(&mut self, record: &[u8]) {
        let start = self.len;
        let end = start + 4 + record.len();
        let dst = &mut self.segment[start..end];
        dst[..4].copy_from_slice(&(record.len() as u32).to_le_bytes());
        dst[4..].copy_from_slice(record);
        self.len = end;
    }

    /// The room after a length prefix at the write position, for a record encoded in
    /// place; empty if not even the prefix fits. Follow with
    /// [`commit_record`](Self::commit_record).
    #[inline]
    pub(crate) fn record_spare_mut(&mut self) -> &mut [u8] {
        let start = (self.len + 4).min(self.limit);
        &mut self.segment[start..self.limit]
    }

    /// Completes a record of `n` bytes encoded into [`record_spare_mut`](Self::record_spare_mut):
    /// writes its u32 little-endian length prefix in front of it, as
    /// [`append_record`](Self::append_record) would have.
    #[inline]
    pub(crate) fn commit_record(&mut self, n: usize) {
        let start = self.len;
        let end = start + 4 + n;
        assert!(end <= self.limit, "record committed beyond buffer capacity");
        self.segment[start..start + 4].copy_from_slice(&(n as u32).to_le_bytes());
        self.len = end;
    }

    /// Exchanges this buffer's segment for `other` when both have the same size (the
    /// bytes then travel by pointer, not by copy) and returns whether it did. The
    /// buffer keeps its length and kind; on drop it returns `other`'s former segment
    /// to this buffer's pool, so both sides keep their number of segments.
    pub(crate) fn swap_segment(&mut self, other: &mut Box<[u8]>) -> bool {
        if other.len() != self.segment.len() {
            return false;
        }
        std::mem::swap(&mut self.segment, other);
        true
    }

    /// Mutable access to the unwritten tail, for encoders; follow with [`commit`](Self::commit).
    #[inline]
    pub(crate) fn spare_mut(&mut self) -> &mut [u8] {
        &mut self.segment[self.len..self.limit]
    }

    /// Mark `n` more bytes (written through [`spare_mut`](Self::spare_mut)) as valid.
    #[inline]
    pub(crate) fn commit(&mut self, n: usize) {
        assert!(n <= self.remaining(), "commit beyond buffer capacity");
        self.len += n;
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        let segment = std::mem::take(&mut self.segment);
        self.pool.recycle(segment);
    }
}

#[cfg(test)]
mod tests {
    use super::super::buffer_pool::BufferPool;
    use super::super::cancel::CancelToken;

    #[test]
    fn segments_of_equal_size_are_exchanged_and_the_pool_keeps_its_count() {
        let pool = BufferPool::new(2, 8, CancelToken::new(), None).unwrap();
        let mut buffer = pool.request().unwrap();
        buffer.append(&[7; 5]);
        let mut theirs: Box<[u8]> = vec![0; 8].into_boxed_slice();
        assert!(buffer.swap_segment(&mut theirs));
        assert_eq!(&theirs[..5], &[7; 5], "the bytes moved with the segment");
        assert_eq!(buffer.len(), 5);

        let mut other_size: Box<[u8]> = vec![0; 16].into_boxed_slice();
        assert!(!buffer.swap_segment(&mut other_size));
        assert_eq!(other_size.len(), 16);

        drop(buffer);
        assert_eq!(pool.in_use(), 0);
        let (a, b) = (pool.request().unwrap(), pool.request().unwrap());
        assert_eq!((a.capacity(), b.capacity()), (8, 8));
    }
}
