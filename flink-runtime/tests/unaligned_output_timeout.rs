//! The aligned-checkpoint timeout in an output queue (issue 10), driven by counts
//! and the manual clock, never by timing: a sink that writes one record per permit
//! keeps the queue between a source and it full, so the source's aligned barrier
//! waits behind thousands of records in the source's output queue. Once the
//! job's clock passed the timeout, the source turns the queued barrier into an
//! unaligned one that overtakes those records (stored with the checkpoint as
//! channel state), and the checkpoint completes after far fewer permits than the
//! records ahead of the aligned barrier. A restore from it writes exactly the
//! records the sink had not written at its snapshot.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flink_core::checkpoint::StateError;
use flink_core::clock::ManualClock;
use flink_core::operator::RuntimeContext;
use flink_core::sink::{Sink, SinkError, SinkWriter};
use flink_core::source::{Boundedness, Source, SourceOutput, SourcePoll, SourceReader};
use flink_runtime::checkpoint::latest_checkpoint;
use flink_runtime::prelude::*;
use parking_lot::Mutex;

mod common;

use common::full_queues;
use common::permits::Permits;

const JOB: &str = "output-timeout";
/// Records of the job: far more than the queues hold.
const RECORDS: u64 = 50_000;
/// Records emitted before the checkpoint is triggered: the aligned barrier is
/// behind at least this many, none of which the sink wrote. More than the sink's
/// input channel holds (32 buffers of 1 KiB, about 2,050 of these records), so the
/// barrier waits in the source's output queue; fewer than both queues hold (about
/// 4,100), so the source gets there.
const IN_FLIGHT: u64 = 3_000;
/// Permits granted at a time while waiting for the checkpoint.
const STEP: u64 = 25;
/// Permits that make the sink return at least one buffer's credit (a buffer holds
/// about 64 records).
const UNBLOCK: u64 = 100;
/// Guard against a hang (not a timing assertion).
const GUARD: Duration = Duration::from_secs(60);

/// Emits `0..RECORDS` in small batches; its position is the next number. Tells
/// `snapshotted` the newest checkpoint it took.
#[derive(Clone)]
struct Numbers {
    emitted: Arc<AtomicU64>,
    snapshotted: Arc<AtomicU64>,
}

struct NumbersReader {
    numbers: Numbers,
    next: u64,
}

impl Source<u64> for Numbers {
    fn boundedness(&self) -> Boundedness {
        Boundedness::Bounded
    }

    fn create_reader(&self, _: &RuntimeContext) -> Box<dyn SourceReader<u64>> {
        Box::new(NumbersReader {
            numbers: self.clone(),
            next: 0,
        })
    }

    fn is_parallel(&self) -> bool {
        false
    }
}

impl SourceReader<u64> for NumbersReader {
    fn poll_next(&mut self, out: &mut SourceOutput<u64>) -> SourcePoll {
        let end = (self.next + 8).min(RECORDS);
        for x in self.next..end {
            out.collect(x);
        }
        self.numbers
            .emitted
            .fetch_add(end - self.next, Ordering::SeqCst);
        self.next = end;
        if end == RECORDS {
            SourcePoll::Finished
        } else {
            SourcePoll::MoreAvailable
        }
    }

    fn snapshot_position_for_checkpoint(&mut self, id: u64) -> Result<Option<Vec<u8>>, StateError> {
        self.numbers.snapshotted.store(id, Ordering::SeqCst);
        Ok(Some(self.next.to_le_bytes().to_vec()))
    }

    fn restore_position(&mut self, position: &[u8]) -> Result<(), StateError> {
        let bytes = position
            .try_into()
            .map_err(|_| StateError::Corrupt("not a position".into()))?;
        self.next = u64::from_le_bytes(bytes);
        Ok(())
    }
}

/// What the sink had written at the snapshot of a checkpoint: (id, records).
type Snapshot = (u64, Vec<u64>);

/// Writes one record per permit; keeps what it wrote, and what it had written at
/// each snapshot.
#[derive(Clone)]
struct GatedSink {
    permits: Arc<Permits>,
    written: Arc<Mutex<Vec<u64>>>,
    at_snapshot: Arc<Mutex<Vec<Snapshot>>>,
}

impl Sink<u64> for GatedSink {
    fn create_writer(&self, _ctx: &RuntimeContext) -> Box<dyn SinkWriter<u64>> {
        Box::new(self.clone())
    }
}

impl SinkWriter<u64> for GatedSink {
    fn write(&mut self, record: u64) -> Result<(), SinkError> {
        self.permits.acquire();
        self.written.lock().push(record);
        Ok(())
    }

    fn snapshot_state(&mut self, id: u64) -> Result<Option<Vec<u8>>, SinkError> {
        let written = self.written.lock().clone();
        self.at_snapshot.lock().push((id, written));
        Ok(None)
    }
}

/// A job's controls.
struct Controls {
    clock: ManualClock,
    numbers: Numbers,
    sink: GatedSink,
}

