//! [`WatermarkAssigner`]: turns record timestamps into watermarks.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::functions::Collector;
use crate::operator::{Emitter, Operator};
use crate::operators::StampingCollector;
use crate::timestamped::Timestamped;
use crate::watermark::{
    NO_TIMESTAMP, Watermark, WatermarkGenerator, WatermarkOutput, WatermarkStatus,
    WatermarkStrategy,
};

/// With an auto-watermark interval of zero, on a record-at-a-time input, the
/// periodic emission runs once per this many records (and after every batch): each
/// watermark costs a network event buffer and, in an async operator, a barrier.
const RECORDS_PER_WATERMARK: u64 = 1024;

/// Runs a [`WatermarkStrategy`]: hands each record's timestamp to the generator,
/// forwards what it emits after the record (punctuated), asks it for a periodic
/// watermark once per auto-watermark interval of the job's clock (checked after each
/// batch and while the input is idle; an interval of zero asks after every batch),
/// and emits [`Watermark::MAX`] when the input ends. Only watermarks above the last
/// forwarded one go downstream; upstream watermarks and statuses are superseded.
/// With the strategy's idleness timeout, a periodic check that finds no record for
/// that long marks the output [`WatermarkStatus::Idle`] (and asks the generator for
/// nothing while idle); the next record marks it active again, before the record.
pub struct WatermarkAssigner<T> {
    strategy: WatermarkStrategy<T>,
    generator: Box<dyn WatermarkGenerator<T>>,
    output: WatermarkOutput,
    clock: Arc<dyn Clock>,
    interval: Duration,
    next_periodic: Duration,
    emitted: Watermark,
    since_periodic: u64,
    idleness: Idleness,
}

/// The idleness timer of an assigner (Flink's `IdlenessTimer`): a record since the
/// last check restarts it; a check without one past the timeout goes idle.
struct Idleness {
    timeout: Option<Duration>,
    /// The clock time of the last check that found records (or of the start).
    active_since: Duration,
    seen_since_check: bool,
    idle: bool,
}

impl<T: 'static> WatermarkAssigner<T> {
    /// An assigner following `strategy`, emitting periodic watermarks every
    /// `interval` of `clock` (zero: after every batch).
    pub fn new(strategy: WatermarkStrategy<T>, clock: Arc<dyn Clock>, interval: Duration) -> Self {
        let next_periodic = clock.now() + interval;
        let strategy_idleness = strategy.idleness;
        Self {
            generator: strategy.create_generator(),
            strategy,
            output: WatermarkOutput::default(),
            clock,
            interval,
            next_periodic,
            emitted: Watermark::MIN,
            since_periodic: 0,
            idleness: Idleness {
                timeout: strategy_idleness,
                active_since: next_periodic - interval,
                seen_since_check: false,
                idle: false,
            },
        }
    }

    /// Shows `record` to the generator, then passes it on, then forwards a
    /// watermark the generator emitted for it: the record goes before the watermark
    /// its own timestamp allowed.
    #[inline]
    fn observe_and_collect<C: Collector<T> + ?Sized>(&mut self, record: T, out: &mut C) {
        let timestamp = self.strategy.timestamp_of(&record);
        self.observe_and_collect_at(record, timestamp, out);
    }

    /// Passes `record` on with its event time `timestamp`, after the generator saw it.
    #[inline]
    fn observe_and_collect_at<C: Collector<T> + ?Sized>(
        &mut self,
        record: T,
        timestamp: i64,
        out: &mut C,
    ) {
        self.records_arrive(out);
        self.generator
            .on_event(&record, timestamp, &mut self.output);
        self.since_periodic += 1;
        out.collect(record);
        self.forward(out);
    }

    /// Records arrive: an idle output becomes active before them.
    #[inline]
    fn records_arrive<C: Collector<T> + ?Sized>(&mut self, out: &mut C) {
        if self.idleness.idle {
            self.idleness.idle = false;
            out.emit_watermark_status(WatermarkStatus::Active);
        }
        self.idleness.seen_since_check = true;
    }

    /// Forwards the generator's latest watermark if it is ahead of the last one.
    #[inline]
    fn forward<C: Collector<T> + ?Sized>(&mut self, out: &mut C) {
        if let Some(watermark) = self.output.take()
            && watermark > self.emitted
        {
            self.emitted = watermark;
            out.emit_watermark(watermark);
        }
    }

    /// Asks the generator for its periodic watermark if the interval elapsed.
    fn periodic_if_due<C: Collector<T> + ?Sized>(&mut self, out: &mut C) {
        if !self.interval.is_zero() {
            let now = self.clock.now();
            if now < self.next_periodic {
                return;
            }
            // Skip intervals that passed while nothing called: one emission per call.
            self.next_periodic = now + self.interval;
        }
        self.since_periodic = 0;
        if self.went_idle(out) {
            return;
        }
        self.generator.on_periodic_emit(&mut self.output);
        self.forward(out);
    }

    /// Runs the idleness check; emits the `Idle` status when the output goes idle
    /// and says whether it is idle.
    fn went_idle<C: Collector<T> + ?Sized>(&mut self, out: &mut C) -> bool {
        let idleness = &mut self.idleness;
        let Some(timeout) = idleness.timeout else {
            return false;
        };
        let now = self.clock.now();
        if std::mem::take(&mut idleness.seen_since_check) {
            idleness.active_since = now;
        } else if !idleness.idle && now.saturating_sub(idleness.active_since) >= timeout {
            idleness.idle = true;
            out.emit_watermark_status(WatermarkStatus::Idle);
        }
        idleness.idle
    }
}

