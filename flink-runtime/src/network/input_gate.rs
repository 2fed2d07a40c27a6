//! The receiver side of a task's input: M input channels, exclusive and floating segments.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use flink_core::buffer_debloat::BufferDebloatConfig;
use flink_core::clock::Clock;

use super::buffer::BufferKind;
use super::buffer_debloater::BufferDebloater;
use super::buffer_pool::MAX_WAIT_SLICE;
use super::cancel::{CancelToken, CancelWaker};
use super::config::NetworkConfig;
use super::error::NetworkError;
use super::event::Event;
use super::floating_pool::FloatingPool;
use super::input_channel::{InputChannel, Segment, Taken};
use super::io_metrics::{IoMetrics, Waiting};
use super::record_deserializer::RecordDeserializer;
use super::transport::CreditTransport;
use crate::checkpoint::channel_state::ChannelBuffer;

/// One item handed out by [`InputGate::poll`].
#[derive(Debug)]
pub enum GateItem<'a> {
    /// A complete record (the bytes the producer emitted).
    Record {
        /// Input channel it arrived on.
        channel: usize,
        /// The record bytes; valid only during the callback.
        bytes: &'a [u8],
    },
    /// The records of one buffer as a run of frames (each a
    /// [`LENGTH_PREFIX`](super::LENGTH_PREFIX) length, then the record), which may end
    /// inside a frame (a record the next buffer continues). The consumer decodes
    /// complete frames from the start ([`flink_core::codec::frames`] stops at the cut)
    /// and sets `decoded` to the bytes they took; complete frames it leaves come again
    /// as [`GateItem::Record`]s. Only [`InputGate::poll_framed`] hands these out.
    Records {
        /// Input channel they arrived on.
        channel: usize,
        /// The frames; valid only during the callback.
        framed: &'a [u8],
        /// Set by the consumer: the bytes of the frames it decoded (0 if untouched).
        decoded: &'a Cell<usize>,
    },
    /// An in-band event (including `EndOfPartition`).
    Event {
        /// Input channel it arrived on.
        channel: usize,
        /// The event.
        event: Event,
    },
}

/// Outcome of one [`InputGate::poll`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatePoll {
    /// One received buffer was processed (zero or more items delivered).
    Processed,
    /// Nothing arrived within the timeout.
    Timeout,
    /// Every channel delivered `EndOfPartition`.
    Finished,
    /// The cancel token was triggered.
    Cancelled,
}

/// Counters of a gate, for tests and monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GateStats {
    /// Credit announced to senders so far (initial + returned + floating).
    pub credit_announced: u64,
    /// Buffers received so far.
    pub buffers_received: u64,
    /// Buffers that arrived without a free segment (must be 0).
    pub credit_violations: u64,
    /// Exclusive segments (allocated up front).
    pub exclusive_segments: usize,
    /// Floating segments allocated so far (at most the configured floating count).
    pub floating_allocated: usize,
    /// Configured floating segments.
    pub floating_capacity: usize,
    /// High-water mark of segments holding received, not yet recycled data.
    pub max_segments_in_use: usize,
}

struct AvailState {
    queue: VecDeque<usize>,
    waiting: bool,
}

/// State shared between the gate (consumer thread) and the senders' shipping threads.
pub(crate) struct GateShared {
    pub(crate) channels: Vec<InputChannel>,
    pub(crate) floating: FloatingPool,
    avail: Mutex<AvailState>,
    avail_cv: Condvar,
    metrics: Arc<IoMetrics>,
    segment_size: usize,
    exclusive_segments: usize,
    in_use: AtomicUsize,
    max_in_use: AtomicUsize,
    /// Whether channels announce the aligned barriers they queue (unaligned
    /// checkpoints with an aligned-checkpoint timeout).
    announce: AtomicBool,
    /// Bumped whenever a channel's announced barriers change, so the consumer
    /// looks at the channels only then.
    announce_epoch: AtomicU64,
}

impl GateShared {
    /// Channel `ch` went from no received buffers to some: queue it and wake the consumer
    /// if it is waiting.
    pub(crate) fn notify_available(&self, ch: usize) {
        let mut av = self.avail.lock();
        av.queue.push_back(ch);
        let wake = av.waiting;
        drop(av);
        if wake {
            self.avail_cv.notify_one();
        }
    }

    /// Whether channels announce the aligned barriers they queue.
    pub(crate) fn announces(&self) -> bool {
        self.announce.load(Ordering::Relaxed)
    }

