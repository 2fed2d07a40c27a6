//! The protocol boundary between a sending subpartition and a receiving input channel.
//!
//! Two messages flow: the sender ships [`BufferResponse`]s (only while it holds credit),
//! the receiver returns [`AddCredit`]s when it has fresh segments. The in-process
//! implementation is [`LocalChannel`](super::local_channel::LocalChannel); a TCP
//! transport would encode the same messages on a socket.

use super::buffer::BufferKind;
use super::error::NetworkError;

/// Sender → receiver: one buffer of subpartition data (or one event), plus the sender's
/// backlog (buffers still queued in that subpartition after this one).
#[derive(Debug, Clone, Copy)]
pub struct BufferResponse<'a> {
    /// Receiver-side input channel index.
    pub channel: usize,
    /// Buffers still queued at the sender after this one.
    pub backlog: usize,
    /// Data or event.
    pub kind: BufferKind,
    /// The buffer's valid bytes.
    pub bytes: &'a [u8],
}

/// Receiver → sender: `credit` more receiver segments are available on `channel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddCredit {
    /// Receiver-side input channel index (identifies the subpartition at the sender).
    pub channel: usize,
    /// Number of additional buffers the sender may ship.
    pub credit: usize,
}

/// What a subpartition uses to deliver buffers to its receiver.
pub trait ChannelTransport: Send + Sync {
    /// Deliver one buffer. Only called while the sender holds credit; the bytes are copied
    /// into a receiver-owned segment before this returns. Fails if the receiver is gone.
    fn send_buffer(&self, msg: BufferResponse<'_>) -> Result<(), NetworkError>;

    /// Deliver `buffer` (same contract as [`send_buffer`](Self::send_buffer)). An
    /// in-process transport may exchange the buffer's segment for the receiver's free
    /// one instead of copying the bytes; the sender then drops the buffer as usual.
    fn ship(
        &self,
        channel: usize,
        backlog: usize,
        buffer: &mut super::buffer::Buffer,
    ) -> Result<(), NetworkError> {
        self.send_buffer(BufferResponse {
            channel,
            backlog,
            kind: buffer.kind(),
            bytes: buffer.as_slice(),
        })
    }
}

/// What an input channel uses to talk back to its sender.
pub trait CreditTransport: Send + Sync {
    /// Announce credit. May ship queued sender buffers synchronously (local transport);
    /// the caller must hold no channel lock.
    fn add_credit(&self, msg: AddCredit);

    /// The receiver released `channel`; the sender drops queued data and stops sending.
    fn cancel_partition_request(&self, channel: usize);

    /// Buffer debloating: the receiver of `channel` asks for buffers of `size` bytes,
    /// so that its buffered data amounts to its target time. A transport that cannot
    /// carry the announcement keeps this default, and its sender goes on filling
    /// whole buffers (correct, only without debloating).
    fn announce_buffer_size(&self, channel: usize, size: usize) {
        let _ = (channel, size);
    }
}
