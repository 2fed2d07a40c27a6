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

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;

use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use super::error::TcpError;
use super::frame::{BUFFER_HEADER_LEN, CRC_LEN, Frame, LENGTH_LEN};
use super::handshake::{Role, TcpConfig, handshake};
use crate::network::input_gate::GateShared;
use crate::network::subpartition::Subpartition;
use crate::network::transport::{AddCredit, BufferResponse, ChannelTransport, CreditTransport};
use crate::network::{CancelToken, InputGate, NetworkError, ResultPartition};

/// Byte and frame counters of one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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

/// Credit or a cancel that arrived before its sender was registered.
#[derive(Default)]
struct Pending {
    credit: usize,
    cancelled: bool,
}

struct SenderRoute {
    /// Keeps the transport alive: the subpartition holds it weakly.
    _transport: Arc<RemoteSender>,
    subpartition: Arc<Subpartition>,
}

struct ReceiverRoute {
    gate: Weak<GateShared>,
    channel: usize,
}

#[derive(Default)]
struct Routes {
    senders: HashMap<u32, SenderRoute>,
    receivers: HashMap<u32, ReceiverRoute>,
    pending: HashMap<u32, Pending>,
}

struct Shared {
    name: String,
    out: mpsc::UnboundedSender<Vec<u8>>,
    routes: Mutex<Routes>,
    failure: Mutex<Option<Arc<TcpError>>>,
    on_failure: Mutex<Vec<CancelToken>>,
    frames_sent: AtomicU64,
    bytes_sent: AtomicU64,
    frames_received: AtomicU64,
    bytes_received: AtomicU64,
}

impl Shared {
    fn send(&self, frame: Frame<'_>) -> bool {
        self.out.send(frame.encode()).is_ok()
    }

    /// Record the first failure, cancel the tasks that depend on this connection and
    /// release its sending subpartitions (their writers then fail instead of waiting
    /// for credit that will never come).
    fn fail(&self, error: TcpError) {
        tracing::error!(connection = %self.name, %error, "TCP connection failed");
        {
            let mut f = self.failure.lock();
            if f.is_none() {
                *f = Some(Arc::new(error));
            }
        }
        for token in self.on_failure.lock().iter() {
            token.cancel();
        }
        let senders: Vec<Arc<Subpartition>> = self
            .routes
            .lock()
            .senders
            .values()
            .map(|s| Arc::clone(&s.subpartition))
            .collect();
        for s in senders {
            s.release();
        }
    }
}

/// Sender side of one logical channel: what a subpartition ships through.
pub struct RemoteSender {
    id: u32,
    shared: Weak<Shared>,
}

impl ChannelTransport for RemoteSender {
    fn send_buffer(&self, msg: BufferResponse<'_>) -> Result<(), NetworkError> {
        let released = NetworkError::ChannelReleased {
            channel: msg.channel,
        };
        let shared = self.shared.upgrade().ok_or(released.clone())?;
        if shared.failure.lock().is_some() {
            return Err(released);
        }
        let frame = Frame::Buffer {
            channel: self.id,
            backlog: u32::try_from(msg.backlog).unwrap_or(u32::MAX),
            kind: msg.kind,
            bytes: msg.bytes,
        };
        if shared.send(frame) {
            Ok(())
        } else {
            Err(released)
        }
    }
}

/// Receiver side of one logical channel: how an input channel talks back to its sender.
pub struct RemoteReceiver {
    id: u32,
    shared: Weak<Shared>,
}

impl CreditTransport for RemoteReceiver {
    fn add_credit(&self, msg: AddCredit) {
        if let Some(shared) = self.shared.upgrade() {
            let credit = u32::try_from(msg.credit).unwrap_or(u32::MAX);
            shared.send(Frame::Credit {
                channel: self.id,
                credit,
            });
        }
    }

    fn cancel_partition_request(&self, _channel: usize) {
        if let Some(shared) = self.shared.upgrade() {
            shared.send(Frame::Cancel { channel: self.id });
        }
    }
}

