//! Jobs whose queues fill up under back pressure while checkpoints run on the
//! manual clock: the setup the unaligned-checkpoint tests share.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flink_core::checkpoint::CheckpointSettings;
use flink_core::clock::ManualClock;
use flink_runtime::prelude::*;

/// Small buffers, many of them: thousands of records in flight, a few hundred per
/// buffer batch. No buffer debloating: full queues are the point, and debloating
/// (which starts small) would shrink them.
pub fn small_buffers(env: &StreamExecutionEnvironment) {
    env.configure(|c| {
        c.buffer_size = 1024;
        c.exclusive_buffers_per_channel = 16;
        c.floating_buffers_per_gate = 16;
        c.max_buffers_per_channel = 32;
        c.buffer_debloat = flink_core::buffer_debloat::BufferDebloatConfig::disabled();
    });
}

/// Runs `env`'s job on a manual clock with a checkpoint every second of it, stored
/// in `dir`; returns the clock and the settings, to be adjusted further.
pub fn checkpoints_on_manual_clock(
    env: &StreamExecutionEnvironment,
    dir: &Path,
) -> (ManualClock, CheckpointSettings) {
    let clock = ManualClock::new();
    env.set_clock(Arc::new(clock.clone()));
    let settings = env
        .enable_checkpointing(Duration::from_secs(1))
        .set_storage_dir(dir);
    (clock, settings)
}

/// Waits for the end of `client`'s job, advancing `clock` a second at a time (its
/// checkpoints, the final one too, need triggers); fails the test with `what` if
/// the job has not ended within `guard` (against a hang, not a timing assertion).
pub fn run_on_clock(
    client: JobClient,
    clock: &ManualClock,
    guard: Duration,
    what: &str,
) -> Result<JobExecutionResult, JobError> {
    let waiter = std::thread::spawn(move || client.wait());
    let started = Instant::now();
    while !waiter.is_finished() {
        assert!(started.elapsed() < guard, "{what}");
        clock.advance(Duration::from_secs(1));
        std::thread::sleep(Duration::from_millis(5));
    }
    waiter.join().unwrap()
}
