//! Savepoints and restore: a keyed running sum stopped with a savepoint at
//! parallelism 2 and restored at 1, 3 and 4 ends with every key's exact sum and
//! every record committed exactly once; operators are matched by uid; a bad
//! savepoint or one that does not fit the job is a clear error at submission and
//! nothing starts. No timing assertions: timing only decides where the savepoint
//! falls.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

mod common;

use common::rescale;
use flink_core::operator::RuntimeContext;
use flink_runtime::checkpoint::{RestoreError, SavepointError};
use flink_runtime::prelude::*;

const RECORDS: u64 = 200_000;
const KEYS: u64 = 100;

/// (key, record, running sum of the key) as the job commits it.
type Sum = (u64, u64, u64);

/// sequence (uid "numbers") -> map, sleeping now and then if `slow` (uid "tag") ->
/// key_by -> running sum per key (uid "sums") -> sink (uid "sink").
fn job(
    parallelism: usize,
    dir: &Path,
    out: &TransactionalCollectingSink<Sum>,
    slow: bool,
    sink_uid: &str,
) -> StreamExecutionEnvironment {
    let env = rescale::environment(parallelism, dir);
    env.from_sequence(0, RECORDS - 1)
        .uid("numbers")
        .map(move |x: u64| {
            if slow && x.is_multiple_of(200) {
                std::thread::sleep(Duration::from_millis(1));
            }
            (x % KEYS, x)
        })
        .uid("tag")
        .key_by(|r: &(u64, u64)| r.0)
        .process(
            |key: &u64,
             (_, x): (u64, u64),
             sum: &mut ValueState<u64>,
             out: &mut dyn Collector<Sum>| {
                let next = sum.value().copied().unwrap_or(0) + x;
                sum.update(next);
                out.collect((*key, x, next));
            },
        )
        .uid("sums")
        .sink_to(out.clone())
        .uid(sink_uid);
    env
}

/// The local directory of a savepoint taken into a local directory.
fn local(savepoint: &CheckpointLocation) -> &Path {
    savepoint.as_directory().expect("a local savepoint")
}

/// Runs the slow job at parallelism 2 and stops it with a savepoint once it
/// committed something; returns the savepoint.
fn savepoint_at_two(dir: &Path, out: &TransactionalCollectingSink<Sum>) -> CheckpointLocation {
    let env = job(2, &dir.join("checkpoints"), out, true, "sink");
    let savepoint = rescale::savepoint_at_two(&env, "sums", &dir.join("savepoints"), out, RECORDS);
    assert!(local(&savepoint).join("_metadata").is_file());
    savepoint
}

fn restore_at(parallelism: usize) {
    let dir = tempfile::tempdir().unwrap();
    let out = TransactionalCollectingSink::new();
    let savepoint = savepoint_at_two(dir.path(), &out);
    let env = job(
        parallelism,
        &dir.path().join("checkpoints"),
        &out,
        false,
        "sink",
    );
    env.restore_from(&savepoint);
    let result = env
        .execute("sums")
        .expect("the restored job runs to its end");
    assert!(result.restarts.is_empty());
    // Every record committed exactly once over both runs (the sink is shared, and
    // commits of a transaction are idempotent) ...
    let committed = out.committed();
    let mut records: Vec<u64> = committed.iter().map(|&(_, x, _)| x).collect();
    records.sort_unstable();
    assert_eq!(
        records,
        (0..RECORDS).collect::<Vec<_>>(),
        "parallelism {parallelism}"
    );
    // ... and each key's final sum is that of a run without a savepoint.
    let mut last: BTreeMap<u64, u64> = BTreeMap::new();
    for &(key, _, sum) in &committed {
        let v = last.entry(key).or_default();
        *v = (*v).max(sum);
    }
    let expected: BTreeMap<u64, u64> = (0..KEYS)
        .map(|k| (k, (0..RECORDS).filter(|x| x % KEYS == k).sum()))
        .collect();
    assert_eq!(last, expected, "parallelism {parallelism}");
}

#[test]
fn a_savepoint_at_two_restores_at_one() {
    restore_at(1);
}

#[test]
fn a_savepoint_at_two_restores_at_three() {
    restore_at(3);
}

#[test]
fn a_savepoint_at_two_restores_at_four() {
    restore_at(4);
}

