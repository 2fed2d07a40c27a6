//! [`Operator`]: the generic piece every built-in transformation is made of, and
//! [`Chained`], which runs an operator inside a task and hands its output to the next
//! operator by a plain call.

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::checkpoint::{
    ChainSnapshot, CheckpointBarrier, DeferredState, RestoredState, StateError,
};
use crate::failure::{attribute_panics, fail_operator};
use crate::functions::Collector;
use crate::metrics::{Counter, OperatorMetrics};
use crate::operators::PerRecordStamps;
use crate::output::Output;
use crate::services::RuntimeServices;
use crate::side_output::{OutputTag, RecordTimestamp, SideOutput, SideOutputControl, SideOutputs};
use crate::timestamped::Timestamped;
use crate::watermark::{Watermark, WatermarkStatus};

/// What a parallel operator instance knows about where it runs.
#[derive(Debug, Clone)]
pub struct RuntimeContext {
    /// The operator's name, as shown in plans and errors.
    pub operator_name: Arc<str>,
    /// This instance's index, `0..parallelism`.
    pub subtask_index: usize,
    /// How many instances the operator runs as.
    pub parallelism: usize,
    /// Number of key groups.
    pub max_parallelism: usize,
    /// Live record counters for this instance.
    pub metrics: Arc<OperatorMetrics>,
    /// The side outputs wired to this instance.
    pub side_outputs: SideOutputs,
    /// Clock, spawner and cancellation of the job.
    pub services: RuntimeServices,
    /// The graph node this instance runs (its state is stored under it).
    pub node_id: usize,
    /// The state to start from: a checkpoint's, after a restart; empty otherwise.
    pub restored: RestoredState,
}

impl RuntimeContext {
    /// A context for driving an operator, source reader or sink by hand, outside a
    /// job (unit tests, tools, micro-benchmarks): instance `subtask_index` of
    /// `parallelism` of node 0 named `name`, 128 key groups, fresh metrics, side
    /// outputs nobody reads, `clock` as the job's clock, nothing restored; spawned
    /// futures run on threads of their own ([`ThreadSpawner`]).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use flink_core::clock::ManualClock;
    /// use flink_core::operator::RuntimeContext;
    ///
    /// let ctx = RuntimeContext::standalone("my-operator", 1, 2, Arc::new(ManualClock::new()));
    /// assert_eq!((ctx.subtask_index, ctx.parallelism, ctx.max_parallelism), (1, 2, 128));
    /// ```
    ///
    /// [`ThreadSpawner`]: crate::services::ThreadSpawner
    pub fn standalone(
        name: &str,
        subtask_index: usize,
        parallelism: usize,
        clock: Arc<dyn crate::clock::Clock>,
    ) -> Self {
        Self {
            operator_name: name.into(),
            subtask_index,
            parallelism,
            max_parallelism: 128,
            metrics: Arc::new(OperatorMetrics::default()),
            side_outputs: SideOutputs::new(Arc::new(std::sync::atomic::AtomicU64::new(0))),
            services: RuntimeServices::new(clock, Arc::new(crate::services::ThreadSpawner)),
            node_id: 0,
            restored: RestoredState::none(),
        }
    }

    /// Where this instance sits among its node's instances, for keyed state.
    pub fn scope(&self) -> StateScope {
        StateScope {
            subtask_index: self.subtask_index,
            parallelism: self.parallelism,
            max_parallelism: self.max_parallelism,
        }
    }

    /// The side output named by `tag`, for an operator to keep and write into.
    pub fn side_output<T: 'static>(&self, tag: &OutputTag<T>) -> SideOutput<T> {
        self.side_outputs.get(tag)
    }
}

/// Which instance an operator's state belongs to: keyed state is written and read by
/// key group within this scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateScope {
    /// The instance's index, `0..parallelism`.
    pub subtask_index: usize,
    /// How many instances the operator runs as.
    pub parallelism: usize,
    /// Number of key groups.
    pub max_parallelism: usize,
}

