//! An unaligned checkpoint with records in flight, restored at another
//! parallelism: the records in flight are re-partitioned to the new subtasks (by
//! key group for a keyed exchange, spread for a rebalance) and replayed before any
//! new input, so the output equals a failure-free run's exactly.
//!
//! Driven by counts and the manual clock, never by timing: the stage behind the
//! exchange handles a record only with a permit the test grants, so the queues in
//! front of it fill up; checkpoint 1 is triggered on the manual clock and its
//! barrier overtakes those records, which it stores (asserted from the
//! checkpoint's stats). The job is then cancelled and restored from that
//! checkpoint at 1, 3 and 4 (and 2, the unchanged path) into a fresh sink.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flink_core::clock::ManualClock;
use flink_core::sources::SequenceSource;
use flink_core::watermark::WatermarkStrategy;
use flink_core::windows::TumblingEventTimeWindows;
use flink_runtime::checkpoint::latest_checkpoint;
use flink_runtime::prelude::*;

mod common;

use common::full_queues;
use common::permits::Permits;

/// Records of the job; a multiple of 2 × [`BLOCK`], so that at parallelism 2 each
/// block of [`BLOCK`] consecutive numbers (one key) is read by one source subtask,
/// in order, and each key's running sums are the same in every run (a restore
/// deals the saved splits out whole).
const RECORDS: u64 = 48_000;
/// Numbers per key.
const BLOCK: u64 = 100;
/// Records the map emitted, none handled by the gated stage, before the
/// checkpoint is triggered.
const IN_FLIGHT: u64 = 5_000;
/// Permits granted at a time until every task acknowledged the checkpoint.
const STEP: u64 = 25;
/// Guard against a hang (not a timing assertion).
const GUARD: Duration = Duration::from_secs(300);
/// The job's name: its checkpoints go to `<dir>/<JOB>/chk-<n>`.
const JOB: &str = "rescale";

/// (key, record, running sum of the key) as the keyed job commits it.
type Sum = (u64, u64, u64);

/// Each key's running sum over its records, as a failure-free run emits it.
fn expected_sums() -> Vec<Sum> {
    let mut out = Vec::new();
    let mut sum = 0;
    for x in 0..RECORDS {
        if x % BLOCK == 0 {
            sum = 0;
        }
        sum += x;
        out.push((x / BLOCK, x, sum));
    }
    out
}

/// What a test controls of a job it built.
struct Controls {
    clock: ManualClock,
    permits: Arc<Permits>,
    /// Records the stage before the exchange emitted.
    emitted: Arc<AtomicU64>,
}

/// An environment at `parallelism` with small buffers (thousands of records in
/// flight), unaligned checkpoints on the manual clock into `dir`, no restarts.
fn environment(parallelism: usize, dir: &Path) -> (StreamExecutionEnvironment, Controls) {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(parallelism);
    full_queues::small_buffers(&env);
    let (clock, settings) = full_queues::checkpoints_on_manual_clock(&env, dir);
    settings.enable_unaligned_checkpoints(true);
    env.set_restart_strategy(RestartStrategy::None);
    let controls = Controls {
        clock,
        permits: Arc::new(Permits::default()),
        emitted: Arc::new(AtomicU64::new(0)),
    };
    (env, controls)
}

/// sequence -> map to (key, x) -> key_by -> running sum per key, taking a permit
/// per record -> transactional sink; uids on every operator.
fn keyed_job(
    parallelism: usize,
    dir: &Path,
    out: &TransactionalCollectingSink<Sum>,
) -> (StreamExecutionEnvironment, Controls) {
    let (env, controls) = environment(parallelism, dir);
    let (emitted, permits) = (controls.emitted.clone(), controls.permits.clone());
    env.from_sequence(0, RECORDS - 1)
        .uid("numbers")
        .map(move |x: u64| {
            emitted.fetch_add(1, Ordering::SeqCst);
            (x / BLOCK, x)
        })
        .uid("tag")
        .key_by(|r: &(u64, u64)| r.0)
        .process(
            move |key: &u64,
                  (_, x): (u64, u64),
                  sum: &mut ValueState<u64>,
                  out: &mut dyn Collector<Sum>| {
                permits.acquire();
                let next = sum.value().copied().unwrap_or(0) + x;
                sum.update(next);
                out.collect((*key, x, next));
            },
        )
        .uid("sums")
        .sink_to(out.clone())
        .uid("sink");
    (env, controls)
}

