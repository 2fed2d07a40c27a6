//! The aligned-checkpoint timeout in an output queue (issue 10), driven by counts
//! and the manual clock, never by timing: a sink that writes one record per permit
//! keeps the queue between a source and it full, so the source's aligned barrier
//! waits behind thousands of records in the source's output queue. Once the
//! job's clock passed the timeout, the source turns the queued barrier into an
//! unaligned one that overtakes those records (stored with the checkpoint as
//! channel state), and the checkpoint completes after far fewer permits than the
//! records ahead of the aligned barrier. A restore from it writes exactly the
//! records the sink had not written at its snapshot.

use std::path::Path;
use std::time::{Duration, Instant};

use flink_runtime::prelude::*;

mod common;

use common::gated_job::{self, Controls, GUARD, Numbers, wait_for};

const JOB: &str = "output-timeout";
/// Records of the job: far more than the queues hold.
const RECORDS: u64 = 50_000;
/// Records emitted before the checkpoint is triggered: the aligned barrier is
/// behind at least this many, none of which the sink wrote. More than the sink's
/// input channel holds (32 buffers of 1 KiB, about 2,050 of these records), so the
/// barrier waits in the source's output queue; fewer than both queues hold (about
/// 4,100), so the source gets there.
const IN_FLIGHT: u64 = 3_000;
/// Permits that make the sink return at least one buffer's credit (a buffer holds
/// about 64 records).
const UNBLOCK: u64 = 100;

/// numbers (never held back) -> [network] -> gated sink (see [`gated_job::job`]).
fn job(dir: &Path) -> (StreamExecutionEnvironment, Controls) {
    gated_job::job(dir, Numbers::new(RECORDS, RECORDS), |numbers| numbers)
}

#[test]
fn an_aligned_barrier_queued_past_its_timeout_overtakes_the_output_and_restores_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let (env, controls) = job(&run);
    let client = env.execute_async(JOB).unwrap();
    let deadline = Instant::now() + GUARD;
    while controls.numbers.emitted() < IN_FLIGHT {
        assert!(
            Instant::now() < deadline,
            "the queues hold {} < {IN_FLIGHT}",
            controls.numbers.emitted()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(controls.sink.permits.used(), 0);

    // Trigger checkpoint 1; the clock stays before its timeout, so the source
    // sends its barrier aligned, behind >= IN_FLIGHT records in its output queue,
    // and holds its acknowledgement while the barrier may still go unaligned.
    controls.clock.advance(Duration::from_secs(1));
    wait_for("the source took no checkpoint", || {
        controls.numbers.snapshotted() == 1
    });
    let pending = client
        .pending_checkpoint()
        .expect("checkpoint 1 is pending");
    assert_eq!((pending.id, pending.acknowledged), (1, 0));

    // Past the timeout (not yet the next trigger): the source converts its queued
    // barrier and acknowledges. It may be waiting for a buffer to write the
    // barrier into: UNBLOCK permits free one (the sink returns a buffer's credit).
    controls.clock.advance(Duration::from_millis(200));
    let permits = &controls.sink.permits;
    permits.grant(UNBLOCK);
    permits.wait_used(UNBLOCK);
    wait_for("the source did not acknowledge", || {
        client
            .pending_checkpoint()
            .is_none_or(|p| p.acknowledged >= 1)
    });
    // The sink finishes the records it already received and meets the barrier
    // (its snapshot), far before the records ahead of the aligned barrier.
    controls.sink.grant_until_snapshot(
        &client,
        UNBLOCK,
        IN_FLIGHT,
        "checkpoint 1 did not overtake the queue",
    );
    let completed = gated_job::wait_first_completed(&client);
    assert!(
        completed.persisted_data > 4 * 1024,
        "the records in flight are stored: {} bytes",
        completed.persisted_data
    );
    gated_job::cancel(client, &controls.sink);
    let at_snapshot = controls
        .sink
        .at_snapshot(1)
        .expect("the sink's snapshot of checkpoint 1");
    assert!(
        (at_snapshot.len() as u64) < IN_FLIGHT,
        "the sink snapshotted early"
    );

    // Restored: the source from its position, the sink's records in flight from
    // the channel state; with what the sink had written at its snapshot, every
    // number exactly once.
    let restored = gated_job::restore_checkpoint_1(JOB, &run, &dir.path().join("restored"), job);
    assert_eq!(
        restored.sink.after(at_snapshot),
        (0..RECORDS).collect::<Vec<_>>()
    );
}
