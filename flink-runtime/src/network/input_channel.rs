//! Receiver side of one channel: its segments, received buffers and credit logic.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::buffer::{Buffer, BufferKind};
use super::error::NetworkError;
use super::event::Event;
use super::input_gate::GateShared;
use super::transport::{AddCredit, BufferResponse, CreditTransport};
use crate::checkpoint::channel_state::ChannelBuffer;

/// A receiver-owned memory segment; `floating` ones belong to the gate's floating pool.
pub(crate) struct Segment {
    pub(crate) data: Box<[u8]>,
    pub(crate) floating: bool,
}

impl Segment {
    pub(crate) fn new(size: usize, floating: bool) -> Self {
        Self {
            data: vec![0u8; size].into_boxed_slice(),
            floating,
        }
    }
}

/// A buffer received from the sender, waiting to be consumed.
pub(crate) struct Received {
    pub(crate) segment: Segment,
    pub(crate) len: usize,
    pub(crate) kind: BufferKind,
}

/// What [`InputChannel::take_received`] hands out next.
pub(crate) enum Taken {
    /// The oldest received buffer.
    Buffer(Received),
    /// A priority event (an unaligned barrier), ahead of the buffers received before
    /// it, with copies of those buffers (they stay queued and are consumed after it).
    Priority {
        event: Vec<u8>,
        overtaken: Vec<ChannelBuffer>,
    },
}

struct ChannelState {
    /// Segments available for incoming buffers; all of them are announced credit.
    free: Vec<Segment>,
    received: VecDeque<Received>,
    /// Priority events (encoded), each with how many buffers of `received` arrived
    /// before it; they hold no segment and took no credit.
    priority: VecDeque<(Vec<u8>, usize)>,
    /// Aligned barriers (id, trigger timestamp) queued in `received`, oldest first:
    /// announced to the gate, which may pull them ahead at the aligned-checkpoint
    /// timeout. Kept only when the gate announces barriers.
    announced: VecDeque<(u64, i64)>,
    /// Last backlog announced by the sender.
    backlog: usize,
    queued_in_gate: bool,
    waiting_floating: bool,
    released: bool,
    transport: Option<Arc<dyn CreditTransport>>,
}

/// One input channel of a gate.
///
/// Credit invariant: the sender's credit never exceeds `free.len()`, because segments are
/// added to `free` before the matching credit is announced and a shipped buffer consumes
/// credit before it consumes a segment. Lock order: channel lock, then (optionally) the
/// floating-pool lock or the gate availability lock; never another channel's lock.
pub(crate) struct InputChannel {
    index: usize,
    state: Mutex<ChannelState>,
    credit_announced: AtomicU64,
    buffers_received: AtomicU64,
    violations: AtomicU64,
}

impl InputChannel {
    pub(crate) fn new(
        index: usize,
        exclusive: usize,
        floating: usize,
        segment_size: usize,
    ) -> Self {
        let mut free = Vec::with_capacity(exclusive + floating);
        free.extend((0..exclusive).map(|_| Segment::new(segment_size, false)));
        Self {
            index,
            state: Mutex::new(ChannelState {
                free,
                received: VecDeque::with_capacity(exclusive + floating),
                priority: VecDeque::new(),
                announced: VecDeque::new(),
                backlog: 0,
                queued_in_gate: false,
                waiting_floating: false,
                released: false,
                transport: None,
            }),
            credit_announced: AtomicU64::new(0),
            buffers_received: AtomicU64::new(0),
            violations: AtomicU64::new(0),
        }
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.state.lock().transport.is_some()
    }

    /// Attach the sender and announce the initial credit (the free exclusive segments).
    pub(crate) fn connect(&self, transport: Arc<dyn CreditTransport>) -> Result<(), NetworkError> {
        let mut st = self.state.lock();
        if st.transport.is_some() {
            return Err(NetworkError::AlreadyConnected {
                what: "input channel",
                index: self.index,
            });
        }
        st.transport = Some(Arc::clone(&transport));
        let credit = st.free.len();
        drop(st);
        self.announce(Some(transport), credit);
        Ok(())
    }

    /// A buffer arrived from the sender (called on the shipping thread).
    pub(crate) fn on_buffer(
        &self,
        msg: BufferResponse<'_>,
        gate: &GateShared,
    ) -> Result<(), NetworkError> {
        if msg.kind == BufferKind::Event && Event::is_priority(msg.bytes) {
            return self.receive_priority(msg.bytes, gate);
        }
        self.receive(msg.backlog, msg.kind, msg.bytes.len(), gate, |segment| {
            segment.data[..msg.bytes.len()].copy_from_slice(msg.bytes)
        })
    }

    /// A buffer arrived from a sender in this process: the sender's segment is taken
    /// in exchange for the free one the credit stood for (no copy) when their sizes
    /// match; the sender's buffer returns the exchanged segment to its own pool.
    pub(crate) fn on_local_buffer(
        &self,
        backlog: usize,
        buffer: &mut Buffer,
        gate: &GateShared,
    ) -> Result<(), NetworkError> {
        let len = buffer.len();
        self.receive(backlog, buffer.kind(), len, gate, |segment| {
            if !buffer.swap_segment(&mut segment.data) {
                segment.data[..len].copy_from_slice(buffer.as_slice());
            }
        })
    }

