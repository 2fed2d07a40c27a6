//! A file source stopped with a savepoint at parallelism 2 and restored at 1, 3 and
//! 4: the saved splits are dealt to the new readers, each resumes its current file
//! at its byte offset, and the lines committed by both runs through an exactly-once
//! sink are every line of the input exactly once. A file added after the savepoint
//! fails the restore with a clear error. The same, paced by `.rate_limited(..)` so
//! that the savepoint falls while readers hold part of a batch. No timing assertions: timing only decides
//! where the savepoint falls.

// Only the rescale flow is used here, not the service macros.
#[allow(unused_macros)]
mod common;

use std::path::Path;

use common::rescale;
use flink_connectors::file::FileSource;
use flink_core::sources::RateLimiterStrategy;
use flink_runtime::prelude::*;

const FILES: u64 = 8;
const LINES: u64 = 5_000;
const RECORDS: u64 = FILES * LINES;

/// `FILES` files of `LINES` lines, line `i` of file `f` reading `f-i`.
fn input(dir: &Path) {
    std::fs::create_dir(dir).unwrap();
    for f in 0..FILES {
        let text: String = (0..LINES).map(|i| format!("{f}-{i}\n")).collect();
        std::fs::write(dir.join(format!("in-{f}.txt")), text).unwrap();
    }
}

fn every_line() -> Vec<String> {
    let mut all: Vec<String> = (0..FILES)
        .flat_map(|f| (0..LINES).map(move |i| format!("{f}-{i}")))
        .collect();
    all.sort_unstable();
    all
}

/// Files (uid "files"), read at most at `rate` lines per second if given -> map,
/// sleeping now and then if `slow` (uid "slow") -> transactional collecting sink
/// (uid "sink").
fn job(
    input: &Path,
    parallelism: usize,
    dir: &Path,
    out: &TransactionalCollectingSink<String>,
    slow: bool,
    rate: Option<f64>,
) -> StreamExecutionEnvironment {
    let env = rescale::environment(parallelism, dir);
    let files = FileSource::text_lines(input);
    let lines = match rate {
        Some(rate) => env.from_source(
            files.rate_limited(RateLimiterStrategy::per_second(rate).unwrap()),
            "Files",
        ),
        None => env.from_source(files, "Files"),
    };
    rescale::slowed_into(
        lines.uid("files"),
        move |line: &String| slow && line.ends_with('0'),
        out,
    );
    env
}

/// Runs the slow job (or, if `paced`, the job paced at 10,000 lines per second: 500
/// a burst per reader, half a batch) at parallelism 2 over `input` and stops it
/// with a savepoint once it committed something; returns the savepoint.
fn savepoint_at_two(
    input: &Path,
    dir: &Path,
    out: &TransactionalCollectingSink<String>,
    paced: bool,
) -> CheckpointLocation {
    let rate = paced.then_some(10_000.0);
    let env = job(input, 2, &dir.join("checkpoints"), out, !paced, rate);
    rescale::savepoint_at_two(&env, "files at 2", &dir.join("savepoints"), out, RECORDS)
}

/// Saves at 2 and restores at `parallelism` (paced much faster if `paced`).
fn restore_at(parallelism: usize, paced: bool) {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("input");
    input(&files);
    let out = TransactionalCollectingSink::new();
    let savepoint = savepoint_at_two(&files, dir.path(), &out, paced);
    let before = out.committed().len() as u64;
    let env = job(
        &files,
        parallelism,
        &dir.path().join("checkpoints"),
        &out,
        false,
        paced.then_some(1_000_000.0),
    );
    env.restore_from(&savepoint);
    rescale::restored_run(
        &env,
        "files restored",
        &out,
        before,
        &every_line(),
        &format!("parallelism {parallelism}"),
    );
}

#[test]
fn a_file_source_saved_at_two_restores_at_one() {
    restore_at(1, false);
}

#[test]
fn a_file_source_saved_at_two_restores_at_three() {
    restore_at(3, false);
}

#[test]
fn a_file_source_saved_at_two_restores_at_four() {
    restore_at(4, false);
}

#[test]
fn a_paced_file_source_saved_at_two_restores_at_one_three_and_four() {
    for parallelism in [1, 3, 4] {
        restore_at(parallelism, true);
    }
}

#[test]
fn a_file_added_after_the_savepoint_fails_the_restore_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("input");
    input(&files);
    let out = TransactionalCollectingSink::new();
    let savepoint = savepoint_at_two(&files, dir.path(), &out, false);
    let before = out.committed().len();
    std::fs::write(files.join("in-9.txt"), "9-0\n").unwrap();
    let env = job(
        &files,
        3,
        &dir.path().join("checkpoints"),
        &out,
        false,
        None,
    );
    env.restore_from(&savepoint);
    let err = env.execute("files restored").unwrap_err().to_string();
    assert!(
        err.contains("cannot restore: the checkpoint was taken over 8 files")
            && err.contains("has 9 now"),
        "{err}"
    );
    assert_eq!(out.committed().len(), before, "nothing more was committed");
}
