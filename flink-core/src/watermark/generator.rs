//! [`WatermarkGenerator`]: decides watermarks from the timestamps seen, as Flink's
//! interface of that name, and the generators Flink ships.

use std::time::Duration;

use super::Watermark;
use crate::timestamped::Timestamped;

/// Where a [`WatermarkGenerator`] emits. The assigner forwards a watermark only if it
/// is above every watermark it forwarded before, so a generator may emit freely.
///
/// ```
/// use flink_core::watermark::{Watermark, WatermarkOutput};
///
/// let mut out = WatermarkOutput::default();
/// out.emit_watermark(Watermark(7));
/// out.emit_watermark(Watermark(5));
/// assert_eq!(out.take(), Some(Watermark(7)));
/// assert_eq!(out.take(), None);
/// ```
#[derive(Debug, Default)]
pub struct WatermarkOutput {
    pending: Option<Watermark>,
}

impl WatermarkOutput {
    /// Event time reached `watermark`.
    pub fn emit_watermark(&mut self, watermark: Watermark) {
        self.pending = Some(self.pending.map_or(watermark, |p| p.max(watermark)));
    }

    /// The highest watermark emitted since the last call, if any.
    pub fn take(&mut self) -> Option<Watermark> {
        self.pending.take()
    }
}

/// Makes watermarks from the records' timestamps, as Flink's `WatermarkGenerator`:
/// [`on_event`](Self::on_event) per record (a punctuated generator emits there),
/// [`on_periodic_emit`](Self::on_periodic_emit) on every auto-watermark interval of
/// the job's clock (a periodic generator emits there).
///
/// ```
/// use flink_core::watermark::{Watermark, WatermarkGenerator, WatermarkOutput};
///
/// /// A watermark at every record marked as the end of a batch.
/// struct EndOfBatch;
///
/// impl WatermarkGenerator<(i64, bool)> for EndOfBatch {
///     fn on_event(&mut self, record: &(i64, bool), timestamp: i64, out: &mut WatermarkOutput) {
///         if record.1 {
///             out.emit_watermark(Watermark(timestamp));
///         }
///     }
///     fn on_periodic_emit(&mut self, _out: &mut WatermarkOutput) {}
/// }
///
/// let mut generator = EndOfBatch;
/// let mut out = WatermarkOutput::default();
/// generator.on_event(&(10, false), 10, &mut out);
/// assert_eq!(out.take(), None);
/// generator.on_event(&(12, true), 12, &mut out);
/// assert_eq!(out.take(), Some(Watermark(12)));
/// ```
pub trait WatermarkGenerator<T>: Send + 'static {
    /// A record with event time `timestamp` passed.
    fn on_event(&mut self, record: &T, timestamp: i64, out: &mut WatermarkOutput);

    /// The auto-watermark interval elapsed on the job's clock.
    fn on_periodic_emit(&mut self, out: &mut WatermarkOutput);

    /// Whether [`on_event`](Self::on_event) never emits: a periodic generator.
    /// The assigner then shows it a whole batch of records at once
    /// ([`on_events`](Self::on_events)) instead of one call per record; a
    /// punctuated generator (the default, as it is always correct) sees each
    /// record before the next one goes on, so its watermark follows the record
    /// that allowed it.
    fn is_periodic(&self) -> bool {
        false
    }

    /// The records of a batch passed, in order, with their timestamps; called
    /// instead of [`on_event`](Self::on_event) only on a generator that
    /// [`is_periodic`](Self::is_periodic). By default, `on_event` per record.
    fn on_events(&mut self, events: &[Timestamped<T>], out: &mut WatermarkOutput) {
        for event in events {
            self.on_event(&event.value, event.timestamp, out);
        }
    }
}

