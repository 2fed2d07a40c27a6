//! Errors of the TCP transport; every one names the connection it happened on.

use thiserror::Error;

use crate::network::NetworkError;

/// What can go wrong on a TCP connection between two processes.
#[derive(Debug, Error)]
pub enum TcpError {
    /// Socket I/O failed (connect, read, write).
    #[error("connection {connection}: I/O error: {source}")]
    Io {
        /// The connection (`local -> peer`).
        connection: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The peer closed the connection in the middle of a frame.
    #[error("connection {connection}: truncated frame: {reason}")]
    TruncatedFrame {
        /// The connection (`local -> peer`).
        connection: String,
        /// What was missing.
        reason: String,
    },
    /// The peer closed the connection (between frames). Phase 1 has no orderly close, so
    /// this fails whatever still depends on the connection.
    #[error("connection {connection}: peer closed the connection")]
    PeerClosed {
        /// The connection (`local -> peer`).
        connection: String,
    },
    /// Nothing arrived from the peer within the heartbeat timeout: it hangs, or the
    /// network between the two does.
    #[error(
        "connection {connection}: no frame from the peer within {timeout:?} (heartbeat timeout)"
    )]
    HeartbeatTimeout {
        /// The connection (`local -> peer`).
        connection: String,
        /// The timeout.
        timeout: std::time::Duration,
    },
    /// A frame failed its checks (length, checksum, type, fields).
    #[error("connection {connection}: corrupt frame: {reason}")]
    CorruptFrame {
        /// The connection (`local -> peer`).
        connection: String,
        /// Which check failed.
        reason: String,
    },
    /// The handshake refused the peer (other protocol version, job or secret) or failed.
    #[error("connection {connection}: handshake refused: {reason}")]
    HandshakeRefused {
        /// The connection (`local -> peer`).
        connection: String,
        /// Why the peer was refused.
        reason: String,
    },
    /// A frame could not be delivered to its logical channel (credit violation, buffer
    /// larger than the receiver's segments, unknown channel).
    #[error("connection {connection}: logical channel {channel}: {source}")]
    Channel {
        /// The connection (`local -> peer`).
        connection: String,
        /// The logical channel id.
        channel: u32,
        /// The network-layer error.
        #[source]
        source: NetworkError,
    },
    /// A logical channel id was registered twice in the same direction.
    #[error("connection {connection}: logical channel {channel} is already registered")]
    DuplicateChannel {
        /// The connection (`local -> peer`).
        connection: String,
        /// The logical channel id.
        channel: u32,
    },
    /// The TLS settings are unusable (bad PEM, key not matching, empty CA).
    #[error("invalid TLS settings: {reason}")]
    Tls {
        /// What is wrong.
        reason: String,
    },
}

impl TcpError {
    /// A socket error on `connection`: [`PeerClosed`](Self::PeerClosed) when it says
    /// the peer went away (a reset: a peer that closes with unread data resets the
    /// connection instead of ending it; a broken pipe), else [`Io`](Self::Io).
    pub fn from_io(connection: String, source: std::io::Error) -> Self {
        use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
        match source.kind() {
            ConnectionReset | ConnectionAborted | BrokenPipe => Self::PeerClosed { connection },
            _ => Self::Io { connection, source },
        }
    }
}
