//! [`WindowOperator`]: keyed windows over event or processing time, with triggers,
//! merging (session) windows and evictors.

use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;

use hashbrown::HashMap;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::window_slots::{WindowHash, WindowSlots};
use super::window_snapshot::{KeySnapshot, WindowCopy, encode_windows};
use crate::checkpoint::{DeferredState, RestoredState, StateError, restore_keyed};
use crate::clock::Clock;
use crate::functions::{Collector, KeySelector};
use crate::metrics::Counter;
use crate::operator::{Emitter, ForwardTo, Operator, RuntimeContext, StateScope};
use crate::operators::PerRecordStamps;
use crate::side_output::SideOutput;
use crate::timers::{TimerQueue, processing_time_of};
use crate::timestamped::Timestamped;
use crate::watermark::{NO_TIMESTAMP, TimestampFn, Watermark};
use crate::windows::{
    TimeWindow, TimerRequest, Trigger, TriggerContext, WindowAggregation, WindowAssigner,
};

/// The name of the counter of late records dropped (Flink's metric name).
pub const LATE_RECORDS_DROPPED: &str = "numLateRecordsDropped";

/// How many records' keys a window operator takes in one call.
const KEY_RUN: usize = 64;

/// One key's window: its contents and its trigger's state.
/// The windows of the last assigned timestamp and the times `[from, to)` that
/// share them (empty when the assigner cannot say).
#[derive(Default)]
struct Assignment {
    from: i64,
    to: i64,
    windows: Vec<TimeWindow>,
    /// The one window of a non-merging assigner, with its cleanup time and hash.
    single: Option<(TimeWindow, i64, WindowHash)>,
}

struct Slot<A, S> {
    acc: Option<A>,
    trigger: S,
    /// Whether the window's cleanup timer is registered (once per window).
    cleanup_registered: bool,
    /// The timers this window last registered that are known to be still queued.
    queued: QueuedTimers,
}

/// A window's last registered event- and processing-time timer, while known to be
/// queued: a trigger that re-registers the same timer with every record (as the
/// event-time trigger does) then costs a comparison instead of a timer-queue
/// lookup. Cleared when that timer fires or is deleted; `None` only means
/// "unknown", never "not queued".
#[derive(Default, Clone, Copy)]
struct QueuedTimers {
    event: Option<i64>,
    processing: Option<i64>,
}

impl<A, S: Default> Default for Slot<A, S> {
    fn default() -> Self {
        Self {
            acc: None,
            trigger: S::default(),
            cleanup_registered: false,
            queued: QueuedTimers::default(),
        }
    }
}

/// The operator's two timer queues, borrowed apart from its windows.
struct Timers<'a, K> {
    event: &'a mut TimerQueue<(K, TimeWindow)>,
    processing: &'a mut TimerQueue<(K, TimeWindow)>,
}

impl<K: Hash + Eq + Clone> Timers<'_, K> {
    /// Applies (and drains) `requests` of `window` of `key`. With the window's
    /// `queued` timers, a registration already queued is skipped and the timers
    /// registered or deleted are noted.
    fn apply(
        self,
        requests: &mut Vec<TimerRequest>,
        mut queued: Option<&mut QueuedTimers>,
        key: &K,
        window: TimeWindow,
    ) {
        for request in requests.drain(..) {
            let known = queued.as_deref_mut();
            let (queue, known, time, register) = match request {
                TimerRequest::RegisterEvent(t) => {
                    (&mut *self.event, known.map(|q| &mut q.event), t, true)
                }
                TimerRequest::RegisterProcessing(t) => (
                    &mut *self.processing,
                    known.map(|q| &mut q.processing),
                    t,
                    true,
                ),
                TimerRequest::DeleteEvent(t) => {
                    (&mut *self.event, known.map(|q| &mut q.event), t, false)
                }
                TimerRequest::DeleteProcessing(t) => (
                    &mut *self.processing,
                    known.map(|q| &mut q.processing),
                    t,
                    false,
                ),
            };
            match (register, known) {
                (true, Some(known)) if *known == Some(time) => {}
                (true, known) => {
                    queue.register((key.clone(), window), time);
                    if let Some(known) = known {
                        *known = Some(time);
                    }
                }
                (false, known) => {
                    queue.delete(&(key.clone(), window), time);
                    if let Some(known) = known
                        && *known == Some(time)
                    {
                        *known = None;
                    }
                }
            }
        }
    }
}

/// How the window operator is set up, besides its key, assigner, function and
/// trigger.
pub struct WindowSettings<I> {
    /// How long after a window's end (in event time) records may still update it.
    pub allowed_lateness_ms: i64,
    /// Where records too late for every window go (else they are counted as
    /// dropped in [`LATE_RECORDS_DROPPED`]).
    pub late_output: Option<SideOutput<I>>,
    /// Each record's event timestamp (needed for event-time windows).
    pub timestamps: Option<TimestampFn<I>>,
}

/// Keyed windows, as Flink's `WindowOperator`: records go into the windows the
/// assigner gives for their time (merged with the key's overlapping windows for
/// session assigners, their contents and trigger states merged, their timers
/// re-registered); the trigger decides, per record and per timer, when a window
/// fires and purges. A window's state is dropped at its cleanup time: for event
/// time once the watermark passes its end plus the allowed lateness, for
/// processing time once the clock passes its end (global windows never). Records
/// only for windows already cleaned up are late. Processing-time timers are
/// checked after each batch and while the input is idle; the end of the input
/// fires every timer still pending. Window state, trigger state and timers are
/// checkpointed by key group.
pub struct WindowOperator<K, I, O, KS, W, A, Tr>
where
    A: WindowAggregation<K, I, O>,
    Tr: Trigger<I>,
{
    key: KS,
    assigner: W,
    agg: A,
    trigger: Tr,
    /// The trigger only registers the window's end timer per record
    /// ([`Trigger::registers_only_the_end_timer`]).
    end_timer_only: bool,
    event_time: bool,
    merging: bool,
    settings: WindowSettings<I>,
    windows: WindowSlots<K, Slot<A::Acc, Tr::State>>,
    /// Merging assigners: each key's windows (disjoint, not touching).
    sessions: HashMap<K, Vec<TimeWindow>>,
    event_timers: TimerQueue<(K, TimeWindow)>,
    processing_timers: TimerQueue<(K, TimeWindow)>,
    /// Timers asked for by the trigger call being handled.
    requests: Vec<TimerRequest>,
    watermark: Watermark,
    clock: Arc<dyn Clock>,
    dropped: Counter,
    assigned: Vec<TimeWindow>,
    /// The last assignment and the times that share it: records of one window in
    /// a row are not assigned one by one.
    last_assignment: Assignment,
    /// The keys of the batch being processed, taken in one call.
    batch_keys: Vec<K>,
    _types: PhantomData<fn(I) -> O>,
}

