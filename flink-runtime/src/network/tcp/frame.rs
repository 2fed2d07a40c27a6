//! The wire format of the TCP transport (protocol version [`PROTOCOL_VERSION`]).
//!
//! Every frame is `length: u32 BE | body | crc32(body): u32 BE`, where `length` counts
//! body and checksum. The body starts with a type byte:
//!
//! | type | frame  | fields (all big endian)                                     |
//! |------|--------|-------------------------------------------------------------|
//! | 1    | Buffer | channel u32, backlog u32, kind u8 (0 data, 1 event), bytes |
//! | 2    | Credit | channel u32, credit u32                                     |
//! | 3    | Cancel | channel u32                                                 |
//! | 4    | Close  | (none): the sender is done with the connection              |
//! | 5    | Counts | node u32, records in, out, side unconsumed, dead letters u64 |
//! | 6    | Heartbeat | (none): the sender is alive                              |
//! | 7    | Control | bytes: a message between the processes' job coordination  |
//! |      |         | (checkpoint triggers, acknowledgements, completions)       |
//! | 8    | BufferSize | channel u32, size u32: buffer debloating's announced size |
//! | 9    | PipelineCounts | bytes: the five-stage pipelines' records ended in the |
//! |      |         | sender, by origin, and its stages' pressure (latest wins)  |
//! | 10   | SubtaskState | vertex u32, subtask u32, bytes: one subtask's live view |
//! |      |         | (state, times, bytes, its chain's counts) for process 0's  |
//! |      |         | REST API and metrics; per subtask, the latest wins         |
//!
//! Events (end of partition, watermarks, barriers) travel as event buffers, exactly as
//! in-process. A frame is checked whole before anything in it is used, so a corrupt or
//! truncated frame is an error, never a wrong record.

use crate::network::BufferKind;

/// Version of the wire format and handshake; peers of another version are refused.
/// 3: records of streams with event timestamps carry them (the timestamp, then the
/// record), so a version-2 peer would misread such an edge; `Control` frames carry
/// checkpoints across processes and `BufferSize` frames buffer debloating's sizes;
/// `PipelineCounts` frames (added within version 3) the five-stage pipeline's counts;
/// `SubtaskState` frames (added within version 3: only process 0 of a job of this
/// binary receives them) the other processes' subtasks for process 0's REST API.
pub const PROTOCOL_VERSION: u16 = 3;

/// Bytes of a counts frame's body: type, node and four counters. It fits in the
/// smallest buffer size a job accepts, so it passes any connection's frame limit.
const COUNTS_BODY_LEN: usize = 1 + 4 + 4 * 8;

/// Bytes of the length prefix.
pub const LENGTH_LEN: usize = 4;
/// Bytes of the checksum trailer.
pub const CRC_LEN: usize = 4;
/// Bytes of a buffer frame's body before its payload (type, channel, backlog, kind).
pub const BUFFER_HEADER_LEN: usize = 1 + 4 + 4 + 1;
/// Bytes of a subtask state frame's body before its payload (type, vertex, subtask).
const SUBTASK_STATE_HEADER_LEN: usize = 1 + 4 + 4;

const TYPE_BUFFER: u8 = 1;
const TYPE_CREDIT: u8 = 2;
const TYPE_CANCEL: u8 = 3;
const TYPE_CLOSE: u8 = 4;
const TYPE_COUNTS: u8 = 5;
const TYPE_HEARTBEAT: u8 = 6;
const TYPE_CONTROL: u8 = 7;
const TYPE_BUFFER_SIZE: u8 = 8;
const TYPE_PIPELINE_COUNTS: u8 = 9;
const TYPE_SUBTASK_STATE: u8 = 10;

