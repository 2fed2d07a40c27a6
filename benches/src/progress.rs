//! Progress of a harness run on standard error: an `indicatif` bar of the records the
//! job's sources read, with their rate and the time left. Drawn only when standard
//! error is a terminal, so a redirected run prints nothing but its result lines (and a
//! run with nobody watching does not even poll).

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use flink_runtime::job_client::JobObserver;
use flink_runtime::job_result::OperatorRole;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// How often the bar reads the job's counters.
const REFRESH: Duration = Duration::from_millis(200);

/// A bar of `len` steps on standard error (hidden when it is not a terminal), styled
/// with `template`, which may use `{rate}`: steps per second as a whole number.
pub fn bar(len: u64, template: &str, prefix: &str) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    bar.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .with_key(
                "rate",
                |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.0} rec/s", state.per_sec());
                },
            )
            .progress_chars("=> "),
    );
    bar.set_prefix(prefix.to_string());
    bar
}

/// Shows the records a job's sources read, of `total`, until dropped.
pub struct JobProgress {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl JobProgress {
    /// Starts watching `job`, named `name`, which reads `total` records.
    pub fn start(name: &str, total: u64, job: JobObserver) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let bar = bar(
            total,
            "{prefix:<14} [{bar:30}] {human_pos:>13}/{human_len:<13} {rate:>16} eta {eta}",
            name,
        );
        if bar.is_hidden() {
            return Self { stop, thread: None };
        }
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::park_timeout(REFRESH);
                    let read: u64 = job
                        .operator_metrics()
                        .iter()
                        .filter(|o| o.role == OperatorRole::Source)
                        .map(|o| o.records_out)
                        .sum();
                    bar.set_position(read);
                }
                bar.finish_and_clear();
            })
            .ok();
        Self { stop, thread }
    }
}

impl Drop for JobProgress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}
