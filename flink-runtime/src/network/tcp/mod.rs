//! The TCP transport: the credit-based protocol between processes (phase 1 of issue 13).
//!
//! One [`TcpConnection`] per pair of processes multiplexes every logical channel between
//! them, in both directions. It starts with a versioned [`handshake`] (protocol version,
//! job id, shared secret proven by HMAC) and then carries checked [`Frame`]s: buffers with
//! their backlog (events travel as event buffers), credit announcements and
//! cancellations. Received buffers are copied straight into the receiving channel's
//! credited segments; nothing is read ahead beyond one frame.

mod connection;
mod error;
mod frame;
mod handshake;

pub use connection::{RemoteReceiver, RemoteSender, TcpConnection, TcpConnectionStats};
pub use error::TcpError;
pub use frame::{BUFFER_HEADER_LEN, CRC_LEN, Frame, LENGTH_LEN, PROTOCOL_VERSION};
pub use handshake::{MAX_JOB_ID_LEN, Role, TcpConfig, handshake};
