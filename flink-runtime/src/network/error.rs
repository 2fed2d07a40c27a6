//! Errors of the network layer.

use thiserror::Error;

/// Everything that can go wrong while writing to a partition or reading from a gate.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum NetworkError {
    /// The task was cancelled while waiting (buffer request, gate poll).
    #[error("network operation cancelled")]
    Cancelled,
    /// The receiver of a subpartition released its input channel; nothing more can be sent there.
    #[error("receiver of subpartition {subpartition} has been released")]
    ReceiverReleased {
        /// Index of the released subpartition.
        subpartition: usize,
    },
    /// The receiving side of a channel has been released (input gate dropped).
    #[error("input channel {channel} has been released")]
    ChannelReleased {
        /// Index of the released input channel.
        channel: usize,
    },
    /// A record is longer than the u32 length prefix can express.
    #[error("record of {0} bytes exceeds the maximum record length (u32::MAX)")]
    RecordTooLarge(usize),
    /// An encoded event does not fit into one network buffer.
    #[error("event of {len} bytes does not fit into a buffer of {buffer_size} bytes")]
    EventTooLarge {
        /// Encoded length of the event.
        len: usize,
        /// Configured buffer size.
        buffer_size: usize,
    },
    /// The received byte stream cannot be decoded.
    #[error("corrupt stream on channel {channel}: {reason}")]
    CorruptStream {
        /// Input channel on which the corruption was detected.
        channel: usize,
        /// Human readable description.
        reason: String,
    },
    /// A buffer arrived at an input channel that had no free segment (credit protocol violated).
    #[error("credit violation on input channel {channel}: buffer received without credit")]
    CreditViolation {
        /// Input channel that received the buffer.
        channel: usize,
    },
    /// The writer already finished the partition (EndOfPartition was written).
    #[error("partition writer already finished")]
    WriterFinished,
    /// A second writer was requested for a partition (records would interleave).
    #[error("the partition already has a writer")]
    WriterExists,
    /// A subpartition or input channel was connected twice.
    #[error("{what} {index} is already connected")]
    AlreadyConnected {
        /// "subpartition" or "input channel".
        what: &'static str,
        /// Index of the endpoint.
        index: usize,
    },
    /// An index (subpartition, channel) is out of range.
    #[error("{what} index {index} out of range (len {len})")]
    IndexOutOfRange {
        /// What kind of index.
        what: &'static str,
        /// The offending index.
        index: usize,
        /// Number of valid entries.
        len: usize,
    },
    /// Invalid configuration (pool too small, mismatched buffer sizes, ...).
    #[error("invalid network configuration: {0}")]
    InvalidConfig(String),
}
