//! Files across injected failures: the exactly-once file sink's committed part files
//! hold every record exactly once, nothing uncommitted is left behind, and the file
//! source resumes from its checkpointed offset.

// Only `wait_until` is used here, not the service macros.
#[allow(unused_macros)]
mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::wait_until;
use flink_connectors::file::{FileSink, FileSource};
use flink_core::sources::{RateLimiterStrategy, SequenceSource};
use flink_runtime::prelude::*;

const RECORDS: u64 = 60_000;

/// Lines of the committed parts, and the names of hidden (uncommitted) files.
fn read_parts(dir: &std::path::Path) -> (Vec<u64>, Vec<String>) {
    let (mut lines, mut hidden) = (Vec::new(), Vec::new());
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') {
            hidden.push(name);
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap();
        lines.extend(text.lines().map(|l| l.parse::<u64>().unwrap()));
    }
    lines.sort_unstable();
    (lines, hidden)
}

fn run(points: HashSet<u64>, checkpoints: bool) -> (Vec<u64>, Vec<String>, usize) {
    let out = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    if checkpoints {
        env.enable_checkpointing(Duration::from_millis(5))
            .set_storage_dir(state.path());
    }
    env.set_restart_strategy(RestartStrategy::FixedDelay {
        attempts: 20,
        delay: Duration::ZERO,
    });
    let fired = Arc::new(Mutex::new(HashSet::new()));
    let source = SequenceSource::range(0, RECORDS - 1)
        .rate_limited(RateLimiterStrategy::per_second(300_000.0).unwrap());
    env.from_source(source, "Sequence")
        .map(move |x: u64| {
            if points.contains(&x) && fired.lock().unwrap().insert(x) {
                panic!("injected failure at {x}");
            }
            x
        })
        .rebalance()
        .sink_to(
            FileSink::<u64>::text(out.path())
                .max_part_size(8 * 1024)
                .exactly_once(),
        );
    let result = env.execute("exactly-once files").expect("the job recovers");
    let (lines, hidden) = read_parts(out.path());
    (lines, hidden, result.restarts.len())
}

#[test]
fn committed_parts_hold_every_record_once_across_ten_failures() {
    let points: HashSet<u64> = (1..=10).map(|i| i * 5_431 % RECORDS).collect();
    let (lines, hidden, restarts) = run(points, true);
    assert!(restarts >= 1);
    assert!(hidden.is_empty(), "uncommitted files left: {hidden:?}");
    assert_eq!(lines, (0..RECORDS).collect::<Vec<_>>());
}

#[test]
fn without_checkpoints_the_parts_are_committed_at_the_end() {
    let (lines, hidden, restarts) = run(HashSet::new(), false);
    assert_eq!(restarts, 0);
    assert!(hidden.is_empty(), "{hidden:?}");
    assert_eq!(lines, (0..RECORDS).collect::<Vec<_>>());
}

#[test]
fn the_file_source_resumes_at_its_checkpointed_offset() {
    let input = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let (files, per_file) = (6u64, 5_000u64);
    for f in 0..files {
        let text: String = (0..per_file)
            .map(|i| format!("{}\n", f * per_file + i))
            .collect();
        std::fs::write(input.path().join(format!("in-{f}.txt")), text).unwrap();
    }
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.enable_checkpointing(Duration::from_millis(5))
        .set_storage_dir(state.path());
    env.set_restart_strategy(RestartStrategy::FixedDelay {
        attempts: 20,
        delay: Duration::ZERO,
    });
    let points: HashSet<u64> = (1..=8).map(|i| i * 3_517 % (files * per_file)).collect();
    let fired = Arc::new(Mutex::new(HashSet::new()));
    let seen = fired.clone();
    let source = FileSource::text_lines(input.path())
        .rate_limited(RateLimiterStrategy::per_second(150_000.0).unwrap());
    let out = TransactionalCollectingSink::new();
    env.from_source(source, "Lines")
        .map(move |line: String| {
            let x: u64 = line.parse().unwrap();
            if points.contains(&x) && seen.lock().unwrap().insert(x) {
                panic!("injected failure at {x}");
            }
            x
        })
        .rebalance()
        .sink_to(out.clone());
    let result = env.execute("file source").expect("the job recovers");
    assert_eq!(fired.lock().unwrap().len(), 8);
    // Several failures, each after thousands of records at 5 ms checkpoints: some
    // restart resumes mid-input, which a reader starting over would duplicate.
    assert!(
        result
            .restarts
            .iter()
            .any(|r| r.restored_checkpoint.is_some()),
        "{:#?}",
        result.restarts
    );
    let mut committed = out.committed();
    committed.sort_unstable();
    assert_eq!(committed, (0..files * per_file).collect::<Vec<_>>());
}

/// Sequence (parallelism 1, uid "numbers") -> rebalance -> exactly-once files at
/// `sink_parallelism` (uid "files"), the source paced at `per_second`.
fn numbers_to_files(
    out: &std::path::Path,
    state: &std::path::Path,
    sink_parallelism: usize,
    per_second: f64,
) -> StreamExecutionEnvironment {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(sink_parallelism);
    // Only savepoints: no periodic checkpoint within the test.
    env.enable_checkpointing(Duration::from_secs(3600))
        .set_storage_dir(state);
    let numbers = SequenceSource::range(0, RECORDS - 1)
        .rate_limited(RateLimiterStrategy::per_second(per_second).unwrap());
    env.from_source(numbers, "Sequence")
        .set_parallelism(1)
        .uid("numbers")
        .rebalance()
        .sink_to(
            FileSink::<u64>::text(out)
                .max_part_size(8 * 1024)
                .exactly_once(),
        )
        .uid("files");
    env
}

/// Whether every one of `subtasks` has a hidden in-progress part in `dir`.
fn each_has_an_in_progress_part(dir: &std::path::Path, subtasks: usize) -> bool {
    let names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    (0..subtasks).all(|s| {
        let prefix = format!(".part-{s}-");
        names
            .iter()
            .any(|n| n.starts_with(&prefix) && n.ends_with(".inprogress"))
    })
}

#[test]
fn a_restore_at_a_lower_parallelism_cleans_up_after_the_vanished_subtasks() {
    let out = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let env = numbers_to_files(out.path(), state.path(), 3, 20_000.0);
    let client = env.execute_async("files at 3").unwrap();
    let savepoint = client
        .trigger_savepoint(state.path().join("savepoints"))
        .expect("the savepoint completes");
    // Records after the savepoint, in every subtask's in-progress part: the restored
    // job replays them, so these parts must go, also those of subtasks 1 and 2, which
    // do not exist at parallelism 1.
    wait_until("an in-progress part in each subtask", || {
        each_has_an_in_progress_part(out.path(), 3)
    });
    client.cancel();
    let _ = client.wait();

    // Rate limited as before (the savepoint holds a rate-limited source's position),
    // but not slowed.
    let env = numbers_to_files(out.path(), state.path(), 1, 10_000_000.0);
    env.restore_from(&savepoint);
    env.execute("files at 1")
        .expect("the restored job runs to its end");
    let (lines, hidden) = read_parts(out.path());
    assert_eq!(
        hidden,
        Vec::<String>::new(),
        "uncommitted parts left behind"
    );
    assert_eq!(lines, (0..RECORDS).collect::<Vec<_>>());
}
