//! A file reader's position after part of its last batch, over files with lines
//! that become dead letters: restored at any parallelism, every valid line is
//! emitted once as a record and every invalid line once as a dead letter, however
//! the cut falls among them.

use std::path::Path;
use std::sync::{Arc, Mutex};

use flink_core::clock::ManualClock;
use flink_core::dead_letter::{DeadLetter, dead_letter_tag};
use flink_core::functions::Collector;
use flink_core::operator::RuntimeContext;
use flink_core::output::{AnyOutput, Output};
use flink_core::side_output::SideSlot;
use flink_core::source::{Source, SourceOutput, SourcePoll, SourceReader};

use super::super::position::{ReaderPosition, SplitOffset};
use crate::file::FileSource;

/// Lines per file: a batch (1,000 lines) ends mid-file.
const LINES: u64 = 1_500;

/// Whether line `i` of a file is invalid JSON (a dead letter).
fn bad(i: u64) -> bool {
    i % 7 == 3
}

/// `files` files, line `i` of file `f` the JSON number `f * 10,000 + i`, or
/// `bad-f-i` if `bad(i)`.
fn input(files: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in 0..files {
        let text: String = (0..LINES)
            .map(|i| match bad(i) {
                true => format!("bad-{f}-{i}\n"),
                false => format!("{}\n", f * 10_000 + i),
            })
            .collect();
        std::fs::write(dir.path().join(format!("in-{f}.txt")), text).unwrap();
    }
    dir
}

/// Every valid line's record and every invalid line, sorted.
fn expected(files: u64) -> (Vec<u64>, Vec<String>) {
    let lines = || (0..files).flat_map(|f| (0..LINES).map(move |i| (f, i)));
    let mut records: Vec<u64> = lines()
        .filter(|(_, i)| !bad(*i))
        .map(|(f, i)| f * 10_000 + i)
        .collect();
    records.sort_unstable();
    let mut dead: Vec<String> = lines()
        .filter(|(_, i)| bad(*i))
        .map(|(f, i)| format!("bad-{f}-{i}"))
        .collect();
    dead.sort_unstable();
    (records, dead)
}

/// Collects the dead letters' lines.
#[derive(Clone, Default)]
struct Dead(Arc<Mutex<Vec<String>>>);

impl Collector<DeadLetter<String>> for Dead {
    fn collect(&mut self, record: DeadLetter<String>) {
        self.0.lock().unwrap().push(record.record);
    }
}

impl Output<DeadLetter<String>> for Dead {
    fn end_input(&mut self) {}

    fn flush(&mut self) {}
}

/// Reader `subtask` of `parallelism` over `dir` (JSON lines of `u64`), its dead
/// letters into `dead`.
fn reader(
    dir: &Path,
    subtask: usize,
    parallelism: usize,
    dead: &Dead,
) -> Box<dyn SourceReader<u64>> {
    let ctx =
        RuntimeContext::standalone("Files", subtask, parallelism, Arc::new(ManualClock::new()));
    let output: Box<dyn Output<DeadLetter<String>>> = Box::new(dead.clone());
    ctx.side_outputs.insert(
        dead_letter_tag::<String>().id(),
        SideSlot::new::<DeadLetter<String>>(AnyOutput::new(output)),
    );
    FileSource::<u64>::json_lines(dir).create_reader(&ctx)
}

/// Polls `polls` times; the records of all polls but the last, and the last's.
fn poll(reader: &mut dyn SourceReader<u64>, polls: usize) -> (Vec<u64>, Vec<u64>) {
    let (mut before, mut out) = (Vec::new(), SourceOutput::new());
    for _ in 0..polls {
        before.append(&mut out.take());
        reader.poll_next(&mut out);
    }
    (before, out.take())
}

fn drain(reader: &mut dyn SourceReader<u64>) -> Vec<u64> {
    let mut out = SourceOutput::new();
    while reader.poll_next(&mut out) != SourcePoll::Finished {}
    out.take()
}

/// Readers of `p` restored from `saved` (saved subtask `j` to reader `j % p`),
/// drained: their records.
fn restored(dir: &Path, saved: &[Vec<u8>], p: usize, dead: &Dead) -> Vec<u64> {
    let mut records = Vec::new();
    for i in 0..p {
        let mut r = reader(dir, i, p, dead);
        let mine: Vec<&[u8]> = flink_core::source::dealt_to(saved.iter(), i, p)
            .map(Vec::as_slice)
            .collect();
        r.restore_rescaled(&mine).unwrap();
        records.extend(drain(&mut *r));
    }
    records
}

fn assert_exactly_once(mut records: Vec<u64>, dead: &Dead, files: u64, what: &str) {
    let (all, all_dead) = expected(files);
    records.sort_unstable();
    assert_eq!(records, all, "records, {what}");
    let mut dead = dead.0.lock().unwrap().clone();
    dead.sort_unstable();
    assert_eq!(dead, all_dead, "dead letters, {what}");
}

