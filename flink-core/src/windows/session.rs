//! Session windows: a window per burst of activity of a key, closed by a gap of
//! inactivity; overlapping sessions of a key merge.

use std::time::Duration;

use super::{TimeWindow, WindowAssigner, WindowError, millis};

/// Checks a session gap.
fn validate_gap(gap: i64) -> Result<(), WindowError> {
    if gap <= 0 {
        Err(WindowError::ZeroGap)
    } else {
        Ok(())
    }
}

/// Event-time session windows (Flink's `EventTimeSessionWindows.withGap`): each
/// record opens the window `[t, t + gap)`; windows of one key that overlap or touch
/// merge, with their state, so a session ends once no record came for `gap`. A gap
/// of zero is a build error ([`WindowError::ZeroGap`]).
///
/// ```
/// use std::time::Duration;
/// use flink_core::prelude::*;
/// use flink_core::watermark::WatermarkStrategy;
/// use flink_core::windows::{EventTimeSessionWindows, TimeWindow};
///
/// let env = StreamExecutionEnvironment::new();
/// // Clicks (user, ms): per user, each session of clicks less than 5 s apart.
/// let sessions = env
///     .from_collection(vec![(1u32, 1_000i64), (1, 3_000), (1, 20_000), (2, 2_000)])
///     .assign_timestamps_and_watermarks(WatermarkStrategy::monotonous(|c: &(u32, i64)| c.1))
///     .key_by(|c: &(u32, i64)| c.0)
///     .window(EventTimeSessionWindows::with_gap(Duration::from_secs(5)))
///     .process(|user: &u32, w: &TimeWindow, clicks: &[(u32, i64)], out: &mut dyn Collector<(u32, i64, i64, usize)>| {
///         out.collect((*user, w.start, w.end, clicks.len()))
///     })
///     .collect_vec();
/// # let _ = sessions;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct EventTimeSessionWindows {
    gap: i64,
}

impl EventTimeSessionWindows {
    /// Sessions closed by `gap` without records.
    pub fn with_gap(gap: Duration) -> Self {
        Self { gap: millis(gap) }
    }
}

impl WindowAssigner for EventTimeSessionWindows {
    fn assign_windows(&self, timestamp: i64, into: &mut Vec<TimeWindow>) {
        into.push(TimeWindow::new(
            timestamp,
            timestamp.saturating_add(self.gap),
        ));
    }

    fn is_event_time(&self) -> bool {
        true
    }

    fn validate(&self) -> Result<(), WindowError> {
        validate_gap(self.gap)
    }

    fn is_merging(&self) -> bool {
        true
    }
}

/// Processing-time session windows on the job's clock (Flink's
/// `ProcessingTimeSessionWindows.withGap`); see [`EventTimeSessionWindows`].
///
/// ```
/// use std::time::Duration;
/// use flink_core::windows::*;
///
/// let sessions = ProcessingTimeSessionWindows::with_gap(Duration::from_millis(100));
/// let mut into = Vec::new();
/// sessions.assign_windows(250, &mut into);
/// assert_eq!(into, [TimeWindow::new(250, 350)]);
/// assert!(sessions.is_merging() && !sessions.is_event_time());
/// assert_eq!(
///     ProcessingTimeSessionWindows::with_gap(Duration::ZERO).validate(),
///     Err(WindowError::ZeroGap)
/// );
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ProcessingTimeSessionWindows {
    gap: i64,
}

impl ProcessingTimeSessionWindows {
    /// Sessions closed by `gap` without records.
    pub fn with_gap(gap: Duration) -> Self {
        Self { gap: millis(gap) }
    }
}

impl WindowAssigner for ProcessingTimeSessionWindows {
    fn assign_windows(&self, timestamp: i64, into: &mut Vec<TimeWindow>) {
        into.push(TimeWindow::new(
            timestamp,
            timestamp.saturating_add(self.gap),
        ));
    }

    fn is_event_time(&self) -> bool {
        false
    }

    fn validate(&self) -> Result<(), WindowError> {
        validate_gap(self.gap)
    }

    fn is_merging(&self) -> bool {
        true
    }
}
