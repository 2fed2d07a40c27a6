//! The aligned-checkpoint timeout for a task blocked inside a write (issue 10),
//! driven by counts and the manual clock, never by timing: numbers -> map ->
//! gated sink (one record per permit), chaining off. The map forwards checkpoint
//! 1's aligned barrier into its output queue, behind records the full sink input
//! cannot take, and holds its acknowledgement; then the source goes on and the map
//! blocks writing (its output full). Past the timeout, the blocked write converts
//! the queued barrier between its waits (it ships as a priority event) and
//! acknowledges with what it overtook, instead of acknowledging aligned before it
//! blocked (then the sink needed thousands of permits to reach the barrier). A
//! restore from it writes every number exactly once.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use flink_runtime::prelude::*;

mod common;

use common::gated_job::{self, Controls, Numbers, wait_for};

const JOB: &str = "blocked-writer";
/// Records of the job.
const RECORDS: u64 = 20_000;
/// Records emitted before the checkpoint: more than the sink's input channel
/// holds (32 buffers of [`gated_job::PER_BUFFER`]), fewer than it and the map's output queue
/// (32 more) hold, so the map forwards its barrier without blocking and the barrier waits in
/// the map's output queue.
const BEFORE: u64 = 4_000;
/// The sink's snapshot must come within this many permits: the map's barrier is
/// behind about 1,300 records in its output queue (BEFORE less what the sink's
/// input holds), which a barrier acknowledged aligned would wait behind.
const WITHIN: u64 = 500;

/// numbers (up to `limit`) -> map -> gated sink, p=1, no chaining (see
/// [`gated_job::job`]); returns the count of records the map relayed too.
fn job(dir: &Path, limit: u64) -> (StreamExecutionEnvironment, Controls, Arc<AtomicU64>) {
    let mapped = Arc::new(AtomicU64::new(0));
    let counter = mapped.clone();
    let (env, controls) = gated_job::job(dir, Numbers::new(RECORDS, limit), |numbers| {
        numbers
            .map(move |x: u64| {
                counter.fetch_add(1, Ordering::SeqCst);
                x
            })
            .name("Relay")
            .disable_chaining()
    });
    (env, controls, mapped)
}

/// How long the map's task was blocked on its output so far.
fn map_back_pressured(client: &JobClient) -> Duration {
    client
        .task_metrics()
        .into_iter()
        .find(|t| t.task.contains("Relay"))
        .map(|t| t.back_pressured)
        .expect("the map's task")
}

#[test]
fn a_task_blocked_in_a_write_converts_its_queued_barrier_at_the_timeout_and_restores_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let (env, controls, mapped) = job(&run, BEFORE);
    let client = env.execute_async(JOB).unwrap();
    wait_for("the map did not relay the first records", || {
        mapped.load(Ordering::SeqCst) == BEFORE
    });
    assert_eq!(controls.sink.permits.used(), 0);

    // Checkpoint 1, before its timeout: the source's barrier ships (the map's input
    // has room) and the source acknowledges; the map forwards it aligned into its
    // output queue, behind what the sink's input cannot take, and holds its
    // acknowledgement.
    controls.clock.advance(Duration::from_secs(1));
    wait_for("the source did not acknowledge", || {
        client
            .pending_checkpoint()
            .is_some_and(|p| p.id == 1 && p.acknowledged == 1)
    });
    // The source goes on: the map relays records after its barrier until its
    // output is full and it blocks in a write (its back-pressured time grows).
    let blocked_before = map_back_pressured(&client);
    controls.numbers.raise_limit(RECORDS);
    wait_for("the map did not block writing", || {
        mapped.load(Ordering::SeqCst) > BEFORE && map_back_pressured(&client) > blocked_before
    });
    assert_eq!(
        client.pending_checkpoint().map(|p| (p.id, p.acknowledged)),
        Some((1, 1)),
        "the blocked map still holds its acknowledgement"
    );

    // Past the timeout (not yet the next trigger): the blocked write converts the
    // queued barrier and acknowledges; the sink meets the priority barrier once
    // it finished the buffer it is writing.
    controls.clock.advance(Duration::from_millis(200));
    wait_for("the blocked map did not acknowledge", || {
        client
            .pending_checkpoint()
            .is_none_or(|p| p.acknowledged >= 2)
    });
    controls.sink.grant_until_snapshot(
        &client,
        0,
        WITHIN,
        "the map's barrier did not overtake its output queue",
    );
    let completed = gated_job::wait_first_completed(&client);
    gated_job::cancel(client, &controls.sink);
    // The sink wrote less than a buffer; the map's output state (before its
    // barrier) and the sink's input state (what the priority barrier overtook
    // there) are every record before the checkpoint the sink had not written,
    // exactly.
    let at_snapshot = gated_job::snapshot_within_a_buffer(
        &controls.sink,
        &completed,
        BEFORE,
        "the records in flight are stored",
    );

    // Restored: the source from its position (BEFORE), the map's and the sink's
    // records in flight from their channel state; with what the sink had written
    // at its snapshot, every number exactly once.
    let restored =
        gated_job::restore_checkpoint_1(JOB, &run, &dir.path().join("restored"), |dir| {
            let (env, restored, _) = job(dir, RECORDS);
            (env, restored)
        });
    assert_eq!(
        restored.numbers.emitted(),
        RECORDS - BEFORE,
        "the source resumed at its position"
    );
    assert_eq!(
        restored.sink.after(at_snapshot),
        (0..RECORDS).collect::<Vec<_>>()
    );
}