#[test]
fn positions_after_part_of_a_batch_restore_every_line_and_dead_letter_once() {
    const FILES: u64 = 5;
    let dir = input(FILES);
    // Reader 0 of 2 (in-0, in-2, in-4) two batches in: 500 lines into in-2.
    // Reader 1 (in-1, in-3) one batch in. Cut after `emitted` records of each
    // last batch (858 and 857 records): none, the first, most, all.
    for emitted in [[0, 0], [1, 300], [600, 857], [858, 857]] {
        let dead = Dead::default();
        let (mut records, mut saved) = (Vec::new(), Vec::new());
        for (subtask, polls) in [(0, 2), (1, 1)] {
            let mut r = reader(dir.path(), subtask, 2, &dead);
            let (before, last) = poll(&mut *r, polls);
            // 1,000 lines, of which 142 (in-0 from line 1,000 and in-2 to line
            // 500) or 143 (in-1 to line 1,000) are invalid.
            assert_eq!(last.len(), [858, 857][subtask]);
            records.extend(before);
            records.extend_from_slice(&last[..emitted[subtask]]);
            saved.push(
                r.snapshot_position_after(emitted[subtask])
                    .unwrap()
                    .unwrap(),
            );
        }
        for p in [1, 2, 3] {
            let dead = Dead(Arc::new(Mutex::new(dead.0.lock().unwrap().clone())));
            let mut all = records.clone();
            // At the same parallelism, each reader restores its own position.
            if p == 2 {
                for (i, position) in saved.iter().enumerate() {
                    let mut r = reader(dir.path(), i, 2, &dead);
                    r.restore_position(position).unwrap();
                    all.extend(drain(&mut *r));
                }
            } else {
                all.extend(restored(dir.path(), &saved, p, &dead));
            }
            assert_exactly_once(all, &dead, FILES, &format!("{emitted:?} restored at {p}"));
        }
    }
}

#[test]
fn the_position_after_goes_back_to_the_first_held_record_with_the_dead_letters_behind_it_out() {
    let dir = input(1);
    let dead = Dead::default();
    let mut r = reader(dir.path(), 0, 1, &dead);
    let (_, last) = poll(&mut *r, 1);
    // Lines 0, 1, 2 are records; 3 is a dead letter; 4.. The third record is
    // line 2: the position goes back to it, with every dead letter of the batch
    // (up to line 1,000) out.
    assert_eq!(last[..3], [0, 1, 2]);
    let offset_of = |line: u64| -> u64 {
        (0..line)
            .map(|i| match bad(i) {
                true => format!("bad-0-{i}\n").len() as u64,
                false => format!("{i}\n").len() as u64,
            })
            .sum()
    };
    let position =
        ReaderPosition::decode_rescaled(&r.snapshot_position_after(2).unwrap().unwrap()).unwrap();
    let split = &position.splits[0];
    assert_eq!(
        (split.files_done, split.offset, split.lines),
        (0, offset_of(2), 2)
    );
    assert_eq!(
        split.dead_letters_out_before,
        Some(SplitOffset {
            file: 0,
            offset: offset_of(1_000)
        })
    );
    // The whole batch out: the position now, nothing marked.
    let whole = r.snapshot_position_after(857).unwrap().unwrap();
    assert_eq!(whole, r.snapshot_position().unwrap().unwrap());
    assert_eq!(
        ReaderPosition::decode_rescaled(&whole).unwrap().splits[0].dead_letters_out_before,
        None
    );
    // More than the batch had is an error.
    assert!(r.snapshot_position_after(858).is_err());
}

#[test]
fn a_batch_across_two_splits_goes_back_in_both() {
    // Split 0 of 2 is in-0, split 1 is in-1; one reader restored with both reads
    // in-0 to line 1,000, then the rest of in-0 and 500 lines of in-1.
    let dir = input(2);
    let first = Dead::default();
    let fresh: Vec<Vec<u8>> = (0..2)
        .map(|i| {
            reader(dir.path(), i, 2, &first)
                .snapshot_position()
                .unwrap()
                .unwrap()
        })
        .collect();
    for emitted in [0, 100, 428, 429, 600] {
        let dead = Dead::default();
        let mut r = reader(dir.path(), 0, 1, &dead);
        r.restore_rescaled(&[&fresh[0], &fresh[1]]).unwrap();
        let (mut records, last) = poll(&mut *r, 2);
        // 500 lines of in-0 and 500 of in-1, 429 records each.
        assert_eq!(last.len(), 429 + 429);
        records.extend_from_slice(&last[..emitted]);
        let saved = r.snapshot_position_after(emitted).unwrap().unwrap();
        let splits = ReaderPosition::decode_rescaled(&saved).unwrap().splits;
        // Split 0 comes back (unless all of it went out), split 1 goes back.
        let expected_splits = if emitted < 429 { 2 } else { 1 };
        assert_eq!(splits.len(), expected_splits, "{emitted}");
        for p in [1, 2] {
            let dead = Dead(Arc::new(Mutex::new(dead.0.lock().unwrap().clone())));
            let mut all = records.clone();
            all.extend(restored(dir.path(), std::slice::from_ref(&saved), p, &dead));
            assert_exactly_once(all, &dead, 2, &format!("{emitted} restored at {p}"));
        }
    }
}

#[test]
fn a_position_after_taken_again_after_its_restore_keeps_the_dead_letters_out() {
    // Cut early in a batch, restored, read a shorter way (less than the batch
    // before), cut again: the dead letters out before stay out.
    let dir = input(1);
    let dead = Dead::default();
    let mut r = reader(dir.path(), 0, 1, &dead);
    let (_, last) = poll(&mut *r, 1);
    let mut records = last[..10].to_vec();
    let saved = r.snapshot_position_after(10).unwrap().unwrap();
    let mut r = reader(dir.path(), 0, 1, &dead);
    r.restore_position(&saved).unwrap();
    let (_, last) = poll(&mut *r, 1);
    records.extend_from_slice(&last[..5]);
    let again = r.snapshot_position_after(5).unwrap().unwrap();
    let mut r = reader(dir.path(), 0, 1, &dead);
    r.restore_position(&again).unwrap();
    records.extend(drain(&mut *r));
    assert_exactly_once(records, &dead, 1, "restored twice");
}
