//! A keyed job that runs in one process or spread over several (application mode).
//!
//! `cargo run -p flink-examples --bin cluster_keyed -- --records 1000000 --parallelism 4`
//! runs it alone; `flink-rs run --processes 2 -- target/debug/cluster_keyed ...` runs
//! the same binary as two processes (see docs/deployment.md), each joining the cluster
//! the launcher describes in its environment (`env.set_cluster_from_env()`).
//!
//! The job: sequence 1..=N -> map to `(x % keys, x)` -> key_by -> running sum (reduce)
//! -> a sink that keeps each key's latest sum. With `--output DIR` every sink subtask
//! writes `DIR/part-<subtask>` (`<key> <sum> <updates>` lines), in whichever process
//! runs it, so the union of the parts is the job's output. Prints this process's
//! share (records at its sinks, seconds, bytes on the wire) and, on process 0 (or
//! alone), the whole job's sink count and rate from the job's result.
//!
//! `--window-ms W` sums each key's values in tumbling event-time windows of W ms
//! instead (the value is the record's timestamp; watermarks cross the processes).
//!
//! `--pace-us U --paced-process P` makes the sinks in process P take U µs per record
//! (`--pace-rate R`: write R records per second each); with `--rebalance` the
//! records go round-robin to the sinks (no key_by); process 0 prints the source's
//! rate between its 10 % and 90 % marks (`source_rate=`, one source subtask);
//! with `--progress-dir DIR` the sinks outside process 0 (paced or not) publish their
//! count there and process 0's map measures the records in flight towards every sink
//! (emitted minus sunk), to show back pressure holds the source in another process.
//! `--hold-until FILE` makes the sinks of --paced-process write nothing until FILE
//! exists, at most two minutes (back pressure then holds the whole job, every subtask
//! running).
//!
//! `--web-ui-dir DIR` serves each process's REST API on a free loopback port and
//! writes `<address> <job id>` to `DIR/web-ui-<process>`; once the job ended the
//! process writes `DIR/ended-<process>` and serves its final state until
//! `DIR/release` exists (at most two minutes), so a reader sees the end too.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use flink_core::operator::RuntimeContext;
use flink_core::watermark::WatermarkStrategy;
use flink_core::windows::{TimeWindow, TumblingEventTimeWindows};
use flink_runtime::prelude::*;

/// A keyed running sum, in one process or across several.
#[derive(Parser)]
#[command(name = "cluster_keyed")]
struct Args {
    /// Records of the sequence source.
    #[arg(long, default_value_t = 200_000)]
    records: u64,
    /// Parallelism of every operator (total, over all processes).
    #[arg(long, default_value_t = 4)]
    parallelism: usize,
    /// Parallelism of the source and the map chained to it (default: --parallelism).
    #[arg(long)]
    source_parallelism: Option<usize>,
    /// Distinct keys.
    #[arg(long, default_value_t = 100)]
    keys: u64,
    /// Network buffer size in bytes (default: the engine's).
    #[arg(long)]
    buffer_size: Option<usize>,
    /// Write each sink subtask's per-key sums to `DIR/part-<subtask>`.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Microseconds each record takes at the sinks of --paced-process.
    #[arg(long, default_value_t = 0)]
    pace_us: u64,
    /// The process whose sinks are paced.
    #[arg(long, default_value_t = 1)]
    paced_process: usize,
    /// Where the sinks outside process 0 publish their counts (and process 0
    /// measures in-flight).
    #[arg(long)]
    progress_dir: Option<PathBuf>,
    /// Sum per key in tumbling event-time windows of this many ms (the record's
    /// value is its timestamp) instead of a running sum; keys are then `key@end`.
    #[arg(long)]
    window_ms: Option<u64>,
    /// Fail the map on this record.
    #[arg(long)]
    fail_at: Option<u64>,
    /// Records per second each sink subtask of --paced-process writes (on an absolute
    /// schedule, so oversleeping is caught up); instead of --pace-us.
    #[arg(long)]
    pace_rate: Option<f64>,
    /// Send the keyed records round-robin to the sinks (no key_by, no sum): with one
    /// source subtask, a paced sink then holds the source at (sinks x its rate).
    #[arg(long)]
    rebalance: bool,
    /// Process 0 stops the job (a drain of every process's sources) this many ms
    /// after it started; with `--output DIR` it writes `DIR/job` (`read sunk
    /// stopped`: the whole job's records read by its sources and at its sinks).
    #[arg(long)]
    stop_after_ms: Option<u64>,
    /// The sinks of --paced-process write nothing until this file exists (at most
    /// two minutes).
    #[arg(long)]
    hold_until: Option<PathBuf>,
    /// Serve the REST API on a free loopback port, announced in this directory.
    #[arg(long)]
    web_ui_dir: Option<PathBuf>,
}

