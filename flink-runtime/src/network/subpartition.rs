//! Sender side of one channel: the queue of finished buffers and the credit it holds.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, MutexGuard};

use super::buffer::{Buffer, BufferKind};
use super::error::NetworkError;
use super::event::Event;
use super::io_metrics::IoMetrics;
use super::transport::{BufferResponse, ChannelTransport};
use crate::checkpoint::channel_state::ChannelBuffer;

struct SubState {
    queue: VecDeque<Buffer>,
    /// An encoded priority event (an unaligned barrier) to ship before the queue,
    /// without credit.
    priority: Option<Vec<u8>>,
    credit: usize,
    shipping: bool,
    released: bool,
    transport: Option<Weak<dyn ChannelTransport>>,
    receiver_channel: usize,
}

/// Counters of one subpartition, for tests and monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubpartitionStats {
    /// Credit announced by the receiver so far (including initial credit).
    pub credit_received: u64,
    /// Buffers shipped so far.
    pub buffers_shipped: u64,
    /// Times a buffer would have been shipped without credit (must stay 0).
    pub credit_violations: u64,
    /// Buffers currently queued (backlog).
    pub queued: usize,
    /// Aligned checkpoint barriers among them.
    pub queued_barriers: usize,
    /// Credit currently held.
    pub credit: usize,
}

/// One subpartition. Buffers are shipped only while credit is held. Shipping is done by
/// whichever thread notices credit and backlog (the writer on enqueue, the receiver on
/// credit); a `shipping` flag under the subpartition lock makes exactly one thread the
/// shipper at a time, so order is preserved and the lock is not held while the
/// transport copies bytes (and possibly calls back with more credit).
pub(crate) struct Subpartition {
    index: usize,
    state: Mutex<SubState>,
    metrics: Arc<IoMetrics>,
    credit_received: AtomicU64,
    shipped: AtomicU64,
    violations: AtomicU64,
    /// The queue's length, readable without the lock (by a writer waiting for this
    /// subpartition to get below its buffer cap under the pool's lock).
    queued: AtomicUsize,
    /// The buffer size the receiver announced (buffer debloating); 0 until it does,
    /// which means the pool's full size.
    announced_size: AtomicUsize,
    /// Aligned checkpoint barriers queued (changed under the lock), so that a task
    /// holding a checkpoint's acknowledgement checks its queues with a load per
    /// loop turn instead of locking and scanning them ([`Self::holds_barrier`]).
    aligned_barriers: AtomicUsize,
    /// The id of the newest aligned barrier queued (written under the lock).
    newest_barrier: AtomicU64,
}

impl Subpartition {
    pub(crate) fn new(index: usize, queue_capacity: usize, metrics: Arc<IoMetrics>) -> Self {
        Self {
            index,
            state: Mutex::new(SubState {
                queue: VecDeque::with_capacity(queue_capacity),
                priority: None,
                credit: 0,
                shipping: false,
                released: false,
                transport: None,
                receiver_channel: 0,
            }),
            metrics,
            credit_received: AtomicU64::new(0),
            shipped: AtomicU64::new(0),
            violations: AtomicU64::new(0),
            queued: AtomicUsize::new(0),
            announced_size: AtomicUsize::new(0),
            aligned_barriers: AtomicUsize::new(0),
            newest_barrier: AtomicU64::new(0),
        }
    }

    /// The buffer size the receiver last announced, 0 if none.
    pub(crate) fn announced_size(&self) -> usize {
        self.announced_size.load(Ordering::Relaxed)
    }

    /// The receiver announced that buffers of `size` bytes are enough: the next
    /// buffers for this subpartition are cut there (buffers already being filled
    /// keep their size).
    pub(crate) fn announce_buffer_size(&self, size: usize) {
        self.announced_size.store(size, Ordering::Relaxed);
    }

