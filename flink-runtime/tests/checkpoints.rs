//! Checkpoints, restarts and exactly-once output, proven by injected failures: a
//! keyed job whose user function panics at 20 seeded record positions must commit
//! exactly what a run without failures commits. No timing assertions: the job's
//! timing only decides which checkpoint each restart resumes from.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flink_core::async_io::AsyncOptions;
use flink_core::clock::ManualClock;
use flink_core::sources::{RateLimiterStrategy, SequenceSource};
use flink_runtime::prelude::*;

/// Records in the job; a multiple of 100 × 4, so that at parallelism 1, 2 and 4 every
/// block of 100 consecutive numbers (one key) is read by one source instance, in
/// order, and each key's running sum is the same in every run.
const RECORDS: u64 = 96_000;
const BLOCK: u64 = 100;

/// Each key's running sum over its records, as a failure-free run emits it.
fn expected() -> Vec<(u64, u64, u64)> {
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

/// The job, its sink, and the failure points that fired.
type KeyedJob = (
    StreamExecutionEnvironment,
    TransactionalCollectingSink<(u64, u64, u64)>,
    Arc<Mutex<HashSet<u64>>>,
);

/// sequence -> map (panics once at each failure point) -> key_by -> running sum per
/// key -> transactional collecting sink.
/// With `unaligned`, its checkpoints are unaligned.
fn keyed_job(
    parallelism: usize,
    points: HashSet<u64>,
    dir: &std::path::Path,
    unaligned: bool,
) -> KeyedJob {
    keyed_job_full(
        parallelism,
        points,
        dir,
        CheckpointingMode::ExactlyOnce,
        false,
        unaligned,
    )
}

/// [`keyed_job`] in `mode`, with an async call after the map if `with_async`.
fn keyed_job_with(
    parallelism: usize,
    points: HashSet<u64>,
    dir: &std::path::Path,
    mode: CheckpointingMode,
    with_async: bool,
) -> KeyedJob {
    keyed_job_full(parallelism, points, dir, mode, with_async, false)
}

/// [`keyed_job_with`], unaligned if `unaligned`.
fn keyed_job_full(
    parallelism: usize,
    points: HashSet<u64>,
    dir: &std::path::Path,
    mode: CheckpointingMode,
    with_async: bool,
    unaligned: bool,
) -> KeyedJob {
    let fired = Arc::new(Mutex::new(HashSet::new()));
    let seen = fired.clone();
    let out = TransactionalCollectingSink::new();
    let fails = move |x: u64| points.contains(&x) && seen.lock().unwrap().insert(x);
    let env = keyed_job_failing(parallelism, dir, (mode, with_async, unaligned), &out, fails);
    (env, out, fired)
}

/// The keyed job of [`keyed_job_full`] (`mode`, with an async call, unaligned)
/// into `out`, whose map panics at each record `fails` (a copy per map instance
/// and attempt) says.
fn keyed_job_failing<F>(
    parallelism: usize,
    dir: &std::path::Path,
    (mode, with_async, unaligned): (CheckpointingMode, bool, bool),
    out: &TransactionalCollectingSink<(u64, u64, u64)>,
    mut fails: F,
) -> StreamExecutionEnvironment
where
    F: FnMut(u64) -> bool + Clone + Send + Sync + 'static,
{
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(parallelism);
    env.enable_checkpointing(Duration::from_millis(5))
        .set_mode(mode)
        .set_storage_dir(dir)
        .enable_unaligned_checkpoints(unaligned);
    env.set_restart_strategy(RestartStrategy::FixedDelay {
        attempts: 25,
        delay: Duration::ZERO,
    });
    // Slow enough that checkpoints complete while the job runs.
    let source = SequenceSource::range(0, RECORDS - 1)
        .rate_limited(RateLimiterStrategy::per_second(400_000.0).unwrap());
    let mut mapped = env.from_source(source, "Sequence").map(move |x: u64| {
        if fails(x) {
            panic!("injected failure at record {x}");
        }
        (x / BLOCK, x)
    });
    if with_async {
        // Ordered, so that each key's records keep their order (and running sums).
        mapped = mapped.async_function(
            |r: (u64, u64)| async move { Ok::<_, &'static str>(r) },
            AsyncOptions::new().ordered(true).capacity(64),
        );
    }
    mapped
        .key_by(|r: &(u64, u64)| r.0)
        .process(
            |key: &u64,
             (_, x): (u64, u64),
             sum: &mut ValueState<u64>,
             out: &mut dyn Collector<(u64, u64, u64)>| {
                let next = sum.value().copied().unwrap_or(0) + x;
                sum.update(next);
                out.collect((*key, x, next));
            },
        )
        .sink_to(out.clone());
    env
}

fn sorted(mut v: Vec<(u64, u64, u64)>) -> Vec<(u64, u64, u64)> {
    v.sort_unstable();
    v
}

fn twenty_failures_commit_exactly_the_failure_free_output(
    parallelism: usize,
    seed: u64,
    unaligned: bool,
) {
    let dir = tempfile::tempdir().unwrap();
    let points = common::failure_points(seed, 20, 0..RECORDS);
    let (env, out, fired) = keyed_job(parallelism, points.clone(), dir.path(), unaligned);
    let result = env
        .execute("twenty failures")
        .expect("the job recovers from every failure");
    assert_eq!(*fired.lock().unwrap(), points, "every failure fired once");
    // Failures of several subtasks within one attempt cause one restart.
    assert!(
        (1..=20).contains(&result.restarts.len()),
        "{:#?}",
        result.restarts
    );
    for restart in &result.restarts {
        assert!(
            restart.cause.contains("injected failure"),
            "{}",
            restart.cause
        );
    }
    assert_eq!(
        sorted(out.committed()),
        expected(),
        "committed output at p={parallelism}"
    );
    // Counts cover every attempt: what was replayed after a restore is read again.
    assert!(result.records_read_by_sources() >= RECORDS);
    // The records the failures caught between operators are exactly what the
    // counts of every attempt show as sent but not received (the last attempt
    // delivered everything it sent).
    let count = |name: &str| result.operator(name).expect(name).clone();
    let (source, map, process, sink) = (
        count("Sequence"),
        count("Map"),
        count("Keyed Process"),
        count("Sink"),
    );
    // Signed: after an unaligned restore an operator receives replayed records
    // its upstream did not send again, so a difference may be negative.
    let sent_not_received = |out: u64, received: u64| i128::from(out) - i128::from(received);
    let between = sent_not_received(source.records_out, map.records_in)
        + sent_not_received(map.records_out, process.records_in)
        + sent_not_received(process.records_out, sink.records_in);
    let lost: i128 = result
        .restarts
        .iter()
        .map(|r| i128::from(r.lost_in_flight))
        .sum();
    if unaligned {
        // Records in flight that an unaligned checkpoint stored are received again
        // after the restore (replayed from its channel state) without being sent
        // again, so fewer show as sent but not received than were abandoned.
        assert!(between <= lost, "{between} <= {lost}");
    } else {
        assert_eq!(lost, between);
    }
    let counts = result.checkpoints.expect("checkpointing was on");
    assert!(
        counts.completed >= 1,
        "at least the final checkpoint completed"
    );
}

#[test]
fn twenty_failures_at_parallelism_1() {
    twenty_failures_commit_exactly_the_failure_free_output(1, 7, false);
}

#[test]
fn twenty_failures_at_parallelism_2() {
    twenty_failures_commit_exactly_the_failure_free_output(2, 11, false);
}

#[test]
fn twenty_failures_at_parallelism_4() {
    twenty_failures_commit_exactly_the_failure_free_output(4, 13, false);
}

#[test]
fn twenty_failures_unaligned_at_parallelism_1() {
    twenty_failures_commit_exactly_the_failure_free_output(1, 23, true);
}

#[test]
fn twenty_failures_unaligned_at_parallelism_2() {
    twenty_failures_commit_exactly_the_failure_free_output(2, 29, true);
}

#[test]
fn twenty_failures_unaligned_at_parallelism_4() {
    twenty_failures_commit_exactly_the_failure_free_output(4, 31, true);
}

/// The id of the newest completed checkpoint under `dir` (0 for none).
fn newest_completed_checkpoint(dir: &std::path::Path) -> u64 {
    let jobs = std::fs::read_dir(dir).into_iter().flatten().flatten();
    jobs.flat_map(|job| {
        std::fs::read_dir(job.path())
            .into_iter()
            .flatten()
            .flatten()
    })
    .filter(|chk| chk.path().join("_metadata").exists())
    .filter_map(|chk| chk.file_name().to_str()?.strip_prefix("chk-")?.parse().ok())
    .max()
    .unwrap_or(0)
}

/// Fails the map at the first record at or past the next failure point once a
/// checkpoint completed after this map instance started (so in its attempt): the
/// transaction a sink writer begins first in an attempt (not after a barrier) is
/// in no checkpoint before it is pre-committed, so a failure before any
/// checkpoint of the attempt completed would leave it neither committed nor
/// aborted (as in Flink, where the sink's own cleanup catches it: the file sink's
/// leftovers, Kafka's fencing).
#[derive(Clone)]
struct AfterACheckpoint {
    dir: std::path::PathBuf,
    /// The failure points still to fire, ascending; shared by every copy.
    points: Arc<Mutex<Vec<u64>>>,
    /// The newest completed checkpoint when this copy first ran.
    started_after: Option<u64>,
}

impl AfterACheckpoint {
    fn fails(&mut self, x: u64) -> bool {
        let dir = self.dir.clone();
        let started_after = *self
            .started_after
            .get_or_insert_with(|| newest_completed_checkpoint(&dir));
        let mut points = self.points.lock().unwrap();
        if points.first().is_none_or(|&next| x < next)
            || newest_completed_checkpoint(&self.dir) <= started_after
        {
            return false;
        }
        points.remove(0);
        true
    }
}

/// The keyed job at `parallelism` with 20 failures, each after a checkpoint of its
/// attempt completed: the sink's ledger adds up exactly (every transaction begun
/// was committed or aborted) and the committed output is exact.
fn every_transaction_begun_is_committed_or_aborted(parallelism: usize, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut points: Vec<u64> = common::failure_points(seed, 20, 0..RECORDS / 2)
        .into_iter()
        .collect();
    points.sort_unstable();
    let points = Arc::new(Mutex::new(points));
    let mut injector = AfterACheckpoint {
        dir: dir.path().into(),
        points: points.clone(),
        started_after: None,
    };
    let out = TransactionalCollectingSink::new();
    let env = keyed_job_failing(
        parallelism,
        dir.path(),
        (CheckpointingMode::ExactlyOnce, false, false),
        &out,
        move |x| injector.fails(x),
    );
    let result = env.execute("ledger").expect("the job recovers");
    assert!(points.lock().unwrap().is_empty(), "all 20 failures fired");
    let restarts = result.restarts.len();
    assert!((1..=20).contains(&restarts), "{restarts}");
    assert_eq!(sorted(out.committed()), expected(), "p={parallelism}");
    let (begun, committed, aborted) = (
        out.begun_transactions(),
        out.committed_transactions(),
        out.aborted_transactions(),
    );
    assert_eq!(
        begun,
        committed + aborted,
        "p={parallelism}: {begun} begun, {committed} committed, {aborted} aborted"
    );
    // Each failed attempt's writers were dropped with the transaction they began
    // on the last barrier open.
    assert!(
        aborted >= restarts * parallelism,
        "{aborted} aborted, {restarts} restarts"
    );
}

#[test]
fn every_transaction_begun_is_committed_or_aborted_at_parallelism_1() {
    every_transaction_begun_is_committed_or_aborted(1, 37);
}

#[test]
fn every_transaction_begun_is_committed_or_aborted_at_parallelism_2() {
    every_transaction_begun_is_committed_or_aborted(2, 41);
}

#[test]
fn an_async_call_in_the_chain_loses_and_repeats_nothing_across_failures() {
    // The async operator completes its calls in flight before each barrier.
    let dir = tempfile::tempdir().unwrap();
    let points = common::failure_points(17, 20, 0..RECORDS);
    let (env, out, fired) = keyed_job_with(
        2,
        points.clone(),
        dir.path(),
        CheckpointingMode::ExactlyOnce,
        true,
    );
    env.execute("async").expect("the job recovers");
    assert_eq!(*fired.lock().unwrap(), points);
    assert_eq!(sorted(out.committed()), expected());
}

#[test]
fn at_least_once_commits_every_record_at_least_once() {
    let dir = tempfile::tempdir().unwrap();
    let (env, out, _) = keyed_job_with(
        4,
        HashSet::new(),
        dir.path(),
        CheckpointingMode::AtLeastOnce,
        false,
    );
    env.execute("at least once, no failure").unwrap();
    assert_eq!(
        sorted(out.committed()),
        expected(),
        "without failures: exact"
    );

    let dir = tempfile::tempdir().unwrap();
    let points = common::failure_points(19, 20, 0..RECORDS);
    let (env, out, _) =
        keyed_job_with(4, points, dir.path(), CheckpointingMode::AtLeastOnce, false);
    env.execute("at least once").expect("the job recovers");
    let seen: HashSet<u64> = out.committed().iter().map(|&(_, x, _)| x).collect();
    assert_eq!(
        seen.len() as u64,
        RECORDS,
        "every record committed at least once"
    );
}

#[test]
fn barriers_reach_operators_behind_side_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.enable_checkpointing(Duration::from_millis(2))
        .set_storage_dir(dir.path());
    let odd = OutputTag::<u64>::new("odd");
    let tag = odd.clone();
    let source = SequenceSource::range(0, 19_999)
        .rate_limited(RateLimiterStrategy::per_second(200_000.0).unwrap());
    let even = env
        .from_source(source, "Sequence")
        .key_by(|x: &u64| x % 7)
        .process_with_context(
            move |_k: &u64, x: u64, _s: &mut ValueState<u8>, ctx: &mut ProcessContext<u64>| {
                if x % 2 == 1 {
                    ctx.output(&tag, x);
                } else {
                    ctx.collect(x);
                }
            },
        );
    let evens = TransactionalCollectingSink::new();
    let odds = TransactionalCollectingSink::new();
    even.sink_to(evens.clone());
    // The side output crosses a network edge (rebalanced to another task).
    even.side_output(&odd)
        .rebalance()
        .map(|x: u64| x)
        .sink_to(odds.clone());
    let client = env.execute_async("side outputs").unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(client.wait());
    });
    let result = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the job ends (barriers reach every channel)");
    let counts = result.unwrap().checkpoints.unwrap();
    assert!(counts.completed >= 1);
    let mut all: Vec<u64> = evens.committed();
    all.extend(odds.committed());
    all.sort_unstable();
    assert_eq!(all, (0..20_000).collect::<Vec<_>>());
}

