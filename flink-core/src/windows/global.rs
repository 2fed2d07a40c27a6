//! [`GlobalWindows`]: one window per key for all time.

use super::{DefaultTrigger, TimeWindow, WindowAssigner, WindowError};

/// One window per key holding all its records (Flink's `GlobalWindows`). Its
/// default trigger never fires: give it one, such as
/// [`CountTrigger`](super::CountTrigger) (see the example there). As in Flink, a
/// global window never ends, so the end of the input fires nothing by itself.
///
/// ```
/// use flink_core::windows::*;
///
/// let mut into = Vec::new();
/// GlobalWindows::create().assign_windows(42, &mut into);
/// assert_eq!(into, [GlobalWindows::WINDOW]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct GlobalWindows;

impl GlobalWindows {
    /// The window every record is in: all of time.
    pub const WINDOW: TimeWindow = TimeWindow {
        start: i64::MIN,
        end: i64::MAX,
    };

    /// The global window assigner.
    pub fn create() -> Self {
        Self
    }
}

impl WindowAssigner for GlobalWindows {
    fn assign_windows(&self, _: i64, into: &mut Vec<TimeWindow>) {
        into.push(Self::WINDOW);
    }

    /// Records need no time (Flink's global windows are not event time either).
    fn is_event_time(&self) -> bool {
        false
    }

    fn validate(&self) -> Result<(), WindowError> {
        Ok(())
    }

    fn default_trigger(&self) -> DefaultTrigger {
        DefaultTrigger::Never
    }
}
