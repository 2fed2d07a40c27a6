//! How a task stops early. A failing user function or sink, or a cancelled job,
//! unwinds the task's thread with one of these payloads; the runtime catches it at the
//! task boundary and turns it into a job error. Nothing unwinds past the task.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

/// An operator failed: its function panicked or its sink reported an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorFailure {
    /// The operator's name as shown in the plan.
    pub operator: String,
    /// What went wrong.
    pub message: String,
}

/// The task was cancelled because another task failed or the job was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskCancelled;

/// Renders a panic payload as text.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(f) = payload.downcast_ref::<OperatorFailure>() {
        f.message.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// Fails the current task on behalf of `operator` (no panic hook output: the error is
/// reported by the job result instead).
pub fn fail_operator(operator: &str, message: impl Into<String>) -> ! {
    resume_unwind(Box::new(OperatorFailure {
        operator: operator.to_string(),
        message: message.into(),
    }))
}

/// Runs `f`, attributing a panic inside it to `operator`. Failures already attributed
/// (or cancellations) pass through unchanged, so the innermost operator is named.
#[inline(always)]
pub fn attribute_panics<R>(operator: &str, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            if payload.is::<OperatorFailure>() || payload.is::<TaskCancelled>() {
                resume_unwind(payload)
            }
            fail_operator(operator, panic_message(&*payload))
        }
    }
}
