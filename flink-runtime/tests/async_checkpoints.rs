//! The async operator's queue in checkpoints (as Flink's `AsyncWaitOperator`): the
//! inputs of calls in flight at a barrier are stored with the checkpoint and issued
//! again on restore, so a barrier does not wait for slow calls, and nothing is lost
//! or repeated across failures. No timing assertions: timing only decides which
//! calls are in flight at each barrier.

use std::collections::HashSet;
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use flink_core::async_io::AsyncOptions;
use flink_core::sources::{RateLimiterStrategy, SequenceSource};
use flink_runtime::prelude::*;
use futures::channel::oneshot;

/// A slow service: each request is answered ~1 ms after it was made, by one thread,
/// in request order.
fn slow_service() -> Sender<oneshot::Sender<()>> {
    let (requests, incoming) = channel::<oneshot::Sender<()>>();
    thread::spawn(move || {
        while let Ok(reply) = incoming.recv() {
            thread::sleep(Duration::from_millis(1));
            let _ = reply.send(()); // a cancelled attempt dropped its receiver
        }
    });
    requests
}

/// `n` distinct positions below `below` from `seed` (xorshift64*).
fn points(seed: u64, n: usize, below: u64) -> HashSet<u64> {
    let mut state = seed;
    let mut out = HashSet::new();
    while out.len() < n {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.insert(state.wrapping_mul(0x2545_F491_4F6C_DD1D) % below);
    }
    out
}

/// sequence -> map (panics once at each of `map_failures`) -> async call to the slow
/// service (panics once at each of `call_failures`) -> transactional sink, p = 1,
/// checkpoints every 5 ms.
fn failing_job(
    records: u64,
    ordered: bool,
    map_failures: HashSet<u64>,
    call_failures: HashSet<u64>,
    dir: &std::path::Path,
) -> (StreamExecutionEnvironment, TransactionalCollectingSink<u64>) {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1);
    env.enable_checkpointing(Duration::from_millis(5))
        .set_storage_dir(dir);
    env.set_restart_strategy(RestartStrategy::FixedDelay {
        attempts: 30,
        delay: Duration::ZERO,
    });
    let source = SequenceSource::range(0, records - 1)
        .rate_limited(RateLimiterStrategy::per_second(20_000.0).unwrap());
    let map_fired = Arc::new(Mutex::new(HashSet::new()));
    let call_fired = Arc::new(Mutex::new(HashSet::new()));
    let service = Mutex::new(slow_service());
    let out = TransactionalCollectingSink::new();
    env.from_source(source, "Sequence")
        .map(move |x: u64| {
            if map_failures.contains(&x) && map_fired.lock().unwrap().insert(x) {
                panic!("injected failure in map at {x}");
            }
            x
        })
        .async_function(
            move |x: u64| {
                if call_failures.contains(&x) && call_fired.lock().unwrap().insert(x) {
                    panic!("injected failure in the async call at {x}");
                }
                let (reply, answered) = oneshot::channel();
                let sent = service.lock().unwrap().send(reply);
                async move {
                    sent.map_err(|_| "service gone")?;
                    answered.await.map_err(|_| "no answer")?;
                    Ok::<_, &'static str>(x)
                }
            },
            AsyncOptions::new()
                .ordered(ordered)
                .capacity(32)
                .timeout(Duration::from_secs(60)),
        )
        .sink_to(out.clone());
    (env, out)
}

#[test]
fn ordered_calls_in_flight_are_restored_in_order_across_failures() {
    let records = 6_000;
    let dir = tempfile::tempdir().unwrap();
    let (env, out) = failing_job(
        records,
        true,
        points(3, 4, records),
        points(5, 4, records),
        dir.path(),
    );
    let result = env.execute("ordered async").expect("the job recovers");
    assert!(!result.restarts.is_empty(), "failures were injected");
    // One subtask, results in input order: the committed output is exactly the input,
    // in order, whatever was in flight at each restored checkpoint.
    assert_eq!(out.committed(), (0..records).collect::<Vec<_>>());
}

#[test]
fn unordered_calls_in_flight_are_restored_across_failures() {
    let records = 6_000;
    let dir = tempfile::tempdir().unwrap();
    let (env, out) = failing_job(
        records,
        false,
        points(7, 4, records),
        points(11, 4, records),
        dir.path(),
    );
    let result = env.execute("unordered async").expect("the job recovers");
    assert!(!result.restarts.is_empty(), "failures were injected");
    let mut committed = out.committed();
    committed.sort_unstable();
    assert_eq!(committed, (0..records).collect::<Vec<_>>());
}

#[test]
fn a_barrier_does_not_wait_for_gated_calls() {
    let records = 60_000u64;
    let dir = tempfile::tempdir().unwrap();
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1);
    env.enable_checkpointing(Duration::from_millis(10))
        .set_storage_dir(dir.path());
    let (open, opened) = tokio::sync::watch::channel(false);
    let source = SequenceSource::range(0, records - 1)
        .rate_limited(RateLimiterStrategy::per_second(20_000.0).unwrap());
    let out = TransactionalCollectingSink::new();
    env.from_source(source, "Sequence")
        .async_function(
            move |x: u64| {
                // Ten calls wait until the test opens the gate; the rest answer at once.
                let gated = x % 100 == 7 && x < 1_000;
                let mut opened = opened.clone();
                async move {
                    if gated {
                        opened
                            .wait_for(|open| *open)
                            .await
                            .map_err(|_| "gate gone")?;
                    }
                    Ok::<_, &'static str>(x)
                }
            },
            AsyncOptions::new()
                .capacity(64)
                .timeout(Duration::from_secs(60)),
        )
        .sink_to(out.clone());
    let client = env.execute_async("gated async").unwrap();
    // Checkpoints complete while the gated calls are in flight: their inputs go into
    // the snapshot instead of the barrier waiting for them.
    let guard = Instant::now();
    while client.completed_checkpoints().len() < 3 {
        assert!(
            guard.elapsed() < Duration::from_secs(30),
            "no checkpoint completed while calls were gated: the barrier waited for them"
        );
        thread::sleep(Duration::from_millis(5));
    }
    let gated_at_checkpoint = out
        .committed()
        .iter()
        .filter(|&&x| x % 100 == 7 && x < 1_000)
        .count();
    assert_eq!(gated_at_checkpoint, 0, "no gated call answered yet");
    open.send(true).unwrap();
    client.wait().expect("the job ends");
    let mut committed = out.committed();
    committed.sort_unstable();
    assert_eq!(committed, (0..records).collect::<Vec<_>>());
}
