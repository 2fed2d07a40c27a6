//! Running a dataflow on every worker and timing it as the harness times a job.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

use timely::Config;
use timely::dataflow::Scope;

/// One finished run: wall seconds and the records every worker's sink counted.
pub struct Run {
    pub seconds: f64,
    pub sink: u64,
}

/// Builds the dataflow `build` makes on every worker of `config` (it gets the scope
/// and the worker's sink counter), runs it to completion and times it from the
/// earliest worker's first step to the latest worker's last.
pub fn run<F>(config: Config, build: F) -> Result<Run, String>
where
    F: for<'s> Fn(Scope<'s, u64>, Rc<Cell<u64>>) + Send + Sync + 'static,
{
    let guards = timely::execute(config, move |worker| {
        let counted = Rc::new(Cell::new(0u64));
        let sink = counted.clone();
        worker.dataflow::<u64, _, _>(|scope| build(scope, sink));
        let started = Instant::now();
        while worker.step_or_park(None) {}
        (started, Instant::now(), counted.get())
    })?;
    let mut first_start: Option<Instant> = None;
    let mut last_end: Option<Instant> = None;
    let mut sink = 0;
    for worker in guards.join() {
        let (start, end, counted) = worker?;
        first_start = Some(first_start.map_or(start, |s| s.min(start)));
        last_end = Some(last_end.map_or(end, |e| e.max(end)));
        sink += counted;
    }
    match (first_start, last_end) {
        (Some(start), Some(end)) => Ok(Run {
            seconds: (end - start).as_secs_f64(),
            sink,
        }),
        _ => Err("no worker ran".into()),
    }
}

/// Peak resident set size of this process (VmHWM), in MiB; 0 if unreadable.
pub fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}
