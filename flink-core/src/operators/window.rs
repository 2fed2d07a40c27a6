//! [`WindowOperator`]: keyed windows over event or processing time.

use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;

use hashbrown::HashMap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{RestoredState, StateError, restore_keyed, snapshot_keyed};
use crate::clock::Clock;
use crate::functions::{Collector, KeySelector};
use crate::metrics::Counter;
use crate::operator::{Emitter, ForwardTo, Operator, RuntimeContext, StateScope};
use crate::side_output::SideOutput;
use crate::timers::{TimerQueue, processing_time_of};
use crate::watermark::{TimestampFn, Watermark};
use crate::windows::{TimeWindow, WindowAggregation, WindowAssigner};

/// The name of the counter of late records dropped (Flink's metric name).
pub const LATE_RECORDS_DROPPED: &str = "numLateRecordsDropped";

/// A key's entry in a checkpoint: its windows' state and their timers.
#[derive(Serialize)]
struct KeySnapshotRef<'a, A> {
    windows: Vec<(TimeWindow, &'a A)>,
    timers: Vec<(TimeWindow, i64)>,
}

/// [`KeySnapshotRef`] read back.
#[derive(Deserialize)]
struct KeySnapshot<A> {
    windows: Vec<(TimeWindow, A)>,
    timers: Vec<(TimeWindow, i64)>,
}

/// How the window operator is set up, besides its key, assigner and function.
pub struct WindowSettings<I> {
    /// How long after a window's end (in event time) records may still update it.
    pub allowed_lateness_ms: i64,
    /// Where records too late for every window go (else they are counted as
    /// dropped in [`LATE_RECORDS_DROPPED`]).
    pub late_output: Option<SideOutput<I>>,
    /// Each record's event timestamp (needed for event-time windows).
    pub timestamps: Option<TimestampFn<I>>,
}

/// Keyed windows, as Flink's `WindowOperator` with its default triggers: records go
/// into the windows the assigner gives for their time; an event-time window fires
/// when the watermark reaches its last millisecond, and again for each record that
/// arrives within the allowed lateness after that; its state is dropped once the
/// watermark passes its end plus the lateness. A processing-time window fires when
/// the job's clock passes its end (checked after each batch and while the input is
/// idle). The end of the input fires every window still pending. Window state and
/// timers are checkpointed by key group.
pub struct WindowOperator<K, I, O, KS, W, A: WindowAggregation<K, I, O>> {
    key: KS,
    assigner: W,
    agg: A,
    event_time: bool,
    settings: WindowSettings<I>,
    windows: HashMap<(K, TimeWindow), Option<A::Acc>>,
    timers: TimerQueue<(K, TimeWindow)>,
    watermark: Watermark,
    clock: Arc<dyn Clock>,
    dropped: Counter,
    assigned: Vec<TimeWindow>,
    _types: PhantomData<fn(I) -> O>,
}

