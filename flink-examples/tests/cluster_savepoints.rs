//! Savepoints of a job spread over real processes (issues 10 and 13): the
//! `resumable_sum` example (sequence -> map -> key_by -> running sum -> exactly-once
//! part files) run by the launcher as 2 processes, asked for savepoints through its
//! `--savepoint-inbox` in process 1 (not the coordinating process 0): a bad target
//! is a clear error there and the job goes on; a savepoint mid-run and a stop with a
//! savepoint complete, and restore in 1 process and across 2 at another
//! parallelism with every key's running sum exactly that of a run without stops.
//! With `--windows`, a stop without drain across the 2 processes fires no window at
//! the stop, and the run restored from its savepoint writes every window once.
//! No timing assertions: the test waits for events (a completed checkpoint, an
//! answer file, the launcher's end); guard timeouts only prevent a hang.

#![cfg(target_os = "linux")]

mod common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use flink_runtime::cluster::launcher::{Launch, LaunchOutcome, launch};

const BIN: &str = env!("CARGO_BIN_EXE_resumable_sum");
const JOB: &str = "resumable-sum";
/// Enough for the first run (20,000 records/s) to still run after its asks.
const RECORDS: u64 = 200_000;
const GUARD: Duration = Duration::from_secs(180);

/// Every record with its key's running sum (keys are blocks of 100 numbers) in a run
/// without stops, sorted.
fn expected() -> Vec<String> {
    expected_between(&[0, 0], &[RECORDS, RECORDS])
}

/// As [`expected`], only the records `x` of source subtask `s` with `from[s] <= x <
/// to[s]` (the sequence is split in 2 contiguous halves, one per source subtask):
/// what a run between savepoints taken where the sources were at `from` and `to`
/// writes.
fn expected_between(from: &[u64; 2], to: &[u64; 2]) -> Vec<String> {
    let mut sum = 0;
    let mut lines: Vec<String> = (0..RECORDS)
        .filter_map(|x| {
            if x % 100 == 0 {
                sum = 0;
            }
            sum += x;
            let s = half(x);
            (from[s] <= x && x < to[s]).then(|| format!("{},{x},{sum}", x / 100))
        })
        .collect();
    lines.sort_unstable();
    lines
}

/// The source subtask that reads `x`.
fn half(x: u64) -> usize {
    usize::from(x >= RECORDS / 2)
}

/// Whether a checkpoint completed in `checkpoints`.
fn has_completed_checkpoint(checkpoints: &Path) -> bool {
    std::fs::read_dir(checkpoints.join(JOB)).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|e| e.path().join("_metadata").is_file())
    })
}

/// The job's arguments.
fn args(
    parallelism: usize,
    rate: &str,
    checkpoints: &Path,
    output: &Path,
    extra: &[&OsString],
) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec![
        "--records".into(),
        RECORDS.to_string().into(),
        "--parallelism".into(),
        parallelism.to_string().into(),
        // A rate-limited sequence restores only at the parallelism it was saved
        // with; the keyed sum and the sink rescale.
        "--source-parallelism".into(),
        "2".into(),
        "--rate".into(),
        rate.into(),
        "--checkpoint-dir".into(),
        checkpoints.into(),
        "--output-dir".into(),
        output.into(),
    ];
    a.extend(extra.iter().map(|&e| e.clone()));
    a
}

/// Runs the launcher on a thread; the receiver gets its outcome.
fn start(processes: usize, args: Vec<OsString>) -> mpsc::Receiver<LaunchOutcome> {
    let run = Launch {
        processes,
        program: BIN.into(),
        args,
        connect_timeout: Duration::from_secs(60),
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(launch(&run).expect("the launcher runs"));
    });
    rx
}