impl<K, I, O, KS, W, A, Tr> WindowOperator<K, I, O, KS, W, A, Tr>
where
    K: Hash + Eq + Clone + 'static,
    I: Clone + 'static,
    W: WindowAssigner,
    A: WindowAggregation<K, I, O>,
    Tr: Trigger<I>,
{
    /// Windows of `assigner` per key of `key`, aggregated by `agg`, fired by
    /// `trigger`.
    pub fn new(
        key: KS,
        assigner: W,
        agg: A,
        trigger: Tr,
        settings: WindowSettings<I>,
        ctx: &RuntimeContext,
    ) -> Self {
        Self {
            key,
            end_timer_only: trigger.registers_only_the_end_timer(),
            event_time: assigner.is_event_time(),
            merging: assigner.is_merging(),
            assigner,
            agg,
            trigger,
            settings,
            windows: WindowSlots::new(),
            sessions: HashMap::new(),
            event_timers: TimerQueue::default(),
            processing_timers: TimerQueue::default(),
            requests: Vec::new(),
            watermark: Watermark::MIN,
            clock: ctx.services.clock.clone(),
            dropped: Counter::new(ctx.metrics.custom(LATE_RECORDS_DROPPED)),
            assigned: Vec::new(),
            last_assignment: Assignment::default(),
            batch_keys: Vec::new(),
            _types: PhantomData,
        }
    }

    /// When a window's state goes: its end plus the lateness in event time.
    fn cleanup_time(&self, window: &TimeWindow) -> i64 {
        if self.event_time {
            window
                .max_timestamp()
                .saturating_add(self.settings.allowed_lateness_ms)
        } else {
            window.max_timestamp()
        }
    }

    /// Whether `window` was (or would have been) cleaned up already.
    fn is_late(&self, window: &TimeWindow) -> bool {
        self.event_time && self.cleanup_time(window) <= self.watermark.timestamp()
    }

    /// Applies the timers the last trigger call asked for to `window` of `key`
    /// (outside the per-record path: looks the window's slot up only to forget a
    /// deleted timer).
    fn apply_requests(&mut self, key: &K, window: TimeWindow) {
        let deletes = self.requests.iter().any(|r| {
            matches!(
                r,
                TimerRequest::DeleteEvent(_) | TimerRequest::DeleteProcessing(_)
            )
        });
        let queued = if deletes {
            self.windows
                .get_mut(key, &window)
                .map(|slot| &mut slot.queued)
        } else {
            None
        };
        let timers = Timers {
            event: &mut self.event_timers,
            processing: &mut self.processing_timers,
        };
        timers.apply(&mut self.requests, queued, key, window);
    }

    /// The timer that drops `window`'s state (none for a window without end).
    fn register_cleanup(&mut self, key: &K, window: TimeWindow) {
        if window.end == i64::MAX {
            return;
        }
        let time = self.cleanup_time(&window);
        let queue = if self.event_time {
            &mut self.event_timers
        } else {
            &mut self.processing_timers
        };
        queue.register((key.clone(), window), time);
    }

    /// Assigns `timestamp` anew (out of line: runs once per run of records that
    /// share their windows).
    #[inline(never)]
    fn reassign(&mut self, timestamp: i64) {
        let last = &mut self.last_assignment;
        last.windows.clear();
        self.assigner.assign_windows(timestamp, &mut last.windows);
        (last.from, last.to) = self.assigner.same_windows_span(timestamp).unwrap_or((0, 0));
        let single = match last.windows.as_slice() {
            [window] if !self.merging => Some(*window),
            _ => None,
        };
        self.last_assignment.single =
            single.map(|w| (w, self.cleanup_time(&w), WindowHash::of(&w)));
    }

    /// Adds `record` of `key`, which has `timestamp` (unused in processing time), at
    /// the operator's time.
    #[inline]
    fn add_at<C: Collector<O> + ?Sized>(&mut self, key: K, record: I, timestamp: i64, out: &mut C) {
        let timestamp = if self.event_time {
            timestamp
        } else {
            processing_time_of(self.clock.as_ref())
        };
        self.add(key, record, timestamp, out);
    }

    /// Adds `record` of `key` at `timestamp` to its windows; a record for no
    /// window that is still open is late.
    #[inline]
    fn add<C: Collector<O> + ?Sized>(&mut self, key: K, record: I, timestamp: i64, out: &mut C) {
        let last = &self.last_assignment;
        if !(last.from <= timestamp && timestamp < last.to) {
            self.reassign(timestamp);
        }
        if let Some((window, cleanup, hash)) = self.last_assignment.single {
            // One window (tumbling): no list to build.
            if self.event_time && cleanup <= self.watermark.timestamp() {
                self.late(record);
            } else {
                self.add_to(key, window, hash, record, timestamp, out);
            }
            return;
        }
        let mut assigned = std::mem::take(&mut self.assigned);
        assigned.clear();
        assigned.extend_from_slice(&self.last_assignment.windows);
        if self.merging {
            for window in assigned.iter_mut() {
                *window = self.merge_session(&key, *window);
            }
        }
        // Windows already cleaned up take nothing more.
        assigned.retain(|w| !self.is_late(w));
        match assigned.split_last() {
            None => self.late(record),
            Some((last, rest)) => {
                for window in rest {
                    let hash = WindowHash::of(window);
                    self.add_to(key.clone(), *window, hash, record.clone(), timestamp, out);
                }
                self.add_to(key, *last, WindowHash::of(last), record, timestamp, out);
            }
        }
        self.assigned = assigned;
    }

    // Inlined: it runs per record and window, and its call cost 20 instructions.
    #[inline(always)]
    fn add_to<C: Collector<O> + ?Sized>(
        &mut self,
        key: K,
        window: TimeWindow,
        hash: WindowHash,
        record: I,
        timestamp: i64,
        out: &mut C,
    ) {
        let slot = self
            .windows
            .get_or_insert_with(&key, window, hash, Slot::default);
        if self.end_timer_only
            && slot.queued.event == Some(window.max_timestamp())
            && window.max_timestamp() > self.watermark.timestamp()
        {
            // The trigger would register the timer that is queued and continue.
            self.agg.add(&mut slot.acc, record, timestamp);
            return;
        }
        let new = !slot.cleanup_registered;
        slot.cleanup_registered = true;
        let mut ctx = TriggerContext::new(
            &mut slot.trigger,
            self.watermark.timestamp(),
            self.clock.as_ref(),
            &mut self.requests,
        )
        .with_queued_event(slot.queued.event);
        let result = self
            .trigger
            .on_element(&record, timestamp, &window, &mut ctx);
        self.agg.add(&mut slot.acc, record, timestamp);
        if result.is_fire()
            && let Some(acc) = slot.acc.as_mut()
        {
            // A window's results have its last time (Flink's).
            out.set_timestamp(window.max_timestamp());
            self.agg.emit(&key, &window, acc, &mut ForwardTo(out));
        }
        if result.is_purge() {
            slot.acc = None;
        }
        match self.requests.as_slice() {
            [] => {}
            // The common case, inline: the trigger registered again the timer it
            // registered with the window's last record (the event-time trigger
            // does, per record).
            [TimerRequest::RegisterEvent(time)] if slot.queued.event == Some(*time) => {
                self.requests.clear();
            }
            _ => {
                let timers = Timers {
                    event: &mut self.event_timers,
                    processing: &mut self.processing_timers,
                };
                timers.apply(&mut self.requests, Some(&mut slot.queued), &key, window);
            }
        }
        // The cleanup timer, unless the trigger's timer just queued is the same one
        // (the event-time trigger's without allowed lateness): one timer-queue
        // lookup less per window.
        if new {
            let queued = if self.event_time {
                slot.queued.event
            } else {
                slot.queued.processing
            };
            if queued != Some(self.cleanup_time(&window)) {
                self.register_cleanup(&key, window);
            }
        }
    }

    /// Merges `window` with the key's windows it overlaps or touches (session
    /// windows): their contents and trigger states move to the merged window, their
    /// timers are deleted and the merged window's registered. Returns the window
    /// the record goes to.
    fn merge_session(&mut self, key: &K, window: TimeWindow) -> TimeWindow {
        let late = self.is_late(&window);
        let sessions = self.sessions.entry(key.clone()).or_default();
        let overlapping: Vec<TimeWindow> = sessions
            .iter()
            .filter(|s| s.intersects(&window))
            .copied()
            .collect();
        if overlapping.is_empty() {
            // A late window alone is dropped with its record; it is not kept.
            if !late {
                sessions.push(window);
            }
            return window;
        }
        let merged = overlapping.iter().fold(window, |m, s| m.cover(s));
        if overlapping == [merged] {
            return merged;
        }
        sessions.retain(|s| !s.intersects(&window));
        sessions.push(merged);
        let mut slot: Slot<A::Acc, Tr::State> = Slot::default();
        let mut states = Vec::with_capacity(overlapping.len());
        for old in overlapping {
            let Some(old_slot) = self.windows.remove(key, &old) else {
                continue;
            };
            if let Some(acc) = old_slot.acc {
                self.agg.merge(&mut slot.acc, acc);
            }
            states.push(old_slot.trigger);
            // The old window's state is merged away: its trigger deletes its timers.
            let mut cleared = Tr::State::default();
            let mut ctx = TriggerContext::new(
                &mut cleared,
                self.watermark.timestamp(),
                self.clock.as_ref(),
                &mut self.requests,
            );
            self.trigger.clear(&old, &mut ctx);
            self.apply_requests(key, old);
            let cleanup = self.cleanup_time(&old);
            let queue = if self.event_time {
                &mut self.event_timers
            } else {
                &mut self.processing_timers
            };
            queue.delete(&(key.clone(), old), cleanup);
        }
        let mut ctx = TriggerContext::new(
            &mut slot.trigger,
            self.watermark.timestamp(),
            self.clock.as_ref(),
            &mut self.requests,
        );
        self.trigger.on_merge(&merged, states, &mut ctx);
        self.apply_requests(key, merged);
        slot.cleanup_registered = true;
        self.register_cleanup(key, merged);
        self.windows.insert(key.clone(), merged, slot);
        merged
    }

    /// A record too late for every window it belongs to.
    fn late(&mut self, record: I) {
        match self.settings.late_output.as_mut() {
            Some(side) => side.collect(record),
            None => self.dropped.inc(),
        }
    }

    /// A timer of `window` of `key` at `time` fired (event time or processing
    /// time): the trigger decides; at the cleanup time the window goes.
    fn on_timer<C: Collector<O> + ?Sized>(
        &mut self,
        key: K,
        window: TimeWindow,
        time: i64,
        event: bool,
        out: &mut C,
    ) {
        let Some(slot) = self.windows.get_mut(&key, &window) else {
            return;
        };
        // The timer left the queue.
        let queued = if event {
            &mut slot.queued.event
        } else {
            &mut slot.queued.processing
        };
        if *queued == Some(time) {
            *queued = None;
        }
        let mut ctx = TriggerContext::new(
            &mut slot.trigger,
            self.watermark.timestamp(),
            self.clock.as_ref(),
            &mut self.requests,
        );
        let result = if event {
            self.trigger.on_event_time(time, &window, &mut ctx)
        } else {
            self.trigger.on_processing_time(time, &window, &mut ctx)
        };
        if result.is_fire()
            && let Some(acc) = slot.acc.as_mut()
        {
            // A window's results have its last time (Flink's).
            out.set_timestamp(window.max_timestamp());
            self.agg.emit(&key, &window, acc, &mut ForwardTo(out));
        }
        if result.is_purge() {
            slot.acc = None;
        }
        self.apply_requests(&key, window);
        if event == self.event_time && time == self.cleanup_time(&window) && window.end != i64::MAX
        {
            self.clear_window(key, window);
        }
    }

    /// Drops a window: its contents, its trigger's state and timers.
    fn clear_window(&mut self, key: K, window: TimeWindow) {
        let Some(mut slot) = self.windows.remove(&key, &window) else {
            return;
        };
        let mut ctx = TriggerContext::new(
            &mut slot.trigger,
            self.watermark.timestamp(),
            self.clock.as_ref(),
            &mut self.requests,
        );
        self.trigger.clear(&window, &mut ctx);
        // With the removed slot's knowledge of its timers: no second lookup of a
        // window that is gone (one per fired window, in a table of thousands).
        let timers = Timers {
            event: &mut self.event_timers,
            processing: &mut self.processing_timers,
        };
        timers.apply(&mut self.requests, Some(&mut slot.queued), &key, window);
        if self.merging
            && let Some(sessions) = self.sessions.get_mut(&key)
        {
            sessions.retain(|s| *s != window);
            if sessions.is_empty() {
                self.sessions.remove(&key);
            }
        }
    }

    /// Fires the event-time timers due at `time`, in timestamp order.
    fn fire_event_timers<C: Collector<O> + ?Sized>(&mut self, time: i64, out: &mut C) {
        while let Some(((key, window), ts)) = self.event_timers.pop_due(time) {
            self.on_timer(key, window, ts, true, out);
        }
    }

    /// Fires the processing-time timers due at `time`, in timestamp order.
    fn fire_processing_timers<C: Collector<O> + ?Sized>(&mut self, time: i64, out: &mut C) {
        while let Some(((key, window), ts)) = self.processing_timers.pop_due(time) {
            self.on_timer(key, window, ts, false, out);
        }
    }

    /// Fires the processing-time timers the job's clock has reached (reads the
    /// clock only if there are any).
    fn fire_processing_timers_now<C: Collector<O> + ?Sized>(&mut self, out: &mut C) {
        if !self.processing_timers.is_empty() {
            let now = processing_time_of(self.clock.as_ref());
            self.fire_processing_timers(now, out);
        }
    }
}

