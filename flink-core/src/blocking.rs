//! Blocking waits inside a task that end when the job is cancelled.
//!
//! A task thread that waits on the outside world (an acknowledgment, a free slot in a
//! client's queue, a timer) must notice a cancellation, or `cancel()` waits for a
//! service that may never answer. Every such wait goes through here: the future is
//! polled on the calling thread, which parks between polls for at most
//! [`CANCEL_CHECK`] and gives up as soon as the job's [`CancelFlag`] is set.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::failure::TaskCancelled;
use crate::services::{CancelFlag, RuntimeServices};

/// How late a blocked wait notices a cancellation at most (a completion wakes it at
/// once; this only bounds the re-check of the flag).
pub const CANCEL_CHECK: Duration = Duration::from_millis(10);

/// The job was cancelled while a task waited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the job was cancelled while waiting")]
pub struct WaitCancelled;

impl WaitCancelled {
    /// Ends the current task as cancelled (unwinds to the task boundary, where the
    /// runtime reports it as a cancellation, not a failure).
    pub fn stop_task(self) -> ! {
        std::panic::resume_unwind(Box::new(TaskCancelled))
    }
}

impl CancelFlag {
    /// Ends the current task as cancelled if the flag is set; for loops that wait
    /// on something other than a future (a client's own poll call).
    pub fn stop_task_if_cancelled(&self) {
        if self.is_cancelled() {
            WaitCancelled.stop_task();
        }
    }
}

impl RuntimeServices {
    /// Runs `future` to completion on this thread unless the job is cancelled first.
    /// The future is polled inside the spawner's context (so tokio clients find
    /// their reactor) and the thread parks on the job's clock between polls.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use flink_core::blocking::WaitCancelled;
    /// use flink_core::clock::ManualClock;
    /// use flink_core::services::{RuntimeServices, Spawner};
    ///
    /// struct NoSpawner;
    /// impl Spawner for NoSpawner {
    ///     fn spawn(&self, _: futures::future::BoxFuture<'static, ()>) {}
    /// }
    /// let services = RuntimeServices::new(Arc::new(ManualClock::new()), Arc::new(NoSpawner));
    /// assert_eq!(services.block_on(async { 7 }), Ok(7));
    /// services.cancelled.cancel();
    /// assert_eq!(services.block_on(std::future::pending::<()>()), Err(WaitCancelled));
    /// ```
    pub fn block_on<F: Future>(&self, future: F) -> Result<F::Output, WaitCancelled> {
        let mut future = pin!(future);
        let waker = futures::task::waker(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        loop {
            let mut output = None;
            self.spawner.in_context(&mut || {
                if let Poll::Ready(o) = future.as_mut().poll(&mut cx) {
                    output = Some(o);
                }
            });
            if let Some(o) = output {
                return Ok(o);
            }
            if self.cancelled.is_cancelled() {
                return Err(WaitCancelled);
            }
            self.clock.park(CANCEL_CHECK);
        }
    }

    /// [`block_on`](Self::block_on) for a task thread: a cancellation ends the task.
    pub fn block_on_in_task<F: Future>(&self, future: F) -> F::Output {
        self.block_on(future).unwrap_or_else(|c| c.stop_task())
    }
}

struct Unpark(std::thread::Thread);

impl futures::task::ArcWake for Unpark {
    fn wake_by_ref(task: &Arc<Self>) {
        task.0.unpark();
    }
}
