//! [`Trigger`]: when a window emits its result and when it drops its contents (Flink's
//! `Trigger`), with the [`TriggerContext`] it is called with.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{TimeWindow, WindowError};
use crate::clock::Clock;
use crate::timers::processing_time_of;

/// What a window does after a trigger call (Flink's `TriggerResult`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerResult {
    /// Nothing.
    Continue,
    /// Emit the window's result; keep its contents.
    Fire,
    /// Drop the window's contents without emitting.
    Purge,
    /// Emit the window's result, then drop its contents.
    FireAndPurge,
}

impl TriggerResult {
    /// Whether the window emits.
    pub fn is_fire(self) -> bool {
        matches!(self, Self::Fire | Self::FireAndPurge)
    }

    /// Whether the window's contents are dropped.
    pub fn is_purge(self) -> bool {
        matches!(self, Self::Purge | Self::FireAndPurge)
    }
}

/// A timer a trigger call asks for, applied by the window operator to the current
/// key and window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimerRequest {
    /// Register an event-time timer.
    RegisterEvent(i64),
    /// Register a processing-time timer.
    RegisterProcessing(i64),
    /// Delete an event-time timer.
    DeleteEvent(i64),
    /// Delete a processing-time timer.
    DeleteProcessing(i64),
}

/// What a trigger call sees of its key and window: the trigger's own state for the
/// window, the current times, and timers (Flink's `TriggerContext`). Timers belong
/// to the key and window; a firing one calls the trigger's `on_event_time` or
/// `on_processing_time`.
pub struct TriggerContext<'a, S> {
    state: &'a mut S,
    watermark: i64,
    clock: &'a dyn Clock,
    timers: &'a mut Vec<TimerRequest>,
    /// An event-time timer of the window known to be queued: registering it again
    /// asks for nothing (the queue keeps one timer per window and time anyway).
    queued_event: Option<i64>,
}

impl<'a, S> TriggerContext<'a, S> {
    pub(crate) fn new(
        state: &'a mut S,
        watermark: i64,
        clock: &'a dyn Clock,
        timers: &'a mut Vec<TimerRequest>,
    ) -> Self {
        Self {
            state,
            watermark,
            clock,
            timers,
            queued_event: None,
        }
    }

    /// Says that the window's event-time timer at `time` is queued already.
    #[inline]
    pub(crate) fn with_queued_event(mut self, time: Option<i64>) -> Self {
        self.queued_event = time;
        self
    }

    /// The trigger's state for this key and window (checkpointed with the window).
    pub fn state(&mut self) -> &mut S {
        self.state
    }

    /// The operator's event time: the last watermark (`i64::MIN` before any).
    pub fn current_watermark(&self) -> i64 {
        self.watermark
    }

    /// The job clock's time in milliseconds (read on each call).
    pub fn current_processing_time(&self) -> i64 {
        processing_time_of(self.clock)
    }

    /// Calls `on_event_time` once the watermark reaches `time`.
    #[inline]
    pub fn register_event_time_timer(&mut self, time: i64) {
        if self.queued_event != Some(time) {
            self.timers.push(TimerRequest::RegisterEvent(time));
        }
    }

    /// Calls `on_processing_time` once the job's clock reaches `time`.
    pub fn register_processing_time_timer(&mut self, time: i64) {
        self.timers.push(TimerRequest::RegisterProcessing(time));
    }

    /// Removes this window's event-time timer at `time`, if any.
    pub fn delete_event_time_timer(&mut self, time: i64) {
        if self.queued_event == Some(time) {
            self.queued_event = None;
        }
        self.timers.push(TimerRequest::DeleteEvent(time));
    }

    /// Removes this window's processing-time timer at `time`, if any.
    pub fn delete_processing_time_timer(&mut self, time: i64) {
        self.timers.push(TimerRequest::DeleteProcessing(time));
    }
}