/// A [`WatermarkAssigner`] whose output records carry their timestamps
/// ([`Timestamped`]): the strategy's timestamp assigner's, or without one the
/// timestamp the input record already had (`split` takes a record apart into
/// value and timestamp: [`NO_TIMESTAMP`](crate::watermark::NO_TIMESTAMP) for a
/// bare one).
pub struct StampingAssigner<I, T, S> {
    inner: WatermarkAssigner<T>,
    split: S,
    _input: std::marker::PhantomData<fn(I)>,
}

impl<I, T: 'static, S: Fn(I) -> (T, i64)> StampingAssigner<I, T, S> {
    /// Stamps what `inner` passes on.
    pub fn new(inner: WatermarkAssigner<T>, split: S) -> Self {
        Self {
            inner,
            split,
            _input: std::marker::PhantomData,
        }
    }

    #[inline]
    fn stamp<C: Collector<Timestamped<T>> + ?Sized>(&mut self, record: I, out: &mut C) {
        let (value, previous) = (self.split)(record);
        let timestamp = match self.inner.strategy.timestamp_assigner() {
            Some(f) => f(&value),
            None => previous,
        };
        let mut out = StampingCollector::new(timestamp, out);
        self.inner
            .observe_and_collect_at(value, timestamp, &mut out);
    }

    /// Stamps a whole batch for a periodic generator, which emits nothing per
    /// record: the records go on as a batch, the assigner and the generator see it
    /// in one call each.
    fn stamp_batch(&mut self, batch: &mut Vec<I>, out: &mut Emitter<'_, Timestamped<T>>) {
        if batch.is_empty() {
            return;
        }
        self.inner
            .records_arrive(&mut StampingCollector::new(NO_TIMESTAMP, out));
        let split = &self.split;
        let start = out.batch().len();
        out.batch().extend(batch.drain(..).map(|record| {
            let (value, timestamp) = split(record);
            Timestamped { timestamp, value }
        }));
        let stamped = &mut out.batch()[start..];
        let inner = &mut self.inner;
        inner.strategy.stamp_batch(stamped);
        inner.generator.on_events(stamped, &mut inner.output);
        inner.since_periodic += stamped.len() as u64;
    }
}

