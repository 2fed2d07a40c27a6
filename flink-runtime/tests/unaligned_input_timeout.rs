//! The aligned-checkpoint timeout in a receiver's input queue (issue 10), driven
//! by counts and the manual clock, never by timing: a source emits a fixed number
//! of records and waits; a sink that writes one record per permit has them all
//! received and queued in its input channel when the checkpoint is triggered, so
//! the aligned barrier ships at once and waits in the sink's input queue behind
//! them (the source acknowledges before the timeout: its barrier left its output
//! queue, so none is converted there). Once the job's clock passed the timeout,
//! the sink pulls the barrier ahead of those records (Flink's announced barrier)
//! and snapshots after about one buffer, far before it would read the barrier in
//! order; the records it overtook are stored as its input channel state. A restore
//! from it writes exactly the records the sink had not written at its snapshot.

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

use common::permits::Permits;

const JOB: &str = "input-timeout";
/// Records of the job.
const RECORDS: u64 = 5_000;
/// Records the source emits before the checkpoint, then it waits: about 16 buffers
/// of 1 KiB, which the sink's input channel (32 segments) receives whole, so the
/// barrier behind them ships at once.
const IN_FLIGHT: u64 = 1_000;
/// Bytes of one record in a buffer: its length prefix and the number.
const RECORD_BYTES: u64 = 4 + 8;
/// Records in one full buffer.
const PER_BUFFER: u64 = 1024 / RECORD_BYTES;
/// Permits granted at a time while waiting for the sink's snapshot.
const STEP: u64 = 25;
/// Guard against a hang (not a timing assertion).
const GUARD: Duration = Duration::from_secs(60);

/// Emits `0..RECORDS` in small batches, but none at or past `limit` (it waits
/// there); its position is the next number. Tells `snapshotted` the newest
/// checkpoint it took.
#[derive(Clone)]
struct Numbers {
    limit: u64,
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
        if self.next == RECORDS {
            return SourcePoll::Finished;
        }
        let end = (self.next + 8).min(self.numbers.limit);
        if end == self.next {
            return SourcePoll::Pending(Duration::from_millis(1));
        }
        for x in self.next..end {
            out.collect(x);
        }
        self.numbers
            .emitted
            .fetch_add(end - self.next, Ordering::SeqCst);
        self.next = end;
        SourcePoll::MoreAvailable
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

impl GatedSink {
    /// What it had written at checkpoint `id`'s snapshot.
    fn at_snapshot(&self, id: u64) -> Option<Vec<u64>> {
        self.at_snapshot
            .lock()
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, w)| w.clone())
    }
}

/// A job's controls.
struct Controls {
    clock: ManualClock,
    numbers: Numbers,
    sink: GatedSink,
}

