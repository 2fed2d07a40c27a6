//! How the coordinator paces checkpoints on the manual clock: the minimum pause
//! after a completion and at most one checkpoint in progress. What is asserted is
//! what a source sees: the barriers the coordinator triggers, read through a
//! task's [`TaskCheckpointing`] as a source task reads them.

use std::sync::Arc;
use std::time::Duration;

use flink_core::checkpoint::{
    ChainSnapshot, CheckpointConfig, CheckpointStorage, CheckpointingMode,
};
use flink_core::clock::{Clock, ManualClock};

use super::CheckpointCoordinator;
use crate::checkpoint::channel_state::OutputChannelState;
use crate::checkpoint::stats::BarrierArrival;
use crate::checkpoint::storage::CheckpointStore;
use crate::checkpoint::task_side::TaskCheckpointing;

const SECOND: Duration = Duration::from_secs(1);
const STEP: Duration = Duration::from_millis(100);

/// A coordinator of a job with two tasks, (0, 0) and (1, 0), checkpointing every
/// second with `min_pause`, timing out after `timeout`, tolerating `tolerable`
/// failures; the source task's view of its triggers; the clock.
struct Paced {
    _dir: tempfile::TempDir,
    coordinator: CheckpointCoordinator,
    source: TaskCheckpointing,
    clock: Arc<ManualClock>,
}

fn paced(min_pause: Duration, timeout: Duration, tolerable: usize) -> Paced {
    let dir = tempfile::tempdir().unwrap();
    let mut config = CheckpointConfig::new(SECOND);
    config.min_pause_between_checkpoints = min_pause;
    config.timeout = timeout;
    config.tolerable_failed_checkpoints = tolerable;
    let store =
        CheckpointStore::open(&CheckpointStorage::Directory(dir.path().into()), "job").unwrap();
    let clock = Arc::new(ManualClock::new());
    let mut coordinator = CheckpointCoordinator::new(config.clone(), store, clock.clone()).unwrap();
    let signals = coordinator.start_attempt(vec![(0, 0), (1, 0)]);
    let config = Arc::new(config);
    let (messages, _) = std::sync::mpsc::sync_channel(1);
    let source = TaskCheckpointing {
        mode: CheckpointingMode::ExactlyOnce,
        signals,
        messages,
        vertex: 0,
        subtask: 0,
        seen_trigger: 0,
        notified: 0,
        config: config.clone(),
        clock: clock.clone(),
        output_state: Arc::new(OutputChannelState::new(config, clock.clone())),
        restored_channels: None,
    };
    Paced {
        _dir: dir,
        coordinator,
        source,
        clock,
    }
}

impl Paced {
    /// Ticks the coordinator; the id of the barrier that tick triggered, if any.
    fn tick(&mut self) -> Option<u64> {
        self.coordinator.tick().unwrap();
        self.source.new_trigger().map(|b| b.id)
    }

    /// Advances the clock by `by` and ticks.
    fn advance_and_tick(&mut self, by: Duration) -> Option<u64> {
        self.clock.advance(by);
        self.tick()
    }

    /// Task `vertex` acknowledges checkpoint `id`.
    fn ack(&mut self, id: u64, vertex: usize) {
        let snapshot = ChainSnapshot {
            states: vec![(0, b"s".to_vec())],
            ..ChainSnapshot::default()
        };
        self.coordinator
            .on_ack(id, vertex, 0, snapshot, BarrierArrival::default())
            .unwrap();
    }

    /// Both tasks acknowledge checkpoint `id`, which completes.
    fn complete(&mut self, id: u64) {
        self.ack(id, 0);
        self.ack(id, 1);
        assert_eq!(self.coordinator.counts().last_completed, Some(id));
    }
}

