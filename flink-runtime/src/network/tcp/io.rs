//! The socket side of a connection: a writer draining the frame queue and a reader that
//! checks each frame whole before acting on it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use super::channels::{Pending, Shared};
use super::error::TcpError;
use super::frame::{CRC_LEN, Frame, LENGTH_LEN};
use crate::network::NetworkError;
use crate::network::subpartition::Subpartition;
use crate::network::transport::BufferResponse;

/// A connection's byte stream: plain TCP or TLS over it.
pub(super) trait ByteStream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> ByteStream for T {}
/// The boxed stream a connection runs on.
pub(super) type BoxStream = Box<dyn ByteStream>;

/// Bytes the reader asks the socket for at once (two full network buffers).
const READ_BUFFER: usize = 64 * 1024;

/// Bytes the writer gathers before a write (four full network buffers).
const WRITE_BUFFER: usize = 128 * 1024;

/// The connection's I/O: reader and writer until either ends or shutdown is asked.
pub(super) async fn run(
    stream: BoxStream,
    shared: Arc<Shared>,
    rx: mpsc::UnboundedReceiver<Vec<u8>>,
    shutdown: oneshot::Receiver<()>,
    max_body: usize,
    heartbeat_timeout: Option<Duration>,
) {
    let (rd, wr) = tokio::io::split(stream);
    // Buffered: a frame's length and body (and the next frames, when they are
    // there already) come in one read instead of two or more.
    let rd = tokio::io::BufReader::with_capacity(READ_BUFFER, rd);
    let reader = Box::pin(read_loop(rd, Arc::clone(&shared), max_body));
    // Buffered too: frames queued together (a burst of buffers, credit frames)
    // leave in one write; the writer flushes whenever its queue is empty.
    let wr = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, wr);
    let writer = Box::pin(write_loop(wr, Arc::clone(&shared), rx));
    let io = futures::future::select(reader, writer);
    let heartbeat = Box::pin(heartbeat_loop(Arc::clone(&shared), heartbeat_timeout));
    let watched = futures::future::select(io, heartbeat);
    futures::future::select(watched, shutdown).await;
}

/// Sends a heartbeat every fifth of `timeout` and fails the connection when nothing
/// arrived for `timeout`; ends once both sides closed (or never starts without a
/// timeout). The reader never waits for a consumer, so a peer's heartbeats arrive
/// even while its data channels are stalled by back pressure.
async fn heartbeat_loop(shared: Arc<Shared>, timeout: Option<Duration>) {
    let Some(timeout) = timeout else {
        return std::future::pending().await;
    };
    let mut ticks = tokio::time::interval(timeout / 5);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if shared.closed_both_ways() || shared.failure.lock().is_some() {
            return std::future::pending().await;
        }
        let silent = shared
            .started
            .elapsed()
            .saturating_sub(Duration::from_millis(
                shared.last_received_ms.load(Ordering::Acquire),
            ));
        if silent > timeout {
            let connection = shared.name.clone();
            shared.fail(TcpError::HeartbeatTimeout {
                connection,
                timeout,
            });
            return std::future::pending().await;
        }
        shared.send(Frame::Heartbeat);
    }
}