fn restore_error(env: &StreamExecutionEnvironment) -> RestoreError {
    match env.execute("sums") {
        Err(JobError::Restore(e)) => e,
        other => panic!("expected a restore error, got {other:?}"),
    }
}

#[test]
fn a_bad_savepoint_is_a_clear_error_and_nothing_starts() {
    let dir = tempfile::tempdir().unwrap();
    let first = TransactionalCollectingSink::new();
    let savepoint = savepoint_at_two(dir.path(), &first);
    let checkpoints = dir.path().join("checkpoints");
    let out = TransactionalCollectingSink::new();

    let env = job(2, &checkpoints, &out, false, "sink");
    env.restore_from(dir.path().join("no-such-savepoint"));
    assert!(matches!(
        restore_error(&env),
        RestoreError::MissingDirectory { .. }
    ));

    let env = job(2, &checkpoints, &out, false, "sink");
    env.restore_from(dir.path());
    let err = restore_error(&env);
    assert!(matches!(err, RestoreError::NotACheckpoint { .. }), "{err}");

    // An operator uid the new job lacks: named, unless allowed.
    let env = job(2, &checkpoints, &out, false, "another sink");
    env.restore_from(&savepoint);
    let err = restore_error(&env);
    assert!(
        matches!(&err, RestoreError::UnknownOperator { uid, .. } if uid == "sink"),
        "{err}"
    );
    assert!(
        err.to_string().contains("allow_non_restored_state"),
        "{err}"
    );
    assert!(out.committed().is_empty(), "nothing ran");

    // A truncated state file, then a newer metadata version.
    let copy = dir.path().join("copy");
    copy_dir(local(&savepoint), &copy);
    let task = std::fs::read_dir(&copy)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("task-")
        })
        .unwrap();
    let bytes = std::fs::read(&task).unwrap();
    std::fs::write(&task, &bytes[..bytes.len() / 2]).unwrap();
    let env = job(2, &checkpoints, &out, false, "sink");
    env.restore_from(&copy);
    let err = restore_error(&env);
    assert!(
        matches!(&err, RestoreError::Corrupt { reason, .. } if reason.contains("truncated")),
        "{err}"
    );
    std::fs::write(&task, &bytes).unwrap();
    let metadata = copy.join("_metadata");
    let text = std::fs::read_to_string(&metadata).unwrap();
    std::fs::write(
        &metadata,
        text.replacen("\"version\": 1", "\"version\": 99", 1),
    )
    .unwrap();
    let env = job(2, &checkpoints, &out, false, "sink");
    env.restore_from(&copy);
    let err = restore_error(&env);
    assert!(
        matches!(err, RestoreError::UnsupportedVersion { found: 99, .. }),
        "{err}"
    );
    assert!(out.committed().is_empty(), "nothing ran");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
}

#[test]
fn state_of_a_missing_operator_is_skipped_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let out = TransactionalCollectingSink::new();
    let savepoint = savepoint_at_two(dir.path(), &out);
    let before = out.committed().len() as u64;
    // The sink has a new uid: its transactions are not recovered (they were
    // committed when the savepoint completed), the rest of the state is.
    let env = job(2, &dir.path().join("checkpoints"), &out, false, "new sink");
    env.restore_from(&savepoint).allow_non_restored_state(true);
    let result = env.execute("sums").unwrap();
    assert_eq!(
        before + result.records_read_by_sources(),
        RECORDS,
        "the sources went on from the savepoint"
    );
    assert_eq!(out.committed().len() as u64, RECORDS);
}

#[test]
fn a_savepoint_of_a_running_job_restores_and_retention_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = TransactionalCollectingSink::new();
    let env = job(2, &dir.path().join("checkpoints"), &out, true, "sink");
    let client = env.execute_async("sums").unwrap();
    common::poll_until("a first commit", || out.committed_transactions() > 0);
    let savepoint = client
        .trigger_savepoint(dir.path().join("savepoints"))
        .unwrap();
    let result = client.wait().expect("the job goes on to its end");
    assert!(result.savepoint.is_none() && !result.stopped);
    assert_eq!(out.committed().len() as u64, RECORDS);
    assert!(
        local(&savepoint).join("_metadata").is_file(),
        "not deleted by retention"
    );
    // Restored (into a fresh sink) it replays exactly what came after it.
    let again = TransactionalCollectingSink::new();
    let env = job(3, &dir.path().join("checkpoints"), &again, false, "sink");
    env.restore_from(&savepoint);
    env.execute("sums").unwrap();
    let after: Vec<u64> = again.committed().iter().map(|&(_, x, _)| x).collect();
    assert!(!after.is_empty() && (after.len() as u64) < RECORDS);
    let mut last: BTreeMap<u64, u64> = BTreeMap::new();
    for &(key, _, sum) in &again.committed() {
        let v = last.entry(key).or_default();
        *v = (*v).max(sum);
    }
    for (key, sum) in last {
        let expected: u64 = (0..RECORDS).filter(|x| x % KEYS == key).sum();
        assert_eq!(sum, expected, "key {key}");
    }
}

