//! [`TimerService`]: the timers of the current key, as a keyed function sees them.

use std::hash::Hash;

use super::TimerQueue;
use crate::clock::Clock;
use crate::watermark::Watermark;

/// The job's processing time in milliseconds: its clock's time since the clock's
/// origin (a [`ManualClock`](crate::clock::ManualClock) starts at 0).
pub fn processing_time_of(clock: &dyn Clock) -> i64 {
    i64::try_from(clock.now().as_millis()).unwrap_or(i64::MAX)
}

/// Timers and time for the key being processed (Flink's `TimerService`). Timers are
/// per key and timestamp: registering one twice keeps one; an event-time timer fires
/// once the watermark reaches its timestamp, a processing-time timer once the job's
/// clock does, both in timestamp order, calling the function's `on_timer` with the
/// key's state.
pub struct TimerService<'a, K> {
    key: &'a K,
    event: &'a mut TimerQueue<K>,
    processing: &'a mut TimerQueue<K>,
    watermark: Watermark,
    clock: &'a dyn Clock,
}

impl<'a, K: Hash + Eq + Clone> TimerService<'a, K> {
    /// The timers of `key` in the operator's queues, at the given times.
    pub(crate) fn new(
        key: &'a K,
        event: &'a mut TimerQueue<K>,
        processing: &'a mut TimerQueue<K>,
        watermark: Watermark,
        clock: &'a dyn Clock,
    ) -> Self {
        Self {
            key,
            event,
            processing,
            watermark,
            clock,
        }
    }

    /// Fires `on_timer` once the watermark reaches `timestamp` (ms).
    pub fn register_event_time_timer(&mut self, timestamp: i64) {
        self.event.register(self.key.clone(), timestamp);
    }

    /// Fires `on_timer` once the job's clock reaches `timestamp` (ms).
    pub fn register_processing_time_timer(&mut self, timestamp: i64) {
        self.processing.register(self.key.clone(), timestamp);
    }

    /// Removes this key's event-time timer at `timestamp`, if any.
    pub fn delete_event_time_timer(&mut self, timestamp: i64) {
        self.event.delete(self.key, timestamp);
    }

    /// Removes this key's processing-time timer at `timestamp`, if any.
    pub fn delete_processing_time_timer(&mut self, timestamp: i64) {
        self.processing.delete(self.key, timestamp);
    }

    /// The operator's event time: the last watermark it received (`i64::MIN` before
    /// any).
    pub fn current_watermark(&self) -> i64 {
        self.watermark.timestamp()
    }

    /// The job clock's time in milliseconds (read on each call: a record that
    /// never asks costs no clock read).
    pub fn current_processing_time(&self) -> i64 {
        processing_time_of(self.clock)
    }
}