/// How long a process serves its final state waiting for `release`, and the
/// longest a held sink waits.
const LINGER: Duration = Duration::from_secs(120);

/// When process 0's map emitted its 10 % and 90 % marks (`--records`, one source).
static SOURCE_MARKS: [OnceLock<Instant>; 2] = [OnceLock::new(), OnceLock::new()];

/// This process's index in the cluster (0 when alone).
fn process_index() -> usize {
    std::env::var(flink_core::cluster::ENV_PROCESS_INDEX)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Records the sinks of this process wrote so far (for the in-flight measure).
static LOCAL_SUNK: AtomicU64 = AtomicU64::new(0);
/// The most records in flight process 0's map saw.
static MAX_IN_FLIGHT: AtomicU64 = AtomicU64::new(0);

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    flink_examples::init_logging();
    let env = StreamExecutionEnvironment::new();
    env.set_cluster_from_env();
    env.set_parallelism(args.parallelism);
    if let Some(bytes) = args.buffer_size {
        env.set_buffer_size(bytes);
    }
    let keys = args.keys;
    let source_parallelism = args.source_parallelism.unwrap_or(args.parallelism);
    let source = env
        .from_sequence(1, args.records)
        .set_parallelism(source_parallelism);
    let progress = args.progress_dir.clone();
    let mut emitted = 0u64;
    let fail_at = args.fail_at;
    let records = args.records;
    let keyed = source
        .map(move |x: u64| {
            assert!(Some(x) != fail_at, "record {x} fails, as asked");
            emitted += 1;
            if emitted == records / 10 {
                let _ = SOURCE_MARKS[0].set(Instant::now());
            } else if emitted == records * 9 / 10 {
                let _ = SOURCE_MARKS[1].set(Instant::now());
            }
            if emitted.is_multiple_of(256)
                && let Some(dir) = &progress
            {
                observe_in_flight(dir, emitted);
            }
            (x % keys, x)
        })
        .name("Key")
        .set_parallelism(source_parallelism);
    let paced = (args.pace_us > 0 || args.pace_rate.is_some() || args.hold_until.is_some())
        && process_index() == args.paced_process;
    if args.web_ui_dir.is_some() {
        env.enable_web_ui("127.0.0.1:0".parse()?);
    }
    match args.window_ms {
        None if args.rebalance => {
            keyed
                .rebalance()
                .sink_named(latest_sums(&args, paced), "Latest Sums");
        }
        None => {
            keyed
                .key_by(|r: &(u64, u64)| r.0)
                .reduce(|a: (u64, u64), b: (u64, u64)| (a.0, a.1 + b.1))
                .name("Sum")
                .sink_named(latest_sums(&args, paced), "Latest Sums");
        }
        Some(window) => {
            // Watermarks after every source batch, so windows fire while records
            // still flow (and the watermarks cross processes with them).
            env.set_auto_watermark_interval(Duration::ZERO);
            keyed
                .assign_timestamps_and_watermarks(
                    WatermarkStrategy::for_monotonous_timestamps()
                        .with_timestamp_assigner(|r: &(u64, u64)| r.1 as i64),
                )
                .set_parallelism(source_parallelism)
                .key_by(|r: &(u64, u64)| r.0)
                .window(TumblingEventTimeWindows::of(Duration::from_millis(window)))
                .process(
                    |key: &u64,
                     w: &TimeWindow,
                     records: &[(u64, u64)],
                     out: &mut dyn Collector<(String, u64)>| {
                        let sum = records.iter().map(|r| r.1).sum();
                        out.collect((format!("{key}@{}", w.end), sum));
                    },
                )
                .name("Window Sum")
                .sink_named(latest_sums(&args, paced), "Latest Sums");
        }
    }

    let started = Instant::now();
    let client = env.execute_async("cluster keyed")?;
    if let Some(ms) = args.stop_after_ms.filter(|_| process_index() == 0) {
        let control = client.control();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(ms));
            control.stop();
        });
    }
    if let Some(dir) = &args.web_ui_dir {
        announce_web_ui(dir, &client)?;
    }
    let result = wait(client, args.web_ui_dir.as_deref())?;
    let seconds = started.elapsed().as_secs_f64();
    // On process 0 (or alone) the result's counts cover the whole job; elsewhere only
    // the process's own subtasks.
    let job_sunk = result
        .operator("Latest Sums")
        .context("sink metrics")?
        .records_in;
    let local_sunk = LOCAL_SUNK.load(Ordering::Relaxed);
    let (process, processes, whole, wire) = match result.cluster {
        Some(c) => (c.process, c.processes, c.whole_job, c.wire),
        None => (0, 1, true, Default::default()),
    };
    println!(
        "process={process}/{processes} local_sunk={local_sunk} seconds={seconds:.3} \
         bytes_sent={} frames_sent={} bytes_received={}",
        wire.bytes_sent, wire.frames_sent, wire.bytes_received
    );
    if whole {
        println!("job_sunk={job_sunk} rate={:.0}", job_sunk as f64 / seconds);
        if let (Some(_), Some(dir)) = (args.stop_after_ms, &args.output) {
            let read = result.records_read_by_sources();
            std::fs::write(
                dir.join("job"),
                format!("{read} {job_sunk} {}", result.stopped),
            )?;
        }
    }
    if args.progress_dir.is_some() && process == 0 {
        println!("max_in_flight={}", MAX_IN_FLIGHT.load(Ordering::Relaxed));
    }
    if let [Some(from), Some(to)] = SOURCE_MARKS.each_ref().map(OnceLock::get) {
        // The source's rate from its 10 % to its 90 % mark (start and end excluded).
        let rate = (args.records * 8 / 10) as f64 / to.duration_since(*from).as_secs_f64();
        println!("source_rate={rate:.0}");
    }
    if let Some(rate) = PACED_RATE.get() {
        println!("paced_sink_rate={rate:.0}");
    }
    Ok(())
}

