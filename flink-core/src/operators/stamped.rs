//! [`Stamped`]: runs an operator on a stream whose records carry timestamps.

use crate::functions::Collector;
use crate::operator::{Emitter, Operator, RuntimeContext};
use crate::side_output::RecordTimestamp;
use crate::timestamped::Timestamped;
use crate::watermark::{NO_TIMESTAMP, Watermark, WatermarkStatus};

/// A collector of bare records that stamps each with the current timestamp on its
/// way into `out` (Flink's `TimestampedCollector`): the input record's, or what
/// the operator set with [`Collector::set_timestamp`].
pub struct StampingCollector<'a, C: ?Sized> {
    timestamp: i64,
    out: &'a mut C,
    /// Side outputs that follow the timestamps the operator sets (outside a record:
    /// a timer's or a window's time), as Flink's timer context stamps its side
    /// outputs with the timer's time.
    side: Option<&'a RecordTimestamp>,
}

impl<'a, C: ?Sized> StampingCollector<'a, C> {
    /// Stamps with `timestamp` until told otherwise.
    #[inline]
    pub fn new(timestamp: i64, out: &'a mut C) -> Self {
        Self {
            timestamp,
            out,
            side: None,
        }
    }

    /// Stamps with `timestamp` until told otherwise, and so do the side outputs
    /// sharing `side` (none: only the main output).
    pub fn with_side_outputs(
        timestamp: i64,
        out: &'a mut C,
        side: Option<&'a RecordTimestamp>,
    ) -> Self {
        Self {
            timestamp,
            out,
            side,
        }
    }
}

impl<T, C: Collector<Timestamped<T>> + ?Sized> Collector<T> for StampingCollector<'_, C> {
    #[inline]
    fn collect(&mut self, value: T) {
        self.out.collect(Timestamped {
            timestamp: self.timestamp,
            value,
        });
    }

    fn flush_before_wait(&mut self) {
        self.out.flush_before_wait();
    }

    fn emit_watermark(&mut self, watermark: Watermark) {
        self.out.emit_watermark(watermark);
    }

    fn emit_watermark_status(&mut self, status: WatermarkStatus) {
        self.out.emit_watermark_status(status);
    }

    #[inline]
    fn set_timestamp(&mut self, timestamp: i64) {
        self.timestamp = timestamp;
        if let Some(side) = self.side {
            side.set(timestamp);
        }
    }
}

/// The output of a batch of timestamped records
/// ([`Operator::process_timestamped_batch`]): one [`StampingCollector`] set to each
/// record's timestamp in turn (as a new one per record would be), and the side
/// outputs told it too.
pub struct PerRecordStamps<'a, C: ?Sized> {
    out: StampingCollector<'a, C>,
    /// Side outputs stamped with the current record's timestamp.
    side: Option<&'a RecordTimestamp>,
}

impl<'a, C: ?Sized> PerRecordStamps<'a, C> {
    /// Records go to `out`; `side` (if any) follows each record's timestamp.
    #[inline]
    pub fn new(out: &'a mut C, side: Option<&'a RecordTimestamp>) -> Self {
        Self {
            out: StampingCollector::new(NO_TIMESTAMP, out),
            side,
        }
    }

    /// The record at `timestamp` is next: what it emits is stamped with it (unless
    /// the operator sets another), and so is what it emits to side outputs.
    #[inline]
    pub fn record(&mut self, timestamp: i64) -> &mut StampingCollector<'a, C> {
        if let Some(side) = self.side {
            side.set(timestamp);
        }
        self.out.timestamp = timestamp;
        &mut self.out
    }
}

/// An operator of bare records run on [`Timestamped`] ones: each record goes in
/// bare with its timestamp ([`Operator::process_timestamped`]) and what it emits
/// for it is stamped with that timestamp, unless the operator sets another.
/// What it emits outside a record (on a watermark, at the end of input, after a
/// batch or while idle) has [`NO_TIMESTAMP`] unless it sets one: window firings
/// (event or processing time), event-time timers and async results do.
pub struct Stamped<Op, O> {
    inner: Op,
    /// Where the inner operator's after-batch and idle output is collected; it
    /// is stamped [`NO_TIMESTAMP`] (processing-time timers of process functions,
    /// as Flink erases theirs) unless the operator set a timestamp ...
    pending: Vec<O>,
    /// ... noted here: (index in `pending` from which it holds, the timestamp).
    stamps: Vec<(usize, i64)>,
    /// With wired side outputs: the current record's timestamp, which they stamp
    /// what the operator emits there with (set per record; none outside one).
    record_timestamp: Option<RecordTimestamp>,
}

