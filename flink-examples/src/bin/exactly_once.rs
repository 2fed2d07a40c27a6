//! Exactly-once output across failures: a keyed running sum with checkpoints, a
//! two-phase-commit sink, and user-function panics injected at seeded record
//! positions. Prints the restarts and checks the committed output against the
//! output of a run without failures.
//!
//! `cargo run --release -p flink-examples --bin exactly_once -- [--records N]
//! [--parallelism P] [--failures F] [--checkpoint-dir DIR]`
//!
//! See docs/checkpoints.md.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use flink_core::sources::{RateLimiterStrategy, SequenceSource};
use flink_runtime::prelude::*;

/// A keyed running sum that survives injected failures with exactly-once output.
#[derive(Parser)]
#[command(name = "exactly_once")]
struct Args {
    /// Records to read.
    #[arg(long, default_value_t = 200_000)]
    records: u64,
    /// Parallelism of the job.
    #[arg(long, default_value_t = 2)]
    parallelism: usize,
    /// Panics to inject, each at a seeded record position, firing once.
    #[arg(long, default_value_t = 10)]
    failures: usize,
    /// Records per second the source reads (so that checkpoints happen meanwhile).
    #[arg(long, default_value_t = 500_000.0)]
    rate: f64,
    /// Where checkpoints go (default: a temporary directory).
    #[arg(long)]
    checkpoint_dir: Option<std::path::PathBuf>,
}

/// Keys are blocks of 100 consecutive numbers, so each key is read by one source
/// instance in order and its running sums are the same in every run.
const BLOCK: u64 = 100;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    flink_examples::init_logging();
    let dir = match &args.checkpoint_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("flink-rs-exactly-once-{}", std::process::id())),
    };
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(args.parallelism);
    env.enable_checkpointing(Duration::from_millis(10))
        .set_storage_dir(&dir);
    env.set_restart_strategy(RestartStrategy::FixedDelay {
        attempts: u32::try_from(args.failures).unwrap_or(u32::MAX) + 1,
        delay: Duration::from_millis(10),
    });
    let points: HashSet<u64> = (1..=args.failures as u64)
        .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % args.records.max(1))
        .collect();
    let fired = Arc::new(Mutex::new(HashSet::new()));
    let source = SequenceSource::range(0, args.records.saturating_sub(1))
        .rate_limited(RateLimiterStrategy::per_second(args.rate)?);
    let out = TransactionalCollectingSink::new();
    env.from_source(source, "Sequence")
        .map(move |x| {
            let first_time = fired.lock().map(|mut f| f.insert(x)).unwrap_or(false);
            if points.contains(&x) && first_time {
                panic!("injected failure at record {x}");
            }
            (x / BLOCK, x)
        })
        .key_by(|r| r.0)
        .process(|key, (_, x), sum, out| {
            let next = sum.value().copied().unwrap_or(0) + x;
            sum.update(next);
            out.collect((*key, x, next));
        })
        .name("Running Sum")
        .sink_to(out.clone());
    let result = env.execute("exactly-once")?;
    for (i, restart) in result.restarts.iter().enumerate() {
        println!(
            "restart {}: from checkpoint {:?}, {} records in flight replayed; cause: {}",
            i + 1,
            restart.restored_checkpoint,
            restart.lost_in_flight,
            restart.cause
        );
    }
    if let Some(c) = result.checkpoints {
        println!(
            "checkpoints: {} completed, {} failed",
            c.completed, c.failed
        );
    }
    let mut committed = out.committed();
    committed.sort_unstable();
    let expected = expected(args.records);
    println!(
        "committed {} records, read {} (replays included); {}",
        committed.len(),
        result.records_read_by_sources(),
        if committed == expected {
            "exactly the output of a run without failures"
        } else {
            "DIFFERENT from a run without failures"
        }
    );
    if args.checkpoint_dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    anyhow::ensure!(
        committed == expected,
        "the committed output is not exactly once"
    );
    Ok(())
}

/// Each record with its key's running sum, as a run without failures emits them.
fn expected(records: u64) -> Vec<(u64, u64, u64)> {
    let mut sum = 0;
    let mut out: Vec<(u64, u64, u64)> = (0..records)
        .map(|x| {
            if x % BLOCK == 0 {
                sum = 0;
            }
            sum += x;
            (x / BLOCK, x, sum)
        })
        .collect();
    out.sort_unstable();
    out
}
