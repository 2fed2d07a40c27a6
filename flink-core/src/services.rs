//! What the runtime lends operators that wait on the outside world: a clock, a way to
//! run futures, the job's cancellation flag and its end-of-job notifications. Defined here as traits so operators
//! stay independent of any particular executor.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::future::BoxFuture;

use crate::clock::Clock;
use crate::job_hooks::JobFinishedHooks;

/// Runs futures to completion somewhere else than the calling thread.
pub trait Spawner: Send + Sync + 'static {
    /// Starts `future`; it must be polled to completion.
    fn spawn(&self, future: BoxFuture<'static, ()>);

    /// Runs `f` where futures of this spawner's kind can be polled (for tokio: inside
    /// the runtime's context, so clients such as reqwest find their reactor).
    fn in_context(&self, f: &mut dyn FnMut()) {
        f()
    }
}

/// A [`Spawner`] that runs each future to completion on a thread of its own: for
/// operators driven by hand outside a job ([`RuntimeContext::standalone`]), not for
/// jobs, whose runtime lends its executor.
///
/// [`RuntimeContext::standalone`]: crate::operator::RuntimeContext::standalone
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadSpawner;

impl Spawner for ThreadSpawner {
    fn spawn(&self, future: BoxFuture<'static, ()>) {
        std::thread::spawn(move || futures::executor::block_on(future));
    }
}

/// Set when the job is being cancelled; long waits inside operators check it.
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    /// A flag that is not set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the flag.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether the flag is set.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The services of one job.
#[derive(Clone)]
pub struct RuntimeServices {
    /// Time and timers.
    pub clock: Arc<dyn Clock>,
    /// Where futures run.
    pub spawner: Arc<dyn Spawner>,
    /// The job's cancellation.
    pub cancelled: CancelFlag,
    /// Actions run once every task of the job finished successfully (such as a
    /// source committing the offsets of what the job has finished with).
    pub on_job_finished: JobFinishedHooks,
}

impl RuntimeServices {
    /// The services of a new job: not cancelled, no end-of-job actions yet.
    pub fn new(clock: Arc<dyn Clock>, spawner: Arc<dyn Spawner>) -> Self {
        Self {
            clock,
            spawner,
            cancelled: CancelFlag::new(),
            on_job_finished: JobFinishedHooks::default(),
        }
    }
}

impl std::fmt::Debug for RuntimeServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeServices")
            .field("cancelled", &self.cancelled)
            .finish()
    }
}
