//! Dead letters: records a stage could not process, with the reason, kept as data.

use serde::{Deserialize, Serialize};

use crate::side_output::OutputTag;

/// A record that could not be processed, and why. Every stage that gives up on a
/// record emits one of these instead of dropping it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter<T> {
    /// The record as it entered the stage that gave up.
    pub record: T,
    /// The operator (stage) that gave up.
    pub operator: String,
    /// Why, in words a person can act on.
    pub reason: String,
    /// How many attempts were made (1 when there was no retry).
    pub attempts: u32,
    /// The last error seen, if the reason was an error.
    pub last_error: Option<String>,
}

impl<T> DeadLetter<T> {
    /// A dead letter after one attempt.
    pub fn new(record: T, operator: &str, reason: impl Into<String>) -> Self {
        Self {
            record,
            operator: operator.to_string(),
            reason: reason.into(),
            attempts: 1,
            last_error: None,
        }
    }

    /// Sets the attempt count.
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts;
        self
    }

    /// The reason in one line: the stage, the reason and the last error, if any.
    pub fn describe(&self) -> String {
        match &self.last_error {
            Some(error) => format!(
                "'{}' gave up after {} attempt(s): {}; last error: {error}",
                self.operator, self.attempts, self.reason
            ),
            None => format!("'{}' gave up: {}", self.operator, self.reason),
        }
    }

    /// Sets the last error.
    pub fn with_last_error(mut self, error: impl Into<String>) -> Self {
        self.last_error = Some(error.into());
        self
    }
}

/// The id of the dead-letter side output. A dead letter written to it that no stream
/// reads fails the job, unless the operator's dead letters were discarded on purpose
/// (`DataStream::discard_dead_letters`).
pub const DEAD_LETTER_TAG_ID: &str = "dead-letters";

/// The side-output tag dead letters of records of type `T` travel under.
pub fn dead_letter_tag<T>() -> OutputTag<DeadLetter<T>> {
    OutputTag::with_reason(DEAD_LETTER_TAG_ID, DeadLetter::<T>::describe)
}
