//! [`PurgingTrigger`]: another trigger whose firings also purge.

use super::{TimeWindow, Trigger, TriggerContext, TriggerResult, WindowError};

/// Turns each `Fire` of the wrapped trigger into `FireAndPurge` (Flink's
/// `PurgingTrigger`): the window starts empty after each firing. See the example
/// on [`CountTrigger`](super::CountTrigger).
#[derive(Debug, Clone, Copy)]
pub struct PurgingTrigger<Tr>(Tr);

impl<Tr> PurgingTrigger<Tr> {
    /// Purges whenever `trigger` fires.
    pub fn of(trigger: Tr) -> Self {
        Self(trigger)
    }
}

fn purging(result: TriggerResult) -> TriggerResult {
    if result.is_fire() {
        TriggerResult::FireAndPurge
    } else {
        result
    }
}

impl<T, Tr: Trigger<T>> Trigger<T> for PurgingTrigger<Tr> {
    type State = Tr::State;

    fn on_element(
        &mut self,
        element: &T,
        timestamp: i64,
        window: &TimeWindow,
        ctx: &mut TriggerContext<'_, Tr::State>,
    ) -> TriggerResult {
        purging(self.0.on_element(element, timestamp, window, ctx))
    }

    fn on_event_time(
        &mut self,
        time: i64,
        window: &TimeWindow,
        ctx: &mut TriggerContext<'_, Tr::State>,
    ) -> TriggerResult {
        purging(self.0.on_event_time(time, window, ctx))
    }

    fn on_processing_time(
        &mut self,
        time: i64,
        window: &TimeWindow,
        ctx: &mut TriggerContext<'_, Tr::State>,
    ) -> TriggerResult {
        purging(self.0.on_processing_time(time, window, ctx))
    }

    fn clear(&mut self, window: &TimeWindow, ctx: &mut TriggerContext<'_, Tr::State>) {
        self.0.clear(window, ctx);
    }

    fn can_merge(&self) -> bool {
        self.0.can_merge()
    }

    fn on_merge(
        &mut self,
        window: &TimeWindow,
        merged: Vec<Tr::State>,
        ctx: &mut TriggerContext<'_, Tr::State>,
    ) {
        self.0.on_merge(window, merged, ctx);
    }

    fn validate(&self) -> Result<(), WindowError> {
        self.0.validate()
    }
}