/// A record-at-a-time operator. Generic over the output so the call into the next
/// chained operator can be inlined where the types allow.
pub trait Operator<I, O>: Send + 'static {
    /// Processes one record, emitting any results into `out`.
    fn process<C: Collector<O> + ?Sized>(&mut self, record: I, out: &mut C);

    /// Processes one record of a stream whose records carry event timestamps
    /// (see [`Timestamped`](crate::timestamped::Timestamped)), called instead of
    /// [`process`](Operator::process) there. `timestamp` is the record's
    /// ([`NO_TIMESTAMP`](crate::watermark::NO_TIMESTAMP) for a record without one);
    /// what the operator emits is stamped with it unless it calls
    /// [`Collector::set_timestamp`]. The default ignores it; operators that need
    /// event time (windows, process functions, joins) use it.
    #[inline]
    fn process_timestamped<C: Collector<O> + ?Sized>(
        &mut self,
        record: I,
        _timestamp: i64,
        out: &mut C,
    ) {
        self.process(record, out);
    }

    /// Processes a batch of records that carry timestamps, leaving `batch` empty:
    /// how [`Stamped`](crate::operators::Stamped) runs the operator on a batch. The
    /// default passes each record to [`process_timestamped`](Self::process_timestamped)
    /// into `out.record(timestamp)`; a keyed operator overrides it to take the
    /// batch's keys in one call ([`KeySelector::keys_of_stamped`]).
    ///
    /// [`KeySelector::keys_of_stamped`]: crate::functions::KeySelector::keys_of_stamped
    #[inline]
    fn process_timestamped_batch<C: Collector<Timestamped<O>> + ?Sized>(
        &mut self,
        batch: &mut Vec<Timestamped<I>>,
        out: &mut PerRecordStamps<'_, C>,
    ) {
        for record in batch.drain(..) {
            let out = out.record(record.timestamp);
            self.process_timestamped(record.value, record.timestamp, out);
        }
    }

    /// Processes a batch, leaving `batch` empty. The default calls [`process`] per
    /// record into `out`; being generic, it compiles to a loop with the user
    /// function inlined.
    ///
    /// [`process`]: Operator::process
    #[inline]
    fn process_batch(&mut self, batch: &mut Vec<I>, out: &mut Emitter<'_, O>) {
        for record in batch.drain(..) {
            self.process(record, out);
        }
    }

    /// Emits results that became ready without new input (such as completed async
    /// calls) and says whether more are still pending. The task calls it while its
    /// input is idle.
    fn poll_pending(&mut self, _out: &mut Emitter<'_, O>) -> bool {
        false
    }

    /// Called once after the last record; may emit final results.
    fn end_input<C: Collector<O> + ?Sized>(&mut self, _out: &mut C) {}

    /// Called instead of [`end_input`](Self::end_input) when the job stops without
    /// drain right after a savepoint's barrier (Flink's default `stop`): the
    /// operator must emit nothing (what it holds is in the savepoint's state and
    /// is output by the job restored from it), only release what it must (a sink
    /// hands over what belongs to the savepoint). The default does nothing.
    fn stop_without_drain(&mut self) {}

    /// Event time advanced to `watermark`. The default passes it on at once; an
    /// operator that holds records back (such as the async operator) passes it on
    /// once the records that preceded it are out.
    fn process_watermark<C: Collector<O> + ?Sized>(&mut self, watermark: Watermark, out: &mut C) {
        out.emit_watermark(watermark);
    }

    /// The input's [`WatermarkStatus`] changed; the default passes it on (an
    /// operator that makes its own watermarks may decide otherwise).
    fn process_watermark_status<C: Collector<O> + ?Sized>(
        &mut self,
        status: WatermarkStatus,
        out: &mut C,
    ) {
        out.emit_watermark_status(status);
    }

    /// Called on a checkpoint barrier before [`snapshot_state`](Self::snapshot_state)
    /// (Flink's `prepareSnapshotPreBarrier`): what it emits precedes the barrier. An
    /// operator that holds records it has not emitted yet and does not store them
    /// in its snapshot (an async sink's buffer, the pipeline's queues) drains them
    /// here; the async operator stores its queue instead.
    fn prepare_snapshot_pre_barrier<C: Collector<O> + ?Sized>(
        &mut self,
        _checkpoint_id: u64,
        _out: &mut C,
    ) {
    }

    /// Snapshots this instance's state for checkpoint `checkpoint_id` (encode it with
    /// [`encode_state`](crate::checkpoint::encode_state), keyed state with
    /// [`snapshot_keyed`](crate::checkpoint::snapshot_keyed)); `None` when it has none.
    /// Called between records, after everything before the barrier was processed.
    ///
    /// # Errors
    /// When the state cannot be serialized; the task fails.
    fn snapshot_state(
        &mut self,
        _scope: StateScope,
        _checkpoint_id: u64,
    ) -> Result<Option<Vec<u8>>, StateError> {
        Ok(None)
    }

    /// Like [`snapshot_state`](Self::snapshot_state), but the encoding may be left
    /// to run after the task went on processing (Flink's asynchronous snapshot
    /// phase): an operator that can copy its state cheaply returns
    /// [`DeferredState::later`] with a closure owning the copy. The default takes
    /// the synchronous snapshot.
    ///
    /// # Errors
    /// As [`snapshot_state`](Self::snapshot_state).
    fn snapshot_state_deferred(
        &mut self,
        scope: StateScope,
        checkpoint_id: u64,
    ) -> Result<Option<DeferredState>, StateError> {
        Ok(self
            .snapshot_state(scope, checkpoint_id)?
            .map(DeferredState::ready))
    }

    /// Restores the state of a checkpoint, before the first record.
    ///
    /// # Errors
    /// When the state is corrupt; the task fails, naming the operator.
    fn restore_state(
        &mut self,
        _scope: StateScope,
        _restored: &RestoredState,
    ) -> Result<(), StateError> {
        Ok(())
    }

    /// Checkpoint `checkpoint_id` completed: every task's state is stored (a
    /// two-phase-commit sink commits here).
    fn notify_checkpoint_complete(&mut self, _checkpoint_id: u64) {}
}

