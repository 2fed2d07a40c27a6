//! [`TimeWindow`]: a half-open interval of time.

use serde::{Deserialize, Serialize};

/// The interval `[start, end)` in milliseconds, as Flink's `TimeWindow`.
///
/// ```
/// use flink_core::windows::TimeWindow;
///
/// let w = TimeWindow::new(0, 10_000);
/// assert_eq!(w.max_timestamp(), 9_999);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TimeWindow {
    /// First millisecond in the window.
    pub start: i64,
    /// First millisecond after the window.
    pub end: i64,
}

impl TimeWindow {
    /// The window `[start, end)`.
    pub fn new(start: i64, end: i64) -> Self {
        Self { start, end }
    }

    /// The last timestamp in the window: it fires once time reaches this.
    pub fn max_timestamp(&self) -> i64 {
        self.end - 1
    }

    /// Whether the windows overlap or touch, so that session windows merge them
    /// (Flink's `TimeWindow.intersects`).
    pub fn intersects(&self, other: &TimeWindow) -> bool {
        self.start <= other.end && self.end >= other.start
    }

    /// The smallest window holding both.
    pub fn cover(&self, other: &TimeWindow) -> TimeWindow {
        TimeWindow::new(self.start.min(other.start), self.end.max(other.end))
    }

    /// The start of the window of `size` (shifted by `offset`) that holds `timestamp`
    /// (Flink's `TimeWindow.getWindowStartWithOffset`, also for negative times).
    pub fn start_with_offset(timestamp: i64, offset: i64, size: i64) -> i64 {
        timestamp - (timestamp - offset).rem_euclid(size)
    }
}
