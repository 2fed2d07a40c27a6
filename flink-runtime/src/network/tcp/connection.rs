//! One TCP connection between two processes, multiplexing logical channels.
//!
//! Task threads stay as they are: a subpartition ships into a [`RemoteSender`] (the frame
//! is queued for the socket writer), an input channel announces credit through a
//! [`RemoteReceiver`]. A tokio runtime on one thread per connection does the socket
//! I/O: the writer drains the frame queue, the reader checks each frame whole and copies
//! a buffer straight into a credited segment of its input channel. The frame queue is
//! bounded by the protocol, not by a capacity: a data frame is queued only against
//! credit (bounded by the receiver's segments), a credit frame only for a freed segment.
//! The reader never waits for a consumer, so a channel without credit stalls only
//! itself: its sender simply sends nothing.

use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use super::channels::{ReceiverRoute, RemoteReceiver, RemoteSender, SenderRoute, Shared};
use super::error::TcpError;
use super::frame::{BUFFER_HEADER_LEN, CRC_LEN};
use super::handshake::{Role, TcpConfig, handshake};
use super::io::{BoxStream, run};
use crate::network::transport::ChannelTransport;
use crate::network::{CancelToken, InputGate, NetworkError, ResultPartition};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Byte and frame counters of one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TcpConnectionStats {
    /// Frames written to the socket.
    pub frames_sent: u64,
    /// Bytes written to the socket (frames whole).
    pub bytes_sent: u64,
    /// Frames read and checked.
    pub frames_received: u64,
    /// Bytes read from the socket.
    pub bytes_received: u64,
}

/// A TCP connection to one peer process, carrying any number of logical channels in
/// both directions. Both peers register the same logical channel id for the two ends of
/// a channel (phase 2 derives ids from the job graph). Dropping it closes the socket.
pub struct TcpConnection {
    shared: Arc<Shared>,
    /// The peer's process index, as it told in the handshake.
    peer_process: u32,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for TcpConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpConnection")
            .field("name", &self.shared.name)
            .finish()
    }
}

impl TcpConnection {
    /// Connect to `addr` and run the handshake.
    pub fn connect(addr: impl ToSocketAddrs, config: &TcpConfig) -> Result<Self, TcpError> {
        let io = |source| TcpError::Io {
            connection: "(connecting)".into(),
            source,
        };
        let target = addr
            .to_socket_addrs()
            .map_err(io)?
            .next()
            .ok_or_else(|| io(std::io::Error::other("address resolves to nothing")))?;
        let stream =
            TcpStream::connect_timeout(&target, config.handshake_timeout).map_err(|source| {
                TcpError::Io {
                    connection: format!("-> {target}"),
                    source,
                }
            })?;
        Self::start(stream, config, Role::Dialer)
    }

    /// Run the handshake as the dialing side on a stream connected elsewhere (a
    /// caller retrying until its peer listens).
    pub fn connect_stream(stream: TcpStream, config: &TcpConfig) -> Result<Self, TcpError> {
        Self::start(stream, config, Role::Dialer)
    }

    /// Accept one connection on `listener` and run the handshake.
    pub fn accept(listener: &TcpListener, config: &TcpConfig) -> Result<Self, TcpError> {
        let (stream, _) = listener.accept().map_err(|source| TcpError::Io {
            connection: "(accepting)".into(),
            source,
        })?;
        Self::start(stream, config, Role::Acceptor)
    }

    /// Run the handshake as the accepting side on a stream accepted elsewhere (a
    /// caller polling its listener against a deadline).
    pub fn accept_stream(stream: TcpStream, config: &TcpConfig) -> Result<Self, TcpError> {
        Self::start(stream, config, Role::Acceptor)
    }