impl<Op, O> Stamped<Op, O> {
    /// Wraps `inner`.
    pub fn new(inner: Op) -> Self {
        Self {
            inner,
            pending: Vec::new(),
            stamps: Vec::new(),
            record_timestamp: None,
        }
    }

    /// Gives the side outputs of the instance `ctx` describes the timestamp of
    /// the record being processed (Flink keeps a record's timestamp in a side
    /// output: late data, a process function's side outputs, dead letters).
    pub fn stamping_side_outputs(mut self, ctx: &RuntimeContext) -> Self {
        self.record_timestamp = ctx.side_outputs.record_timestamp();
        self
    }

    /// Side outputs emitted from now on get `timestamp`.
    #[inline]
    fn side_timestamp(&self, timestamp: i64) {
        if let Some(current) = &self.record_timestamp {
            current.set(timestamp);
        }
    }

    /// Hands on what the inner operator emitted into its own batch, each with the
    /// timestamp it set last before emitting it.
    fn hand_on_pending(&mut self, out: &mut Emitter<'_, Timestamped<O>>) {
        let mut stamps = self.stamps.drain(..).peekable();
        let mut timestamp = NO_TIMESTAMP;
        for (index, value) in self.pending.drain(..).enumerate() {
            while let Some((_, set)) = stamps.next_if(|&(from, _)| from <= index) {
                timestamp = set;
            }
            out.collect(Timestamped { timestamp, value });
        }
    }
}

impl<I, O, Op> Operator<Timestamped<I>, Timestamped<O>> for Stamped<Op, O>
where
    I: 'static,
    O: Send + 'static,
    Op: Operator<I, O>,
{
    #[inline]
    fn process<C: Collector<Timestamped<O>> + ?Sized>(
        &mut self,
        record: Timestamped<I>,
        out: &mut C,
    ) {
        let mut stamps = PerRecordStamps::new(out, self.record_timestamp.as_ref());
        let out = stamps.record(record.timestamp);
        self.inner
            .process_timestamped(record.value, record.timestamp, out);
    }

    fn process_batch(
        &mut self,
        batch: &mut Vec<Timestamped<I>>,
        out: &mut Emitter<'_, Timestamped<O>>,
    ) {
        self.inner.process_timestamped_batch(
            batch,
            &mut PerRecordStamps::new(out, self.record_timestamp.as_ref()),
        );
        // The inner operator's work after a batch (processing-time timers).
        self.side_timestamp(NO_TIMESTAMP);
        let mut pending = Emitter::collecting_stamped(&mut self.pending, &mut self.stamps)
            .stamping_side_outputs(self.record_timestamp.as_ref());
        self.inner.process_batch(&mut Vec::new(), &mut pending);
        self.hand_on_pending(out);
    }

    fn poll_pending(&mut self, out: &mut Emitter<'_, Timestamped<O>>) -> bool {
        self.side_timestamp(NO_TIMESTAMP);
        let mut emitter = Emitter::collecting_stamped(&mut self.pending, &mut self.stamps)
            .stamping_side_outputs(self.record_timestamp.as_ref());
        let pending = self.inner.poll_pending(&mut emitter);
        self.hand_on_pending(out);
        pending
    }

    fn end_input<C: Collector<Timestamped<O>> + ?Sized>(&mut self, out: &mut C) {
        self.side_timestamp(NO_TIMESTAMP);
        let side = self.record_timestamp.as_ref();
        self.inner
            .end_input(&mut StampingCollector::with_side_outputs(
                NO_TIMESTAMP,
                out,
                side,
            ));
    }

    fn process_watermark<C: Collector<Timestamped<O>> + ?Sized>(
        &mut self,
        watermark: Watermark,
        out: &mut C,
    ) {
        self.side_timestamp(NO_TIMESTAMP);
        let side = self.record_timestamp.as_ref();
        self.inner.process_watermark(
            watermark,
            &mut StampingCollector::with_side_outputs(NO_TIMESTAMP, out, side),
        );
    }

    fn process_watermark_status<C: Collector<Timestamped<O>> + ?Sized>(
        &mut self,
        status: WatermarkStatus,
        out: &mut C,
    ) {
        self.inner
            .process_watermark_status(status, &mut StampingCollector::new(NO_TIMESTAMP, out));
    }

    fn prepare_snapshot_pre_barrier<C: Collector<Timestamped<O>> + ?Sized>(
        &mut self,
        checkpoint_id: u64,
        out: &mut C,
    ) {
        self.inner.prepare_snapshot_pre_barrier(
            checkpoint_id,
            &mut StampingCollector::new(NO_TIMESTAMP, out),
        );
    }

    crate::operator::forward_state_to_inner!();
}

