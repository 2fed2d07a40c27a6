//! A bounded source reading the lines of a file, or of every file of a directory.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flink_core::operator::RuntimeContext;
use flink_core::source::{Boundedness, Source, SourceReader};

use super::format::{JsonLines, LineFormat, TextLines};
use super::reader::FileReader;
/// The longest line read by default: 1 MiB.
pub const DEFAULT_MAX_LINE_LENGTH: usize = 1024 * 1024;

/// Reads a file, or every regular file of a directory (not recursively; names
/// starting with `.` or `_`, such as a [`FileSink`](super::FileSink)'s in-progress
/// files, are skipped), line by line, through a [`LineFormat`].
///
/// The files, sorted by path, are split over the parallel readers deterministically:
/// file `i` goes to subtask `i % parallelism`.
///
/// With checkpointing, each reader's position is its splits left: for each, the split
/// (subtask and parallelism it was cut for), the files of it read to their end, and
/// the byte offset and line number in its next file. A job restored at another
/// parallelism deals the saved positions round-robin to its readers (saved subtask
/// `j` to reader `j % p`, as Flink redistributes a source's splits); a reader given
/// several reads their splits in turn, each from where it stopped, so every line is
/// read exactly once. The files are listed once per run, as Flink's bounded
/// `FileSource` enumerates once: a restore fails the job, naming the source, when the
/// listing no longer has the number of files the position was taken over or a split's
/// next file has another name (files added or removed after the checkpoint cannot be
/// matched to the saved positions). Positions saved before they named their split
/// restore at the parallelism they were saved with only. Behind
/// [`rate_limited`](flink_core::source::Source::rate_limited), a checkpoint taken
/// while part of a batch is held saves the position after the lines that went out,
/// marking the batch's lines behind them that went out as dead letters, so that
/// none is emitted twice.
///
/// A line that is not valid UTF-8, is longer than
/// [`max_line_length`](FileSource::max_line_length) bytes, or that the format rejects
/// becomes a [`DeadLetter<String>`](flink_core::dead_letter::DeadLetter) on the
/// [`dead_letter_tag::<String>()`](flink_core::dead_letter::dead_letter_tag) side output
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

pub(super) fn list_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
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
        Box::new(FileReader::new(
            self.path.clone(),
            self.format.clone(),
            self.max_line_length,
            ctx,
        ))
    }

    /// A reader takes over the splits of the readers of a run at another
    /// parallelism (see the type's documentation).
    fn can_restore_rescaled(&self) -> bool {
        true
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
