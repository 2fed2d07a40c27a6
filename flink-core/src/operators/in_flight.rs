//! [`InFlight`]: futures an operator keeps running on its own task thread, such as
//! async calls or sink requests, polled without a thread hand-off.

use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};

use crate::failure::TaskCancelled;
use crate::services::RuntimeServices;

/// How often a blocked wait for a completion checks for cancellation.
const CANCEL_CHECK: Duration = Duration::from_millis(50);

/// Futures in flight, polled on the task's own thread inside the runtime's async
/// context: a completing socket or timer unparks the task directly, and while the
/// task waits, its clock may fire due timers on this thread.
pub(crate) struct InFlight<R> {
    futures: FuturesUnordered<BoxFuture<'static, R>>,
    waker: Waker,
    services: RuntimeServices,
}

impl<R> InFlight<R> {
    /// Nothing in flight yet; completions will wake the current thread.
    pub(crate) fn new(services: RuntimeServices) -> Self {
        Self {
            futures: FuturesUnordered::new(),
            waker: futures::task::waker(Arc::new(UnparkTask(std::thread::current()))),
            services,
        }
    }

    /// Starts polling `future` along with the others.
    pub(crate) fn push(&mut self, future: BoxFuture<'static, R>) {
        self.futures.push(future);
    }

    /// How many futures have not completed.
    pub(crate) fn len(&self) -> usize {
        self.futures.len()
    }

    /// Polls every future once, appending those that completed to `ready`.
    pub(crate) fn poll_ready(&mut self, ready: &mut Vec<R>) {
        let (futures, waker) = (&mut self.futures, &self.waker);
        self.services.spawner.in_context(&mut || {
            let mut cx = Context::from_waker(waker);
            while let Poll::Ready(Some(done)) = futures.poll_next_unpin(&mut cx) {
                ready.push(done);
            }
        });
    }

    /// Waits until at least one future completed (appending it to `ready`); unwinds
    /// with [`TaskCancelled`] when the job is cancelled meanwhile, so no wait outlives
    /// its job.
    pub(crate) fn wait_ready(&mut self, ready: &mut Vec<R>) {
        loop {
            self.poll_ready(ready);
            if !ready.is_empty() || self.futures.is_empty() {
                return;
            }
            if self.services.cancelled.is_cancelled() {
                std::panic::resume_unwind(Box::new(TaskCancelled));
            }
            // A completion unparks this thread; the timeout only bounds how late a
            // cancellation is seen. The clock may serve its due timers meanwhile.
            self.services.clock.park(CANCEL_CHECK);
        }
    }
}

/// Wakes the task thread that owns the futures.
struct UnparkTask(std::thread::Thread);

impl futures::task::ArcWake for UnparkTask {
    fn wake_by_ref(task: &Arc<Self>) {
        task.0.unpark();
    }
}