/// Asks job process `process` (through its inbox) for `request` as request number
/// `n`, and waits for its answer; the job must not end meanwhile.
fn ask(
    inbox: &Path,
    process: usize,
    n: usize,
    request: &str,
    job: &mpsc::Receiver<LaunchOutcome>,
) -> String {
    let temporary = inbox.join(format!("writing-{process}-{n}"));
    std::fs::write(&temporary, request).unwrap();
    std::fs::rename(&temporary, inbox.join(format!("request-{process}-{n}"))).unwrap();
    let answer = inbox.join(format!("answer-{process}-{n}"));
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(&answer) {
            return text;
        }
        assert!(started.elapsed() < GUARD, "no answer to {request:?}");
        if let Ok(outcome) = job.try_recv() {
            panic!("the job ended before answering {request:?}: {outcome:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The savepoint path of an `ok <path>` answer.
fn savepoint_of(answer: &str) -> PathBuf {
    let path = answer
        .strip_prefix("ok ")
        .unwrap_or_else(|| panic!("not a savepoint: {answer}"));
    PathBuf::from(path)
}

/// Every task file of the completed savepoint at `path` exists with its length,
/// for both subtasks of the source (written by both processes).
fn assert_complete(path: &Path) {
    let metadata = std::fs::read(path.join("_metadata")).expect("_metadata written");
    let json: serde_json::Value = serde_json::from_slice(&metadata).unwrap();
    let tasks = json["tasks"].as_array().unwrap();
    let subtasks: std::collections::BTreeSet<u64> = tasks
        .iter()
        .map(|t| t["subtask"].as_u64().unwrap())
        .collect();
    assert_eq!(subtasks, [0, 1].into(), "{path:?}: both processes' tasks");
    for t in tasks {
        let file = path.join(t["file"].as_str().unwrap());
        assert_eq!(
            std::fs::metadata(&file).unwrap().len(),
            t["len"].as_u64().unwrap(),
            "{file:?}"
        );
    }
}

/// The records of `lines`.
fn records(lines: &[String]) -> impl Iterator<Item = u64> + '_ {
    lines
        .iter()
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
}

/// Where the sources were when a run restored from a savepoint started, judged by
/// its output `lines`: each source subtask's smallest record (its end if none).
fn starts(lines: &[String]) -> [u64; 2] {
    let mut starts = [RECORDS / 2, RECORDS];
    for x in records(lines) {
        starts[half(x)] = starts[half(x)].min(x);
    }
    starts
}

/// Where the sources were when a run stopped, judged by its output `lines`: past
/// each source subtask's largest record (its start if none).
fn ends(lines: &[String]) -> [u64; 2] {
    let mut ends = [0, RECORDS / 2];
    for x in records(lines) {
        ends[half(x)] = ends[half(x)].max(x + 1);
    }
    ends
}

#[test]
fn savepoints_asked_for_in_process_1_span_both_processes_and_restore_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let (checkpoints, output, inbox, savepoints) = (
        path("checkpoints"),
        path("out"),
        path("inbox"),
        path("savepoints"),
    );
    std::fs::create_dir_all(&inbox).unwrap();
    let inbox_arg: OsString = inbox.clone().into();
    let job = start(
        2,
        args(
            2,
            "20000",
            &checkpoints,
            &output,
            &[&"--savepoint-inbox".into(), &inbox_arg],
        ),
    );
    let started = Instant::now();
    while !has_completed_checkpoint(&checkpoints) {
        assert!(started.elapsed() < GUARD, "no checkpoint completed");
        assert!(job.try_recv().is_err(), "the job ended early");
        std::thread::sleep(Duration::from_millis(5));
    }

    // Bad targets: an unknown scheme is refused in process 1 itself; a directory
    // under a regular file fails in process 0, whose answer comes back. The job
    // goes on.
    let answer = ask(&inbox, 1, 1, "trigger nope://bucket/sp", &job);
    assert!(
        answer.starts_with("error savepoint target nope://bucket/sp:"),
        "{answer}"
    );
    std::fs::write(path("a-file"), "in the way").unwrap();
    let blocked = path("a-file").join("savepoints");
    let answer = ask(
        &inbox,
        1,
        2,
        &format!("trigger {}", blocked.display()),
        &job,
    );
    assert!(answer.starts_with("error savepoint failed:"), "{answer}");

    // A savepoint mid-run, then a stop with one, both from process 1.
    let target = savepoints.display().to_string();
    let mid_run = savepoint_of(&ask(&inbox, 1, 3, &format!("trigger {target}"), &job));
    assert!(mid_run.starts_with(&savepoints), "{mid_run:?}");
    assert_complete(&mid_run);
    let stopped = savepoint_of(&ask(&inbox, 1, 4, &format!("stop {target}"), &job));
    assert_complete(&stopped);
    let outcome = job
        .recv_timeout(GUARD)
        .expect("the job ends after its stop");
    assert!(outcome.success(), "{outcome:?}");
    assert!(outcome.restarts.is_empty(), "{:?}", outcome.restarts);
    for process in 0..2 {
        let result = std::fs::read_to_string(inbox.join(format!("result-{process}"))).unwrap();
        assert_eq!(
            result,
            format!("stopped true savepoint {}", stopped.display()),
            "process {process}"
        );
    }
    // Exactly what the sources read before the stop is committed.
    let (before, leftovers) = common::committed(&output);
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let stopped_at = ends(&before);
    assert!(
        stopped_at[0] < RECORDS / 2 || stopped_at[1] < RECORDS,
        "stopped before the end: {stopped_at:?}"
    );
    assert_eq!(before, expected_between(&[0, RECORDS / 2], &stopped_at));

    // The stop's savepoint in one process, the running sum at parallelism 1: the
    // two runs together wrote exactly a run without a stop.
    let stopped_arg: OsString = stopped.clone().into();
    let restored = start(
        1,
        args(
            1,
            "1000000",
            &path("checkpoints-1"),
            &output,
            &[&"--restore-from".into(), &stopped_arg],
        ),
    )
    .recv_timeout(GUARD)
    .expect("the restored run ends");
    assert!(restored.success(), "{restored:?}");
    let (all, leftovers) = common::committed(&output);
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(all, expected(), "exactly a run without a stop");

    // The mid-run savepoint across 2 processes, the running sum at parallelism 3,
    // into a new sink (the saved one's pending parts are in the first directory):
    // from where the sources were, every key's running sums go on exactly.
    let mid_run_arg: OsString = mid_run.clone().into();
    let output_3 = path("out-3");
    let restored = start(
        2,
        args(
            3,
            "1000000",
            &path("checkpoints-3"),
            &output_3,
            &[&"--restore-from".into(), &mid_run_arg, &"--new-sink".into()],
        ),
    )
    .recv_timeout(GUARD)
    .expect("the restored run ends");
    assert!(restored.success(), "{restored:?}");
    let (after, leftovers) = common::committed(&output_3);
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(!after.is_empty(), "the sources were not at their end");
    let from = starts(&after);
    assert!(
        from[0] > 0 && from[1] > RECORDS / 2,
        "the savepoint was taken after the sources started: {from:?}"
    );
    assert_eq!(
        after,
        expected_between(&from, &[RECORDS / 2, RECORDS]),
        "exact from the savepoint on"
    );
}

/// Every window of `--windows` (key `k`: the records `100k..100k+100`, one 100 ms
/// window ending at `100(k+1)`) whole, once, sorted as the committed lines are.
fn expected_windows() -> Vec<String> {
    let mut lines: Vec<String> = (0..RECORDS / 100)
        .map(|k| format!("{k},{},100", (k + 1) * 100))
        .collect();
    lines.sort_unstable();
    lines
}

#[test]
fn windows_stopped_without_drain_across_processes_fire_once_after_the_restore() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let (checkpoints, output, inbox) = (path("checkpoints"), path("out"), path("inbox"));
    std::fs::create_dir_all(&inbox).unwrap();
    let inbox_arg: OsString = inbox.clone().into();
    let job = start(
        2,
        args(
            2,
            "20000",
            &checkpoints,
            &output,
            &[&"--savepoint-inbox".into(), &inbox_arg, &"--windows".into()],
        ),
    );
    // Some windows fired and were committed: the stop falls mid-run.
    let started = Instant::now();
    while !output.is_dir() || common::committed(&output).0.is_empty() {
        assert!(started.elapsed() < GUARD, "no window committed");
        assert!(job.try_recv().is_err(), "the job ended early");
        std::thread::sleep(Duration::from_millis(5));
    }
    // A stop without drain asked for in process 1: every task of both processes
    // ends right after the savepoint's barrier, which crossed between them.
    let target = path("savepoints").display().to_string();
    let stopped = savepoint_of(&ask(&inbox, 1, 1, &format!("stop {target}"), &job));
    assert_complete(&stopped);
    let outcome = job
        .recv_timeout(GUARD)
        .expect("the job ends after its stop");
    assert!(outcome.success(), "{outcome:?}");
    let expected = expected_windows();
    let (before, leftovers) = common::committed(&output);
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(before.len() < expected.len(), "stopped before the end");
    for line in &before {
        assert!(
            expected.binary_search(line).is_ok(),
            "a partial window was committed at the stop: {line}"
        );
    }
    // Restored in one process: every window exactly once over both runs.
    let stopped_arg: OsString = stopped.into();
    let restored = start(
        1,
        args(
            1,
            "1000000",
            &path("checkpoints-1"),
            &output,
            &[&"--restore-from".into(), &stopped_arg, &"--windows".into()],
        ),
    )
    .recv_timeout(GUARD)
    .expect("the restored run ends");
    assert!(restored.success(), "{restored:?}");
    let (all, leftovers) = common::committed(&output);
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(all, expected, "every window once, whole");
}