/// Writes `<address> <job id>` of this process's REST API to `dir/web-ui-<process>`
/// (whole: written aside, then renamed).
fn announce_web_ui(dir: &Path, client: &JobClient) -> anyhow::Result<()> {
    let address = client
        .web_ui_address()
        .context("the job serves its REST API")?;
    let job = client.job_id().context("the job has an id")?;
    let tmp = dir.join(format!("web-ui-{}.tmp", process_index()));
    std::fs::write(&tmp, format!("{address} {job}"))?;
    std::fs::rename(tmp, dir.join(format!("web-ui-{}", process_index())))?;
    Ok(())
}

/// The job's result; with a web UI directory, once the job ended it says so there
/// and serves the final state until `release` appears (or [`LINGER`] passed).
fn wait(client: JobClient, web_ui_dir: Option<&Path>) -> anyhow::Result<JobExecutionResult> {
    if let Some(dir) = web_ui_dir {
        let observer = client.observer();
        while !observer.state().is_terminal() {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::fs::write(dir.join(format!("ended-{}", process_index())), "")?;
        let deadline = Instant::now() + LINGER;
        while !dir.join("release").exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Ok(client.wait()?)
}

/// Process 0's map, every 256 records: how many of the records it emitted have not
/// reached a sink yet (its own sinks count in memory, the other processes' in files).
fn observe_in_flight(dir: &Path, emitted: u64) {
    if process_index() != 0 {
        return;
    }
    let remote: u64 = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".count"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|s| s.trim().parse::<u64>().ok())
        .sum();
    let in_flight = emitted.saturating_sub(LOCAL_SUNK.load(Ordering::Relaxed) + remote);
    MAX_IN_FLIGHT.fetch_max(in_flight, Ordering::Relaxed);
}

/// The sink, for keys of type `K`.
fn latest_sums<K>(args: &Args, paced: bool) -> LatestSums<K> {
    LatestSums {
        key: std::marker::PhantomData,
        output: args.output.clone(),
        pace: match (paced, args.pace_rate) {
            (false, _) => None,
            (true, Some(rate)) => Some(Pace::Rate(rate)),
            (true, None) => {
                (args.pace_us > 0).then(|| Pace::PerRecord(Duration::from_micros(args.pace_us)))
            }
        },
        // Process 0's own sinks count in memory (`LOCAL_SUNK`); every other
        // process's, paced or not, through a file process 0 reads.
        progress: if process_index() != 0 {
            args.progress_dir.clone()
        } else {
            None
        },
        hold: if paced { args.hold_until.clone() } else { None },
    }
}

/// Keeps each key's latest running sum and how many updates it got.
struct LatestSums<K> {
    output: Option<PathBuf>,
    pace: Option<Pace>,
    progress: Option<PathBuf>,
    /// Write nothing until this file exists.
    hold: Option<PathBuf>,
    key: std::marker::PhantomData<fn(K)>,
}

/// How a paced sink slows down.
#[derive(Clone, Copy)]
enum Pace {
    /// Sleeps this long per record.
    PerRecord(Duration),
    /// Writes this many records per second, on a schedule from its first record.
    Rate(f64),
}

/// A rate-paced sink's own rate from its 1,000th record to its last.
static PACED_RATE: OnceLock<f64> = OnceLock::new();

impl<K: Ord + Display + Send + 'static> Sink<(K, u64)> for LatestSums<K> {
    fn create_writer(&self, ctx: &RuntimeContext) -> Box<dyn SinkWriter<(K, u64)>> {
        Box::new(LatestSumsWriter {
            path: self
                .output
                .as_ref()
                .map(|d| d.join(format!("part-{}", ctx.subtask_index))),
            subtask: ctx.subtask_index,
            pace: self.pace,
            paced_since: None,
            progress: self.progress.clone(),
            hold: self.hold.clone(),
            sunk: Arc::new(AtomicU64::new(0)),
            sums: BTreeMap::new(),
        })
    }
}