    /// Takes a credited free segment, fills it with `fill`, and queues it for the gate.
    fn receive(
        &self,
        backlog: usize,
        kind: BufferKind,
        len: usize,
        gate: &GateShared,
        fill: impl FnOnce(&mut Segment),
    ) -> Result<(), NetworkError> {
        let mut st = self.state.lock();
        if st.released {
            return Err(NetworkError::ChannelReleased {
                channel: self.index,
            });
        }
        let Some(mut segment) = st.free.pop() else {
            self.violations.fetch_add(1, Ordering::Relaxed);
            tracing::error!(channel = self.index, "buffer received without credit");
            return Err(NetworkError::CreditViolation {
                channel: self.index,
            });
        };
        if len > segment.data.len() {
            st.free.push(segment);
            return Err(NetworkError::CorruptStream {
                channel: self.index,
                reason: format!("buffer of {len} bytes exceeds segment size"),
            });
        }
        fill(&mut segment);
        // Per data buffer one comparison of its kind; the rest per event.
        if kind == BufferKind::Event
            && gate.announces()
            && let Some(barrier) = Event::aligned_barrier(&segment.data[..len])
        {
            st.announced.push_back(barrier);
            gate.announcements_changed();
        }
        st.received.push_back(Received { segment, len, kind });
        self.buffers_received.fetch_add(1, Ordering::Relaxed);
        gate.segment_taken(len);
        st.backlog = backlog;
        if !st.queued_in_gate {
            st.queued_in_gate = true;
            gate.notify_available(self.index);
        }
        self.grant_floating(st, gate);
        Ok(())
    }

    /// A priority event arrived: it is queued ahead of the received buffers,
    /// without a segment (the sender shipped it without credit).
    fn receive_priority(&self, event: &[u8], gate: &GateShared) -> Result<(), NetworkError> {
        let mut st = self.state.lock();
        if st.released {
            return Err(NetworkError::ChannelReleased {
                channel: self.index,
            });
        }
        let before = st.received.len();
        st.priority.push_back((event.to_vec(), before));
        if !st.queued_in_gate {
            st.queued_in_gate = true;
            gate.notify_available(self.index);
        }
        Ok(())
    }

    /// Pop the oldest priority event, else the oldest received buffer; the flag tells
    /// whether more remain queued (the channel then stays registered as available).
    pub(crate) fn take_received(&self, gate: &GateShared) -> Option<(Taken, bool)> {
        let mut st = self.state.lock();
        let taken = match st.priority.pop_front() {
            // No buffer was consumed since it arrived (it comes first), so the
            // first `before` buffers are exactly those that arrived ahead of it.
            Some((event, before)) => Taken::Priority {
                event,
                overtaken: st
                    .received
                    .iter()
                    .take(before)
                    .map(|r| ChannelBuffer::new(r.kind, &r.segment.data[..r.len]))
                    .collect(),
            },
            None => {
                let received = st.received.pop_front()?;
                if !st.announced.is_empty() && received.kind == BufferKind::Event {
                    Self::unannounce_taken(&mut st, &received, gate);
                }
                Taken::Buffer(received)
            }
        };
        let more = !st.received.is_empty() || !st.priority.is_empty();
        if !more {
            st.queued_in_gate = false;
        }
        Some((taken, more))
    }

    /// An event buffer left the queue in order: if it is the oldest announced
    /// barrier, that barrier is no longer announced.
    fn unannounce_taken(st: &mut ChannelState, received: &Received, gate: &GateShared) {
        let bytes = &received.segment.data[..received.len];
        if Event::aligned_barrier(bytes).is_some_and(|b| st.announced.front() == Some(&b)) {
            st.announced.pop_front();
            gate.announcements_changed();
        }
    }

    /// The oldest aligned barrier (id, trigger timestamp) queued in this channel.
    pub(crate) fn oldest_announced(&self) -> Option<(u64, i64)> {
        self.state.lock().announced.front().copied()
    }

    /// Pulls the queued aligned barrier of checkpoint `id` ahead of the buffers
    /// received before it, as the unaligned barrier a sender would have sent: it
    /// becomes a priority event that overtakes them (they stay queued; copies of
    /// them go with it, see [`take_received`](Self::take_received)). Returns the
    /// barrier's segment, which the caller recycles (it held no data), or `None`
    /// when no such barrier is queued.
    pub(crate) fn convert_announced(&self, id: u64, gate: &GateShared) -> Option<Segment> {
        let mut st = self.state.lock();
        let at = st.announced.iter().position(|&(b, _)| b == id)?;
        let (_, timestamp) = st.announced.remove(at).expect("found");
        gate.announcements_changed();
        let pos = st.received.iter().position(|r| {
            r.kind == BufferKind::Event
                && Event::aligned_barrier(&r.segment.data[..r.len]).is_some_and(|(b, _)| b == id)
        })?;
        let barrier = st.received.remove(pos).expect("found");
        // Priority events that arrived after the barrier go after it, and counted
        // it among the buffers before them.
        let slot = st.priority.partition_point(|&(_, before)| before <= pos);
        for (_, before) in st.priority.iter_mut().skip(slot) {
            *before -= 1;
        }
        let event = Event::UnalignedBarrier { id, timestamp }.encode();
        st.priority.insert(slot, (event, pos));
        Some(barrier.segment)
    }

