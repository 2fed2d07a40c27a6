//! [`KeyedProcessFunctionOperator`]: runs a [`KeyedProcessFunction`] with per-key
//! state and event- and processing-time timers.

use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;

use hashbrown::HashMap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::checkpoint::blob::Blob;
use crate::checkpoint::keyed::KeyGroupWriter;
use crate::checkpoint::{DeferredState, RestoredState, StateError, restore_keyed, state_version};
use crate::checkpoint::{decode_state, encode_state};
use crate::clock::Clock;
use crate::functions::{Collector, KeySelector};
use crate::keyed_process_function::{KeyedContext, KeyedProcessFunction, TimeDomain};
use crate::operator::{Emitter, ForwardTo, Operator, RuntimeContext, StateScope};
use crate::process_context::{ProcessContext, SideOutputCache};
use crate::state::backend::{EncodeNamed, NamedTable};
use crate::state::{CowMap, CowSnapshot, KeyedStateBackend, StateKind, ValueState};
use crate::timers::{TimerQueue, TimerService, processing_time_of};
use crate::watermark::{NO_TIMESTAMP, TimestampFn, Watermark};

/// A key's entry in a checkpoint: its state and its timers.
#[derive(Serialize)]
struct KeySnapshotRef<'a, S> {
    state: Option<&'a S>,
    // Encoded as `Vec<i64>` (a length, then the elements).
    event_timers: &'a [i64],
    processing_timers: &'a [i64],
}

/// [`KeySnapshotRef`] read back.
#[derive(Deserialize)]
struct KeySnapshot<S> {
    state: Option<S>,
    event_timers: Vec<i64>,
    processing_timers: Vec<i64>,
}

/// An instance's checkpoint (format version 2): the keys' states and timers, and
/// each named state, all grouped by key group. (Version 1 wrote the first part
/// alone.)
#[derive(Serialize, Deserialize)]
struct FunctionSnapshot {
    keyed: Blob,
    named: Vec<NamedTable>,
}

/// Runs a [`KeyedProcessFunction`]: per-key value state, per-key timers fired in
/// timestamp order when the watermark (event time) or the job's clock (processing
/// time, checked after each batch and while the input is idle) passes them. Both
/// are checkpointed by key group. Processing-time timers still pending when the
/// input ends do not fire, as in Flink.
pub struct KeyedProcessFunctionOperator<K, I, O, KS, F: KeyedProcessFunction<K, I, O>> {
    key: KS,
    f: F,
    /// Each key's state (a key without one has no entry).
    state: CowMap<K, F::State>,
    named: KeyedStateBackend<K>,
    event_timers: TimerQueue<K>,
    processing_timers: TimerQueue<K>,
    side_outputs: SideOutputCache,
    watermark: Watermark,
    clock: Arc<dyn Clock>,
    timestamps: Option<TimestampFn<I>>,
    _types: PhantomData<fn(I) -> O>,
}

impl<K, I, O, KS, F: KeyedProcessFunction<K, I, O>> KeyedProcessFunctionOperator<K, I, O, KS, F> {
    /// Runs `f` for records grouped by `key` (event times from `timestamps`, if the
    /// stream has them), in the operator instance `ctx`.
    pub fn new(key: KS, f: F, timestamps: Option<TimestampFn<I>>, ctx: &RuntimeContext) -> Self {
        Self {
            key,
            f,
            state: CowMap::new(),
            named: KeyedStateBackend::new(ctx.services.clock.clone()),
            event_timers: TimerQueue::default(),
            processing_timers: TimerQueue::default(),
            side_outputs: SideOutputCache::new(ctx.side_outputs.clone()),
            watermark: Watermark::MIN,
            clock: ctx.services.clock.clone(),
            timestamps,
            _types: PhantomData,
        }
    }
}