/// One message on a connection, for one logical channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Sender → receiver: one buffer (data or one event) and the sender's backlog.
    Buffer {
        /// Logical channel id.
        channel: u32,
        /// Buffers still queued at the sender after this one.
        backlog: u32,
        /// Data or event.
        kind: BufferKind,
        /// The buffer's bytes.
        bytes: &'a [u8],
    },
    /// Receiver → sender: `credit` more receiver segments are free.
    Credit {
        /// Logical channel id.
        channel: u32,
        /// Additional buffers the sender may ship.
        credit: u32,
    },
    /// Receiver → sender: cut buffers at `size` bytes from now on (buffer
    /// debloating: the receiver's gate sized them to its throughput).
    BufferSize {
        /// Logical channel id.
        channel: u32,
        /// The buffer size in bytes.
        size: u32,
    },
    /// Receiver → sender: the receiver released the channel; drop its data.
    Cancel {
        /// Logical channel id.
        channel: u32,
    },
    /// The sender's part of the job is done: everything it had to send is before this
    /// frame and it needs nothing more. Once both sides sent it, closing the socket is
    /// orderly, not a failure.
    Close,
    /// One operator's final counts in the sender's process, sent before
    /// [`Frame::Close`] to the process that reports the whole job.
    Counts(OperatorCounts),
    /// The sender is alive: sent every fifth of the heartbeat timeout, so a peer that
    /// hears nothing for the timeout knows the sender hangs.
    Heartbeat,
    /// A message of the job's coordination between the processes (checkpoint
    /// triggers, acknowledgements and completions); the transport does not read it.
    /// At most the connection's buffer size.
    Control(&'a [u8]),
    /// The sender's running totals for the five-stage pipelines of the job (records
    /// ended there by the gateway subtask that admitted them, and the pressure of its
    /// stages); each replaces the last, so only the latest is kept. At most the
    /// connection's buffer size.
    PipelineCounts(&'a [u8]),
    /// Another process → process 0: the live view of one of the sender's subtasks
    /// (its state, times, bytes and its chain's counts, encoded by the cluster
    /// module), so process 0's REST API shows the whole job. Per subtask, each
    /// replaces the last. At most the connection's buffer size.
    SubtaskState {
        /// The subtask's job vertex.
        vertex: u32,
        /// The subtask's index in its vertex.
        subtask: u32,
        /// The view, opaque to the transport.
        bytes: &'a [u8],
    },
}

/// The final record counts of one operator's subtasks in one process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OperatorCounts {
    /// The operator's stream node id.
    pub node: u32,
    /// Records received.
    pub records_in: u64,
    /// Records emitted.
    pub records_out: u64,
    /// Records written to side outputs nothing reads.
    pub side_output_unconsumed: u64,
    /// Dead letters dropped on purpose.
    pub dead_letters_discarded: u64,
}