/// Gives each bare record the timestamp `f` says (a function of the record, or
/// [`NO_TIMESTAMP`]) after mapping it with `map`: a source's own timestamps, the
/// records of a stream without timestamps joining one with them.
pub struct StampWith<F, M> {
    timestamp: F,
    map: M,
}

impl<F, M> StampWith<F, M> {
    /// Stamps `map(record)` with `timestamp(&record)`.
    pub fn new(timestamp: F, map: M) -> Self {
        Self { timestamp, map }
    }
}

impl<I, O, F, M> Operator<I, Timestamped<O>> for StampWith<F, M>
where
    F: Fn(&I) -> i64 + Send + 'static,
    M: FnMut(I) -> O + Send + 'static,
{
    #[inline]
    fn process<C: Collector<Timestamped<O>> + ?Sized>(&mut self, record: I, out: &mut C) {
        let timestamp = (self.timestamp)(&record);
        out.collect(Timestamped {
            timestamp,
            value: (self.map)(record),
        });
    }
}

/// An operator of bare records that needs no timestamps and emits no records
/// with them (a sink) run on [`Timestamped`] ones: the timestamps are dropped on
/// the way in, a batch as a batch (a sink keeps its batch writes).
pub struct Unstamped<Op, I> {
    inner: Op,
    /// The current batch's bare records.
    values: Vec<I>,
}

impl<Op, I> Unstamped<Op, I> {
    /// Wraps `inner`.
    pub fn new(inner: Op) -> Self {
        Self {
            inner,
            values: Vec::new(),
        }
    }
}

impl<I, O, Op> Operator<Timestamped<I>, O> for Unstamped<Op, I>
where
    I: Send + 'static,
    O: 'static,
    Op: Operator<I, O>,
{
    #[inline]
    fn process<C: Collector<O> + ?Sized>(&mut self, record: Timestamped<I>, out: &mut C) {
        self.inner.process(record.value, out);
    }

    fn process_batch(&mut self, batch: &mut Vec<Timestamped<I>>, out: &mut Emitter<'_, O>) {
        self.values.extend(batch.drain(..).map(|r| r.value));
        self.inner.process_batch(&mut self.values, out);
        self.values.clear();
    }

    fn poll_pending(&mut self, out: &mut Emitter<'_, O>) -> bool {
        self.inner.poll_pending(out)
    }

    fn end_input<C: Collector<O> + ?Sized>(&mut self, out: &mut C) {
        self.inner.end_input(out);
    }

    fn process_watermark<C: Collector<O> + ?Sized>(&mut self, watermark: Watermark, out: &mut C) {
        self.inner.process_watermark(watermark, out);
    }

    fn process_watermark_status<C: Collector<O> + ?Sized>(
        &mut self,
        status: WatermarkStatus,
        out: &mut C,
    ) {
        self.inner.process_watermark_status(status, out);
    }

    fn prepare_snapshot_pre_barrier<C: Collector<O> + ?Sized>(
        &mut self,
        checkpoint_id: u64,
        out: &mut C,
    ) {
        self.inner.prepare_snapshot_pre_barrier(checkpoint_id, out);
    }

    crate::operator::forward_state_to_inner!();
}

/// Drops the timestamps (for an operator that cannot keep them, such as the
/// async one).
pub struct Unstamp;