    /// A channel's announced barriers changed (called under its lock).
    pub(crate) fn announcements_changed(&self) {
        self.announce_epoch.fetch_add(1, Ordering::Release);
    }

    /// A segment now holds `bytes` of received data.
    pub(crate) fn segment_taken(&self, bytes: usize) {
        let n = self.in_use.fetch_add(1, Ordering::Relaxed) + 1;
        self.max_in_use.fetch_max(n, Ordering::Relaxed);
        self.metrics.in_used_inc();
        self.metrics.add_received(bytes);
    }

    fn segments_released(&self, n: usize) {
        self.in_use.fetch_sub(n, Ordering::Relaxed);
        self.metrics.in_used_sub(n);
    }

    /// Return a consumed segment of channel `ch`.
    fn recycle(&self, ch: usize, segment: Segment) {
        self.segments_released(1);
        let channel = &self.channels[ch];
        if segment.floating {
            self.recycle_floating(segment);
            channel.ensure_floating(self);
        } else if let Some(floating) = channel.recycle_exclusive(segment) {
            self.recycle_floating(floating);
        }
    }

    /// Give a floating segment to the first waiting channel that still needs it, else
    /// back to the floating pool. Holds no channel lock while taking the pool lock.
    fn recycle_floating(&self, mut segment: Segment) {
        loop {
            match self.floating.put_or_waiter(segment) {
                None => return,
                Some((s, waiter)) => match self.channels[waiter].offer_floating(s, self) {
                    None => return,
                    Some(s) => segment = s,
                },
            }
        }
    }
}

impl CancelWaker for GateShared {
    fn wake(&self) {
        let _av = self.avail.lock();
        self.avail_cv.notify_all();
    }
}

impl Drop for GateShared {
    fn drop(&mut self) {
        self.metrics
            .sub_in_capacity(self.exclusive_segments + self.floating.capacity());
    }
}

/// An input gate over `M` input channels. Each channel owns
/// `exclusive_buffers_per_channel` segments (its initial credit); the gate lends
/// `floating_buffers_per_gate` floating segments to channels whose sender announces a
/// backlog. Records are handed out per channel in order via [`poll`](Self::poll).
///
/// Dropping the gate releases every channel; their senders drop queued data and fail
/// further writes with `ReceiverReleased`.
pub struct InputGate {
    shared: Arc<GateShared>,
    deserializers: Vec<RecordDeserializer>,
    finished: Vec<bool>,
    num_finished: usize,
    blocked: Vec<bool>,
    parked: Vec<bool>,
    /// Channel state being recorded for an unaligned checkpoint, per channel: what
    /// the channel delivers from the task's snapshot until its barrier.
    recording: Vec<Option<Vec<ChannelBuffer>>>,
    /// Copies of the buffers the last priority event of each channel overtook.
    overtaken: Vec<Vec<ChannelBuffer>>,
    /// Buffer debloating, when enabled.
    debloat: Option<Box<GateDebloat>>,
    /// The oldest announced barrier as of an announcement epoch (boxed to keep
    /// the gate, which moves into its task by value, small).
    announced: Box<(u64, Option<(u64, i64)>)>,
    cancel: CancelToken,
}

/// A gate's debloating: its consumption since the last period and when that began.
struct GateDebloat {
    debloater: BufferDebloater,
    clock: Arc<dyn Clock>,
    period: Duration,
    period_start: Duration,
    idle_ns_at_start: u64,
    bytes: u64,
}

impl std::fmt::Debug for InputGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputGate")
            .field("channels", &self.deserializers.len())
            .field("finished", &self.num_finished)
            .finish()
    }
}

