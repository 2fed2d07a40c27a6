//! The output flusher: ships partially filled buffers after the buffer timeout.
//!
//! One timer thread per job advances an epoch every interval; each task compares the
//! epoch with the last one it saw between batches (never per record) and flushes its
//! chain when it moved. A task about to wait (for input, or a pending source) bounds
//! its wait by its next flush deadline ([`FlushClock::bound_wait`]) and, when it
//! wakes, flushes if that deadline passed ([`FlushClock::due_after_wait`]), so a
//! buffer timeout shorter than the task's poll interval is honoured on a trickle.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A running flush timer; stops when dropped.
pub struct FlushTimer {
    epoch: Arc<AtomicU64>,
    schedule: Option<Schedule>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// When the ticks fall due: tick `k` at `origin + k * interval`.
#[derive(Clone, Copy, Debug)]
struct Schedule {
    origin: Instant,
    interval: Duration,
}

impl Schedule {
    /// The number of the last tick due at `now`.
    fn tick_at(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.origin).as_nanos();
        u64::try_from(since / self.interval.as_nanos().max(1)).unwrap_or(u64::MAX)
    }

    /// When tick `k` falls due.
    fn deadline(&self, k: u64) -> Instant {
        let k = u32::try_from(k).unwrap_or(u32::MAX);
        self.origin + self.interval.saturating_mul(k)
    }
}

/// A task's view of the timer.
#[derive(Clone)]
pub struct FlushClock {
    epoch: Arc<AtomicU64>,
    schedule: Option<Schedule>,
    /// The last tick this task flushed at.
    seen: u64,
}

impl FlushTimer {
    /// Starts a timer ticking every `interval`, or a timer that never ticks.
    pub fn start(interval: Option<Duration>) -> std::io::Result<Self> {
        let epoch = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let schedule = interval.map(|interval| Schedule {
            origin: Instant::now(),
            interval,
        });
        let thread = match schedule {
            Some(Schedule { origin, interval }) => {
                let (epoch, stop) = (epoch.clone(), stop.clone());
                Some(
                    std::thread::Builder::new()
                        .name("output-flusher".into())
                        .spawn(move || {
                            // park_timeout may wake early (and drop unparks it), so tick
                            // by deadline rather than by each wake-up.
                            let mut next = origin + interval;
                            while !stop.load(Ordering::Relaxed) {
                                let now = Instant::now();
                                if now >= next {
                                    epoch.fetch_add(1, Ordering::Relaxed);
                                    next += interval;
                                } else {
                                    std::thread::park_timeout(next - now);
                                }
                            }
                        })?,
                )
            }
            None => None,
        };
        Ok(Self {
            epoch,
            schedule,
            stop,
            thread,
        })
    }

    /// A clock for one task.
    pub fn clock(&self) -> FlushClock {
        FlushClock {
            epoch: self.epoch.clone(),
            schedule: self.schedule,
            seen: 0,
        }
    }
}

impl Drop for FlushTimer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl FlushClock {
    /// Whether a tick passed since the last call that returned true. Cheap (one
    /// atomic load): tasks call it between batches.
    #[inline]
    pub fn due(&mut self) -> bool {
        let now = self.epoch.load(Ordering::Relaxed);
        if now > self.seen {
            self.seen = now;
            true
        } else {
            false
        }
    }

    /// After a wait: whether this task's flush deadline passed, by the schedule
    /// itself, so a timer thread that has not yet advanced the epoch (it ticks at the
    /// same instants, but may be scheduled later) does not delay the flush.
    pub fn due_after_wait(&mut self) -> bool {
        let Some(schedule) = self.schedule else {
            return false;
        };
        let tick = schedule.tick_at(Instant::now());
        if tick > self.seen {
            self.seen = tick;
            true
        } else {
            self.due()
        }
    }

    /// `max`, shortened so that a wait starting now ends by this task's next flush
    /// deadline (zero if it already passed).
    pub fn bound_wait(&self, max: Duration) -> Duration {
        match self.schedule {
            Some(schedule) => schedule
                .deadline(self.seen + 1)
                .saturating_duration_since(Instant::now())
                .min(max),
            None => max,
        }
    }

    /// The number of the last tick this task flushed at: flushes counted in ticks
    /// of the buffer timeout.
    pub fn ticks_seen(&self) -> u64 {
        self.seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_end_by_the_next_tick_and_flush_once_per_tick() {
        let timer = FlushTimer::start(Some(Duration::from_millis(5))).unwrap();
        let mut clock = timer.clock();
        assert!(clock.bound_wait(Duration::from_millis(50)) <= Duration::from_millis(5));
        std::thread::sleep(clock.bound_wait(Duration::from_millis(50)));
        assert!(clock.due_after_wait(), "the first deadline passed");
        assert!(clock.ticks_seen() >= 1);
    }

    #[test]
    fn without_a_timeout_waits_are_not_shortened() {
        let timer = FlushTimer::start(None).unwrap();
        let mut clock = timer.clock();
        assert_eq!(
            clock.bound_wait(Duration::from_millis(50)),
            Duration::from_millis(50)
        );
        assert!(!clock.due_after_wait());
    }
}