    /// The consumer is done with an exclusive segment: it becomes credit again, unless the
    /// channel holds a surplus floating segment, which is then given back instead (credit
    /// unchanged: the exclusive segment takes its place). Returns that floating segment.
    pub(crate) fn recycle_exclusive(&self, segment: Segment) -> Option<Segment> {
        let mut st = self.state.lock();
        if st.released {
            return None;
        }
        if st.free.len() >= st.backlog
            && let Some(pos) = st.free.iter().position(|s| s.floating)
        {
            let floating = st.free.swap_remove(pos);
            st.free.push(segment);
            return Some(floating);
        }
        st.free.push(segment);
        let transport = st.transport.clone();
        drop(st);
        self.announce(transport, 1);
        None
    }

    /// The floating pool offers a segment to this (waiting) channel. Returns it if the
    /// channel no longer needs it.
    pub(crate) fn offer_floating(&self, segment: Segment, gate: &GateShared) -> Option<Segment> {
        let mut st = self.state.lock();
        st.waiting_floating = false;
        if st.released || st.backlog <= st.free.len() {
            return Some(segment);
        }
        st.free.push(segment);
        let credit = 1 + self.request_floating_locked(&mut st, gate);
        let transport = st.transport.clone();
        drop(st);
        self.announce(transport, credit);
        None
    }

    /// Requests the floating segments the announced backlog needs and tells the sender
    /// about the new credit, after releasing the channel lock (no lock is held while
    /// calling a transport).
    fn grant_floating(&self, mut st: parking_lot::MutexGuard<'_, ChannelState>, gate: &GateShared) {
        let credit = self.request_floating_locked(&mut st, gate);
        let transport = if credit > 0 {
            st.transport.clone()
        } else {
            None
        };
        drop(st);
        self.announce(transport, credit);
    }

    /// Re-check the backlog and request floating segments if needed.
    pub(crate) fn ensure_floating(&self, gate: &GateShared) {
        let st = self.state.lock();
        if st.released {
            return;
        }
        self.grant_floating(st, gate);
    }

    /// Release: drop all segments, tell the sender. Returns how many received buffers were
    /// discarded.
    pub(crate) fn release(&self) -> usize {
        let mut st = self.state.lock();
        st.released = true;
        let discarded = st.received.len();
        st.received.clear();
        st.priority.clear();
        st.announced.clear();
        st.free.clear();
        let transport = st.transport.take();
        drop(st);
        if let Some(t) = transport {
            t.cancel_partition_request(self.index);
        }
        discarded
    }

    /// Buffers holding this channel's data in flight: received and not yet consumed,
    /// plus the backlog the sender announced last and the one it is filling.
    pub(crate) fn buffers_in_flight(&self) -> usize {
        let st = self.state.lock();
        if st.released {
            return 0;
        }
        st.received.len() + st.backlog + 1
    }

    /// Asks the sender to cut its buffers at `size` bytes (buffer debloating).
    pub(crate) fn announce_buffer_size(&self, size: usize) {
        let transport = self.state.lock().transport.clone();
        if let Some(t) = transport {
            t.announce_buffer_size(self.index, size);
        }
    }

    pub(crate) fn credit_announced(&self) -> u64 {
        self.credit_announced.load(Ordering::Relaxed)
    }

    pub(crate) fn buffers_received(&self) -> u64 {
        self.buffers_received.load(Ordering::Relaxed)
    }

    pub(crate) fn violations(&self) -> u64 {
        self.violations.load(Ordering::Relaxed)
    }

    /// Request `backlog - free` floating segments unless already waiting; returns how many
    /// were obtained (new credit to announce after unlocking).
    fn request_floating_locked(&self, st: &mut ChannelState, gate: &GateShared) -> usize {
        if st.waiting_floating {
            return 0;
        }
        let need = st.backlog.saturating_sub(st.free.len());
        if need == 0 {
            return 0;
        }
        let before = st.free.len();
        st.waiting_floating = gate.floating.request_into(need, self.index, &mut st.free);
        st.free.len() - before
    }

    /// Send `credit` to the sender. Must be called without holding the channel lock.
    fn announce(&self, transport: Option<Arc<dyn CreditTransport>>, credit: usize) {
        if credit == 0 {
            return;
        }
        let Some(t) = transport else { return };
        self.credit_announced
            .fetch_add(credit as u64, Ordering::Relaxed);
        t.add_credit(AddCredit {
            channel: self.index,
            credit,
        });
    }
}
