//! [`JobFinishedHooks`]: what runs once a whole job has finished successfully.
//!
//! A source that can tell an external system what the job has finished with (Kafka
//! committing a consumer group's offsets) may only do so when every record it handed
//! on has been written by the sinks: after all tasks of the job finished, not when
//! its own task did. In the spirit of Flink's `notifyCheckpointComplete`, the source
//! registers an action here and the runtime runs it after the last task finished,
//! only if the job ended successfully (input ended or a drained stop), never after a
//! cancellation or a failure.

use std::sync::{Arc, Mutex};

/// An action run after the job finished successfully.
pub type JobFinishedHook = Box<dyn FnOnce() + Send>;

/// The actions of one job, run once by the runtime. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct JobFinishedHooks(Arc<Mutex<Vec<JobFinishedHook>>>);

impl JobFinishedHooks {
    /// Runs `hook` once every task of the job finished successfully.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use flink_core::job_hooks::JobFinishedHooks;
    ///
    /// let hooks = JobFinishedHooks::default();
    /// let ran = Arc::new(AtomicBool::new(false));
    /// let flag = ran.clone();
    /// hooks.register(Box::new(move || flag.store(true, Ordering::SeqCst)));
    /// assert_eq!(hooks.run_all(), 1);
    /// assert!(ran.load(Ordering::SeqCst));
    /// assert_eq!(hooks.run_all(), 0);
    /// ```
    pub fn register(&self, hook: JobFinishedHook) {
        self.lock().push(hook);
    }

    /// Runs (and removes) every registered action; for the runtime. Returns how many
    /// ran.
    pub fn run_all(&self) -> usize {
        let hooks = std::mem::take(&mut *self.lock());
        let n = hooks.len();
        for hook in hooks {
            hook();
        }
        n
    }

    /// Drops every registered action without running it (the job did not finish).
    pub fn discard(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<JobFinishedHook>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl std::fmt::Debug for JobFinishedHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("JobFinishedHooks")
            .field(&self.lock().len())
            .finish()
    }
}
