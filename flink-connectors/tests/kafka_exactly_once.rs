//! Kafka -> keyed running state -> Kafka with exactly-once, against the test broker
//! (noida-db under `scripts/test.sh`; see `common::service`), with panics injected at
//! seeded distances after a checkpoint completed: a `read_committed` reader sees every expected output
//! record exactly once, and the input offsets committed to the group are the input's
//! end. No timing assertions: timing only decides which checkpoint a restart resumes
//! from.

#[macro_use]
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::kafka::{Msg, create_topic, group_offsets, produce, read_committed, watermarks};
use common::{KAFKA, unique};
use flink_connectors::kafka::{DeliveryGuarantee, KafkaSink, KafkaSource, StartingOffsets};
use flink_core::operator::Operator;
use flink_core::sink::Sink;
use flink_runtime::prelude::*;
use rdkafka::config::ClientConfig;

/// Input records; keys `x % KEYS`, each key in partition `key % 2`, so each key's
/// records are read in order by one source instance and its running sums are the
/// same in every run.
const RECORDS: u64 = 30_000;
const KEYS: u64 = 30;

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

/// `n` seeded distances (1..=500 records), xorshift64*.
fn failure_distances(seed: u64, n: usize) -> Vec<u64> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            1 + state.wrapping_mul(0x2545_F491_4F6C_DD1D) % 500
        })
        .collect()
}

/// The injected failures of a run: failure `i` fires at the `distances[i]`-th record
/// an instance sees after a checkpoint completed in its attempt. So every restart
/// resumes from a checkpoint (the one that completed, or a later one), and the
/// records the sink wrote since the latest checkpoint (it writes each network
/// buffer's records as they come) are in a transaction the failure aborts.
struct Failures {
    distances: Vec<u64>,
    fired: Mutex<Vec<String>>,
}

