//! The reader of one parallel instance of a [`FileSource`](super::FileSource): reads
//! its splits of the sorted listing in turn, line by line.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flink_core::checkpoint::StateError;
use flink_core::dead_letter::{DeadLetter, dead_letter_tag};
use flink_core::failure::fail_operator;
use flink_core::functions::Collector;
use flink_core::operator::RuntimeContext;
use flink_core::side_output::SideOutput;
use flink_core::source::{SourceOutput, SourcePoll, SourceReader};

use super::format::LineFormat;
use super::line_reader::{Line, LineReader};
use super::position::{ReaderPosition, SplitOffset, SplitPosition};
use super::source::list_files;

#[cfg(test)]
mod position_after_tests;

/// Lines read per poll.
const BATCH: usize = 1_000;

struct OpenFile {
    path: PathBuf,
    lines: LineReader<BufReader<File>>,
}

/// Where a record of the last poll was read: its split (index and parallelism cut
/// for), and the split's position before its line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RecordAt {
    split: (u64, u64),
    files_done: u64,
    offset: u64,
    lines: u64,
}

pub(crate) struct FileReader<T> {
    root: PathBuf,
    format: Arc<dyn LineFormat<T>>,
    max_line_length: usize,
    subtask: usize,
    parallelism: usize,
    operator: String,
    dead_letters: SideOutput<DeadLetter<String>>,
    /// Every file, sorted; listed at the first poll (or snapshot) that needs it.
    files: Option<Vec<PathBuf>>,
    /// The listing's size a restored position was taken over, checked when listing.
    restored_files: Option<u64>,
    /// The splits left, the one being read first: this reader's own share, or after a
    /// restore the splits of the positions it took over.
    splits: VecDeque<SplitPosition>,
    /// The open file of the first split; its line reader holds that split's offset.
    current: Option<OpenFile>,
    /// The line being read, its buffer reused.
    line: Line,
    /// Where each record of the last poll was read, in emission order (at most a
    /// batch; cleared at each poll), for the position after part of that batch.
    last_batch: Vec<RecordAt>,
}

impl<T> FileReader<T> {
    /// The reader of subtask `ctx.subtask_index`: files `i` with
    /// `i % parallelism == subtask`.
    pub(crate) fn new(
        root: PathBuf,
        format: Arc<dyn LineFormat<T>>,
        max_line_length: usize,
        ctx: &RuntimeContext,
    ) -> Self {
        let own = SplitPosition::fresh(ctx.subtask_index, ctx.parallelism);
        Self {
            root,
            format,
            max_line_length,
            subtask: ctx.subtask_index,
            parallelism: ctx.parallelism,
            operator: ctx.operator_name.to_string(),
            dead_letters: ctx.side_output(&dead_letter_tag::<String>()),
            files: None,
            restored_files: None,
            splits: VecDeque::from([own]),
            current: None,
            line: Line::default(),
            last_batch: Vec::new(),
        }
    }

    fn take_position(&mut self, position: ReaderPosition) {
        self.restored_files = position.files;
        self.splits = position.splits.into();
        tracing::debug!(
            subtask = %format_args!("{}/{}", self.subtask + 1, self.parallelism),
            splits = self.splits.len(),
            "file source restored"
        );
    }

    /// Lists the files once, and checks the restored splits against the listing;
    /// splits with nothing left are dropped. A listing that does not match the
    /// position fails the job, naming this source.
    fn list(&mut self) {
        if self.files.is_some() {
            return;
        }
        let files = list_files(&self.root).unwrap_or_else(|e| {
            fail_operator(
                &self.operator,
                format!("cannot list {}: {e}", self.root.display()),
            )
        });
        if let Err(why) = self.check(&files) {
            fail_operator(&self.operator, format!("cannot restore: {why}"));
        }
        let count = files.len() as u64;
        self.splits.retain(|s| s.files_done < s.file_count(count));
        tracing::debug!(
            subtask = %format_args!("{}/{}", self.subtask + 1, self.parallelism),
            files = files.len(),
            splits = self.splits.len(),
            "file source listed"
        );
        self.files = Some(files);
    }

