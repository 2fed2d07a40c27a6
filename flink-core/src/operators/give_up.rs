//! [`GiveUp`]: what an operator does with a record it gave up on after its last
//! attempt, as its [`FailurePolicy`] says: fail the job, count it, or emit a dead
//! letter. Shared by the async operator and the async sink.

use std::fmt::Display;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::async_io::FailurePolicy;
use crate::dead_letter::{DeadLetter, dead_letter_tag};
use crate::failure::fail_operator;
use crate::functions::Collector;
use crate::operator::RuntimeContext;
use crate::side_output::SideOutput;

/// Told of each record given up on that ends as a dead letter or counted error.
pub(crate) type GiveUpObserver<T> = Box<dyn Fn(&T) + Send>;

/// Ends records an operator gave up on, counting them in its `dead_letters` and
/// `errors` metrics.
pub(crate) struct GiveUp<T> {
    operator: String,
    policy: FailurePolicy,
    dead_letter_output: SideOutput<DeadLetter<T>>,
    dead_letters: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    /// Told of every record that ends here (dead-lettered or counted).
    observer: Option<GiveUpObserver<T>>,
}

impl<T: 'static> GiveUp<T> {
    /// For the operator of `ctx`, under `policy`.
    pub(crate) fn new(policy: FailurePolicy, ctx: &RuntimeContext) -> Self {
        Self {
            operator: ctx.operator_name.to_string(),
            policy,
            dead_letter_output: ctx.side_output(&dead_letter_tag::<T>()),
            dead_letters: ctx.metrics.custom("dead_letters"),
            errors: ctx.metrics.custom("errors"),
            observer: None,
        }
    }

    /// Tells `observer` of every record that ends here as a dead letter or a counted
    /// error (the five-stage pipeline counts them out of its in-pipeline count).
    pub(crate) fn observe(&mut self, observer: GiveUpObserver<T>) {
        self.observer = Some(observer);
    }

    /// Gives up on `record` after `attempts`; `what` says what failed ("async call
    /// failed"), `error` the last error.
    pub(crate) fn record(&mut self, record: T, attempts: u32, what: &str, error: &dyn Display) {
        let reason = format!("{what} after {attempts} attempt(s)");
        match self.policy {
            FailurePolicy::FailJob => fail_operator(&self.operator, format!("{reason}: {error}")),
            FailurePolicy::Count => {
                if let Some(observer) = &self.observer {
                    observer(&record);
                }
                self.errors.fetch_add(1, Ordering::Relaxed);
                // flink-core has no logging dependency; counted failures are reported
                // through the `errors` metric, and to standard error so they are seen
                // while the job runs.
                eprintln!("{}: {reason}, counted as error: {error}", self.operator);
            }
            FailurePolicy::DeadLetter => {
                if let Some(observer) = &self.observer {
                    observer(&record);
                }
                self.dead_letters.fetch_add(1, Ordering::Relaxed);
                let letter = DeadLetter::new(record, &self.operator, reason)
                    .with_attempts(attempts)
                    .with_last_error(error.to_string());
                self.dead_letter_output.collect(letter);
            }
        }
    }
}