impl InputGate {
    /// A gate with `num_channels` channels sized by `config`. Blocking polls observe
    /// `cancel`; idle time and input pool usage go to `metrics`.
    pub fn new(
        num_channels: usize,
        config: &NetworkConfig,
        cancel: CancelToken,
        metrics: Arc<IoMetrics>,
    ) -> Result<Self, NetworkError> {
        if num_channels == 0 {
            return Err(NetworkError::InvalidConfig(
                "an input gate needs at least one channel".into(),
            ));
        }
        if config.exclusive_buffers_per_channel == 0 {
            return Err(NetworkError::InvalidConfig(
                "exclusive_buffers_per_channel must be >= 1".into(),
            ));
        }
        let size = config.buffer_size;
        let exclusive = config.exclusive_buffers_per_channel;
        let floating = config.floating_buffers_per_gate;
        let channels = (0..num_channels)
            .map(|i| InputChannel::new(i, exclusive, floating, size))
            .collect();
        metrics.add_in_capacity(config.gate_segment_capacity(num_channels));
        let shared = Arc::new(GateShared {
            channels,
            floating: FloatingPool::new(floating, size),
            avail: Mutex::new(AvailState {
                queue: VecDeque::with_capacity(num_channels),
                waiting: false,
            }),
            avail_cv: Condvar::new(),
            metrics,
            segment_size: size,
            exclusive_segments: num_channels * exclusive,
            in_use: AtomicUsize::new(0),
            max_in_use: AtomicUsize::new(0),
            announce: AtomicBool::new(false),
            announce_epoch: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&shared);
        cancel.register(weak);
        Ok(Self {
            shared,
            deserializers: (0..num_channels)
                .map(|_| RecordDeserializer::new())
                .collect(),
            finished: vec![false; num_channels],
            num_finished: 0,
            blocked: vec![false; num_channels],
            parked: vec![false; num_channels],
            recording: vec![None; num_channels],
            overtaken: vec![Vec::new(); num_channels],
            debloat: None,
            announced: Box::new((0, None)),
            cancel,
        })
    }

    /// Turns buffer debloating on (Flink's FLIP-183): every `config.period` on `clock`
    /// the gate measures its throughput and announces to its senders the buffer size
    /// at which its data in flight amounts to about `config.target` of consumption.
    /// The size is in [`IoMetrics::debloated_buffer_size`]. A disabled `config` does
    /// nothing.
    pub fn enable_debloating(&mut self, config: &BufferDebloatConfig, clock: Arc<dyn Clock>) {
        if !config.enabled {
            return;
        }
        let debloater = BufferDebloater::new(config, self.shared.segment_size);
        self.shared
            .metrics
            .set_debloated_buffer_size(debloater.buffer_size());
        self.debloat = Some(Box::new(GateDebloat {
            debloater,
            period: config.period,
            period_start: clock.now(),
            clock,
            idle_ns_at_start: self.shared.metrics.idle_ns(),
            bytes: 0,
        }));
    }

    /// Announces the debloater's initial size on every connected channel, before
    /// any data flows (called once the gate's channels are wired): the buffers
    /// filled while the job starts are then small, not full-size ones the first
    /// checkpoint of a back-pressured job would wait behind.
    pub fn announce_initial_buffer_size(&self) {
        let Some(d) = &self.debloat else { return };
        let size = d.debloater.buffer_size();
        if size < self.shared.segment_size {
            for channel in &self.shared.channels {
                channel.announce_buffer_size(size);
            }
        }
    }

    /// The buffer size announced last, `None` without debloating.
    pub fn debloated_buffer_size(&self) -> Option<usize> {
        self.debloat.as_ref().map(|d| d.debloater.buffer_size())
    }

    /// Ends a debloating period once it has passed: measures and, if the size
    /// changed enough, announces it on every channel.
    fn debloat_tick(&mut self) {
        let Some(d) = &mut self.debloat else { return };
        let now = d.clock.now();
        let elapsed = now.saturating_sub(d.period_start);
        if elapsed < d.period {
            return;
        }
        let idle_ns = self.shared.metrics.idle_ns();
        let idle = Duration::from_nanos(idle_ns.saturating_sub(d.idle_ns_at_start));
        // Every channel's buffers, and the one this gate's consumer is reading.
        let buffers = self
            .shared
            .channels
            .iter()
            .map(InputChannel::buffers_in_flight)
            .sum::<usize>()
            + 1;
        let announced = d
            .debloater
            .on_period(d.bytes, elapsed.saturating_sub(idle), buffers);
        d.period_start = now;
        d.idle_ns_at_start = idle_ns;
        d.bytes = 0;
        if let Some(size) = announced {
            tracing::trace!(size, buffers, "input gate announces a buffer size");
            self.shared.metrics.set_debloated_buffer_size(size);
            for channel in &self.shared.channels {
                channel.announce_buffer_size(size);
            }
        }
    }

    /// Number of input channels.
    pub fn num_channels(&self) -> usize {
        self.deserializers.len()
    }

    /// Size of every receiver segment.
    pub fn segment_size(&self) -> usize {
        self.shared.segment_size
    }

    /// Whether every channel delivered `EndOfPartition`.
    pub fn is_finished(&self) -> bool {
        self.num_finished == self.deserializers.len()
    }

    /// Whether `channel` delivered `EndOfPartition`.
    pub fn is_channel_finished(&self, channel: usize) -> bool {
        self.finished.get(channel).copied().unwrap_or(false)
    }

    /// The metrics this gate reports to.
    pub fn metrics(&self) -> &Arc<IoMetrics> {
        &self.shared.metrics
    }

    /// Counters summed over all channels.
    pub fn stats(&self) -> GateStats {
        let mut s = GateStats {
            exclusive_segments: self.shared.exclusive_segments,
            floating_allocated: self.shared.floating.allocated(),
            floating_capacity: self.shared.floating.capacity(),
            max_segments_in_use: self.shared.max_in_use.load(Ordering::Relaxed),
            ..GateStats::default()
        };
        for c in &self.shared.channels {
            s.credit_announced += c.credit_announced();
            s.buffers_received += c.buffers_received();
            s.credit_violations += c.violations();
        }
        s
    }

    /// Attach the sender side of `channel` and announce its initial credit. The local
    /// wiring helpers call this; a network transport would too.
    pub fn connect_channel(
        &self,
        channel: usize,
        transport: Arc<dyn CreditTransport>,
    ) -> Result<(), NetworkError> {
        self.channel(channel)?.connect(transport)
    }

    /// Whether `channel` already has a sender attached.
    pub fn is_channel_connected(&self, channel: usize) -> Result<bool, NetworkError> {
        Ok(self.channel(channel)?.is_connected())
    }

    /// Stop consuming `channel` (e.g. checkpoint barrier alignment): its received buffers
    /// stay unconsumed, so it returns no credit and its sender stalls, while the other
    /// channels keep flowing.
    pub fn block_channel(&mut self, channel: usize) -> Result<(), NetworkError> {
        self.channel(channel)?;
        self.blocked[channel] = true;
        Ok(())
    }

    /// Resume consuming a channel blocked with [`block_channel`](Self::block_channel).
    pub fn resume_channel(&mut self, channel: usize) -> Result<(), NetworkError> {
        self.channel(channel)?;
        self.blocked[channel] = false;
        if std::mem::take(&mut self.parked[channel]) {
            self.shared.avail.lock().queue.push_back(channel);
        }
        Ok(())
    }

    /// Starts recording the channel state of `channel` for an unaligned checkpoint
    /// whose snapshot was just taken: the part of a record its deserializer holds,
    /// then every buffer (records and watermarks, not barriers or its end) it
    /// delivers until [`end_channel_state`](Self::end_channel_state).
    pub(crate) fn begin_channel_state(&mut self, channel: usize) -> Result<(), NetworkError> {
        self.channel(channel)?;
        let partial = self.deserializers[channel].partial_frame();
        self.recording[channel] = Some(
            partial
                .map(|frame| ChannelBuffer::new(BufferKind::Data, &frame))
                .into_iter()
                .collect(),
        );
        Ok(())
    }

    /// `channel` delivered the checkpoint's barrier: its recorded channel state, with
    /// the buffers its barrier overtook (when it came as a priority event) appended.
    pub(crate) fn end_channel_state(
        &mut self,
        channel: usize,
    ) -> Result<Vec<ChannelBuffer>, NetworkError> {
        self.channel(channel)?;
        let mut state = self.recording[channel].take().unwrap_or_default();
        state.append(&mut self.overtaken[channel]);
        Ok(state)
    }

    /// From now on every channel announces the aligned checkpoint barriers it
    /// receives (as Flink's input channels announce a received barrier with a
    /// priority `EventAnnouncement`), so that one still queued behind unprocessed
    /// buffers can be pulled ahead at the aligned-checkpoint timeout
    /// ([`convert_announced`](Self::convert_announced)). Called before the
    /// channels connect; without it a received event costs nothing more.
    pub(crate) fn announce_aligned_barriers(&self) {
        self.shared.announce.store(true, Ordering::Relaxed);
    }

    /// The oldest aligned barrier (checkpoint id, trigger timestamp) received and
    /// still queued behind buffers not processed yet, in any channel. Costs one
    /// atomic load unless a channel's announcements changed since the last call.
    pub(crate) fn oldest_announced(&mut self) -> Option<(u64, i64)> {
        let epoch = self.shared.announce_epoch.load(Ordering::Acquire);
        if epoch != self.announced.0 {
            let oldest = self
                .shared
                .channels
                .iter()
                .filter_map(InputChannel::oldest_announced)
                .min_by_key(|&(id, _)| id);
            *self.announced = (epoch, oldest);
        }
        self.announced.1
    }

    /// Pulls the queued aligned barriers of checkpoint `id` ahead of the buffers
    /// queued before them, in every channel: each is then handed out first as an
    /// [`Event::UnalignedBarrier`] with copies of those buffers, exactly as a
    /// priority barrier that overtook them (the buffers are still delivered after
    /// it, in order). Returns how many channels held one.
    pub(crate) fn convert_announced(&mut self, id: u64) -> usize {
        let shared = Arc::clone(&self.shared);
        let mut converted = 0;
        for (ch, channel) in shared.channels.iter().enumerate() {
            if let Some(segment) = channel.convert_announced(id, &shared) {
                // The barrier's segment held no data: its credit goes back.
                shared.recycle(ch, segment);
                converted += 1;
            }
        }
        converted
    }

    /// Forgets every recording and overtaken copy (the checkpoint was given up).
    pub(crate) fn discard_channel_state(&mut self) {
        self.recording.iter_mut().for_each(|r| *r = None);
        self.overtaken.iter_mut().for_each(Vec::clear);
    }

    /// Forgets the copies of what `channel`'s last priority event overtook (a stale
    /// barrier).
    pub(crate) fn clear_overtaken(&mut self, channel: usize) {
        if let Some(o) = self.overtaken.get_mut(channel) {
            o.clear();
        }
    }

    /// Feeds channel state restored from an unaligned checkpoint through `channel`'s
    /// deserializer, before anything received: records and events to `on_item`, as
    /// [`poll_framed`](Self::poll_framed) would (a record cut at the end continues
    /// in the first buffer the channel receives).
    pub(crate) fn replay_channel_state<'a>(
        &mut self,
        channel: usize,
        buffers: impl Iterator<Item = &'a ChannelBuffer>,
        on_item: &mut dyn FnMut(GateItem<'_>),
    ) -> Result<(), NetworkError> {
        self.channel(channel)?;
        for buffer in buffers {
            match buffer.kind() {
                BufferKind::Data => self.feed_data(channel, &buffer.bytes, true, on_item)?,
                BufferKind::Event => self.handle_event(channel, &buffer.bytes, on_item)?,
            }
        }
        Ok(())
    }

    /// Process one received buffer: hand its records (re-assembled across buffers) or its
    /// event to `on_item`, in per-channel order, then recycle the buffer (returning credit).
    /// Waits up to `timeout` for any channel to have data; that wait counts as idle time.
    pub fn poll(
        &mut self,
        timeout: Duration,
        on_item: &mut dyn FnMut(GateItem<'_>),
    ) -> Result<GatePoll, NetworkError> {
        self.poll_buffer(timeout, false, on_item)
    }

    /// Like [`poll`](Self::poll), but the complete records within the buffer come as
    /// one [`GateItem::Records`] run (a record that spanned buffers still comes as a
    /// [`GateItem::Record`]): one call per buffer instead of one per record, and the
    /// consumer walks the frames, not the gate as well.
    pub fn poll_framed(
        &mut self,
        timeout: Duration,
        on_item: &mut dyn FnMut(GateItem<'_>),
    ) -> Result<GatePoll, NetworkError> {
        self.poll_buffer(timeout, true, on_item)
    }

    fn poll_buffer(
        &mut self,
        timeout: Duration,
        framed: bool,
        on_item: &mut dyn FnMut(GateItem<'_>),
    ) -> Result<GatePoll, NetworkError> {
        if self.is_finished() {
            return Ok(GatePoll::Finished);
        }
        if self.cancel.is_cancelled() {
            return Ok(GatePoll::Cancelled);
        }
        self.debloat_tick();
        let ch = match self.next_available(timeout) {
            Ok(ch) => ch,
            Err(outcome) => return Ok(outcome),
        };
        let shared = Arc::clone(&self.shared);
        let Some((taken, more)) = shared.channels[ch].take_received(&shared) else {
            return Ok(GatePoll::Processed);
        };
        if more {
            shared.notify_available(ch);
        }
        let received = match taken {
            Taken::Buffer(received) => received,
            Taken::Priority { event, overtaken } => {
                self.overtaken[ch] = overtaken;
                return self
                    .handle_event(ch, &event, on_item)
                    .map(|()| GatePoll::Processed);
            }
        };
        if let Some(d) = &mut self.debloat {
            d.bytes += received.len as u64;
        }
        let data = &received.segment.data[..received.len];
        let result = match received.kind {
            BufferKind::Data => {
                if let Some(recording) = &mut self.recording[ch] {
                    recording.push(ChannelBuffer::new(BufferKind::Data, data));
                }
                self.feed_data(ch, data, framed, on_item)
            }
            BufferKind::Event => self.handle_event(ch, data, on_item),
        };
        shared.recycle(ch, received.segment);
        result.map(|()| GatePoll::Processed)
    }

    /// Feeds one data buffer of channel `ch` to its deserializer.
    fn feed_data(
        &mut self,
        ch: usize,
        data: &[u8],
        framed: bool,
        on_item: &mut dyn FnMut(GateItem<'_>),
    ) -> Result<(), NetworkError> {
        if framed {
            let on_item = RefCell::new(on_item);
            self.deserializers[ch].feed_framed(
                data,
                ch,
                |bytes| (on_item.borrow_mut())(GateItem::Record { channel: ch, bytes }),
                |framed| {
                    let decoded = Cell::new(0);
                    (on_item.borrow_mut())(GateItem::Records {
                        channel: ch,
                        framed,
                        decoded: &decoded,
                    });
                    decoded.get()
                },
            )
        } else {
            self.deserializers[ch].feed(data, ch, |bytes| {
                on_item(GateItem::Record { channel: ch, bytes })
            })
        }
    }

    fn handle_event(
        &mut self,
        ch: usize,
        data: &[u8],
        on_item: &mut dyn FnMut(GateItem<'_>),
    ) -> Result<(), NetworkError> {
        let event = Event::decode(data, ch)?;
        if let Some(recording) = &mut self.recording[ch]
            && matches!(
                event,
                Event::Watermark(_) | Event::WatermarkStatus(_) | Event::Custom(_)
            )
        {
            recording.push(ChannelBuffer::new(BufferKind::Event, data));
        }
        if event == Event::EndOfPartition {
            if self.deserializers[ch].is_mid_record() {
                return Err(NetworkError::CorruptStream {
                    channel: ch,
                    reason: "EndOfPartition inside a spanning record".into(),
                });
            }
            if !self.finished[ch] {
                self.finished[ch] = true;
                self.num_finished += 1;
                tracing::trace!(channel = ch, "input channel finished");
            }
        }
        on_item(GateItem::Event { channel: ch, event });
        Ok(())
    }

    /// Next channel with data that is not blocked, waiting up to `timeout`.
    fn next_available(&mut self, timeout: Duration) -> Result<usize, GatePoll> {
        let deadline = Instant::now().checked_add(timeout);
        let shared = &self.shared;
        let mut av = shared.avail.lock();
        loop {
            while let Some(ch) = av.queue.pop_front() {
                if self.blocked[ch] {
                    self.parked[ch] = true;
                } else {
                    return Ok(ch);
                }
            }
            if self.cancel.is_cancelled() {
                return Err(GatePoll::Cancelled);
            }
            let now = Instant::now();
            let wait = match deadline {
                Some(d) if now >= d => return Err(GatePoll::Timeout),
                Some(d) => (d - now).min(MAX_WAIT_SLICE),
                None => MAX_WAIT_SLICE,
            };
            av.waiting = true;
            shared.metrics.set_waiting(Waiting::Input);
            shared.avail_cv.wait_for(&mut av, wait);
            shared.metrics.set_waiting(Waiting::Nothing);
            av.waiting = false;
            shared.metrics.add_idle(now.elapsed());
        }
    }

    pub(crate) fn shared(&self) -> &Arc<GateShared> {
        &self.shared
    }

    fn channel(&self, channel: usize) -> Result<&InputChannel, NetworkError> {
        self.shared
            .channels
            .get(channel)
            .ok_or(NetworkError::IndexOutOfRange {
                what: "input channel",
                index: channel,
                len: self.shared.channels.len(),
            })
    }
}

impl Drop for InputGate {
    fn drop(&mut self) {
        for c in &self.shared.channels {
            let discarded = c.release();
            self.shared.segments_released(discarded);
        }
    }
}
