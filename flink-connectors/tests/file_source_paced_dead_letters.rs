//! A rate-limited file source over files with invalid lines (dead letters), stopped
//! with a savepoint at parallelism 2 while its readers hold part of a batch, and
//! restored at 2 and at 3. The file reader read the held batch, and made its
//! invalid lines dead letters, before its records went out: the savepoint holds the
//! reader's position after the records that went out, with the dead letters behind
//! it marked as out. Both runs together commit every valid line once as a record and
//! every invalid line once as a dead letter. No timing assertions: timing only
//! decides where the savepoint falls, and the test asserts it fell mid-batch.

// Only the rescale flow is used here, not the service macros.
#[allow(unused_macros)]
mod common;

use std::collections::HashSet;
use std::path::Path;

use common::rescale;
use flink_connectors::file::FileSource;
use flink_core::dead_letter::dead_letter_tag;
use flink_core::sources::RateLimiterStrategy;
use flink_runtime::prelude::*;

const FILES: u64 = 8;
const LINES: u64 = 5_000;

/// Whether line `i` of a file is not JSON (a dead letter).
fn bad(i: u64) -> bool {
    i % 20 == 7
}

/// The record of line `i` of file `f`, if it is valid.
fn record(f: u64, i: u64) -> u64 {
    f * 100_000 + i
}

/// `FILES` files of `LINES` lines: line `i` of file `f` is `record(f, i)` as JSON,
/// or `bad-f-i` if `bad(i)`.
fn input(dir: &Path) {
    std::fs::create_dir(dir).unwrap();
    for f in 0..FILES {
        let text: String = (0..LINES)
            .map(|i| match bad(i) {
                true => format!("bad-{f}-{i}\n"),
                false => format!("{}\n", record(f, i)),
            })
            .collect();
        std::fs::write(dir.join(format!("in-{f}.txt")), text).unwrap();
    }
}

fn lines() -> impl Iterator<Item = (u64, u64)> {
    (0..FILES).flat_map(|f| (0..LINES).map(move |i| (f, i)))
}

fn every_record() -> Vec<u64> {
    let mut all: Vec<u64> = lines()
        .filter(|(_, i)| !bad(*i))
        .map(|(f, i)| record(f, i))
        .collect();
    all.sort_unstable();
    all
}

fn every_dead_letter() -> Vec<String> {
    let mut all: Vec<String> = lines()
        .filter(|(_, i)| bad(*i))
        .map(|(f, i)| format!("bad-{f}-{i}"))
        .collect();
    all.sort_unstable();
    all
}

/// What both runs commit: the records and the dead letters' lines.
#[derive(Clone)]
struct Out {
    records: TransactionalCollectingSink<u64>,
    dead: TransactionalCollectingSink<String>,
}

/// JSON lines of `input` at most `rate` lines per second (uid "files") ->
/// transactional collecting sink (uid "sink"); the dead letters' lines -> another
/// (uid "dead-sink").
fn job(
    input: &Path,
    parallelism: usize,
    dir: &Path,
    out: &Out,
    rate: f64,
) -> StreamExecutionEnvironment {
    let env = rescale::environment(parallelism, dir);
    let files = FileSource::<u64>::json_lines(input)
        .rate_limited(RateLimiterStrategy::per_second(rate).unwrap());
    let records = env.from_source(files, "Files").uid("files");
    records
        .side_output(&dead_letter_tag::<String>())
        .map(|d| d.record)
        .uid("dead-lines")
        .sink_to(out.dead.clone())
        .uid("dead-sink");
    records.sink_to(out.records.clone()).uid("sink");
    env
}

/// Files with a committed dead letter after a valid line whose record was not
/// committed: the reader had read (and dead-lettered) past records it still held
/// when the savepoint was taken.
fn files_with_dead_letters_ahead(out: &Out) -> usize {
    let records: HashSet<u64> = out.records.committed().into_iter().collect();
    let dead: HashSet<String> = out.dead.committed().into_iter().collect();
    (0..FILES)
        .filter(|&f| {
            let first_held = (0..LINES).find(|&i| !bad(i) && !records.contains(&record(f, i)));
            first_held.is_some_and(|held| {
                (held..LINES).any(|i| bad(i) && dead.contains(&format!("bad-{f}-{i}")))
            })
        })
        .count()
}

/// Saves the job paced at 10,000 lines per second (500 a burst per reader, half a
/// batch) at 2 and restores it at `parallelism`, much faster.
fn restore_at(parallelism: usize) {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("input");
    input(&files);
    let out = Out {
        records: TransactionalCollectingSink::new(),
        dead: TransactionalCollectingSink::new(),
    };
    let checkpoints = dir.path().join("checkpoints");
    let env = job(&files, 2, &checkpoints, &out, 10_000.0);
    let records = every_record().len() as u64;
    let savepoint = rescale::savepoint_at_two(
        &env,
        "paced files at 2",
        &dir.path().join("savepoints"),
        &out.records,
        records,
    );
    // The savepoint fell while a reader held part of a batch it had read past
    // dead letters (without the position after, the restore would read them again).
    assert!(
        files_with_dead_letters_ahead(&out) > 0,
        "the savepoint fell between batches"
    );
    let before = out.records.committed().len() as u64;
    let env = job(&files, parallelism, &checkpoints, &out, 1_000_000.0);
    env.restore_from(&savepoint);
    let what = format!("parallelism {parallelism}");
    rescale::restored_run(
        &env,
        "files restored",
        &out.records,
        before,
        &every_record(),
        &what,
    );
    assert_each_once(out.dead.committed(), &every_dead_letter(), &what);
}

/// `got` is `expected` (sorted, distinct) exactly once each; a failure names the
/// lines repeated and missing rather than printing thousands.
fn assert_each_once(mut got: Vec<String>, expected: &[String], what: &str) {
    got.sort_unstable();
    let mut repeated: Vec<&String> = got
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| &w[0])
        .collect();
    repeated.dedup();
    let missing: Vec<&String> = expected
        .iter()
        .filter(|e| got.binary_search(e).is_err())
        .collect();
    assert_eq!(
        (repeated.len(), missing.len(), got.len()),
        (0, 0, expected.len()),
        "dead letters, {what}: repeated {:?}.., missing {:?}..",
        &repeated[..repeated.len().min(5)],
        &missing[..missing.len().min(5)]
    );
}

#[test]
fn a_paced_file_source_with_dead_letters_saved_mid_batch_restores_at_two() {
    restore_at(2);
}

#[test]
fn a_paced_file_source_with_dead_letters_saved_mid_batch_restores_at_three() {
    restore_at(3);
}
