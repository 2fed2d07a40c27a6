//! A Nexmark source stopped with a savepoint at parallelism 2 and restored at 1, 3
//! and 4: the saved streams of offsets are dealt to the new readers, and the events
//! committed by both runs through an exactly-once sink are the benchmark's first
//! events exactly once.
//!
//! The first run is paced (`.rate_limited(..)`, 10,000 events per second: at least
//! two seconds per reader's share), so that the savepoint, taken after the first
//! commit, falls mid-run with both readers unfinished however loaded the machine;
//! the restored run is paced far faster. No timing assertions: timing only decides
//! where the savepoint falls.

// Only the rescale flow is used here, not the service macros.
#[allow(unused_macros)]
mod common;

use std::path::Path;

use common::rescale;
use flink_connectors::nexmark::{Event, EventGenerator, NexmarkConfig, NexmarkSource};
use flink_core::sources::RateLimiterStrategy;
use flink_runtime::prelude::*;

const EVENTS: u64 = 40_000;

/// Repeatable events: a fixed base time.
fn config() -> NexmarkConfig {
    NexmarkConfig {
        base_time: 1_700_000_000_000,
        ..NexmarkConfig::default()
    }
}

/// The first `EVENTS` events as their Debug strings, sorted.
fn every_event() -> Vec<String> {
    let mut all: Vec<String> = EventGenerator::new(config())
        .take(EVENTS as usize)
        .map(|e| format!("{e:?}"))
        .collect();
    all.sort_unstable();
    all
}

/// Nexmark at `rate` events per second (uid "nexmark") -> Debug string -> the
/// shared flow's map, never sleeping (uid "slow") -> transactional collecting sink
/// (uid "sink").
fn job(
    parallelism: usize,
    dir: &Path,
    out: &TransactionalCollectingSink<String>,
    rate: f64,
) -> StreamExecutionEnvironment {
    let env = rescale::environment(parallelism, dir);
    let source = NexmarkSource::new(config(), EVENTS)
        .rate_limited(RateLimiterStrategy::per_second(rate).unwrap());
    let events = env
        .from_source(source, "Nexmark")
        .uid("nexmark")
        .map(|e: Event| format!("{e:?}"));
    rescale::slowed_into(events, |_: &String| false, out);
    env
}

#[test]
fn a_nexmark_source_saved_at_two_restores_at_one_three_and_four() {
    for parallelism in [1, 3, 4] {
        let dir = tempfile::tempdir().unwrap();
        let out = TransactionalCollectingSink::new();
        let env = job(2, &dir.path().join("checkpoints"), &out, 10_000.0);
        let savepoint = rescale::savepoint_at_two(
            &env,
            "nexmark at 2",
            &dir.path().join("savepoints"),
            &out,
            EVENTS,
        );
        let before = out.committed().len() as u64;
        let env = job(
            parallelism,
            &dir.path().join("checkpoints"),
            &out,
            1_000_000.0,
        );
        env.restore_from(&savepoint);
        rescale::restored_run(
            &env,
            "nexmark restored",
            &out,
            before,
            &every_event(),
            &format!("parallelism {parallelism}"),
        );
    }
}
