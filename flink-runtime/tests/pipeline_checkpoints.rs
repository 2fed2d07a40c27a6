//! The five-stage pipeline's queues in checkpoints: the gateway's waiting records and
//! the egress and final sink's calls in flight are stored with the checkpoint and
//! queued or issued again on restore, so a barrier does not wait for them, and
//! nothing is lost or repeated across failures. No timing assertions.

use std::collections::HashSet;
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use flink_core::async_io::AsyncFailure;
use flink_core::pipeline::FiveStagePipeline;
use flink_core::sources::{RateLimiterStrategy, SequenceSource};
use flink_runtime::prelude::*;
use futures::channel::oneshot;
use futures::future::BoxFuture;

/// A slow service: requests are answered ~1 ms after they were made, all that
/// arrived meanwhile at once.
fn slow_service() -> Sender<oneshot::Sender<()>> {
    let (requests, incoming) = channel::<oneshot::Sender<()>>();
    thread::spawn(move || {
        while let Ok(first) = incoming.recv() {
            let mut batch = vec![first];
            batch.extend(incoming.try_iter());
            thread::sleep(Duration::from_millis(1));
            for reply in batch {
                let _ = reply.send(()); // a cancelled attempt dropped its receiver
            }
        }
    });
    requests
}

/// A destination acknowledging each record through the slow service.
struct SlowAck(Mutex<Sender<oneshot::Sender<()>>>);

impl AckDestination<u64> for SlowAck {
    fn send(&self, _: u64) -> BoxFuture<'static, Result<(), DeliveryError>> {
        let (reply, answered) = oneshot::channel();
        let sent = self.0.lock().unwrap().send(reply).is_ok();
        Box::pin(async move {
            if sent && answered.await.is_ok() {
                Ok(())
            } else {
                Err(DeliveryError::Permanent("slow service gone".into()))
            }
        })
    }
}

const RECORDS: u64 = 4_000;

/// Where the test injects failures: 10 in the map before the pipeline, 10 in the
/// egress call, each once.
const MAP_FAILURES: [u64; 10] = [
    200, 550, 900, 1_300, 1_700, 2_100, 2_500, 2_900, 3_300, 3_700,
];
const CALL_FAILURES: [u64; 10] = [
    400, 750, 1_100, 1_500, 1_900, 2_300, 2_700, 3_100, 3_500, 3_900,
];

#[test]
fn queued_records_and_calls_in_flight_are_restored_across_failures() {
    for parallelism in [1, 2] {
        restored_across_failures(parallelism);
    }
}