    /// Why the listing `files` does not fit the restored position, if it does not.
    fn check(&self, files: &[PathBuf]) -> Result<(), String> {
        let count = files.len() as u64;
        if let Some(saved) = self.restored_files
            && saved != count
        {
            return Err(format!(
                "the checkpoint was taken over {saved} files, {} has {count} now (a \
                 bounded file source lists its files once: files added or removed since \
                 cannot be matched to the saved positions)",
                self.root.display()
            ));
        }
        for split in &self.splits {
            let have = split.file_count(count);
            if split.files_done > have {
                return Err(format!(
                    "the checkpoint read {} files of split {} of {}, {} has {have} now",
                    split.files_done,
                    split.index,
                    split.of,
                    self.root.display()
                ));
            }
            let next = files.get(split.next_index() as usize).map(|p| file_name(p));
            if let (Some(saved), Some(now)) = (&split.next_file, next)
                && *saved != now
            {
                return Err(format!(
                    "the next file of split {} of {} was {saved}, it is {now} now",
                    split.index, split.of
                ));
            }
        }
        Ok(())
    }

    /// Opens the next file of the first split left, at the split's offset. A file
    /// that cannot be opened now (it was checked when the job was built) fails the
    /// job, naming this source.
    fn next_file(&mut self) -> Option<OpenFile> {
        self.list();
        let files = self.files.as_ref().expect("listed");
        while self.splits.front()?.next_index() >= files.len() as u64 {
            self.splits.pop_front();
        }
        let split = self.splits.front()?;
        let path = files[split.next_index() as usize].clone();
        let (offset, lines) = (split.offset, split.lines);
        let mut file = File::open(&path).unwrap_or_else(|e| {
            fail_operator(
                &self.operator,
                format!("cannot open {}: {e}", path.display()),
            )
        });
        if offset > 0
            && let Err(e) = file.seek(SeekFrom::Start(offset))
        {
            fail_operator(
                &self.operator,
                format!("cannot seek {} to {offset}: {e}", path.display()),
            );
        }
        let buffered = BufReader::with_capacity(64 * 1024, file);
        Some(OpenFile {
            path,
            lines: LineReader::resume(buffered, self.max_line_length, offset, lines),
        })
    }

    /// The first split finished its current file.
    fn file_done(&mut self) {
        if let Some(split) = self.splits.front_mut() {
            split.files_done += 1;
            (split.offset, split.lines) = (0, 0);
        }
    }

    /// The position now: every split left, the first at the open file's offset.
    fn position(&self) -> ReaderPosition {
        let files = self.files.as_deref();
        let mut splits = Vec::with_capacity(self.splits.len());
        for (i, split) in self.splits.iter().enumerate() {
            let mut split = split.clone();
            if let Some(files) = files {
                match files.get(split.next_index() as usize) {
                    Some(path) => split.next_file = Some(file_name(path)),
                    None => continue, // nothing left: costs nothing
                }
            }
            if i == 0
                && let Some(open) = &self.current
            {
                (split.offset, split.lines) = open.lines.position();
            }
            let at = split.at();
            split.dead_letters_out_before = split.dead_letters_out_before.filter(|end| *end > at);
            splits.push(split);
        }
        ReaderPosition {
            files: files.map_or(self.restored_files, |f| Some(f.len() as u64)),
            splits,
        }
    }

    /// The position had only the first `emitted` records of the last poll gone
    /// out. Each split with a record that did not go out goes back to its first
    /// such record (a split read to its end in that poll comes back); the lines
    /// behind it up to where the poll left the split went out as far as they were
    /// dead letters, so they are marked so and emit none again. The other splits
    /// keep their position now: all they had in the poll went out.
    ///
    /// # Errors
    /// When `emitted` exceeds the records of the last poll.
    fn position_after(&self, emitted: usize) -> Result<ReaderPosition, StateError> {
        let Some(held) = self.last_batch.get(emitted..) else {
            return Err(StateError::Encode(format!(
                "the position after {emitted} records of a batch of {}",
                self.last_batch.len()
            )));
        };
        let mut now = self.position();
        let mut back: Vec<SplitPosition> = Vec::new();
        for record in held {
            // A split's records come in order: its first held is its earliest.
            if back.iter().any(|s| (s.index, s.of) == record.split) {
                continue;
            }
            back.push(self.back_to(record, &mut now.splits));
        }
        back.append(&mut now.splits);
        now.splits = back;
        Ok(now)
    }

    /// Split `record.split` back at `record`, taken out of `now` (the splits'
    /// positions now; a split not there was read to its end).
    fn back_to(&self, record: &RecordAt, now: &mut Vec<SplitPosition>) -> SplitPosition {
        let (index, of) = record.split;
        let files = self.files.as_deref().unwrap_or_default();
        let mut split = SplitPosition::fresh(index as usize, of as usize);
        let out_before = match now.iter().position(|s| (s.index, s.of) == record.split) {
            Some(i) => {
                let left = now.remove(i);
                let at = left.at();
                left.dead_letters_out_before.map_or(at, |end| end.max(at))
            }
            None => SplitOffset {
                file: split.file_count(files.len() as u64),
                offset: 0,
            },
        };
        split.files_done = record.files_done;
        (split.offset, split.lines) = (record.offset, record.lines);
        split.next_file = files.get(split.next_index() as usize).map(|p| file_name(p));
        split.dead_letters_out_before = Some(out_before);
        split
    }

