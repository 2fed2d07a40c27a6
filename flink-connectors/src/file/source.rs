//! A bounded source reading the lines of a file, or of every file of a directory.

use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flink_core::checkpoint::{StateError, decode_state, encode_state};
use flink_core::dead_letter::{DeadLetter, dead_letter_tag};
use flink_core::failure::fail_operator;
use flink_core::functions::Collector;
use flink_core::operator::RuntimeContext;
use flink_core::side_output::SideOutput;
use flink_core::source::{Boundedness, Source, SourceOutput, SourcePoll, SourceReader};

use super::format::{JsonLines, LineFormat, TextLines};
use super::line_reader::{Line, LineReader};

/// Lines read per poll.
const BATCH: usize = 1_000;
/// The longest line read by default: 1 MiB.
pub const DEFAULT_MAX_LINE_LENGTH: usize = 1024 * 1024;

/// Reads a file, or every regular file of a directory (not recursively; names
/// starting with `.` or `_`, such as a [`FileSink`](super::FileSink)'s in-progress
/// files, are skipped), line by line, through a [`LineFormat`].
///
/// The files, sorted by path, are split over the parallel readers deterministically:
/// file `i` goes to subtask `i % parallelism`.
///
/// A line that is not valid UTF-8, is longer than
/// [`max_line_length`](FileSource::max_line_length) bytes, or that the format rejects
/// becomes a [`DeadLetter<String>`] on the [`dead_letter_tag::<String>()`] side output
/// and reading goes on. The dead letter's reason names the file, the line number and
/// the line's byte offset in the file; its record is the line (invalid UTF-8 replaced
/// by U+FFFD, an over-long line cut at the maximum).
///
/// A path that does not exist or cannot be read fails the job when it is built
/// ([`GraphError::InvalidSource`](flink_core::error::GraphError::InvalidSource)); a
/// file that vanishes or fails while the job runs fails the job with an error naming
/// the source.
///
/// ```no_run
/// use flink_connectors::file::FileSource;
/// use flink_core::dead_letter::dead_letter_tag;
/// use flink_core::prelude::*;
///
/// #[derive(serde::Deserialize, serde::Serialize, Clone, Debug)]
/// struct Event { id: u64 }
///
/// let env = StreamExecutionEnvironment::new();
/// let events = env.from_source(FileSource::<Event>::json_lines("/data/events"), "Events");
/// let bad_lines = events.side_output(&dead_letter_tag::<String>()).collect_vec();
/// let good = events.collect_vec();
/// # let _ = (bad_lines, good);
/// ```
pub struct FileSource<T> {
    path: PathBuf,
    format: Arc<dyn LineFormat<T>>,
    max_line_length: usize,
}

impl FileSource<String> {
    /// Every line of the file(s) at `path` as a `String`.
    pub fn text_lines(path: impl AsRef<Path>) -> Self {
        Self::with_format(path, TextLines)
    }
}

impl<T: serde::de::DeserializeOwned + 'static> FileSource<T> {
    /// Every non-empty line of the file(s) at `path` as a JSON document of `T`.
    pub fn json_lines(path: impl AsRef<Path>) -> Self {
        Self::with_format(path, JsonLines::<T>::new())
    }
}

impl<T> FileSource<T> {
    /// Lines of the file(s) at `path` through a user's `format`.
    pub fn with_format(path: impl AsRef<Path>, format: impl LineFormat<T>) -> Self {
        Self {
            path: path.as_ref().to_path_buf(),
            format: Arc::new(format),
            max_line_length: DEFAULT_MAX_LINE_LENGTH,
        }
    }

    /// Lines longer than `bytes` (without their terminator) become dead letters
    /// holding their first `bytes` bytes; at most that much of a line is held in
    /// memory. Default [`DEFAULT_MAX_LINE_LENGTH`]; zero fails the job's build.
    pub fn max_line_length(mut self, bytes: usize) -> Self {
        self.max_line_length = bytes;
        self
    }

    /// The files this source reads, in split order.
    ///
    /// # Errors
    /// When the path cannot be read.
    pub fn files(&self) -> std::io::Result<Vec<PathBuf>> {
        list_files(&self.path)
    }
}

fn list_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name.starts_with('_') || !entry.file_type()?.is_file() {
            continue;
        }
        files.push(entry.path());
    }
    files.sort();
    Ok(files)
}

impl<T: Send + 'static> Source<T> for FileSource<T> {
    fn boundedness(&self) -> Boundedness {
        Boundedness::Bounded
    }

    fn create_reader(&self, ctx: &RuntimeContext) -> Box<dyn SourceReader<T>> {
        Box::new(FileReader {
            root: self.path.clone(),
            format: self.format.clone(),
            max_line_length: self.max_line_length,
            subtask: ctx.subtask_index,
            parallelism: ctx.parallelism,
            operator: ctx.operator_name.to_string(),
            dead_letters: ctx.side_output(&dead_letter_tag::<String>()),
            pending: None,
            current: None,
            line: Line::default(),
            files_done: 0,
            restore: None,
        })
    }

    /// The path exists and every file to read can be opened (an empty directory is
    /// fine: it has no lines); the maximum line length is not zero.
    fn validate(&self) -> Result<(), String> {
        if self.max_line_length == 0 {
            return Err("max_line_length must be at least 1 byte, got 0".into());
        }
        let files = list_files(&self.path)
            .map_err(|e| format!("cannot list {}: {e}", self.path.display()))?;
        for file in files {
            File::open(&file).map_err(|e| format!("cannot open {}: {e}", file.display()))?;
        }
        Ok(())
    }
}

