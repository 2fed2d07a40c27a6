//! [`SplitWatermarks`]: a watermark generator per source split; a reader's
//! watermark is the minimum over its splits, as Flink's FLIP-27 sources with a
//! `WatermarkStrategy` (per-split watermarks, `SourceOutput` per split). Used by
//! the Kafka source (a split is a partition) and by the generator and sequence
//! sources (a split is a saved reader's share, several after a restore at a lower
//! parallelism).

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::functions::Collector;
use crate::watermark::{
    NO_TIMESTAMP, Watermark, WatermarkGenerator, WatermarkOutput, WatermarkStatus,
    WatermarkStrategy,
};

/// The watermarks of one reader's splits. Records are shown to their split's
/// generator with the strategy's timestamp, or the timestamp the reader gives
/// (a Kafka record's) where the strategy has no assigner. After each poll
/// [`emit`](Self::emit) forwards the minimum over the splits that are neither
/// finished nor idle, if it advanced: a split that lags holds the reader's
/// watermark back, so none of its records is late downstream, however the reader
/// interleaves its splits. Periodic generators are asked every `interval` of the
/// job's clock (zero: after every poll). With the strategy's idleness timeout, a
/// split without records for that long stops counting until its next record; when
/// every split left is idle the reader's output is marked idle.
pub struct SplitWatermarks<T> {
    strategy: WatermarkStrategy<T>,
    clock: Arc<dyn Clock>,
    interval: Duration,
    next_periodic: Duration,
    splits: Vec<Tracked<T>>,
    /// The last watermark forwarded: the reader's event time never goes back.
    emitted: Watermark,
    /// Whether the reader's output is marked idle.
    idle: bool,
}

/// One split's generator and idleness timer.
struct Tracked<T> {
    generator: Box<dyn WatermarkGenerator<T>>,
    output: WatermarkOutput,
    /// The highest watermark its generator emitted.
    watermark: Watermark,
    /// The clock time of the last check that found records (or of the start).
    active_since: Duration,
    seen_since_check: bool,
    idle: bool,
    finished: bool,
}