/// Implements [`Operator`]'s checkpoint methods (snapshot, deferred snapshot, restore,
/// completion, stop without drain) by forwarding them to the operator in `self.inner`: for operators that
/// wrap another and keep no state of their own.
macro_rules! forward_state_to_inner {
    () => {
        fn snapshot_state(
            &mut self,
            scope: $crate::operator::StateScope,
            checkpoint_id: u64,
        ) -> Result<Option<Vec<u8>>, $crate::checkpoint::StateError> {
            self.inner.snapshot_state(scope, checkpoint_id)
        }

        fn snapshot_state_deferred(
            &mut self,
            scope: $crate::operator::StateScope,
            checkpoint_id: u64,
        ) -> Result<Option<$crate::checkpoint::DeferredState>, $crate::checkpoint::StateError> {
            self.inner.snapshot_state_deferred(scope, checkpoint_id)
        }

        fn restore_state(
            &mut self,
            scope: $crate::operator::StateScope,
            restored: &$crate::checkpoint::RestoredState,
        ) -> Result<(), $crate::checkpoint::StateError> {
            self.inner.restore_state(scope, restored)
        }

        fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) {
            self.inner.notify_checkpoint_complete(checkpoint_id);
        }

        fn stop_without_drain(&mut self) {
            self.inner.stop_without_drain();
        }
    };
}
pub(crate) use forward_state_to_inner;

/// The most records an [`Emitter`] holds before handing them to the next operator.
///
/// Bounds the memory of a chain: without it a flat_map with fan-out F held F times
/// its input batch before the next operator saw any of it. 1,024 matches the source
/// batch ([`SOURCE_BATCH`](crate::sources::SOURCE_BATCH)), large enough that the
/// per-batch work downstream (a virtual call, counter updates) stays negligible per
/// record. Operators that fill [`Emitter::batch`] in bulk (map, filter) emit at most
/// one record per input record, so their batches stay as small as their input.
pub const EMIT_BATCH: usize = 1024;

