//! The real clock: monotonic time and timers accurate to tens of microseconds.
//!
//! Tokio's timer works in whole milliseconds and rounds sleeps up, so a 1 ms sleep
//! takes about 2 ms. Async operators wait on timeouts and simulated services on
//! delays of a millisecond or less, so flink-rs runs its own timer thread: an ordered
//! map of deadlines and a condition variable with a nanosecond timeout. A thread that
//! waits on its own timers ([`SystemClock::park`]) fires them itself.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use flink_core::clock::{Clock, SleepFuture, SleepState};
use futures::future::BoxFuture;
use parking_lot::{Condvar, Mutex};

/// A sleep's place in the timer: its deadline, then a unique number.
type Slot = (Instant, u64);

/// The sleeps still waited for, earliest first. A sleep dropped before its
/// deadline (every timeout of a call that succeeded) leaves at once, so the map
/// only ever holds live sleeps: small, cache-resident, and bounded by what is in
/// flight rather than by the call rate times the timeout.
struct Timer {
    sleeps: Mutex<BTreeMap<Slot, Arc<SleepState>>>,
    next_id: AtomicU64,
    /// Threads inside [`Timer::park`], which fire due sleeps themselves.
    serving: AtomicUsize,
    changed: Condvar,
}

/// The process-wide timer thread, started on first use.
fn timer() -> &'static Timer {
    static TIMER: OnceLock<&'static Timer> = OnceLock::new();
    TIMER.get_or_init(|| {
        let timer = Timer::leaked();
        std::thread::Builder::new()
            .name("flink-timer".into())
            .spawn(move || timer.run())
            .expect("spawn the timer thread");
        timer
    })
}

/// Asks Linux to wake this thread at its deadlines exactly: the default "timer
/// slack" lets the kernel delay a timed wait by up to 50 us to batch wake-ups.
pub(crate) fn minimize_timer_slack() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_TIMERSLACK, n) only changes this thread's timer slack;
    // it takes integer arguments and touches no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}

impl Timer {
    /// A timer that lives as long as the process (sleeps refer back to it).
    fn leaked() -> &'static Timer {
        Box::leak(Box::new(Timer {
            sleeps: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(0),
            serving: AtomicUsize::new(0),
            changed: Condvar::new(),
        }))
    }

    fn run(&self) {
        minimize_timer_slack();
        loop {
            // While a thread serves the timer in `park`, this thread is only the
            // backstop: racing it for the same deadlines (the lock, and a wake-up of
            // a thread that was about to fire them anyway) cost a 1 ms call ~40 us.
            let lag = if self.serving.load(Ordering::Relaxed) > 0 {
                BACKSTOP_LAG
            } else {
                Duration::ZERO
            };
            let now = Instant::now();
            self.fire_due(now.checked_sub(lag).unwrap_or(now));
            let mut sleeps = self.sleeps.lock();
            match sleeps.first_key_value().map(|(slot, _)| slot.0) {
                Some(deadline) => {
                    self.changed.wait_until(&mut sleeps, deadline + lag);
                }
                None => self.changed.wait(&mut sleeps),
            }
        }
    }

    /// Fires every sleep due at `now`, outside the lock so that threads adding
    /// sleeps meanwhile do not block; returns how many fired.
    fn fire_due(&self, now: Instant) -> usize {
        let mut due = Vec::new();
        {
            let mut sleeps = self.sleeps.lock();
            while sleeps
                .first_key_value()
                .is_some_and(|(slot, _)| slot.0 <= now)
            {
                due.extend(sleeps.pop_first().map(|(_, state)| state));
            }
        }
        for state in &due {
            state.fire();
        }
        due.len()
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.sleeps.lock().first_key_value().map(|(slot, _)| slot.0)
    }

    fn add(&self, deadline: Instant, state: Arc<SleepState>) -> Slot {
        let slot = (deadline, self.next_id.fetch_add(1, Ordering::Relaxed));
        let mut sleeps = self.sleeps.lock();
        let earliest = sleeps
            .first_key_value()
            .is_none_or(|(first, _)| slot < *first);
        sleeps.insert(slot, state);
        if earliest {
            self.changed.notify_one();
        }
        slot
    }

    fn remove(&self, slot: &Slot) {
        self.sleeps.lock().remove(slot);
    }

    /// Parks the calling thread until it is unparked or `max` passes, firing the
    /// sleeps that fall due meanwhile on this thread. Within [`SPIN_BEFORE_DEADLINE`]
    /// of the next deadline it spins instead of parking: a parked thread wakes tens
    /// of microseconds late, which is most of the error on a 1 ms call.
    fn park(&self, max: Duration) {
        self.serving.fetch_add(1, Ordering::Relaxed);
        self.park_serving(max);
        self.serving.fetch_sub(1, Ordering::Relaxed);
    }

    fn park_serving(&self, max: Duration) {
        let now = Instant::now();
        if self.fire_due(now) > 0 {
            return;
        }
        let until = now + max;
        match self.next_deadline() {
            Some(deadline) if deadline <= now + SPIN_BEFORE_DEADLINE => {
                while Instant::now() < deadline.min(until) {
                    std::hint::spin_loop();
                }
                self.fire_due(Instant::now());
            }
            Some(deadline) => {
                std::thread::park_timeout((deadline - SPIN_BEFORE_DEADLINE).min(until) - now)
            }
            None => std::thread::park_timeout(max),
        }
    }
}

