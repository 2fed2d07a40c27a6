//! A bounded pool of equally sized memory segments handed out as [`Buffer`]s.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use super::buffer::Buffer;
use super::cancel::{CancelToken, CancelWaker};
use super::error::NetworkError;
use super::io_metrics::{IoMetrics, Waiting};

/// Longest single condition-variable wait; a safety net on top of explicit cancel wake-ups.
pub(crate) const MAX_WAIT_SLICE: Duration = Duration::from_millis(50);

/// Work a writer blocked on the pool does between its waits (the pool's lock is
/// not held meanwhile): its task's checkpoint acknowledgement, held while a
/// barrier is queued, is resolved there (`OutputChannelState::resolve_held`).
pub(crate) type WaitHook = Box<dyn Fn() + Send + Sync>;

struct PoolState {
    free: Vec<Box<[u8]>>,
    allocated: usize,
    in_use: usize,
    max_in_use: usize,
    waiters: usize,
}

pub(crate) struct PoolInner {
    state: Mutex<PoolState>,
    available: Condvar,
    capacity: usize,
    segment_size: usize,
    metrics: Option<Arc<IoMetrics>>,
    /// Run by a blocked request before each wait.
    wait_hook: OnceLock<WaitHook>,
}

impl PoolInner {
    /// Return a segment (called from `Buffer::drop`).
    pub(crate) fn recycle(&self, segment: Box<[u8]>) {
        let mut st = self.state.lock();
        st.free.push(segment);
        st.in_use -= 1;
        let wake = st.waiters > 0;
        drop(st);
        if let Some(m) = &self.metrics {
            m.out_used_dec();
        }
        if wake {
            self.available.notify_one();
        }
    }

    fn try_take(self: &Arc<Self>, st: &mut PoolState) -> Option<Buffer> {
        let segment = match st.free.pop() {
            Some(s) => s,
            None if st.allocated < self.capacity => {
                st.allocated += 1;
                vec![0u8; self.segment_size].into_boxed_slice()
            }
            None => return None,
        };
        st.in_use += 1;
        st.max_in_use = st.max_in_use.max(st.in_use);
        if let Some(m) = &self.metrics {
            m.out_used_inc();
        }
        Some(Buffer::new(segment, Arc::clone(self)))
    }
}

impl CancelWaker for PoolInner {
    fn wake(&self) {
        let _st = self.state.lock();
        self.available.notify_all();
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        if let Some(m) = &self.metrics {
            m.sub_out_capacity(self.capacity);
        }
    }
}

/// A bounded pool of `capacity` segments of `segment_size` bytes each.
/// Segments are allocated lazily (never more than `capacity`) and reused forever.
/// Requesting from an exhausted pool blocks; that blocking is back pressure.
#[derive(Clone)]
pub struct BufferPool {
    inner: Arc<PoolInner>,
    cancel: CancelToken,
}

impl std::fmt::Debug for BufferPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufferPool")
            .field("capacity", &self.inner.capacity)
            .field("segment_size", &self.inner.segment_size)
            .field("in_use", &self.in_use())
            .finish()
    }
}

impl BufferPool {
    /// A pool of `capacity` segments of `segment_size` bytes. Blocking requests observe
    /// `cancel`; usage is reported to `metrics` as output-pool usage when given.
    pub fn new(
        capacity: usize,
        segment_size: usize,
        cancel: CancelToken,
        metrics: Option<Arc<IoMetrics>>,
    ) -> Result<Self, NetworkError> {
        if capacity == 0 || segment_size < 8 {
            return Err(NetworkError::InvalidConfig(format!(
                "buffer pool needs capacity >= 1 and segment size >= 8 (got {capacity}, {segment_size})"
            )));
        }
        if let Some(m) = &metrics {
            m.add_out_capacity(capacity);
        }
        let inner = Arc::new(PoolInner {
            state: Mutex::new(PoolState {
                free: Vec::with_capacity(capacity),
                allocated: 0,
                in_use: 0,
                max_in_use: 0,
                waiters: 0,
            }),
            available: Condvar::new(),
            capacity,
            segment_size,
            metrics,
            wait_hook: OnceLock::new(),
        });
        let weak = Arc::downgrade(&inner);
        cancel.register(weak);
        Ok(Self { inner, cancel })
    }

    /// Maximum number of segments.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// Size of every segment in bytes.
    pub fn segment_size(&self) -> usize {
        self.inner.segment_size
    }

    /// Segments currently handed out as buffers.
    pub fn in_use(&self) -> usize {
        self.inner.state.lock().in_use
    }

    /// High-water mark of [`in_use`](Self::in_use).
    pub fn max_in_use(&self) -> usize {
        self.inner.state.lock().max_in_use
    }

    /// Segments allocated so far (never exceeds [`capacity`](Self::capacity)).
    pub fn allocated(&self) -> usize {
        self.inner.state.lock().allocated
    }

    /// Sets the work a blocked request does before each wait (once; a second
    /// hook is ignored).
    pub(crate) fn set_wait_hook(&self, hook: WaitHook) {
        let _ = self.inner.wait_hook.set(hook);
    }