    fn start(stream: TcpStream, config: &TcpConfig, role: Role) -> Result<Self, TcpError> {
        let name = match (stream.local_addr(), stream.peer_addr()) {
            (Ok(l), Ok(p)) => format!("{l} -> {p}"),
            _ => "(unknown)".into(),
        };
        let io = |source| TcpError::Io {
            connection: name.clone(),
            source,
        };
        stream.set_nodelay(true).map_err(io)?;
        stream.set_nonblocking(true).map_err(io)?;
        // Built here, moved to the I/O thread once the connection is established.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io)?;
        let (stream, peer_process) = runtime.block_on(establish(stream, config, role, &name))?;
        let (out, rx) = mpsc::unbounded_channel();
        let (shutdown, shutdown_rx) = oneshot::channel();
        let shared = Arc::new(Shared::new(name.clone(), out));
        let max_body = BUFFER_HEADER_LEN + config.max_buffer_size + CRC_LEN;
        let io_shared = Arc::clone(&shared);
        let heartbeat = config.heartbeat_timeout;
        let thread = std::thread::Builder::new()
            .name(format!("tcp {name}"))
            .spawn(move || {
                runtime.block_on(run(stream, io_shared, rx, shutdown_rx, max_body, heartbeat))
            })
            .map_err(io)?;
        Ok(Self {
            shared,
            peer_process,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// `local -> peer`, as errors name it.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The peer's process index, as it told in the handshake.
    pub fn peer_process(&self) -> u32 {
        self.peer_process
    }

    /// Whether every registered sending channel shipped all it had queued (or was
    /// released): once this process's tasks ended, nothing more will come.
    pub fn senders_drained(&self) -> bool {
        self.shared
            .routes
            .lock()
            .senders
            .values()
            .all(|s| s.subpartition.is_idle())
    }

    /// The operator counts the peer sent; complete once
    /// [`closed_by_peer`](Self::closed_by_peer).
    pub fn peer_counts(&self) -> Vec<super::frame::OperatorCounts> {
        self.shared.peer_counts.lock().clone()
    }

    /// Tells the peer this side is done: `counts` (this process's final operator
    /// counts, for the process that reports the whole job; empty for others), then a
    /// [`Frame::Close`](super::Frame::Close), after everything already queued.
    /// Idempotent. Call it once this process's tasks ended and
    /// [`senders_drained`](Self::senders_drained).
    pub fn close(&self, counts: &[super::frame::OperatorCounts]) {
        if !self.shared.close_sent.swap(true, Ordering::AcqRel) {
            for &c in counts {
                self.shared.send(super::frame::Frame::Counts(c));
            }
            self.shared.send(super::frame::Frame::Close);
        }
    }

    /// Sends a control message (see [`Frame::Control`](super::Frame::Control)) after
    /// everything already queued; false when the connection is gone. It must fit the
    /// connection's buffer size, else the peer fails the connection as corrupt.
    pub fn send_control(&self, message: &[u8]) -> bool {
        self.shared.send(super::frame::Frame::Control(message))
    }

    /// The control messages received since the last call, oldest first.
    pub fn take_control(&self) -> Vec<Vec<u8>> {
        self.shared.control.lock().drain(..).collect()
    }

    /// Sends the five-stage pipelines' counts (see
    /// [`Frame::PipelineCounts`](super::Frame::PipelineCounts)) after everything
    /// already queued; false when the connection is gone. At most the buffer size.
    pub fn send_pipeline_counts(&self, counts: &[u8]) -> bool {
        // Nothing may follow this side's Close.
        !self.shared.close_sent.load(Ordering::Acquire)
            && self
                .shared
                .send(super::frame::Frame::PipelineCounts(counts))
    }

    /// The latest pipeline counts received since the last call, if any.
    pub fn take_pipeline_counts(&self) -> Option<Vec<u8>> {
        self.shared.pipeline_counts.lock().take()
    }

    /// Sends the live view of subtask `subtask` of vertex `vertex` (see
    /// [`Frame::SubtaskState`](super::Frame::SubtaskState)) after everything already
    /// queued; false when the connection is gone or this side closed. At most the
    /// buffer size.
    pub fn send_subtask_state(&self, vertex: u32, subtask: u32, state: &[u8]) -> bool {
        // Nothing may follow this side's Close.
        !self.shared.close_sent.load(Ordering::Acquire)
            && self.shared.send(super::frame::Frame::SubtaskState {
                vertex,
                subtask,
                bytes: state,
            })
    }

    /// The latest subtask views received since the last call, one per subtask:
    /// `((vertex, subtask), view)`.
    pub fn take_subtask_states(&self) -> Vec<((u32, u32), Vec<u8>)> {
        self.shared.subtask_states.lock().drain().collect()
    }

    /// Whether the peer said it is done ([`close`](Self::close) on its side).
    pub fn closed_by_peer(&self) -> bool {
        self.shared.peer_closed.load(Ordering::Acquire)
    }

    /// The error that ended this connection, if any.
    pub fn failure(&self) -> Option<Arc<TcpError>> {
        self.shared.failure.lock().clone()
    }

    /// Cancel `token` when the connection fails (at once if it already has), so tasks
    /// blocked on its channels wake up; the cause is then [`failure`](Self::failure).
    pub fn cancel_on_failure(&self, token: CancelToken) {
        let failed = self.shared.failure.lock().is_some();
        if failed {
            token.cancel();
        }
        self.shared.on_failure.lock().push(token);
    }

    /// Frame and byte counters.
    pub fn stats(&self) -> TcpConnectionStats {
        let s = &self.shared;
        TcpConnectionStats {
            frames_sent: s.frames_sent.load(Ordering::Relaxed),
            bytes_sent: s.bytes_sent.load(Ordering::Relaxed),
            frames_received: s.frames_received.load(Ordering::Relaxed),
            bytes_received: s.bytes_received.load(Ordering::Relaxed),
        }
    }

    /// Ship subpartition `subpartition` of `partition` to the peer as logical channel
    /// `id`. It starts shipping when the peer's receiver announces credit.
    pub fn register_sender(
        &self,
        id: u32,
        partition: &ResultPartition,
        subpartition: usize,
    ) -> Result<(), TcpError> {
        let channel_err = |source| TcpError::Channel {
            connection: self.shared.name.clone(),
            channel: id,
            source,
        };
        let handle = partition
            .subpartition_handle(subpartition)
            .map_err(channel_err)?;
        let transport = Arc::new(RemoteSender {
            id,
            shared: Arc::downgrade(&self.shared),
        });
        let pending = {
            let mut routes = self.shared.routes.lock();
            if routes.senders.contains_key(&id) {
                return Err(TcpError::DuplicateChannel {
                    connection: self.shared.name.clone(),
                    channel: id,
                });
            }
            let weak = Arc::downgrade(&transport) as Weak<dyn ChannelTransport>;
            partition
                .connect_subpartition(subpartition, weak, id as usize)
                .map_err(channel_err)?;
            routes.senders.insert(
                id,
                SenderRoute {
                    _transport: transport,
                    subpartition: Arc::clone(&handle),
                },
            );
            routes.pending.remove(&id)
        };
        // Credit (or a cancel, or a buffer size) that raced ahead of this
        // registration applies now.
        if let Some(p) = pending {
            if let Some(size) = p.buffer_size {
                handle.announce_buffer_size(size);
            }
            if p.cancelled {
                handle.release();
            } else if p.credit > 0 {
                handle.add_credit(p.credit);
            }
        }
        Ok(())
    }

    /// Receive logical channel `id` from the peer into input channel `channel` of
    /// `gate`; announces the channel's initial credit to the peer.
    pub fn register_receiver(
        &self,
        id: u32,
        gate: &InputGate,
        channel: usize,
    ) -> Result<(), TcpError> {
        let channel_err = |source| TcpError::Channel {
            connection: self.shared.name.clone(),
            channel: id,
            source,
        };
        if gate.is_channel_connected(channel).map_err(channel_err)? {
            return Err(channel_err(NetworkError::AlreadyConnected {
                what: "input channel",
                index: channel,
            }));
        }
        {
            let mut routes = self.shared.routes.lock();
            if routes.receivers.contains_key(&id) {
                return Err(TcpError::DuplicateChannel {
                    connection: self.shared.name.clone(),
                    channel: id,
                });
            }
            routes.receivers.insert(
                id,
                ReceiverRoute {
                    gate: Arc::downgrade(gate.shared()),
                    channel,
                },
            );
        }
        let transport = Arc::new(RemoteReceiver {
            id,
            shared: Arc::downgrade(&self.shared),
            unannounced: Arc::default(),
        });
        gate.connect_channel(channel, transport)
            .map_err(channel_err)
    }
}

/// TLS (when configured), then the handshake; the stream the frames then travel on.
async fn establish(
    stream: TcpStream,
    config: &TcpConfig,
    role: Role,
    name: &str,
) -> Result<(BoxStream, u32), TcpError> {
    let io = |source| TcpError::Io {
        connection: name.to_string(),
        source,
    };
    let tcp = tokio::net::TcpStream::from_std(stream).map_err(io)?;
    let mut stream: BoxStream = match &config.tls {
        None => Box::new(tcp),
        Some(tls) => {
            let refused = |e: std::io::Error| TcpError::HandshakeRefused {
                connection: name.to_string(),
                reason: format!("TLS: {e}"),
            };
            let secured = async {
                match role {
                    Role::Dialer => TlsConnector::from(Arc::clone(&tls.client))
                        .connect(tls.server_name.clone(), tcp)
                        .await
                        .map(|s| Box::new(s) as BoxStream),
                    Role::Acceptor => TlsAcceptor::from(Arc::clone(&tls.server))
                        .accept(tcp)
                        .await
                        .map(|s| Box::new(s) as BoxStream),
                }
            };
            tokio::time::timeout(config.handshake_timeout, secured)
                .await
                .map_err(|_| refused(std::io::Error::other("TLS handshake timed out")))?
                .map_err(refused)?
        }
    };
    let peer_process = handshake(&mut stream, config, role, name).await?;
    Ok((stream, peer_process))
}

impl Drop for TcpConnection {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