/// A TCP connection to one peer process, carrying any number of logical channels in
/// both directions. Both peers register the same logical channel id for the two ends of
/// a channel (phase 2 derives ids from the job graph). Dropping it closes the socket.
pub struct TcpConnection {
    shared: Arc<Shared>,
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

    /// Accept one connection on `listener` and run the handshake.
    pub fn accept(listener: &TcpListener, config: &TcpConfig) -> Result<Self, TcpError> {
        let (stream, _) = listener.accept().map_err(|source| TcpError::Io {
            connection: "(accepting)".into(),
            source,
        })?;
        Self::start(stream, config, Role::Acceptor)
    }

    fn start(mut stream: TcpStream, config: &TcpConfig, role: Role) -> Result<Self, TcpError> {
        let name = match (stream.local_addr(), stream.peer_addr()) {
            (Ok(l), Ok(p)) => format!("{l} -> {p}"),
            _ => "(unknown)".into(),
        };
        let io = |source| TcpError::Io {
            connection: name.clone(),
            source,
        };
        handshake(&mut stream, config, role, &name)?;
        stream.set_nodelay(true).map_err(io)?;
        stream.set_nonblocking(true).map_err(io)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(io)?;
        let (out, rx) = mpsc::unbounded_channel();
        let (shutdown, shutdown_rx) = oneshot::channel();
        let shared = Arc::new(Shared {
            name: name.clone(),
            out,
            routes: Mutex::new(Routes::default()),
            failure: Mutex::new(None),
            on_failure: Mutex::new(Vec::new()),
            frames_sent: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            frames_received: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
        });
        let max_body = BUFFER_HEADER_LEN + config.max_buffer_size + CRC_LEN;
        let io_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("tcp {name}"))
            .spawn(move || runtime.block_on(run(stream, io_shared, rx, shutdown_rx, max_body)))
            .map_err(io)?;
        Ok(Self {
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// `local -> peer`, as errors name it.
    pub fn name(&self) -> &str {
        &self.shared.name
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
        // Credit (or a cancel) that raced ahead of this registration applies now.
        if let Some(p) = pending {
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
        });
        gate.connect_channel(channel, transport)
            .map_err(channel_err)
    }
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

/// The connection's I/O: reader and writer until either ends or shutdown is asked.
async fn run(
    stream: TcpStream,
    shared: Arc<Shared>,
    rx: mpsc::UnboundedReceiver<Vec<u8>>,
    shutdown: oneshot::Receiver<()>,
    max_body: usize,
) {
    let stream = match tokio::net::TcpStream::from_std(stream) {
        Ok(s) => s,
        Err(source) => {
            let connection = shared.name.clone();
            shared.fail(TcpError::Io { connection, source });
            return;
        }
    };
    let (rd, wr) = stream.into_split();
    let reader = Box::pin(read_loop(rd, Arc::clone(&shared), max_body));
    let writer = Box::pin(write_loop(wr, Arc::clone(&shared), rx));
    let io = futures::future::select(reader, writer);
    futures::future::select(io, shutdown).await;
}

async fn write_loop(
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
) {
    while let Some(frame) = rx.recv().await {
        if let Err(source) = wr.write_all(&frame).await {
            let connection = shared.name.clone();
            shared.fail(TcpError::Io { connection, source });
            return;
        }
        shared.frames_sent.fetch_add(1, Ordering::Relaxed);
        shared
            .bytes_sent
            .fetch_add(frame.len() as u64, Ordering::Relaxed);
    }
}

/// Reads until `buf` is full or EOF; returns how many bytes were read.
async fn read_full(rd: &mut (impl AsyncRead + Unpin), buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let got = rd.read(&mut buf[n..]).await?;
        if got == 0 {
            break;
        }
        n += got;
    }
    Ok(n)
}

async fn read_loop(mut rd: impl AsyncRead + Unpin, shared: Arc<Shared>, max_body: usize) {
    let mut body = vec![0u8; max_body];
    loop {
        match read_frame(&mut rd, &shared, &mut body, max_body).await {
            Ok(Some(len)) => {
                shared.frames_received.fetch_add(1, Ordering::Relaxed);
                shared
                    .bytes_received
                    .fetch_add((LENGTH_LEN + len) as u64, Ordering::Relaxed);
                if let Err(e) = dispatch(&shared, &body[..len]) {
                    shared.fail(e);
                    return;
                }
            }
            Ok(None) => {
                let connection = shared.name.clone();
                shared.fail(TcpError::PeerClosed { connection });
                return;
            }
            Err(e) => {
                shared.fail(e);
                return;
            }
        }
    }
}

/// Read one frame's body (after its length) into `body`; `None` on EOF between frames.
async fn read_frame(
    rd: &mut (impl AsyncRead + Unpin),
    shared: &Shared,
    body: &mut [u8],
    max_body: usize,
) -> Result<Option<usize>, TcpError> {
    let io = |source| TcpError::Io {
        connection: shared.name.clone(),
        source,
    };
    let truncated = |reason| TcpError::TruncatedFrame {
        connection: shared.name.clone(),
        reason,
    };
    let mut len = [0u8; LENGTH_LEN];
    let got = read_full(rd, &mut len).await.map_err(io)?;
    if got == 0 {
        return Ok(None);
    }
    if got < LENGTH_LEN {
        return Err(truncated(format!(
            "connection closed after {got} of {LENGTH_LEN} length bytes"
        )));
    }
    let len = u32::from_be_bytes(len) as usize;
    if !(1 + CRC_LEN..=max_body).contains(&len) {
        return Err(TcpError::CorruptFrame {
            connection: shared.name.clone(),
            reason: format!("frame length {len} outside 5..={max_body}"),
        });
    }
    let got = read_full(rd, &mut body[..len]).await.map_err(io)?;
    if got < len {
        return Err(truncated(format!(
            "connection closed after {got} of {len} frame bytes"
        )));
    }
    Ok(Some(len))
}

/// Act on one checked frame.
fn dispatch(shared: &Shared, body_and_crc: &[u8]) -> Result<(), TcpError> {
    let frame = Frame::decode(body_and_crc).map_err(|reason| TcpError::CorruptFrame {
        connection: shared.name.clone(),
        reason,
    })?;
    let channel_err = |channel, source| TcpError::Channel {
        connection: shared.name.clone(),
        channel,
        source,
    };
    match frame {
        Frame::Buffer {
            channel,
            backlog,
            kind,
            bytes,
        } => {
            let route = {
                let routes = shared.routes.lock();
                routes
                    .receivers
                    .get(&channel)
                    .map(|r| (r.gate.clone(), r.channel))
            };
            let Some((gate, index)) = route else {
                // Only a registered receiver announces credit, so data for an unknown
                // channel is a protocol violation.
                return Err(channel_err(
                    channel,
                    NetworkError::CreditViolation {
                        channel: channel as usize,
                    },
                ));
            };
            // A dropped gate released its channels; late buffers are discarded, as
            // in-process.
            let Some(gate) = gate.upgrade() else {
                return Ok(());
            };
            let msg = BufferResponse {
                channel: index,
                backlog: backlog as usize,
                kind,
                bytes,
            };
            match gate.channels[index].on_buffer(msg, &gate) {
                Ok(()) | Err(NetworkError::ChannelReleased { .. }) => Ok(()),
                Err(e) => Err(channel_err(channel, e)),
            }
        }
        Frame::Credit { channel, credit } => {
            if let Some(sub) = sender_or_pending(shared, channel, |p| p.credit += credit as usize) {
                sub.add_credit(credit as usize);
            }
            Ok(())
        }
        Frame::Cancel { channel } => {
            if let Some(sub) = sender_or_pending(shared, channel, |p| p.cancelled = true) {
                sub.release();
            }
            Ok(())
        }
    }
}

/// The registered subpartition of `channel`, or `None` after noting the message as
/// pending for a sender not registered yet (bounded: one entry per logical channel).
fn sender_or_pending(
    shared: &Shared,
    channel: u32,
    note: impl FnOnce(&mut Pending),
) -> Option<Arc<Subpartition>> {
    let mut routes = shared.routes.lock();
    if let Some(s) = routes.senders.get(&channel) {
        return Some(Arc::clone(&s.subpartition));
    }
    note(routes.pending.entry(channel).or_default());
    None
}
