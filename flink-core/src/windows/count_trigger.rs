//! [`CountTrigger`]: fires every n records of a window.

use super::{TimeWindow, Trigger, TriggerContext, TriggerResult, WindowError};

/// Fires a window each time it has received `count` more records (Flink's
/// `CountTrigger`); the window keeps its contents (wrap it in a
/// [`PurgingTrigger`](super::PurgingTrigger) to start over each time). A count of
/// zero is a build error ([`WindowError::ZeroCount`]).
///
/// ```
/// use flink_core::prelude::*;
/// use flink_core::windows::{CountTrigger, GlobalWindows, PurgingTrigger};
///
/// let env = StreamExecutionEnvironment::new();
/// // The sum of every 3 values per key.
/// let sums = env
///     .from_collection(vec![(1u8, 1u64), (1, 2), (1, 3), (2, 5), (1, 4)])
///     .key_by(|r: &(u8, u64)| r.0)
///     .window(GlobalWindows::create())
///     .trigger(PurgingTrigger::of(CountTrigger::of(3)))
///     .reduce(|a: (u8, u64), b: (u8, u64)| (a.0, a.1 + b.1))
///     .collect_vec();
/// # let _ = sums;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct CountTrigger {
    count: u64,
}

impl CountTrigger {
    /// Fires every `count` records.
    pub fn of(count: u64) -> Self {
        Self { count }
    }
}

impl<T> Trigger<T> for CountTrigger {
    /// Records since the last firing.
    type State = u64;

    fn on_element(
        &mut self,
        _: &T,
        _: i64,
        _: &TimeWindow,
        ctx: &mut TriggerContext<'_, u64>,
    ) -> TriggerResult {
        *ctx.state() += 1;
        if *ctx.state() >= self.count {
            *ctx.state() = 0;
            TriggerResult::Fire
        } else {
            TriggerResult::Continue
        }
    }

    fn on_event_time(
        &mut self,
        _: i64,
        _: &TimeWindow,
        _: &mut TriggerContext<'_, u64>,
    ) -> TriggerResult {
        TriggerResult::Continue
    }

    fn on_processing_time(
        &mut self,
        _: i64,
        _: &TimeWindow,
        _: &mut TriggerContext<'_, u64>,
    ) -> TriggerResult {
        TriggerResult::Continue
    }

    fn clear(&mut self, _: &TimeWindow, ctx: &mut TriggerContext<'_, u64>) {
        *ctx.state() = 0;
    }

    fn can_merge(&self) -> bool {
        true
    }

    /// The merged window has the records of all the windows merged into it.
    fn on_merge(&mut self, _: &TimeWindow, merged: Vec<u64>, ctx: &mut TriggerContext<'_, u64>) {
        *ctx.state() = merged.into_iter().sum();
    }

    fn validate(&self) -> Result<(), WindowError> {
        if self.count == 0 {
            Err(WindowError::ZeroCount)
        } else {
            Ok(())
        }
    }
}
