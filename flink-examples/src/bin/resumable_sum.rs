//! A keyed running sum that survives the death of its whole process: checkpoints
//! go to `--checkpoint-dir`, output to exactly-once part files in `--output-dir`
//! (committed when a checkpoint completes). Run it again with `--restore` after a
//! `kill -9` and it goes on from the latest completed checkpoint
//! (`restore_from(latest_checkpoint(dir, job))`): the committed files then hold
//! exactly what one run without the kill writes. flink-examples/tests/kill_nine.rs
//! proves it.
//!
//! `cargo run -p flink-examples --bin resumable_sum -- --checkpoint-dir DIR
//! --output-dir DIR [--restore | --restore-from PATH] [--records N] [--parallelism P]
//! [--new-sink] [--rate R] [--fail-once-at X] [--savepoint-inbox DIR] [--windows]`
//!
//! With `--windows` it counts each key's records in 100 ms event-time tumbling
//! windows (record `x` at `x` ms) instead of a running sum, writing
//! `key,window end,count`: a stop with a savepoint without drain fires no window
//! at the stop, so a stopped run and the run restored from its savepoint write
//! every window once, whole (flink-examples/tests/cluster_savepoints.rs).
//!
//! Across processes: `flink-rs run --processes 3 -- resumable_sum ...` (the launcher
//! restarts every process from the latest checkpoint after a kill;
//! flink-examples/tests/cluster_failover.rs proves it). With `--savepoint-inbox DIR`
//! each process takes savepoint requests from files (see
//! `flink_examples::savepoint_inbox`), so any process, not only process 0, can be
//! asked for one (flink-examples/tests/cluster_savepoints.rs).
//!
//! See docs/checkpoints.md and docs/deployment.md.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use flink_connectors::file::FileSink;
use flink_core::sources::{RateLimiterStrategy, SequenceSource};
use flink_core::watermark::WatermarkStrategy;
use flink_core::windows::{TimeWindow, TumblingEventTimeWindows};
use flink_examples::savepoint_inbox::{SavepointInbox, write_atomically};
use flink_runtime::checkpoint::latest_checkpoint;
use flink_runtime::prelude::*;

/// The job's name, which names its checkpoint directory `<checkpoint-dir>/<name>`.
const JOB: &str = "resumable-sum";
/// Keys are blocks of 100 consecutive numbers, so each key is read by one source
/// instance in order and its running sums are the same in every run.
const BLOCK: u64 = 100;

/// A keyed running sum into exactly-once files, restartable after a kill.
#[derive(Parser)]
#[command(name = "resumable_sum")]
struct Args {
    /// Where checkpoints go.
    #[arg(long)]
    checkpoint_dir: PathBuf,
    /// Where the committed part files go.
    #[arg(long)]
    output_dir: PathBuf,
    /// Start from the latest completed checkpoint in the checkpoint directory.
    #[arg(long)]
    restore: bool,
    /// Start from this savepoint or checkpoint.
    #[arg(long, conflicts_with = "restore")]
    restore_from: Option<PathBuf>,
    /// With --restore-from: the sink is a new one (its own uid), writing to an
    /// output directory of its own; the saved sink's state (its pending parts in
    /// the old directory) is left out.
    #[arg(long, requires = "restore_from")]
    new_sink: bool,
    /// Take savepoint requests from files in this directory, and write the job's
    /// outcome there (`result-<process>`: `stopped <bool> savepoint <path or none>`).
    #[arg(long)]
    savepoint_inbox: Option<PathBuf>,
    /// Records to read.
    #[arg(long, default_value_t = 100_000)]
    records: u64,
    /// Parallelism of the job.
    #[arg(long, default_value_t = 2)]
    parallelism: usize,
    /// Records per second the source reads (over all its instances).
    #[arg(long, default_value_t = 1_000_000.0)]
    rate: f64,
    /// Fail the map on this record, once: a marker file in the checkpoint directory
    /// remembers it failed, across restarts of the process.
    #[arg(long)]
    fail_once_at: Option<u64>,
    /// Take unaligned checkpoints: barriers overtake the records in flight, which
    /// are stored with the checkpoint and replayed on restore.
    #[arg(long)]
    unaligned: bool,
    /// Microseconds the running sum takes per record (back pressure, so records
    /// are in flight when a checkpoint is taken).
    #[arg(long, default_value_t = 0)]
    slow_us: u64,
    /// Parallelism of the source and the map chained to it (default: --parallelism):
    /// a rate-limited sequence restores only at the parallelism it was saved with,
    /// the keyed sum and the sink at any.
    #[arg(long)]
    source_parallelism: Option<usize>,
    /// Count each key's records in 100 ms event-time tumbling windows instead of
    /// a running sum (lines `key,window end,count`).
    #[arg(long)]
    windows: bool,
}

