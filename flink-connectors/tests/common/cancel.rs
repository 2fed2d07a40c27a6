//! Cancelling a job whose sink waits on a service that never answers: the
//! cancellation must end the job. The guard time only keeps a broken wait from
//! hanging the suite; nothing asserts how fast the job ends.

use std::sync::mpsc;
use std::time::Duration;

use flink_runtime::prelude::*;

/// Guard against a hang only.
const GUARD: Duration = Duration::from_secs(10);

/// Runs `env`'s job until its operator `sink` received `records`, gives the writer
/// time to enter its wait, cancels the job, and fails the test unless the job ends,
/// cancelled, within [`GUARD`].
pub fn cancel_once_blocked(env: &StreamExecutionEnvironment, sink: &str, records: u64) {
    let client = env.execute_async("blocked sink").unwrap();
    let observer = client.observer();
    let sink_in = move || {
        observer
            .operator_metrics()
            .iter()
            .find(|o| o.name == sink)
            .map_or(0, |o| o.records_in)
    };
    for _ in 0..1_000 {
        if sink_in() >= records {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(sink_in() >= records, "the sink never received its records");
    // Time for the writer to enter its wait; only the end of the job is asserted.
    std::thread::sleep(Duration::from_millis(200));
    client.cancel();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(client.wait());
    });
    let result = rx
        .recv_timeout(GUARD)
        .expect("the cancelled job did not end");
    assert!(
        matches!(result, Err(JobError::Cancelled { .. })),
        "{result:?}"
    );
}
