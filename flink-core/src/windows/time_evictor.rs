//! [`TimeEvictor`]: keeps the records of a window's last stretch of time.

use std::time::Duration;

use super::{Evictor, TimeWindow, TimestampedElements, WindowError, millis};

/// Keeps the records whose timestamp is within `keep` of the newest record's
/// (Flink's `TimeEvictor`: records at or before `newest - keep` go), before the
/// window function runs (or after, with [`evict_after`](Self::evict_after)). A
/// duration of zero is a build error ([`WindowError::ZeroSize`]).
///
/// ```
/// use std::time::Duration;
/// use flink_core::windows::{Evictor, TimeEvictor, TimeWindow, TimestampedElements};
///
/// let mut elements = TimestampedElements::default();
/// for ts in [100, 900, 1_500, 2_000] {
///     elements.push(ts, ts);
/// }
/// TimeEvictor::of(Duration::from_secs(1)).evict_before(&mut elements, &TimeWindow::new(0, 3_000));
/// assert_eq!(elements.values(), [1_500, 2_000]);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TimeEvictor {
    keep: i64,
    after: bool,
}

impl TimeEvictor {
    /// Keeps the records of the last `keep` before the newest.
    pub fn of(keep: Duration) -> Self {
        Self {
            keep: millis(keep),
            after: false,
        }
    }

    /// Evicts after the window function instead of before.
    pub fn evict_after(mut self) -> Self {
        self.after = true;
        self
    }

    fn evict<T>(&self, elements: &mut TimestampedElements<T>) {
        let Some(newest) = elements.timestamps().iter().max().copied() else {
            return;
        };
        let cutoff = newest.saturating_sub(self.keep);
        elements.retain(|ts, _| ts > cutoff);
    }
}

impl<T> Evictor<T> for TimeEvictor {
    fn evict_before(&self, elements: &mut TimestampedElements<T>, _: &TimeWindow) {
        if !self.after {
            self.evict(elements);
        }
    }

    fn evict_after(&self, elements: &mut TimestampedElements<T>, _: &TimeWindow) {
        if self.after {
            self.evict(elements);
        }
    }

    fn validate(&self) -> Result<(), WindowError> {
        if self.keep <= 0 {
            Err(WindowError::ZeroSize)
        } else {
            Ok(())
        }
    }
}