#[test]
fn savepoints_need_checkpointing_and_a_running_job() {
    let env = StreamExecutionEnvironment::new();
    env.from_sequence(1, u64::MAX)
        .filter(|_: &u64| false)
        .collect_vec();
    let client = env.execute_async("no checkpoints").unwrap();
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        client.trigger_savepoint(dir.path()),
        Err(SavepointError::CheckpointingDisabled)
    );
    let control = client.control();
    control.cancel();
    let _ = client.wait();
}

#[test]
fn duplicate_uids_are_refused_when_the_job_is_built() {
    let env = StreamExecutionEnvironment::new();
    env.from_sequence(1, 10)
        .uid("same")
        .map(|x: u64| x)
        .uid("same")
        .collect_vec();
    let err = env.execute("dup").unwrap_err();
    assert!(err.to_string().contains("same uid 'same'"), "{err}");
}

/// A source whose readers do not take over other readers' positions (the default
/// of [`Source::can_restore_rescaled`]): it restores only at the parallelism it was
/// saved with.
struct FixedParallelism<S>(S);

impl<T: Send + 'static, S: Source<T>> Source<T> for FixedParallelism<S> {
    fn boundedness(&self) -> Boundedness {
        self.0.boundedness()
    }

    fn create_reader(&self, ctx: &RuntimeContext) -> Box<dyn SourceReader<T>> {
        self.0.create_reader(ctx)
    }
}

/// A rate-limited collection of fixed parallelism (so neither can the wrapper's
/// positions be redistributed) at `parallelism`, saving into `dir`; at 1,000
/// records per second it runs until cancelled.
fn rate_limited_job(parallelism: usize, dir: &Path) -> StreamExecutionEnvironment {
    use flink_core::sources::{CollectionSource, RateLimiterStrategy};
    let env = rescale::environment(parallelism, dir);
    let source = FixedParallelism(CollectionSource::new((0..1_000_000u64).collect()))
        .rate_limited(RateLimiterStrategy::per_second(1_000.0).unwrap());
    env.from_source(source, "Paced")
        .uid("paced")
        .filter(|_: &u64| false)
        .collect_vec();
    env
}

const PACED: u64 = 50_000;

/// What a paced job reads: the numbers `0..PACED`.
#[derive(Clone, Copy, Debug)]
enum PacedInput {
    Sequence,
    Collection,
}

/// `PACED` numbers (of a sequence or a collection) read at `rate` per second
/// (bursts of a tenth of that, per reader: below a batch at 2 readers and 20,000
/// per second, so a savepoint falls while part of a batch is held) -> sink (uid
/// "sink").
fn paced_job(
    input: PacedInput,
    parallelism: usize,
    dir: &Path,
    out: &TransactionalCollectingSink<u64>,
    rate: f64,
    with_map: bool,
) -> StreamExecutionEnvironment {
    use flink_core::sources::{CollectionSource, RateLimiterStrategy, SequenceSource};
    let env = rescale::environment(parallelism, dir);
    let strategy = RateLimiterStrategy::per_second(rate).unwrap();
    let numbers = match input {
        PacedInput::Sequence => env.from_source(
            SequenceSource::range(0, PACED - 1).rate_limited(strategy),
            "Paced",
        ),
        PacedInput::Collection => env.from_source(
            CollectionSource::new((0..PACED).collect()).rate_limited(strategy),
            "Paced",
        ),
    };
    let numbers = numbers.uid("paced");
    if with_map {
        // An exchange and an operator between the source and the sink.
        numbers
            .rebalance()
            .process(|x, ctx| ctx.collect(x))
            .uid("identity")
            .sink_to(out.clone())
            .uid("sink");
    } else {
        numbers.sink_to(out.clone()).uid("sink");
    }
    env
}