impl<T: 'static> SplitWatermarks<T> {
    /// No splits yet; see [`track`](Self::track).
    pub fn new(strategy: WatermarkStrategy<T>, clock: Arc<dyn Clock>, interval: Duration) -> Self {
        let next_periodic = clock.now() + interval;
        Self {
            strategy,
            clock,
            interval,
            next_periodic,
            splits: Vec::new(),
            emitted: Watermark::MIN,
            idle: false,
        }
    }

    /// Tracks the next split (the reader's splits in order); returns its index.
    pub fn track(&mut self) -> usize {
        self.splits.push(Tracked {
            generator: self.strategy.create_generator(),
            output: WatermarkOutput::default(),
            watermark: Watermark::MIN,
            active_since: self.clock.now(),
            seen_since_check: false,
            idle: false,
            finished: false,
        });
        self.splits.len() - 1
    }

    /// Forgets every split (a reader restored to other splits before its first
    /// poll tracks those instead).
    pub fn clear(&mut self) {
        self.splits.clear();
    }

    /// The number of splits tracked.
    pub fn len(&self) -> usize {
        self.splits.len()
    }

    /// Whether no split is tracked.
    pub fn is_empty(&self) -> bool {
        self.splits.is_empty()
    }

    /// A record of split `split` (an index [`track`](Self::track) returned);
    /// `fallback_timestamp` (ms, a Kafka record's) is its timestamp where the
    /// strategy has no assigner.
    #[inline]
    pub fn on_record(&mut self, split: usize, record: &T, fallback_timestamp: Option<i64>) {
        let timestamp = match self.strategy.timestamp_assigner() {
            Some(assign) => assign(record),
            None => fallback_timestamp.unwrap_or(NO_TIMESTAMP),
        };
        let part = &mut self.splits[split];
        part.seen_since_check = true;
        part.idle = false;
        part.generator.on_event(record, timestamp, &mut part.output);
        if let Some(w) = part.output.take() {
            part.watermark = part.watermark.max(w);
        }
    }

    /// Split `split` has ended (a bounded split read to its end): it no longer
    /// holds the watermark back.
    pub fn finish(&mut self, split: usize) {
        if let Some(split) = self.splits.get_mut(split) {
            split.finished = true;
        }
    }

    /// After a poll: runs the periodic generators if due, then forwards the
    /// reader's watermark or idleness. `bounded`: the reader finishes once every
    /// split did (its end of input then advances event time to the end).
    pub fn emit<C: Collector<T> + ?Sized>(&mut self, bounded: bool, out: &mut C) {
        self.periodic_if_due();
        let active = self
            .splits
            .iter()
            .filter(|p| !p.finished && !p.idle)
            .map(|p| p.watermark)
            .min();
        match active {
            Some(watermark) => {
                if self.idle {
                    self.idle = false;
                    out.emit_watermark_status(WatermarkStatus::Active);
                }
                if watermark > self.emitted {
                    self.emitted = watermark;
                    out.emit_watermark(watermark);
                }
            }
            None => {
                // Idle splits left, or (unbounded) nothing assigned at all; a
                // bounded reader whose splits all finished ends instead, active:
                // downstream ignores an idle input's watermarks, and its end of
                // input advances event time to the end.
                let any_idle = self.splits.iter().any(|p| !p.finished && p.idle);
                let nothing_assigned = !bounded && self.splits.is_empty();
                if (any_idle || nothing_assigned) && !self.idle {
                    self.idle = true;
                    out.emit_watermark_status(WatermarkStatus::Idle);
                } else if bounded && !any_idle && self.idle {
                    self.idle = false;
                    out.emit_watermark_status(WatermarkStatus::Active);
                }
            }
        }
    }

    /// Asks every running split's generator for its periodic watermark, and
    /// runs the idleness timers, once per interval.
    fn periodic_if_due(&mut self) {
        let now = self.clock.now();
        if !self.interval.is_zero() {
            if now < self.next_periodic {
                return;
            }
            self.next_periodic = now + self.interval;
        }
        let timeout = self.strategy.idleness();
        for part in self.splits.iter_mut().filter(|p| !p.finished) {
            if std::mem::take(&mut part.seen_since_check) {
                part.active_since = now;
            } else if timeout.is_some_and(|t| now.saturating_sub(part.active_since) >= t) {
                part.idle = true;
            }
            if !part.idle {
                part.generator.on_periodic_emit(&mut part.output);
                if let Some(w) = part.output.take() {
                    part.watermark = part.watermark.max(w);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::clock::ManualClock;
    use crate::source::SourceOutput;

    use super::*;

    fn tracker(
        strategy: WatermarkStrategy<i64>,
        splits: usize,
    ) -> (SplitWatermarks<i64>, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new());
        let mut w = SplitWatermarks::new(strategy, clock.clone(), Duration::from_millis(200));
        for _ in 0..splits {
            w.track();
        }
        (w, clock)
    }

    /// Advances the clock one interval and emits; returns (watermark, status).
    fn tick(
        w: &mut SplitWatermarks<i64>,
        clock: &ManualClock,
    ) -> (Option<Watermark>, Option<WatermarkStatus>) {
        clock.advance(Duration::from_millis(200));
        let mut out = SourceOutput::new();
        w.emit(false, &mut out);
        (out.take_watermark(), out.take_watermark_status())
    }

    #[test]
    fn the_watermark_follows_the_slowest_split() {
        // Kafka timestamps (no assigner), monotonous: watermark = newest - 1.
        let (mut w, clock) = tracker(WatermarkStrategy::for_monotonous_timestamps(), 2);
        w.on_record(0, &0, Some(1_000));
        // Split 1 has no record yet: nothing.
        assert_eq!(tick(&mut w, &clock), (None, None));
        w.on_record(1, &0, Some(300));
        assert_eq!(tick(&mut w, &clock), (Some(Watermark(299)), None));
        w.on_record(0, &0, Some(5_000));
        w.on_record(1, &0, Some(700));
        assert_eq!(tick(&mut w, &clock), (Some(Watermark(699)), None));
        // The lagging split catches up past the other one.
        w.on_record(1, &0, Some(9_000));
        assert_eq!(tick(&mut w, &clock), (Some(Watermark(4_999)), None));
        // A finished split no longer counts.
        w.finish(0);
        assert_eq!(tick(&mut w, &clock), (Some(Watermark(8_999)), None));
    }

    #[test]
    fn an_assigner_overrides_the_kafka_timestamp() {
        let (mut w, clock) = tracker(WatermarkStrategy::monotonous(|x: &i64| *x), 1);
        w.on_record(0, &42, Some(1_000_000));
        assert_eq!(tick(&mut w, &clock), (Some(Watermark(41)), None));
    }

    #[test]
    fn an_idle_split_stops_holding_the_watermark_back() {
        let strategy = WatermarkStrategy::for_monotonous_timestamps()
            .with_idleness(Duration::from_millis(500));
        let (mut w, clock) = tracker(strategy, 2);
        w.on_record(0, &0, Some(100));
        w.on_record(1, &0, Some(50));
        assert_eq!(tick(&mut w, &clock), (Some(Watermark(49)), None));
        // Split 1 gets nothing more; split 0 goes on.
        let mut got = Vec::new();
        for ts in [200, 300, 400] {
            w.on_record(0, &0, Some(ts));
            got.push(tick(&mut w, &clock));
        }
        // Idle after 500 ms without records (checked every 200 ms): 600 ms.
        assert_eq!(
            got,
            [(None, None), (None, None), (Some(Watermark(399)), None)]
        );
        // Split 1's next record brings it back; the watermark does not go back.
        w.on_record(1, &0, Some(60));
        assert_eq!(tick(&mut w, &clock), (None, None));
        w.on_record(1, &0, Some(1_000));
        w.on_record(0, &0, Some(2_000));
        assert_eq!(tick(&mut w, &clock), (Some(Watermark(999)), None));
        // Both idle: the reader's output is idle, then active with its next record.
        let got: Vec<_> = (0..4).map(|_| tick(&mut w, &clock)).collect();
        assert_eq!(
            got,
            [
                (None, None),
                (None, None),
                (None, Some(WatermarkStatus::Idle)),
                (None, None)
            ]
        );
        w.on_record(0, &0, Some(3_000));
        let (_, status) = tick(&mut w, &clock);
        assert_eq!(status, Some(WatermarkStatus::Active));
    }

    #[test]
    fn a_bounded_reader_ends_active() {
        let strategy = WatermarkStrategy::for_monotonous_timestamps()
            .with_idleness(Duration::from_millis(100));
        let (mut w, clock) = tracker(strategy, 2);
        w.on_record(0, &0, Some(100));
        w.finish(0);
        let mut out = SourceOutput::new();
        clock.advance(Duration::from_millis(200));
        w.emit(true, &mut out);
        clock.advance(Duration::from_millis(200));
        w.emit(true, &mut out);
        assert_eq!(out.take_watermark_status(), Some(WatermarkStatus::Idle));
        // The idle split finishes: the reader's output is active for its end.
        w.finish(1);
        w.emit(true, &mut out);
        assert_eq!(out.take_watermark_status(), Some(WatermarkStatus::Active));
    }

    #[test]
    fn a_reader_without_splits_is_idle_unless_bounded() {
        let (mut w, _clock) = tracker(WatermarkStrategy::for_monotonous_timestamps(), 0);
        let mut out = SourceOutput::new();
        w.emit(true, &mut out);
        assert_eq!(out.take_watermark_status(), None);
        w.emit(false, &mut out);
        assert_eq!(out.take_watermark_status(), Some(WatermarkStatus::Idle));
    }
}
