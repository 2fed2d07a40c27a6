//! Writes length-prefixed records into a subpartition's current buffer, spanning buffers.

use super::buffer::Buffer;
use super::error::NetworkError;

/// Size of the record length prefix (u32 little endian).
pub const LENGTH_PREFIX: usize = 4;

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
