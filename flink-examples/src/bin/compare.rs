//! The five-stage pipeline and the same business logic as an ordinary operator chain,
//! run on the same deterministic workload under four scenarios, side by side.
//!
//! `cargo run --release -p flink-examples --bin compare -- [records] [scenario ...]`
//! scenarios: healthy, slow-sink, flaky, burst (default: all)

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use flink_examples::variants::{Scenario, five_stage, operator_chain, scenarios};
use flink_examples::workload::{OrderStore, Origin, PricingService};
use flink_runtime::job_sampler::JobSampler;
use flink_runtime::pipeline_monitor::{PipelineMonitor, PipelineReport};
use flink_runtime::prelude::*;

/// What one variant did in one scenario.
struct Outcome {
    measured: Measured,
    retries: u64,
    timeouts: u64,
    dead_letters: u64,
    accounting: String,
}

/// What both variants measure the same way: at the store and in the process.
struct Measured {
    seconds: f64,
    delivered: u64,
    p50: Option<Duration>,
    p99: Option<Duration>,
    peak_rss_mb: f64,
}

impl Measured {
    fn of(result: &JobExecutionResult, store: &OrderStore) -> Self {
        Self {
            seconds: result.duration.as_secs_f64(),
            delivered: store.stored(),
            p50: store.latency().quantile(0.5),
            p99: store.latency().quantile(0.99),
            peak_rss_mb: peak_rss_mb(),
        }
    }
}

/// Lines of user code between the markers `// <name>: begin` and `// <name>: end` of
/// this file, blank lines excluded.
fn user_code_lines(name: &str) -> usize {
    let source = include_str!("../variants.rs");
    let (begin, end) = (format!("// {name}: begin"), format!("// {name}: end"));
    source
        .lines()
        .skip_while(|l| l.trim() != begin)
        .skip(1)
        .take_while(|l| l.trim() != end)
        .filter(|l| !l.trim().is_empty())
        .count()
}

/// Resets the process's peak RSS (Linux `clear_refs` 5), so each run measures its own.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn run_five_stage(s: &Scenario, records: u64) -> anyhow::Result<Outcome> {
    let env = StreamExecutionEnvironment::new();
    let service = PricingService::new(s.service);
    let store = OrderStore::new(s.ack_latency, Origin::new());
    let out = five_stage(&env, s, records, service, store.clone())?;
    let delivered = out.delivered.collect_vec();
    let dead = out.dead_letters.collect_vec();
    let undelivered = out.undelivered.collect_vec();
    reset_peak_rss();
    let started = Instant::now();
    let client = env.execute_async(&format!("five-stage {}", s.name))?;
    let monitor = PipelineMonitor::start(
        client.observer(),
        out.state.clone(),
        &out.config,
        move |status| {
            if started.elapsed() > Duration::from_secs(2) {
                eprintln!("{}", status.table());
            }
        },
    )?;
    let result = client.wait()?;
    drop(monitor);
    let report = PipelineReport::new(&result.operators);
    let egress = result
        .operator("AsyncEgressProcessing")
        .context("egress metrics")?;
    let sink = result.operator("FinalSink").context("final sink metrics")?;
    let (delivered, dead, undelivered) = (
        delivered.len() as u64,
        dead.len() as u64,
        undelivered.len() as u64,
    );
    ensure!(
        delivered == store.stored(),
        "receipts {delivered} != stored {}",
        store.stored()
    );
    Ok(Outcome {
        measured: Measured::of(&result, &store),
        retries: egress.custom("retries").unwrap_or(0) + sink.custom("retries").unwrap_or(0),
        timeouts: egress.custom("timeouts").unwrap_or(0) + sink.custom("timeouts").unwrap_or(0),
        dead_letters: dead + undelivered,
        accounting: if report.accounted() && report.received() == records {
            format!(
                "exact: {records} = {delivered} + {} dead + {} errors",
                dead + undelivered,
                report.errors()
            )
        } else {
            format!("MISMATCH:\n{report}")
        },
    })
}