fn restored_across_failures(parallelism: usize) {
    let dir = tempfile::tempdir().unwrap();
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(parallelism);
    env.enable_checkpointing(Duration::from_millis(5))
        .set_storage_dir(dir.path());
    env.set_restart_strategy(RestartStrategy::FixedDelay {
        attempts: 30,
        delay: Duration::ZERO,
    });
    let map_failures: HashSet<u64> = MAP_FAILURES.into();
    let call_failures: HashSet<u64> = CALL_FAILURES.into();
    let (map_fired, call_fired) = (
        Arc::new(Mutex::new(HashSet::new())),
        Arc::new(Mutex::new(HashSet::new())),
    );
    let (seen_map, seen_call) = (map_fired.clone(), call_fired.clone());
    let service = Mutex::new(slow_service());
    let pipeline = FiveStagePipeline::<u64, u64>::builder()
        .configure(|c| {
            // Admits half as fast as the source reads: records wait in the gateway.
            c.gateway.max_requests_per_second = 10_000.0;
            // The default limit of records inside (1,000): each attempt counts its
            // own, so what a failed attempt had inside never blocks the next.
            assert_eq!(c.gateway.max_concurrent, 1_000);
        })
        .key(|x| format!("k{}", x % 7))
        .call(move |x: u64| {
            if call_failures.contains(&x) && seen_call.lock().unwrap().insert(x) {
                panic!("injected failure in the call at {x}");
            }
            let (reply, answered) = oneshot::channel();
            let sent = service.lock().unwrap().send(reply);
            async move {
                sent.map_err(|_| AsyncFailure::Permanent("service gone".into()))?;
                answered
                    .await
                    .map_err(|_| AsyncFailure::Permanent("no answer".into()))?;
                Ok::<u64, AsyncFailure>(x)
            }
        })
        .destination(SlowAck(Mutex::new(slow_service())))
        .build()
        .unwrap();
    let source = SequenceSource::range(0, RECORDS - 1)
        .rate_limited(RateLimiterStrategy::per_second(20_000.0).unwrap());
    let out = TransactionalCollectingSink::new();
    let streams = env
        .from_source(source, "Sequence")
        .map(move |x: u64| {
            if map_failures.contains(&x) && seen_map.lock().unwrap().insert(x) {
                panic!("injected failure in map at {x}");
            }
            x
        })
        .apply_pipeline(&pipeline);
    streams.delivered.map(|e| e.payload).sink_to(out.clone());
    let state = streams.state.clone();
    // A guard that turns a stalled gateway into a failure, not a timing assertion.
    let client = env.execute_async("pipeline").unwrap();
    let (tx, rx) = channel();
    thread::spawn(move || {
        let _ = tx.send(client.wait());
    });
    let result = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the job stalled")
        .expect("the job recovers");
    let p = format!("parallelism {parallelism}");
    assert_eq!(map_fired.lock().unwrap().len(), MAP_FAILURES.len(), "{p}");
    assert_eq!(call_fired.lock().unwrap().len(), CALL_FAILURES.len(), "{p}");
    // Two injected failures may end one attempt together.
    let restarts = result.restarts.len();
    assert!((1..=20).contains(&restarts), "{p}: {restarts} restarts");
    let mut committed = out.committed();
    committed.sort_unstable();
    assert_eq!(committed, (0..RECORDS).collect::<Vec<_>>(), "{p}");
    // The last attempt's count: everything it admitted or re-issued ended, and
    // nothing of a failed attempt is counted in (or out).
    let (entered, ended) = state.balance();
    assert!(entered > 0, "{p}");
    assert_eq!(entered, ended, "{p}");
    assert_eq!(state.in_pipeline(), 0, "{p}");
}

#[test]
fn a_barrier_does_not_wait_for_gated_egress_calls() {
    let dir = tempfile::tempdir().unwrap();
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1);
    env.enable_checkpointing(Duration::from_millis(10))
        .set_storage_dir(dir.path());
    let (open, opened) = tokio::sync::watch::channel(false);
    let pipeline = FiveStagePipeline::<u64, u64>::builder()
        .configure(|c| {
            c.gateway.max_requests_per_second = 100_000.0;
            c.egress.operation_timeout = Duration::from_secs(60);
        })
        .key(|x| format!("k{}", x % 7))
        .call(move |x: u64| {
            // Five calls wait until the test opens the gate; the rest answer at once.
            let gated = x % 100 == 7 && x < 500;
            let mut opened = opened.clone();
            async move {
                if gated {
                    opened
                        .wait_for(|open| *open)
                        .await
                        .map_err(|_| AsyncFailure::Permanent("gate gone".into()))?;
                }
                Ok::<u64, AsyncFailure>(x)
            }
        })
        .destination(SlowAck(Mutex::new(slow_service())))
        .build()
        .unwrap();
    let records = 60_000u64;
    let source = SequenceSource::range(0, records - 1)
        .rate_limited(RateLimiterStrategy::per_second(20_000.0).unwrap());
    let out = TransactionalCollectingSink::new();
    let streams = env
        .from_source(source, "Sequence")
        .apply_pipeline(&pipeline);
    streams.delivered.map(|e| e.payload).sink_to(out.clone());
    let client = env.execute_async("gated pipeline").unwrap();
    let guard = Instant::now();
    while client.completed_checkpoints().len() < 3 {
        assert!(
            guard.elapsed() < Duration::from_secs(30),
            "no checkpoint completed while egress calls were gated: the barrier waited"
        );
        thread::sleep(Duration::from_millis(5));
    }
    open.send(true).unwrap();
    client.wait().expect("the job ends");
    let mut committed = out.committed();
    committed.sort_unstable();
    assert_eq!(committed, (0..records).collect::<Vec<_>>());
}