impl<I, T, S> Operator<I, Timestamped<T>> for StampingAssigner<I, T, S>
where
    I: Send + 'static,
    T: Send + 'static,
    S: Fn(I) -> (T, i64) + Send + 'static,
{
    fn process<C: Collector<Timestamped<T>> + ?Sized>(&mut self, record: I, out: &mut C) {
        self.stamp(record, out);
        let inner = &mut self.inner;
        if !inner.interval.is_zero() || inner.since_periodic >= RECORDS_PER_WATERMARK {
            inner.periodic_if_due(&mut StampingCollector::new(NO_TIMESTAMP, out));
        }
    }

    fn process_batch(&mut self, batch: &mut Vec<I>, out: &mut Emitter<'_, Timestamped<T>>) {
        if self.inner.generator.is_periodic() {
            self.stamp_batch(batch, out);
        } else {
            for record in batch.drain(..) {
                self.stamp(record, out);
            }
        }
        self.inner
            .periodic_if_due(&mut StampingCollector::new(NO_TIMESTAMP, out));
    }

    fn poll_pending(&mut self, out: &mut Emitter<'_, Timestamped<T>>) -> bool {
        self.inner
            .poll_pending_into(&mut StampingCollector::new(NO_TIMESTAMP, out));
        false
    }

    fn end_input<C: Collector<Timestamped<T>> + ?Sized>(&mut self, out: &mut C) {
        self.inner
            .end_input(&mut StampingCollector::new(NO_TIMESTAMP, out));
    }

    /// Watermarks from upstream are superseded by the ones this operator makes.
    fn process_watermark<C: Collector<Timestamped<T>> + ?Sized>(
        &mut self,
        _watermark: Watermark,
        _out: &mut C,
    ) {
    }

    /// So are upstream statuses: this operator's own idleness decides.
    fn process_watermark_status<C: Collector<Timestamped<T>> + ?Sized>(
        &mut self,
        _status: WatermarkStatus,
        _out: &mut C,
    ) {
    }
}

impl<T: Send + 'static> WatermarkAssigner<T> {
    /// What [`Operator::poll_pending`] does, into any collector.
    fn poll_pending_into<C: Collector<T> + ?Sized>(&mut self, out: &mut C) {
        self.periodic_if_due(out);
    }
}