async fn write_loop(
    mut wr: impl AsyncWrite + Unpin,
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
) {
    while let Some(frame) = rx.recv().await {
        let mut written = wr.write_all(&frame).await;
        // Flush (the buffer, and TLS's records) once the queue is drained, not per
        // frame.
        if written.is_ok() && rx.is_empty() {
            written = wr.flush().await;
        }
        if let Err(source) = written {
            // Once both sides closed, the peer may be gone: late credit is moot.
            if !shared.closed_both_ways() {
                shared.fail(TcpError::from_io(shared.name.clone(), source));
            }
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
                let now = shared.started.elapsed().as_millis() as u64;
                shared.last_received_ms.store(now, Ordering::Release);
                shared.frames_received.fetch_add(1, Ordering::Relaxed);
                shared
                    .bytes_received
                    .fetch_add((LENGTH_LEN + len) as u64, Ordering::Relaxed);
                if let Err(e) = dispatch(&shared, &body[..len]) {
                    shared.fail(e);
                    return;
                }
            }
            // After the peer's Close frame its socket closing is orderly.
            Ok(None) | Err(_) if shared.peer_closed.load(Ordering::Acquire) => return,
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
    let io = |source| TcpError::from_io(shared.name.clone(), source);
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
            let note = |p: &mut Pending| p.credit = p.credit.saturating_add(credit as usize);
            if let Some(sub) = sender_or_pending(shared, channel, note)? {
                sub.add_credit(credit as usize);
            }
            Ok(())
        }
        Frame::BufferSize { channel, size } => {
            let size = size as usize;
            if let Some(sub) = sender_or_pending(shared, channel, |p| p.buffer_size = Some(size))? {
                sub.announce_buffer_size(size);
            }
            Ok(())
        }
        Frame::Cancel { channel } => {
            if let Some(sub) = sender_or_pending(shared, channel, |p| p.cancelled = true)? {
                sub.release();
            }
            Ok(())
        }
        Frame::Counts(counts) => {
            let mut all = shared.peer_counts.lock();
            // One per operator of the job: more means the peer is broken.
            if all.len() >= MAX_PEER_COUNTS {
                return Err(TcpError::CorruptFrame {
                    connection: shared.name.clone(),
                    reason: format!("more than {MAX_PEER_COUNTS} operator counts"),
                });
            }
            all.push(counts);
            Ok(())
        }
        Frame::Heartbeat => Ok(()),
        Frame::Control(bytes) => {
            let mut queue = shared.control.lock();
            // The receiving process takes them every few ms; this many waiting means
            // the peer is broken (or this process hangs).
            if queue.len() >= MAX_QUEUED_CONTROL {
                return Err(TcpError::CorruptFrame {
                    connection: shared.name.clone(),
                    reason: format!("more than {MAX_QUEUED_CONTROL} control messages waiting"),
                });
            }
            queue.push_back(bytes.to_vec());
            Ok(())
        }
        Frame::PipelineCounts(bytes) => {
            // Running totals: the latest replaces any not taken yet (bounded).
            *shared.pipeline_counts.lock() = Some(bytes.to_vec());
            Ok(())
        }
        Frame::Close => {
            tracing::debug!(connection = %shared.name, "peer closed its side");
            shared.peer_closed.store(true, Ordering::Release);
            Ok(())
        }
    }
}

/// Most operator counts a peer may send (a job has far fewer operators).
const MAX_PEER_COUNTS: usize = 65_536;

/// Most control messages waiting to be taken before the connection fails.
const MAX_QUEUED_CONTROL: usize = 65_536;

/// Most logical channels that may hold credit or a cancel before their sender is
/// registered; beyond it the peer is not following the protocol.
const MAX_PENDING_CHANNELS: usize = 65_536;

/// The registered subpartition of `channel`, or `None` after noting the message as
/// pending for a sender not registered yet (at most [`MAX_PENDING_CHANNELS`] entries).
fn sender_or_pending(
    shared: &Shared,
    channel: u32,
    note: impl FnOnce(&mut Pending),
) -> Result<Option<Arc<Subpartition>>, TcpError> {
    let mut routes = shared.routes.lock();
    if let Some(s) = routes.senders.get(&channel) {
        return Ok(Some(Arc::clone(&s.subpartition)));
    }
    if routes.pending.len() >= MAX_PENDING_CHANNELS && !routes.pending.contains_key(&channel) {
        return Err(TcpError::CorruptFrame {
            connection: shared.name.clone(),
            reason: format!(
                "credit for more than {MAX_PENDING_CHANNELS} unregistered logical channels"
            ),
        });
    }
    note(routes.pending.entry(channel).or_default());
    Ok(None)
}
