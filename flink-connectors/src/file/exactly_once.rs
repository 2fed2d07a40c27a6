//! [`FileSink`] with exactly-once part files, as Flink's `FileSink`: a part is
//! written in progress, becomes pending when it rolls or a checkpoint barrier
//! arrives, and is committed (renamed to its final name) only when that checkpoint
//! completes. A committed file is never rewritten: part numbers only grow, also
//! across restarts.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use flink_core::operator::RuntimeContext;
use flink_core::sink::SinkError;
use flink_core::transactional::{TransactionalSink, TwoPhaseCommitSink, TwoPhaseCommitWriter};
use serde::{Deserialize, Serialize};

use super::sink::{Encoder, FileSink, FileSinkError, io};

/// The pending parts of one checkpoint: renamed to their final names on commit.
#[derive(Debug, Serialize, Deserialize)]
pub struct PendingParts {
    /// Part names (`part-<subtask>-<n>`), each now `.part-<subtask>-<n>.pending`.
    parts: Vec<String>,
}

impl<T: Send + 'static> FileSink<T> {
    /// This sink with exactly-once part files: enable checkpointing, and each
    /// checkpoint's parts become visible (`part-<subtask>-<n>`) when it completes;
    /// after a restore, the parts of the restored checkpoint are committed and
    /// anything written after it is deleted. Without checkpoints, the parts are
    /// committed when the input ends. See docs/checkpoints.md.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use flink_connectors::file::FileSink;
    /// use flink_core::prelude::*;
    ///
    /// let env = StreamExecutionEnvironment::new();
    /// env.enable_checkpointing(Duration::from_secs(1));
    /// env.from_sequence(1, 100)
    ///     .sink_to(FileSink::<u64>::json_lines("/tmp/out").exactly_once());
    /// ```
    pub fn exactly_once(self) -> TransactionalSink<Self> {
        TransactionalSink::new(self)
    }
}

impl<T: Send + 'static> TwoPhaseCommitSink<T> for FileSink<T> {
    type Writer = TransactionalPartWriter<T>;

    fn create_writer(&self, ctx: &RuntimeContext) -> Self::Writer {
        TransactionalPartWriter {
            dir: self.dir.clone(),
            subtask: ctx.subtask_index,
            parallelism: ctx.parallelism,
            max_part_size: self.max_part_size,
            encoder: self.encoder.clone(),
            next_part: None,
            current: None,
            line: Vec::new(),
            leftovers_removed: false,
        }
    }
}

/// The part being written.
struct InProgress {
    name: String,
    path: PathBuf,
    out: BufWriter<File>,
    written: u64,
}

/// One instance of an exactly-once [`FileSink`].
pub struct TransactionalPartWriter<T> {
    dir: PathBuf,
    subtask: usize,
    parallelism: usize,
    max_part_size: u64,
    encoder: Arc<Encoder<T>>,
    /// The next part number; found in the directory on first use.
    next_part: Option<u64>,
    current: Option<InProgress>,
    line: Vec<u8>,
    /// Whether the parts of a failed attempt that were never committed are gone.
    leftovers_removed: bool,
}

fn in_progress_name(part: &str) -> String {
    format!(".{part}.inprogress")
}

fn pending_name(part: &str) -> String {
    format!(".{part}.pending")
}

impl<T> TransactionalPartWriter<T> {
    /// Where the parts `txn` rolled wait for their commit.
    fn pending_paths(&self, txn: &PendingParts) -> Vec<PathBuf> {
        txn.parts
            .iter()
            .map(|part| self.dir.join(pending_name(part)))
            .collect()
    }

    /// The subtask and part number of a part file's name in any state, if it is one.
    fn part_of(file: &str) -> Option<(usize, u64)> {
        let name = file.trim_start_matches('.');
        let name = name
            .strip_suffix(".inprogress")
            .or_else(|| name.strip_suffix(".pending"))
            .unwrap_or(name);
        let (subtask, number) = name.strip_prefix("part-")?.split_once('-')?;
        Some((subtask.parse().ok()?, number.parse().ok()?))
    }

    /// This subtask's part number in a file name of any state, if it is one.
    fn part_number(&self, file: &str) -> Option<u64> {
        Self::part_of(file)
            .filter(|(subtask, _)| *subtask == self.subtask)
            .map(|(_, number)| number)
    }

    /// Whether this instance removes the uncommitted parts of `subtask`: its own, and
    /// those of subtasks that no longer exist after a restore at a lower parallelism,
    /// whose saved transactions go to instance `subtask % parallelism` (this one
    /// commits them first, so what is left of them holds records after the restored
    /// checkpoint, which the sources replay).
    fn cleans_up_after(&self, subtask: usize) -> bool {
        subtask == self.subtask
            || (subtask >= self.parallelism && subtask % self.parallelism == self.subtask)
    }

    fn files(&self) -> Result<Vec<String>, FileSinkError> {
        std::fs::create_dir_all(&self.dir).map_err(io("create directory", &self.dir))?;
        let entries = std::fs::read_dir(&self.dir).map_err(io("list", &self.dir))?;
        Ok(entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect())
    }

    /// Deletes the uncommitted parts (in progress or pending) an earlier attempt left
    /// of this subtask and of the vanished subtasks it stands in for: they hold
    /// records after the checkpoint restored from, which the sources replay. Runs
    /// once, after any restored parts were committed.
    fn remove_leftovers(&mut self) -> Result<(), FileSinkError> {
        if self.leftovers_removed {
            return Ok(());
        }
        for file in self.files()? {
            let uncommitted = file.ends_with(".inprogress") || file.ends_with(".pending");
            let mine = Self::part_of(&file).is_some_and(|(s, _)| self.cleans_up_after(s));
            if uncommitted && mine {
                let path = self.dir.join(&file);
                std::fs::remove_file(&path).map_err(io("delete", &path))?;
                tracing::debug!(path = %path.display(), "file sink: aborted an uncommitted part");
            }
        }
        self.leftovers_removed = true;
        Ok(())
    }