impl<T: Send + 'static> Operator<T, T> for WatermarkAssigner<T> {
    fn process<C: Collector<T> + ?Sized>(&mut self, record: T, out: &mut C) {
        self.observe_and_collect(record, out);
        if !self.interval.is_zero() || self.since_periodic >= RECORDS_PER_WATERMARK {
            self.periodic_if_due(out);
        }
    }

    fn process_batch(&mut self, batch: &mut Vec<T>, out: &mut Emitter<'_, T>) {
        for record in batch.drain(..) {
            self.observe_and_collect(record, out);
        }
        self.periodic_if_due(out);
    }

    fn poll_pending(&mut self, out: &mut Emitter<'_, T>) -> bool {
        self.periodic_if_due(out);
        false
    }

    fn end_input<C: Collector<T> + ?Sized>(&mut self, out: &mut C) {
        if self.idleness.idle {
            // Downstream ignores an idle input's watermarks; the end of time counts.
            self.idleness.idle = false;
            out.emit_watermark_status(WatermarkStatus::Active);
        }
        self.emitted = Watermark::MAX;
        out.emit_watermark(Watermark::MAX);
    }

    /// Watermarks from upstream are superseded by the ones this operator makes.
    fn process_watermark<C: Collector<T> + ?Sized>(&mut self, _watermark: Watermark, _out: &mut C) {
    }

    /// So are upstream statuses: this operator's own idleness decides.
    fn process_watermark_status<C: Collector<T> + ?Sized>(
        &mut self,
        _status: WatermarkStatus,
        _out: &mut C,
    ) {
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;

    /// Records what reaches it, watermarks included.
    #[derive(Default)]
    struct Recorder(Vec<String>);

    impl Collector<i64> for Recorder {
        fn collect(&mut self, record: i64) {
            self.0.push(format!("r{record}"));
        }

        fn emit_watermark(&mut self, watermark: Watermark) {
            self.0.push(format!("w{}", watermark.0));
        }

        fn emit_watermark_status(&mut self, status: WatermarkStatus) {
            self.0.push(format!("{status:?}"));
        }
    }

    fn assigner(
        strategy: WatermarkStrategy<i64>,
        interval_ms: u64,
    ) -> (WatermarkAssigner<i64>, ManualClock) {
        let clock = ManualClock::new();
        let assigner = WatermarkAssigner::new(
            strategy,
            Arc::new(clock.clone()),
            Duration::from_millis(interval_ms),
        );
        (assigner, clock)
    }

    fn feed(assigner: &mut WatermarkAssigner<i64>, records: &[i64], out: &mut Recorder) {
        for &x in records {
            assigner.process(x, out);
        }
    }

    #[test]
    fn periodic_watermarks_follow_the_clock_not_the_records() {
        let strategy = WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(10))
            .with_timestamp_assigner(|x: &i64| *x);
        let (mut assigner, clock) = assigner(strategy, 200);
        let mut out = Recorder::default();
        feed(&mut assigner, &[100, 50, 300], &mut out);
        assigner.periodic_if_due(&mut out);
        assert_eq!(out.0, ["r100", "r50", "r300"], "no watermark before 200 ms");
        clock.advance(Duration::from_millis(200));
        // Idle input: the task's poll asks again.
        assigner.periodic_if_due(&mut out);
        assert_eq!(out.0.last().unwrap(), "w289", "newest 300 - 10 - 1");
        feed(&mut assigner, &[400], &mut out);
        clock.advance(Duration::from_millis(199));
        assigner.periodic_if_due(&mut out);
        assert_eq!(out.0.last().unwrap(), "r400");
        clock.advance(Duration::from_millis(1));
        feed(&mut assigner, &[390], &mut out);
        assert_eq!(out.0[5..], ["r390", "w389"]);
        // Nothing new: the same watermark is not sent twice.
        clock.advance(Duration::from_millis(200));
        assigner.periodic_if_due(&mut out);
        assigner.process_watermark(Watermark(5_000), &mut out);
        assigner.end_input(&mut out);
        assert_eq!(out.0[7..], [format!("w{}", i64::MAX)]);
    }

    #[test]
    fn interval_zero_emits_every_records_per_watermark_records_on_the_record_path() {
        let strategy =
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(10), |x: &i64| *x);
        let (mut assigner, _clock) = assigner(strategy, 0);
        let mut out = Recorder::default();
        // Out of order: the newest timestamp counts.
        let input: Vec<i64> = (0..RECORDS_PER_WATERMARK as i64).rev().collect();
        feed(&mut assigner, &input, &mut out);
        assigner.process_watermark(Watermark(5_000), &mut out);
        assigner.end_input(&mut out);
        let watermarks: Vec<&String> = out.0.iter().filter(|s| s.starts_with('w')).collect();
        let last_record = RECORDS_PER_WATERMARK as i64 - 1;
        assert_eq!(
            watermarks,
            [
                &format!("w{}", last_record - 10 - 1),
                &format!("w{}", i64::MAX)
            ]
        );
        assert_eq!(out.0.len(), RECORDS_PER_WATERMARK as usize + 2);
    }

    /// A watermark at each timestamp divisible by 10.
    struct EveryTen;

    impl WatermarkGenerator<i64> for EveryTen {
        fn on_event(&mut self, _: &i64, timestamp: i64, out: &mut WatermarkOutput) {
            if timestamp % 10 == 0 {
                out.emit_watermark(Watermark(timestamp));
            }
        }

        fn on_periodic_emit(&mut self, _: &mut WatermarkOutput) {}
    }

    #[test]
    fn a_punctuated_generator_emits_right_after_its_record_and_never_backwards() {
        let strategy =
            WatermarkStrategy::for_generator(|| EveryTen).with_timestamp_assigner(|x: &i64| x * 2);
        let (mut assigner, _clock) = assigner(strategy, 200);
        let mut out = Recorder::default();
        feed(&mut assigner, &[1, 5, 7, 2, 10], &mut out);
        assert_eq!(out.0, ["r1", "r5", "w10", "r7", "r2", "r10", "w20"]);
    }

    #[test]
    fn a_periodic_generator_sees_a_whole_batch_with_the_same_result_as_record_by_record() {
        let strategy = WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(10))
            .with_timestamp_assigner(|x: &i64| x * 2);
        let (inner, _clock) = assigner(strategy, 200);
        assert!(inner.generator.is_periodic());
        let mut stamping = StampingAssigner::new(inner, |r: i64| (r, NO_TIMESTAMP));
        let mut batch = vec![50, 25, 150, 140];
        let mut stamped = Vec::new();
        stamping.process_batch(&mut batch, &mut Emitter::collecting(&mut stamped));
        assert!(batch.is_empty());
        let got: Vec<(i64, i64)> = stamped.iter().map(|r| (r.value, r.timestamp)).collect();
        assert_eq!(got, [(50, 100), (25, 50), (150, 300), (140, 280)]);
        let mut watermark = WatermarkOutput::default();
        stamping.inner.generator.on_periodic_emit(&mut watermark);
        assert_eq!(
            watermark.take(),
            Some(Watermark(289)),
            "newest 300 - 10 - 1"
        );
        assert_eq!(stamping.inner.since_periodic, 4);
    }

    #[test]
    fn without_a_timestamp_assigner_only_the_end_of_input_moves_event_time() {
        let strategy = WatermarkStrategy::for_monotonous_timestamps();
        let (mut assigner, clock) = assigner(strategy, 200);
        let mut out = Recorder::default();
        feed(&mut assigner, &[1, 2], &mut out);
        clock.advance(Duration::from_secs(1));
        assigner.periodic_if_due(&mut out);
        assigner.end_input(&mut out);
        assert_eq!(out.0, ["r1", "r2", format!("w{}", i64::MAX).as_str()]);
    }

    #[test]
    fn an_instance_without_records_for_the_idleness_timeout_goes_idle_until_its_next_record() {
        let strategy = WatermarkStrategy::for_monotonous_timestamps()
            .with_timestamp_assigner(|x: &i64| *x)
            .with_idleness(Duration::from_millis(1_000));
        let (mut assigner, clock) = assigner(strategy, 200);
        let mut out = Recorder::default();
        feed(&mut assigner, &[10], &mut out);
        // Checks at 200 ms (records seen: the timer restarts) .. 1000 ms: not yet.
        for _ in 0..5 {
            clock.advance(Duration::from_millis(200));
            assigner.periodic_if_due(&mut out);
        }
        assert_eq!(out.0, ["r10", "w9"]);
        clock.advance(Duration::from_millis(200));
        assigner.periodic_if_due(&mut out);
        assert_eq!(out.0[2..], ["Idle"], "1000 ms after the check that saw r10");
        // Idle: no periodic watermarks, no second Idle.
        clock.advance(Duration::from_millis(400));
        assigner.periodic_if_due(&mut out);
        assert_eq!(out.0.len(), 3);
        // A record makes it active before the record goes out.
        feed(&mut assigner, &[50], &mut out);
        clock.advance(Duration::from_millis(200));
        assigner.periodic_if_due(&mut out);
        assert_eq!(out.0[3..], ["Active", "r50", "w49"]);
        for _ in 0..5 {
            clock.advance(Duration::from_millis(200));
            assigner.periodic_if_due(&mut out);
        }
        // Idle at the end of input: active again so that MAX counts downstream.
        assigner.end_input(&mut out);
        assert_eq!(
            out.0[6..],
            [
                "Idle".to_string(),
                "Active".to_string(),
                format!("w{}", i64::MAX)
            ]
        );
    }

    #[test]
    fn without_idleness_an_instance_without_records_never_goes_idle() {
        let strategy =
            WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(|x: &i64| *x);
        let (mut assigner, clock) = assigner(strategy, 200);
        let mut out = Recorder::default();
        clock.advance(Duration::from_secs(3600));
        assigner.periodic_if_due(&mut out);
        assert!(out.0.is_empty());
    }
}
