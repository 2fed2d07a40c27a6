//! The socket side of a connection: a writer draining the frame queue and a reader that
//! checks each frame whole before acting on it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use std::io::IoSlice;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use super::channels::{Outgoing, Pending, Shared};
use super::error::TcpError;
use super::frame::{Frame, LENGTH_LEN};
use super::frame_reader::FrameReader;
use crate::network::NetworkError;
use crate::network::subpartition::Subpartition;
use crate::network::transport::BufferResponse;

/// A connection's byte stream: plain TCP or TLS over it.
pub(super) trait ByteStream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> ByteStream for T {}
/// The boxed stream a connection runs on.
pub(super) type BoxStream = Box<dyn ByteStream>;

/// Most frames the writer hands the socket in one vectored write.
const MAX_FRAMES_PER_WRITE: usize = 64;

/// The connection's I/O: reader and writer until either ends or shutdown is asked.
pub(super) async fn run(
    stream: BoxStream,
    shared: Arc<Shared>,
    rx: mpsc::UnboundedReceiver<Outgoing>,
    shutdown: oneshot::Receiver<()>,
    max_body: usize,
    heartbeat_timeout: Option<Duration>,
) {
    let (rd, wr) = tokio::io::split(stream);
    let reader = Box::pin(read_loop(rd, Arc::clone(&shared), max_body));
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

/// Sends what the tasks queued: every frame waiting (up to [`MAX_FRAMES_PER_WRITE`])
/// leaves in one vectored write, straight from the vectors the frames were encoded
/// in (no copy into a write buffer), and a receiver's credit is announced once for
/// all it granted since its last announcement.
async fn write_loop(
    mut wr: impl AsyncWrite + Unpin,
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
) {
    let mut queued = Vec::with_capacity(MAX_FRAMES_PER_WRITE);
    let mut frames = Vec::with_capacity(MAX_FRAMES_PER_WRITE);
    while rx.recv_many(&mut queued, MAX_FRAMES_PER_WRITE).await > 0 {
        frames.extend(queued.drain(..).filter_map(Outgoing::into_frame));
        let mut written = write_all_vectored(&mut wr, &frames).await;
        // Flush (TLS's records) once the queue is drained, not per write.
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
        let bytes: usize = frames.iter().map(Vec::len).sum();
        shared
            .frames_sent
            .fetch_add(frames.len() as u64, Ordering::Relaxed);
        shared.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
        frames.clear();
    }
}

/// Writes every byte of `frames`, in order, with as few system calls as the stream
/// allows (a stream without vectored writes takes one frame per call).
async fn write_all_vectored(
    wr: &mut (impl AsyncWrite + Unpin),
    frames: &[Vec<u8>],
) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = frames.iter().map(|f| IoSlice::new(f)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let n = wr.write_vectored(rest).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}

async fn read_loop(mut rd: impl AsyncRead + Unpin, shared: Arc<Shared>, max_body: usize) {
    let mut frames = FrameReader::new(max_body);
    loop {
        let next = frames
            .next(&mut rd)
            .await
            .map_err(|e| e.into_tcp(&shared.name));
        match next {
            Ok(Some(body_and_crc)) => {
                let now = shared.started.elapsed().as_millis() as u64;
                shared.last_received_ms.store(now, Ordering::Release);
                shared.frames_received.fetch_add(1, Ordering::Relaxed);
                shared
                    .bytes_received
                    .fetch_add((LENGTH_LEN + body_and_crc.len()) as u64, Ordering::Relaxed);
                if let Err(e) = dispatch(&shared, body_and_crc) {
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
        Frame::SubtaskState {
            vertex,
            subtask,
            bytes,
        } => {
            let mut states = shared.subtask_states.lock();
            // One per subtask of the job: more means the peer is broken.
            if states.len() >= MAX_SUBTASK_STATES && !states.contains_key(&(vertex, subtask)) {
                return Err(TcpError::CorruptFrame {
                    connection: shared.name.clone(),
                    reason: format!("states of more than {MAX_SUBTASK_STATES} subtasks waiting"),
                });
            }
            // Running totals: the latest replaces any not taken yet (bounded).
            states.insert((vertex, subtask), bytes.to_vec());
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

/// Most subtasks whose states may wait to be taken (a job has far fewer subtasks).
const MAX_SUBTASK_STATES: usize = 65_536;

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
