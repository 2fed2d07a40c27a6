//! The throughput harness: the same job shapes as the Apache Flink reference jobs.
//!
//! `cargo run --release -p benches --bin throughput -- <job> [records]`
//! prints one line per job: `flink-rs <job> records=<N> seconds=<s> rate=<rec/s>`;
//! `--help` lists the jobs. While a job runs, a progress bar (records, rate, time
//! left) shows on standard error when it is a terminal.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use benches::progress::{JobProgress, bar};
use benches::{
    CountingSink, keyed_job, keyed_job_over, keyed_timestamps_job, rss_kib, window_jobs,
};
use clap::{Parser, ValueEnum};
use flink_core::async_io::AsyncOptions;
use flink_core::sources::SequenceSource;
use flink_examples::compare::{Variant, run_quiet};
use flink_examples::variants;
use flink_runtime::checkpoint::CompletedCheckpoint;
use flink_runtime::precise_timer::precise_sleep;
use flink_runtime::prelude::*;

/// The throughput harness: the job shapes of the Apache Flink reference jobs, one job
/// per run. Prints `flink-rs <job> records=<N> seconds=<s> rate=<rec/s>`.
#[derive(Parser)]
#[command(name = "throughput")]
struct Args {
    /// The job to run.
    #[arg(value_enum)]
    job: Job,
    /// Records to run (for `backpressure`: seconds); each job has its own default.
    records: Option<u64>,
    /// Network buffers of the `backpressure` jobs (defaults: the engine's).
    #[command(flatten)]
    buffers: Buffers,
    /// `backpressure-ckpt`: unaligned checkpoints (barriers overtake the records
    /// in flight, which are stored with the checkpoint).
    #[arg(long)]
    unaligned: bool,
}

/// Network buffer settings for the `backpressure` and `window` jobs, to measure how many records
/// are in flight with fewer or smaller buffers.
#[derive(clap::Args, Clone, Copy)]
struct Buffers {
    /// Bytes of one network buffer.
    #[arg(long)]
    buffer_size: Option<usize>,
    /// Buffers each input channel owns.
    #[arg(long)]
    exclusive_buffers: Option<usize>,
    /// Buffers each input gate lends to channels with backlog.
    #[arg(long)]
    floating_buffers: Option<usize>,
    /// Output buffers one channel may have queued.
    #[arg(long)]
    max_buffers_per_channel: Option<usize>,
    /// Turn buffer debloating off (on by default: gates size their producers'
    /// buffers to hold about 800 ms of data).
    #[arg(long)]
    no_debloat: bool,
    /// Buffer debloating's target in ms: how much consumption the buffered data of
    /// a gate should amount to (default 800; Flink's is 1,000).
    #[arg(long)]
    debloat_target_ms: Option<u64>,
}

impl Buffers {
    /// Applies the settings given to `env`.
    fn apply(self, env: &StreamExecutionEnvironment) {
        env.configure(|c| {
            c.buffer_size = self.buffer_size.unwrap_or(c.buffer_size);
            c.exclusive_buffers_per_channel = self
                .exclusive_buffers
                .unwrap_or(c.exclusive_buffers_per_channel);
            c.floating_buffers_per_gate =
                self.floating_buffers.unwrap_or(c.floating_buffers_per_gate);
            c.max_buffers_per_channel = self
                .max_buffers_per_channel
                .unwrap_or(c.max_buffers_per_channel);
            c.buffer_debloat.enabled &= !self.no_debloat;
            if let Some(ms) = self.debloat_target_ms {
                c.buffer_debloat.target = Duration::from_millis(ms);
            }
        });
    }
}

