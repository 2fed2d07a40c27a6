//! The logical channels of a connection: their routes and the two transport ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::error::TcpError;
use super::frame::Frame;
use crate::network::input_gate::GateShared;
use crate::network::subpartition::Subpartition;
use crate::network::transport::{AddCredit, BufferResponse, ChannelTransport, CreditTransport};
use crate::network::{CancelToken, NetworkError};

/// Credit or a cancel that arrived before its sender was registered.
#[derive(Default)]
pub(super) struct Pending {
    pub(super) credit: usize,
    pub(super) cancelled: bool,
    /// The last buffer size announced (buffer debloating).
    pub(super) buffer_size: Option<usize>,
}

pub(super) struct SenderRoute {
    /// Keeps the transport alive: the subpartition holds it weakly.
    pub(super) _transport: Arc<RemoteSender>,
    pub(super) subpartition: Arc<Subpartition>,
}

pub(super) struct ReceiverRoute {
    pub(super) gate: Weak<GateShared>,
    pub(super) channel: usize,
}

#[derive(Default)]
pub(super) struct Routes {
    pub(super) senders: HashMap<u32, SenderRoute>,
    pub(super) receivers: HashMap<u32, ReceiverRoute>,
    pub(super) pending: HashMap<u32, Pending>,
}

/// What the connection's writer sends next.
pub(super) enum Outgoing {
    /// An encoded frame.
    Frame(Vec<u8>),
    /// A receiver granted credit: the writer announces all the channel granted and did
    /// not announce yet in one credit frame (so a burst of freed buffers costs one
    /// frame, not one each).
    Credit {
        /// Logical channel id.
        channel: u32,
        /// Credit granted and not announced yet; the writer takes it all.
        unannounced: Arc<AtomicUsize>,
    },
}

impl Outgoing {
    /// The encoded frame to send, if there is still something to announce.
    pub(super) fn into_frame(self) -> Option<Vec<u8>> {
        match self {
            Outgoing::Frame(bytes) => Some(bytes),
            Outgoing::Credit {
                channel,
                unannounced,
            } => match unannounced.swap(0, Ordering::AcqRel) {
                0 => None,
                credit => {
                    let credit = u32::try_from(credit).unwrap_or(u32::MAX);
                    Some(Frame::Credit { channel, credit }.encode())
                }
            },
        }
    }
}

pub(super) struct Shared {
    pub(super) name: String,
    /// The writer's queue. Unbounded, yet bounded by the protocol: data frames by the
    /// receiver's credit, credit by one entry per channel, the rest are a few per
    /// checkpoint or per heartbeat.
    pub(super) out: mpsc::UnboundedSender<Outgoing>,
    pub(super) routes: Mutex<Routes>,
    pub(super) failure: Mutex<Option<Arc<TcpError>>>,
    pub(super) on_failure: Mutex<Vec<CancelToken>>,
    pub(super) frames_sent: AtomicU64,
    pub(super) bytes_sent: AtomicU64,
    pub(super) frames_received: AtomicU64,
    pub(super) bytes_received: AtomicU64,
    /// The peer sent [`Frame::Close`]: its end of the socket closing is orderly.
    pub(super) peer_closed: AtomicBool,
    /// This side sent [`Frame::Close`].
    pub(super) close_sent: AtomicBool,
    /// When the connection started; `last_received_ms` counts from it.
    pub(super) started: std::time::Instant,
    /// Milliseconds after `started` when the last frame arrived.
    pub(super) last_received_ms: AtomicU64,
    /// The operator counts the peer sent (before its Close).
    pub(super) peer_counts: Mutex<Vec<super::frame::OperatorCounts>>,
    /// Control messages received and not taken yet, oldest first.
    pub(super) control: Mutex<std::collections::VecDeque<Vec<u8>>>,
    /// The latest pipeline counts received and not taken yet.
    pub(super) pipeline_counts: Mutex<Option<Vec<u8>>>,
    /// The latest view of each of the peer's subtasks (by vertex and subtask) not
    /// taken yet: each replaces the last of its subtask, so it holds at most one per
    /// subtask of the job.
    pub(super) subtask_states: Mutex<std::collections::HashMap<(u32, u32), Vec<u8>>>,
}

