//! The five-stage pipeline in one process or spread over several (application mode).
//!
//! `cargo run -p flink-examples --bin cluster_pipeline -- --records 3000 --output DIR`
//! runs it alone; `flink-rs run --processes 2 -- target/debug/cluster_pipeline ...`
//! runs the same binary as two processes (see docs/deployment.md). A record admitted
//! by a gateway subtask in one process may end in another; the gateway counts it as
//! ended all the same (see docs/deployment.md, "The five-stage pipeline").
//!
//! The job: sequence 1..=N -> the pipeline with a validation (multiples of 50 fail),
//! a preprocessing (multiples of 77 fail), a call (x % 100 in {1, 2} never answers,
//! 3..=7 fail their first attempt, 8 fails for good, the rest answer 10 x) and a
//! destination acknowledging after `--ack-us` µs. Every process writes, in `--output
//! DIR`: `delivered-<process>` (one `payload key partition` line per receipt of its
//! sinks), `dead-<process>` (one `payload operator` line per dead letter), and
//! `limit-<process>` (`max_in_pipeline share violations entered ended`): the most
//! records its gateways had inside as sampled every 100 µs, its share of the limit,
//! how many samples were above the share, and after the job the records its gateways
//! admitted and how many of them it knows ended, here or elsewhere (equal when every
//! record that ended in another process was reported back).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use flink_core::async_io::AsyncFailure;
use flink_core::pipeline::{FiveStagePipeline, PipelineState};
use flink_runtime::precise_timer::precise_sleep;
use flink_runtime::prelude::*;
use futures::future::BoxFuture;

/// The five-stage pipeline, in one process or across several.
#[derive(Parser)]
#[command(name = "cluster_pipeline")]
struct Args {
    /// Records of the sequence source.
    #[arg(long, default_value_t = 3_000)]
    records: u64,
    /// Parallelism of every operator (total, over all processes).
    #[arg(long, default_value_t = 4)]
    parallelism: usize,
    /// The gateway's limit of records inside the pipeline (over all processes).
    #[arg(long, default_value_t = 40)]
    max_concurrent: usize,
    /// Microseconds the destination takes to acknowledge.
    #[arg(long, default_value_t = 200)]
    ack_us: u64,
    /// Where each process writes its receipts, dead letters and limit samples.
    #[arg(long)]
    output: PathBuf,
}

/// Acknowledges every record after a short delay.
struct SlowAck(Duration);

impl AckDestination<u64> for SlowAck {
    fn send(&self, _: u64) -> BoxFuture<'static, Result<(), DeliveryError>> {
        let delay = self.0;
        Box::pin(async move {
            precise_sleep(delay).await;
            Ok(())
        })
    }
}

/// This process's index in the cluster (0 when alone).
fn process_index() -> usize {
    std::env::var(flink_core::cluster::ENV_PROCESS_INDEX)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The pipeline of the job: fixed failures, so the outcome of every record is known.
fn pipeline(args: &Args) -> anyhow::Result<FiveStagePipeline<u64, u64>> {
    // Calls of one record run in one egress subtask, so attempts are counted here.
    let attempts: Arc<Mutex<std::collections::HashMap<u64, u32>>> = Arc::default();
    let max_concurrent = args.max_concurrent;
    FiveStagePipeline::<u64, u64>::builder()
        .configure(|c| {
            c.gateway.max_requests_per_second = 1e9;
            c.gateway.max_concurrent = max_concurrent;
            c.egress.operation_timeout = Duration::from_millis(20);
            c.egress.max_retries = 2;
            c.egress.base_retry_delay = Duration::from_millis(1);
            c.egress.max_retry_delay = Duration::from_millis(2);
        })
        .key(|x| format!("user-{}", x % 37))
        .validate(|x| {
            if x % 50 == 0 {
                Err(format!("{x} is a multiple of 50"))
            } else {
                Ok(())
            }
        })
        .preprocess(|x| {
            if x % 77 == 0 {
                Err("cannot preprocess".into())
            } else {
                Ok(*x)
            }
        })
        .call(move |x: u64| {
            let attempt = {
                let mut seen = attempts.lock().unwrap_or_else(|p| p.into_inner());
                let n = seen.entry(x).or_insert(0);
                *n += 1;
                *n
            };
            async move {
                match x % 100 {
                    1 | 2 => {
                        precise_sleep(Duration::from_secs(3600)).await;
                        Ok(x)
                    }
                    3..=7 if attempt == 1 => Err(AsyncFailure::Retryable("flaky".into())),
                    8 => Err(AsyncFailure::Permanent("rejected".into())),
                    _ => Ok(x * 10),
                }
            }
        })
        .destination(SlowAck(Duration::from_micros(args.ack_us)))
        .build()
        .context("building the pipeline")
}

/// Samples the records this process's gateways have inside until `done`: (the
/// most seen, the share of the limit, samples above the share).
fn sample_limit(
    state: Arc<PipelineState>,
    limit: u64,
    done: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(u64, u64, u64)> {
    std::thread::spawn(move || {
        let (mut max, mut share, mut violations) = (0, 0, 0);
        while !done.load(Ordering::Relaxed) {
            let inside = state.in_pipeline();
            // The share only grows while the gateways register, so reading it after
            // the count never makes a sample look worse than it was.
            share = share.max(state.admission_limit(limit));
            max = max.max(inside);
            if inside > share {
                violations += 1;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        (max, share, violations)
    })
}

fn write_lines(path: &Path, lines: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    for line in lines {
        writeln!(file, "{line}")?;
    }
    file.flush()?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    flink_examples::init_logging();
    std::fs::create_dir_all(&args.output)?;
    let env = StreamExecutionEnvironment::new();
    env.set_cluster_from_env();
    env.set_parallelism(args.parallelism);
    let out = env
        .from_sequence(1, args.records)
        .apply_pipeline(&pipeline(&args)?);
    let delivered = out.delivered.collect_vec();
    let dead = out.dead_letters.collect_vec();
    let undelivered = out.undelivered.collect_vec();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = sample_limit(out.state.clone(), args.max_concurrent as u64, done.clone());
    let result = env.execute("cluster pipeline");
    done.store(true, Ordering::Relaxed);
    let (max, share, violations) = sampler
        .join()
        .map_err(|_| anyhow::anyhow!("the sampler panicked"))?;
    let result = result?;
    let me = process_index();
    let dir = &args.output;
    write_lines(
        &dir.join(format!("delivered-{me}")),
        delivered
            .take()
            .into_iter()
            .map(|e| format!("{} {} {}", e.payload, e.key, e.partition)),
    )?;
    write_lines(
        &dir.join(format!("dead-{me}")),
        dead.take()
            .into_iter()
            .map(|d| format!("{} {}", d.record.payload, d.operator))
            .chain(
                undelivered
                    .take()
                    .into_iter()
                    .map(|d| format!("{} {}", d.record.payload, d.operator)),
            ),
    )?;
    let (entered, ended) = out.state.balance();
    write_lines(
        &dir.join(format!("limit-{me}")),
        std::iter::once(format!("{max} {share} {violations} {entered} {ended}")),
    )?;
    println!(
        "process {me}: max in pipeline {max} of share {share} ({violations} samples above), \
         {entered} admitted, {ended} of them ended, {:.2}s",
        result.duration.as_secs_f64()
    );
    Ok(())
}
