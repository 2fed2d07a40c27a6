//! Unaligned checkpoints under back pressure, driven by counts and the manual
//! clock, never by timing: a sink that writes one record per permit the test
//! grants keeps the queues between a source and it full; the checkpoint is
//! triggered on the manual clock behind thousands of records in flight. Aligned,
//! its barrier cannot reach the sink before those records are written; unaligned,
//! it overtakes them and the checkpoint completes after a few hundred permits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flink_core::checkpoint::CheckpointSettings;
use flink_core::clock::ManualClock;
use flink_core::operator::RuntimeContext;
use flink_core::sink::{Sink, SinkError, SinkWriter};
use flink_runtime::prelude::*;

mod common;

use common::full_queues;
use common::permits::Permits;

/// Records of the job: far more than the queues hold.
const RECORDS: u64 = 200_000;
/// Records in flight before the checkpoint is triggered: the aligned barrier is
/// behind at least this many.
const IN_FLIGHT: u64 = 5_000;
/// Permits granted at a time until the source sent the barrier.
const STEP: u64 = 25;
/// Permits granted after the source sent the barrier: more than the records of one
/// buffer (the sink finishes the buffer it is writing before it sees a priority
/// barrier), far fewer than the records ahead of an aligned barrier.
const PERMITS: u64 = 300;
/// Guard against a hang (not a timing assertion).
const GUARD: Duration = Duration::from_secs(60);

/// Writes one record per permit; counts and sums what it wrote.
#[derive(Clone)]
struct GatedSink {
    permits: Arc<Permits>,
    written: Arc<(AtomicU64, AtomicU64)>,
}

impl Sink<u64> for GatedSink {
    fn create_writer(&self, _ctx: &RuntimeContext) -> Box<dyn SinkWriter<u64>> {
        Box::new(self.clone())
    }
}

impl SinkWriter<u64> for GatedSink {
    fn write(&mut self, record: u64) -> Result<(), SinkError> {
        self.permits.acquire();
        self.written.0.fetch_add(1, Ordering::SeqCst);
        self.written.1.fetch_add(record, Ordering::SeqCst);
        Ok(())
    }
}

/// A running job with its controls.
struct Stuck {
    client: JobClient,
    clock: ManualClock,
    permits: Arc<Permits>,
    written: Arc<(AtomicU64, AtomicU64)>,
    _dir: tempfile::TempDir,
}

/// sequence -> map (counts) -> [network] -> gated sink, p=1, checkpoints every
/// second on the manual clock, with at least [`IN_FLIGHT`] records in flight when
/// it returns and no checkpoint triggered yet.
fn stuck_job(configure: impl FnOnce(CheckpointSettings)) -> Stuck {
    let dir = tempfile::tempdir().unwrap();
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1);
    full_queues::small_buffers(&env);
    let (clock, settings) = full_queues::checkpoints_on_manual_clock(&env, dir.path());
    configure(settings);
    let permits = Arc::new(Permits::default());
    let written = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    let emitted = Arc::new(AtomicU64::new(0));
    let counter = emitted.clone();
    env.from_sequence(0, RECORDS - 1)
        .map(move |x: u64| {
            counter.fetch_add(1, Ordering::SeqCst);
            x
        })
        .sink_to(GatedSink {
            permits: permits.clone(),
            written: written.clone(),
        })
        .disable_chaining();
    let client = env.execute_async("stuck").unwrap();
    let deadline = Instant::now() + GUARD;
    while emitted.load(Ordering::SeqCst) < IN_FLIGHT {
        assert!(Instant::now() < deadline, "the queues hold < {IN_FLIGHT}");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(client.pending_checkpoint(), None);
    Stuck {
        client,
        clock,
        permits,
        written,
        _dir: dir,
    }
}