impl<K, I, O, KS, W, A> WindowOperator<K, I, O, KS, W, A>
where
    K: Hash + Eq + Clone + 'static,
    I: Clone + 'static,
    W: WindowAssigner,
    A: WindowAggregation<K, I, O>,
{
    /// Windows of `assigner` per key of `key`, aggregated by `agg`.
    pub fn new(
        key: KS,
        assigner: W,
        agg: A,
        settings: WindowSettings<I>,
        ctx: &RuntimeContext,
    ) -> Self {
        Self {
            key,
            event_time: assigner.is_event_time(),
            assigner,
            agg,
            settings,
            windows: HashMap::new(),
            timers: TimerQueue::default(),
            watermark: Watermark::MIN,
            clock: ctx.services.clock.clone(),
            dropped: Counter::new(ctx.metrics.custom(LATE_RECORDS_DROPPED)),
            assigned: Vec::new(),
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

    /// Adds `record` of `key` at `timestamp` to its windows, firing those already
    /// due (a late record within the lateness).
    fn add<C: Collector<O> + ?Sized>(&mut self, key: K, record: I, timestamp: i64, out: &mut C) {
        let mut assigned = std::mem::take(&mut self.assigned);
        assigned.clear();
        self.assigner.assign_windows(timestamp, &mut assigned);
        if self.event_time {
            // Windows already cleaned up take nothing more.
            let watermark = self.watermark.timestamp();
            assigned.retain(|w| self.cleanup_time(w) > watermark);
        }
        match assigned.split_last() {
            None => self.late(record),
            Some((last, rest)) => {
                for window in rest {
                    self.add_to(key.clone(), *window, record.clone(), out);
                }
                self.add_to(key, *last, record, out);
            }
        }
        self.assigned = assigned;
    }

    fn add_to<C: Collector<O> + ?Sized>(
        &mut self,
        key: K,
        window: TimeWindow,
        record: I,
        out: &mut C,
    ) {
        let slot = self.windows.entry((key.clone(), window)).or_insert(None);
        self.agg.add(slot, record);
        let due = self.event_time && window.max_timestamp() <= self.watermark.timestamp();
        if due {
            // On time for the lateness, late for the window: it fires again now.
            if let Some(acc) = slot.as_ref() {
                self.agg.emit(&key, &window, acc, &mut ForwardTo(out));
            }
        } else {
            self.timers
                .register((key.clone(), window), window.max_timestamp());
        }
        let cleanup = self.cleanup_time(&window);
        if cleanup != window.max_timestamp() {
            self.timers.register((key, window), cleanup);
        }
    }

    /// A record too late for every window it belongs to.
    fn late(&mut self, record: I) {
        match self.settings.late_output.as_mut() {
            Some(side) => side.collect(record),
            None => self.dropped.inc(),
        }
    }

    /// Fires (at the window's end) or cleans up (at its end plus the lateness) every
    /// timer due at `time`, in timestamp order.
    fn fire_due<C: Collector<O> + ?Sized>(&mut self, time: i64, out: &mut C) {
        while let Some(((key, window), ts)) = self.timers.pop_due(time) {
            let entry = (key, window);
            if ts == window.max_timestamp()
                && let Some(Some(acc)) = self.windows.get(&entry)
            {
                self.agg.emit(&entry.0, &window, acc, &mut ForwardTo(out));
            }
            if ts == self.cleanup_time(&window) {
                self.windows.remove(&entry);
            }
        }
    }
}

impl<K, I, O, KS, W, A> Operator<I, O> for WindowOperator<K, I, O, KS, W, A>
where
    K: Hash + Eq + Clone + Send + Serialize + DeserializeOwned + 'static,
    I: Clone + Send + 'static,
    O: 'static,
    KS: KeySelector<I, K>,
    W: WindowAssigner,
    A: WindowAggregation<K, I, O>,
{
    fn process<C: Collector<O> + ?Sized>(&mut self, record: I, out: &mut C) {
        let key = self.key.key(&record);
        let timestamp = match (&self.settings.timestamps, self.event_time) {
            (Some(ts), true) => ts(&record),
            // Checked when the job is built; a record without a time is late.
            (None, true) => i64::MIN,
            (_, false) => processing_time_of(self.clock.as_ref()),
        };
        self.add(key, record, timestamp, out);
    }

    fn process_batch(&mut self, batch: &mut Vec<I>, out: &mut Emitter<'_, O>) {
        for record in batch.drain(..) {
            self.process(record, out);
        }
        if !self.event_time {
            self.fire_due(processing_time_of(self.clock.as_ref()), out);
        }
    }

    fn poll_pending(&mut self, out: &mut Emitter<'_, O>) -> bool {
        if !self.event_time {
            self.fire_due(processing_time_of(self.clock.as_ref()), out);
        }
        false
    }

    /// Fires the event-time windows up to `watermark`, then passes it on.
    fn process_watermark<C: Collector<O> + ?Sized>(&mut self, watermark: Watermark, out: &mut C) {
        self.watermark = watermark;
        if self.event_time {
            self.fire_due(watermark.timestamp(), out);
        }
        out.emit_watermark(watermark);
    }

    /// Every window still pending fires: the input is complete.
    fn end_input<C: Collector<O> + ?Sized>(&mut self, out: &mut C) {
        self.fire_due(i64::MAX, out);
    }

    fn snapshot_state(&mut self, scope: StateScope, _: u64) -> Result<Option<Vec<u8>>, StateError> {
        let mut by_key: HashMap<&K, KeySnapshotRef<'_, A::Acc>> = HashMap::new();
        let empty = || KeySnapshotRef {
            windows: Vec::new(),
            timers: Vec::new(),
        };
        for ((key, window), acc) in &self.windows {
            if let Some(acc) = acc {
                by_key
                    .entry(key)
                    .or_insert_with(empty)
                    .windows
                    .push((*window, acc));
            }
        }
        for ((key, window), ts) in self.timers.iter() {
            by_key
                .entry(key)
                .or_insert_with(empty)
                .timers
                .push((*window, *ts));
        }
        for entry in by_key.values_mut() {
            // Deterministic snapshots: windows and timers in time order.
            entry.windows.sort_unstable_by_key(|(w, _)| *w);
            entry.timers.sort_unstable();
        }
        snapshot_keyed(by_key.iter().map(|(k, v)| (*k, v)), scope.max_parallelism).map(Some)
    }

    fn restore_state(
        &mut self,
        scope: StateScope,
        restored: &RestoredState,
    ) -> Result<(), StateError> {
        let entries = restore_keyed::<K, KeySnapshot<A::Acc>>(restored, scope)?;
        for (key, entry) in entries {
            // Timers in time order, so equal times fire as they did before.
            for (window, ts) in entry.timers {
                self.timers.register((key.clone(), window), ts);
            }
            for (window, acc) in entry.windows {
                self.windows.insert((key.clone(), window), Some(acc));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;
    use crate::metrics::OperatorMetrics;
    use crate::services::{RuntimeServices, Spawner};
    use crate::side_output::SideOutputs;
    use crate::windows::{
        ReduceWindow, SlidingEventTimeWindows, TumblingEventTimeWindows,
        TumblingProcessingTimeWindows,
    };

    struct NoSpawner;
    impl Spawner for NoSpawner {
        fn spawn(&self, _: futures::future::BoxFuture<'static, ()>) {}
    }

    fn context(clock: &ManualClock) -> RuntimeContext {
        RuntimeContext {
            operator_name: "window".into(),
            subtask_index: 0,
            parallelism: 1,
            max_parallelism: 128,
            metrics: Arc::new(OperatorMetrics::default()),
            side_outputs: SideOutputs::new(Arc::new(AtomicU64::new(0))),
            services: RuntimeServices::new(Arc::new(clock.clone()), Arc::new(NoSpawner)),
            node_id: 0,
            restored: RestoredState::none(),
        }
    }

    /// (key, timestamp, count): counts add up per key and window.
    type Rec = (u8, i64, u32);
    type Sum = ReduceWindow<fn(Rec, Rec) -> Rec>;
    type Op<W> = WindowOperator<u8, Rec, Rec, fn(&Rec) -> u8, W, Sum>;

    fn sum(a: Rec, b: Rec) -> Rec {
        (a.0, a.1.max(b.1), a.2 + b.2)
    }

    fn operator<W: WindowAssigner>(assigner: W, lateness_ms: i64, ctx: &RuntimeContext) -> Op<W> {
        let settings = WindowSettings {
            allowed_lateness_ms: lateness_ms,
            late_output: None,
            timestamps: Some(Arc::new(|r: &Rec| r.1)),
        };
        WindowOperator::new(
            (|r: &Rec| r.0) as fn(&Rec) -> u8,
            assigner,
            ReduceWindow(sum as fn(Rec, Rec) -> Rec),
            settings,
            ctx,
        )
    }

    fn feed<W: WindowAssigner>(op: &mut Op<W>, records: &[Rec], out: &mut Vec<Rec>) {
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
        assert!(op.windows.is_empty() && op.timers.is_empty());
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
}