/// A paced `input` stopped with a savepoint at 2 restores at `parallelism` (at a
/// higher rate, to end soon): every number committed exactly once over both runs.
fn paced_restore_at(input: PacedInput, parallelism: usize, with_map: bool) {
    let dir = tempfile::tempdir().unwrap();
    let out = TransactionalCollectingSink::new();
    let env = paced_job(input, 2, dir.path(), &out, 20_000.0, with_map);
    let savepoint =
        rescale::savepoint_at_two(&env, "paced", &dir.path().join("savepoints"), &out, PACED);
    let env = paced_job(input, parallelism, dir.path(), &out, 1_000_000.0, with_map);
    env.restore_from(&savepoint);
    let result = env
        .execute("paced")
        .expect("the restored job runs to its end");
    assert!(result.restarts.is_empty());
    let mut committed = out.committed();
    committed.sort_unstable();
    assert_eq!(
        committed,
        (0..PACED).collect::<Vec<_>>(),
        "{input:?} at parallelism {parallelism}, with a map: {with_map}"
    );
}

#[test]
fn a_paced_sequence_saved_at_two_restores_at_one_three_and_four() {
    for parallelism in [1, 3, 4] {
        paced_restore_at(PacedInput::Sequence, parallelism, false);
    }
}

#[test]
fn a_paced_sequence_through_a_map_saved_at_two_restores_at_one_three_and_four() {
    for parallelism in [1, 3, 4] {
        paced_restore_at(PacedInput::Sequence, parallelism, true);
    }
}

#[test]
fn a_paced_collection_saved_at_two_restores_at_one_three_and_four() {
    for parallelism in [1, 3, 4] {
        paced_restore_at(PacedInput::Collection, parallelism, false);
    }
}

#[test]
fn a_source_that_cannot_be_rescaled_is_named_at_submission() {
    let dir = tempfile::tempdir().unwrap();
    let env = rate_limited_job(2, dir.path());
    let client = env.execute_async("paced").unwrap();
    let savepoint = client.trigger_savepoint(dir.path()).unwrap();
    client.cancel();
    let _ = client.wait();
    let env = rate_limited_job(3, dir.path());
    env.restore_from(&savepoint);
    let err = restore_error(&env);
    assert!(
        matches!(&err, RestoreError::SourceRescale { operator, saved: 2, now: 3, .. } if operator == "Paced"),
        "{err}"
    );
    // At the parallelism it was saved with, it restores.
    let env = rate_limited_job(2, dir.path());
    env.restore_from(&savepoint);
    let client = env.execute_async("paced").unwrap();
    client.cancel();
    let _ = client.wait();
}

#[test]
fn savepoints_go_to_and_restore_from_urls_and_a_bad_url_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let rate_limited = rate_limited_job(2, dir.path());
    let client = rate_limited.execute_async("paced").unwrap();
    // An unknown scheme is refused before the job is asked.
    assert!(matches!(
        client.trigger_savepoint("ftp://host/savepoints"),
        Err(SavepointError::InvalidLocation { ref location, .. }) if location == "ftp://host/savepoints"
    ));
    // A file:// URL is a location like a path; the savepoint is named by URL.
    let url = format!("file://{}", dir.path().join("by-url").display());
    let savepoint = client.trigger_savepoint(url.as_str()).unwrap();
    client.cancel();
    let _ = client.wait();
    let CheckpointLocation::Url(saved) = &savepoint else {
        panic!("a URL in, a URL out: {savepoint}");
    };
    assert!(
        saved.starts_with(&format!("{url}/savepoint-paced-")),
        "{saved}"
    );
    let saved_dir = dir
        .path()
        .join("by-url")
        .join(saved.rsplit('/').next().unwrap());
    assert!(saved_dir.join("_metadata").is_file());
    // Restored from the URL string as given back.
    let env = rate_limited_job(2, dir.path());
    env.restore_from(saved.as_str());
    let client = env.execute_async("paced").unwrap();
    client.cancel();
    let _ = client.wait();
    // A restore from a URL of an unknown scheme fails the build, naming it.
    let env = rate_limited_job(2, dir.path());
    env.restore_from("ftp://host/savepoint-1");
    let err = env.execute("paced").unwrap_err();
    assert!(
        matches!(&err, JobError::Graph(e) if e.to_string().contains("'ftp://host/savepoint-1': unknown URL scheme 'ftp'")),
        "{err}"
    );
}
