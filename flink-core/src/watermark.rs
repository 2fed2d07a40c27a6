//! [`Watermark`]: event-time progress, travelling in order with the records.
//!
//! A watermark `w` says that no more records with a timestamp at or below `w` are
//! expected. Operators pass watermarks on after the records that preceded them;
//! an operator with several input channels forwards the minimum over its channels
//! (see the runtime's watermark valve). The async operator holds a watermark back
//! until every call that started before it has emitted its result, so results never
//! cross it, even in unordered mode.
//!
//! Where watermarks come from: a [`WatermarkStrategy`] (Flink's), made of a
//! timestamp assigner and a [`WatermarkGenerator`].

mod generator;
mod split_watermarks;
mod strategy;

pub use generator::{
    AscendingTimestampsWatermarks, BoundedOutOfOrdernessWatermarks, NoWatermarks,
    WatermarkGenerator, WatermarkOutput,
};
pub use split_watermarks::SplitWatermarks;
pub use strategy::{DEFAULT_AUTO_WATERMARK_INTERVAL, NO_TIMESTAMP, TimestampFn, WatermarkStrategy};

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

/// Whether a stream's producer currently makes event-time progress (Flink's
/// `WatermarkStatus`). An input whose source saw no records for the strategy's
/// [`with_idleness`](WatermarkStrategy::with_idleness) timeout goes [`Idle`](Self::Idle):
/// downstream tasks then compute their watermark without it, until it is
/// [`Active`](Self::Active) again.
///
/// ```
/// use flink_core::watermark::WatermarkStatus;
///
/// assert!(WatermarkStatus::Idle.is_idle());
/// assert!(!WatermarkStatus::Active.is_idle());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WatermarkStatus {
    /// The producer emits records and watermarks.
    Active,
    /// The producer emits nothing for now; its watermark holds nothing back.
    Idle,
}

impl WatermarkStatus {
    /// Whether this is [`Idle`](Self::Idle).
    pub fn is_idle(self) -> bool {
        self == Self::Idle
    }
}