impl<K, I, O, KS, F> KeyedProcessFunctionOperator<K, I, O, KS, F>
where
    K: Hash + Eq + Clone + Send + 'static,
    F: KeyedProcessFunction<K, I, O>,
{
    /// Calls `f` (an element or a timer) for `key` with its state, then keeps or
    /// drops the state as `f` left it.
    fn call<C: Collector<O> + ?Sized>(
        &mut self,
        key: K,
        timestamp: Option<i64>,
        domain: Option<TimeDomain>,
        out: &mut C,
        f: impl FnOnce(&mut F, &mut KeyedContext<'_, K, F::State, O>),
    ) {
        let mut slot = self.state.remove(&key);
        if let (Some(ts), Some(TimeDomain::EventTime)) = (timestamp, domain) {
            // What an event-time timer emits has its time (Flink's).
            out.set_timestamp(ts);
        }
        {
            let mut forward = ForwardTo(out);
            let out = ProcessContext::new(&mut forward, &mut self.side_outputs, self.watermark);
            let timers = TimerService::new(
                &key,
                &mut self.event_timers,
                &mut self.processing_timers,
                self.watermark,
                self.clock.as_ref(),
            );
            let mut ctx = KeyedContext::new(
                &key,
                ValueState::new(&mut slot),
                &mut self.named,
                timers,
                out,
                timestamp,
                domain,
            );
            f(&mut self.f, &mut ctx);
        }
        if let Some(state) = slot {
            self.state.insert(key, state);
        }
    }

    /// The function, for an operator built around this one.
    pub(crate) fn function_mut(&mut self) -> &mut F {
        &mut self.f
    }

    /// Calls `f` outside any key (for a broadcast record) with the function, the
    /// outputs, every key's named state and the processing time now.
    pub(crate) fn call_unkeyed<C: Collector<O> + ?Sized>(
        &mut self,
        out: &mut C,
        f: impl for<'x> FnOnce(&'x mut F, ProcessContext<'x, O>, &'x mut KeyedStateBackend<K>, i64),
    ) {
        let now = processing_time_of(self.clock.as_ref());
        let mut forward = ForwardTo(out);
        let ctx = ProcessContext::new(&mut forward, &mut self.side_outputs, self.watermark);
        f(&mut self.f, ctx, &mut self.named, now);
    }

    /// Calls the function for `record`, whose event time is `timestamp`.
    fn process_at<C: Collector<O> + ?Sized>(
        &mut self,
        record: I,
        timestamp: Option<i64>,
        out: &mut C,
    ) where
        KS: KeySelector<I, K>,
    {
        let key = self.key.key(&record);
        self.call(key, timestamp, None, out, |f, ctx| {
            f.process_element(record, ctx)
        });
    }

    /// Fires the processing-time timers the job's clock has reached.
    fn fire_processing_timers<C: Collector<O> + ?Sized>(&mut self, out: &mut C) {
        let now = processing_time_of(self.clock.as_ref());
        while let Some((key, ts)) = self.processing_timers.pop_due(now) {
            self.call(
                key,
                Some(ts),
                Some(TimeDomain::ProcessingTime),
                out,
                |f, ctx| f.on_timer(ts, ctx),
            );
        }
    }
}