/// Records arrive at most a fixed time later than the newest one seen (Flink's
/// `BoundedOutOfOrdernessWatermarks`): the periodic watermark is the newest
/// timestamp minus the bound minus one millisecond, so a record exactly at the bound
/// is still on time.
///
/// ```
/// use std::time::Duration;
/// use flink_core::watermark::*;
///
/// let mut generator = BoundedOutOfOrdernessWatermarks::new(Duration::from_millis(10));
/// let mut out = WatermarkOutput::default();
/// WatermarkGenerator::<()>::on_event(&mut generator, &(), 100, &mut out);
/// WatermarkGenerator::<()>::on_event(&mut generator, &(), 40, &mut out);
/// WatermarkGenerator::<()>::on_periodic_emit(&mut generator, &mut out);
/// assert_eq!(out.take(), Some(Watermark(89)));
/// ```
#[derive(Debug, Clone)]
pub struct BoundedOutOfOrdernessWatermarks {
    max_timestamp: i64,
    out_of_orderness_ms: i64,
}

impl BoundedOutOfOrdernessWatermarks {
    /// Records may be up to `max` older than the newest seen.
    pub fn new(max: Duration) -> Self {
        Self {
            max_timestamp: i64::MIN,
            out_of_orderness_ms: i64::try_from(max.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// The watermark the timestamps seen so far allow.
    fn current(&self) -> Watermark {
        Watermark(
            self.max_timestamp
                .saturating_sub(self.out_of_orderness_ms)
                .saturating_sub(1),
        )
    }
}

impl<T> WatermarkGenerator<T> for BoundedOutOfOrdernessWatermarks {
    #[inline]
    fn on_event(&mut self, _record: &T, timestamp: i64, _out: &mut WatermarkOutput) {
        self.max_timestamp = self.max_timestamp.max(timestamp);
    }

    fn on_periodic_emit(&mut self, out: &mut WatermarkOutput) {
        if self.max_timestamp != i64::MIN {
            out.emit_watermark(self.current());
        }
    }

    fn is_periodic(&self) -> bool {
        true
    }

    #[inline]
    fn on_events(&mut self, events: &[Timestamped<T>], _out: &mut WatermarkOutput) {
        let newest = events.iter().map(|e| e.timestamp).max();
        self.max_timestamp = self.max_timestamp.max(newest.unwrap_or(i64::MIN));
    }
}

/// Timestamps never go backwards (Flink's `AscendingTimestampsWatermarks`): bounded
/// out-of-orderness of zero.
#[derive(Debug, Clone)]
pub struct AscendingTimestampsWatermarks(BoundedOutOfOrdernessWatermarks);

impl Default for AscendingTimestampsWatermarks {
    fn default() -> Self {
        Self(BoundedOutOfOrdernessWatermarks::new(Duration::ZERO))
    }
}

impl<T> WatermarkGenerator<T> for AscendingTimestampsWatermarks {
    #[inline]
    fn on_event(&mut self, record: &T, timestamp: i64, out: &mut WatermarkOutput) {
        self.0.on_event(record, timestamp, out);
    }

    fn on_periodic_emit(&mut self, out: &mut WatermarkOutput) {
        WatermarkGenerator::<T>::on_periodic_emit(&mut self.0, out);
    }

    fn is_periodic(&self) -> bool {
        true
    }

    #[inline]
    fn on_events(&mut self, events: &[Timestamped<T>], out: &mut WatermarkOutput) {
        self.0.on_events(events, out);
    }
}

/// Emits no watermarks (Flink's `WatermarkStrategy.noWatermarks()`); only the end of
/// a bounded input advances event time, to its end.
#[derive(Debug, Clone, Default)]
pub struct NoWatermarks;

impl<T> WatermarkGenerator<T> for NoWatermarks {
    fn on_event(&mut self, _record: &T, _timestamp: i64, _out: &mut WatermarkOutput) {}

    fn on_periodic_emit(&mut self, _out: &mut WatermarkOutput) {}

    fn is_periodic(&self) -> bool {
        true
    }

    fn on_events(&mut self, _events: &[Timestamped<T>], _out: &mut WatermarkOutput) {}
}
