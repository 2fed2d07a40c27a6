//! Tumbling windows: fixed-size, non-overlapping, back to back.

use std::time::Duration;

use super::{TimeWindow, WindowAssigner, WindowError, millis};

/// Size and offset of tumbling windows.
#[derive(Debug, Clone, Copy)]
struct Tumbling {
    size: i64,
    offset: i64,
}

impl Tumbling {
    fn assign(&self, timestamp: i64, into: &mut Vec<TimeWindow>) {
        let start = TimeWindow::start_with_offset(timestamp, self.offset, self.size);
        into.push(TimeWindow::new(start, start.saturating_add(self.size)));
    }

    /// The window of `timestamp`: every time in it gets that window.
    fn span(&self, timestamp: i64) -> Option<(i64, i64)> {
        let start = TimeWindow::start_with_offset(timestamp, self.offset, self.size);
        Some((start, start.checked_add(self.size)?))
    }

    fn validate(&self) -> Result<(), WindowError> {
        if self.size <= 0 {
            return Err(WindowError::ZeroSize);
        }
        if self.offset >= self.size {
            return Err(WindowError::OffsetTooLarge {
                offset_ms: self.offset,
                step_ms: self.size,
            });
        }
        Ok(())
    }
}

/// Event-time windows of a fixed size, aligned to the epoch (plus an offset), as
/// Flink's `TumblingEventTimeWindows`. A size of zero is a build error.
///
/// ```
/// use std::time::Duration;
/// use flink_core::windows::*;
///
/// let windows = TumblingEventTimeWindows::of(Duration::from_secs(10));
/// let mut into = Vec::new();
/// windows.assign_windows(12_345, &mut into);
/// assert_eq!(into, [TimeWindow::new(10_000, 20_000)]);
/// assert!(windows.validate().is_ok());
/// assert_eq!(
///     TumblingEventTimeWindows::of(Duration::ZERO).validate(),
///     Err(WindowError::ZeroSize)
/// );
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TumblingEventTimeWindows(Tumbling);

impl TumblingEventTimeWindows {
    /// Windows of `size`.
    pub fn of(size: Duration) -> Self {
        Self(Tumbling {
            size: millis(size),
            offset: 0,
        })
    }

    /// Shifts the windows by `offset` (below the size), e.g. for time zones.
    pub fn with_offset(mut self, offset: Duration) -> Self {
        self.0.offset = millis(offset);
        self
    }
}

impl WindowAssigner for TumblingEventTimeWindows {
    fn assign_windows(&self, timestamp: i64, into: &mut Vec<TimeWindow>) {
        self.0.assign(timestamp, into);
    }

    fn same_windows_span(&self, timestamp: i64) -> Option<(i64, i64)> {
        self.0.span(timestamp)
    }

    fn is_event_time(&self) -> bool {
        true
    }

    fn validate(&self) -> Result<(), WindowError> {
        self.0.validate()
    }
}

/// Processing-time windows of a fixed size on the job's clock (its milliseconds
/// since the clock's origin), as Flink's `TumblingProcessingTimeWindows`.
///
/// ```
/// use std::time::Duration;
/// use flink_core::windows::*;
///
/// let windows = TumblingProcessingTimeWindows::of(Duration::from_millis(100));
/// let mut into = Vec::new();
/// windows.assign_windows(250, &mut into);
/// assert_eq!(into, [TimeWindow::new(200, 300)]);
/// assert!(!windows.is_event_time());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TumblingProcessingTimeWindows(Tumbling);

impl TumblingProcessingTimeWindows {
    /// Windows of `size`.
    pub fn of(size: Duration) -> Self {
        Self(Tumbling {
            size: millis(size),
            offset: 0,
        })
    }

    /// Shifts the windows by `offset` (below the size).
    pub fn with_offset(mut self, offset: Duration) -> Self {
        self.0.offset = millis(offset);
        self
    }
}

impl WindowAssigner for TumblingProcessingTimeWindows {
    fn assign_windows(&self, timestamp: i64, into: &mut Vec<TimeWindow>) {
        self.0.assign(timestamp, into);
    }

    fn same_windows_span(&self, timestamp: i64) -> Option<(i64, i64)> {
        self.0.span(timestamp)
    }

    fn is_event_time(&self) -> bool {
        false
    }

    fn validate(&self) -> Result<(), WindowError> {
        self.0.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_timestamps_and_offsets_land_in_the_window_that_holds_them() {
        let w = TumblingEventTimeWindows::of(Duration::from_millis(10))
            .with_offset(Duration::from_millis(3));
        let mut into = Vec::new();
        for ts in [-7, 2, 3, 12, 13] {
            w.assign_windows(ts, &mut into);
        }
        assert_eq!(
            into,
            [
                TimeWindow::new(-7, 3),
                TimeWindow::new(-7, 3),
                TimeWindow::new(3, 13),
                TimeWindow::new(3, 13),
                TimeWindow::new(13, 23)
            ]
        );
        assert_eq!(
            TumblingEventTimeWindows::of(Duration::from_millis(10))
                .with_offset(Duration::from_millis(10))
                .validate(),
            Err(WindowError::OffsetTooLarge {
                offset_ms: 10,
                step_ms: 10
            })
        );
    }
}