struct LatestSumsWriter<K> {
    path: Option<PathBuf>,
    subtask: usize,
    pace: Option<Pace>,
    /// When a rate-paced sink wrote its first and its 1,000th record.
    paced_since: Option<(Instant, Option<Instant>)>,
    progress: Option<PathBuf>,
    hold: Option<PathBuf>,
    sunk: Arc<AtomicU64>,
    sums: BTreeMap<K, (u64, u64)>,
}

impl<K: Ord + Display + Send> SinkWriter<(K, u64)> for LatestSumsWriter<K> {
    fn write(&mut self, (key, sum): (K, u64)) -> Result<(), SinkError> {
        if let Some(file) = self.hold.take() {
            // Bounded, so a process whose test gave up does not hang forever.
            let deadline = Instant::now() + LINGER;
            while !file.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        match self.pace {
            Some(Pace::PerRecord(pause)) => std::thread::sleep(pause),
            Some(Pace::Rate(rate)) => self.wait_for_schedule(rate),
            None => {}
        }
        let entry = self.sums.entry(key).or_default();
        *entry = (sum, entry.1 + 1);
        LOCAL_SUNK.fetch_add(1, Ordering::Relaxed);
        let sunk = self.sunk.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(dir) = &self.progress
            && sunk.is_multiple_of(64)
        {
            publish(dir, self.subtask, sunk)
                .map_err(|e| SinkError::from(format!("progress: {e}")))?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        if let Some((_, Some(thousandth))) = self.paced_since {
            let written = self.sunk.load(Ordering::Relaxed).saturating_sub(1000);
            let _ = PACED_RATE.set(written as f64 / thousandth.elapsed().as_secs_f64());
        }
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mut text = String::new();
        for (key, (sum, updates)) in &self.sums {
            text.push_str(&format!("{key} {sum} {updates}\n"));
        }
        std::fs::write(path, text)
            .map_err(|e| SinkError::from(format!("writing {}: {e}", path.display())))
    }
}

impl<K> LatestSumsWriter<K> {
    /// Waits until the next record is due at `rate` records per second from the
    /// first one.
    fn wait_for_schedule(&mut self, rate: f64) {
        let now = Instant::now();
        let written = self.sunk.load(Ordering::Relaxed);
        let (first, thousandth) = self.paced_since.get_or_insert((now, None));
        if written == 1000 {
            *thousandth = Some(now);
        }
        let due = *first + Duration::from_secs_f64(written as f64 / rate);
        if due > now {
            std::thread::sleep(due - now);
        }
    }
}

/// Writes a sink subtask's count to `dir/sink-<subtask>.count` atomically (a reader
/// sees the old or the new count).
fn publish(dir: &Path, subtask: usize, sunk: u64) -> std::io::Result<()> {
    let tmp = dir.join(format!("sink-{subtask}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    writeln!(f, "{sunk}")?;
    std::fs::rename(tmp, dir.join(format!("sink-{subtask}.count")))
}
