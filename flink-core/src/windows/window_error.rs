//! [`WindowError`]: why a window definition cannot work.

/// A window definition that cannot work, reported when the job is built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// A window of no length.
    #[error("the window size must be positive, got 0 ms")]
    ZeroSize,
    /// A sliding window that never moves.
    #[error("the window slide must be positive, got 0 ms")]
    ZeroSlide,
    /// A slide larger than the size would leave records in no window.
    #[error("the slide ({slide_ms} ms) is larger than the window size ({size_ms} ms)")]
    SlideLargerThanSize {
        /// Window size in ms.
        size_ms: i64,
        /// Slide in ms.
        slide_ms: i64,
    },
    /// The offset must be shorter than the size (or slide).
    #[error("the offset ({offset_ms} ms) must be below the window step ({step_ms} ms)")]
    OffsetTooLarge {
        /// Offset in ms.
        offset_ms: i64,
        /// Size (tumbling) or slide (sliding) in ms.
        step_ms: i64,
    },
    /// Event-time windows need a timestamp per record.
    #[error(
        "event-time windows need timestamps: call assign_timestamps_and_watermarks (with a timestamp assigner) before key_by, with only filter or partitionings between"
    )]
    NoTimestamps,
    /// An interval join whose lower bound is above its upper bound joins nothing.
    #[error(
        "the interval join's lower bound ({lower_ms} ms) is above its upper bound ({upper_ms} ms)"
    )]
    InvalidJoinBounds {
        /// Lower bound in ms (after exclusivity is applied).
        lower_ms: i64,
        /// Upper bound in ms (after exclusivity is applied).
        upper_ms: i64,
    },
    /// Interval joins run on event time: both inputs need timestamps.
    #[error(
        "an interval join needs timestamps on both inputs: call assign_timestamps_and_watermarks (with a timestamp assigner) on each before key_by"
    )]
    JoinWithoutTimestamps,
    /// Session windows closed by no gap at all.
    #[error("the session gap must be positive, got 0 ms")]
    ZeroGap,
    /// A count trigger or evictor of zero records.
    #[error("the count must be positive, got 0")]
    ZeroCount,
    /// Session windows merge; this trigger cannot.
    #[error("the trigger cannot merge windows, so it cannot be used with session windows")]
    TriggerCannotMerge,
    /// Session windows merge accumulators; this aggregate function cannot.
    #[error(
        "the aggregate function cannot merge accumulators (implement AggregateFunction::merge), so it cannot be used with session windows"
    )]
    AggregateCannotMerge,
}