/// How close to a deadline a thread parked on [`SystemClock::park`] stops sleeping
/// and spins. Bounds the spinning to this much per deadline.
const SPIN_BEFORE_DEADLINE: Duration = Duration::from_micros(50);

/// How long after a deadline the timer thread fires a sleep itself while some thread
/// serves the timer in [`SystemClock::park`]. Only a sleep that becomes the earliest
/// while the serving thread is parked for a later one waits this long.
const BACKSTOP_LAG: Duration = Duration::from_micros(100);

/// Completes `duration` from now, to within tens of microseconds.
pub fn precise_sleep(duration: Duration) -> PreciseSleep {
    sleep_on(timer(), duration)
}

fn sleep_on(timer: &'static Timer, duration: Duration) -> PreciseSleep {
    let state = Arc::new(SleepState::default());
    let slot = if duration.is_zero() {
        state.fire();
        None
    } else {
        Some(timer.add(Instant::now() + duration, state.clone()))
    };
    PreciseSleep {
        sleep: SleepFuture::new(state),
        timer,
        slot,
    }
}

/// A sleep on the precise timer; dropping it before it completes takes it out of
/// the timer.
pub struct PreciseSleep {
    sleep: SleepFuture,
    timer: &'static Timer,
    /// Where the sleep waits in the timer, until it has completed.
    slot: Option<Slot>,
}

impl Future for PreciseSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let ready = Pin::new(&mut self.sleep).poll(cx);
        if ready.is_ready() {
            self.slot = None;
        }
        ready
    }
}

impl Drop for PreciseSleep {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.timer.remove(&slot);
        }
    }
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

    fn park(&self, max: Duration) {
        timer().park(max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[test]
    fn a_sleep_dropped_before_its_deadline_leaves_the_timer() {
        let timer = Timer::leaked();
        let sleeps: Vec<_> = (0..1000)
            .map(|_| sleep_on(timer, Duration::from_secs(3600)))
            .collect();
        assert_eq!(timer.sleeps.lock().len(), 1000);
        drop(sleeps);
        assert_eq!(timer.sleeps.lock().len(), 0);
    }

    #[test]
    fn other_threads_sleeps_fire_while_a_thread_serves_the_timer() {
        let timer = Timer::leaked();
        std::thread::spawn(move || timer.run());
        // A thread serving the timer, parked for an hour unless woken: it will not
        // fire the short sleeps below, so the timer thread's backstop must.
        let _far = sleep_on(timer, Duration::from_secs(3600));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let server = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    timer.park(Duration::from_secs(3600));
                }
            })
        };
        while timer.serving.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for _ in 0..20 {
                futures::executor::block_on(sleep_on(timer, Duration::from_micros(200)));
            }
            let _ = done.send(());
        });
        // A guard against a hang, not a timing assertion: 20 sleeps of 200 us.
        let fired = finished.recv_timeout(Duration::from_secs(30));
        stop.store(true, Ordering::SeqCst);
        server.thread().unpark();
        server.join().unwrap();
        assert!(fired.is_ok(), "sleeps of a non-serving thread never fired");
    }

    #[test]
    fn park_fires_due_sleeps_on_the_parked_thread() {
        // This timer has no thread of its own: only `park` can fire the sleep.
        let timer = Timer::leaked();
        let mut sleep = sleep_on(timer, Duration::from_millis(1));
        let mut parks = 0;
        while (&mut sleep).now_or_never().is_none() {
            assert!(parks < 1_000, "the sleep never fired");
            timer.park(Duration::from_millis(10));
            parks += 1;
        }
        assert!(timer.sleeps.lock().is_empty());
    }

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