/// Where a chained operator emits a batch: records collect in a vector that is handed
/// to the next operator when [`EMIT_BATCH`] records are held, when the batch is done,
/// or earlier on [`flush_before_wait`](Collector::flush_before_wait).
pub struct Emitter<'a, O> {
    batch: &'a mut Vec<O>,
    next: Option<&'a mut CountingOutput<O>>,
    /// With [`collecting_stamped`](Self::collecting_stamped): each
    /// [`Collector::set_timestamp`] as (index in `batch` from which it holds, the
    /// timestamp), so a wrapper can stamp what an operator emitted outside a record.
    stamps: Option<&'a mut Vec<(usize, i64)>>,
    /// Side outputs whose timestamp follows [`Collector::set_timestamp`] (see
    /// [`stamping_side_outputs`](Self::stamping_side_outputs)).
    side: Option<&'a RecordTimestamp>,
}

impl<'a, O> Emitter<'a, O> {
    /// An emitter that only collects into `batch` (for tests and wrappers).
    pub fn collecting(batch: &'a mut Vec<O>) -> Self {
        Self {
            batch,
            next: None,
            stamps: None,
            side: None,
        }
    }

    /// An emitter that only collects into `batch` and notes in `stamps` where the
    /// operator set a timestamp (see [`Stamped`](crate::operators::Stamped)).
    pub fn collecting_stamped(batch: &'a mut Vec<O>, stamps: &'a mut Vec<(usize, i64)>) -> Self {
        Self {
            batch,
            next: None,
            stamps: Some(stamps),
            side: None,
        }
    }

    /// What the operator emits into side outputs sharing `side` gets the timestamps
    /// it sets (a timer's, a window's), as its main output does.
    pub fn stamping_side_outputs(mut self, side: Option<&'a RecordTimestamp>) -> Self {
        self.side = side;
        self
    }

    /// The records emitted so far in this batch, for bulk operations.
    #[inline(always)]
    pub fn batch(&mut self) -> &mut Vec<O> {
        self.batch
    }
}

impl<O> Collector<O> for Emitter<'_, O> {
    #[inline(always)]
    fn collect(&mut self, record: O) {
        self.batch.push(record);
        if self.batch.len() >= EMIT_BATCH {
            self.hand_on_full_batch();
        }
    }

    fn flush_before_wait(&mut self) {
        if let Some(next) = self.hand_on_batch() {
            next.inner.flush();
        }
    }

    fn emit_watermark(&mut self, watermark: Watermark) {
        if let Some(next) = self.hand_on_batch() {
            next.emit_watermark(watermark);
        }
    }

    fn emit_watermark_status(&mut self, status: WatermarkStatus) {
        if let Some(next) = self.hand_on_batch() {
            next.emit_watermark_status(status);
        }
    }

    fn set_timestamp(&mut self, timestamp: i64) {
        if let Some(stamps) = self.stamps.as_deref_mut() {
            stamps.push((self.batch.len(), timestamp));
        }
        if let Some(side) = self.side {
            side.set(timestamp);
        }
    }
}

impl<O> Emitter<'_, O> {
    /// Hands on a batch that reached [`EMIT_BATCH`]; out of line, as it runs once per
    /// batch, not per record.
    #[cold]
    #[inline(never)]
    fn hand_on_full_batch(&mut self) {
        self.hand_on_batch();
    }

    /// Hands the records collected so far to the next operator, ahead of whatever
    /// follows them; returns that operator's output (none for a collecting emitter).
    fn hand_on_batch(&mut self) -> Option<&mut CountingOutput<O>> {
        let next = self.next.as_deref_mut()?;
        if !self.batch.is_empty() {
            next.count.add(self.batch.len() as u64);
            next.inner.collect_batch(self.batch);
        }
        Some(next)
    }
}

