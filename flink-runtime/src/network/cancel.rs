//! Cooperative cancellation shared by all blocking waits of a task.

use std::sync::Arc;
use std::sync::Weak;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

/// Something blocked on a condition variable that must be woken when a task is cancelled.
pub(crate) trait CancelWaker: Send + Sync {
    /// Wake every thread waiting on this object so it re-checks the cancellation flag.
    fn wake(&self);
}

struct CancelInner {
    cancelled: AtomicBool,
    wakers: Mutex<Vec<Weak<dyn CancelWaker>>>,
}

/// A cloneable cancellation flag. Cancelling wakes every registered blocking wait
/// (buffer pool requests, gate polls), which then return promptly with `Cancelled`.
#[derive(Clone)]
pub struct CancelToken {
    inner: Arc<CancelInner>,
}

impl std::fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelToken")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl Default for CancelToken {
    fn default() -> Self {
        Self::new()
    }
}

impl CancelToken {
    /// A fresh, not yet cancelled token.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(CancelInner {
                cancelled: AtomicBool::new(false),
                wakers: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Cancel: set the flag and wake every registered waiter. Idempotent.
    pub fn cancel(&self) {
        if self.inner.cancelled.swap(true, Ordering::SeqCst) {
            return;
        }
        tracing::debug!("cancel token triggered");
        let wakers: Vec<_> = self.inner.wakers.lock().drain(..).collect();
        for w in wakers {
            if let Some(w) = w.upgrade() {
                w.wake();
            }
        }
    }

    /// Whether [`cancel`](Self::cancel) has been called.
    #[inline]
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::Acquire)
    }

    /// Register an object to be woken on cancellation. Dead registrations are pruned.
    pub(crate) fn register(&self, waker: Weak<dyn CancelWaker>) {
        let mut wakers = self.inner.wakers.lock();
        wakers.retain(|w| w.strong_count() > 0);
        wakers.push(waker.clone());
        drop(wakers);
        // Registered after cancellation: wake right away so nobody sleeps on a cancelled token.
        if self.is_cancelled()
            && let Some(w) = waker.upgrade()
        {
            w.wake();
        }
    }
}