/// sequence -> map (counts) -> rebalance -> map taking a permit per record ->
/// transactional sink; uids on every operator.
fn rebalance_job(
    parallelism: usize,
    dir: &Path,
    out: &TransactionalCollectingSink<u64>,
) -> (StreamExecutionEnvironment, Controls) {
    let (env, controls) = environment(parallelism, dir);
    let (emitted, permits) = (controls.emitted.clone(), controls.permits.clone());
    env.from_sequence(0, RECORDS - 1)
        .uid("numbers")
        .map(move |x: u64| {
            emitted.fetch_add(1, Ordering::SeqCst);
            x
        })
        .uid("count")
        .rebalance()
        .map(move |x: u64| {
            permits.acquire();
            x
        })
        .uid("gated")
        .sink_to(out.clone())
        .uid("sink");
    (env, controls)
}

/// Event time: sequence with timestamps (x ms, monotonous watermarks per split,
/// made in the source after every batch) -> key_by block -> tumbling windows of
/// half a block summing, taking a permit per record after each window's first ->
/// transactional sink.
fn window_job(
    parallelism: usize,
    dir: &Path,
    out: &TransactionalCollectingSink<u64>,
) -> (StreamExecutionEnvironment, Controls) {
    let (env, controls) = environment(parallelism, dir);
    let (emitted, permits) = (controls.emitted.clone(), controls.permits.clone());
    let numbers = SequenceSource::range(0, RECORDS - 1)
        .with_watermarks(WatermarkStrategy::monotonous(|x: &u64| *x as i64))
        .watermark_interval(Duration::ZERO);
    env.from_source(numbers, "numbers")
        .uid("numbers")
        .map(move |x: u64| {
            emitted.fetch_add(1, Ordering::SeqCst);
            x
        })
        .uid("count")
        .key_by(|x: &u64| x / BLOCK)
        .window(TumblingEventTimeWindows::of(Duration::from_millis(
            BLOCK / 2,
        )))
        .reduce(move |a: u64, b: u64| {
            permits.acquire();
            a + b
        })
        .uid("windows")
        .sink_to(out.clone())
        .uid("sink");
    (env, controls)
}

/// Runs the job until its first checkpoint completed (metadata written) with the
/// records in the queues in front of the gated stage stored in it, then cancels
/// it. Returns the checkpoint and the bytes in flight it stored.
fn checkpoint_records_in_flight(
    env: &StreamExecutionEnvironment,
    controls: &Controls,
    dir: &Path,
) -> (CheckpointLocation, u64) {
    let client = env.execute_async(JOB).unwrap();
    common::poll_until("records queued in front of the gated stage", || {
        controls.emitted.load(Ordering::SeqCst) >= IN_FLIGHT
    });
    assert!(client.completed_checkpoints().is_empty());
    controls.clock.advance(Duration::from_secs(1));
    // The gated stage sees the barrier (a priority event) once it finished the
    // buffer it is in: grant it a few records at a time until every task
    // acknowledged, then wait for the coordinator to write the checkpoint.
    let started = Instant::now();
    let persisted = loop {
        if let Some(c) = client.completed_checkpoints().first() {
            break c.persisted_data;
        }
        let all_acknowledged = client
            .pending_checkpoint()
            .is_some_and(|p| p.acknowledged == p.num_subtasks);
        if !all_acknowledged {
            let used = controls.permits.used();
            controls.permits.grant(STEP);
            controls.permits.wait_used(used + STEP);
        }
        assert!(
            started.elapsed() < GUARD,
            "checkpoint 1 did not complete: {:?}",
            client.pending_checkpoint()
        );
        std::thread::sleep(Duration::from_millis(1));
    };
    // Cancel first, so that nothing the job does afterwards is committed.
    client.cancel();
    controls.permits.open();
    assert!(matches!(client.wait(), Err(JobError::Cancelled { .. })));
    let checkpoint = latest_checkpoint(dir, JOB).unwrap().expect("checkpoint 1");
    assert!(checkpoint.to_string().ends_with("chk-1"), "{checkpoint}");
    (checkpoint, persisted)
}

/// Runs the job to its end, driving the clock (checkpoints, and the final one,
/// need triggers).
fn run_to_end(env: &StreamExecutionEnvironment, controls: &Controls) -> JobExecutionResult {
    controls.permits.open();
    let client = env.execute_async(JOB).expect("the restore is accepted");
    full_queues::run_on_clock(
        client,
        &controls.clock,
        GUARD,
        "the restored job did not finish",
    )
    .expect("the restored job finishes")
}