    /// Makes the line just read a dead letter, unless it went out as one before
    /// (see [`SplitPosition::dead_letters_out_before`]).
    fn dead_letter(&mut self, path: &Path, record: String, why: String) {
        if self
            .splits
            .front()
            .is_some_and(|s| s.dead_letter_out(self.line.offset))
        {
            return;
        }
        let line = &self.line;
        let reason = format!(
            "{}: line {} at byte offset {}: {why}",
            path.display(),
            line.number,
            line.offset
        );
        self.dead_letters
            .collect(DeadLetter::new(record, &self.operator, reason));
    }
}

/// The name a position records for a file, to check it on restore.
fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

impl<T: Send + 'static> SourceReader<T> for FileReader<T> {
    fn poll_next(&mut self, out: &mut SourceOutput<T>) -> SourcePoll {
        self.last_batch.clear();
        let mut read = 0;
        while read < BATCH {
            // Taken out while its line is handled, so the line can borrow the reader.
            let Some(mut file) = self.current.take().or_else(|| self.next_file()) else {
                return SourcePoll::Finished;
            };
            let (offset, lines) = file.lines.position();
            let more = file.lines.next_line(&mut self.line).unwrap_or_else(|e| {
                fail_operator(
                    &self.operator,
                    format!("cannot read {}: {e}", file.path.display()),
                )
            });
            if !more {
                self.file_done();
                continue;
            }
            read += 1;
            let before = out.len();
            self.emit_line(&file.path, out);
            if out.len() > before {
                self.remember(offset, lines);
            }
            self.current = Some(file);
        }
        SourcePoll::MoreAvailable
    }

    /// The splits left: each split's index and parallelism, files done, and the byte
    /// offset and line number in its next file.
    fn snapshot_position(&mut self) -> Result<Option<Vec<u8>>, StateError> {
        self.position().encode().map(Some)
    }

    /// Each split back to its first record of the last poll that did not go out,
    /// with the dead letters behind it marked as out (see `position_after`).
    fn snapshot_position_after(&mut self, emitted: usize) -> Result<Option<Vec<u8>>, StateError> {
        self.position_after(emitted)?.encode().map(Some)
    }

    /// Resumes each saved split after its files done, at the byte offset of its next
    /// line (a position saved before positions named their split is this reader's
    /// own split).
    fn restore_position(&mut self, position: &[u8]) -> Result<(), StateError> {
        let position = ReaderPosition::decode(position, self.subtask, self.parallelism)?;
        self.take_position(position);
        Ok(())
    }

    /// Takes over the splits of every position given and reads them in turn: each
    /// line left in them is read by exactly one reader of the new parallelism.
    fn restore_rescaled(&mut self, positions: &[&[u8]]) -> Result<(), StateError> {
        let positions = positions
            .iter()
            .map(|p| ReaderPosition::decode_rescaled(p))
            .collect::<Result<Vec<_>, _>>()?;
        self.take_position(ReaderPosition::merge(positions)?);
        Ok(())
    }
}

