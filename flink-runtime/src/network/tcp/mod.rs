//! The TCP transport: the credit-based protocol between processes (phase 1 of issue 13).
//!
//! One [`TcpConnection`] per pair of processes multiplexes every logical channel between
//! them, in both directions. It starts with a versioned [`handshake`] (protocol version,
//! job id, shared secret proven by HMAC) and then carries checked [`Frame`]s: buffers with
//! their backlog (events travel as event buffers), credit announcements and
//! cancellations. Received buffers are copied straight into the receiving channel's
//! credited segments; nothing is read ahead beyond one frame.
//!
//! ```
//! use std::net::TcpListener;
//! use std::sync::Arc;
//! use std::time::Duration;
//! use flink_runtime::network::tcp::{TcpConfig, TcpConnection};
//! use flink_runtime::network::{
//!     CancelToken, GateItem, GatePoll, InputGate, IoMetrics, NetworkConfig, PartitionWriter,
//!     ResultPartition,
//! };
//!
//! let config = TcpConfig {
//!     job_id: "wordcount".into(),
//!     process: 0,
//!     secret: b"shared secret".to_vec(),
//!     handshake_timeout: Duration::from_secs(10),
//!     max_buffer_size: 1024,
//!     heartbeat_timeout: Some(Duration::from_secs(30)),
//!     tls: None,
//! };
//! let listener = TcpListener::bind("127.0.0.1:0").unwrap();
//! let addr = listener.local_addr().unwrap();
//! let accept_config = config.clone();
//! let acceptor = std::thread::spawn(move || TcpConnection::accept(&listener, &accept_config));
//! let sender_side = TcpConnection::connect(addr, &config).unwrap();
//! let receiver_side = acceptor.join().unwrap().unwrap();
//!
//! // Logical channel 7: subpartition 0 of a partition in one process, channel 0 of a
//! // gate in the other.
//! let partition = ResultPartition::new(1, 4, 1024, CancelToken::new(), IoMetrics::new()).unwrap();
//! let net = NetworkConfig { buffer_size: 1024, exclusive_buffers_per_channel: 2, floating_buffers_per_gate: 2 };
//! let mut gate = InputGate::new(1, &net, CancelToken::new(), IoMetrics::new()).unwrap();
//! sender_side.register_sender(7, &partition, 0).unwrap();
//! receiver_side.register_receiver(7, &gate, 0).unwrap();
//!
//! let mut writer = PartitionWriter::new(Arc::clone(&partition)).unwrap();
//! writer.emit(0, b"hello").unwrap();
//! writer.finish().unwrap();
//! let mut got = Vec::new();
//! while gate.poll(Duration::from_secs(30), &mut |item| {
//!     if let GateItem::Record { bytes, .. } = item {
//!         got.push(bytes.to_vec());
//!     }
//! }).unwrap() != GatePoll::Finished {}
//! assert_eq!(got, vec![b"hello".to_vec()]);
//! ```

mod channels;
mod connection;
mod error;
mod frame;
mod frame_reader;
mod handshake;
mod io;
mod tls;

pub use channels::{RemoteReceiver, RemoteSender};
pub use connection::{TcpConnection, TcpConnectionStats};
pub use error::TcpError;
pub use frame::{BUFFER_HEADER_LEN, CRC_LEN, Frame, LENGTH_LEN, OperatorCounts, PROTOCOL_VERSION};
pub use handshake::{MAX_JOB_ID_LEN, Role, TcpConfig, handshake};
pub use tls::TlsSettings;
