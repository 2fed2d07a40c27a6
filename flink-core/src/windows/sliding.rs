//! Sliding windows: fixed-size, starting every `slide`, overlapping when the slide is
//! below the size.

use std::time::Duration;

use super::{TimeWindow, WindowAssigner, WindowError, millis};

/// Size, slide and offset of sliding windows.
#[derive(Debug, Clone, Copy)]
struct Sliding {
    size: i64,
    slide: i64,
    offset: i64,
}

impl Sliding {
    fn new(size: Duration, slide: Duration) -> Self {
        Self {
            size: millis(size),
            slide: millis(slide),
            offset: 0,
        }
    }

    /// Every window holding `timestamp`, the latest first (as Flink lists them).
    fn assign(&self, timestamp: i64, into: &mut Vec<TimeWindow>) {
        let mut start = TimeWindow::start_with_offset(timestamp, self.offset, self.slide);
        while start > timestamp.saturating_sub(self.size) {
            into.push(TimeWindow::new(start, start.saturating_add(self.size)));
            start -= self.slide;
        }
    }

    /// The slide of `timestamp`: when the size is a multiple of the slide, every
    /// time in it is in the same windows (otherwise the first of them may end
    /// within the slide).
    fn span(&self, timestamp: i64) -> Option<(i64, i64)> {
        if self.size % self.slide != 0 {
            return None;
        }
        let start = TimeWindow::start_with_offset(timestamp, self.offset, self.slide);
        // Far from the ends of time, where assigning saturates.
        start.checked_sub(self.size)?;
        start.checked_add(self.size)?;
        Some((start, start.checked_add(self.slide)?))
    }

    fn validate(&self) -> Result<(), WindowError> {
        if self.size <= 0 {
            return Err(WindowError::ZeroSize);
        }
        if self.slide <= 0 {
            return Err(WindowError::ZeroSlide);
        }
        if self.slide > self.size {
            return Err(WindowError::SlideLargerThanSize {
                size_ms: self.size,
                slide_ms: self.slide,
            });
        }
        if self.offset >= self.slide {
            return Err(WindowError::OffsetTooLarge {
                offset_ms: self.offset,
                step_ms: self.slide,
            });
        }
        Ok(())
    }
}

/// Event-time windows of `size` starting every `slide` (Flink's
/// `SlidingEventTimeWindows`): a record is in `size / slide` windows. A size or
/// slide of zero, or a slide above the size, is a build error.
///
/// ```
/// use std::time::Duration;
/// use flink_core::windows::*;
///
/// let windows = SlidingEventTimeWindows::of(Duration::from_secs(10), Duration::from_secs(5));
/// let mut into = Vec::new();
/// windows.assign_windows(12_000, &mut into);
/// assert_eq!(into, [TimeWindow::new(10_000, 20_000), TimeWindow::new(5_000, 15_000)]);
/// assert_eq!(
///     SlidingEventTimeWindows::of(Duration::from_secs(5), Duration::from_secs(10)).validate(),
///     Err(WindowError::SlideLargerThanSize { size_ms: 5_000, slide_ms: 10_000 })
/// );
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SlidingEventTimeWindows(Sliding);

impl SlidingEventTimeWindows {
    /// Windows of `size` every `slide`.
    pub fn of(size: Duration, slide: Duration) -> Self {
        Self(Sliding::new(size, slide))
    }

    /// Shifts the windows by `offset` (below the slide).
    pub fn with_offset(mut self, offset: Duration) -> Self {
        self.0.offset = millis(offset);
        self
    }
}

impl WindowAssigner for SlidingEventTimeWindows {
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

/// Processing-time windows of `size` every `slide` on the job's clock (Flink's
/// `SlidingProcessingTimeWindows`).
///
/// ```
/// use std::time::Duration;
/// use flink_core::windows::*;
///
/// let windows =
///     SlidingProcessingTimeWindows::of(Duration::from_millis(100), Duration::from_millis(50));
/// let mut into = Vec::new();
/// windows.assign_windows(120, &mut into);
/// assert_eq!(into, [TimeWindow::new(100, 200), TimeWindow::new(50, 150)]);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SlidingProcessingTimeWindows(Sliding);

impl SlidingProcessingTimeWindows {
    /// Windows of `size` every `slide`.
    pub fn of(size: Duration, slide: Duration) -> Self {
        Self(Sliding::new(size, slide))
    }

    /// Shifts the windows by `offset` (below the slide).
    pub fn with_offset(mut self, offset: Duration) -> Self {
        self.0.offset = millis(offset);
        self
    }
}

impl WindowAssigner for SlidingProcessingTimeWindows {
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

    /// Every time in a span the assigner names gets the same windows as the time
    /// it was asked for; a size that is no multiple of the slide names none.
    #[test]
    fn the_span_of_a_timestamp_shares_its_windows() {
        let windows = |w: &dyn WindowAssigner2, ts| {
            let mut into = Vec::new();
            w.assign(ts, &mut into);
            into
        };
        let sliding =
            SlidingEventTimeWindows::of(Duration::from_millis(30), Duration::from_millis(10))
                .with_offset(Duration::from_millis(3));
        let tumbling = crate::windows::TumblingEventTimeWindows::of(Duration::from_millis(7));
        let assigners: [&dyn WindowAssigner2; 2] = [&sliding, &tumbling];
        for w in assigners {
            for ts in -40..40 {
                let (from, to) = w.span(ts).expect("a span");
                assert!(from <= ts && ts < to);
                for other in from..to {
                    assert_eq!(windows(w, other), windows(w, ts), "{ts} and {other}");
                }
                assert_ne!(windows(w, from - 1), windows(w, ts));
                assert_ne!(windows(w, to), windows(w, ts));
            }
        }
        let uneven =
            SlidingEventTimeWindows::of(Duration::from_millis(25), Duration::from_millis(10));
        assert_eq!(uneven.same_windows_span(5), None);
    }

    /// The assigner methods the test needs, as an object.
    trait WindowAssigner2 {
        fn assign(&self, ts: i64, into: &mut Vec<TimeWindow>);
        fn span(&self, ts: i64) -> Option<(i64, i64)>;
    }

    impl<W: WindowAssigner> WindowAssigner2 for W {
        fn assign(&self, ts: i64, into: &mut Vec<TimeWindow>) {
            self.assign_windows(ts, into);
        }
        fn span(&self, ts: i64) -> Option<(i64, i64)> {
            self.same_windows_span(ts)
        }
    }

    #[test]
    fn every_timestamp_is_in_size_over_slide_windows_that_contain_it() {
        let w = SlidingEventTimeWindows::of(Duration::from_millis(30), Duration::from_millis(10));
        for ts in -25..25 {
            let mut into = Vec::new();
            w.assign_windows(ts, &mut into);
            assert_eq!(into.len(), 3, "at {ts}");
            for window in into {
                assert!(window.start <= ts && ts < window.end, "{ts} in {window:?}");
                assert_eq!(window.start.rem_euclid(10), 0);
            }
        }
        assert_eq!(
            SlidingEventTimeWindows::of(Duration::from_millis(30), Duration::ZERO).validate(),
            Err(WindowError::ZeroSlide)
        );
    }
}
