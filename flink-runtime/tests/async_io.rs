//! The async I/O operator: order, completeness, capacity, retries, timeouts, dead
//! letters. Time is a ManualClock where delays matter; nothing asserts wall time.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flink_core::async_io::{AsyncFailure, AsyncOptions, RetryStrategy};
use flink_core::clock::{Clock, ManualClock};
use flink_runtime::precise_timer::precise_sleep;
use flink_runtime::prelude::*;

mod common;
use common::until;

/// A fake service that counts concurrent calls and answers after a delay that varies
/// by input, so completions come back out of order.
#[derive(Clone, Default)]
struct FakeService {
    current: Arc<AtomicUsize>,
    max_seen: Arc<AtomicUsize>,
}

impl FakeService {
    async fn call(&self, x: u64) -> Result<u64, AsyncFailure> {
        let now = self.current.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_seen.fetch_max(now, Ordering::SeqCst);
        precise_sleep(Duration::from_micros(50 + (x * 37 % 11) * 40)).await;
        self.current.fetch_sub(1, Ordering::SeqCst);
        Ok(x * 3)
    }
}

fn run(ordered: bool, capacity: usize, parallelism: usize) -> (Vec<u64>, usize) {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(parallelism);
    let service = FakeService::default();
    let s = service.clone();
    let out = env
        .from_sequence(1, 3_000)
        .async_function(
            move |x: u64| {
                let s = s.clone();
                async move { s.call(x).await }
            },
            AsyncOptions::new().ordered(ordered).capacity(capacity),
        )
        .collect_vec();
    env.execute("async").unwrap();
    (out.take(), service.max_seen.load(Ordering::SeqCst))
}

#[test]
fn ordered_mode_keeps_input_order() {
    let (out, _) = run(true, 16, 1);
    assert_eq!(out, (1..=3_000).map(|x| x * 3).collect::<Vec<_>>());
}

#[test]
fn unordered_mode_loses_nothing_and_never_exceeds_capacity() {
    for (capacity, p) in [(1, 1), (7, 1), (32, 2)] {
        let (mut out, max_seen) = run(false, capacity, p);
        out.sort();
        assert_eq!(out, (1..=3_000).map(|x| x * 3).collect::<Vec<_>>());
        assert!(
            max_seen <= capacity * p,
            "{max_seen} concurrent calls > capacity {capacity} x {p}"
        );
        assert!(max_seen >= 1);
    }
}

#[test]
fn retry_delays_follow_the_schedule_on_a_manual_clock() {
    let clock = ManualClock::new();
    let env = StreamExecutionEnvironment::new();
    env.set_clock(Arc::new(clock.clone()));
    let attempts = Arc::new(AtomicUsize::new(0));
    let a = attempts.clone();
    let out = env
        .from_collection(vec![1u64])
        .async_function(
            move |x: u64| {
                let n = a.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    if n < 4 {
                        Err(format!("try {n} failed"))
                    } else {
                        Ok(x)
                    }
                }
            },
            AsyncOptions::new()
                .timeout(Duration::from_secs(3600))
                .retry(RetryStrategy::ExponentialBackoff {
                    initial: Duration::from_millis(100),
                    multiplier: 2.0,
                    max_delay: Duration::from_millis(300),
                    max_attempts: 5,
                    jitter: 0.0,
                }),
        )
        .collect_vec();
    let client = env.execute_async("retries").unwrap();
    // Attempt 1 fails at t=0; retries wait 100, 200, then 300 ms (capped). Once an
    // attempt has failed, the only live sleep is the retry delay (the attempt's
    // timeout was dropped with it).
    for (attempt, expected_wait) in [(1, 100), (2, 200), (3, 300)] {
        let expected = Duration::from_millis(expected_wait);
        until("the retry delay", || {
            attempts.load(Ordering::SeqCst) == attempt
                && clock.pending_sleeps() == 1
                && clock.next_deadline().is_some_and(|d| {
                    d > clock.now() + Duration::from_millis(1)
                        && d < clock.now() + Duration::from_secs(60)
                })
        });
        assert_eq!(
            clock.next_deadline().unwrap() - clock.now(),
            expected,
            "wait after attempt {attempt}"
        );
        clock.advance(expected);
    }
    until("the fourth attempt", || {
        attempts.load(Ordering::SeqCst) == 4
    });
    clock.advance(Duration::from_secs(1));
    let result = client.wait().unwrap();
    assert_eq!(out.take(), vec![1]);
    let op = result.operator("Async Function").unwrap();
    assert_eq!(op.custom("retries"), Some(3));
    assert_eq!(op.custom("timeouts"), Some(0));
}