impl Frame<'_> {
    /// The whole frame (length prefix, body, checksum) as bytes, built in one
    /// allocation: the body goes straight after the length, and the checksum is
    /// computed over it in place (no body copied into a second vector).
    pub fn encode(&self) -> Vec<u8> {
        let body_len = self.body_len();
        let mut out = Vec::with_capacity(LENGTH_LEN + body_len + CRC_LEN);
        out.extend_from_slice(&((body_len + CRC_LEN) as u32).to_be_bytes());
        match *self {
            Frame::Buffer {
                channel,
                backlog,
                kind,
                bytes,
            } => {
                out.push(TYPE_BUFFER);
                out.extend_from_slice(&channel.to_be_bytes());
                out.extend_from_slice(&backlog.to_be_bytes());
                out.push(match kind {
                    BufferKind::Data => 0,
                    BufferKind::Event => 1,
                });
                out.extend_from_slice(bytes);
            }
            Frame::Credit { channel, credit } => {
                out.push(TYPE_CREDIT);
                out.extend_from_slice(&channel.to_be_bytes());
                out.extend_from_slice(&credit.to_be_bytes());
            }
            Frame::BufferSize { channel, size } => {
                out.push(TYPE_BUFFER_SIZE);
                out.extend_from_slice(&channel.to_be_bytes());
                out.extend_from_slice(&size.to_be_bytes());
            }
            Frame::Cancel { channel } => {
                out.push(TYPE_CANCEL);
                out.extend_from_slice(&channel.to_be_bytes());
            }
            Frame::Close => out.push(TYPE_CLOSE),
            Frame::Heartbeat => out.push(TYPE_HEARTBEAT),
            Frame::Control(bytes) => {
                out.push(TYPE_CONTROL);
                out.extend_from_slice(bytes);
            }
            Frame::PipelineCounts(bytes) => {
                out.push(TYPE_PIPELINE_COUNTS);
                out.extend_from_slice(bytes);
            }
            Frame::SubtaskState {
                vertex,
                subtask,
                bytes,
            } => {
                out.push(TYPE_SUBTASK_STATE);
                out.extend_from_slice(&vertex.to_be_bytes());
                out.extend_from_slice(&subtask.to_be_bytes());
                out.extend_from_slice(bytes);
            }
            Frame::Counts(c) => {
                out.push(TYPE_COUNTS);
                out.extend_from_slice(&c.node.to_be_bytes());
                for v in [
                    c.records_in,
                    c.records_out,
                    c.side_output_unconsumed,
                    c.dead_letters_discarded,
                ] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
            }
        }
        debug_assert_eq!(out.len(), LENGTH_LEN + body_len, "body_len() is exact");
        let crc = crc32fast::hash(&out[LENGTH_LEN..]);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    fn body_len(&self) -> usize {
        match self {
            Frame::Buffer { bytes, .. } => BUFFER_HEADER_LEN + bytes.len(),
            Frame::Credit { .. } | Frame::BufferSize { .. } => 9,
            Frame::Cancel { .. } => 5,
            Frame::Close | Frame::Heartbeat => 1,
            Frame::Counts(_) => COUNTS_BODY_LEN,
            Frame::Control(bytes) | Frame::PipelineCounts(bytes) => 1 + bytes.len(),
            Frame::SubtaskState { bytes, .. } => SUBTASK_STATE_HEADER_LEN + bytes.len(),
        }
    }

    /// Decode `body_and_crc` (the bytes after the length prefix); the error says which
    /// check failed.
    pub fn decode(body_and_crc: &[u8]) -> Result<Frame<'_>, String> {
        if body_and_crc.len() < 1 + CRC_LEN {
            return Err(format!(
                "frame of {} bytes is too short",
                body_and_crc.len()
            ));
        }
        let (body, crc) = body_and_crc.split_at(body_and_crc.len() - CRC_LEN);
        let expected = u32::from_be_bytes(crc.try_into().expect("4 bytes"));
        let actual = crc32fast::hash(body);
        if expected != actual {
            return Err(format!(
                "checksum mismatch (frame says {expected:#010x}, bytes give {actual:#010x})"
            ));
        }
        let u32_at = |i: usize| u32::from_be_bytes(body[i..i + 4].try_into().expect("4 bytes"));
        let need = |n: usize, what: &str| {
            if body.len() == n
                || (matches!(
                    what,
                    "buffer" | "control" | "pipeline counts" | "subtask state"
                ) && body.len() >= n)
            {
                Ok(())
            } else {
                Err(format!("{what} frame body of {} bytes", body.len()))
            }
        };
        match body[0] {
            TYPE_BUFFER => {
                need(BUFFER_HEADER_LEN, "buffer")?;
                let kind = match body[9] {
                    0 => BufferKind::Data,
                    1 => BufferKind::Event,
                    k => return Err(format!("unknown buffer kind {k}")),
                };
                Ok(Frame::Buffer {
                    channel: u32_at(1),
                    backlog: u32_at(5),
                    kind,
                    bytes: &body[BUFFER_HEADER_LEN..],
                })
            }
            TYPE_CREDIT => {
                need(9, "credit")?;
                Ok(Frame::Credit {
                    channel: u32_at(1),
                    credit: u32_at(5),
                })
            }
            TYPE_BUFFER_SIZE => {
                need(9, "buffer size")?;
                Ok(Frame::BufferSize {
                    channel: u32_at(1),
                    size: u32_at(5),
                })
            }
            TYPE_CANCEL => {
                need(5, "cancel")?;
                Ok(Frame::Cancel { channel: u32_at(1) })
            }
            TYPE_CLOSE => {
                need(1, "close")?;
                Ok(Frame::Close)
            }
            TYPE_HEARTBEAT => {
                need(1, "heartbeat")?;
                Ok(Frame::Heartbeat)
            }
            TYPE_CONTROL => {
                need(1, "control")?;
                Ok(Frame::Control(&body[1..]))
            }
            TYPE_PIPELINE_COUNTS => {
                need(1, "pipeline counts")?;
                Ok(Frame::PipelineCounts(&body[1..]))
            }
            TYPE_SUBTASK_STATE => {
                need(SUBTASK_STATE_HEADER_LEN, "subtask state")?;
                Ok(Frame::SubtaskState {
                    vertex: u32_at(1),
                    subtask: u32_at(5),
                    bytes: &body[SUBTASK_STATE_HEADER_LEN..],
                })
            }
            TYPE_COUNTS => {
                need(COUNTS_BODY_LEN, "counts")?;
                let u64_at =
                    |i: usize| u64::from_be_bytes(body[i..i + 8].try_into().expect("8 bytes"));
                Ok(Frame::Counts(OperatorCounts {
                    node: u32_at(1),
                    records_in: u64_at(5),
                    records_out: u64_at(13),
                    side_output_unconsumed: u64_at(21),
                    dead_letters_discarded: u64_at(29),
                }))
            }
            t => Err(format!("unknown frame type {t}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_checks() {
        let frames = [
            Frame::Buffer {
                channel: 7,
                backlog: 3,
                kind: BufferKind::Event,
                bytes: b"abc",
            },
            Frame::Credit {
                channel: 1,
                credit: 9,
            },
            Frame::Cancel { channel: 2 },
            Frame::BufferSize {
                channel: 4,
                size: 4_096,
            },
            Frame::Close,
            Frame::Heartbeat,
            Frame::Control(b"{\"Complete\":{\"id\":3}}"),
            Frame::PipelineCounts(&[1, 2, 3]),
            Frame::SubtaskState {
                vertex: 2,
                subtask: 5,
                bytes: &[9, 8, 7, 6],
            },
            Frame::SubtaskState {
                vertex: 0,
                subtask: 0,
                bytes: &[],
            },
            Frame::Counts(OperatorCounts {
                node: 3,
                records_in: 1,
                records_out: u64::MAX,
                side_output_unconsumed: 7,
                dead_letters_discarded: 9,
            }),
        ];
        for f in frames {
            let bytes = f.encode();
            let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
            assert_eq!(len, bytes.len() - LENGTH_LEN);
            assert_eq!(Frame::decode(&bytes[LENGTH_LEN..]).unwrap(), f);
            // Every single flipped bit is caught.
            for i in LENGTH_LEN..bytes.len() {
                let mut bad = bytes.clone();
                bad[i] ^= 0x10;
                assert!(Frame::decode(&bad[LENGTH_LEN..]).is_err(), "byte {i}");
            }
        }
    }
}
