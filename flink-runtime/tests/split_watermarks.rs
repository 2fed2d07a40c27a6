//! Watermarks per source split across a restore at a lower parallelism: an
//! event-time job (a sequence source making its watermarks per split -> key_by ->
//! tumbling windows) checkpointed (aligned) at parallelism 2, cancelled, and
//! restored at 1 and 3 fires every window exactly once with its exact sum. At 1
//! one reader takes over both saved splits and reads them in turn; with one
//! watermark generator the split behind in event time would have its records
//! dropped as late. No timing assertions: timing only decides where the
//! checkpoint falls.

use std::path::Path;
use std::time::Duration;

use flink_core::operators::LATE_RECORDS_DROPPED;
use flink_core::sources::SequenceSource;
use flink_core::watermark::WatermarkStrategy;
use flink_core::windows::TumblingEventTimeWindows;
use flink_runtime::checkpoint::latest_checkpoint;
use flink_runtime::prelude::*;

mod common;

/// Records; at parallelism 2 each source subtask reads half of them, so the two
/// splits are 100 s of event time apart.
const RECORDS: u64 = 200_000;
/// Numbers per key; a window is half a block of one key.
const BLOCK: u64 = 100;
/// The job's name: its checkpoints go to `<dir>/<JOB>/chk-<n>`.
const JOB: &str = "windows";

/// sequence 0..RECORDS with timestamps (x ms, monotonous watermarks per split,
/// after every batch) -> map, sleeping now and then if `slow` -> key_by block ->
/// tumbling windows of half a block summing -> transactional sink.
fn job(
    parallelism: usize,
    dir: &Path,
    out: &TransactionalCollectingSink<u64>,
    slow: bool,
) -> StreamExecutionEnvironment {
    let env = common::rescale::environment(parallelism, dir);
    let numbers = SequenceSource::range(0, RECORDS - 1)
        .with_watermarks(WatermarkStrategy::monotonous(|x: &u64| *x as i64))
        .watermark_interval(Duration::ZERO);
    env.from_source(numbers, "numbers")
        .uid("numbers")
        .map(move |x: u64| {
            if slow && x.is_multiple_of(200) {
                std::thread::sleep(Duration::from_millis(1));
            }
            x
        })
        .uid("pace")
        .key_by(|x: &u64| x / BLOCK)
        .window(TumblingEventTimeWindows::of(Duration::from_millis(
            BLOCK / 2,
        )))
        .reduce(|a: u64, b: u64| a + b)
        .uid("windows")
        .sink_to(out.clone())
        .uid("sink");
    env
}

/// Every window's sum, sorted.
fn expected_windows() -> Vec<u64> {
    let half = BLOCK / 2;
    let mut sums: Vec<u64> = (0..RECORDS / half)
        .map(|w| (w * half..(w + 1) * half).sum())
        .collect();
    sums.sort_unstable();
    sums
}

/// Runs the slow job at parallelism 2 with aligned checkpoints, cancels it once
/// it committed a checkpoint's output, and restores its latest checkpoint at
/// `parallelism` into the same sink.
fn restore_at(parallelism: usize) {
    let dir = tempfile::tempdir().unwrap();
    let checkpoints = dir.path().join("checkpoints");
    let out = TransactionalCollectingSink::new();
    let env = job(2, &checkpoints, &out, true);
    let client = env.execute_async(JOB).unwrap();
    common::poll_until("a first commit", || out.committed_transactions() > 0);
    client.cancel();
    assert!(matches!(client.wait(), Err(JobError::Cancelled { .. })));
    let checkpoint = latest_checkpoint(&checkpoints, JOB)
        .unwrap()
        .expect("a completed checkpoint");
    let windows = expected_windows();
    let before = out.committed().len();
    assert!(
        0 < before && before < windows.len(),
        "the checkpoint fell mid-run: {before} windows committed"
    );
    let env = job(parallelism, &checkpoints, &out, false);
    env.restore_from(&checkpoint);
    let result = env.execute(JOB).expect("the restored job runs to its end");
    assert!(result.restarts.is_empty());
    let late = result
        .operator("Window Reduce")
        .and_then(|o| o.custom(LATE_RECORDS_DROPPED));
    assert_eq!(late, Some(0), "parallelism {parallelism}");
    // Over both runs (the sink is shared; a transaction committed twice counts
    // once) every window exactly once: none lost as late, none fired twice.
    let mut committed = out.committed();
    committed.sort_unstable();
    assert_eq!(committed.len(), windows.len(), "parallelism {parallelism}");
    assert!(committed == windows, "parallelism {parallelism}");
}

#[test]
fn event_time_windows_checkpointed_at_two_restore_at_one_with_every_window_exact() {
    restore_at(1);
}

#[test]
fn event_time_windows_checkpointed_at_two_restore_at_three_with_every_window_exact() {
    restore_at(3);
}