/// numbers (up to `limit`) -> [network] -> gated sink, p=1, checkpoints every
/// second on the manual clock, unaligned after an aligned-checkpoint timeout of
/// 100 ms.
fn job(dir: &Path, limit: u64) -> (StreamExecutionEnvironment, Controls) {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1);
    env.configure(|c| {
        c.buffer_size = 1024;
        c.exclusive_buffers_per_channel = 16;
        c.floating_buffers_per_gate = 16;
        c.max_buffers_per_channel = 32;
        // Full-size buffers: the counts above rely on them.
        c.buffer_debloat = flink_core::buffer_debloat::BufferDebloatConfig::disabled();
    });
    let clock = ManualClock::new();
    env.set_clock(Arc::new(clock.clone()));
    env.enable_checkpointing(Duration::from_secs(1))
        .set_storage_dir(dir)
        .enable_unaligned_checkpoints(true)
        .aligned_checkpoint_timeout(Duration::from_millis(100));
    let numbers = Numbers {
        limit,
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
fn an_aligned_barrier_received_past_its_timeout_overtakes_the_input_queue_and_restores_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let (env, controls) = job(&run, IN_FLIGHT);
    let client = env.execute_async(JOB).unwrap();
    let emitted = &controls.numbers.emitted;
    wait_for("the source did not emit its records", || {
        emitted.load(Ordering::SeqCst) == IN_FLIGHT
    });
    let permits = &controls.sink.permits;
    assert_eq!(permits.used(), 0);

    // Trigger checkpoint 1; the clock stays before its timeout. The source sends
    // its barrier aligned behind the IN_FLIGHT records; it acknowledges once the
    // barrier left its output queue, aligned (before the timeout nothing is
    // converted there): the barrier is then in the sink's input queue, behind
    // every record, none of which the sink wrote.
    controls.clock.advance(Duration::from_secs(1));
    wait_for("the source took no checkpoint", || {
        controls.numbers.snapshotted.load(Ordering::SeqCst) == 1
    });
    wait_for("the source did not acknowledge", || {
        client
            .pending_checkpoint()
            .is_some_and(|p| p.id == 1 && p.acknowledged == 1)
    });
    assert_eq!(permits.used(), 0);
    assert!(controls.sink.at_snapshot(1).is_none());

    // Past the timeout (not yet the next trigger). The sink finishes the buffer
    // it is writing, then pulls the barrier ahead of the rest and snapshots.
    controls.clock.advance(Duration::from_millis(200));
    let mut granted = 0;
    while controls.sink.at_snapshot(1).is_none() {
        assert!(
            granted < IN_FLIGHT / 2,
            "the barrier did not overtake the input queue: {:?}",
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
    // Only the sink can have stored channel state: the source acknowledged
    // before the timeout, without any.
    assert!(
        completed.persisted_data > 4 * 1024,
        "the records the barrier overtook are stored: {} bytes",
        completed.persisted_data
    );
    // It completed while the sink is still blocked short of the records ahead
    // of the barrier.
    assert_eq!(permits.used(), granted);
    assert_eq!(controls.sink.written.lock().len() as u64, granted);
    assert!(granted < IN_FLIGHT);
    client.cancel();
    permits.open();
    assert!(matches!(client.wait(), Err(JobError::Cancelled { .. })));
    let at_snapshot = controls.sink.at_snapshot(1).expect("snapshotted");
    let written = at_snapshot.len() as u64;
    assert_eq!(
        at_snapshot,
        (0..written).collect::<Vec<_>>(),
        "the sink wrote a prefix"
    );
    assert!(
        written <= PER_BUFFER,
        "the sink snapshotted within the buffer it was writing: {written}"
    );
    assert_eq!(
        completed.persisted_data,
        (IN_FLIGHT - written) * RECORD_BYTES,
        "exactly the records the sink had not written are stored"
    );

    // Restored: the sink's records in flight from its channel state, the source
    // from its position (IN_FLIGHT); with what the sink had written at its
    // snapshot, every number exactly once.
    let checkpoint = latest_checkpoint(&run, JOB).unwrap().expect("checkpoint 1");
    assert!(checkpoint.to_string().ends_with("chk-1"), "{checkpoint}");
    let (env, restored) = job(&dir.path().join("restored"), RECORDS);
    env.restore_from(&checkpoint);
    restored.sink.permits.open();
    let client = env.execute_async(JOB).expect("the restore is accepted");
    let waiter = std::thread::spawn(move || client.wait());
    let deadline = Instant::now() + GUARD;
    while !waiter.is_finished() {
        assert!(Instant::now() < deadline, "the restored job did not finish");
        restored.clock.advance(Duration::from_secs(1));
        std::thread::sleep(Duration::from_millis(5));
    }
    waiter.join().unwrap().expect("the restored job finishes");
    assert_eq!(
        restored.numbers.emitted.load(Ordering::SeqCst),
        RECORDS - IN_FLIGHT,
        "the source resumed at its position"
    );
    let mut all = at_snapshot;
    all.extend(restored.sink.written.lock().iter().copied());
    all.sort_unstable();
    assert_eq!(all, (0..RECORDS).collect::<Vec<_>>());
}