#[test]
fn a_failure_free_run_commits_the_expected_output() {
    let dir = tempfile::tempdir().unwrap();
    let (env, out, _) = keyed_job(2, HashSet::new(), dir.path(), false);
    let result = env.execute("no failures").unwrap();
    assert!(result.restarts.is_empty());
    assert_eq!(sorted(out.committed()), expected());
}

#[test]
fn exhausted_restarts_fail_the_job_naming_the_operator() {
    let dir = tempfile::tempdir().unwrap();
    let env = StreamExecutionEnvironment::new();
    env.enable_checkpointing(Duration::from_millis(5))
        .set_storage_dir(dir.path());
    env.set_restart_strategy(RestartStrategy::FixedDelay {
        attempts: 2,
        delay: Duration::ZERO,
    });
    env.from_sequence(1, 10)
        .map(|x: u64| -> u64 { panic!("always fails at {x}") })
        .name("Doomed Map")
        .collect_vec();
    match env.execute("doomed") {
        Err(JobError::OperatorFailed {
            operator, message, ..
        }) => {
            assert_eq!(operator, "Doomed Map");
            assert!(message.contains("always fails"), "{message}");
        }
        other => panic!("expected the operator's failure, got {other:?}"),
    }
}

#[test]
fn without_checkpointing_a_failure_fails_the_job_at_once() {
    let env = StreamExecutionEnvironment::new();
    let runs = Arc::new(Mutex::new(0));
    let count = runs.clone();
    env.from_sequence(1, 10)
        .map(move |x: u64| -> u64 {
            if x == 1 {
                *count.lock().unwrap() += 1;
            }
            panic!("boom")
        })
        .collect_vec();
    assert!(matches!(
        env.execute("no restart"),
        Err(JobError::OperatorFailed { .. })
    ));
    assert_eq!(*runs.lock().unwrap(), 1, "no restart without a strategy");
}