    /// The next part number: above every part of this subtask in the directory.
    fn next_part(&mut self) -> Result<u64, FileSinkError> {
        let next = match self.next_part {
            Some(n) => n,
            None => self
                .files()?
                .iter()
                .filter_map(|f| self.part_number(f))
                .max()
                .map_or(0, |n| n + 1),
        };
        self.next_part = Some(next + 1);
        Ok(next)
    }

    fn open(&mut self) -> Result<&mut InProgress, FileSinkError> {
        if self.current.is_none() {
            self.remove_leftovers()?;
            let number = self.next_part()?;
            let name = format!("part-{}-{number}", self.subtask);
            let path = self.dir.join(in_progress_name(&name));
            let file = File::create(&path).map_err(io("create", &path))?;
            self.current = Some(InProgress {
                name,
                path,
                out: BufWriter::with_capacity(64 * 1024, file),
                written: 0,
            });
        }
        Ok(self.current.as_mut().expect("just opened"))
    }

    /// Closes the part in progress, durably, as pending in `txn`.
    fn roll(&mut self, txn: &mut PendingParts) -> Result<(), FileSinkError> {
        if let Some(mut part) = self.current.take() {
            part.out.flush().map_err(io("write", &part.path))?;
            part.out
                .get_ref()
                .sync_all()
                .map_err(io("sync", &part.path))?;
            let pending = self.dir.join(pending_name(&part.name));
            std::fs::rename(&part.path, &pending).map_err(io("rename", &part.path))?;
            txn.parts.push(part.name);
        }
        Ok(())
    }
}

impl<T: Send> TwoPhaseCommitWriter<T> for TransactionalPartWriter<T> {
    type Transaction = PendingParts;

    /// A transaction starts empty; the first one of the writer first deletes what
    /// an earlier attempt left uncommitted (after every restored part was
    /// committed: `restore_state` runs before any transaction begins). A writer
    /// begins one on every barrier, so this happens by the first checkpoint even
    /// if no record comes.
    fn begin_transaction(&mut self) -> Result<PendingParts, SinkError> {
        self.remove_leftovers()?;
        Ok(PendingParts { parts: Vec::new() })
    }

    fn write(&mut self, txn: &mut PendingParts, record: T) -> Result<(), SinkError> {
        self.line.clear();
        (self.encoder)(&record, &mut self.line).map_err(FileSinkError::Encode)?;
        self.line.push(b'\n');
        let max = self.max_part_size;
        let line = std::mem::take(&mut self.line);
        let part = self.open()?;
        let result = part.out.write_all(&line);
        part.written += line.len() as u64;
        let (full, path) = (part.written >= max, part.path.clone());
        self.line = line;
        result.map_err(io("write", &path))?;
        if full {
            self.roll(txn)?;
        }
        Ok(())
    }

    /// The part in progress becomes pending: the checkpoint holds every record
    /// written so far in durable, pending parts.
    fn pre_commit(&mut self, txn: &mut PendingParts, _checkpoint_id: u64) -> Result<(), SinkError> {
        self.roll(txn)?;
        Ok(())
    }

    /// Renames each pending part to its final name; a part already committed (after
    /// a restore) is left as it is.
    fn commit(&mut self, txn: PendingParts) -> Result<(), SinkError> {
        for part in txn.parts {
            let pending = self.dir.join(pending_name(&part));
            let committed = self.dir.join(&part);
            if pending.exists() {
                std::fs::rename(&pending, &committed).map_err(io("rename", &pending))?;
            } else if !committed.exists() {
                return Err(Box::new(FileSinkError::Io {
                    action: "commit",
                    path: pending,
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "a pending part of a completed checkpoint is missing",
                    ),
                }));
            }
        }
        Ok(())
    }

    /// The task failed or was cancelled with `txn` open: its pending parts and the
    /// part in progress (which belongs to the open transaction) are deleted now,
    /// rather than by the next attempt.
    fn abort(&mut self, txn: PendingParts) -> Result<(), SinkError> {
        let mut doomed = self.pending_paths(&txn);
        if let Some(part) = self.current.take() {
            drop(part.out);
            doomed.push(part.path);
        }
        delete_uncommitted(&doomed)
    }

    /// The transaction open at the restored checkpoint: its handle names only the
    /// parts it had rolled by then (none: it began at the barrier), deleted if
    /// still pending. The parts it wrote after the checkpoint are not in the
    /// handle; they go with every uncommitted part of this subtask when its first
    /// transaction begins (`remove_leftovers`).
    fn recover_and_abort(&mut self, txn: PendingParts) -> Result<(), SinkError> {
        delete_uncommitted(&self.pending_paths(&txn))
    }
}

/// Deletes uncommitted part files (in progress or pending); a missing one was
/// deleted or committed already. A failure is logged (an abort in a writer's drop
/// cannot raise it) and returned.
fn delete_uncommitted(paths: &[PathBuf]) -> Result<(), SinkError> {
    for path in paths {
        match std::fs::remove_file(path) {
            Ok(()) => {
                tracing::debug!(path = %path.display(), "file sink: aborted an uncommitted part")
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "file sink: cannot delete an aborted part");
                return Err(Box::new(FileSinkError::Io {
                    action: "delete",
                    path: path.clone(),
                    source: e,
                }));
            }
        }
    }
    Ok(())
}