/// Decides when a window fires and purges (Flink's `Trigger`). Each key and window
/// has its own [`State`](Self::State); the window operator calls the trigger for
/// each record added to a window and for each of the window's timers, and
/// [`clear`](Self::clear)s it when the window is cleaned up (its end plus the
/// allowed lateness) or merged into another. Built in: [`EventTimeTrigger`](super::EventTimeTrigger),
/// [`ProcessingTimeTrigger`](super::ProcessingTimeTrigger), [`CountTrigger`](super::CountTrigger),
/// [`PurgingTrigger`](super::PurgingTrigger).
///
/// ```
/// use flink_core::windows::{TimeWindow, Trigger, TriggerContext, TriggerResult};
///
/// /// Fires (and purges) once a window's prices add up to a budget.
/// #[derive(Clone)]
/// struct Budget(u64);
///
/// impl Trigger<u64> for Budget {
///     type State = u64;
///
///     fn on_element(&mut self, price: &u64, _: i64, _: &TimeWindow, ctx: &mut TriggerContext<'_, u64>) -> TriggerResult {
///         *ctx.state() += price;
///         if *ctx.state() >= self.0 {
///             *ctx.state() = 0;
///             TriggerResult::FireAndPurge
///         } else {
///             TriggerResult::Continue
///         }
///     }
///
///     fn on_event_time(&mut self, _: i64, _: &TimeWindow, _: &mut TriggerContext<'_, u64>) -> TriggerResult {
///         TriggerResult::Continue
///     }
///
///     fn on_processing_time(&mut self, _: i64, _: &TimeWindow, _: &mut TriggerContext<'_, u64>) -> TriggerResult {
///         TriggerResult::Continue
///     }
///
///     fn clear(&mut self, _: &TimeWindow, _: &mut TriggerContext<'_, u64>) {}
/// }
/// ```
pub trait Trigger<T>: Clone + Send + Sync + 'static {
    /// What the trigger keeps per key and window (`()` for nothing; `Clone`: a
    /// checkpoint copies it at the barrier and encodes the copy later).
    type State: Clone + Serialize + DeserializeOwned + Default + Send + 'static;

    /// A record at `timestamp` was added to `window`.
    fn on_element(
        &mut self,
        element: &T,
        timestamp: i64,
        window: &TimeWindow,
        ctx: &mut TriggerContext<'_, Self::State>,
    ) -> TriggerResult;

    /// An event-time timer of `window` at `time` fired.
    fn on_event_time(
        &mut self,
        time: i64,
        window: &TimeWindow,
        ctx: &mut TriggerContext<'_, Self::State>,
    ) -> TriggerResult;

    /// A processing-time timer of `window` at `time` fired.
    fn on_processing_time(
        &mut self,
        time: i64,
        window: &TimeWindow,
        ctx: &mut TriggerContext<'_, Self::State>,
    ) -> TriggerResult;

    /// `window` is cleaned up or merged away: delete its timers.
    fn clear(&mut self, window: &TimeWindow, ctx: &mut TriggerContext<'_, Self::State>);

    /// Whether the trigger works with merging (session) windows.
    fn can_merge(&self) -> bool {
        false
    }

    /// Windows whose trigger states are `merged` became `window` (whose state in
    /// `ctx` starts as the default): combine the states and set the timers.
    fn on_merge(
        &mut self,
        _window: &TimeWindow,
        _merged: Vec<Self::State>,
        _ctx: &mut TriggerContext<'_, Self::State>,
    ) {
    }

    /// Checks the definition; the job fails to build with this error.
    ///
    /// # Errors
    /// A definition that cannot work, such as a count of zero.
    fn validate(&self) -> Result<(), WindowError> {
        Ok(())
    }

    /// Whether [`on_element`](Self::on_element) only registers an event-time timer
    /// at the window's last timestamp while the watermark is before it, keeps no
    /// state and returns [`TriggerResult::Continue`] (Flink's `EventTimeTrigger`).
    /// The window operator then skips the call for a window whose timer is
    /// known to be queued. The default, `false`, always calls it.
    fn registers_only_the_end_timer(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn a_timer_known_to_be_queued_is_not_asked_for_again_unless_deleted_first() {
        let clock = ManualClock::new();
        let (mut state, mut requests) = ((), Vec::new());
        let mut ctx =
            TriggerContext::new(&mut state, 0, &clock, &mut requests).with_queued_event(Some(99));
        ctx.register_event_time_timer(99);
        ctx.register_event_time_timer(50);
        ctx.delete_event_time_timer(99);
        ctx.register_event_time_timer(99);
        assert_eq!(
            requests,
            [
                TimerRequest::RegisterEvent(50),
                TimerRequest::DeleteEvent(99),
                TimerRequest::RegisterEvent(99)
            ]
        );
    }
}