/// Passes records on; panics where [`Failures`] says.
struct FailAfterCheckpoint {
    failures: Arc<Failures>,
    /// Records seen since a checkpoint completed in this attempt.
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
            let mut fired = self.failures.fired.lock().unwrap();
            if fired.len() < self.failures.distances.len()
                && *seen == self.failures.distances[fired.len()]
            {
                let n = fired.len() + 1;
                fired.push(format!("record {}", record.1));
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

/// The offsets `group` committed for partitions `0..partitions` of `topic`; every
/// partition has one.
fn committed_offsets(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let offsets = group_offsets(bootstrap, group, topic, partitions);
    assert!(
        offsets.iter().all(|&o| o >= 0),
        "a partition has no committed offset: {offsets:?}"
    );
    offsets
}

fn exactly_once_across_failures(failures: usize, seed: u64) {
    let bootstrap = require_service!(KAFKA);
    let (input, output) = (unique("eos-in"), unique("eos-out"));
    create_topic(&bootstrap, &input, 2);
    create_topic(&bootstrap, &output, 2);
    let messages: Vec<Msg> = (0..RECORDS)
        .map(|x| {
            (
                Some(((x % KEYS) % 2) as i32),
                None,
                x.to_string().into_bytes(),
            )
        })
        .collect();
    produce(&bootstrap, &input, &messages);

    let dir = tempfile::tempdir().unwrap();
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    // Records reach the sink soon after they are made, so failures catch some
    // written after the latest checkpoint.
    env.set_buffer_timeout(Some(Duration::from_millis(1)));
    // Few records in flight, so barriers pass soon and a restart replays little.
    env.set_max_buffers_per_channel(1).set_buffer_size(256);
    env.enable_checkpointing(Duration::from_millis(10))
        .set_storage_dir(dir.path());
    env.set_restart_strategy(RestartStrategy::FixedDelay {
        attempts: failures as u32 + 5,
        delay: Duration::ZERO,
    });
    let group = unique("eos-group");
    let source = KafkaSource::<u64>::builder()
        .bootstrap_servers(&bootstrap)
        .topics([&input])
        .group_id(&group)
        .starting_offsets(StartingOffsets::Earliest)
        .commit_offsets(true)
        .bounded()
        .json_values()
        .build()
        .unwrap();
    let sink = KafkaSink::<(u64, u64, u64)>::builder()
        .bootstrap_servers(&bootstrap)
        .topic(&output)
        .key(|r: &(u64, u64, u64)| Some(r.0.to_string().into_bytes()))
        .json_values()
        .delivery_guarantee(DeliveryGuarantee::ExactlyOnce)
        .transactional_id_prefix(&unique("eos-txn"))
        .build()
        .unwrap();
    let injected = Arc::new(Failures {
        distances: failure_distances(seed, failures),
        fired: Mutex::new(Vec::new()),
    });
    let handle = injected.clone();
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
        .transform("Fail", move |_| FailAfterCheckpoint {
            failures: handle.clone(),
            since_checkpoint: None,
        })
        .sink_to(sink);
    let result = env
        .execute("kafka exactly once")
        .expect("the job recovers from every failure");
    assert_eq!(
        injected.fired.lock().unwrap().len(),
        failures,
        "every failure fired once"
    );
    assert!(
        (1..=failures).contains(&result.restarts.len()) || failures == 0,
        "{:#?}",
        result.restarts
    );
    for restart in &result.restarts {
        assert!(
            restart.cause.contains("injected failure"),
            "{}",
            restart.cause
        );
    }
    assert!(
        result
            .restarts
            .iter()
            .all(|r| r.restored_checkpoint.is_some()),
        "every restart resumed from a checkpoint: {:#?}",
        result.restarts
    );
    // The failures caught records the sink had written after the latest checkpoint
    // (an at-least-once sink duplicates them: this test then fails).
    let sink_in = result.operator("Sink").expect("sink metrics").records_in;
    assert!(
        failures == 0 || sink_in > RECORDS,
        "the sink wrote {sink_in} records in all attempts"
    );
    // Exactly the failure-free output, each record once (a multiset).
    let committed = read_committed(&bootstrap, &output);
    assert_eq!(committed.len(), RECORDS as usize);
    assert_eq!(committed, expected());
    // The group's offsets are the input's end.
    let ends: Vec<i64> = watermarks(&bootstrap, &input, 2)
        .into_iter()
        .map(|(_, high)| high)
        .collect();
    assert_eq!(committed_offsets(&bootstrap, &group, &input, 2), ends);
}

#[test]
fn kafka_to_kafka_exactly_once_without_failures() {
    exactly_once_across_failures(0, 1);
}

#[test]
fn kafka_to_kafka_exactly_once_across_six_injected_failures() {
    exactly_once_across_failures(6, 0x9E37_79B9_7F4A_7C15);
}

#[test]
fn exactly_once_needs_a_transactional_id_prefix_and_plaintext() {
    let builder = || {
        KafkaSink::<String>::builder()
            .bootstrap_servers("127.0.0.1:1")
            .topic("t")
            .string_values()
            .delivery_guarantee(DeliveryGuarantee::ExactlyOnce)
    };
    let missing = builder().build().err().expect("no prefix").to_string();
    assert!(missing.contains("transactional_id_prefix"), "{missing}");
    let empty = builder().transactional_id_prefix("").build().err();
    assert!(empty.expect("empty prefix").to_string().contains("empty"));
    let tls = builder()
        .transactional_id_prefix("job")
        .property("security.protocol", "SSL")
        .build()
        .err()
        .expect("TLS");
    assert!(tls.to_string().contains("plaintext"), "{tls}");
    assert!(builder().transactional_id_prefix("job").build().is_ok());
}

/// Offsets reach the group when checkpoints complete, not only at the end: a job
/// that fails for good after checkpoints completed (no restarts, so no end-of-job
/// commit) leaves the offsets of a completed checkpoint, past the start and short
/// of the end.
#[test]
fn offsets_are_committed_when_checkpoints_complete() {
    let bootstrap = require_service!(KAFKA);
    let input = unique("ckpt-offsets-in");
    create_topic(&bootstrap, &input, 2);
    let messages: Vec<Msg> = (0..RECORDS)
        .map(|x| {
            (
                Some(((x % KEYS) % 2) as i32),
                None,
                x.to_string().into_bytes(),
            )
        })
        .collect();
    produce(&bootstrap, &input, &messages);
    let dir = tempfile::tempdir().unwrap();
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.set_buffer_timeout(Some(Duration::from_millis(1)));
    env.set_max_buffers_per_channel(1).set_buffer_size(256);
    env.enable_checkpointing(Duration::from_millis(10))
        .set_storage_dir(dir.path());
    env.set_restart_strategy(RestartStrategy::None);
    let group = unique("ckpt-offsets-group");
    let source = KafkaSource::<u64>::builder()
        .bootstrap_servers(&bootstrap)
        .topics([&input])
        .group_id(&group)
        .commit_offsets(true)
        .bounded()
        .json_values()
        .build()
        .unwrap();
    let failures = Arc::new(Failures {
        distances: vec![200],
        fired: Mutex::new(Vec::new()),
    });
    let handle = failures.clone();
    let out = TransactionalCollectingSink::<(u64, u64, u64)>::new();
    env.from_source(source, "Kafka")
        .map(|x: u64| {
            std::thread::sleep(Duration::from_micros(200));
            (x % KEYS, x, x)
        })
        .transform("Fail", move |_| FailAfterCheckpoint {
            failures: handle.clone(),
            since_checkpoint: None,
        })
        .sink_to(out);
    let err = env.execute("fails after checkpoints").unwrap_err();
    assert!(err.to_string().contains("injected failure 1"), "{err}");
    let ends: Vec<i64> = watermarks(&bootstrap, &input, 2)
        .into_iter()
        .map(|(_, high)| high)
        .collect();
    let committed = committed_offsets(&bootstrap, &group, &input, 2);
    let (total, end): (i64, i64) = (committed.iter().sum(), ends.iter().sum());
    assert!(
        total > 0 && total < end,
        "committed {committed:?}, end {ends:?}"
    );
}

/// The sink context of subtask 0 (of 1) restoring `state` as checkpoint 1's, as
/// the runtime hands it to a restored sink.
fn restored_context(state: &[u8]) -> flink_core::operator::RuntimeContext {
    let mut ctx = common::sink_context(0);
    ctx.restored = flink_core::checkpoint::RestoredState {
        checkpoint_id: Some(1),
        by_subtask: Arc::from(vec![Some(Arc::from(state))]),
    };
    ctx
}

fn eos_sink(bootstrap: &str, topic: &str, prefix: &str) -> KafkaSink<(u64, u64, u64)> {
    KafkaSink::<(u64, u64, u64)>::builder()
        .bootstrap_servers(bootstrap)
        .topic(topic)
        .json_values()
        .delivery_guarantee(DeliveryGuarantee::ExactlyOnce)
        .transactional_id_prefix(prefix)
        .build()
        .unwrap()
}

/// A transaction pre-committed by a writer whose producers are gone (its process
/// died after the checkpoint completed, before the commit) is committed by a new
/// sink instance restoring it, through the transaction coordinator; the records
/// written after the checkpoint are aborted; restoring the same checkpoint again
/// commits nothing twice.
#[test]
fn a_restored_transaction_is_committed_after_its_producer_died_once() {
    let bootstrap = require_service!(KAFKA);
    let (topic, prefix) = (unique("eos-dead"), unique("eos-dead-txn"));
    create_topic(&bootstrap, &topic, 1);
    let mut first = Sink::create_writer(
        &eos_sink(&bootstrap, &topic, &prefix),
        &common::sink_context(0),
    );
    for x in 0..3 {
        first.write((0, x, x)).unwrap();
    }
    let state = first
        .snapshot_state(1)
        .unwrap()
        .expect("the pending transaction");
    first.write((0, 9, 9)).unwrap(); // after the checkpoint: aborted
    // The process dies: its producers are gone, nothing committed.
    std::mem::forget(first);
    for _ in 0..2 {
        let ctx = restored_context(&state);
        let mut again = Sink::create_writer(&eos_sink(&bootstrap, &topic, &prefix), &ctx);
        again.restore_state(&state).unwrap();
        again.finish().unwrap();
        again.notify_checkpoint_complete(u64::MAX).unwrap();
        drop(again);
        assert_eq!(
            read_committed(&bootstrap, &topic),
            vec![(0, 0, 0), (0, 1, 1), (0, 2, 2)]
        );
    }
}

/// A restored transaction the broker aborted (here: a writer that did not know
/// the restored checkpoint took it for a lingering one) cannot be committed: the
/// restore fails naming it instead of losing its records silently.
#[test]
fn a_restored_transaction_the_broker_aborted_fails_the_restore() {
    let bootstrap = require_service!(KAFKA);
    let (topic, prefix) = (unique("eos-lost"), unique("eos-lost-txn"));
    create_topic(&bootstrap, &topic, 1);
    let mut first = Sink::create_writer(
        &eos_sink(&bootstrap, &topic, &prefix),
        &common::sink_context(0),
    );
    first.write((0, 1, 1)).unwrap();
    let state = first
        .snapshot_state(1)
        .unwrap()
        .expect("the pending transaction");
    std::mem::forget(first);
    // Without the restored state in its context, a new writer aborts the open
    // transaction as lingering.
    let mut unaware = Sink::create_writer(
        &eos_sink(&bootstrap, &topic, &prefix),
        &common::sink_context(0),
    );
    let err = unaware.restore_state(&state).unwrap_err().to_string();
    assert!(err.contains("cannot be committed"), "{err}");
    assert!(err.contains(&format!("{prefix}-0-0-0")), "{err}");
    // Aborted, or (once the new writer's first producer took the id over) Empty.
    assert!(
        ["CompleteAbort", "PrepareAbort", "Empty"]
            .iter()
            .any(|s| err.contains(s)),
        "{err}"
    );
    assert_eq!(read_committed(&bootstrap, &topic), vec![]);
}

/// A checkpoint of the pool-based sink of earlier versions (ids
/// `<prefix>-<subtask>-<k>`, the same stored shape) restores: its pre-committed
/// transaction is committed through the coordinator, and another open one on a
/// pool id of the same subtask is aborted as lingering.
#[test]
fn a_checkpoint_of_the_pool_based_sink_restores() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let bootstrap = require_service!(KAFKA);
    let (topic, prefix) = (unique("eos-pool"), unique("eos-pool-txn"));
    create_topic(&bootstrap, &topic, 1);
    // What the old writer 0 left: pool id 1 pre-committed for checkpoint 1 (its
    // records flushed), pool id 2 open with a record written after the barrier.
    let open_transaction = |id: &str, record: (u64, u64, u64)| {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("transactional.id", id)
            .create()
            .unwrap();
        producer.init_transactions(Duration::from_secs(30)).unwrap();
        producer.begin_transaction().unwrap();
        let value = serde_json::to_vec(&record).unwrap();
        producer
            .send(BaseRecord::<(), _>::to(&topic).payload(&value))
            .unwrap();
        producer.flush(Duration::from_secs(30)).unwrap();
        producer
    };
    let precommitted = format!("{prefix}-0-1");
    // The open one first: until it is aborted it holds a `read_committed` reader
    // back before the committed record.
    let old = [
        open_transaction(&format!("{prefix}-0-2"), (0, 2, 3)),
        open_transaction(&precommitted, (0, 1, 1)),
    ];
    // The old writer's state: [(checkpoint, {transactional_id, checkpoint_id})].
    let state =
        flink_core::checkpoint::encode_state(&vec![(1u64, (precommitted, Some(1u64)))]).unwrap();
    std::mem::forget(old); // the old process died
    let ctx = restored_context(&state);
    let mut restored = Sink::create_writer(&eos_sink(&bootstrap, &topic, &prefix), &ctx);
    restored.restore_state(&state).unwrap();
    restored.finish().unwrap();
    restored.notify_checkpoint_complete(u64::MAX).unwrap();
    drop(restored);
    assert_eq!(read_committed(&bootstrap, &topic), vec![(0, 1, 1)]);
}
