//! The logical channels of a connection: their routes and the two transport ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

pub(super) struct Shared {
    pub(super) name: String,
    pub(super) out: mpsc::UnboundedSender<Vec<u8>>,
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
}

impl Shared {
    /// Both sides sent [`Frame::Close`]: the connection may end without a failure.
    pub(super) fn closed_both_ways(&self) -> bool {
        self.peer_closed.load(Ordering::Acquire) && self.close_sent.load(Ordering::Acquire)
    }

    pub(super) fn send(&self, frame: Frame<'_>) -> bool {
        self.out.send(frame.encode()).is_ok()
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