#[test]
fn after_a_completion_no_checkpoint_starts_before_the_minimum_pause_and_one_starts_at_it() {
    let mut p = paced(5 * SECOND, 60 * SECOND, 0);
    assert_eq!(
        p.advance_and_tick(SECOND),
        Some(1),
        "due after the interval"
    );
    p.clock.advance(SECOND / 2);
    p.complete(1);
    let completed_at = p.clock.now();
    assert_eq!(
        p.coordinator.next_wakeup(),
        5 * SECOND,
        "the pause, not the interval, says when to look again"
    );
    // 49 steps of 100 ms: 4.9 s after the completion, the interval passed 4 times.
    let mut triggered = Vec::new();
    for _ in 0..49 {
        triggered.extend(p.advance_and_tick(STEP));
    }
    assert_eq!(triggered, Vec::<u64>::new(), "nothing within the pause");
    assert_eq!(p.clock.now() - completed_at, 5 * SECOND - STEP);
    assert_eq!(p.coordinator.next_wakeup(), STEP);
    assert_eq!(p.advance_and_tick(STEP), Some(2), "at the pause's end");
    assert_eq!(p.clock.now() - completed_at, 5 * SECOND);
    assert_eq!(p.tick(), None, "one at a time");
    assert_eq!(p.coordinator.counts().completed, 1);
}

#[test]
fn without_a_pause_the_next_checkpoint_follows_the_interval() {
    let mut p = paced(Duration::ZERO, 60 * SECOND, 0);
    assert_eq!(p.advance_and_tick(SECOND), Some(1));
    p.clock.advance(SECOND / 2);
    p.complete(1);
    // Triggered at 1 s: the next is due at 2 s, half a second from now.
    assert_eq!(p.coordinator.next_wakeup(), SECOND / 2);
    let mut triggered = Vec::new();
    for _ in 0..4 {
        triggered.extend(p.advance_and_tick(STEP));
    }
    assert_eq!(triggered, Vec::<u64>::new());
    assert_eq!(p.advance_and_tick(STEP), Some(2));
}

#[test]
fn while_a_checkpoint_is_pending_no_other_starts_until_it_completes() {
    let mut p = paced(Duration::ZERO, 60 * SECOND, 0);
    assert_eq!(p.advance_and_tick(SECOND), Some(1));
    p.ack(1, 0); // task (1, 0) has not acknowledged
    let mut triggered = Vec::new();
    for _ in 0..20 {
        triggered.extend(p.advance_and_tick(SECOND));
    }
    assert_eq!(
        triggered,
        Vec::<u64>::new(),
        "20 intervals passed, one pending"
    );
    assert_eq!(
        p.coordinator.next_wakeup(),
        60 * SECOND - 20 * SECOND,
        "the pending checkpoint's timeout is the next thing to look at"
    );
    p.ack(1, 1);
    assert_eq!(p.coordinator.counts().last_completed, Some(1));
    assert_eq!(p.tick(), Some(2), "the interval passed long ago");
    assert_eq!(p.tick(), None);
    assert_eq!(p.coordinator.counts().completed, 1);
}

#[test]
fn while_a_checkpoint_is_pending_no_other_starts_until_it_times_out() {
    let mut p = paced(Duration::ZERO, 5 * SECOND, 1);
    assert_eq!(p.advance_and_tick(SECOND), Some(1));
    p.ack(1, 0);
    let mut triggered = Vec::new();
    // 49 steps of 100 ms: 4.9 s, the interval passed 4 times.
    for _ in 0..49 {
        triggered.extend(p.advance_and_tick(STEP));
    }
    assert_eq!(triggered, Vec::<u64>::new(), "one pending, not timed out");
    assert_eq!(p.coordinator.counts().failed, 0);
    // At 5 s it times out; the next tick starts the next one.
    assert_eq!(p.advance_and_tick(STEP), None);
    assert_eq!(p.coordinator.counts().failed, 1);
    assert_eq!(p.tick(), Some(2));
    // A late acknowledgement of the failed one changes nothing.
    p.ack(1, 1);
    assert_eq!(p.coordinator.counts().completed, 0);
    p.complete(2);
    assert_eq!(p.coordinator.counts().completed, 1);
}