impl<K, I, O, KS, F> Operator<I, O> for KeyedProcessFunctionOperator<K, I, O, KS, F>
where
    K: Hash + Eq + Clone + Send + Serialize + DeserializeOwned + 'static,
    I: 'static,
    O: 'static,
    KS: KeySelector<I, K>,
    F: KeyedProcessFunction<K, I, O>,
{
    fn process<C: Collector<O> + ?Sized>(&mut self, record: I, out: &mut C) {
        let timestamp = self.timestamps.as_ref().map(|t| t(&record));
        self.process_at(record, timestamp, out);
    }

    fn process_timestamped<C: Collector<O> + ?Sized>(
        &mut self,
        record: I,
        timestamp: i64,
        out: &mut C,
    ) {
        self.process_at(
            record,
            (timestamp != NO_TIMESTAMP).then_some(timestamp),
            out,
        );
    }

    fn process_batch(&mut self, batch: &mut Vec<I>, out: &mut Emitter<'_, O>) {
        for record in batch.drain(..) {
            self.process(record, out);
        }
        self.fire_processing_timers(out);
    }

    fn poll_pending(&mut self, out: &mut Emitter<'_, O>) -> bool {
        self.fire_processing_timers(out);
        false
    }

    /// Fires the event-time timers up to `watermark`, in timestamp order, then
    /// passes the watermark on (what the timers emit precedes it).
    fn process_watermark<C: Collector<O> + ?Sized>(&mut self, watermark: Watermark, out: &mut C) {
        self.watermark = watermark;
        while let Some((key, ts)) = self.event_timers.pop_due(watermark.timestamp()) {
            self.call(key, Some(ts), Some(TimeDomain::EventTime), out, |f, ctx| {
                f.on_timer(ts, ctx)
            });
        }
        out.emit_watermark(watermark);
    }

    /// Each key's state, timers and named states, grouped by key group.
    fn snapshot_state(
        &mut self,
        scope: StateScope,
        checkpoint_id: u64,
    ) -> Result<Option<Vec<u8>>, StateError> {
        crate::checkpoint::encode_now(self.snapshot_state_deferred(scope, checkpoint_id))
    }

    /// A copy-on-write snapshot of the keys' states and the named states (a pointer
    /// per shard, see [`CowMap`]) and a plain copy of the timers (usually few); the
    /// grouping and encoding run later, on the checkpoint's thread.
    fn snapshot_state_deferred(
        &mut self,
        scope: StateScope,
        _: u64,
    ) -> Result<Option<DeferredState>, StateError> {
        let timers = self.copy_timers();
        let states = self.state.snapshot();
        let named = self.named.snapshot_deferred(scope.max_parallelism);
        Ok(Some(DeferredState::later(move || {
            encode_function_snapshot(&states, timers, named, scope.max_parallelism)
        })))
    }

    fn restore_state(
        &mut self,
        scope: StateScope,
        restored: &RestoredState,
    ) -> Result<(), StateError> {
        let keyed = match restored.all().next() {
            None => return Ok(()),
            Some(bytes) if state_version(bytes)? == 1 => restored.clone(),
            Some(_) => self.restore_named(scope, restored)?,
        };
        for (key, entry) in restore_keyed::<K, KeySnapshot<F::State>>(&keyed, scope)? {
            for ts in entry.event_timers {
                self.event_timers.register(key.clone(), ts);
            }
            for ts in entry.processing_timers {
                self.processing_timers.register(key.clone(), ts);
            }
            if let Some(state) = entry.state {
                self.state.insert(key, state);
            }
        }
        Ok(())
    }
}

/// Each key's event and processing timers, sorted.
type KeyTimers = (Vec<i64>, Vec<i64>);

/// Every (key, timestamp) of the event and of the processing timers.
type TimerCopy<K> = (Vec<(K, i64)>, Vec<(K, i64)>);

/// The timers of [`KeyedProcessFunctionOperator::copy_timers`] by key.
fn group_timers<K: Hash + Eq>((event, processing): TimerCopy<K>) -> HashMap<K, KeyTimers> {
    let mut timers: HashMap<K, KeyTimers> = HashMap::new();
    for (key, ts) in event {
        timers.entry(key).or_default().0.push(ts);
    }
    for (key, ts) in processing {
        timers.entry(key).or_default().1.push(ts);
    }
    for (event, processing) in timers.values_mut() {
        // Registration order is not kept: equal timestamps of one key cannot
        // exist, and sorting makes the snapshot deterministic.
        event.sort_unstable();
        processing.sort_unstable();
    }
    timers
}

/// Encodes an instance's checkpoint (format version 2 and later) from a snapshot of
/// its keys' states, their timers and its named states.
fn encode_function_snapshot<K, S>(
    states: &CowSnapshot<K, S>,
    timers: TimerCopy<K>,
    named: EncodeNamed,
    max_parallelism: usize,
) -> Result<Vec<u8>, StateError>
where
    K: Hash + Eq + Serialize,
    S: Serialize,
{
    let mut timers = group_timers(timers);
    let mut keyed = KeyGroupWriter::new(max_parallelism);
    states.try_for_each(|key, state| {
        let (event, processing) = match timers.is_empty() {
            true => None,
            false => timers.remove(key),
        }
        .unwrap_or_default();
        keyed.add(key, &key_snapshot(Some(state), &event, &processing))
    })?;
    for (key, (event, processing)) in &timers {
        keyed.add(key, &key_snapshot::<S>(None, event, processing))?;
    }
    encode_state(&FunctionSnapshot {
        keyed: Blob(keyed.finish()?),
        named: named()?,
    })
}

/// A key's entry, borrowed.
fn key_snapshot<'a, S>(
    state: Option<&'a S>,
    event_timers: &'a [i64],
    processing_timers: &'a [i64],
) -> KeySnapshotRef<'a, S> {
    KeySnapshotRef {
        state,
        event_timers,
        processing_timers,
    }
}