/// The jobs of the harness.
#[derive(Clone, Copy, ValueEnum)]
enum Job {
    /// Sequence -> map -> filter -> counting sink, chained, p=1 (200 M records).
    Chain,
    /// The same as chain, every operator its own task (50 M records).
    Nochain,
    /// Hash exchange and a running sum per key, p=2 (50 M records).
    Keyed,
    /// The keyed job on records with event timestamps (x / 10 ms, as `window`'s),
    /// 50 M records.
    KeyedTimestamps,
    /// The keyed job at parallelism 4 (50 M records); started by `flink-rs run
    /// --processes N` it is spread over N processes (each prints its bytes on the
    /// wire, process 0 the job's rate).
    #[value(name = "keyed-p4")]
    KeyedP4,
    /// The keyed job over 100,000 keys (50 M records): the baseline of `keyed-ckpt`.
    #[value(name = "keyed-100k")]
    Keyed100k,
    /// The keyed job over 100,000 keys with an exactly-once checkpoint every second
    /// into a local directory (50 M records), as the Flink reference's `keyed-ckpt`.
    KeyedCkpt,
    /// A sink paced to 20,000 records/s behind a network exchange (10 s).
    Backpressure,
    /// The same with an exactly-once checkpoint every second (10 s): prints the
    /// checkpoints' durations, start delays and alignment times.
    BackpressureCkpt,
    /// The chain's work as a plain Rust loop: the physical reference (200 M records).
    RawChain,
    /// Async calls completing after 1 ms, 100 in flight, unordered (500,000 records).
    Async,
    /// The same, results in input order (500,000 records).
    AsyncOrdered,
    /// The compare example's healthy scenario, five-stage pipeline (50,000 records).
    FiveStage,
    /// The same logic as an operator chain (50,000 records).
    OperatorChain,
    /// Tumbling 1 s event-time windows (ts = x / 10 ms) over 100 keys, reduce(sum)
    /// at p=2, as the Flink reference's `window` (50 M records).
    Window,
    /// Nexmark q5 (hot items) and q7 (highest bid) at p=2, each beside a plain
    /// single-threaded loop over the same events (10 M events).
    Nexmark,
}

fn main() -> anyhow::Result<()> {
    let Args {
        job,
        records: n,
        buffers,
        unaligned,
    } = Args::parse();
    match job {
        Job::Chain => chain(n.unwrap_or(200_000_000), true),
        Job::Nochain => chain(n.unwrap_or(50_000_000), false),
        Job::Keyed => keyed(n.unwrap_or(50_000_000)),
        Job::KeyedTimestamps => keyed_timestamps(n.unwrap_or(50_000_000)),
        Job::KeyedP4 => keyed_p4(n.unwrap_or(50_000_000)),
        Job::Keyed100k => keyed_over("keyed-100k", n.unwrap_or(50_000_000), None),
        Job::KeyedCkpt => keyed_over(
            "keyed-ckpt",
            n.unwrap_or(50_000_000),
            Some(Duration::from_secs(1)),
        ),
        Job::RawChain => raw_chain(n.unwrap_or(200_000_000)),
        Job::Backpressure => backpressure(20_000, n.unwrap_or(10), None, buffers, false),
        Job::BackpressureCkpt => backpressure(
            20_000,
            n.unwrap_or(10),
            Some(Duration::from_secs(1)),
            buffers,
            unaligned,
        ),
        Job::Async => async_io(n.unwrap_or(500_000), false),
        Job::AsyncOrdered => async_io(n.unwrap_or(500_000), true),
        Job::FiveStage => compare_variant("five-stage", Variant::FiveStage, n.unwrap_or(50_000)),
        Job::OperatorChain => compare_variant(
            "operator-chain",
            Variant::OperatorChain,
            n.unwrap_or(50_000),
        ),
        Job::Window => window(n.unwrap_or(50_000_000), buffers),
        Job::Nexmark => nexmark(n.unwrap_or(10_000_000)),
    }
}

/// The Flink reference's `window` job; checks that the window counts add up to N.
fn window(n: u64, buffers: Buffers) -> anyhow::Result<()> {
    let env = StreamExecutionEnvironment::new();
    buffers.apply(&env);
    let sink = window_jobs::window_job(&env, n);
    let result = run(&env, "window", n)?;
    ensure!(
        sink.sum() == n,
        "window counts add up to {}, not {n}",
        sink.sum()
    );
    let windows = window_jobs::window_job_windows(n);
    ensure!(
        sink.records() == windows,
        "{} windows, expected {windows}",
        sink.records()
    );
    report("window", n, result.duration.as_secs_f64());
    Ok(())
}

