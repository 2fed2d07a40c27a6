//! The real clock: monotonic time and timers accurate to tens of microseconds.
//!
//! Tokio's timer works in whole milliseconds and rounds sleeps up, so a 1 ms sleep
//! takes about 2 ms. Async operators wait on timeouts and simulated services on
//! delays of a millisecond or less, so flink-rs runs its own timer thread: a heap of
//! deadlines and a condition variable with a nanosecond timeout.

use std::collections::BinaryHeap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use flink_core::clock::{Clock, Due, SleepFuture, SleepState};
use futures::future::BoxFuture;
use parking_lot::{Condvar, Mutex};

struct Timer {
    heap: Mutex<BinaryHeap<Due<Instant>>>,
    changed: Condvar,
}

/// The process-wide timer thread, started on first use.
fn timer() -> &'static Timer {
    static TIMER: OnceLock<&'static Timer> = OnceLock::new();
    TIMER.get_or_init(|| {
        let timer: &'static Timer = Box::leak(Box::new(Timer {
            heap: Mutex::new(BinaryHeap::new()),
            changed: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("flink-timer".into())
            .spawn(move || timer.run())
            .expect("spawn the timer thread");
        timer
    })
}

/// Asks Linux to wake this thread at its deadlines exactly: the default "timer
/// slack" lets the kernel delay a timed wait by up to 50 us to batch wake-ups.
fn minimize_timer_slack() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_TIMERSLACK, n) only changes this thread's timer slack;
    // it takes integer arguments and touches no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}

impl Timer {
    fn run(&self) {
        minimize_timer_slack();
        let mut heap = self.heap.lock();
        loop {
            let now = Instant::now();
            while heap.peek().is_some_and(|e| e.deadline <= now) {
                if let Some(e) = heap.pop()
                    && !e.state.is_abandoned()
                {
                    e.state.fire();
                }
            }
            match heap.peek().map(|e| e.deadline) {
                Some(deadline) => {
                    self.changed.wait_until(&mut heap, deadline);
                }
                None => self.changed.wait(&mut heap),
            }
        }
    }

    fn add(&self, deadline: Instant, state: Arc<SleepState>) {
        let mut heap = self.heap.lock();
        let earliest = heap.peek().is_none_or(|e| deadline < e.deadline);
        heap.push(Due { deadline, state });
        if earliest {
            self.changed.notify_one();
        }
    }
}

/// Completes `duration` from now, to within tens of microseconds.
pub fn precise_sleep(duration: Duration) -> SleepFuture {
    let state = Arc::new(SleepState::default());
    if duration.is_zero() {
        state.fire();
    } else {
        timer().add(Instant::now() + duration, state.clone());
    }
    SleepFuture::new(state)
}

/// The real, monotonic clock, with [`precise_sleep`] timers.
#[derive(Debug, Clone)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(precise_sleep(duration))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleeps_complete_in_deadline_order() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let threads: Vec<_> = [3u64, 1, 2]
            .into_iter()
            .map(|ms| {
                let order = order.clone();
                std::thread::spawn(move || {
                    futures::executor::block_on(precise_sleep(Duration::from_millis(ms * 5)));
                    order.lock().push(ms);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*order.lock(), vec![1, 2, 3]);
    }
}
