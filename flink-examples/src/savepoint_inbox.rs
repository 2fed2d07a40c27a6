//! Savepoints asked for through files, so a test (or an operator without the REST
//! API) can ask one particular process of a job for a savepoint: the process polls
//! its inbox directory for `request-<process>-<n>` files holding `trigger <target>`,
//! `stop <target>` or `stop-drain <target>`, calls `JobControl::trigger_savepoint` /
//! `stop_with_savepoint` (without drain) / `stop_with_savepoint_and_drain` with the
//! target, and writes the outcome to
//! `answer-<process>-<n>` (`ok <savepoint path>` or `error <message>`; written to
//! a temporary name, then renamed, so a reader never sees half of it).

use std::path::{Path, PathBuf};

use flink_runtime::job_client::JobControl;

/// The inbox of one process.
pub struct SavepointInbox {
    dir: PathBuf,
    process: usize,
}

impl SavepointInbox {
    /// The inbox of process `process` in `dir`.
    pub fn new(dir: &Path, process: usize) -> Self {
        Self {
            dir: dir.to_path_buf(),
            process,
        }
    }

    /// Takes every request waiting (renaming it so it is taken once) and answers
    /// each on a thread of its own: a savepoint blocks until it completed.
    pub fn serve(&self, control: &JobControl) -> std::io::Result<()> {
        let prefix = format!("request-{}-", self.process);
        for entry in std::fs::read_dir(&self.dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            let Some(number) = name.strip_prefix(&prefix) else {
                continue;
            };
            if number.ends_with(".taken") {
                continue;
            }
            let request = self.dir.join(&name);
            let taken = self.dir.join(format!("{name}.taken"));
            std::fs::rename(&request, &taken)?;
            let text = std::fs::read_to_string(&taken)?;
            let answer = self.dir.join(format!("answer-{}-{number}", self.process));
            let control = control.clone();
            std::thread::spawn(move || {
                let outcome = match text.trim().split_once(' ') {
                    Some(("trigger", target)) => control.trigger_savepoint(target),
                    Some(("stop", target)) => control.stop_with_savepoint(target),
                    Some(("stop-drain", target)) => control.stop_with_savepoint_and_drain(target),
                    _ => {
                        let _ = write_atomically(&answer, &format!("error bad request {text:?}"));
                        return;
                    }
                };
                let text = match outcome {
                    Ok(path) => format!("ok {path}"),
                    Err(e) => format!("error {e}"),
                };
                if let Err(e) = write_atomically(&answer, &text) {
                    eprintln!("cannot write {}: {e}", answer.display());
                }
            });
        }
        Ok(())
    }
}

/// Writes `text` to `path` through a temporary file and a rename.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, path)
}