/// Counts what an operator emits, then forwards it.
pub struct CountingOutput<O> {
    inner: Box<dyn Output<O>>,
    count: Counter,
    /// Watermarks go to the side outputs too, in order with what the operator
    /// wrote there.
    side_outputs: Vec<Arc<dyn SideOutputControl>>,
}

impl<O> Collector<O> for CountingOutput<O> {
    #[inline(always)]
    fn collect(&mut self, record: O) {
        self.count.inc();
        self.inner.collect(record);
    }

    /// Records already went downstream one by one; only the network buffers remain.
    fn flush_before_wait(&mut self) {
        self.inner.flush();
    }

    fn emit_watermark(&mut self, watermark: Watermark) {
        self.inner.emit_watermark(watermark);
        for side in &self.side_outputs {
            side.emit_watermark(watermark);
        }
    }

    /// Side outputs stay active: only the main output follows the status.
    fn emit_watermark_status(&mut self, status: WatermarkStatus) {
        self.inner.emit_watermark_status(status);
    }
}

/// An operator placed in a chain: an [`Output`] for its input type that processes each
/// record and passes results to the rest of the chain.
pub struct Chained<Op, I, O> {
    operator: Op,
    out: CountingOutput<O>,
    /// Reused output batch.
    batch: Vec<O>,
    records_in: Counter,
    /// This operator's [`OperatorMetrics::active`] flag.
    active: Arc<AtomicBool>,
    name: Arc<str>,
    node_id: usize,
    scope: StateScope,
    _input: PhantomData<fn(I)>,
}

impl<Op: Operator<I, O>, I, O> Chained<Op, I, O> {
    /// Wires `operator` to `out`, counting into the context's metrics, and restores
    /// the context's checkpointed state into it (a corrupt state fails the operator).
    pub fn new(mut operator: Op, out: Box<dyn Output<O>>, ctx: &RuntimeContext) -> Self {
        if ctx.restored.checkpoint_id.is_some() {
            let restored = attribute_panics(&ctx.operator_name, || {
                operator.restore_state(ctx.scope(), &ctx.restored)
            });
            if let Err(e) = restored {
                fail_operator(&ctx.operator_name, format!("cannot restore state: {e}"));
            }
        }
        Self {
            operator,
            out: CountingOutput {
                inner: out,
                count: Counter::new(ctx.metrics.records_out.clone()),
                side_outputs: ctx.side_outputs.controls(),
            },
            batch: Vec::new(),
            records_in: Counter::new(ctx.metrics.records_in.clone()),
            active: ctx.metrics.active.clone(),
            name: ctx.operator_name.clone(),
            node_id: ctx.node_id,
            scope: ctx.scope(),
            _input: PhantomData,
        }
    }
}

impl<Op: Operator<I, O>, I, O> Collector<I> for Chained<Op, I, O> {
    #[inline]
    fn collect(&mut self, record: I) {
        self.records_in.inc();
        let (op, out) = (&mut self.operator, &mut self.out);
        attribute_panics(&self.name, || op.process(record, out));
    }

    /// A watermark arriving at this operator.
    fn emit_watermark(&mut self, watermark: Watermark) {
        let (op, out) = (&mut self.operator, &mut self.out);
        attribute_panics(&self.name, || op.process_watermark(watermark, out));
    }

    /// A watermark status change arriving at this operator.
    fn emit_watermark_status(&mut self, status: WatermarkStatus) {
        let (op, out) = (&mut self.operator, &mut self.out);
        attribute_panics(&self.name, || op.process_watermark_status(status, out));
    }
}

impl<Op: Operator<I, O>, I: 'static, O: Send + 'static> Output<I> for Chained<Op, I, O> {
    fn collect_batch(&mut self, batch: &mut Vec<I>) {
        self.records_in.add(batch.len() as u64);
        self.active.store(true, Ordering::Relaxed);
        let mut out = Emitter {
            batch: &mut self.batch,
            next: Some(&mut self.out),
            stamps: None,
            side: None,
        };
        let op = &mut self.operator;
        attribute_panics(&self.name, || op.process_batch(batch, &mut out));
        if !self.batch.is_empty() {
            self.out.count.add(self.batch.len() as u64);
            self.out.inner.collect_batch(&mut self.batch);
        }
        self.active.store(false, Ordering::Relaxed);
    }