/// Adds a Nexmark query over `n` events writing to the sink.
type BuildQuery = fn(&StreamExecutionEnvironment, u64, CountingSink);

/// A harness query: its name, how to build it, and its plain-loop reference.
type Query = (&'static str, BuildQuery, fn(u64) -> u64);

/// Nexmark q5 and q7 over `n` events at p=2, each followed by the same query as a
/// plain loop (the reference rate), whose result count the job's must equal.
fn nexmark(n: u64) -> anyhow::Result<()> {
    let queries: [Query; 2] = [
        (
            "nexmark-q5",
            |env, n, sink| window_jobs::nexmark_q5(env, n, sink),
            window_jobs::q5_reference_loop,
        ),
        (
            "nexmark-q7",
            |env, n, sink| window_jobs::nexmark_q7(env, n, sink),
            window_jobs::q7_reference_loop,
        ),
    ];
    for (job, build, reference) in queries {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(2);
        let sink = CountingSink::new();
        let count = sink.count();
        build(&env, n, sink);
        let result = run(&env, job, n)?;
        report(job, n, result.duration.as_secs_f64());
        let started = Instant::now();
        let expected = reference(n);
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "reference-loop {job} records={n} seconds={seconds:.3} rate={:.0}",
            n as f64 / seconds
        );
        let got = count.load(Ordering::Relaxed);
        ensure!(
            got == expected,
            "{job}: {got} results, the loop has {expected}"
        );
    }
    Ok(())
}

fn report(job: &str, records: u64, seconds: f64) {
    println!(
        "flink-rs {job} records={records} seconds={seconds:.3} rate={:.0}",
        records as f64 / seconds
    );
}

/// Runs the job on `env`, showing its progress over `records` source records.
fn run(
    env: &StreamExecutionEnvironment,
    job: &str,
    records: u64,
) -> Result<JobExecutionResult, JobError> {
    let client = env.execute_async(job)?;
    let _progress = JobProgress::start(job, records, client.observer());
    client.wait()
}

/// sequence 1..N -> map(x*2) -> filter(x%3 != 0) -> counting sink, parallelism 1.
fn chain(n: u64, chained: bool) -> anyhow::Result<()> {
    let env = StreamExecutionEnvironment::new();
    if !chained {
        env.disable_operator_chaining();
    }
    let sink = CountingSink::new();
    let count = sink.count();
    env.from_sequence(1, n)
        .map(|x: u64| x * 2)
        .filter(|x: &u64| !x.is_multiple_of(3))
        .sink_to(sink);
    let result = run(&env, if chained { "chain" } else { "nochain" }, n)?;
    let expected = n - n / 3;
    let got = count.load(Ordering::Relaxed);
    ensure!(got == expected, "sink counted {got}, expected {expected}");
    report(
        if chained { "chain" } else { "nochain" },
        n,
        result.duration.as_secs_f64(),
    );
    Ok(())
}

