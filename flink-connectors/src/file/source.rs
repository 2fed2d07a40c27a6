//! A bounded source reading the lines of a file, or of every file of a directory.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flink_core::dead_letter::{DeadLetter, dead_letter_tag};
use flink_core::functions::Collector;
use flink_core::operator::RuntimeContext;
use flink_core::side_output::SideOutput;
use flink_core::source::{Boundedness, Source, SourceOutput, SourcePoll, SourceReader};

use super::format::{JsonLines, LineFormat, TextLines};

/// Lines read per poll.
const BATCH: usize = 1_000;

/// Reads a file, or every regular file of a directory (not recursively; names
/// starting with `.` or `_`, such as a [`FileSink`](super::FileSink)'s in-progress
/// files, are skipped), line by line, through a [`LineFormat`].
///
/// The files, sorted by path, are split over the parallel readers deterministically:
/// file `i` goes to subtask `i % parallelism`. A line the format rejects becomes a
/// [`DeadLetter<String>`] (the line, and the file, line number and parse error as
/// reason) on the [`dead_letter_tag::<String>()`] side output, and reading goes on.
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
        }
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
        // Opening it later reports a missing file with its path.
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
            subtask: ctx.subtask_index,
            parallelism: ctx.parallelism,
            operator: ctx.operator_name.to_string(),
            dead_letters: ctx.side_output(&dead_letter_tag::<String>()),
            pending: None,
            current: None,
        })
    }
}

struct OpenFile {
    path: PathBuf,
    reader: BufReader<File>,
    line_no: u64,
}

struct FileReader<T> {
    root: PathBuf,
    format: Arc<dyn LineFormat<T>>,
    subtask: usize,
    parallelism: usize,
    operator: String,
    dead_letters: SideOutput<DeadLetter<String>>,
    /// Files still to read (listed at the first poll), in reverse order.
    pending: Option<Vec<PathBuf>>,
    current: Option<OpenFile>,
}

impl<T> FileReader<T> {
    fn next_file(&mut self) -> Option<OpenFile> {
        let pending = self.pending.get_or_insert_with(|| {
            let all = list_files(&self.root).unwrap_or_else(|e| {
                panic!("file source: cannot list {}: {e}", self.root.display())
            });
            let mut mine: Vec<PathBuf> = all
                .into_iter()
                .enumerate()
                .filter(|(i, _)| i % self.parallelism == self.subtask)
                .map(|(_, p)| p)
                .collect();
            tracing::debug!(
                subtask = self.subtask,
                files = mine.len(),
                "file source split"
            );
            mine.reverse();
            mine
        });
        let path = pending.pop()?;
        let file = File::open(&path)
            .unwrap_or_else(|e| panic!("file source: cannot open {}: {e}", path.display()));
        Some(OpenFile {
            path,
            reader: BufReader::with_capacity(64 * 1024, file),
            line_no: 0,
        })
    }
}

impl<T: Send + 'static> SourceReader<T> for FileReader<T> {
    fn poll_next(&mut self, out: &mut SourceOutput<T>) -> SourcePoll {
        let mut read = 0;
        while read < BATCH {
            if self.current.is_none() {
                self.current = self.next_file();
                if self.current.is_none() {
                    return SourcePoll::Finished;
                }
            }
            let file = self.current.as_mut().expect("just opened");
            let mut line = String::new();
            let n = file.reader.read_line(&mut line).unwrap_or_else(|e| {
                panic!("file source: cannot read {}: {e}", file.path.display())
            });
            if n == 0 {
                self.current = None;
                continue;
            }
            file.line_no += 1;
            read += 1;
            if line.ends_with('\n') {
                line.pop();
                if line.ends_with('\r') {
                    line.pop();
                }
            }
            match self.format.parse(&line) {
                Ok(Some(record)) => out.collect(record),
                Ok(None) => {}
                Err(reason) => {
                    let reason = format!("{}:{}: {reason}", file.path.display(), file.line_no);
                    self.dead_letters
                        .collect(DeadLetter::new(line, &self.operator, reason));
                }
            }
        }
        SourcePoll::MoreAvailable
    }
}