    fn poll_pending(&mut self) -> bool {
        self.active.store(true, Ordering::Relaxed);
        let mut out = Emitter {
            batch: &mut self.batch,
            next: Some(&mut self.out),
            stamps: None,
            side: None,
        };
        let op = &mut self.operator;
        let pending = attribute_panics(&self.name, || op.poll_pending(&mut out));
        if !self.batch.is_empty() {
            self.out.count.add(self.batch.len() as u64);
            self.out.inner.collect_batch(&mut self.batch);
        }
        self.active.store(false, Ordering::Relaxed);
        self.out.inner.poll_pending() || pending
    }

    fn end_input(&mut self) {
        self.active.store(true, Ordering::Relaxed);
        let (op, out) = (&mut self.operator, &mut self.out);
        attribute_panics(&self.name, || op.end_input(out));
        self.active.store(false, Ordering::Relaxed);
        self.out.inner.end_input();
        for side in &self.out.side_outputs {
            side.end_input();
        }
    }

    fn stop_without_drain(&mut self) {
        let op = &mut self.operator;
        attribute_panics(&self.name, || op.stop_without_drain());
        self.out.inner.stop_without_drain();
        for side in &self.out.side_outputs {
            side.stop_without_drain();
        }
    }

    fn flush(&mut self) {
        self.out.inner.flush();
        for side in &self.out.side_outputs {
            side.flush();
        }
    }

    fn snapshot_state(&mut self, checkpoint_id: u64, into: &mut ChainSnapshot) {
        let (op, out) = (&mut self.operator, &mut self.out);
        attribute_panics(&self.name, || {
            op.prepare_snapshot_pre_barrier(checkpoint_id, out);
        });
        let (op, scope) = (&mut self.operator, self.scope);
        match attribute_panics(&self.name, || {
            op.snapshot_state_deferred(scope, checkpoint_id)
        }) {
            Ok(Some(state)) => into.add_deferred(self.node_id, state),
            Ok(None) => {}
            Err(e) => fail_operator(&self.name, format!("cannot snapshot state: {e}")),
        }
        self.out.inner.snapshot_state(checkpoint_id, into);
        for side in &self.out.side_outputs {
            side.snapshot_state(checkpoint_id, into);
        }
    }

    fn emit_barrier(&mut self, barrier: CheckpointBarrier) {
        self.out.inner.emit_barrier(barrier);
        for side in &self.out.side_outputs {
            side.emit_barrier(barrier);
        }
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) {
        let op = &mut self.operator;
        attribute_panics(&self.name, || op.notify_checkpoint_complete(checkpoint_id));
        self.out.inner.notify_checkpoint_complete(checkpoint_id);
        for side in &self.out.side_outputs {
            side.notify_checkpoint_complete(checkpoint_id);
        }
    }
}

/// Lets a user function that takes `&mut dyn Collector` write into a generic collector.
pub(crate) struct ForwardTo<'a, C: ?Sized>(pub(crate) &'a mut C);

impl<O, C: Collector<O> + ?Sized> Collector<O> for ForwardTo<'_, C> {
    #[inline(always)]
    fn collect(&mut self, record: O) {
        self.0.collect(record);
    }

    fn flush_before_wait(&mut self) {
        self.0.flush_before_wait();
    }

    fn emit_watermark(&mut self, watermark: Watermark) {
        self.0.emit_watermark(watermark);
    }

    fn emit_watermark_status(&mut self, status: WatermarkStatus) {
        self.0.emit_watermark_status(status);
    }

    fn set_timestamp(&mut self, timestamp: i64) {
        self.0.set_timestamp(timestamp);
    }
}