#[test]
fn invalid_checkpoint_settings_fail_the_build() {
    let env = StreamExecutionEnvironment::new();
    env.enable_checkpointing(Duration::ZERO);
    env.from_sequence(1, 10).collect_vec();
    let err = env.execute("bad interval").unwrap_err();
    assert!(err.to_string().contains("checkpointing: interval"), "{err}");

    let env = StreamExecutionEnvironment::new();
    env.enable_checkpointing(Duration::from_secs(1))
        .set_max_concurrent_checkpoints(2);
    env.from_sequence(1, 10).collect_vec();
    assert!(matches!(
        env.execute("two at once"),
        Err(JobError::Graph(_))
    ));

    let env = StreamExecutionEnvironment::new();
    env.set_restart_strategy(RestartStrategy::FailureRate {
        max_failures_per_interval: 0,
        failure_rate_interval: Duration::from_secs(1),
        delay: Duration::ZERO,
    });
    env.from_sequence(1, 10).collect_vec();
    let err = env.execute("bad strategy").unwrap_err();
    assert!(err.to_string().contains("restart strategy"), "{err}");
}

/// Truncates every task file of every checkpoint under `dir`; true if there was one.
fn truncate_checkpoint_files(dir: &std::path::Path) -> bool {
    let mut any = false;
    for job in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for chk in std::fs::read_dir(job.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            for file in std::fs::read_dir(chk.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = file.file_name();
                if name.to_string_lossy().starts_with("task-") {
                    let len = file.metadata().unwrap().len();
                    let f = std::fs::OpenOptions::new()
                        .write(true)
                        .open(file.path())
                        .unwrap();
                    f.set_len(len / 2).unwrap();
                    any = true;
                }
            }
        }
    }
    any
}