/// The event-time windows of `--windows`, in ms.
const WINDOW_MS: u64 = 100;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    flink_examples::init_logging();
    let env = StreamExecutionEnvironment::new();
    // Alone, or one of the processes `flink-rs run` started (which then restarts
    // every process from the latest checkpoint when one dies).
    env.set_cluster_from_env();
    env.set_parallelism(args.parallelism);
    env.enable_checkpointing(Duration::from_millis(50))
        .set_storage_dir(&args.checkpoint_dir)
        .enable_unaligned_checkpoints(args.unaligned);
    env.set_restart_strategy(RestartStrategy::FixedDelay {
        attempts: 3,
        delay: Duration::from_millis(100),
    });
    if args.restore {
        match latest_checkpoint(&args.checkpoint_dir, JOB)? {
            Some(checkpoint) => {
                println!("restoring from {}", checkpoint.display());
                env.restore_from(checkpoint);
            }
            None => println!("no completed checkpoint: starting from the beginning"),
        }
    }
    if let Some(path) = &args.restore_from {
        env.restore_from(path);
        env.allow_non_restored_state(args.new_sink);
    }
    let source = SequenceSource::range(0, args.records.saturating_sub(1))
        .rate_limited(RateLimiterStrategy::per_second(args.rate)?);
    let (fail_once_at, slow_us) = (args.fail_once_at, args.slow_us);
    let marker = args.checkpoint_dir.join("failed-once");
    let source_parallelism = args.source_parallelism.unwrap_or(args.parallelism);
    let keyed = env
        .from_source(source, "Sequence")
        .uid("sequence")
        .set_parallelism(source_parallelism)
        .map(move |x| {
            if Some(x) == fail_once_at && std::fs::File::create_new(&marker).is_ok() {
                panic!("record {x} fails once, as asked");
            }
            (x / BLOCK, x)
        })
        .uid("key")
        .set_parallelism(source_parallelism);
    let lines = if args.windows {
        keyed
            .assign_timestamps_and_watermarks(WatermarkStrategy::monotonous(|r: &(u64, u64)| {
                r.1 as i64
            }))
            .uid("timestamps")
            .set_parallelism(source_parallelism)
            .key_by(|r| r.0)
            .window(TumblingEventTimeWindows::of(Duration::from_millis(
                WINDOW_MS,
            )))
            .process(
                |key: &u64, w: &TimeWindow, rs: &[(u64, u64)], out: &mut dyn Collector<String>| {
                    out.collect(format!("{key},{},{}", w.end, rs.len()));
                },
            )
            .name("Window Counts")
            .uid("window-counts")
    } else {
        keyed
            .key_by(|r| r.0)
            .process(move |key, (_, x), sum, out| {
                if slow_us > 0 {
                    std::thread::sleep(Duration::from_micros(slow_us));
                }
                let next = sum.value().copied().unwrap_or(0) + x;
                sum.update(next);
                out.collect(format!("{key},{x},{next}"));
            })
            .name("Running Sum")
            .uid("running-sum")
    };
    lines
        .sink_to(
            FileSink::<String>::text(&args.output_dir)
                .max_part_size(64 * 1024)
                .exactly_once(),
        )
        .uid(if args.new_sink { "new-files" } else { "files" });
    let client = env.execute_async(JOB)?;
    // This process's index in a job spread over processes (0 alone).
    let process: usize = std::env::var(flink_core::cluster::ENV_PROCESS_INDEX)
        .ok()
        .and_then(|i| i.parse().ok())
        .unwrap_or(0);
    let inbox = args
        .savepoint_inbox
        .as_deref()
        .map(|dir| SavepointInbox::new(dir, process));
    // The most in-flight data a completed checkpoint stored (process 0 sees every
    // process's): shows unaligned checkpoints cut records in flight.
    let mut persisted = 0;
    let result = loop {
        for c in client.completed_checkpoints() {
            persisted = persisted.max(c.persisted_data);
        }
        if client.state().is_terminal() {
            break client.wait()?;
        }
        if let Some(inbox) = &inbox {
            inbox.serve(&client.control())?;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    println!("max persisted in-flight data: {persisted}");
    if persisted > 0 {
        std::fs::write(
            args.checkpoint_dir
                .join(format!("persisted-{}", std::process::id())),
            persisted.to_string(),
        )?;
    }
    if let Some(dir) = &args.savepoint_inbox {
        let savepoint = result
            .savepoint
            .as_ref()
            .map_or_else(|| "none".to_string(), ToString::to_string);
        write_atomically(
            &dir.join(format!("result-{process}")),
            &format!("stopped {} savepoint {savepoint}", result.stopped),
        )?;
    }
    println!(
        "read {} records; checkpoints: {:?}; restarts: {}",
        result.records_read_by_sources(),
        result.checkpoints,
        result.restarts.len()
    );
    Ok(())
}
