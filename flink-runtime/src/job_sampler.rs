//! [`JobSampler`]: looks at a running job every interval, on a thread of its own,
//! until it is dropped: the piece behind live views such as the pipeline monitor.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::job_client::JobObserver;
use crate::task_metrics::TaskMetricsSnapshot;

/// Calls a function every `interval` with the job and its task metrics at the start
/// and at the end of that interval (so time shares over the window can be taken).
/// Stops, and joins its thread, when dropped.
///
/// ```
/// use std::time::Duration;
/// use flink_runtime::job_sampler::JobSampler;
/// use flink_runtime::prelude::*;
///
/// let env = StreamExecutionEnvironment::new();
/// env.from_sequence(1, 1_000).collect_vec();
/// let client = env.execute_async("sampled").unwrap();
/// let sampler = JobSampler::start(
///     "progress",
///     client.observer(),
///     Duration::from_millis(100),
///     |job, before, now| {
///         let at_sink = job.operator_metrics().last().map_or(0, |o| o.records_in);
///         let shares: Vec<_> = now.iter().zip(before).map(|(n, b)| n.shares_since(b)).collect();
///         eprintln!("{at_sink} records at the sink; {shares:?}");
///     },
/// )
/// .unwrap();
/// client.wait().unwrap();
/// drop(sampler);
/// ```
pub struct JobSampler {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl JobSampler {
    /// Starts sampling `job` every `interval` on a thread called `name`.
    pub fn start(
        name: &str,
        job: JobObserver,
        interval: Duration,
        mut on_sample: impl FnMut(&JobObserver, &[TaskMetricsSnapshot], &[TaskMetricsSnapshot])
        + Send
        + 'static,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let mut before = job.task_metrics();
                while !flag.load(Ordering::Relaxed) {
                    std::thread::park_timeout(interval);
                    if flag.load(Ordering::Relaxed) {
                        break;
                    }
                    let now = job.task_metrics();
                    on_sample(&job, &before, &now);
                    before = now;
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for JobSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}