impl<K, I, O, KS, F> KeyedProcessFunctionOperator<K, I, O, KS, F>
where
    K: Hash + Eq + Clone + Send + Serialize + DeserializeOwned + 'static,
    F: KeyedProcessFunction<K, I, O>,
{
    /// Every timer (often none), copied for a snapshot: a plain copy on the task's
    /// thread, grouped by key later by [`group_timers`].
    fn copy_timers(&self) -> TimerCopy<K> {
        (
            self.event_timers.iter().cloned().collect(),
            self.processing_timers.iter().cloned().collect(),
        )
    }

    /// Restores the named states of a version 2 checkpoint; returns every
    /// instance's snapshot of the keys' states and timers.
    fn restore_named(
        &mut self,
        scope: StateScope,
        restored: &RestoredState,
    ) -> Result<RestoredState, StateError> {
        let parallelism = restored.by_subtask.len();
        let mut keyed = Vec::with_capacity(parallelism);
        // Per named state: its name, kind and every instance's snapshot of it.
        type Snapshots = Vec<Option<Arc<[u8]>>>;
        let mut tables: Vec<(String, StateKind, Snapshots)> = Vec::new();
        for (subtask, bytes) in restored.by_subtask.iter().enumerate() {
            let Some(bytes) = bytes else {
                keyed.push(None);
                continue;
            };
            let snapshot: FunctionSnapshot = decode_state(bytes)?;
            keyed.push(Some(Arc::from(snapshot.keyed.0)));
            for table in snapshot.named {
                let at = match tables.iter().position(|(n, _, _)| *n == table.name) {
                    Some(at) => at,
                    None => {
                        tables.push((table.name, table.kind, vec![None; parallelism]));
                        tables.len() - 1
                    }
                };
                tables[at].2[subtask] = Some(Arc::from(table.state.0));
            }
        }
        let tables = tables
            .into_iter()
            .map(|(name, kind, by_subtask)| {
                let state = RestoredState {
                    checkpoint_id: restored.checkpoint_id,
                    by_subtask: by_subtask.into(),
                };
                (name, kind, state)
            })
            .collect();
        self.named.restore(tables, scope)?;
        Ok(RestoredState {
            checkpoint_id: restored.checkpoint_id,
            by_subtask: keyed.into(),
        })
    }
}

#[cfg(test)]
mod tests {

    use std::time::Duration;

    use super::*;
    use crate::checkpoint::snapshot_keyed;
    use crate::clock::ManualClock;

    fn context(clock: &ManualClock) -> RuntimeContext {
        RuntimeContext::standalone("timers", 0, 1, Arc::new(clock.clone()))
    }

    /// Records are (key, timer timestamp, processing?); a negative timestamp deletes
    /// the timer at its absolute value. Emits (key, fired timestamp, domain, count of
    /// the key's records so far).
    #[derive(Clone)]
    struct Timers;

