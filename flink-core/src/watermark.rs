//! [`Watermark`]: event-time progress, travelling in order with the records.
//!
//! A watermark `w` says that no more records with a timestamp at or below `w` are
//! expected. Operators pass watermarks on after the records that preceded them;
//! an operator with several input channels forwards the minimum over its channels
//! (see the runtime's watermark valve). The async operator holds a watermark back
//! until every call that started before it has emitted its result, so results never
//! cross it, even in unordered mode.

/// Event-time progress, in milliseconds like Flink's.
///
/// ```
/// use flink_core::watermark::Watermark;
///
/// assert!(Watermark(5) < Watermark(7));
/// assert_eq!(Watermark::MAX.timestamp(), i64::MAX);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Watermark(pub i64);

impl Watermark {
    /// Before any event time: what a channel holds until its first watermark.
    pub const MIN: Watermark = Watermark(i64::MIN);
    /// The end of event time, emitted when a bounded input ends.
    pub const MAX: Watermark = Watermark(i64::MAX);

    /// The watermark's timestamp.
    pub fn timestamp(&self) -> i64 {
        self.0
    }
}

/// How a stream's records get event-time progress: a timestamp per record and how
/// far out of order records may arrive, like Flink's
/// `WatermarkStrategy.forBoundedOutOfOrderness(..).withTimestampAssigner(..)`.
///
/// After a record with timestamp `t`, the watermark is at most
/// `t - max_out_of_orderness - 1` (in milliseconds), so records up to that much
/// older than the newest one seen are still on time.
///
/// ```
/// use std::time::Duration;
/// use flink_core::prelude::*;
/// use flink_core::watermark::WatermarkStrategy;
///
/// let env = StreamExecutionEnvironment::new();
/// let timed = env
///     .from_sequence(1, 100)
///     .assign_timestamps_and_watermarks(WatermarkStrategy::bounded_out_of_orderness(
///         Duration::from_millis(10),
///         |x: &u64| *x as i64,
///     ));
/// # let _ = timed;
/// ```
pub struct WatermarkStrategy<T> {
    pub(crate) timestamp: std::sync::Arc<dyn Fn(&T) -> i64 + Send + Sync>,
    pub(crate) max_out_of_orderness_ms: i64,
}

impl<T> Clone for WatermarkStrategy<T> {
    fn clone(&self) -> Self {
        Self {
            timestamp: self.timestamp.clone(),
            max_out_of_orderness_ms: self.max_out_of_orderness_ms,
        }
    }
}

impl<T> WatermarkStrategy<T> {
    /// Records may arrive up to `max` later than the newest timestamp seen.
    pub fn bounded_out_of_orderness(
        max: std::time::Duration,
        timestamp: impl Fn(&T) -> i64 + Send + Sync + 'static,
    ) -> Self {
        Self {
            timestamp: std::sync::Arc::new(timestamp),
            max_out_of_orderness_ms: i64::try_from(max.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// Timestamps never go backwards.
    pub fn monotonous(timestamp: impl Fn(&T) -> i64 + Send + Sync + 'static) -> Self {
        Self::bounded_out_of_orderness(std::time::Duration::ZERO, timestamp)
    }
}
