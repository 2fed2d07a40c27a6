//! The output flusher: ships partially filled buffers after the buffer timeout.
//!
//! One timer thread per job advances an epoch every interval; each task compares the
//! epoch with the last one it saw between batches (never per record) and flushes its
//! chain when it moved. Tasks waiting for input wake at least once per interval.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// A running flush timer; stops when dropped.
pub struct FlushTimer {
    epoch: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// A task's view of the timer.
#[derive(Clone)]
pub struct FlushClock {
    epoch: Arc<AtomicU64>,
    seen: u64,
}

impl FlushTimer {
    /// Starts a timer ticking every `interval`, or a timer that never ticks.
    pub fn start(interval: Option<Duration>) -> std::io::Result<Self> {
        let epoch = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = match interval {
            Some(interval) => {
                let (epoch, stop) = (epoch.clone(), stop.clone());
                Some(
                    std::thread::Builder::new()
                        .name("output-flusher".into())
                        .spawn(move || {
                            // park_timeout may wake early (and drop unparks it), so tick
                            // by deadline rather than by each wake-up.
                            let mut next = std::time::Instant::now() + interval;
                            while !stop.load(Ordering::Relaxed) {
                                let now = std::time::Instant::now();
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
            stop,
            thread,
        })
    }

    /// A clock for one task.
    pub fn clock(&self) -> FlushClock {
        FlushClock {
            epoch: self.epoch.clone(),
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
    /// Whether a tick passed since the last call that returned true.
    #[inline]
    pub fn due(&mut self) -> bool {
        let now = self.epoch.load(Ordering::Relaxed);
        if now != self.seen {
            self.seen = now;
            true
        } else {
            false
        }
    }
}