    type Out = (u8, i64, &'static str, u32);

    impl KeyedProcessFunction<u8, (u8, i64, bool), Out> for Timers {
        type State = u32;

        fn process_element(
            &mut self,
            (_, ts, processing): (u8, i64, bool),
            ctx: &mut KeyedContext<'_, u8, u32, Out>,
        ) {
            let n = ctx.state().value().copied().unwrap_or(0);
            ctx.state().update(n + 1);
            let timers = ctx.timer_service();
            match (ts < 0, processing) {
                (false, false) => timers.register_event_time_timer(ts),
                (false, true) => timers.register_processing_time_timer(ts),
                (true, false) => timers.delete_event_time_timer(-ts),
                (true, true) => timers.delete_processing_time_timer(-ts),
            }
        }

        fn on_timer(&mut self, ts: i64, ctx: &mut KeyedContext<'_, u8, u32, Out>) {
            let domain = match ctx.time_domain() {
                Some(TimeDomain::EventTime) => "event",
                Some(TimeDomain::ProcessingTime) => "processing",
                None => "none",
            };
            assert_eq!(ctx.timestamp(), Some(ts));
            let (key, n) = (*ctx.key(), ctx.state().value().copied().unwrap_or(0));
            ctx.collect((key, ts, domain, n));
        }
    }

    type Op =
        KeyedProcessFunctionOperator<u8, (u8, i64, bool), Out, fn(&(u8, i64, bool)) -> u8, Timers>;

    fn operator(clock: &ManualClock) -> Op {
        KeyedProcessFunctionOperator::new(
            (|r: &(u8, i64, bool)| r.0) as fn(&(u8, i64, bool)) -> u8,
            Timers,
            None,
            &context(clock),
        )
    }

    fn feed(op: &mut Op, records: &[(u8, i64, bool)], out: &mut Vec<Out>) {
        let mut batch = records.to_vec();
        let mut emitted = Vec::new();
        op.process_batch(&mut batch, &mut Emitter::collecting(&mut emitted));
        out.append(&mut emitted);
    }

    #[test]
    fn event_timers_fire_once_per_key_and_timestamp_in_timestamp_order() {
        let clock = ManualClock::new();
        let mut op = operator(&clock);
        let mut out = Vec::new();
        feed(
            &mut op,
            &[
                (1, 30, false),
                (2, 10, false),
                (1, 30, false),
                (2, 20, false),
            ],
            &mut out,
        );
        feed(&mut op, &[(3, 15, false), (3, -15, false)], &mut out);
        op.process_watermark(Watermark(19), &mut out);
        assert_eq!(out, [(2, 10, "event", 2)]);
        op.process_watermark(Watermark(i64::MAX), &mut out);
        assert_eq!(out[1..], [(2, 20, "event", 2), (1, 30, "event", 2)]);
        assert!(op.event_timers.is_empty());
    }

    #[test]
    fn processing_timers_fire_when_the_clock_passes_them() {
        let clock = ManualClock::new();
        let mut op = operator(&clock);
        let mut out = Vec::new();
        feed(
            &mut op,
            &[(1, 100, true), (2, 50, true), (2, 70, true)],
            &mut out,
        );
        feed(&mut op, &[(2, -70, true)], &mut out);
        clock.advance(Duration::from_millis(60));
        op.poll_pending(&mut Emitter::collecting(&mut out));
        assert_eq!(out, [(2, 50, "processing", 3)]);
        clock.advance(Duration::from_millis(40));
        feed(&mut op, &[], &mut out);
        assert_eq!(out[1..], [(1, 100, "processing", 1)]);
        assert!(op.processing_timers.is_empty());
    }

    #[test]
    fn state_and_timers_survive_a_snapshot_and_restore() {
        let clock = ManualClock::new();
        let mut op = operator(&clock);
        let mut out = Vec::new();
        feed(
            &mut op,
            &[(1, 30, false), (2, 10, false), (2, 40, true)],
            &mut out,
        );
        let scope = StateScope {
            subtask_index: 0,
            parallelism: 1,
            max_parallelism: 128,
        };
        let bytes = op.snapshot_state(scope, 1).unwrap().unwrap();
        let mut restored = operator(&clock);
        restored
            .restore_state(
                scope,
                &RestoredState {
                    checkpoint_id: Some(1),
                    by_subtask: vec![Some(Arc::from(bytes))].into(),
                },
            )
            .unwrap();
        restored.process_watermark(Watermark(100), &mut out);
        clock.advance(Duration::from_millis(40));
        restored.poll_pending(&mut Emitter::collecting(&mut out));
        assert_eq!(
            out,
            [
                (2, 10, "event", 2),
                (1, 30, "event", 1),
                (2, 40, "processing", 2)
            ]
        );
    }

    #[test]
    fn a_snapshot_of_format_version_1_restores() {
        // Version 1 wrote (state, event timers, processing timers) per key.
        let entries = [(1u8, (Some(4u32), vec![30i64], Vec::<i64>::new()))];
        let mut bytes = snapshot_keyed(entries.iter().map(|(k, v)| (k, v)), 128).unwrap();
        bytes[4..8].copy_from_slice(&1u32.to_le_bytes());
        let clock = ManualClock::new();
        let mut op = operator(&clock);
        let scope = StateScope {
            subtask_index: 0,
            parallelism: 1,
            max_parallelism: 128,
        };
        op.restore_state(
            scope,
            &RestoredState {
                checkpoint_id: Some(1),
                by_subtask: vec![Some(Arc::from(bytes))].into(),
            },
        )
        .unwrap();
        let mut out = Vec::new();
        op.process_watermark(Watermark(100), &mut out);
        assert_eq!(out, [(1, 30, "event", 4)]);
    }
}
