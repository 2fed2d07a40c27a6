//! Windows: a keyed stream cut into finite buckets of time, each aggregated on its
//! own, as Flink's `KeyedStream.window(..)`.
//!
//! A [`WindowAssigner`] puts each record into windows by its timestamp (event time)
//! or by the job's clock (processing time); a window fires once time passes its end
//! (for event time: once the watermark reaches `end - 1`), emitting what its
//! function computes; records for windows whose time is past (plus the allowed
//! lateness) are late and go to a side output or are counted as dropped.
//!
//! Session windows ([`EventTimeSessionWindows`], [`ProcessingTimeSessionWindows`])
//! merge the windows of a key that overlap, with their state; [`GlobalWindows`]
//! hold a key's records for all time. A [`Trigger`] decides when a window fires and
//! purges (each assigner has its default; [`CountTrigger`] and [`PurgingTrigger`]
//! are built in) and an [`Evictor`] ([`CountEvictor`], [`TimeEvictor`]) removes
//! records before or after the window function sees them.

mod aggregate_function;
mod assigner;
mod count_evictor;
mod count_trigger;
mod evicting_windowed_stream;
mod evictor;
mod global;
mod purging_trigger;
mod session;
mod sliding;
mod time_evictor;
mod time_triggers;
mod time_window;
mod trigger;
mod tumbling;
mod window_aggregation;
mod window_error;
mod windowed_stream;

pub use aggregate_function::AggregateFunction;
pub use assigner::WindowAssigner;
pub use count_evictor::CountEvictor;
pub use count_trigger::CountTrigger;
pub use evicting_windowed_stream::EvictingWindowedStream;
pub use evictor::{Evictor, TimestampedElements};
pub use global::GlobalWindows;
pub use purging_trigger::PurgingTrigger;
pub use session::{EventTimeSessionWindows, ProcessingTimeSessionWindows};
pub use sliding::{SlidingEventTimeWindows, SlidingProcessingTimeWindows};
pub use time_evictor::TimeEvictor;
pub use time_triggers::{DefaultTrigger, EventTimeTrigger, NeverTrigger, ProcessingTimeTrigger};
pub use time_window::TimeWindow;
pub(crate) use trigger::TimerRequest;
pub use trigger::{Trigger, TriggerContext, TriggerResult};
pub use tumbling::{TumblingEventTimeWindows, TumblingProcessingTimeWindows};
pub use window_aggregation::{
    AggregateProcessWindow, AggregateWindow, EvictingProcessWindow, ProcessWindow,
    ReduceProcessWindow, ReduceWindow, WindowAggregation,
};
pub use window_error::WindowError;
pub use windowed_stream::WindowedStream;

/// Milliseconds of a duration, saturating.
pub(crate) fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
