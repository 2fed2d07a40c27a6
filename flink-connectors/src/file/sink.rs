//! A sink writing records as lines into rolling part files.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flink_core::operator::RuntimeContext;
use flink_core::sink::{Sink, SinkError, SinkWriter};
use serde::Serialize;
use thiserror::Error;

/// Why a [`FileSink`] failed.
#[derive(Debug, Error)]
pub enum FileSinkError {
    /// A file could not be created, written or renamed.
    #[error("file sink: {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A record could not be encoded.
    #[error("file sink: cannot encode a record: {0}")]
    Encode(String),
}

pub(super) type Encoder<T> = dyn Fn(&T, &mut Vec<u8>) -> Result<(), String> + Send + Sync;

/// Writes each record as one line into part files of a directory.
///
/// Subtask `s` writes `part-<s>-<n>` for `n = 0, 1, ...`. A part is written as the
/// hidden in-progress file `.part-<s>-<n>.inprogress` and renamed to its final name
/// when it rolls (it reached [`max_part_size`](Self::max_part_size) bytes; a line is
/// never split) and in `finish()` at end of input. So a final name only ever holds a
/// complete part, and a [`FileSource`](super::FileSource) over the directory skips
/// the in-progress files. A failed job leaves its in-progress files behind; for
/// exactly-once part files with checkpoints use
/// [`exactly_once`](FileSink::exactly_once).
///
/// ```no_run
/// use flink_connectors::file::FileSink;
/// use flink_core::prelude::*;
///
/// let env = StreamExecutionEnvironment::new();
/// env.from_sequence(1, 100)
///     .sink_to(FileSink::<u64>::json_lines("/tmp/out").max_part_size(1 << 20));
/// ```
pub struct FileSink<T> {
    pub(super) dir: PathBuf,
    pub(super) max_part_size: u64,
    pub(super) encoder: Arc<Encoder<T>>,
}

impl<T: std::fmt::Display> FileSink<T> {
    /// Writes each record's `Display` form as a line.
    pub fn text(dir: impl AsRef<Path>) -> Self {
        Self::with_encoder(dir, |r: &T, buf: &mut Vec<u8>| {
            write!(buf, "{r}").map_err(|e| e.to_string())
        })
    }
}

impl<T: Serialize> FileSink<T> {
    /// Writes each record as one JSON document per line.
    pub fn json_lines(dir: impl AsRef<Path>) -> Self {
        Self::with_encoder(dir, |r: &T, buf: &mut Vec<u8>| {
            serde_json::to_writer(buf, r).map_err(|e| e.to_string())
        })
    }
}

impl<T> FileSink<T> {
    /// Writes each record with `encode`, which appends the line (without its `\n`).
    pub fn with_encoder(
        dir: impl AsRef<Path>,
        encode: impl Fn(&T, &mut Vec<u8>) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        Self {
            dir: dir.as_ref().to_path_buf(),
            max_part_size: 128 * 1024 * 1024,
            encoder: Arc::new(encode),
        }
    }

    /// Rolls to a new part file once the current one holds at least `bytes` bytes
    /// (default 128 MiB).
    pub fn max_part_size(mut self, bytes: u64) -> Self {
        self.max_part_size = bytes.max(1);
        self
    }
}

impl<T: Send + 'static> Sink<T> for FileSink<T> {
    fn create_writer(&self, ctx: &RuntimeContext) -> Box<dyn SinkWriter<T>> {
        Box::new(PartWriter {
            dir: self.dir.clone(),
            subtask: ctx.subtask_index,
            max_part_size: self.max_part_size,
            encoder: self.encoder.clone(),
            next_part: 0,
            current: None,
            line: Vec::new(),
        })
    }
}

struct Part {
    in_progress: PathBuf,
    final_path: PathBuf,
    out: BufWriter<File>,
    written: u64,
}

struct PartWriter<T> {
    dir: PathBuf,
    subtask: usize,
    max_part_size: u64,
    encoder: Arc<Encoder<T>>,
    next_part: u64,
    current: Option<Part>,
    line: Vec<u8>,
}

pub(super) fn io(
    action: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> FileSinkError {
    let path = path.to_path_buf();
    move |source| FileSinkError::Io {
        action,
        path,
        source,
    }
}

impl<T> PartWriter<T> {
    fn open(&mut self) -> Result<&mut Part, FileSinkError> {
        if self.current.is_none() {
            std::fs::create_dir_all(&self.dir).map_err(io("create directory", &self.dir))?;
            let name = format!("part-{}-{}", self.subtask, self.next_part);
            self.next_part += 1;
            let in_progress = self.dir.join(format!(".{name}.inprogress"));
            let file = File::create(&in_progress).map_err(io("create", &in_progress))?;
            tracing::debug!(path = %in_progress.display(), "file sink: new part");
            self.current = Some(Part {
                in_progress,
                final_path: self.dir.join(name),
                out: BufWriter::with_capacity(64 * 1024, file),
                written: 0,
            });
        }
        Ok(self.current.as_mut().expect("just opened"))
    }

    fn close(&mut self) -> Result<(), FileSinkError> {
        if let Some(mut part) = self.current.take() {
            part.out.flush().map_err(io("write", &part.in_progress))?;
            part.out
                .get_ref()
                .sync_all()
                .map_err(io("sync", &part.in_progress))?;
            std::fs::rename(&part.in_progress, &part.final_path)
                .map_err(io("rename", &part.in_progress))?;
            tracing::debug!(path = %part.final_path.display(), bytes = part.written, "file sink: part done");
        }
        Ok(())
    }
}

impl<T: Send> SinkWriter<T> for PartWriter<T> {
    fn write(&mut self, record: T) -> Result<(), SinkError> {
        self.line.clear();
        (self.encoder)(&record, &mut self.line).map_err(FileSinkError::Encode)?;
        self.line.push(b'\n');
        let max = self.max_part_size;
        let line = std::mem::take(&mut self.line);
        let part = self.open()?;
        let result = part.out.write_all(&line);
        part.written += line.len() as u64;
        let full = part.written >= max;
        let path = part.in_progress.clone();
        self.line = line;
        result.map_err(io("write", &path))?;
        if full {
            self.close()?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.close()?;
        Ok(())
    }
}
