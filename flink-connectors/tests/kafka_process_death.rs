//! The death of the whole process at the worst moment for an exactly-once Kafka
//! sink: a checkpoint completed, its transaction is pre-committed and not committed
//! yet. A job Kafka -> keyed running sum -> exactly-once Kafka runs as a child
//! process (this test binary, running its ignored `child_job`), halts in the
//! sink's commit path (the `FLINK_RS_TEST_KAFKA_HALT_BEFORE_COMMIT` hook, so the
//! kill point is deterministic) and is killed with SIGKILL; a second child restores
//! `latest_checkpoint(dir)` and runs to the end. A `read_committed` reader then sees
//! every expected record exactly once: the restored writer committed the dead
//! process's transaction through its coordinator (without that: 18,000 to 18,800
//! of 20,000 records) and aborted the lingering ones (without that, they hold the
//! reader back: 4,000).
//! No timing assertions; a guard timeout prevents a hang.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::kafka::{Msg, create_topic, produce, read_committed};
use common::{KAFKA, unique};
use flink_connectors::kafka::{DeliveryGuarantee, KafkaSink, KafkaSource, StartingOffsets};
use flink_runtime::checkpoint::latest_checkpoint;
use flink_runtime::prelude::*;

/// Input records; keys `x % KEYS`, each key in partition `key % 2`.
const RECORDS: u64 = 20_000;
const KEYS: u64 = 20;
/// The job's name, which names its checkpoint directory.
const JOB: &str = "kafka-process-death";
/// The commit (counted over the process's sink writers) the first run halts at.
const HALT_AT_COMMIT: usize = 3;
/// The child's settings, passed in its environment.
const CHILD: &str = "KAFKA_PROCESS_DEATH_CHILD";

/// (key, x, running sum of the key's x so far), as a failure-free run emits it.
fn expected() -> Vec<(u64, u64, u64)> {
    let mut sums = vec![0; KEYS as usize];
    let mut out: Vec<_> = (0..RECORDS)
        .map(|x| {
            let k = x % KEYS;
            sums[k as usize] += x;
            (k, x, sums[k as usize])
        })
        .collect();
    out.sort_unstable();
    out
}

/// What a child run needs:
/// `bootstrap|input|output|prefix|checkpoint dir|restore|parallelism`.
struct Settings {
    bootstrap: String,
    input: String,
    output: String,
    prefix: String,
    checkpoints: PathBuf,
    restore: bool,
    parallelism: usize,
}

impl Settings {
    fn encode(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}|{}|{}",
            self.bootstrap,
            self.input,
            self.output,
            self.prefix,
            self.checkpoints.display(),
            self.restore,
            self.parallelism
        )
    }

    fn decode(s: &str) -> Self {
        let p: Vec<&str> = s.split('|').collect();
        Self {
            bootstrap: p[0].into(),
            input: p[1].into(),
            output: p[2].into(),
            prefix: p[3].into(),
            checkpoints: p[4].into(),
            restore: p[5] == "true",
            parallelism: p[6].parse().unwrap(),
        }
    }
}

/// The job of a child process: Kafka -> keyed running sum -> exactly-once Kafka at
/// the settings' parallelism, checkpoints every 20 ms; with `restore`, from the
/// latest one.
#[test]
#[ignore = "the child process of a_process_killed_before_its_commit_loses_nothing_on_restore"]
fn child_job() {
    let settings = Settings::decode(&std::env::var(CHILD).expect("run by the parent test"));
    // The sink's recovery (commits, aborts) goes to the run's log file.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(settings.parallelism);
    env.set_buffer_timeout(Some(Duration::from_millis(1)));
    env.set_max_buffers_per_channel(1).set_buffer_size(256);
    env.enable_checkpointing(Duration::from_millis(20))
        .set_storage_dir(&settings.checkpoints);
    env.set_restart_strategy(RestartStrategy::None);
    if settings.restore {
        let latest = latest_checkpoint(&settings.checkpoints, JOB)
            .expect("the checkpoint directory lists")
            .expect("the killed run completed a checkpoint");
        env.restore_from(latest);
    }
    let source = KafkaSource::<u64>::builder()
        .bootstrap_servers(&settings.bootstrap)
        .topics([&settings.input])
        .group_id(&unique("death-group"))
        .starting_offsets(StartingOffsets::Earliest)
        .bounded()
        .json_values()
        .build()
        .unwrap();
    let sink = KafkaSink::<(u64, u64, u64)>::builder()
        .bootstrap_servers(&settings.bootstrap)
        .topic(&settings.output)
        .key(|r: &(u64, u64, u64)| Some(r.0.to_string().into_bytes()))
        .json_values()
        .delivery_guarantee(DeliveryGuarantee::ExactlyOnce)
        .transactional_id_prefix(&settings.prefix)
        .build()
        .unwrap();
    env.from_source(source, "Kafka")
        .map(|x: u64| (x % KEYS, x))
        .key_by(|r: &(u64, u64)| r.0)
        .process(
            |key: &u64,
             (_, x): (u64, u64),
             sum: &mut ValueState<u64>,
             out: &mut dyn Collector<(u64, u64, u64)>| {
                // Slow enough that checkpoints complete while the job runs.
                std::thread::sleep(Duration::from_micros(200));
                let next = sum.value().copied().unwrap_or(0) + x;
                sum.update(next);
                out.collect((*key, x, next));
            },
        )
        .sink_to(sink);
    env.execute(JOB).expect("the job runs to its end");
}