impl<T: 'static> Operator<Timestamped<T>, T> for Unstamp {
    #[inline]
    fn process<C: Collector<T> + ?Sized>(&mut self, record: Timestamped<T>, out: &mut C) {
        out.collect(record.value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operators::{FlatMapOperator, MapOperator};

    fn stamped(timestamp: i64, value: u64) -> Timestamped<u64> {
        Timestamped { timestamp, value }
    }

    #[test]
    fn a_map_keeps_each_records_timestamp_and_a_flat_map_stamps_every_output() {
        let mut map = Stamped::new(MapOperator::new(|x: u64| x * 10));
        let mut out = Vec::new();
        map.process_batch(
            &mut vec![stamped(5, 1), stamped(3, 2)],
            &mut Emitter::collecting(&mut out),
        );
        assert_eq!(out, [stamped(5, 10), stamped(3, 20)]);

        let mut flat = Stamped::new(FlatMapOperator::new(
            |x: u64, out: &mut dyn Collector<u64>| (0..x).for_each(|i| out.collect(i)),
        ));
        let mut out = Vec::new();
        flat.process(stamped(7, 2), &mut out);
        flat.process(stamped(9, 1), &mut out);
        assert_eq!(out, [stamped(7, 0), stamped(7, 1), stamped(9, 0)]);
    }

    #[test]
    fn an_unstamped_operator_gets_bare_records_a_batch_as_a_batch() {
        /// Remembers the size of each batch it got.
        struct Batches(Vec<usize>);
        impl Operator<u64, ()> for Batches {
            fn process<C: Collector<()> + ?Sized>(&mut self, _: u64, _: &mut C) {
                self.0.push(1);
            }
            fn process_batch(&mut self, batch: &mut Vec<u64>, _: &mut Emitter<'_, ()>) {
                self.0.push(batch.len());
                assert_eq!(batch.iter().sum::<u64>(), 6);
                batch.clear();
            }
        }
        let mut op = Unstamped::new(Batches(Vec::new()));
        let mut batch = vec![stamped(9, 1), stamped(8, 2), stamped(7, 3)];
        op.process_batch(&mut batch, &mut Emitter::collecting(&mut Vec::new()));
        assert!(batch.is_empty());
        assert_eq!(op.inner.0, [3]);
    }

    #[test]
    fn what_an_operator_emits_outside_a_record_keeps_the_timestamps_it_set() {
        /// Emits 1 and 2 after each batch and 3 when polled: 1 unstamped, 2 at 50,
        /// 3 at 70 (as a processing-time window firing or an async result does).
        struct Later;
        impl Operator<u64, u64> for Later {
            fn process<C: Collector<u64> + ?Sized>(&mut self, _: u64, _: &mut C) {}
            fn process_batch(&mut self, batch: &mut Vec<u64>, out: &mut Emitter<'_, u64>) {
                batch.clear();
                out.collect(1);
                out.set_timestamp(50);
                out.collect(2);
            }
            fn poll_pending(&mut self, out: &mut Emitter<'_, u64>) -> bool {
                out.set_timestamp(70);
                out.collect(3);
                false
            }
        }
        let mut op = Stamped::new(Later);
        let mut out = Vec::new();
        op.process_batch(&mut vec![stamped(9, 0)], &mut Emitter::collecting(&mut out));
        op.poll_pending(&mut Emitter::collecting(&mut out));
        assert_eq!(
            out,
            [stamped(NO_TIMESTAMP, 1), stamped(50, 2), stamped(70, 3)]
        );
        // Nothing carries over to the next batch.
        let mut out = Vec::new();
        op.process_batch(&mut Vec::new(), &mut Emitter::collecting(&mut out));
        assert_eq!(out, [stamped(NO_TIMESTAMP, 1), stamped(50, 2)]);
    }

    #[test]
    fn an_operator_setting_a_timestamp_overrides_the_records() {
        struct Shift;
        impl Operator<u64, u64> for Shift {
            fn process<C: Collector<u64> + ?Sized>(&mut self, x: u64, out: &mut C) {
                out.collect(x);
                out.set_timestamp(100);
                out.collect(x + 1);
            }
        }
        let expected = [
            stamped(1, 1),
            stamped(100, 2),
            stamped(2, 5),
            stamped(100, 6),
        ];
        let mut op = Stamped::new(Shift);
        let mut out = Vec::new();
        op.process(stamped(1, 1), &mut out);
        op.process(stamped(2, 5), &mut out);
        assert_eq!(out, expected);
        // In a batch, the timestamp set for one record does not carry over to the next.
        let mut out = Vec::new();
        op.process_batch(
            &mut vec![stamped(1, 1), stamped(2, 5)],
            &mut Emitter::collecting(&mut out),
        );
        assert_eq!(out, expected);
    }
}
