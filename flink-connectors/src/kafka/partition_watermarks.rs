//! [`PartitionWatermarks`]: a watermark generator per Kafka partition; a reader's
//! watermark is the minimum over its partitions, as Flink's `KafkaSource` with a
//! `WatermarkStrategy` (per-split watermarks).

use std::sync::Arc;
use std::time::Duration;

use flink_core::clock::Clock;
use flink_core::functions::Collector;
use flink_core::watermark::{
    NO_TIMESTAMP, Watermark, WatermarkGenerator, WatermarkOutput, WatermarkStatus,
    WatermarkStrategy,
};

/// The watermarks of one reader's partitions. Records are shown to their
/// partition's generator with the strategy's timestamp, or the Kafka record's
/// timestamp where the strategy has no assigner. After each poll
/// [`emit`](Self::emit) forwards the minimum over the partitions that are neither
/// finished nor idle, if it advanced: a partition that lags holds the reader's
/// watermark back, so none of its records is late downstream. Periodic generators
/// are asked every `interval` of the job's clock (zero: after every poll). With the
/// strategy's idleness timeout, a partition without records for that long stops
/// counting until its next record; when every partition left is idle the reader's
/// output is marked idle.
pub(crate) struct PartitionWatermarks<T> {
    strategy: WatermarkStrategy<T>,
    clock: Arc<dyn Clock>,
    interval: Duration,
    next_periodic: Duration,
    partitions: Vec<Tracked<T>>,
    /// The last watermark forwarded: the reader's event time never goes back.
    emitted: Watermark,
    /// Whether the reader's output is marked idle.
    idle: bool,
}

/// One partition's generator and idleness timer.
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

impl<T: 'static> PartitionWatermarks<T> {
    /// No partitions yet; see [`track`](Self::track).
    pub(crate) fn new(
        strategy: WatermarkStrategy<T>,
        clock: Arc<dyn Clock>,
        interval: Duration,
    ) -> Self {
        let next_periodic = clock.now() + interval;
        Self {
            strategy,
            clock,
            interval,
            next_periodic,
            partitions: Vec::new(),
            emitted: Watermark::MIN,
            idle: false,
        }
    }

    /// Tracks the next partition (the reader's partitions in order); returns its
    /// index.
    pub(crate) fn track(&mut self) -> usize {
        self.partitions.push(Tracked {
            generator: self.strategy.create_generator(),
            output: WatermarkOutput::default(),
            watermark: Watermark::MIN,
            active_since: self.clock.now(),
            seen_since_check: false,
            idle: false,
            finished: false,
        });
        self.partitions.len() - 1
    }

    /// A record of partition `partition`, whose Kafka timestamp (ms) is
    /// `kafka_timestamp`.
    #[inline]
    pub(crate) fn on_record(&mut self, partition: usize, record: &T, kafka_timestamp: Option<i64>) {
        let timestamp = match self.strategy.timestamp_assigner() {
            Some(assign) => assign(record),
            None => kafka_timestamp.unwrap_or(NO_TIMESTAMP),
        };
        let part = &mut self.partitions[partition];
        part.seen_since_check = true;
        part.idle = false;
        part.generator.on_event(record, timestamp, &mut part.output);
        if let Some(w) = part.output.take() {
            part.watermark = part.watermark.max(w);
        }
    }

    /// Partition `partition` has ended (a bounded partition read to its stop): it
    /// no longer holds the watermark back.
    pub(crate) fn finish(&mut self, partition: usize) {
        self.partitions[partition].finished = true;
    }

    /// After a poll: runs the periodic generators if due, then forwards the
    /// reader's watermark or idleness. `bounded`: the reader finishes once every
    /// partition did (its end of input then advances event time to the end).
    pub(crate) fn emit<C: Collector<T> + ?Sized>(&mut self, bounded: bool, out: &mut C) {
        self.periodic_if_due();
        let active = self
            .partitions
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
                // Idle partitions left, or (unbounded) nothing assigned at all; a
                // bounded reader whose partitions all finished ends instead, active:
                // downstream ignores an idle input's watermarks, and its end of
                // input advances event time to the end.
                let any_idle = self.partitions.iter().any(|p| !p.finished && p.idle);
                let nothing_assigned = !bounded && self.partitions.is_empty();
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

    /// Asks every running partition's generator for its periodic watermark, and
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
        for part in self.partitions.iter_mut().filter(|p| !p.finished) {
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

    use flink_core::clock::ManualClock;
    use flink_core::source::SourceOutput;

    use super::*;

    fn tracker(
        strategy: WatermarkStrategy<i64>,
        partitions: usize,
    ) -> (PartitionWatermarks<i64>, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new());
        let mut w = PartitionWatermarks::new(strategy, clock.clone(), Duration::from_millis(200));
        for _ in 0..partitions {
            w.track();
        }
        (w, clock)
    }

    /// Advances the clock one interval and emits; returns (watermark, status).
    fn tick(
        w: &mut PartitionWatermarks<i64>,
        clock: &ManualClock,
    ) -> (Option<Watermark>, Option<WatermarkStatus>) {
        clock.advance(Duration::from_millis(200));
        let mut out = SourceOutput::new();
        w.emit(false, &mut out);
        (out.take_watermark(), out.take_watermark_status())
    }

    #[test]
    fn the_watermark_follows_the_slowest_partition() {
        // Kafka timestamps (no assigner), monotonous: watermark = newest - 1.
        let (mut w, clock) = tracker(WatermarkStrategy::for_monotonous_timestamps(), 2);
        w.on_record(0, &0, Some(1_000));
        // Partition 1 has no record yet: nothing.
        assert_eq!(tick(&mut w, &clock), (None, None));
        w.on_record(1, &0, Some(300));
        assert_eq!(tick(&mut w, &clock), (Some(Watermark(299)), None));
        w.on_record(0, &0, Some(5_000));
        w.on_record(1, &0, Some(700));
        assert_eq!(tick(&mut w, &clock), (Some(Watermark(699)), None));
        // The lagging partition catches up past the other one.
        w.on_record(1, &0, Some(9_000));
        assert_eq!(tick(&mut w, &clock), (Some(Watermark(4_999)), None));
        // A finished partition no longer counts.
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
    fn an_idle_partition_stops_holding_the_watermark_back() {
        let strategy = WatermarkStrategy::for_monotonous_timestamps()
            .with_idleness(Duration::from_millis(500));
        let (mut w, clock) = tracker(strategy, 2);
        w.on_record(0, &0, Some(100));
        w.on_record(1, &0, Some(50));
        assert_eq!(tick(&mut w, &clock), (Some(Watermark(49)), None));
        // Partition 1 gets nothing more; partition 0 goes on.
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
        // Partition 1's next record brings it back; the watermark does not go back.
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
        // The idle partition finishes: the reader's output is active for its end.
        w.finish(1);
        w.emit(true, &mut out);
        assert_eq!(out.take_watermark_status(), Some(WatermarkStatus::Active));
    }

    #[test]
    fn a_reader_without_partitions_is_idle_unless_bounded() {
        let (mut w, _clock) = tracker(WatermarkStrategy::for_monotonous_timestamps(), 0);
        let mut out = SourceOutput::new();
        w.emit(true, &mut out);
        assert_eq!(out.take_watermark_status(), None);
        w.emit(false, &mut out);
        assert_eq!(out.take_watermark_status(), Some(WatermarkStatus::Idle));
    }
}