/// A child process running `child_job` with `settings`.
fn child(settings: &Settings, log: &Path) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["child_job", "--exact", "--ignored", "--nocapture"])
        .env(CHILD, settings.encode())
        .env("RUST_LOG", "flink_connectors=info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    cmd
}

/// Runs the job at parallelism 2 killed in the commit path at each of `halts` (the
/// commit a run halts at, counted in that run), each run after the first
/// restoring the latest checkpoint, then a last restored run to the end at
/// parallelism `last_parallelism`; returns what a `read_committed` reader sees and
/// the ids of the halted transactions.
fn run_killed_at(
    bootstrap: &str,
    halts: &[usize],
    last_parallelism: usize,
) -> (Vec<(u64, u64, u64)>, Vec<String>) {
    let (input, output) = (unique("death-in"), unique("death-out"));
    create_topic(bootstrap, &input, 2);
    create_topic(bootstrap, &output, 2);
    let messages: Vec<Msg> = (0..RECORDS)
        .map(|x| {
            (
                Some(((x % KEYS) % 2) as i32),
                None,
                x.to_string().into_bytes(),
            )
        })
        .collect();
    produce(bootstrap, &input, &messages);
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings {
        bootstrap: bootstrap.to_string(),
        input,
        output: output.clone(),
        prefix: unique("death-txn"),
        checkpoints: dir.path().join("checkpoints"),
        restore: false,
        parallelism: 2,
    };
    let mut halted = Vec::new();
    for (run, halt) in halts.iter().enumerate() {
        let marker = dir.path().join(format!("halted-{run}"));
        let log = dir.path().join(format!("run-{run}.log"));
        let mut child = child(&settings, &log)
            .env(
                "FLINK_RS_TEST_KAFKA_HALT_BEFORE_COMMIT",
                format!("{halt}:{}", marker.display()),
            )
            .spawn()
            .unwrap();
        let start = Instant::now();
        while !marker.is_file() {
            if let Some(status) = child.try_wait().unwrap() {
                let log = std::fs::read_to_string(&log).unwrap();
                panic!("run {run} ended ({status}) before halting:\n{log}");
            }
            assert!(start.elapsed() < Duration::from_secs(120), "no halt");
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap(); // SIGKILL
        assert!(!child.wait().unwrap().success(), "killed, not finished");
        eprintln!(
            "run {run}'s log:\n{}",
            std::fs::read_to_string(&log).unwrap()
        );
        let id = std::fs::read_to_string(&marker).unwrap();
        assert!(id.starts_with(&format!("{}-", settings.prefix)), "{id}");
        halted.push(id);
        // The next run restores the latest checkpoint (the one whose commit never
        // happened, or a later one).
        settings.restore = true;
    }
    settings.parallelism = last_parallelism;
    let log = dir.path().join("last.log");
    let mut last = child(&settings, &log).spawn().unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = last.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(300) {
            last.kill().unwrap();
            panic!("the restored run did not end");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "the restored run failed:\n{log}");
    // Shown when the test fails.
    eprintln!("the last run's log:\n{log}");
    (read_committed(bootstrap, &output), halted)
}

#[test]
fn a_process_killed_before_its_commit_loses_nothing_on_restore() {
    let bootstrap = require_service!(KAFKA);
    let (committed, halted) = run_killed_at(&bootstrap, &[HALT_AT_COMMIT], 2);
    // Exactly the failure-free output, each record once (a multiset).
    assert_eq!(
        committed.len(),
        RECORDS as usize,
        "transaction {halted:?} halted before its commit"
    );
    assert_eq!(committed, expected());
}

/// Killed again in the restored run, after it committed the restored
/// transactions and before committing one of its own: the third run commits that
/// one (an id of the second run) and finds the first run's committed already.
#[test]
fn a_process_killed_twice_in_a_row_loses_nothing() {
    let bootstrap = require_service!(KAFKA);
    let (committed, halted) = run_killed_at(&bootstrap, &[HALT_AT_COMMIT, 2], 2);
    // `<prefix>-<subtask>-<restored checkpoint>-<n>`: the second run's own.
    let restored = halted[1].rsplit('-').nth(1).unwrap();
    assert_ne!(restored, "0", "{halted:?}");
    assert_eq!(committed.len(), RECORDS as usize, "halted: {halted:?}");
    assert_eq!(committed, expected());
}

/// Restored at another parallelism: at 1, the one writer commits both saved
/// subtasks' transactions and aborts both subtasks' lingering ones; at 3, writers 0
/// and 1 settle their own and writer 2 finds nothing to settle.
#[test]
fn a_process_killed_before_its_commit_restores_at_another_parallelism() {
    let bootstrap = require_service!(KAFKA);
    for parallelism in [1, 3] {
        let (committed, halted) = run_killed_at(&bootstrap, &[HALT_AT_COMMIT], parallelism);
        assert_eq!(
            committed.len(),
            RECORDS as usize,
            "restored at {parallelism}, halted: {halted:?}"
        );
        assert_eq!(committed, expected(), "restored at {parallelism}");
    }
}