/// Whether a completed checkpoint (its `_metadata`) exists under `dir`.
fn completed_checkpoint_exists(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|job| {
            std::fs::read_dir(job.path())
                .into_iter()
                .flatten()
                .flatten()
                .any(|chk| chk.path().join("_metadata").exists())
        })
}

#[test]
fn a_truncated_checkpoint_fails_the_restore_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    // The job's clock only moves when this test moves it: exactly one periodic
    // checkpoint is triggered, so the one that is damaged is the latest.
    let clock = Arc::new(ManualClock::new());
    let env = StreamExecutionEnvironment::new();
    env.set_clock(clock.clone());
    env.enable_checkpointing(Duration::from_secs(1))
        .set_storage_dir(&path);
    env.set_restart_strategy(RestartStrategy::FixedDelay {
        attempts: 3,
        delay: Duration::ZERO,
    });
    let out = TransactionalCollectingSink::new();
    let damaged = Arc::new(AtomicBool::new(false));
    let done = damaged.clone();
    env.from_sequence(0, 50_000_000)
        .map(move |x: u64| {
            if x == 1 {
                clock.advance(Duration::from_secs(1));
            }
            if !done.load(Ordering::SeqCst) && completed_checkpoint_exists(&path) {
                assert!(truncate_checkpoint_files(&path));
                done.store(true, Ordering::SeqCst);
                panic!("injected failure after damaging the checkpoint");
            }
            x
        })
        .key_by(|x: &u64| x % 10)
        .reduce(|a: u64, b: u64| a.max(b))
        .sink_to(out.clone());
    let err = env.execute("damaged").unwrap_err();
    assert!(
        damaged.load(Ordering::SeqCst),
        "a checkpoint completed and was damaged"
    );
    let message = err.to_string();
    assert!(
        message.contains("cannot restore the latest checkpoint"),
        "{message}"
    );
    assert!(message.contains("truncated"), "{message}");
    // The restore failed before any task started again: what is committed is at most
    // the one transaction the damaged checkpoint's completion committed.
    assert!(out.committed_transactions() <= 1);
}