fn run_chain(s: &Scenario, records: u64) -> anyhow::Result<Outcome> {
    let env = StreamExecutionEnvironment::new();
    let service = PricingService::new(s.service);
    let store = OrderStore::new(s.ack_latency, Origin::new());
    operator_chain(&env, records, service, store.clone());
    reset_peak_rss();
    let client = env.execute_async(&format!("operator chain {}", s.name))?;
    let progress = chain_progress(client.observer(), records)?;
    let result = client.wait()?;
    drop(progress);
    let source = result.operators.first().context("source metrics")?;
    let filter = result.operator("Filter").context("filter metrics")?;
    let call = result.operator("Async Function").context("async metrics")?;
    let dropped = filter.records_in - filter.records_out;
    let dead = call.custom("dead_letters").unwrap_or(0);
    let delivered = store.stored();
    let balanced = source.records_out == dropped + dead + delivered;
    Ok(Outcome {
        measured: Measured::of(&result, &store),
        retries: call.custom("retries").unwrap_or(0),
        timeouts: call.custom("timeouts").unwrap_or(0),
        dead_letters: dead,
        accounting: if balanced {
            format!(
                "exact: {} = {delivered} + {dead} dead + {dropped} filtered (counted, not kept)",
                source.records_out
            )
        } else {
            "MISMATCH".into()
        },
    })
}

/// The operator chain's live view: once a run passes 2 s, every second, how many
/// records reached the sink and how back-pressured each task was over that second.
/// (The five-stage run prints its per-stage status table instead.)
fn chain_progress(job: JobObserver, records: u64) -> std::io::Result<JobSampler> {
    let started = Instant::now();
    JobSampler::start(
        "chain-progress",
        job,
        Duration::from_secs(1),
        move |job, before, now| {
            if started.elapsed() > Duration::from_secs(2) {
                eprintln!("{}", progress_line(job, records, before, now));
            }
        },
    )
}

fn progress_line(
    job: &JobObserver,
    records: u64,
    previous: &[TaskMetricsSnapshot],
    now: &[TaskMetricsSnapshot],
) -> String {
    let at_sink = job
        .operator_metrics()
        .last()
        .map_or(0, |sink| sink.records_in);
    let pressure: Vec<String> = now
        .iter()
        .zip(previous)
        .map(|(n, p)| {
            let shares = n.shares_since(p);
            format!(
                "{} ({}/{}) {:.0} ms/s {:?}",
                n.task,
                n.subtask + 1,
                n.parallelism,
                shares.back_pressured_ms_per_s,
                shares.level()
            )
        })
        .collect();
    format!(
        "  operator chain: {at_sink}/{records} records at the sink; back-pressured: {}",
        pressure.join(", ")
    )
}

fn ms(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.1}", d.as_secs_f64() * 1e3))
}

/// One value of a variant's outcome, as printed.
type Column<'a> = Box<dyn Fn(&Outcome) -> String + 'a>;

fn print_table(s: &Scenario, records: u64, five: &Outcome, chain: &Outcome) {
    println!("\n## {} ({records} records)", s.title);
    println!("{:<28} {:>22} {:>22}", "", "five-stage", "operator chain");
    let rows: [(&str, Column); 7] = [
        (
            "throughput (records/s)",
            Box::new(|o| format!("{:.0}", records as f64 / o.measured.seconds)),
        ),
        ("delivered", Box::new(|o| o.measured.delivered.to_string())),
        (
            "latency p50 / p99 (ms)",
            Box::new(|o| format!("{} / {}", ms(o.measured.p50), ms(o.measured.p99))),
        ),
        (
            "peak RSS, process (MB)",
            Box::new(|o| format!("{:.1}", o.measured.peak_rss_mb)),
        ),
        ("retries", Box::new(|o| o.retries.to_string())),
        ("timeouts", Box::new(|o| o.timeouts.to_string())),
        ("dead letters", Box::new(|o| o.dead_letters.to_string())),
    ];
    for (label, value) in &rows {
        println!("{label:<28} {:>22} {:>22}", value(five), value(chain));
    }
    let lines = (user_code_lines("five-stage"), user_code_lines("chain"));
    println!(
        "{:<28} {:>22} {:>22}",
        "lines of user code", lines.0, lines.1
    );
    println!("accounting, five-stage:     {}", five.accounting);
    println!("accounting, operator chain: {}", chain.accounting);
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).peekable();
    let records: u64 = match args.peek().map(|a| a.parse::<u64>()) {
        Some(Ok(n)) => {
            args.next();
            n
        }
        _ => 20_000,
    };
    let wanted: Vec<String> = args.collect();
    let all = scenarios();
    for name in &wanted {
        if !all.iter().any(|s| s.name == name) {
            bail!("unknown scenario '{name}' (healthy, slow-sink, flaky, burst)");
        }
    }
    for s in all
        .iter()
        .filter(|s| wanted.is_empty() || wanted.iter().any(|w| w == s.name))
    {
        eprintln!("running {} ...", s.name);
        let five = run_five_stage(s, records)?;
        let chain = run_chain(s, records)?;
        print_table(s, records, &five, &chain);
    }
    Ok(())
}
