//! Why a job spread over processes could not start or did not end well; each error
//! names the process (and its address) it is about.

use thiserror::Error;

/// What can go wrong between the processes of one job.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClusterRunError {
    /// This process cannot listen on its own address (taken port, foreign address).
    #[error("process {process} cannot listen on {address}: {reason}")]
    Listen {
        /// This process.
        process: usize,
        /// Its address from the peer list.
        address: String,
        /// The operating system's reason.
        reason: String,
    },
    /// A peer did not come up (or did not answer) within the connect timeout.
    #[error("process {process} at {address} did not connect within {timeout_ms} ms (last: {last})")]
    PeerTimeout {
        /// The missing peer.
        process: usize,
        /// Its address.
        address: String,
        /// The timeout.
        timeout_ms: u128,
        /// The last error seen, or what was waited for.
        last: String,
    },
    /// A peer refused this process or was refused by it in the handshake (other
    /// job graph, protocol version or secret).
    #[error("process {process} at {address}: {reason}")]
    Refused {
        /// The peer.
        process: usize,
        /// Its address.
        address: String,
        /// The handshake's reason.
        reason: String,
    },
    /// A process that connected to this one was refused in the handshake (or
    /// refused it): which process it was is not known then, only where it came from.
    #[error("a process connecting from {from}: {reason}")]
    RefusedIncoming {
        /// Where it connected from.
        from: String,
        /// The handshake's reason.
        reason: String,
    },
    /// A process connected that is not one this process expects to accept.
    #[error("an unexpected process {process} connected from {from}")]
    UnexpectedPeer {
        /// The index it gave.
        process: u32,
        /// Where it connected from.
        from: String,
    },
    /// The connection to a peer failed while the job ran (it crashed, its job failed,
    /// or the network broke).
    #[error("connection to process {process} at {address} failed: {reason}")]
    ConnectionLost {
        /// The peer.
        process: usize,
        /// Its address.
        address: String,
        /// The transport's error.
        reason: String,
    },
    /// The TLS files cannot be read or used.
    #[error("TLS between the processes: {0}")]
    Tls(String),
    /// The job uses something that does not work across processes yet.
    #[error("not supported across processes yet: {0}")]
    Unsupported(String),
}