/// The same work as `chain`, as a plain loop: the physical reference.
fn raw_chain(n: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut count = 0u64;
    for x in 1..=n {
        let y = std::hint::black_box(x) * 2;
        if !y.is_multiple_of(3) {
            count += 1;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    ensure!(count == n - n / 3, "raw loop counted {count}");
    report("raw-chain", n, seconds);
    Ok(())
}

/// sequence -> map to (x % 1000, 1) -> key_by -> running sum -> counting sink, p=2.
fn keyed(n: u64) -> anyhow::Result<()> {
    counted("keyed", n, keyed_job)
}

/// The keyed job on records with event timestamps.
fn keyed_timestamps(n: u64) -> anyhow::Result<()> {
    counted("keyed-timestamps", n, keyed_timestamps_job)
}

/// Runs the job `build` makes for `n` records and checks that its sink counted
/// every one.
fn counted(
    name: &str,
    n: u64,
    build: fn(&StreamExecutionEnvironment, u64) -> Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let env = StreamExecutionEnvironment::new();
    let count = build(&env, n);
    let result = run(&env, name, n)?;
    let got = count.load(Ordering::Relaxed);
    ensure!(got == n, "sink counted {got}, expected {n}");
    report(name, n, result.duration.as_secs_f64());
    Ok(())
}

/// The keyed job at parallelism 4, in this process alone or, when the environment
/// describes a cluster (`flink-rs run`), as this process's part of it.
fn keyed_p4(n: u64) -> anyhow::Result<()> {
    let env = StreamExecutionEnvironment::new();
    let count = keyed_job(&env, n);
    env.set_parallelism(4);
    env.set_cluster_from_env();
    let result = run(&env, "keyed-p4", n)?;
    let seconds = result.duration.as_secs_f64();
    let here = count.load(Ordering::Relaxed);
    let Some(share) = result.cluster else {
        ensure!(here == n, "sink counted {here}, expected {n}");
        report("keyed-p4", n, seconds);
        return Ok(());
    };
    let wire = share.wire;
    println!(
        "flink-rs keyed-p4 process={}/{} sunk_here={here} seconds={seconds:.3} \
         bytes_sent={} frames_sent={} bytes_received={}",
        share.process, share.processes, wire.bytes_sent, wire.frames_sent, wire.bytes_received
    );
    if share.whole_job {
        let sunk = result
            .operators
            .iter()
            .filter(|o| o.role == OperatorRole::Sink)
            .map(|o| o.records_in)
            .sum::<u64>();
        ensure!(sunk == n, "the job's sinks counted {sunk}, expected {n}");
        report("keyed-p4", n, seconds);
    }
    Ok(())
}

/// The keyed job over 100,000 keys, with a checkpoint every `interval` (exactly
/// once, into a fresh directory under the system's temp dir) if given.
fn keyed_over(job: &str, n: u64, interval: Option<Duration>) -> anyhow::Result<()> {
    let env = StreamExecutionEnvironment::new();
    let dir = std::env::temp_dir().join(format!("flink-rs-{job}-{}", std::process::id()));
    if let Some(interval) = interval {
        env.enable_checkpointing(interval)
            .set_storage_dir(dir.clone());
    }
    let count = keyed_job_over::<100_000>(&env, n);
    let (result, completed) = run_collecting_checkpoints(&env, job, n);
    let _ = std::fs::remove_dir_all(&dir);
    let result = result?;
    let got = count.load(Ordering::Relaxed);
    ensure!(got == n, "sink counted {got}, expected {n}");
    ensure!(
        result.restarts.is_empty(),
        "the job restarted: {:?}",
        result.restarts
    );
    let seconds = result.duration.as_secs_f64();
    match result.checkpoints {
        Some(c) => println!(
            "flink-rs {job} records={n} seconds={seconds:.3} rate={:.0} failed={}{} max_bytes={}",
            n as f64 / seconds,
            c.failed,
            checkpoint_line(&completed),
            completed.iter().map(|c| c.state_size).max().unwrap_or(0)
        ),
        None => report(job, n, seconds),
    }
    Ok(())
}

/// [`run`], also collecting every checkpoint that completes while the job runs (the
/// client keeps only the last ten, so it is asked every 50 ms).
fn run_collecting_checkpoints(
    env: &StreamExecutionEnvironment,
    job: &str,
    records: u64,
) -> (
    Result<JobExecutionResult, JobError>,
    Vec<CompletedCheckpoint>,
) {
    let client = match env.execute_async(job) {
        Ok(client) => client,
        Err(e) => return (Err(e), Vec::new()),
    };
    let _progress = JobProgress::start(job, records, client.observer());
    let mut completed = BTreeMap::new();
    loop {
        let ended = client.state().is_terminal();
        completed.extend(
            client
                .completed_checkpoints()
                .into_iter()
                .map(|c| (c.id, c)),
        );
        if ended {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (client.wait(), completed.into_values().collect())
}

/// sequence -> async call completing 1 ms after it starts (capacity 100) -> counting
/// sink, parallelism 1: the ceiling is 100 calls per millisecond, 100,000 records/s.
fn async_io(n: u64, ordered: bool) -> anyhow::Result<()> {
    let env = StreamExecutionEnvironment::new();
    let sink = CountingSink::new();
    let count = sink.count();
    env.from_sequence(1, n)
        .async_function(
            |x: u64| {
                // The call starts when it is invoked, as the Flink reference's
                // scheduler.schedule(..) in asyncInvoke does.
                let reply = precise_sleep(Duration::from_millis(1));
                async move {
                    reply.await;
                    Ok::<u64, String>(x)
                }
            },
            AsyncOptions::new()
                .ordered(ordered)
                .capacity(100)
                .timeout(Duration::from_secs(30)),
        )
        .sink_to(sink);
    let job = if ordered { "async-ordered" } else { "async" };
    let result = run(&env, job, n)?;
    let got = count.load(Ordering::Relaxed);
    ensure!(got == n, "sink counted {got}, expected {n}");
    let seconds = result.duration.as_secs_f64();
    println!(
        "flink-rs {job} records={n} seconds={seconds:.3} rate={:.0} ceiling=100000 of_ceiling={:.1}%",
        n as f64 / seconds,
        n as f64 / seconds / 1000.0
    );
    Ok(())
}

/// The `compare` example's healthy scenario through one of its variants, accounted
/// exactly as `compare` accounts for it.
fn compare_variant(job: &str, variant: Variant, n: u64) -> anyhow::Result<()> {
    let healthy = variants::scenarios()[0];
    let outcome = run_quiet(variant, &healthy, n)?;
    ensure!(
        outcome.accounting.starts_with("exact"),
        "accounting failed: {}",
        outcome.accounting
    );
    report(job, n, outcome.seconds);
    Ok(())
}

/// unbounded sequence -> counting map -> \[network\] -> sink paced to `rate` records/s,
/// with an exactly-once checkpoint every `checkpoint` if given (unaligned if
/// `unaligned`).
fn backpressure(
    rate: u64,
    seconds: u64,
    checkpoint: Option<Duration>,
    buffers: Buffers,
    unaligned: bool,
) -> anyhow::Result<()> {
    let job = if checkpoint.is_some() {
        "backpressure-ckpt"
    } else {
        "backpressure"
    };
    let env = StreamExecutionEnvironment::new();
    buffers.apply(&env);
    let dir = std::env::temp_dir().join(format!("flink-rs-{job}-{}", std::process::id()));
    if let Some(interval) = checkpoint {
        env.enable_checkpointing(interval)
            .set_storage_dir(dir.clone())
            .enable_unaligned_checkpoints(unaligned);
    }
    let result = run_backpressure(&env, job, rate, seconds);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Runs the backpressure job built on `env` for `seconds` and prints its line.
fn run_backpressure(
    env: &StreamExecutionEnvironment,
    job: &str,
    rate: u64,
    seconds: u64,
) -> anyhow::Result<()> {
    let emitted = Arc::new(AtomicU64::new(0));
    let counter = emitted.clone();
    let sink = CountingSink::paced(rate);
    let consumed = sink.count();
    env.from_source(SequenceSource::unbounded(), "source")
        .map(move |x: u64| {
            counter.fetch_add(1, Ordering::Relaxed);
            x
        })
        .name("count-emitted")
        .sink_to(sink)
        .name("slow-sink")
        .disable_chaining();
    let client = env.execute_async(job)?;
    while emitted.load(Ordering::Relaxed) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let progress = bar(
        seconds * 10,
        "{prefix} {elapsed:>4} [{bar:20}] eta {eta} {msg}",
        job,
    );
    // The client keeps the last 10 checkpoints: collect them as they complete.
    let mut checkpoints = BTreeMap::new();
    let (mut at_one, mut at_three, mut max_in_flight, mut max_rss) = (None, None, 0u64, 0u64);
    // After 3 s, once buffer debloating has settled (and the records grew to their
    // steady size, below).
    let mut max_in_flight_after_3s = 0u64;
    for step in 1..=seconds * 10 {
        std::thread::sleep(Duration::from_millis(100));
        let (s, k) = (
            emitted.load(Ordering::Relaxed),
            consumed.load(Ordering::Relaxed),
        );
        max_in_flight = max_in_flight.max(s.saturating_sub(k));
        if step > 30 {
            max_in_flight_after_3s = max_in_flight_after_3s.max(s.saturating_sub(k));
        }
        max_rss = max_rss.max(rss_kib().0);
        checkpoints.extend(
            client
                .completed_checkpoints()
                .into_iter()
                .map(|c| (c.id, c)),
        );
        if step == 10 {
            at_one = Some((s, Instant::now()));
        }
        if step == 30 {
            at_three = Some((s, Instant::now()));
        }
        progress.set_position(step);
        if step % 10 == 0 && !progress.is_hidden() {
            let pools: Vec<String> = client
                .task_metrics()
                .iter()
                .map(|t| {
                    format!(
                        "{}: out {:.2} in {:.2}",
                        t.task, t.out_pool_usage, t.in_pool_usage
                    )
                })
                .collect();
            progress.set_message(format!(
                "source={s} sink={k} in_flight={} rss={}MB pools=[{}]",
                s - k,
                rss_kib().0 >> 10,
                pools.join("; ")
            ));
        }
    }
    progress.finish_and_clear();
    let (end_count, end) = (emitted.load(Ordering::Relaxed), Instant::now());
    let sink_total = consumed.load(Ordering::Relaxed);
    checkpoints.extend(
        client
            .completed_checkpoints()
            .into_iter()
            .map(|c| (c.id, c)),
    );
    let source_task = client
        .task_metrics()
        .into_iter()
        .find(|t| t.task.starts_with("source"))
        .context("source task metrics")?;
    client.cancel();
    match client.wait() {
        Err(JobError::Cancelled { .. }) => {}
        other => bail!("{job} job ended unexpectedly: {other:?}"),
    }
    let (start_count, start) = at_one.context("ran less than a second")?;
    let steady_seconds = (end - start).as_secs_f64();
    let records = end_count - start_count;
    let shares = source_task.shares();
    // Records of values >= 65,536 take two bytes more (bincode varint), so the records
    // in flight shrink by ~20 % over the first seconds: also report the window after 3 s.
    let rate_after_3s = at_three.map_or(f64::NAN, |(c, t)| {
        (end_count - c) as f64 / (end - t).as_secs_f64()
    });
    let checkpoint_figures = if job == "backpressure" {
        String::new()
    } else {
        checkpoint_line(&checkpoints.into_values().collect::<Vec<_>>())
    };
    println!(
        "flink-rs {job} records={records} seconds={steady_seconds:.3} rate={:.0} rate_after_3s={rate_after_3s:.0} target_sink_rate={rate} sink_total={sink_total} max_in_flight={max_in_flight} max_in_flight_after_3s={max_in_flight_after_3s} max_rss_mb={:.1} peak_rss_mb={:.1} source_back_pressured_ms_per_s={:.0}{checkpoint_figures}",
        records as f64 / steady_seconds,
        max_rss as f64 / 1024.0,
        rss_kib().1 as f64 / 1024.0,
        shares.back_pressured_ms_per_s,
    );
    Ok(())
}

/// ` checkpoints=N duration_p50_ms=.. duration_max_ms=.. start_delay_max_ms=..
/// alignment_max_ms=..` over the checkpoints completed.
fn checkpoint_line(completed: &[CompletedCheckpoint]) -> String {
    let mut durations: Vec<u64> = completed.iter().map(|c| c.duration_ms).collect();
    durations.sort_unstable();
    let p50 = durations.get(durations.len() / 2).copied();
    let max = |f: fn(&CompletedCheckpoint) -> u64| completed.iter().map(f).max();
    let show = |v: Option<u64>| v.map_or_else(|| "none".to_string(), |v| v.to_string());
    // The first checkpoint starts before buffer debloating has measured anything.
    let max_after_first = completed
        .iter()
        .filter(|c| Some(c.id) != completed.iter().map(|c| c.id).min())
        .map(|c| c.duration_ms)
        .max();
    format!(
        " checkpoints={} duration_p50_ms={} duration_max_ms={} duration_max_after_first_ms={} start_delay_max_ms={} alignment_max_ms={} persisted_max_bytes={}",
        completed.len(),
        show(p50),
        show(durations.last().copied()),
        show(max_after_first),
        show(max(|c| c.max_timing.start_delay_ms)),
        show(max(|c| c.max_timing.alignment_ms)),
        show(max(|c| c.persisted_data)),
    )
}