/// The pipeline of [`a_pipeline_stopped_without_drain_accounts_for_what_it_holds`]:
/// the gateway admits 2,500 records/s (half the first run's source rate), calls and acknowledgements
/// go through slow services; checkpoints only for savepoints. The receipts go to
/// `out`.
fn held_pipeline_job(
    dir: &std::path::Path,
    rate: f64,
    out: &TransactionalCollectingSink<u64>,
) -> StreamExecutionEnvironment {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1);
    env.enable_checkpointing(Duration::from_secs(60))
        .set_storage_dir(dir.join("checkpoints"));
    env.set_restart_strategy(RestartStrategy::None);
    let service = Mutex::new(slow_service());
    let pipeline = FiveStagePipeline::<u64, u64>::builder()
        .configure(|c| c.gateway.max_requests_per_second = 2_500.0)
        .key(|x| format!("k{}", x % 7))
        .call(move |x: u64| {
            let (reply, answered) = oneshot::channel();
            let sent = service.lock().unwrap().send(reply);
            async move {
                sent.map_err(|_| AsyncFailure::Permanent("service gone".into()))?;
                answered
                    .await
                    .map_err(|_| AsyncFailure::Permanent("no answer".into()))?;
                Ok::<u64, AsyncFailure>(x)
            }
        })
        .destination(SlowAck(Mutex::new(slow_service())))
        .build()
        .unwrap();
    let source = SequenceSource::range(0, RECORDS - 1)
        .rate_limited(RateLimiterStrategy::per_second(rate).unwrap());
    let streams = env
        .from_source(source, "Sequence")
        .uid("numbers")
        .apply_pipeline(&pipeline);
    streams
        .delivered
        .map(|e| e.payload)
        .uid("payloads")
        .sink_to(out.clone())
        .uid("sink");
    env
}

#[test]
fn a_pipeline_stopped_without_drain_accounts_for_what_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let out = TransactionalCollectingSink::new();
    // 4,000 records at 5,000/s: the stop falls mid-run.
    let env = held_pipeline_job(dir.path(), 5_000.0, &out);
    let client = env.execute_async("pipeline").unwrap();
    let guard = Instant::now();
    while !client
        .operator_metrics()
        .iter()
        .any(|o| o.name == "FinalSink" && o.records_out > 0)
    {
        assert!(
            guard.elapsed() < Duration::from_secs(60),
            "nothing delivered"
        );
        thread::sleep(Duration::from_millis(1));
    }
    let savepoint = client
        .stop_with_savepoint(dir.path().join("savepoints"))
        .unwrap();
    let result = client.wait().unwrap();
    let read = result.records_read_by_sources();
    assert!(read < RECORDS, "stopped mid-run: {read} read");
    // What the stages still held at the stop is in the savepoint and counted as
    // held: the accounting is exact.
    let report = PipelineReport::new(&result.operators);
    assert!(report.accounted(), "{report}");
    assert_eq!(
        (report.dead_lettered(), report.errors()),
        (0, 0),
        "{report}"
    );
    assert_eq!(report.received(), read, "{report}");
    assert_eq!(report.delivered() + report.held(), read, "{report}");
    assert_eq!(out.committed().len() as u64, report.delivered());
    // The restored job delivers the held records and the rest, each once (the
    // sink is shared, and commits of a transaction are idempotent).
    let env = held_pipeline_job(dir.path(), 1_000_000.0, &out);
    env.restore_from(&savepoint);
    env.execute("pipeline restored").unwrap();
    let mut committed = out.committed();
    committed.sort_unstable();
    assert_eq!(committed, (0..RECORDS).collect::<Vec<_>>());
}