impl<K, I, O, KS, W, A, Tr> Operator<I, O> for WindowOperator<K, I, O, KS, W, A, Tr>
where
    K: Hash + Eq + Clone + Send + Serialize + DeserializeOwned + 'static,
    I: Clone + Send + 'static,
    O: 'static,
    KS: KeySelector<I, K>,
    W: WindowAssigner,
    A: WindowAggregation<K, I, O>,
    Tr: Trigger<I>,
{
    fn process<C: Collector<O> + ?Sized>(&mut self, record: I, out: &mut C) {
        let timestamp = match &self.settings.timestamps {
            Some(ts) if self.event_time => ts(&record),
            // Checked when the job is built; a record without a time is late.
            _ => NO_TIMESTAMP,
        };
        self.process_timestamped(record, timestamp, out);
    }

    #[inline]
    fn process_timestamped<C: Collector<O> + ?Sized>(
        &mut self,
        record: I,
        timestamp: i64,
        out: &mut C,
    ) {
        let key = self.key.key(&record);
        self.add_at(key, record, timestamp, out);
    }

    /// The keys of [`KEY_RUN`] records in one call (no dynamic call per record),
    /// then those records; a run at a time, so that the records are still in the
    /// L1 cache when they are processed.
    fn process_timestamped_batch<C: Collector<Timestamped<O>> + ?Sized>(
        &mut self,
        batch: &mut Vec<Timestamped<I>>,
        out: &mut PerRecordStamps<'_, C>,
    ) {
        let mut keys = std::mem::take(&mut self.batch_keys);
        let mut records = batch.drain(..);
        loop {
            let run = records.as_slice();
            if run.is_empty() {
                break;
            }
            self.key
                .keys_of_stamped(&run[..run.len().min(KEY_RUN)], &mut keys);
            // Keys first: the zip ends when they do, without taking another record.
            for (key, record) in keys.drain(..).zip(records.by_ref()) {
                let out = out.record(record.timestamp);
                self.add_at(key, record.value, record.timestamp, out);
            }
        }
        self.batch_keys = keys;
    }

    fn process_batch(&mut self, batch: &mut Vec<I>, out: &mut Emitter<'_, O>) {
        for record in batch.drain(..) {
            self.process(record, out);
        }
        self.fire_processing_timers_now(out);
    }

    fn poll_pending(&mut self, out: &mut Emitter<'_, O>) -> bool {
        self.fire_processing_timers_now(out);
        false
    }

    /// Fires the event-time timers up to `watermark`, then passes it on.
    fn process_watermark<C: Collector<O> + ?Sized>(&mut self, watermark: Watermark, out: &mut C) {
        self.watermark = watermark;
        self.fire_event_timers(watermark.timestamp(), out);
        out.emit_watermark(watermark);
    }

    /// Every timer still pending fires: the input is complete.
    fn end_input<C: Collector<O> + ?Sized>(&mut self, out: &mut C) {
        self.fire_event_timers(i64::MAX, out);
        self.fire_processing_timers(i64::MAX, out);
    }

    /// Every window's contents and trigger state and every timer, by key group,
    /// encoded on the task's thread.
    fn snapshot_state(&mut self, scope: StateScope, _: u64) -> Result<Option<Vec<u8>>, StateError> {
        let windows = self
            .windows
            .iter()
            .map(|(key, window, slot)| (key, *window, slot.acc.as_ref(), &slot.trigger));
        encode_windows(
            windows,
            self.event_timers.iter(),
            self.processing_timers.iter(),
            scope.max_parallelism,
        )
        .map(Some)
    }

    /// A copy of the windows (contents and trigger states, in the table's order)
    /// and of the live timers, encoded later on the checkpoint's thread into the
    /// bytes [`snapshot_state`](Self::snapshot_state) gives now: the task stops for
    /// the copy only.
    fn snapshot_state_deferred(
        &mut self,
        scope: StateScope,
        _: u64,
    ) -> Result<Option<DeferredState>, StateError> {
        let copy = WindowCopy {
            windows: self
                .windows
                .iter()
                .map(|(key, window, slot)| {
                    (key.clone(), *window, slot.acc.clone(), slot.trigger.clone())
                })
                .collect(),
            event_timers: self.event_timers.copy_live(),
            processing_timers: self.processing_timers.copy_live(),
        };
        Ok(Some(DeferredState::later(move || {
            copy.encode(scope.max_parallelism)
        })))
    }

    fn restore_state(
        &mut self,
        scope: StateScope,
        restored: &RestoredState,
    ) -> Result<(), StateError> {
        let entries = restore_keyed::<K, KeySnapshot<A::Acc, Tr::State>>(restored, scope)?;
        for (key, entry) in entries {
            // Timers in time order, so equal times fire as they did before.
            for (window, ts) in entry.event_timers {
                self.event_timers.register((key.clone(), window), ts);
            }
            for (window, ts) in entry.processing_timers {
                self.processing_timers.register((key.clone(), window), ts);
            }
            for (window, acc, trigger) in entry.windows {
                if self.merging {
                    self.sessions.entry(key.clone()).or_default().push(window);
                }
                let slot = Slot {
                    acc,
                    trigger,
                    cleanup_registered: true,
                    queued: QueuedTimers::default(),
                };
                self.windows.insert(key.clone(), window, slot);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;

    use crate::windows::{
        CountEvictor, CountTrigger, DefaultTrigger, EventTimeSessionWindows, EventTimeTrigger,
        EvictingProcessWindow, GlobalWindows, ProcessingTimeSessionWindows, PurgingTrigger,
        ReduceWindow, SlidingEventTimeWindows, TimeEvictor, TumblingEventTimeWindows,
        TumblingProcessingTimeWindows,
    };

    pub(super) fn context(clock: &ManualClock) -> RuntimeContext {
        RuntimeContext::standalone("window", 0, 1, Arc::new(clock.clone()))
    }

    /// (key, timestamp, count): counts add up per key and window.
    pub(super) type Rec = (u8, i64, u32);
    type Sum = ReduceWindow<fn(Rec, Rec) -> Rec>;
    /// A window operator over [`Rec`]s keyed by their first field.
    pub(super) type ByKey<O, W, A, Tr> = WindowOperator<u8, Rec, O, fn(&Rec) -> u8, W, A, Tr>;
    type Op<W, Tr = DefaultTrigger> = ByKey<Rec, W, Sum, Tr>;

    fn sum(a: Rec, b: Rec) -> Rec {
        (a.0, a.1.max(b.1), a.2 + b.2)
    }

    fn operator<W: WindowAssigner>(assigner: W, lateness_ms: i64, ctx: &RuntimeContext) -> Op<W> {
        let trigger = assigner.default_trigger();
        operator_with(assigner, trigger, lateness_ms, ctx)
    }

    /// A window operator over [`Rec`]s keyed by their first field, with event
    /// timestamps from the second.
    pub(super) fn operator_of<W, A, O, Tr>(
        assigner: W,
        agg: A,
        trigger: Tr,
        lateness_ms: i64,
        ctx: &RuntimeContext,
    ) -> ByKey<O, W, A, Tr>
    where
        W: WindowAssigner,
        A: WindowAggregation<u8, Rec, O>,
        Tr: Trigger<Rec>,
    {
        let settings = WindowSettings {
            allowed_lateness_ms: lateness_ms,
            late_output: None,
            timestamps: Some(Arc::new(|r: &Rec| r.1)),
        };
        WindowOperator::new(
            (|r: &Rec| r.0) as fn(&Rec) -> u8,
            assigner,
            agg,
            trigger,
            settings,
            ctx,
        )
    }

    fn operator_with<W: WindowAssigner, Tr: Trigger<Rec>>(
        assigner: W,
        trigger: Tr,
        lateness_ms: i64,
        ctx: &RuntimeContext,
    ) -> Op<W, Tr> {
        let sum = ReduceWindow(sum as fn(Rec, Rec) -> Rec);
        operator_of(assigner, sum, trigger, lateness_ms, ctx)
    }

    fn feed<W: WindowAssigner, Tr: Trigger<Rec>>(
        op: &mut Op<W, Tr>,
        records: &[Rec],
        out: &mut Vec<Rec>,
    ) {
        for r in records {
            op.process(*r, out);
        }
    }

    #[test]
    fn out_of_order_records_within_the_lateness_fire_again_later_ones_are_dropped() {
        let clock = ManualClock::new();
        let ctx = context(&clock);
        let tumbling = TumblingEventTimeWindows::of(Duration::from_millis(10));
        let mut op = operator(tumbling, 5, &ctx);
        let mut out = Vec::new();
        feed(
            &mut op,
            &[(1, 3, 1), (2, 12, 1), (1, 8, 1), (1, 15, 1)],
            &mut out,
        );
        op.process_watermark(Watermark(9), &mut out);
        assert_eq!(out, [(1, 8, 2)], "[0, 10) of key 1 fires at 9");
        // Late for the window, within the lateness (cleanup at 9 + 5 = 14): fires again.
        feed(&mut op, &[(1, 2, 1)], &mut out);
        assert_eq!(out[1..], [(1, 8, 3)]);
        op.process_watermark(Watermark(14), &mut out);
        // Past the lateness: dropped and counted.
        feed(&mut op, &[(1, 4, 1)], &mut out);
        assert_eq!(
            ctx.metrics
                .custom(LATE_RECORDS_DROPPED)
                .load(Ordering::Relaxed),
            1
        );
        op.process_watermark(Watermark(i64::MAX), &mut out);
        assert_eq!(out[2..], [(2, 12, 1), (1, 15, 1)]);
        assert!(op.windows.is_empty() && op.event_timers.is_empty());
    }

    /// The event-time trigger behind a wrapper that does not say it only
    /// registers the end timer: the window operator calls it for every record.
    #[derive(Clone, Copy)]
    struct CalledPerRecord(EventTimeTrigger);

    impl Trigger<Rec> for CalledPerRecord {
        type State = ();

        fn on_element(
            &mut self,
            r: &Rec,
            ts: i64,
            w: &TimeWindow,
            ctx: &mut TriggerContext<'_, ()>,
        ) -> crate::windows::TriggerResult {
            self.0.on_element(r, ts, w, ctx)
        }

        fn on_event_time(
            &mut self,
            t: i64,
            w: &TimeWindow,
            ctx: &mut TriggerContext<'_, ()>,
        ) -> crate::windows::TriggerResult {
            Trigger::<Rec>::on_event_time(&mut self.0, t, w, ctx)
        }

        fn on_processing_time(
            &mut self,
            t: i64,
            w: &TimeWindow,
            ctx: &mut TriggerContext<'_, ()>,
        ) -> crate::windows::TriggerResult {
            Trigger::<Rec>::on_processing_time(&mut self.0, t, w, ctx)
        }

        fn clear(&mut self, w: &TimeWindow, ctx: &mut TriggerContext<'_, ()>) {
            Trigger::<Rec>::clear(&mut self.0, w, ctx);
        }
    }

    /// Tumbling 20 ms windows with 15 ms lateness under `trigger`, fed `records`
    /// in chunks of 25 with a watermark after each: the output, the records
    /// dropped, and whether the operator skipped the trigger per record.
    fn run_with<Tr: Trigger<Rec>>(trigger: Tr, records: &[Rec]) -> (Vec<Rec>, u64, bool) {
        let clock = ManualClock::new();
        let ctx = context(&clock);
        let tumbling = TumblingEventTimeWindows::of(Duration::from_millis(20));
        let mut op = operator_with(tumbling, trigger, 15, &ctx);
        let mut out = Vec::new();
        for (i, chunk) in records.chunks(25).enumerate() {
            feed(&mut op, chunk, &mut out);
            op.process_watermark(Watermark(i as i64 * 9), &mut out);
        }
        op.process_watermark(Watermark(i64::MAX), &mut out);
        (out, dropped(&ctx), op.end_timer_only)
    }

    /// Runs `records` (out of order, many keys) through a window operator keyed by
    /// [`Keys`](crate::batch_keys::Keys) and wrapped in
    /// [`Stamped`](crate::operators::Stamped), 150 records a batch (more than a
    /// [`KEY_RUN`], not a multiple) with a watermark after each; `batched`: each
    /// batch in one call (its keys taken a run at a time), else record by record.
    /// Returns the output and the late records dropped.
    fn run_stamped(records: &[Rec], batched: bool) -> (Vec<Timestamped<Rec>>, u64) {
        let clock = ManualClock::new();
        let ctx = context(&clock);
        let settings = WindowSettings {
            allowed_lateness_ms: 15,
            late_output: None,
            timestamps: None,
        };
        let tumbling = TumblingEventTimeWindows::of(Duration::from_millis(20));
        let mut op = crate::operators::Stamped::new(WindowOperator::new(
            crate::batch_keys::Keys::new(|r: &Rec| r.0),
            tumbling,
            ReduceWindow(sum as fn(Rec, Rec) -> Rec),
            tumbling.default_trigger(),
            settings,
            &ctx,
        ));
        let mut out = Vec::new();
        for (i, chunk) in records.chunks(150).enumerate() {
            let mut batch: Vec<_> = chunk
                .iter()
                .map(|&value| Timestamped {
                    timestamp: value.1,
                    value,
                })
                .collect();
            if batched {
                op.process_batch(&mut batch, &mut Emitter::collecting(&mut out));
            } else {
                batch.into_iter().for_each(|r| op.process(r, &mut out));
            }
            op.process_watermark(Watermark(i as i64 * 75 + 100), &mut out);
        }
        op.process_watermark(Watermark(i64::MAX), &mut out);
        (out, dropped(&ctx))
    }

    #[test]
    fn a_batch_of_stamped_records_keyed_in_one_call_gives_the_per_record_results() {
        let records: Vec<Rec> = (0..3_000u32)
            .map(|i| ((i % 13) as u8, i64::from(i * 37 % 101 + i / 2), 1))
            .collect();
        let (out, dropped) = run_stamped(&records, true);
        assert_eq!((out.clone(), dropped), run_stamped(&records, false));
        assert!(dropped > 0, "some records are late");
        let counted: u64 = out.iter().map(|r| u64::from(r.value.2)).sum();
        assert!(
            counted >= 3_000 - dropped,
            "every record on time is counted"
        );
        assert!(
            out.iter().all(|r| r.timestamp % 20 == 19),
            "results carry their window's last time"
        );
    }

    #[test]
    fn skipping_the_event_time_trigger_per_record_changes_no_result() {
        // Out of order, late within and past the lateness, over several windows
        // and keys, with watermarks in between: the operator that skips the
        // trigger for windows whose end timer is queued emits what the one that
        // calls it per record does, in the same order, and drops the same records.
        let records: Vec<Rec> = (0..400u32)
            .map(|i| ((i % 7) as u8, i64::from((i * 37) % 120), 1 + i % 3))
            .collect();
        let (out, dropped, skipped) = run_with(EventTimeTrigger, &records);
        let called = run_with(CalledPerRecord(EventTimeTrigger), &records);
        assert!(skipped && !called.2);
        assert!(out.len() > 20 && dropped > 0, "{out:?} {dropped}");
        assert_eq!((out, dropped), (called.0, called.1));
    }

    #[test]
    fn sliding_windows_count_a_record_in_each_window_and_survive_a_restore() {
        let clock = ManualClock::new();
        let ctx = context(&clock);
        let sliding =
            SlidingEventTimeWindows::of(Duration::from_millis(10), Duration::from_millis(5));
        let mut op = operator(sliding, 0, &ctx);
        let mut out = Vec::new();
        feed(&mut op, &[(1, 1, 1), (1, 6, 1), (1, 11, 1)], &mut out);
        op.process_watermark(Watermark(4), &mut out);
        assert_eq!(out, [(1, 1, 1)], "[-5, 5)");
        let scope = ctx.scope();
        let bytes = op.snapshot_state(scope, 1).unwrap().unwrap();
        let mut restored = operator(sliding, 0, &ctx);
        restored
            .restore_state(
                scope,
                &RestoredState {
                    checkpoint_id: Some(1),
                    by_subtask: vec![Some(Arc::from(bytes))].into(),
                },
            )
            .unwrap();
        restored.end_input(&mut out);
        // [0, 10), [5, 15), [10, 20) in time order.
        assert_eq!(out[1..], [(1, 6, 2), (1, 11, 2), (1, 11, 1)]);
    }

    #[test]
    fn processing_time_windows_fire_on_the_clock_and_at_the_end_of_input() {
        let clock = ManualClock::new();
        let ctx = context(&clock);
        let tumbling = TumblingProcessingTimeWindows::of(Duration::from_millis(100));
        let mut op = operator(tumbling, 0, &ctx);
        let mut out = Vec::new();
        feed(&mut op, &[(1, 0, 1), (1, 0, 1)], &mut out);
        clock.advance(Duration::from_millis(98));
        feed(&mut op, &[(1, 0, 1)], &mut out);
        op.poll_pending(&mut Emitter::collecting(&mut out));
        assert!(out.is_empty(), "[0, 100) fires when the clock reaches 99");
        clock.advance(Duration::from_millis(2));
        feed(&mut op, &[(2, 0, 1)], &mut out);
        op.poll_pending(&mut Emitter::collecting(&mut out));
        assert_eq!(out, [(1, 0, 3)]);
        op.end_input(&mut out);
        assert_eq!(out[1..], [(2, 0, 1)]);
    }

    fn dropped(ctx: &RuntimeContext) -> u64 {
        ctx.metrics
            .custom(LATE_RECORDS_DROPPED)
            .load(Ordering::Relaxed)
    }

    fn restore<W: WindowAssigner, Tr: Trigger<Rec>>(
        from: &mut Op<W, Tr>,
        into: &mut Op<W, Tr>,
        ctx: &RuntimeContext,
    ) {
        let scope = ctx.scope();
        let bytes = from.snapshot_state(scope, 1).unwrap().unwrap();
        let state = RestoredState {
            checkpoint_id: Some(1),
            by_subtask: vec![Some(Arc::from(bytes))].into(),
        };
        into.restore_state(scope, &state).unwrap();
    }

    #[test]
    fn session_windows_merge_out_of_order_records_and_fire_once_the_gap_passed() {
        let clock = ManualClock::new();
        let ctx = context(&clock);
        let sessions = EventTimeSessionWindows::with_gap(Duration::from_millis(10));
        let mut op = operator(sessions, 0, &ctx);
        let mut out = Vec::new();
        // Key 1: sessions [0, 10), [25, 35), [12, 22); key 2: [3, 13).
        feed(
            &mut op,
            &[(1, 0, 1), (1, 25, 1), (1, 12, 1), (2, 3, 1)],
            &mut out,
        );
        assert_eq!(op.sessions[&1].len(), 3);
        // 8 bridges [0, 10) and [12, 22) into [0, 22), their sums merged.
        feed(&mut op, &[(1, 8, 1)], &mut out);
        assert_eq!(op.sessions[&1].len(), 2);
        op.process_watermark(Watermark(21), &mut out);
        assert_eq!(out, [(2, 3, 1), (1, 12, 3)], "in time order: 12, then 21");
        // [5, 15) alone would be cleaned up already: late, dropped.
        feed(&mut op, &[(1, 5, 1)], &mut out);
        assert_eq!(dropped(&ctx), 1);
        // [20, 30) touches the open [25, 35): the session grows backwards.
        feed(&mut op, &[(1, 20, 1)], &mut out);
        op.process_watermark(Watermark(30), &mut out);
        assert_eq!(out.len(), 2, "[20, 35) is still open");
        op.process_watermark(Watermark::MAX, &mut out);
        assert_eq!(out[2..], [(1, 25, 2)]);
        assert!(op.windows.is_empty() && op.sessions.is_empty());
        assert!(op.event_timers.is_empty());
    }

    #[test]
    fn a_late_record_within_the_lateness_merges_into_a_fired_session_and_fires_it_again() {
        let clock = ManualClock::new();
        let ctx = context(&clock);
        let sessions = EventTimeSessionWindows::with_gap(Duration::from_millis(10));
        let mut op = operator(sessions, 5, &ctx);
        let mut out = Vec::new();
        feed(&mut op, &[(1, 0, 1), (1, 5, 1)], &mut out);
        op.process_watermark(Watermark(16), &mut out);
        assert_eq!(out, [(1, 5, 2)], "[0, 15) fired, kept until 14 + 5");
        // [3, 13) merges into [0, 15), already due: it fires again at once.
        feed(&mut op, &[(1, 3, 1)], &mut out);
        assert_eq!(out[1..], [(1, 5, 3)]);
        op.process_watermark(Watermark(19), &mut out);
        feed(&mut op, &[(1, 4, 1)], &mut out);
        assert_eq!(dropped(&ctx), 1, "past the lateness");
        op.process_watermark(Watermark::MAX, &mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn sessions_survive_a_snapshot_and_restore_and_merge_after_it() {
        let clock = ManualClock::new();
        let ctx = context(&clock);
        let sessions = EventTimeSessionWindows::with_gap(Duration::from_millis(10));
        let mut op = operator(sessions, 0, &ctx);
        let mut out = Vec::new();
        feed(&mut op, &[(1, 0, 1), (1, 15, 1), (2, 40, 1)], &mut out);
        let mut restored = operator(sessions, 0, &ctx);
        restore(&mut op, &mut restored, &ctx);
        for op in [&mut op, &mut restored] {
            let mut out = Vec::new();
            feed(op, &[(1, 7, 1)], &mut out);
            op.process_watermark(Watermark::MAX, &mut out);
            assert_eq!(out, [(1, 15, 3), (2, 40, 1)]);
        }
    }

    #[test]
    fn processing_time_sessions_merge_on_the_clock() {
        let clock = ManualClock::new();
        let ctx = context(&clock);
        let sessions = ProcessingTimeSessionWindows::with_gap(Duration::from_millis(100));
        let mut op = operator(sessions, 0, &ctx);
        let mut out = Vec::new();
        feed(&mut op, &[(1, 0, 1)], &mut out);
        clock.advance(Duration::from_millis(60));
        feed(&mut op, &[(1, 0, 1)], &mut out);
        clock.advance(Duration::from_millis(98));
        op.poll_pending(&mut Emitter::collecting(&mut out));
        assert!(
            out.is_empty(),
            "[0, 160) is open until the clock reaches 159"
        );
        clock.advance(Duration::from_millis(1));
        op.poll_pending(&mut Emitter::collecting(&mut out));
        assert_eq!(out, [(1, 0, 2)]);
        assert!(op.windows.is_empty() && op.processing_timers.is_empty());
    }

    #[test]
    fn count_triggers_fire_every_n_records_of_a_global_window_and_purging_starts_over() {
        let clock = ManualClock::new();
        let ctx = context(&clock);
        let records: Vec<Rec> = (0..7).map(|i| (1, i, 1)).collect();
        let mut op = operator_with(GlobalWindows::create(), CountTrigger::of(3), 0, &ctx);
        let mut out = Vec::new();
        feed(&mut op, &records, &mut out);
        assert_eq!(out, [(1, 2, 3), (1, 5, 6)], "the window keeps its records");
        let purging = PurgingTrigger::of(CountTrigger::of(3));
        let mut op = operator_with(GlobalWindows::create(), purging, 0, &ctx);
        let mut restored = operator_with(GlobalWindows::create(), purging, 0, &ctx);
        let mut out = Vec::new();
        feed(&mut op, &records[..4], &mut out);
        restore(&mut op, &mut restored, &ctx);
        feed(&mut restored, &records[4..], &mut out);
        assert_eq!(out, [(1, 2, 3), (1, 5, 3)], "the count survives a restore");
        // As in Flink, a global window never ends: the 7th record is not emitted.
        restored.end_input(&mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn a_count_trigger_on_event_time_windows_fires_early_and_the_window_is_cleaned_up() {
        let clock = ManualClock::new();
        let ctx = context(&clock);
        let tumbling = TumblingEventTimeWindows::of(Duration::from_millis(10));
        let mut op = operator_with(tumbling, CountTrigger::of(2), 0, &ctx);
        let mut out = Vec::new();
        feed(&mut op, &[(1, 1, 1), (1, 2, 1), (1, 3, 1)], &mut out);
        assert_eq!(out, [(1, 2, 2)]);
        op.process_watermark(Watermark(9), &mut out);
        assert_eq!(out.len(), 1, "the count trigger does not fire on time");
        assert!(op.windows.is_empty(), "cleaned up at the window's end");
        feed(&mut op, &[(1, 4, 1)], &mut out);
        assert_eq!(dropped(&ctx), 1);
    }

    /// (key, time, value) windows summing what they hold after eviction.
    type Evicting<E> = WindowOperator<
        u8,
        Rec,
        Rec,
        fn(&Rec) -> u8,
        GlobalWindows,
        EvictingProcessWindow<fn(&u8, &TimeWindow, &[Rec], &mut dyn Collector<Rec>), E>,
        CountTrigger,
    >;

    fn sum_all(key: &u8, _: &TimeWindow, records: &[Rec], out: &mut dyn Collector<Rec>) {
        let last = records.iter().map(|r| r.1).max().unwrap_or(0);
        out.collect((*key, last, records.iter().map(|r| r.2).sum()));
    }

    fn evicting<E: crate::windows::Evictor<Rec>>(
        evictor: E,
        every: u64,
        ctx: &RuntimeContext,
    ) -> Evicting<E> {
        let sum_all = sum_all as fn(&u8, &TimeWindow, &[Rec], &mut dyn Collector<Rec>);
        operator_of(
            GlobalWindows::create(),
            EvictingProcessWindow(sum_all, evictor),
            CountTrigger::of(every),
            0,
            ctx,
        )
    }

    #[test]
    fn evictors_remove_records_before_or_after_the_window_function_for_good() {
        let clock = ManualClock::new();
        let ctx = context(&clock);
        // Values 1..=6: every 3 records, the sum of the newest 2.
        let records: Vec<Rec> = (1..=6).map(|i| (1, i as i64, i)).collect();
        let mut op = evicting(CountEvictor::of(2), 3, &ctx);
        let mut out = Vec::new();
        for r in &records {
            op.process(*r, &mut out);
        }
        assert_eq!(out, [(1, 3, 2 + 3), (1, 6, 5 + 6)]);
        // After: the function sees everything, then one record is kept.
        let mut op = evicting(CountEvictor::of(1).evict_after(), 3, &ctx);
        let mut out = Vec::new();
        for r in &records {
            op.process(*r, &mut out);
        }
        assert_eq!(out, [(1, 3, 1 + 2 + 3), (1, 6, 3 + 4 + 5 + 6)]);
        // By time (global windows: processing time, all 0 on the manual clock):
        // nothing is newer than the newest record by 1 ms or more.
        let mut op = evicting(TimeEvictor::of(Duration::from_millis(1)), 2, &ctx);
        let mut out = Vec::new();
        for r in &records[..4] {
            op.process(*r, &mut out);
        }
        assert_eq!(out, [(1, 2, 1 + 2), (1, 4, 1 + 2 + 3 + 4)]);
        clock.advance(Duration::from_millis(5));
        op.process((1, 5, 5), &mut out);
        op.process((1, 6, 6), &mut out);
        assert_eq!(out[2..], [(1, 6, 5 + 6)], "records 5 ms older are evicted");
    }

    /// A custom trigger: fires on event time as usual, and early every `0` ms of
    /// processing time while the window has records (its state: the pending early
    /// timer).
    #[derive(Clone)]
    struct EarlyEvery(i64);

    impl Trigger<Rec> for EarlyEvery {
        type State = Option<i64>;

        fn on_element(
            &mut self,
            _: &Rec,
            _: i64,
            window: &TimeWindow,
            ctx: &mut TriggerContext<'_, Option<i64>>,
        ) -> crate::windows::TriggerResult {
            ctx.register_event_time_timer(window.max_timestamp());
            if ctx.state().is_none() {
                let at = ctx.current_processing_time() + self.0;
                ctx.register_processing_time_timer(at);
                *ctx.state() = Some(at);
            }
            crate::windows::TriggerResult::Continue
        }

        fn on_event_time(
            &mut self,
            time: i64,
            window: &TimeWindow,
            _: &mut TriggerContext<'_, Option<i64>>,
        ) -> crate::windows::TriggerResult {
            if time == window.max_timestamp() {
                crate::windows::TriggerResult::Fire
            } else {
                crate::windows::TriggerResult::Continue
            }
        }

        fn on_processing_time(
            &mut self,
            time: i64,
            _: &TimeWindow,
            ctx: &mut TriggerContext<'_, Option<i64>>,
        ) -> crate::windows::TriggerResult {
            ctx.register_processing_time_timer(time + self.0);
            *ctx.state() = Some(time + self.0);
            crate::windows::TriggerResult::Fire
        }

        fn clear(&mut self, window: &TimeWindow, ctx: &mut TriggerContext<'_, Option<i64>>) {
            ctx.delete_event_time_timer(window.max_timestamp());
            if let Some(at) = ctx.state().take() {
                ctx.delete_processing_time_timer(at);
            }
        }
    }

    #[test]
    fn a_custom_trigger_fires_early_on_processing_time_and_its_timers_go_with_the_window() {
        let clock = ManualClock::new();
        let ctx = context(&clock);
        let tumbling = TumblingEventTimeWindows::of(Duration::from_millis(10));
        let mut op = operator_with(tumbling, EarlyEvery(100), 0, &ctx);
        let mut out = Vec::new();
        feed(&mut op, &[(1, 1, 1), (1, 2, 1)], &mut out);
        clock.advance(Duration::from_millis(100));
        op.poll_pending(&mut Emitter::collecting(&mut out));
        assert_eq!(out, [(1, 2, 2)], "an early result at 100 ms");
        feed(&mut op, &[(1, 3, 1)], &mut out);
        op.process_watermark(Watermark(9), &mut out);
        assert_eq!(
            out[1..],
            [(1, 3, 3)],
            "the final result at the window's end"
        );
        assert!(op.windows.is_empty());
        assert!(
            op.processing_timers.is_empty() && op.event_timers.is_empty(),
            "the trigger's clear deleted its early timer"
        );
        clock.advance(Duration::from_millis(500));
        op.poll_pending(&mut Emitter::collecting(&mut out));
        assert_eq!(out.len(), 2);
    }

    /// A key's entry as the window operator encoded it before deferred snapshots.
    #[derive(Serialize)]
    struct KeySnapshotBefore<'a, A, S> {
        windows: Vec<(TimeWindow, Option<&'a A>, &'a S)>,
        event_timers: Vec<(TimeWindow, i64)>,
        processing_timers: Vec<(TimeWindow, i64)>,
    }

    /// The synchronous `snapshot_state` as it was before deferred snapshots (kept
    /// as it was): checkpoints and savepoints it wrote must restore, so the
    /// encodings now must give its bytes.
    fn encoding_before_deferred_snapshots<W: WindowAssigner, Tr: Trigger<Rec>>(
        op: &Op<W, Tr>,
        max_parallelism: usize,
    ) -> Vec<u8> {
        let mut by_key: HashMap<&u8, KeySnapshotBefore<'_, Rec, Tr::State>> = HashMap::new();
        let empty = || KeySnapshotBefore {
            windows: Vec::new(),
            event_timers: Vec::new(),
            processing_timers: Vec::new(),
        };
        for (key, window, slot) in op.windows.iter() {
            by_key.entry(key).or_insert_with(empty).windows.push((
                *window,
                slot.acc.as_ref(),
                &slot.trigger,
            ));
        }
        for ((key, window), ts) in op.event_timers.iter() {
            let entry = by_key.entry(key).or_insert_with(empty);
            entry.event_timers.push((*window, *ts));
        }
        for ((key, window), ts) in op.processing_timers.iter() {
            let entry = by_key.entry(key).or_insert_with(empty);
            entry.processing_timers.push((*window, *ts));
        }
        for entry in by_key.values_mut() {
            entry.windows.sort_unstable_by_key(|(w, _, _)| *w);
            entry.event_timers.sort_unstable();
            entry.processing_timers.sort_unstable();
        }
        crate::checkpoint::snapshot_keyed(by_key.iter().map(|(k, v)| (*k, v)), max_parallelism)
            .unwrap()
    }

    #[test]
    fn a_deferred_snapshot_gives_the_synchronous_bytes_of_its_moment_in_the_format_before() {
        let clock = ManualClock::new();
        let ctx = context(&clock);
        let scope = StateScope {
            subtask_index: 0,
            parallelism: 1,
            max_parallelism: 128,
        };
        // Keys in distinct key groups: the order of keys in a group, which the
        // encoding before left to a hash map, cannot change the bytes.
        let mut groups = std::collections::HashSet::new();
        let keys: Vec<u8> = (0..=255u8)
            .filter(|k| {
                let hash = crate::key_group::stable_key_hash(k);
                groups.insert(crate::key_group::key_group_of(hash, 128))
            })
            .take(6)
            .collect();
        let sliding =
            SlidingEventTimeWindows::of(Duration::from_millis(10), Duration::from_millis(5));
        let make = || operator_with(sliding, EarlyEvery(100), 3, &ctx);
        let (mut op, mut reference) = (make(), make());
        let before: Vec<Rec> = keys
            .iter()
            .flat_map(|&k| [(k, 1, 1), (k, 7, 2), (k, 12, 4)])
            .collect();
        let mut out = Vec::new();
        for op in [&mut op, &mut reference] {
            feed(op, &before, &mut out);
            // Fires [-5, 5) and [0, 10) and cleans up [-5, 5) (lateness 3).
            op.process_watermark(Watermark(9), &mut out);
        }
        let sync = op.snapshot_state(scope, 1).unwrap().unwrap();
        assert_eq!(sync, encoding_before_deferred_snapshots(&op, 128));
        let deferred = op.snapshot_state_deferred(scope, 1).unwrap().unwrap();
        assert_eq!(
            format!("{deferred:?}"),
            "DeferredState::Later",
            "encoded later"
        );
        // The task goes on: new windows, timers fired, windows cleaned up.
        let after: Vec<Rec> = keys.iter().map(|&k| (k, 21, 8)).collect();
        feed(&mut op, &after, &mut out);
        clock.advance(Duration::from_millis(100));
        op.poll_pending(&mut Emitter::collecting(&mut out));
        op.process_watermark(Watermark(30), &mut out);
        assert_ne!(op.snapshot_state(scope, 1).unwrap().unwrap(), sync);
        let bytes = deferred.into_bytes().unwrap();
        assert_eq!(bytes, sync, "the bytes of the barrier's moment");
        // And it restores to that moment: the rest fires as it would have.
        let mut restored = make();
        let state = RestoredState {
            checkpoint_id: Some(1),
            by_subtask: vec![Some(Arc::from(bytes))].into(),
        };
        restored.restore_state(scope, &state).unwrap();
        let (mut expected, mut got) = (Vec::new(), Vec::new());
        reference.end_input(&mut expected);
        restored.end_input(&mut got);
        expected.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, expected);
        assert_eq!(got.len(), 12, "[5, 15) and [10, 20) of each key");
    }
}

#[cfg(test)]
#[path = "window_function_tests.rs"]
mod function_tests;