impl Stuck {
    /// Advances the clock to the next checkpoint, waits until it is triggered,
    /// then lets the sink write records until the source (blocked by back
    /// pressure) got to send the barrier; then [`PERMITS`] more. Returns the
    /// checkpoint and the permits used.
    fn trigger(&self) -> (u64, u64) {
        self.clock.advance(Duration::from_secs(1));
        let deadline = Instant::now() + GUARD;
        let mut used = 0;
        loop {
            match self.client.pending_checkpoint() {
                Some(p) if p.acknowledged >= 1 => {
                    self.permits.grant(PERMITS);
                    self.permits.wait_used(used + PERMITS);
                    return (p.id, used + PERMITS);
                }
                Some(_) => {
                    self.permits.grant(STEP);
                    used += STEP;
                    self.permits.wait_used(used);
                }
                // An unaligned checkpoint may complete before this loop sees the
                // source's acknowledgement.
                None if !self.client.completed_checkpoints().is_empty() => {
                    let id = self.client.completed_checkpoints()[0].id;
                    self.permits.grant(PERMITS);
                    self.permits.wait_used(used + PERMITS);
                    return (id, used + PERMITS);
                }
                None => {}
            }
            assert!(
                Instant::now() < deadline,
                "the source sent no barrier: {:?} {:?} {:?} used {used}",
                self.client.pending_checkpoint(),
                self.client.completed_checkpoints(),
                self.client.state()
            );
            // Pacing only: gives the source a moment to use the room made.
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Lets the sink write everything, drives the clock until the job finished
    /// (its final checkpoint needs triggers), and checks that every record was
    /// written exactly once.
    fn finish(self) {
        self.permits.open();
        full_queues::run_on_clock(self.client, &self.clock, GUARD, "the job did not finish")
            .expect("the job finishes");
        assert_eq!(self.written.0.load(Ordering::SeqCst), RECORDS);
        assert_eq!(
            self.written.1.load(Ordering::SeqCst),
            RECORDS * (RECORDS - 1) / 2
        );
    }
}

/// Waits until checkpoint `id` completed; returns its persisted in-flight bytes.
fn wait_completed(client: &JobClient, id: u64) -> u64 {
    let deadline = Instant::now() + GUARD;
    loop {
        if let Some(c) = client.completed_checkpoints().iter().find(|c| c.id == id) {
            return c.persisted_data;
        }
        assert!(
            Instant::now() < deadline,
            "checkpoint {id} did not complete"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn an_unaligned_checkpoint_overtakes_full_queues_that_hold_an_aligned_one_back() {
    // Aligned: the barrier is queued behind >= IN_FLIGHT records; after PERMITS of
    // them were written it cannot have reached the sink.
    let aligned = stuck_job(|_| {});
    let (id, used) = aligned.trigger();
    // The barrier follows every record emitted before it: at least IN_FLIGHT.
    assert!(used < IN_FLIGHT, "{used} permits: the test cannot tell");
    assert!(aligned.client.completed_checkpoints().is_empty());
    assert_eq!(aligned.client.pending_checkpoint().map(|p| p.id), Some(id));
    aligned.finish();

    // Unaligned: the same queues; the barrier overtakes the records, which are
    // stored with the checkpoint.
    let unaligned = stuck_job(|c| {
        c.enable_unaligned_checkpoints(true);
    });
    let (id, _) = unaligned.trigger();
    let persisted = wait_completed(&unaligned.client, id);
    assert!(
        persisted > 1024,
        "the records in flight are stored: {persisted} bytes"
    );
    unaligned.finish();
}

/// The gates of [`two_channel_job`].
struct Held {
    /// Holds source subtask 0 at its 5,000th number until the checkpoint is
    /// triggered (so it cannot finish before).
    start: Arc<Permits>,
    /// Holds source subtask 1 at its first number.
    second: Arc<Permits>,
}

/// sequence (p=2) -> map, which holds both halves of the numbers as [`Held`]
/// says -> [rebalance] -> sink (p=1, never gated): the sink aligns two channels,
/// one of which sends no barrier while held.
fn two_channel_job(configure: impl FnOnce(CheckpointSettings)) -> (Stuck, Held) {
    let dir = tempfile::tempdir().unwrap();
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.configure(|c| c.buffer_size = 1024);
    let (clock, settings) = full_queues::checkpoints_on_manual_clock(&env, dir.path());
    configure(settings);
    let permits = Arc::new(Permits::default());
    permits.open();
    let held = Held {
        start: Arc::new(Permits::default()),
        second: Arc::new(Permits::default()),
    };
    let (start, second) = (held.start.clone(), held.second.clone());
    // Set once source subtask 1 waits at its first number: from then on it cannot
    // take a barrier, so no checkpoint completes before the test lets it go.
    let second_waits = Arc::new(AtomicBool::new(false));
    let waits = second_waits.clone();
    let written = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    env.from_sequence(0, RECORDS - 1)
        .map(move |x: u64| {
            if x == 5_000 {
                start.acquire();
            }
            if x >= RECORDS / 2 {
                waits.store(true, Ordering::SeqCst);
                second.acquire();
            }
            x
        })
        .rebalance()
        .sink_to(GatedSink {
            permits: permits.clone(),
            written: written.clone(),
        })
        .set_parallelism(1);
    let client = env.execute_async("two channels").unwrap();
    // The tasks run (so the coordinator counts the interval from clock 0), and the
    // second source subtask is held before any checkpoint is triggered (else its
    // barrier could pass first and the first checkpoint complete at once).
    let deadline = Instant::now() + GUARD;
    while written.0.load(Ordering::SeqCst) == 0 || !second_waits.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "nothing written");
        std::thread::sleep(Duration::from_millis(1));
    }
    let stuck = Stuck {
        client,
        clock,
        permits,
        written,
        _dir: dir,
    };
    (stuck, held)
}

impl Stuck {
    /// Advances the clock to the next checkpoint, waits until it is triggered,
    /// lets the first source subtask go on and waits until it acknowledged.
    fn trigger_first_source(&self, held: &Held) -> u64 {
        self.clock.advance(Duration::from_secs(1));
        let deadline = Instant::now() + GUARD;
        loop {
            if let Some(p) = self.client.pending_checkpoint() {
                held.start.open();
                if p.acknowledged >= 1 {
                    return p.id;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{:?}",
                self.client.pending_checkpoint()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn written(&self) -> u64 {
        self.written.0.load(Ordering::SeqCst)
    }
}

#[test]
fn an_aligned_checkpoint_past_its_timeout_goes_unaligned_and_frees_its_blocked_channel() {
    // Aligned, no timeout: the sink blocks the channel that delivered the barrier
    // until the held one delivers its own; nothing in flight is stored.
    let (aligned, held) = two_channel_job(|_| {});
    let id = aligned.trigger_first_source(&held);
    held.second.open();
    assert_eq!(wait_completed(&aligned.client, id), 0);
    aligned.finish();

    // With a timeout of 100 ms on the job's clock: once the clock passed it, the
    // sink snapshots, lets the blocked channel flow (the sink writes far more than
    // could have been queued before that channel's barrier), records the held
    // channel until its barrier, and the checkpoint stores those records.
    let (timed, held) = two_channel_job(|c| {
        c.enable_unaligned_checkpoints(true)
            .aligned_checkpoint_timeout(Duration::from_millis(100));
    });
    let id = timed.trigger_first_source(&held);
    let before = timed.written();
    timed.clock.advance(Duration::from_secs(1));
    let deadline = Instant::now() + GUARD;
    while timed.written() < before + 20_000 {
        assert!(
            Instant::now() < deadline,
            "the blocked channel stays blocked at {} (from {before}, checkpoint {id}): {:?} {:?} {:#?}",
            timed.written(),
            timed.client.pending_checkpoint(),
            timed.client.completed_checkpoints(),
            timed.client.task_metrics()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(timed.client.pending_checkpoint().map(|p| p.id), Some(id));
    held.second.open();
    assert!(wait_completed(&timed.client, id) > 0);
    timed.finish();
}