    /// Buffers queued right now (the backlog), without taking the lock.
    pub(crate) fn queued_now(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Publishes the queue's length; called under the lock after every change.
    fn publish_queued(&self, st: &SubState) {
        self.queued.store(st.queue.len(), Ordering::Release);
    }

    /// Aligned checkpoint barriers queued right now, without taking the lock.
    pub(crate) fn queued_barriers(&self) -> usize {
        self.aligned_barriers.load(Ordering::Acquire)
    }

    /// Counts `buffer`, about to be queued under the lock, if it is an aligned
    /// barrier.
    fn count_queued(&self, buffer: &Buffer) {
        if let Some((id, _)) = aligned_barrier(buffer) {
            self.newest_barrier.store(id, Ordering::Release);
            self.aligned_barriers.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Uncounts `buffer`, taken off the queue under the lock, if it is an aligned
    /// barrier (only looked at while some barrier is queued).
    fn count_dequeued(&self, buffer: &Buffer) {
        if self.aligned_barriers.load(Ordering::Relaxed) > 0 && aligned_barrier(buffer).is_some() {
            self.aligned_barriers.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// The queue was emptied under the lock.
    fn uncount_all(&self) {
        self.aligned_barriers.store(0, Ordering::Release);
    }

    pub(crate) fn connect(
        &self,
        transport: Weak<dyn ChannelTransport>,
        receiver_channel: usize,
    ) -> Result<(), NetworkError> {
        let mut st = self.state.lock();
        if st.transport.is_some() {
            return Err(NetworkError::AlreadyConnected {
                what: "subpartition",
                index: self.index,
            });
        }
        st.transport = Some(transport);
        st.receiver_channel = receiver_channel;
        Ok(())
    }

    /// Queue a finished buffer and ship what credit allows.
    pub(crate) fn add_buffer(&self, buffer: Buffer) -> Result<(), NetworkError> {
        let mut st = self.state.lock();
        if st.released {
            drop(st);
            drop(buffer);
            return Err(NetworkError::ReceiverReleased {
                subpartition: self.index,
            });
        }
        self.count_queued(&buffer);
        st.queue.push_back(buffer);
        self.publish_queued(&st);
        self.ship(st);
        Ok(())
    }

    /// Whether nothing is queued or being shipped (or the receiver released it): all
    /// this subpartition was given has left through its transport.
    pub(crate) fn is_idle(&self) -> bool {
        let st = self.state.lock();
        st.released || (st.queue.is_empty() && st.priority.is_none() && !st.shipping)
    }

    /// Ships the encoded priority event `event` (an unaligned barrier) ahead of every
    /// queued buffer and without credit (the receiver hands it out without a
    /// segment); returns copies of the buffers it overtook, which stay queued and
    /// ship after it.
    pub(crate) fn add_priority_event(
        &self,
        event: Vec<u8>,
    ) -> Result<Vec<ChannelBuffer>, NetworkError> {
        let mut st = self.state.lock();
        if st.released {
            return Err(NetworkError::ReceiverReleased {
                subpartition: self.index,
            });
        }
        let overtaken = st
            .queue
            .iter()
            .map(|b| ChannelBuffer::new(b.kind(), b.as_slice()))
            .collect();
        st.priority = Some(event);
        self.ship(st);
        Ok(overtaken)
    }

    /// Whether the aligned barrier of checkpoint `checkpoint` is still queued here
    /// (not shipped yet): two loads, no lock. Barriers are queued in the order of
    /// their ids and leave in queue order, so while any is queued the newest one
    /// queued is too; the one exception, a barrier converted out of the middle of
    /// the queue, is of the checkpoint whose acknowledgement the conversion
    /// released, which is not asked about again.
    pub(crate) fn holds_barrier(&self, checkpoint: u64) -> bool {
        self.aligned_barriers.load(Ordering::Acquire) > 0
            && self.newest_barrier.load(Ordering::Acquire) == checkpoint
    }

    /// The aligned-checkpoint timeout passed while the aligned barrier of
    /// `checkpoint` waits in this queue: it becomes an unaligned barrier (a priority
    /// event) that ships at once, ahead of the buffers queued before it, as if it had
    /// been sent unaligned (Flink converts a timed-out barrier in its subpartition
    /// the same way). Returns copies of the buffers it overtook (they still ship,
    /// after it), or `None` if the barrier already left (it stays aligned).
    pub(crate) fn convert_barrier(&self, checkpoint: u64) -> Option<Vec<ChannelBuffer>> {
        let mut st = self.state.lock();
        if st.released {
            return None;
        }
        let (at, timestamp) = barrier_position(&st.queue, checkpoint)?;
        let overtaken = st
            .queue
            .iter()
            .take(at)
            .map(|b| ChannelBuffer::new(b.kind(), b.as_slice()))
            .collect();
        let barrier = st.queue.remove(at);
        if let Some(barrier) = &barrier {
            self.count_dequeued(barrier);
        }
        self.publish_queued(&st);
        st.priority = Some(
            Event::UnalignedBarrier {
                id: checkpoint,
                timestamp,
            }
            .encode(),
        );
        self.ship(st);
        // Returned to the pool outside the lock (it may wake a waiting writer).
        drop(barrier);
        Some(overtaken)
    }

    /// Whether one more buffer would ship at once: credit beyond what is queued.
    pub(crate) fn can_ship_now(&self) -> bool {
        let st = self.state.lock();
        !st.released && st.credit > st.queue.len()
    }

    /// Receiver announced `credit` more segments.
    pub(crate) fn add_credit(&self, credit: usize) {
        self.credit_received
            .fetch_add(credit as u64, Ordering::Relaxed);
        let mut st = self.state.lock();
        st.credit += credit;
        self.ship(st);
    }

    /// The receiver went away: drop queued buffers (returning them to the pool, which wakes
    /// a blocked writer) and refuse further data.
    pub(crate) fn release(&self) {
        let mut st = self.state.lock();
        if !st.released {
            tracing::debug!(
                subpartition = self.index,
                "subpartition released by receiver"
            );
        }
        st.released = true;
        st.transport = None;
        st.priority = None;
        let dropped: Vec<Buffer> = st.queue.drain(..).collect();
        self.uncount_all();
        self.publish_queued(&st);
        drop(st);
        drop(dropped);
    }

    pub(crate) fn stats(&self) -> SubpartitionStats {
        let st = self.state.lock();
        SubpartitionStats {
            credit_received: self.credit_received.load(Ordering::Relaxed),
            buffers_shipped: self.shipped.load(Ordering::Relaxed),
            credit_violations: self.violations.load(Ordering::Relaxed),
            queued: st.queue.len(),
            queued_barriers: self.queued_barriers(),
            credit: st.credit,
        }
    }

    /// Ship while credit and backlog last, unless another thread is already shipping
    /// (it will observe our queued buffer / credit before it stops).
    fn ship<'a>(&'a self, mut st: MutexGuard<'a, SubState>) {
        if st.shipping {
            return;
        }
        st.shipping = true;
        loop {
            let idle = st.priority.is_none() && (st.credit == 0 || st.queue.is_empty());
            if st.released || idle {
                break;
            }
            let Some(transport) = st.transport.as_ref().and_then(Weak::upgrade) else {
                // Not connected yet (no credit can exist then) or receiver gone.
                if st.transport.is_some() {
                    st.released = true;
                    st.queue.clear();
                    self.uncount_all();
                    self.publish_queued(&st);
                }
                break;
            };
            if let Some(event) = st.priority.take() {
                let (channel, backlog) = (st.receiver_channel, st.queue.len());
                drop(st);
                let result = transport.send_buffer(BufferResponse {
                    channel,
                    backlog,
                    kind: BufferKind::Event,
                    bytes: &event,
                });
                self.shipped.fetch_add(1, Ordering::Relaxed);
                self.metrics.add_shipped(event.len());
                drop(transport);
                st = self.state.lock();
                st = self.on_ship_result(st, result);
                continue;
            }
            let mut buffer = st.queue.pop_front().expect("non-empty");
            self.count_dequeued(&buffer);
            self.publish_queued(&st);
            if st.credit == 0 {
                self.violations.fetch_add(1, Ordering::Relaxed);
            }
            st.credit -= 1;
            let backlog = st.queue.len();
            let channel = st.receiver_channel;
            drop(st);

            let result = transport.ship(channel, backlog, &mut buffer);
            self.shipped.fetch_add(1, Ordering::Relaxed);
            self.metrics.add_shipped(buffer.len());
            drop(buffer);
            drop(transport);

            st = self.state.lock();
            st = self.on_ship_result(st, result);
        }
        st.shipping = false;
    }

    /// After a shipment: a receiver that refused it is gone, so everything queued
    /// is dropped (outside the lock) and nothing more is shipped.
    fn on_ship_result<'a>(
        &'a self,
        mut st: MutexGuard<'a, SubState>,
        result: Result<(), NetworkError>,
    ) -> MutexGuard<'a, SubState> {
        if let Err(e) = result {
            tracing::debug!(subpartition = self.index, error = %e, "receiver refused buffer");
            st.released = true;
            st.transport = None;
            st.priority = None;
            let dropped: Vec<Buffer> = st.queue.drain(..).collect();
            self.uncount_all();
            self.publish_queued(&st);
            drop(st);
            drop(dropped);
            st = self.state.lock();
        }
        st
    }
}

/// The checkpoint id and trigger timestamp of `buffer` if it is an aligned barrier.
fn aligned_barrier(buffer: &Buffer) -> Option<(u64, i64)> {
    if buffer.kind() != BufferKind::Event {
        return None;
    }
    Event::aligned_barrier(buffer.as_slice())
}

/// Where the aligned barrier of `checkpoint` sits in `queue`, with its timestamp.
fn barrier_position(queue: &VecDeque<Buffer>, checkpoint: u64) -> Option<(usize, i64)> {
    queue
        .iter()
        .enumerate()
        .find_map(|(i, b)| match aligned_barrier(b) {
            Some((id, timestamp)) if id == checkpoint => Some((i, timestamp)),
            _ => None,
        })
}
