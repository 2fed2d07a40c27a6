//! Helpers shared by the integration tests.
// Each test file uses only some of them.
#![allow(dead_code)]

pub mod full_queues;
pub mod gated_job;
pub mod paced;
pub mod permits;
pub mod pipeline_job;
pub mod rescale;

use std::time::{Duration, Instant};

use flink_core::async_io::{AsyncFailure, AsyncOptions};
use flink_runtime::prelude::*;

/// Whether `cond` becomes true within a bounded number of checks (yielding between
/// them). Bounded by count, never by time, so a broken job fails a test rather than
/// hanging it, and nothing asserts how fast the machine is.
pub fn eventually(cond: impl Fn() -> bool) -> bool {
    (0..20_000_000u64).any(|_| {
        cond() || {
            std::thread::yield_now();
            false
        }
    })
}

/// Waits until `cond` holds; fails the test naming `what` if it never does.
pub fn until(what: &str, cond: impl Fn() -> bool) {
    assert!(eventually(cond), "gave up waiting for: {what}");
}

/// Guard of [`poll_until`] against a hang only; nothing asserts how fast a job is.
const GUARD: Duration = Duration::from_secs(30);

/// Waits until `cond` holds, sleeping briefly between checks (for waits while the job
/// needs the CPU, unlike [`until`]'s yielding spin); fails the test naming `what`
/// if it does not hold within a generous guard time.
pub fn poll_until(what: &str, cond: impl Fn() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(started.elapsed() < GUARD, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// 1..=1,000 through an async call rejecting every tenth record for good: 900
/// results and 100 dead letters (reasons `"{x} rejected"`).
pub fn reject_every_tenth(env: &StreamExecutionEnvironment) -> DataStream<u64> {
    env.from_sequence(1, 1_000).async_function(
        |x: u64| async move {
            if x.is_multiple_of(10) {
                Err(AsyncFailure::Permanent(format!("{x} rejected")))
            } else {
                Ok(x)
            }
        },
        AsyncOptions::new().dead_letters(),
    )
}

/// `n` distinct positions in `range` from `seed` (xorshift64*): where the
/// fault-injection tests panic.
pub fn failure_points(
    seed: u64,
    n: usize,
    range: std::ops::Range<u64>,
) -> std::collections::HashSet<u64> {
    let mut state = seed;
    let mut points = std::collections::HashSet::new();
    while points.len() < n {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        points.insert(
            range.start + state.wrapping_mul(0x2545_F491_4F6C_DD1D) % (range.end - range.start),
        );
    }
    points
}
