//! Savepoints through the REST API, as Flink's asynchronous operations: a trigger
//! (`POST /jobs/{id}/savepoints`, or `POST /jobs/{id}/stop` with a
//! `targetDirectory`) answers at once with a `request-id`; `GET
//! /jobs/{id}/savepoints/{request-id}` then says `IN_PROGRESS` or `COMPLETED` with
//! the savepoint's location or the failure.

use std::collections::VecDeque;

use flink_core::checkpoint::{CheckpointLocation, StopMode};
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::job_client::JobControl;

/// Triggers remembered; the oldest is forgotten beyond this (a bound, not a cache).
const REMEMBERED: usize = 64;

/// The outcome of a trigger, once known.
type Outcome = Option<Result<CheckpointLocation, String>>;

/// The savepoint triggers of one job.
#[derive(Default)]
pub(crate) struct SavepointTriggers {
    triggers: Mutex<VecDeque<(String, Outcome)>>,
}

impl SavepointTriggers {
    /// Starts a savepoint into `directory` (stopping the job after it as `stop`
    /// says) on a thread of its own, and returns its request id.
    pub(crate) fn trigger(
        self: &std::sync::Arc<Self>,
        control: &JobControl,
        directory: CheckpointLocation,
        stop: Option<StopMode>,
    ) -> std::io::Result<String> {
        let id = format!("{:032x}", rand_id());
        {
            let mut triggers = self.triggers.lock();
            triggers.push_back((id.clone(), None));
            while triggers.len() > REMEMBERED {
                triggers.pop_front();
            }
        }
        let (me, control, request) = (self.clone(), control.clone(), id.clone());
        std::thread::Builder::new()
            .name("savepoint-trigger".into())
            .spawn(move || {
                let outcome = control
                    .savepoint(directory, stop)
                    .map_err(|e| e.to_string());
                if let Some(entry) = me.triggers.lock().iter_mut().find(|(i, _)| *i == request) {
                    entry.1 = Some(outcome);
                }
            })?;
        Ok(id)
    }

    /// Flink's body for the status of trigger `id`, or `None` if unknown.
    pub(crate) fn status(&self, id: &str) -> Option<Value> {
        let triggers = self.triggers.lock();
        let (_, outcome) = triggers.iter().find(|(i, _)| i == id)?;
        Some(match outcome {
            None => json!({ "status": { "id": "IN_PROGRESS" }, "operation": null }),
            Some(Ok(path)) => json!({
                "status": { "id": "COMPLETED" },
                "operation": { "location": path.to_string() },
            }),
            Some(Err(e)) => json!({
                "status": { "id": "COMPLETED" },
                "operation": { "failure-cause": { "class": "SavepointError", "stack-trace": e } },
            }),
        })
    }
}

/// 128 random bits for a request id (as Flink's trigger ids), from the standard
/// library's randomly seeded hasher.
fn rand_id() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let half = || {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.finish()
    };
    (u128::from(half()) << 64) | u128::from(half())
}
