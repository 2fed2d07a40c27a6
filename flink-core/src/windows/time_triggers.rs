//! The time triggers: [`EventTimeTrigger`] and [`ProcessingTimeTrigger`], the
//! default triggers of time windows, [`NeverTrigger`] of global windows, and
//! [`DefaultTrigger`], the one of each assigner.

use super::{TimeWindow, Trigger, TriggerContext, TriggerResult};

/// Fires a window once the watermark passes its end, and again for each record
/// that arrives within the allowed lateness after that (Flink's `EventTimeTrigger`).
#[derive(Debug, Clone, Copy, Default)]
pub struct EventTimeTrigger;

impl<T> Trigger<T> for EventTimeTrigger {
    type State = ();

    fn on_element(
        &mut self,
        _: &T,
        _: i64,
        window: &TimeWindow,
        ctx: &mut TriggerContext<'_, ()>,
    ) -> TriggerResult {
        if window.max_timestamp() <= ctx.current_watermark() {
            // Late for the window, on time for the lateness: fire now.
            TriggerResult::Fire
        } else {
            ctx.register_event_time_timer(window.max_timestamp());
            TriggerResult::Continue
        }
    }

    fn on_event_time(
        &mut self,
        time: i64,
        window: &TimeWindow,
        _: &mut TriggerContext<'_, ()>,
    ) -> TriggerResult {
        if time == window.max_timestamp() {
            TriggerResult::Fire
        } else {
            TriggerResult::Continue
        }
    }

    fn on_processing_time(
        &mut self,
        _: i64,
        _: &TimeWindow,
        _: &mut TriggerContext<'_, ()>,
    ) -> TriggerResult {
        TriggerResult::Continue
    }

    fn clear(&mut self, window: &TimeWindow, ctx: &mut TriggerContext<'_, ()>) {
        ctx.delete_event_time_timer(window.max_timestamp());
    }

    fn can_merge(&self) -> bool {
        true
    }

    fn registers_only_the_end_timer(&self) -> bool {
        true
    }

    fn on_merge(&mut self, window: &TimeWindow, _: Vec<()>, ctx: &mut TriggerContext<'_, ()>) {
        // A merged window already due fires with its next record or at cleanup.
        if window.max_timestamp() > ctx.current_watermark() {
            ctx.register_event_time_timer(window.max_timestamp());
        }
    }
}

/// Fires a window once the job's clock passes its end (Flink's
/// `ProcessingTimeTrigger`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessingTimeTrigger;

impl<T> Trigger<T> for ProcessingTimeTrigger {
    type State = ();

    fn on_element(
        &mut self,
        _: &T,
        _: i64,
        window: &TimeWindow,
        ctx: &mut TriggerContext<'_, ()>,
    ) -> TriggerResult {
        ctx.register_processing_time_timer(window.max_timestamp());
        TriggerResult::Continue
    }

    fn on_event_time(
        &mut self,
        _: i64,
        _: &TimeWindow,
        _: &mut TriggerContext<'_, ()>,
    ) -> TriggerResult {
        TriggerResult::Continue
    }

    fn on_processing_time(
        &mut self,
        time: i64,
        window: &TimeWindow,
        _: &mut TriggerContext<'_, ()>,
    ) -> TriggerResult {
        if time == window.max_timestamp() {
            TriggerResult::Fire
        } else {
            TriggerResult::Continue
        }
    }

    fn clear(&mut self, window: &TimeWindow, ctx: &mut TriggerContext<'_, ()>) {
        ctx.delete_processing_time_timer(window.max_timestamp());
    }

    fn can_merge(&self) -> bool {
        true
    }

    fn on_merge(&mut self, window: &TimeWindow, _: Vec<()>, ctx: &mut TriggerContext<'_, ()>) {
        ctx.register_processing_time_timer(window.max_timestamp());
    }
}

/// Never fires: the default of [`GlobalWindows`](super::GlobalWindows), which need
/// a trigger such as [`CountTrigger`](super::CountTrigger).
#[derive(Debug, Clone, Copy, Default)]
pub struct NeverTrigger;

impl<T> Trigger<T> for NeverTrigger {
    type State = ();

    fn on_element(
        &mut self,
        _: &T,
        _: i64,
        _: &TimeWindow,
        _: &mut TriggerContext<'_, ()>,
    ) -> TriggerResult {
        TriggerResult::Continue
    }

    fn on_event_time(
        &mut self,
        _: i64,
        _: &TimeWindow,
        _: &mut TriggerContext<'_, ()>,
    ) -> TriggerResult {
        TriggerResult::Continue
    }

    fn on_processing_time(
        &mut self,
        _: i64,
        _: &TimeWindow,
        _: &mut TriggerContext<'_, ()>,
    ) -> TriggerResult {
        TriggerResult::Continue
    }

    fn clear(&mut self, _: &TimeWindow, _: &mut TriggerContext<'_, ()>) {}

    fn can_merge(&self) -> bool {
        true
    }
}

/// The trigger a window assigner comes with (Flink's `getDefaultTrigger`): event
/// time, processing time, or never (global windows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultTrigger {
    /// [`EventTimeTrigger`].
    EventTime,
    /// [`ProcessingTimeTrigger`].
    ProcessingTime,
    /// [`NeverTrigger`].
    Never,
}

impl<T> Trigger<T> for DefaultTrigger {
    type State = ();

    #[inline]
    fn on_element(
        &mut self,
        element: &T,
        timestamp: i64,
        window: &TimeWindow,
        ctx: &mut TriggerContext<'_, ()>,
    ) -> TriggerResult {
        match self {
            Self::EventTime => EventTimeTrigger.on_element(element, timestamp, window, ctx),
            Self::ProcessingTime => {
                ProcessingTimeTrigger.on_element(element, timestamp, window, ctx)
            }
            Self::Never => TriggerResult::Continue,
        }
    }

    fn on_event_time(
        &mut self,
        time: i64,
        window: &TimeWindow,
        ctx: &mut TriggerContext<'_, ()>,
    ) -> TriggerResult {
        match self {
            Self::EventTime => {
                Trigger::<T>::on_event_time(&mut EventTimeTrigger, time, window, ctx)
            }
            _ => TriggerResult::Continue,
        }
    }

    fn on_processing_time(
        &mut self,
        time: i64,
        window: &TimeWindow,
        ctx: &mut TriggerContext<'_, ()>,
    ) -> TriggerResult {
        match self {
            Self::ProcessingTime => {
                Trigger::<T>::on_processing_time(&mut ProcessingTimeTrigger, time, window, ctx)
            }
            _ => TriggerResult::Continue,
        }
    }

    fn clear(&mut self, window: &TimeWindow, ctx: &mut TriggerContext<'_, ()>) {
        match self {
            Self::EventTime => Trigger::<T>::clear(&mut EventTimeTrigger, window, ctx),
            Self::ProcessingTime => Trigger::<T>::clear(&mut ProcessingTimeTrigger, window, ctx),
            Self::Never => {}
        }
    }

    fn can_merge(&self) -> bool {
        true
    }

    fn registers_only_the_end_timer(&self) -> bool {
        *self == Self::EventTime
    }

    fn on_merge(&mut self, window: &TimeWindow, merged: Vec<()>, ctx: &mut TriggerContext<'_, ()>) {
        match self {
            Self::EventTime => Trigger::<T>::on_merge(&mut EventTimeTrigger, window, merged, ctx),
            Self::ProcessingTime => {
                Trigger::<T>::on_merge(&mut ProcessingTimeTrigger, window, merged, ctx)
            }
            Self::Never => {}
        }
    }
}