#[test]
fn an_iterator_source_refuses_to_restart_instead_of_emitting_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let env = StreamExecutionEnvironment::new();
    env.enable_checkpointing(Duration::from_millis(5))
        .set_storage_dir(dir.path());
    env.set_restart_strategy(RestartStrategy::FixedDelay {
        attempts: 1,
        delay: Duration::ZERO,
    });
    let fired = Arc::new(AtomicBool::new(false));
    env.from_iter(0..100u64)
        .map(move |x: u64| {
            if x == 50 && !fired.swap(true, Ordering::SeqCst) {
                panic!("injected failure");
            }
            x
        })
        .sink_to(TransactionalCollectingSink::new());
    match env.execute("iterator") {
        Err(JobError::OperatorFailed { message, .. }) => {
            assert!(
                message.contains("iterator was consumed by an earlier run"),
                "{message}"
            );
        }
        other => panic!("expected the source to refuse, got {other:?}"),
    }
}

#[test]
fn a_stopped_job_commits_everything_its_sources_read() {
    let dir = tempfile::tempdir().unwrap();
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.enable_checkpointing(Duration::from_millis(5))
        .set_storage_dir(dir.path());
    let source = SequenceSource::unbounded()
        .rate_limited(RateLimiterStrategy::per_second(100_000.0).unwrap());
    let out = TransactionalCollectingSink::new();
    env.from_source(source, "Sequence")
        .key_by(|x: &u64| x % 10)
        .map(|x: u64| x)
        .sink_to(out.clone());
    let client = env.execute_async("stopped").unwrap();
    // Wait (bounded) until some checkpoints committed output, then stop.
    for _ in 0..3000 {
        if out.committed_transactions() >= 4 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        out.committed_transactions() >= 4,
        "checkpoints committed output"
    );
    client.stop();
    let result = client.wait().unwrap();
    assert!(result.stopped);
    let committed = out.committed();
    let distinct: HashSet<u64> = committed.iter().copied().collect();
    assert_eq!(distinct.len(), committed.len(), "no duplicates");
    assert_eq!(
        committed.len() as u64,
        result.records_read_by_sources(),
        "nothing lost"
    );
}
