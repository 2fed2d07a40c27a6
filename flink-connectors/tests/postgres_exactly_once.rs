//! The exactly-once PostgreSQL sink against the test database (see
//! `common::service`): a keyed running sum with failures injected after
//! checkpoints completed leaves each expected row in the table exactly once, and a
//! transaction committed again (a replay after a restore) adds nothing.

#[macro_use]
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::pg::{exec, query_i64};
use common::{POSTGRES, unique};
use flink_connectors::postgres::{PostgresConfig, PostgresSink, SqlValue};
use flink_core::operator::Operator;
use flink_core::sink::Sink;
use flink_core::sources::{RateLimiterStrategy, SequenceSource};
use flink_runtime::prelude::*;

const RECORDS: u64 = 20_000;
const BLOCK: u64 = 100;

/// (key, x, running sum of the key's x), as a failure-free run emits it; each
/// block of 100 consecutive numbers is one key, read by one source instance.
fn expected() -> Vec<(i64, i64, i64)> {
    let mut out = Vec::new();
    let mut sum = 0;
    for x in 0..RECORDS {
        if x % BLOCK == 0 {
            sum = 0;
        }
        sum += x;
        out.push(((x / BLOCK) as i64, x as i64, sum as i64));
    }
    out
}

/// Panics `remaining` times, each at the `every`-th record an instance sees after a
/// checkpoint completed in its attempt: every restart resumes from a checkpoint and
/// the failure catches rows of a transaction not yet committed.
struct FailAfterCheckpoint {
    fired: Arc<Mutex<usize>>,
    failures: usize,
    every: u64,
    since_checkpoint: Option<u64>,
}

impl Operator<(u64, u64, u64), (u64, u64, u64)> for FailAfterCheckpoint {
    fn process<C: Collector<(u64, u64, u64)> + ?Sized>(
        &mut self,
        record: (u64, u64, u64),
        out: &mut C,
    ) {
        if let Some(seen) = &mut self.since_checkpoint {
            *seen += 1;
            let mut fired = self.fired.lock().unwrap();
            if *fired < self.failures && *seen == self.every {
                *fired += 1;
                let n = *fired;
                drop(fired);
                panic!("injected failure {n} at record {}", record.1);
            }
        }
        out.collect(record);
    }

    fn notify_checkpoint_complete(&mut self, _checkpoint_id: u64) {
        self.since_checkpoint.get_or_insert(0);
    }
}

fn rows(url: &str, table: &str) -> Vec<(i64, i64, i64)> {
    let order = "ORDER BY x, k, s";
    let k = query_i64(url, &format!("SELECT k FROM {table} {order}"));
    let x = query_i64(url, &format!("SELECT x FROM {table} {order}"));
    let s = query_i64(url, &format!("SELECT s FROM {table} {order}"));
    k.into_iter()
        .zip(x)
        .zip(s)
        .map(|((k, x), s)| (k, x, s))
        .collect()
}