struct OpenFile {
    path: PathBuf,
    lines: LineReader<BufReader<File>>,
}

struct FileReader<T> {
    root: PathBuf,
    format: Arc<dyn LineFormat<T>>,
    max_line_length: usize,
    subtask: usize,
    parallelism: usize,
    operator: String,
    dead_letters: SideOutput<DeadLetter<String>>,
    /// Files still to read (listed at the first poll), in reverse order.
    pending: Option<Vec<PathBuf>>,
    current: Option<OpenFile>,
    /// The line being read, its buffer reused.
    line: Line,
    /// Files of this reader's split read to their end.
    files_done: u64,
    /// A checkpointed position to resume from, applied when the files are listed.
    restore: Option<FilePosition>,
}

/// Where a file reader is: files of its split done, then the next line's byte offset
/// and number in the file being read.
#[derive(serde::Serialize, serde::Deserialize)]
struct FilePosition {
    files_done: u64,
    offset: u64,
    lines: u64,
}

impl<T> FileReader<T> {
    /// Opens the next file of this reader's split. A path that cannot be listed or
    /// opened now (it was checked when the job was built) fails the job, naming this
    /// source.
    fn next_file(&mut self) -> Option<OpenFile> {
        if self.pending.is_none() {
            let all = list_files(&self.root).unwrap_or_else(|e| {
                fail_operator(
                    &self.operator,
                    format!("cannot list {}: {e}", self.root.display()),
                )
            });
            let mut mine: Vec<PathBuf> = all
                .into_iter()
                .enumerate()
                .filter(|(i, _)| i % self.parallelism == self.subtask)
                .map(|(_, p)| p)
                .collect();
            tracing::debug!(
                subtask = %format_args!("{}/{}", self.subtask + 1, self.parallelism),
                files = mine.len(),
                "file source split"
            );
            if let Some(p) = &self.restore
                && p.files_done > mine.len() as u64
            {
                fail_operator(
                    &self.operator,
                    format!(
                        "cannot restore: the checkpoint read {} files of this split, {} has {} now",
                        p.files_done,
                        self.root.display(),
                        mine.len()
                    ),
                );
            }
            let skip = self.restore.as_ref().map_or(0, |p| p.files_done as usize);
            mine.drain(..skip);
            self.files_done = skip as u64;
            mine.reverse();
            self.pending = Some(mine);
        }
        let path = self.pending.as_mut()?.pop()?;
        let mut file = File::open(&path).unwrap_or_else(|e| {
            fail_operator(
                &self.operator,
                format!("cannot open {}: {e}", path.display()),
            )
        });
        let (offset, lines) = match self.restore.take() {
            Some(p) => (p.offset, p.lines),
            None => (0, 0),
        };
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

    fn dead_letter(&mut self, path: &Path, record: String, why: String) {
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

impl<T: Send + 'static> SourceReader<T> for FileReader<T> {
    fn poll_next(&mut self, out: &mut SourceOutput<T>) -> SourcePoll {
        let mut read = 0;
        while read < BATCH {
            // Taken out while its line is handled, so the line can borrow the reader.
            let Some(mut file) = self.current.take().or_else(|| self.next_file()) else {
                return SourcePoll::Finished;
            };
            let more = file.lines.next_line(&mut self.line).unwrap_or_else(|e| {
                fail_operator(
                    &self.operator,
                    format!("cannot read {}: {e}", file.path.display()),
                )
            });
            if !more {
                self.files_done += 1;
                continue;
            }
            read += 1;
            self.emit_line(&file.path, out);
            self.current = Some(file);
        }
        SourcePoll::MoreAvailable
    }

    /// Files done, and the byte offset and line number in the current file.
    fn snapshot_position(&mut self) -> Result<Option<Vec<u8>>, StateError> {
        if let Some(restore) = &self.restore {
            // Not started since the restore: the position is the restored one.
            return encode_state(restore).map(Some);
        }
        let (offset, lines) = self.current.as_ref().map_or((0, 0), |f| f.lines.position());
        encode_state(&FilePosition {
            files_done: self.files_done,
            offset,
            lines,
        })
        .map(Some)
    }

    /// Resumes after the files done, at the byte offset of the next line.
    fn restore_position(&mut self, position: &[u8]) -> Result<(), StateError> {
        self.restore = Some(decode_state(position)?);
        Ok(())
    }
}

impl<T: 'static> FileReader<T> {
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