#[test]
fn timeouts_retry_then_dead_letter_with_the_attempt_count() {
    let clock = ManualClock::new();
    let env = StreamExecutionEnvironment::new();
    env.set_clock(Arc::new(clock.clone()));
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let never = clock.clone();
    let results = env.from_collection(vec![7u64]).async_function(
        move |x: u64| {
            c.fetch_add(1, Ordering::SeqCst);
            // A call that never answers on its own.
            let hang = never.sleep(Duration::from_secs(1_000_000));
            async move {
                hang.await;
                Ok::<u64, String>(x)
            }
        },
        AsyncOptions::new()
            .timeout(Duration::from_millis(50))
            .retry(RetryStrategy::FixedDelay {
                delay: Duration::from_millis(10),
                max_attempts: 3,
            })
            .dead_letters(),
    );
    let letters = results.dead_letters::<u64>().collect_vec();
    let ok = results.collect_vec();
    let client = env.execute_async("timeouts").unwrap();
    for attempt in 1..=3 {
        // The call's own (endless) sleep and its timeout are both registered.
        until("an attempt and its timeout", || {
            calls.load(Ordering::SeqCst) == attempt && clock.pending_sleeps() == 2
        });
        clock.advance(Duration::from_millis(50)); // the attempt times out
        if attempt < 3 {
            until("the retry delay", || {
                clock.next_deadline() == Some(clock.now() + Duration::from_millis(10))
            });
            clock.advance(Duration::from_millis(10)); // the retry delay
        }
    }
    let result = client.wait().unwrap();
    assert!(ok.is_empty());
    let letters = letters.take();
    assert_eq!(letters.len(), 1);
    let l = &letters[0];
    assert_eq!(
        (l.record, l.attempts, l.operator.as_str()),
        (7, 3, "Async Function")
    );
    assert_eq!(l.last_error.as_deref(), Some("timed out after 50ms"));
    let op = result.operator("Async Function").unwrap();
    assert_eq!(
        (
            op.custom("timeouts"),
            op.custom("retries"),
            op.custom("dead_letters")
        ),
        (Some(3), Some(2), Some(1))
    );
}

#[test]
fn a_final_failure_fails_the_job_by_default_and_permanent_errors_are_not_retried() {
    let env = StreamExecutionEnvironment::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    env.from_sequence(1, 10)
        .async_function(
            move |x: u64| {
                c.fetch_add(1, Ordering::SeqCst);
                async move {
                    if x == 5 {
                        Err(AsyncFailure::Permanent("no such customer".into()))
                    } else {
                        Ok(x)
                    }
                }
            },
            AsyncOptions::new().retry(RetryStrategy::FixedDelay {
                delay: Duration::from_millis(1),
                max_attempts: 5,
            }),
        )
        .name("Lookup")
        .collect_vec();
    let err = env.execute("permanent").unwrap_err();
    assert_eq!(
        err.to_string(),
        "operator 'Lookup' (1/1) failed: async call failed after 1 attempt(s): permanent: no such customer"
    );
    assert!(calls.load(Ordering::SeqCst) <= 10);
}

#[test]
fn bad_async_options_are_typed_errors() {
    let env = StreamExecutionEnvironment::new();
    env.from_sequence(1, 3)
        .async_function(
            |x: u64| async move { Ok::<u64, String>(x) },
            AsyncOptions::new().capacity(0),
        )
        .collect_vec();
    assert!(matches!(
        env.execute("bad").unwrap_err(),
        JobError::Graph(GraphError::InvalidAsyncOptions { .. })
    ));
}