impl<T: 'static> FileReader<T> {
    /// A record of the line read at `offset`, after `lines` lines, of the first
    /// split's next file went out in this poll.
    fn remember(&mut self, offset: u64, lines: u64) {
        if let Some(split) = self.splits.front() {
            self.last_batch.push(RecordAt {
                split: (split.index, split.of),
                files_done: split.files_done,
                offset,
                lines,
            });
        }
    }

    /// Parses the line just read into `out`, or makes it a dead letter.
    fn emit_line(&mut self, path: &Path, out: &mut SourceOutput<T>) {
        if self.line.is_cut() {
            let record = String::from_utf8_lossy(&self.line.bytes).into_owned();
            let why = format!(
                "line of {} bytes is longer than the maximum of {} bytes",
                self.line.len, self.max_line_length
            );
            return self.dead_letter(path, record, why);
        }
        let text = match std::str::from_utf8(&self.line.bytes) {
            Ok(text) => text,
            Err(e) => {
                let record = String::from_utf8_lossy(&self.line.bytes).into_owned();
                let why = format!("invalid UTF-8 at byte {} of the line", e.valid_up_to());
                return self.dead_letter(path, record, why);
            }
        };
        match self.format.parse(text) {
            Ok(Some(record)) => out.collect(record),
            Ok(None) => {}
            Err(why) => {
                let record = text.to_string();
                self.dead_letter(path, record, why);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::panic::{AssertUnwindSafe, catch_unwind};

    use flink_core::checkpoint::encode_state;
    use flink_core::clock::ManualClock;
    use flink_core::failure::OperatorFailure;
    use flink_core::source::Source;

    use super::*;
    use crate::file::FileSource;

    const FILES: u64 = 5;
    /// Lines per file: a batch (1,000 lines) ends mid-file.
    const LINES: u64 = 1_500;

    /// A directory of `FILES` files, line `i` of file `f` reading `f-i`.
    fn input() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in 0..FILES {
            let text: String = (0..LINES).map(|i| format!("{f}-{i}\n")).collect();
            std::fs::write(dir.path().join(format!("in-{f}.txt")), text).unwrap();
        }
        dir
    }

    fn every_line() -> Vec<String> {
        let mut all: Vec<String> = (0..FILES)
            .flat_map(|f| (0..LINES).map(move |i| format!("{f}-{i}")))
            .collect();
        all.sort_unstable();
        all
    }

    fn reader(dir: &Path, subtask: usize, parallelism: usize) -> Box<dyn SourceReader<String>> {
        let ctx =
            RuntimeContext::standalone("Files", subtask, parallelism, Arc::new(ManualClock::new()));
        FileSource::text_lines(dir).create_reader(&ctx)
    }

    fn poll(reader: &mut dyn SourceReader<String>, polls: usize) -> Vec<String> {
        let mut out = SourceOutput::new();
        for _ in 0..polls {
            reader.poll_next(&mut out);
        }
        out.take()
    }

    fn drain(reader: &mut dyn SourceReader<String>) -> Vec<String> {
        let mut out = SourceOutput::new();
        while reader.poll_next(&mut out) != SourcePoll::Finished {}
        out.take()
    }

    fn decode(bytes: &[u8]) -> ReaderPosition {
        ReaderPosition::decode_rescaled(bytes).unwrap()
    }

    /// Two readers of `dir` at parallelism 2, polled 2 and 1 batches: what they
    /// emitted and their positions. Reader 0 is 500 lines into its second file
    /// (`in-2`), reader 1 1,000 lines into its first (`in-1`).
    fn saved_at_two(dir: &Path) -> (Vec<String>, Vec<Vec<u8>>) {
        let (mut emitted, mut saved) = (Vec::new(), Vec::new());
        for (subtask, polls) in [(0, 2), (1, 1)] {
            let mut r = reader(dir, subtask, 2);
            emitted.extend(poll(&mut *r, polls));
            saved.push(r.snapshot_position().unwrap().unwrap());
        }
        (emitted, saved)
    }

    #[test]
    fn positions_saved_at_two_restore_at_one_three_and_four_exactly_once() {
        let dir = input();
        let (emitted, saved) = saved_at_two(dir.path());
        assert_eq!(emitted.len(), 3_000);
        let first = decode(&saved[0]);
        assert_eq!(first.files, Some(FILES));
        assert_eq!(
            first.splits,
            [SplitPosition {
                files_done: 1,
                offset: (10..500)
                    .map(|i| format!("2-{i}\n").len() as u64)
                    .sum::<u64>()
                    + 10 * 4,
                lines: 500,
                next_file: Some("in-2.txt".into()),
                ..SplitPosition::fresh(0, 2)
            }]
        );
        for p in [1, 3, 4] {
            let mut all = emitted.clone();
            for i in 0..p {
                let mut r = reader(dir.path(), i, p);
                let mine: Vec<&[u8]> = flink_core::source::dealt_to(saved.iter(), i, p)
                    .map(Vec::as_slice)
                    .collect();
                r.restore_rescaled(&mine).unwrap();
                all.extend(drain(&mut *r));
            }
            all.sort_unstable();
            assert_eq!(all, every_line(), "parallelism {p}");
        }
    }

    #[test]
    fn a_reader_restored_with_two_splits_saves_both_until_it_starts() {
        let dir = input();
        let (_, saved) = saved_at_two(dir.path());
        let mut r = reader(dir.path(), 0, 1);
        let all: Vec<&[u8]> = saved.iter().map(Vec::as_slice).collect();
        r.restore_rescaled(&all).unwrap();
        let merged = ReaderPosition::merge(all.iter().map(|b| decode(b)).collect()).unwrap();
        assert_eq!(decode(&r.snapshot_position().unwrap().unwrap()), merged);
        // The first split's rest first: in-2 from line 500 (its line numbers and
        // offsets going on from the saved ones), then in-4.
        let lines = poll(&mut *r, 1);
        assert_eq!(lines.first().map(String::as_str), Some("2-500"));
        let in_2 = std::fs::metadata(dir.path().join("in-2.txt"))
            .unwrap()
            .len();
        let position = decode(&r.snapshot_position().unwrap().unwrap());
        let first = &position.splits[0];
        assert_eq!(
            (first.files_done, first.offset, first.lines),
            (1, in_2, 1_500)
        );
        poll(&mut *r, 1);
        let position = decode(&r.snapshot_position().unwrap().unwrap());
        assert_eq!(position.splits.len(), 2);
        assert_eq!(
            (position.splits[0].files_done, position.splits[0].lines),
            (2, 1_000)
        );
        assert_eq!(position.splits[1], merged.splits[1]);
    }

    #[test]
    fn a_saved_split_with_nothing_left_costs_nothing() {
        let dir = input();
        // Reader 1 of 2 reads in-1 and in-3 to their end.
        let mut done = reader(dir.path(), 1, 2);
        assert_eq!(drain(&mut *done).len(), 2 * LINES as usize);
        let saved = done.snapshot_position().unwrap().unwrap();
        assert_eq!(decode(&saved).splits, []);
        let mut fresh = reader(dir.path(), 0, 2);
        let other = fresh.snapshot_position().unwrap().unwrap();
        let mut r = reader(dir.path(), 0, 1);
        r.restore_rescaled(&[&other, &saved]).unwrap();
        let mut lines = drain(&mut *r);
        lines.sort_unstable();
        let mut expected: Vec<String> = [0, 2, 4]
            .iter()
            .flat_map(|f| (0..LINES).map(move |i| format!("{f}-{i}")))
            .collect();
        expected.sort_unstable();
        assert_eq!(lines, expected);
    }

    #[test]
    fn a_position_in_the_legacy_encoding_restores_at_the_same_parallelism() {
        let dir = input();
        let (emitted, saved) = saved_at_two(dir.path());
        let mut rest = Vec::new();
        for (subtask, bytes) in saved.iter().enumerate() {
            let split = &decode(bytes).splits[0];
            // What a reader wrote before positions named their split.
            let legacy = encode_state(&(split.files_done, split.offset, split.lines)).unwrap();
            let mut r = reader(dir.path(), subtask, 2);
            r.restore_position(&legacy).unwrap();
            rest.extend(drain(&mut *r));
            let mut r = reader(dir.path(), subtask, 3);
            let err = r.restore_rescaled(&[&legacy]).unwrap_err();
            assert!(
                err.to_string().contains("restore it at the parallelism"),
                "{err}"
            );
        }
        let mut all = [emitted, rest].concat();
        all.sort_unstable();
        assert_eq!(all, every_line());
    }

    #[test]
    fn a_corrupt_position_is_a_clear_error() {
        let dir = input();
        let mut r = reader(dir.path(), 0, 2);
        let err = r.restore_position(b"junk").unwrap_err();
        assert!(
            err.to_string().contains("not a file source position"),
            "{err}"
        );
        let err = r.restore_rescaled(&[b"junk"]).unwrap_err();
        assert!(
            err.to_string().contains("not a file source position"),
            "{err}"
        );
    }

    /// The message a reader's first poll fails its job with.
    fn first_poll_failure(reader: &mut dyn SourceReader<String>) -> String {
        let payload = catch_unwind(AssertUnwindSafe(|| poll(reader, 1))).unwrap_err();
        let failure = payload.downcast::<OperatorFailure>().unwrap();
        assert_eq!(failure.operator, "Files");
        failure.message
    }

    #[test]
    fn a_listing_that_changed_since_the_checkpoint_fails_the_restore() {
        let dir = input();
        let (_, saved) = saved_at_two(dir.path());
        std::fs::write(dir.path().join("in-9.txt"), "new\n").unwrap();
        let mut r = reader(dir.path(), 0, 2);
        r.restore_position(&saved[0]).unwrap();
        let message = first_poll_failure(&mut *r);
        assert!(
            message.starts_with("cannot restore: the checkpoint was taken over 5 files"),
            "{message}"
        );
        // The same number of files, one renamed: the split's next file differs.
        std::fs::remove_file(dir.path().join("in-9.txt")).unwrap();
        std::fs::rename(dir.path().join("in-2.txt"), dir.path().join("in-5.txt")).unwrap();
        let mut r = reader(dir.path(), 0, 1);
        r.restore_rescaled(&[&saved[0]]).unwrap();
        let message = first_poll_failure(&mut *r);
        assert_eq!(
            message,
            "cannot restore: the next file of split 0 of 2 was in-2.txt, it is in-3.txt now"
        );
    }
}
