//! A rate-limited source emits at most its rate on the job's clock (a ManualClock
//! here), in bursts of at most a tenth of a second's worth, and loses nothing.

use std::sync::Arc;
use std::time::Duration;

use flink_core::clock::ManualClock;
use flink_core::sources::{GeneratorSource, RateLimiterStrategy};
use flink_runtime::prelude::*;

mod common;
use common::until;

#[test]
fn a_rate_limited_source_emits_its_rate_on_the_jobs_clock() {
    let clock = ManualClock::new();
    let env = StreamExecutionEnvironment::new();
    env.set_clock(Arc::new(clock.clone()));
    let limit = RateLimiterStrategy::per_second(100.0).unwrap();
    let out = env
        .from_source(
            GeneratorSource::bounded(0..100, |i| i).rate_limited(limit),
            "paced",
        )
        .collect_vec();
    let client = env.execute_async("paced").unwrap();
    let emitted = || client.operator_metrics()[0].records_out;
    let settle = || (0..2_000).for_each(|_| std::thread::yield_now());
    // A full bucket at the start: a tenth of a second's worth.
    until("the first burst", || emitted() == 10);
    settle();
    assert_eq!(
        emitted(),
        10,
        "emitted beyond the burst without time passing"
    );
    clock.advance(Duration::from_millis(50));
    until("5 more records after 50 ms", || emitted() == 15);
    settle();
    assert_eq!(emitted(), 15);
    // A long pause refills the bucket only up to the burst.
    clock.advance(Duration::from_secs(10));
    until("a full burst after a pause", || emitted() == 25);
    settle();
    assert_eq!(emitted(), 25);
    while emitted() < 100 {
        clock.advance(Duration::from_millis(100));
        settle();
    }
    client.wait().unwrap();
    assert_eq!(out.take_sorted(), (0..100).collect::<Vec<_>>());
}

#[test]
fn a_rate_that_cannot_be_a_limit_is_refused() {
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let err = RateLimiterStrategy::per_second(bad).unwrap_err();
        assert!(err.to_string().contains("positive, finite"), "{err}");
    }
}
