//! [`CountEvictor`]: keeps the newest n records of a window.

use super::{Evictor, TimeWindow, TimestampedElements, WindowError};

/// Keeps at most `count` records in a window, the most recently added (Flink's
/// `CountEvictor`), before the window function runs (or after, with
/// [`evict_after`](Self::evict_after)). A count of zero is a build error
/// ([`WindowError::ZeroCount`]).
///
/// ```
/// use std::time::Duration;
/// use flink_core::prelude::*;
/// use flink_core::windows::{CountEvictor, CountTrigger, GlobalWindows, TimeWindow};
///
/// let env = StreamExecutionEnvironment::new();
/// // Every 2 readings per sensor, the average of its last 3.
/// let averages = env
///     .from_collection(vec![(1u8, 10.0f64), (1, 20.0), (1, 30.0), (1, 40.0)])
///     .key_by(|r: &(u8, f64)| r.0)
///     .window(GlobalWindows::create())
///     .trigger(CountTrigger::of(2))
///     .evictor(CountEvictor::of(3))
///     .process(|_: &u8, _: &TimeWindow, rs: &[(u8, f64)], out: &mut dyn Collector<f64>| {
///         out.collect(rs.iter().map(|r| r.1).sum::<f64>() / rs.len() as f64)
///     })
///     .collect_vec();
/// # let _ = averages;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct CountEvictor {
    count: usize,
    after: bool,
}

impl CountEvictor {
    /// Keeps the newest `count` records.
    pub fn of(count: usize) -> Self {
        Self {
            count,
            after: false,
        }
    }

    /// Evicts after the window function instead of before.
    pub fn evict_after(mut self) -> Self {
        self.after = true;
        self
    }

    fn evict<T>(&self, elements: &mut TimestampedElements<T>) {
        let excess = elements.len().saturating_sub(self.count);
        elements.remove_first(excess);
    }
}

impl<T> Evictor<T> for CountEvictor {
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
        if self.count == 0 {
            Err(WindowError::ZeroCount)
        } else {
            Ok(())
        }
    }
}