    /// Take a buffer if one is free, without blocking.
    pub fn try_request(&self) -> Option<Buffer> {
        let mut st = self.inner.state.lock();
        self.inner.try_take(&mut st)
    }

    /// Take a buffer, blocking while the pool is exhausted. Time spent blocked is added
    /// to the back-pressure counter. Returns `Cancelled` promptly after cancellation.
    pub fn request(&self) -> Result<Buffer, NetworkError> {
        self.request_when(|| true)
    }

    /// Whether a buffer is free now (a request would not block on the pool).
    pub fn has_free(&self) -> bool {
        let st = self.inner.state.lock();
        !st.free.is_empty() || st.allocated < self.inner.capacity
    }

    /// Take a buffer once `allowed` holds and one is free, blocking (as back
    /// pressure) until then. `allowed` is checked under the pool's lock, so it must
    /// not take locks itself; any buffer returned to the pool wakes the wait to
    /// check again (a subpartition below its cap after shipping, for instance).
    pub fn request_when(&self, allowed: impl Fn() -> bool) -> Result<Buffer, NetworkError> {
        let mut st = self.inner.state.lock();
        if allowed()
            && let Some(b) = self.inner.try_take(&mut st)
        {
            return Ok(b);
        }
        st.waiters += 1;
        if let Some(m) = &self.inner.metrics {
            m.set_waiting(Waiting::Output);
        }
        let mut hooked = false;
        let result = loop {
            if self.cancel.is_cancelled() {
                break Err(NetworkError::Cancelled);
            }
            if allowed()
                && let Some(b) = self.inner.try_take(&mut st)
            {
                break Ok(b);
            }
            if !hooked && let Some(hook) = self.inner.wait_hook.get() {
                // Unlocked: a buffer freed meanwhile finds no waiter to wake, so
                // look again before waiting.
                MutexGuard::unlocked(&mut st, hook);
                hooked = true;
                continue;
            }
            hooked = false;
            // Credit each slice as it ends, so a live reading of a writer that is
            // blocked right now already shows the time (at most one slice late).
            let slice = Instant::now();
            self.inner.available.wait_for(&mut st, MAX_WAIT_SLICE);
            if let Some(m) = &self.inner.metrics {
                m.add_back_pressured(slice.elapsed());
            }
        };
        st.waiters -= 1;
        if let Some(m) = &self.inner.metrics {
            m.set_waiting(Waiting::Nothing);
        }
        drop(st);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocked_request_runs_the_wait_hook_and_takes_what_it_freed() {
        let pool = BufferPool::new(1, 16, CancelToken::new(), None).unwrap();
        let held = Arc::new(Mutex::new(Some(pool.request().unwrap())));
        let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (h, r) = (Arc::clone(&held), Arc::clone(&runs));
        pool.set_wait_hook(Box::new(move || {
            r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            h.lock().take(); // frees the only buffer
        }));
        assert!(pool.try_request().is_none());
        assert_eq!(
            runs.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "not blocked"
        );
        let b = pool.request().unwrap();
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(held.lock().is_none());
        drop(b);
        let _ = pool.request().unwrap();
        assert_eq!(
            runs.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "a request that does not block runs no hook"
        );
    }

    #[test]
    fn pool_is_bounded_and_recycles() {
        let m = IoMetrics::new();
        let pool = BufferPool::new(2, 16, CancelToken::new(), Some(Arc::clone(&m))).unwrap();
        let a = pool.try_request().unwrap();
        let b = pool.request().unwrap();
        assert!(pool.try_request().is_none());
        assert_eq!(m.out_pool(), (2, 2));
        drop(a);
        assert_eq!(pool.in_use(), 1);
        let c = pool.try_request().unwrap();
        drop((b, c));
        assert_eq!(pool.allocated(), 2);
        assert_eq!(pool.max_in_use(), 2);
        assert_eq!(m.out_pool_usage(), 0.0);
    }

    #[test]
    fn blocked_request_is_woken_by_recycle_and_counts_back_pressure() {
        let m = IoMetrics::new();
        let pool = BufferPool::new(1, 16, CancelToken::new(), Some(Arc::clone(&m))).unwrap();
        let held = pool.request().unwrap();
        let p2 = pool.clone();
        let t = std::thread::spawn(move || p2.request().map(|b| b.capacity()));
        std::thread::sleep(Duration::from_millis(20));
        drop(held);
        assert_eq!(t.join().unwrap(), Ok(16));
        assert!(m.back_pressured_ns() > 0);
    }

    #[test]
    fn blocked_request_observes_cancellation() {
        let cancel = CancelToken::new();
        let pool = BufferPool::new(1, 16, cancel.clone(), None).unwrap();
        let _held = pool.request().unwrap();
        let p2 = pool.clone();
        let t = std::thread::spawn(move || p2.request().map(|_| ()));
        std::thread::sleep(Duration::from_millis(20));
        cancel.cancel();
        assert_eq!(t.join().unwrap(), Err(NetworkError::Cancelled));
    }
}
