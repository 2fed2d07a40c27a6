//! The aligned-checkpoint timeout in a receiver's input queue (issue 10), driven
//! by counts and the manual clock, never by timing: a source emits a fixed number
//! of records and waits; a sink that writes one record per permit has them all
//! received and queued in its input channel when the checkpoint is triggered, so
//! the aligned barrier ships at once and waits in the sink's input queue behind
//! them (the source acknowledges before the timeout: its barrier left its output
//! queue, so none is converted there). Once the job's clock passed the timeout,
//! the sink pulls the barrier ahead of those records (Flink's announced barrier)
//! and snapshots after about one buffer, far before it would read the barrier in
//! order; the records it overtook are stored as its input channel state. A restore
//! from it writes exactly the records the sink had not written at its snapshot.

use std::path::Path;
use std::time::Duration;

use flink_runtime::prelude::*;

mod common;

use common::gated_job::{self, Controls, Numbers, wait_for};

const JOB: &str = "input-timeout";
/// Records of the job.
const RECORDS: u64 = 5_000;
/// Records the source emits before the checkpoint, then it waits: about 16 buffers
/// of 1 KiB, which the sink's input channel (32 segments) receives whole, so the
/// barrier behind them ships at once.
const IN_FLIGHT: u64 = 1_000;

/// numbers (up to `limit`) -> [network] -> gated sink (see [`gated_job::job`]).
fn job(dir: &Path, limit: u64) -> (StreamExecutionEnvironment, Controls) {
    gated_job::job(dir, Numbers::new(RECORDS, limit), |numbers| numbers)
}

#[test]
fn an_aligned_barrier_received_past_its_timeout_overtakes_the_input_queue_and_restores_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let (env, controls) = job(&run, IN_FLIGHT);
    let client = env.execute_async(JOB).unwrap();
    wait_for("the source did not emit its records", || {
        controls.numbers.emitted() == IN_FLIGHT
    });
    let permits = &controls.sink.permits;
    assert_eq!(permits.used(), 0);

    // Trigger checkpoint 1; the clock stays before its timeout. The source sends
    // its barrier aligned behind the IN_FLIGHT records; it acknowledges once the
    // barrier left its output queue, aligned (before the timeout nothing is
    // converted there): the barrier is then in the sink's input queue, behind
    // every record, none of which the sink wrote.
    controls.clock.advance(Duration::from_secs(1));
    wait_for("the source took no checkpoint", || {
        controls.numbers.snapshotted() == 1
    });
    wait_for("the source did not acknowledge", || {
        client
            .pending_checkpoint()
            .is_some_and(|p| p.id == 1 && p.acknowledged == 1)
    });
    assert_eq!(permits.used(), 0);
    assert!(controls.sink.at_snapshot(1).is_none());

    // Past the timeout (not yet the next trigger). The sink finishes the buffer
    // it is writing, then pulls the barrier ahead of the rest and snapshots.
    controls.clock.advance(Duration::from_millis(200));
    let granted = controls.sink.grant_until_snapshot(
        &client,
        0,
        IN_FLIGHT / 2,
        "the barrier did not overtake the input queue",
    );
    let completed = gated_job::wait_first_completed(&client);
    // Only the sink can have stored channel state: the source acknowledged
    // before the timeout, without any.
    assert!(
        completed.persisted_data > 4 * 1024,
        "the records the barrier overtook are stored: {} bytes",
        completed.persisted_data
    );
    // It completed while the sink is still blocked short of the records ahead
    // of the barrier.
    assert_eq!(permits.used(), granted);
    assert_eq!(controls.sink.written(), granted);
    assert!(granted < IN_FLIGHT);
    gated_job::cancel(client, &controls.sink);
    let at_snapshot = gated_job::snapshot_within_a_buffer(
        &controls.sink,
        &completed,
        IN_FLIGHT,
        "exactly the records the sink had not written are stored",
    );

    // Restored: the sink's records in flight from its channel state, the source
    // from its position (IN_FLIGHT); with what the sink had written at its
    // snapshot, every number exactly once.
    let restored =
        gated_job::restore_checkpoint_1(JOB, &run, &dir.path().join("restored"), |dir| {
            job(dir, RECORDS)
        });
    assert_eq!(
        restored.numbers.emitted(),
        RECORDS - IN_FLIGHT,
        "the source resumed at its position"
    );
    assert_eq!(
        restored.sink.after(at_snapshot),
        (0..RECORDS).collect::<Vec<_>>()
    );
}