#[test]
fn each_row_is_written_once_across_injected_failures() {
    let url = require_service!(POSTGRES);
    let table = unique("eos_rows");
    let markers = unique("eos_markers");
    exec(
        &url,
        &format!("CREATE TABLE {table} (k bigint NOT NULL, x bigint NOT NULL, s bigint NOT NULL)"),
    );
    let failures = 5;
    let dir = tempfile::tempdir().unwrap();
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.enable_checkpointing(Duration::from_millis(10))
        .set_storage_dir(dir.path());
    env.set_restart_strategy(RestartStrategy::FixedDelay {
        attempts: failures as u32 + 5,
        delay: Duration::ZERO,
    });
    let config = PostgresConfig::new(
        &url,
        &table,
        ["k", "x", "s"],
        |(k, x, s): &(u64, u64, u64)| {
            vec![
                SqlValue::Int(*k as i64),
                SqlValue::Int(*x as i64),
                SqlValue::Int(*s as i64),
            ]
        },
    );
    let sink = PostgresSink::new(config)
        .unwrap()
        .exactly_once("eos-test")
        .marker_table(&markers);
    let fired = Arc::new(Mutex::new(0));
    let handle = fired.clone();
    let source = SequenceSource::range(0, RECORDS - 1)
        .rate_limited(RateLimiterStrategy::per_second(20_000.0).unwrap());
    env.from_source(source, "Sequence")
        .map(|x: u64| (x / BLOCK, x))
        .key_by(|r: &(u64, u64)| r.0)
        .process(
            |key: &u64,
             (_, x): (u64, u64),
             sum: &mut ValueState<u64>,
             out: &mut dyn Collector<(u64, u64, u64)>| {
                let next = sum.value().copied().unwrap_or(0) + x;
                sum.update(next);
                out.collect((*key, x, next));
            },
        )
        .transform("Fail", move |ctx| FailAfterCheckpoint {
            fired: handle.clone(),
            failures,
            every: 37 + 11 * ctx.subtask_index as u64,
            since_checkpoint: None,
        })
        .sink_to(sink);
    let result = env
        .execute("postgres exactly once")
        .expect("the job recovers from every failure");
    assert_eq!(*fired.lock().unwrap(), failures, "every failure fired");
    assert!(
        result
            .restarts
            .iter()
            .all(|r| r.restored_checkpoint.is_some() && r.cause.contains("injected failure")),
        "{:#?}",
        result.restarts
    );
    assert!((1..=failures).contains(&result.restarts.len()));
    // The sink took more rows than the table holds: the failures caught rows of
    // uncommitted transactions, which were written again after the restore.
    let sink_in = result.operator("Sink").expect("sink metrics").records_in;
    assert!(sink_in > RECORDS, "the sink took {sink_in} rows");
    let mut got = rows(&url, &table);
    got.sort_unstable();
    assert_eq!(got.len(), RECORDS as usize);
    assert_eq!(got, expected());
    // One marker per committed transaction, each naming the job.
    let jobs = query_i64(
        &url,
        &format!("SELECT count(*) FROM {markers} WHERE job = 'eos-test'"),
    );
    let all = query_i64(&url, &format!("SELECT count(*) FROM {markers}"));
    assert_eq!(jobs, all);
    assert!(all[0] >= 2, "at least the final transactions: {all:?}");
}

/// The process died after the checkpoint completed but before the commit (as after
/// a `kill -9`): a new process restoring the checkpoint writes the rows; restoring it
/// once more (another crash) adds nothing.
#[test]
fn a_commit_the_dead_process_never_made_is_made_on_restore_once() {
    let url = require_service!(POSTGRES);
    let table = unique("eos_restore");
    let markers = unique("eos_restore_markers");
    exec(&url, &format!("CREATE TABLE {table} (k bigint NOT NULL)"));
    let sink = || {
        let config = PostgresConfig::new(&url, &table, ["k"], |k: &u64| {
            vec![SqlValue::Int(*k as i64)]
        });
        PostgresSink::new(config)
            .unwrap()
            .exactly_once("restore-test")
            .marker_table(&markers)
    };
    let ctx = common::sink_context(0);
    let count = || query_i64(&url, &format!("SELECT count(*) FROM {table}"))[0];
    // The first process: three rows, checkpoint 1 taken (pre-commit), then it dies.
    let mut first = Sink::create_writer(&sink(), &ctx);
    for k in 0..3 {
        first.write(k).unwrap();
    }
    let state = first
        .snapshot_state(1)
        .unwrap()
        .expect("the pending transaction");
    first.write(3).unwrap(); // after the checkpoint: never committed
    drop(first);
    assert_eq!(count(), 0, "nothing was committed before the crash");
    // A new process restores checkpoint 1: its transaction is committed now.
    let mut second = Sink::create_writer(&sink(), &ctx);
    second.restore_state(&state).unwrap();
    assert_eq!(count(), 3);
    drop(second);
    // And once more: the marker makes the replayed commit a no-op.
    let mut third = Sink::create_writer(&sink(), &ctx);
    third.restore_state(&state).unwrap();
    assert_eq!(count(), 3);
    let markers_of_job = query_i64(
        &url,
        &format!("SELECT count(*) FROM {markers} WHERE job = 'restore-test' AND checkpoint_id = 1"),
    );
    assert_eq!(markers_of_job, vec![1]);
}
