//! A [`BatchDestination`] wrapper for async sink tests: counts the requests and records
//! in flight at once, to check the sink's bounds against a real destination.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use flink_core::async_sink::{BatchDestination, SubmitResult};
use flink_core::destination::DeliveryError;
use futures::future::BoxFuture;

/// Peaks of what was in flight through a [`Counted`] destination.
#[derive(Debug, Default)]
pub struct Peaks {
    requests: AtomicUsize,
    records: AtomicUsize,
    max_requests: AtomicUsize,
    max_records: AtomicUsize,
    submitted: AtomicUsize,
}

impl Peaks {
    /// Requests in flight at once, at most.
    pub fn max_requests(&self) -> usize {
        self.max_requests.load(Ordering::SeqCst)
    }
    /// Records in flight at once, at most.
    pub fn max_records(&self) -> usize {
        self.max_records.load(Ordering::SeqCst)
    }
    /// Requests submitted (retries included).
    pub fn submitted(&self) -> usize {
        self.submitted.load(Ordering::SeqCst)
    }
}

/// `D`, counting what is in flight through it.
pub struct Counted<D> {
    inner: D,
    peaks: Arc<Peaks>,
}

impl<D> Counted<D> {
    /// Wraps `inner`; the returned peaks fill while the job runs.
    pub fn new(inner: D) -> (Self, Arc<Peaks>) {
        let peaks = Arc::new(Peaks::default());
        (
            Self {
                inner,
                peaks: peaks.clone(),
            },
            peaks,
        )
    }
}

impl<T, D: BatchDestination<T>> BatchDestination<T> for Counted<D> {
    fn submit(&self, batch: &[T]) -> BoxFuture<'static, SubmitResult> {
        let p = self.peaks.clone();
        p.submitted.fetch_add(1, Ordering::SeqCst);
        let n = batch.len();
        let requests = p.requests.fetch_add(1, Ordering::SeqCst) + 1;
        let records = p.records.fetch_add(n, Ordering::SeqCst) + n;
        p.max_requests.fetch_max(requests, Ordering::SeqCst);
        p.max_records.fetch_max(records, Ordering::SeqCst);
        let request = self.inner.submit(batch);
        let done = Done(p, n);
        Box::pin(async move {
            let answer = request.await;
            drop(done);
            answer
        })
    }

    fn flush(&self) -> BoxFuture<'static, Result<(), DeliveryError>> {
        self.inner.flush()
    }
}

/// Counts a request out when it completes or is dropped (timed out).
struct Done(Arc<Peaks>, usize);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.requests.fetch_sub(1, Ordering::SeqCst);
        self.0.records.fetch_sub(self.1, Ordering::SeqCst);
    }
}
