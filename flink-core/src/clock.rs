//! Time as a service: operators that wait (async timeouts, retry delays, rate limits)
//! ask a [`Clock`], so tests can drive time by hand with a [`ManualClock`] instead of
//! sleeping.

use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::future::BoxFuture;

/// A source of monotonic time and of timers.
pub trait Clock: Send + Sync + 'static {
    /// Time since the clock's own origin.
    fn now(&self) -> Duration;
    /// Completes once `duration` has passed on this clock.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;

    /// Blocks the calling thread until it is unparked or `max` has passed.
    ///
    /// A thread that waits for futures it polls itself (the async operator) parks
    /// here. A clock with its own timers may fire the ones that fall due on this
    /// thread, so a thread waiting on its own timers wakes at their deadline rather
    /// than after a hand-off from a timer thread. Spurious returns are allowed.
    fn park(&self, max: Duration) {
        std::thread::park_timeout(max);
    }
}

/// A clock that only moves when told to. Sleeps complete when [`advance`] passes
/// their deadline.
///
/// [`advance`]: ManualClock::advance
///
/// ```
/// use std::time::Duration;
/// use flink_core::clock::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// let mut sleep = clock.sleep(Duration::from_millis(5));
/// assert!(futures::FutureExt::now_or_never(&mut sleep).is_none());
/// clock.advance(Duration::from_millis(5));
/// assert!(futures::FutureExt::now_or_never(&mut sleep).is_some());
/// ```
#[derive(Clone, Default)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

#[derive(Default)]
struct ManualInner {
    now_ns: AtomicU64,
    sleepers: Mutex<BinaryHeap<Due<u64>>>,
}

/// A sleep waiting in a timer heap: ordered so that a max-heap pops the earliest
/// deadline first. Used by [`ManualClock`].
pub struct Due<D> {
    /// When it fires.
    pub deadline: D,
    /// What to fire.
    pub state: Arc<SleepState>,
}

impl<D: Ord> PartialEq for Due<D> {
    fn eq(&self, other: &Self) -> bool {
        self.deadline == other.deadline
    }
}
impl<D: Ord> Eq for Due<D> {}
impl<D: Ord> PartialOrd for Due<D> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<D: Ord> Ord for Due<D> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.deadline.cmp(&self.deadline)
    }
}

/// The completion flag and waker of one sleep, shared with whoever fires it.
#[derive(Default)]
pub struct SleepState {
    fired: AtomicBool,
    /// The future was dropped before firing: nobody waits any more.
    abandoned: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl SleepState {
    /// Whether the sleeping future was dropped before its deadline.
    pub fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Acquire)
    }

    /// Marks the sleep done and wakes its task.
    pub fn fire(&self) {
        self.fired.store(true, Ordering::Release);
        let waker = self.waker.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// A future completing when its [`SleepState`] fires.
pub struct SleepFuture {
    state: Arc<SleepState>,
}

impl SleepFuture {
    /// A future over `state`.
    pub fn new(state: Arc<SleepState>) -> Self {
        Self { state }
    }
}

impl Drop for SleepFuture {
    fn drop(&mut self) {
        if !self.state.fired.load(Ordering::Acquire) {
            self.state.abandoned.store(true, Ordering::Release);
        }
    }
}

impl Future for SleepFuture {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.state.fired.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        *self.state.waker.lock().unwrap_or_else(|p| p.into_inner()) = Some(cx.waker().clone());
        // Fired between the check and storing the waker: do not miss it.
        if self.state.fired.load(Ordering::Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl ManualClock {
    /// A clock at time zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves time forward by `by`, completing every sleep whose deadline passed.
    pub fn advance(&self, by: Duration) {
        let now = self.inner.now_ns.fetch_add(nanos(by), Ordering::SeqCst) + nanos(by);
        let mut due = Vec::new();
        {
            let mut sleepers = self
                .inner
                .sleepers
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            while sleepers.peek().is_some_and(|s| s.deadline <= now) {
                due.extend(sleepers.pop());
            }
        }
        for s in due {
            s.state.fire();
        }
    }

    /// How many sleeps are waiting (sleeps whose future was dropped do not count).
    pub fn pending_sleeps(&self) -> usize {
        let sleepers = self
            .inner
            .sleepers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        sleepers.iter().filter(|s| !s.state.is_abandoned()).count()
    }

    /// The earliest deadline of a waiting sleep, as time since the origin.
    pub fn next_deadline(&self) -> Option<Duration> {
        let mut sleepers = self
            .inner
            .sleepers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        while sleepers.peek().is_some_and(|s| s.state.is_abandoned()) {
            sleepers.pop();
        }
        sleepers.peek().map(|s| Duration::from_nanos(s.deadline))
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.inner.now_ns.load(Ordering::SeqCst))
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        let state = Arc::new(SleepState::default());
        let deadline_ns = self
            .inner
            .now_ns
            .load(Ordering::SeqCst)
            .saturating_add(nanos(duration));
        if duration.is_zero() {
            state.fire();
        } else {
            let mut sleepers = self
                .inner
                .sleepers
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            sleepers.push(Due {
                deadline: deadline_ns,
                state: state.clone(),
            });
        }
        Box::pin(SleepFuture::new(state))
    }
}