/// The sum of the persisted bytes must be a sizable share of the queues: the
/// checkpoint stores far more than one buffer of records in flight.
fn assert_records_in_flight(persisted: u64) {
    assert!(
        persisted > 4 * 1024,
        "the checkpoint stored records in flight: {persisted} bytes"
    );
}

#[test]
fn a_keyed_unaligned_checkpoint_at_two_restores_at_one_two_three_and_four() {
    let dir = tempfile::tempdir().unwrap();
    let first = TransactionalCollectingSink::new();
    let (env, controls) = keyed_job(2, &dir.path().join("run"), &first);
    let (checkpoint, persisted) =
        checkpoint_records_in_flight(&env, &controls, &dir.path().join("run"));
    assert_records_in_flight(persisted);
    let mut expected = expected_sums();
    expected.sort_unstable();
    for parallelism in [1, 3, 4, 2] {
        let out = TransactionalCollectingSink::new();
        let (env, controls) = keyed_job(
            parallelism,
            &dir.path().join(format!("restored-{parallelism}")),
            &out,
        );
        env.restore_from(&checkpoint);
        let result = run_to_end(&env, &controls);
        assert!(result.restarts.is_empty());
        // The restored sink commits the checkpoint's transactions again, then
        // the rest: every record exactly once, and each key's running sums those
        // of a failure-free run (a record replayed at the wrong subtask would
        // miss its key's restored sum, or overtake its key's earlier records).
        let mut committed = out.committed();
        committed.sort_unstable();
        assert_eq!(committed.len(), expected.len(), "parallelism {parallelism}");
        assert!(committed == expected, "parallelism {parallelism}");
    }
}

#[test]
fn a_rebalanced_unaligned_checkpoint_at_two_restores_at_one_and_three() {
    let dir = tempfile::tempdir().unwrap();
    let first = TransactionalCollectingSink::new();
    let (env, controls) = rebalance_job(2, &dir.path().join("run"), &first);
    let (checkpoint, persisted) =
        checkpoint_records_in_flight(&env, &controls, &dir.path().join("run"));
    assert_records_in_flight(persisted);
    for parallelism in [1, 3] {
        let out = TransactionalCollectingSink::new();
        let (env, controls) = rebalance_job(
            parallelism,
            &dir.path().join(format!("restored-{parallelism}")),
            &out,
        );
        env.restore_from(&checkpoint);
        let result = run_to_end(&env, &controls);
        assert!(result.restarts.is_empty());
        let mut committed = out.committed();
        committed.sort_unstable();
        assert_eq!(committed.len() as u64, RECORDS, "parallelism {parallelism}");
        assert!(
            committed == (0..RECORDS).collect::<Vec<_>>(),
            "parallelism {parallelism}"
        );
    }
}

#[test]
fn an_event_time_window_checkpoint_at_two_restores_at_one_three_and_four_with_every_window_exact() {
    let dir = tempfile::tempdir().unwrap();
    let first = TransactionalCollectingSink::new();
    let (env, controls) = window_job(2, &dir.path().join("run"), &first);
    let (checkpoint, persisted) =
        checkpoint_records_in_flight(&env, &controls, &dir.path().join("run"));
    assert_records_in_flight(persisted);
    // Each half block is one window of one key; none may be lost to a watermark
    // replayed too high (its records would be late) or never fire (end of input).
    let mut expected: Vec<u64> = (0..RECORDS / (BLOCK / 2))
        .map(|w| (w * BLOCK / 2..(w + 1) * BLOCK / 2).sum())
        .collect();
    expected.sort_unstable();
    // At 1 one reader reads both saved splits in turn (a batch each): with one
    // watermark generator it would see time jump between them and drop the
    // records of the split behind as late; its watermarks are per split.
    for parallelism in [1, 3, 4] {
        let out = TransactionalCollectingSink::new();
        let (env, controls) = window_job(
            parallelism,
            &dir.path().join(format!("restored-{parallelism}")),
            &out,
        );
        env.restore_from(&checkpoint);
        let result = run_to_end(&env, &controls);
        assert!(result.restarts.is_empty());
        let mut committed = out.committed();
        committed.sort_unstable();
        assert_eq!(committed.len(), expected.len(), "parallelism {parallelism}");
        assert!(committed == expected, "parallelism {parallelism}");
    }
}