/// numbers -> [network] -> gated sink, p=1, checkpoints every second on the
/// manual clock, unaligned after an aligned-checkpoint timeout of 100 ms.
fn job(dir: &Path) -> (StreamExecutionEnvironment, Controls) {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1);
    full_queues::small_buffers(&env);
    let (clock, settings) = full_queues::checkpoints_on_manual_clock(&env, dir);
    settings
        .enable_unaligned_checkpoints(true)
        .aligned_checkpoint_timeout(Duration::from_millis(100));
    let numbers = Numbers {
        emitted: Arc::default(),
        snapshotted: Arc::default(),
    };
    let sink = GatedSink {
        permits: Arc::new(Permits::default()),
        written: Arc::default(),
        at_snapshot: Arc::default(),
    };
    env.from_source(numbers.clone(), "Numbers")
        .sink_to(sink.clone())
        .disable_chaining();
    let controls = Controls {
        clock,
        numbers,
        sink,
    };
    (env, controls)
}

/// Waits for `done`, failing with `what` after [`GUARD`].
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + GUARD;
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn an_aligned_barrier_queued_past_its_timeout_overtakes_the_output_and_restores_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let (env, controls) = job(&run);
    let client = env.execute_async(JOB).unwrap();
    let emitted = &controls.numbers.emitted;
    let deadline = Instant::now() + GUARD;
    while emitted.load(Ordering::SeqCst) < IN_FLIGHT {
        assert!(
            Instant::now() < deadline,
            "the queues hold {} < {IN_FLIGHT}",
            emitted.load(Ordering::SeqCst)
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(controls.sink.permits.used(), 0);

    // Trigger checkpoint 1; the clock stays before its timeout, so the source
    // sends its barrier aligned, behind >= IN_FLIGHT records in its output queue,
    // and holds its acknowledgement while the barrier may still go unaligned.
    controls.clock.advance(Duration::from_secs(1));
    let snapshotted = &controls.numbers.snapshotted;
    wait_for("the source took no checkpoint", || {
        snapshotted.load(Ordering::SeqCst) == 1
    });
    let pending = client
        .pending_checkpoint()
        .expect("checkpoint 1 is pending");
    assert_eq!((pending.id, pending.acknowledged), (1, 0));

    // Past the timeout (not yet the next trigger): the source converts its queued
    // barrier and acknowledges. It may be waiting for a buffer to write the
    // barrier into: UNBLOCK permits free one (the sink returns a buffer's credit).
    controls.clock.advance(Duration::from_millis(200));
    let permits = &controls.sink.permits;
    permits.grant(UNBLOCK);
    permits.wait_used(UNBLOCK);
    wait_for("the source did not acknowledge", || {
        client
            .pending_checkpoint()
            .is_none_or(|p| p.acknowledged >= 1)
    });
    // The sink finishes the records it already received and meets the barrier
    // (its snapshot), far before the records ahead of the aligned barrier.
    let mut granted = UNBLOCK;
    while !controls
        .sink
        .at_snapshot
        .lock()
        .iter()
        .any(|(id, _)| *id == 1)
    {
        assert!(
            granted < IN_FLIGHT,
            "checkpoint 1 did not overtake the queue: {:?}",
            client.pending_checkpoint()
        );
        permits.grant(STEP);
        granted += STEP;
        permits.wait_used(granted);
    }
    wait_for("checkpoint 1 did not complete", || {
        !client.completed_checkpoints().is_empty()
    });
    let completed = client.completed_checkpoints()[0];
    assert_eq!(completed.id, 1);
    assert!(
        completed.persisted_data > 4 * 1024,
        "the records in flight are stored: {} bytes",
        completed.persisted_data
    );
    client.cancel();
    controls.sink.permits.open();
    assert!(matches!(client.wait(), Err(JobError::Cancelled { .. })));
    let at_snapshot = controls
        .sink
        .at_snapshot
        .lock()
        .iter()
        .find(|(id, _)| *id == 1)
        .map(|(_, w)| w.clone())
        .expect("the sink's snapshot of checkpoint 1");
    assert!(
        (at_snapshot.len() as u64) < IN_FLIGHT,
        "the sink snapshotted early"
    );

    // Restored: the source from its position, the sink's records in flight from
    // the channel state; with what the sink had written at its snapshot, every
    // number exactly once.
    let checkpoint = latest_checkpoint(&run, JOB).unwrap().expect("checkpoint 1");
    assert!(checkpoint.to_string().ends_with("chk-1"), "{checkpoint}");
    let (env, restored) = job(&dir.path().join("restored"));
    env.restore_from(&checkpoint);
    restored.sink.permits.open();
    let client = env.execute_async(JOB).expect("the restore is accepted");
    full_queues::run_on_clock(
        client,
        &restored.clock,
        GUARD,
        "the restored job did not finish",
    )
    .expect("the restored job finishes");
    let mut all = at_snapshot;
    all.extend(restored.sink.written.lock().iter().copied());
    all.sort_unstable();
    assert_eq!(all, (0..RECORDS).collect::<Vec<_>>());
}