impl Shared {
    /// The state of a new connection named `name` whose writer takes from `out`.
    pub(super) fn new(name: String, out: mpsc::UnboundedSender<Outgoing>) -> Self {
        Shared {
            name,
            out,
            routes: Mutex::new(Routes::default()),
            failure: Mutex::new(None),
            on_failure: Mutex::new(Vec::new()),
            frames_sent: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            frames_received: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            peer_closed: AtomicBool::new(false),
            close_sent: AtomicBool::new(false),
            peer_counts: Mutex::new(Vec::new()),
            control: Mutex::new(std::collections::VecDeque::new()),
            pipeline_counts: Mutex::new(None),
            subtask_states: Mutex::new(std::collections::HashMap::new()),
            started: std::time::Instant::now(),
            last_received_ms: AtomicU64::new(0),
        }
    }

    /// Both sides sent [`Frame::Close`]: the connection may end without a failure.
    pub(super) fn closed_both_ways(&self) -> bool {
        self.peer_closed.load(Ordering::Acquire) && self.close_sent.load(Ordering::Acquire)
    }

    pub(super) fn send(&self, frame: Frame<'_>) -> bool {
        self.out.send(Outgoing::Frame(frame.encode())).is_ok()
    }

    /// Record the first failure, cancel the tasks that depend on this connection and
    /// release its sending subpartitions (their writers then fail instead of waiting
    /// for credit that will never come).
    pub(super) fn fail(&self, error: TcpError) {
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
    pub(super) id: u32,
    pub(super) shared: Weak<Shared>,
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
    pub(super) id: u32,
    pub(super) shared: Weak<Shared>,
    /// Credit granted and not announced yet (see [`Outgoing::Credit`]).
    pub(super) unannounced: Arc<AtomicUsize>,
}

impl CreditTransport for RemoteReceiver {
    fn add_credit(&self, msg: AddCredit) {
        if msg.credit == 0 {
            return;
        }
        // Only the grant that finds nothing unannounced queues an announcement; later
        // grants join it until the writer takes them.
        if self.unannounced.fetch_add(msg.credit, Ordering::AcqRel) > 0 {
            return;
        }
        if let Some(shared) = self.shared.upgrade() {
            let _ = shared.out.send(Outgoing::Credit {
                channel: self.id,
                unannounced: Arc::clone(&self.unannounced),
            });
        }
    }

    fn cancel_partition_request(&self, _channel: usize) {
        if let Some(shared) = self.shared.upgrade() {
            shared.send(Frame::Cancel { channel: self.id });
        }
    }

    fn announce_buffer_size(&self, _channel: usize, size: usize) {
        if let Some(shared) = self.shared.upgrade() {
            let size = u32::try_from(size).unwrap_or(u32::MAX);
            shared.send(Frame::BufferSize {
                channel: self.id,
                size,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credit_of(frame: &[u8]) -> (u32, u32) {
        match Frame::decode(&frame[super::super::frame::LENGTH_LEN..]) {
            Ok(Frame::Credit { channel, credit }) => (channel, credit),
            other => panic!("not a credit frame: {other:?}"),
        }
    }

    #[test]
    fn credit_granted_before_the_writer_looks_goes_out_in_one_frame() {
        let (out, mut rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::new("a -> b".into(), out));
        let receiver = RemoteReceiver {
            id: 7,
            shared: Arc::downgrade(&shared),
            unannounced: Arc::default(),
        };
        for credit in [1, 2, 0, 3] {
            receiver.add_credit(AddCredit { channel: 0, credit });
        }
        let queued = rx.try_recv().expect("one announcement queued");
        assert!(rx.try_recv().is_err(), "only one while it waits");
        let frame = queued.into_frame().expect("credit to announce");
        assert_eq!(credit_of(&frame), (7, 6));

        // Once the writer took it, the next grant queues a new announcement.
        receiver.add_credit(AddCredit {
            channel: 0,
            credit: 4,
        });
        let frame = rx.try_recv().expect("queued again").into_frame();
        assert_eq!(credit_of(&frame.expect("credit")), (7, 4));
        assert!(rx.try_recv().is_err());
    }
}
