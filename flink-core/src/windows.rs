//! Windows: a keyed stream cut into finite buckets of time, each aggregated on its
//! own, as Flink's `KeyedStream.window(..)`.
//!
//! A [`WindowAssigner`] puts each record into windows by its timestamp (event time)
//! or by the job's clock (processing time); a window fires once time passes its end
//! (for event time: once the watermark reaches `end - 1`), emitting what its
//! function computes; records for windows whose time is past (plus the allowed
//! lateness) are late and go to a side output or are counted as dropped.

mod aggregate_function;
mod assigner;
mod sliding;
mod time_window;
mod tumbling;
mod window_aggregation;
mod window_error;
mod windowed_stream;

pub use aggregate_function::AggregateFunction;
pub use assigner::WindowAssigner;
pub use sliding::{SlidingEventTimeWindows, SlidingProcessingTimeWindows};
pub use time_window::TimeWindow;
pub use tumbling::{TumblingEventTimeWindows, TumblingProcessingTimeWindows};
pub use window_aggregation::{
    AggregateProcessWindow, AggregateWindow, ProcessWindow, ReduceWindow, WindowAggregation,
};
pub use window_error::WindowError;
pub use windowed_stream::WindowedStream;

/// Milliseconds of a duration, saturating.
pub(crate) fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
