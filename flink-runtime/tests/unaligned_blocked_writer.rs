//! The aligned-checkpoint timeout for a task blocked inside a write (issue 10),
//! driven by counts and the manual clock, never by timing: numbers -> map ->
//! gated sink (one record per permit), chaining off. The map forwards checkpoint
//! 1's aligned barrier into its output queue, behind records the full sink input
//! cannot take, and holds its acknowledgement; then the source goes on and the map
//! blocks writing (its output full). Past the timeout, the blocked write converts
//! the queued barrier between its waits (it ships as a priority event) and
//! acknowledges with what it overtook, instead of acknowledging aligned before it
//! blocked (then the sink needed thousands of permits to reach the barrier). A
//! restore from it writes every number exactly once.

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

const JOB: &str = "blocked-writer";
/// Records of the job.
const RECORDS: u64 = 20_000;
/// Records emitted before the checkpoint: more than the sink's input channel
/// holds (32 buffers of [`PER_BUFFER`]), fewer than it and the map's output queue
/// (32 more) hold, so the map forwards its barrier without blocking and the barrier waits in
/// the map's output queue.
const BEFORE: u64 = 4_000;
/// Bytes of one record in a buffer: its length prefix and the number.
const RECORD_BYTES: u64 = 4 + 8;
/// Records in one full buffer.
const PER_BUFFER: u64 = 1024 / RECORD_BYTES;
/// Permits granted at a time while waiting for the sink's snapshot.
const STEP: u64 = 25;
/// The sink's snapshot must come within this many permits: the map's barrier is
/// behind about 1,300 records in its output queue (BEFORE less what the sink's
/// input holds), which a barrier acknowledged aligned would wait behind.
const WITHIN: u64 = 500;
/// Guard against a hang (not a timing assertion).
const GUARD: Duration = Duration::from_secs(60);

/// Emits `0..RECORDS` in small batches, but none at or past `limit` (it waits
/// there until the test raises it); its position is the next number. Tells `snapshotted` the newest
/// checkpoint it took.
#[derive(Clone)]
struct Numbers {
    limit: Arc<AtomicU64>,
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
        let end = (self.next + 8).min(self.numbers.limit.load(Ordering::SeqCst));
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
    mapped: Arc<AtomicU64>,
    sink: GatedSink,
}

/// numbers (up to `limit`) -> map -> gated sink, p=1, no chaining, checkpoints
/// every second on the manual clock, unaligned after an aligned-checkpoint timeout
/// of 100 ms.
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
        limit: Arc::new(AtomicU64::new(limit)),
        emitted: Arc::default(),
        snapshotted: Arc::default(),
    };
    let sink = GatedSink {
        permits: Arc::new(Permits::default()),
        written: Arc::default(),
        at_snapshot: Arc::default(),
    };
    let mapped = Arc::new(AtomicU64::new(0));
    let counter = mapped.clone();
    env.from_source(numbers.clone(), "Numbers")
        .map(move |x: u64| {
            counter.fetch_add(1, Ordering::SeqCst);
            x
        })
        .name("Relay")
        .disable_chaining()
        .sink_to(sink.clone())
        .disable_chaining();
    let controls = Controls {
        clock,
        numbers,
        mapped,
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

/// How long the map's task was blocked on its output so far.
fn map_back_pressured(client: &JobClient) -> Duration {
    client
        .task_metrics()
        .into_iter()
        .find(|t| t.task.contains("Relay"))
        .map(|t| t.back_pressured)
        .expect("the map's task")
}

#[test]
fn a_task_blocked_in_a_write_converts_its_queued_barrier_at_the_timeout_and_restores_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let (env, controls) = job(&run, BEFORE);
    let client = env.execute_async(JOB).unwrap();
    wait_for("the map did not relay the first records", || {
        controls.mapped.load(Ordering::SeqCst) == BEFORE
    });
    let permits = &controls.sink.permits;
    assert_eq!(permits.used(), 0);

    // Checkpoint 1, before its timeout: the source's barrier ships (the map's input
    // has room) and the source acknowledges; the map forwards it aligned into its
    // output queue, behind what the sink's input cannot take, and holds its
    // acknowledgement.
    controls.clock.advance(Duration::from_secs(1));
    wait_for("the source did not acknowledge", || {
        client
            .pending_checkpoint()
            .is_some_and(|p| p.id == 1 && p.acknowledged == 1)
    });
    // The source goes on: the map relays records after its barrier until its
    // output is full and it blocks in a write (its back-pressured time grows).
    let blocked_before = map_back_pressured(&client);
    controls.numbers.limit.store(RECORDS, Ordering::SeqCst);
    wait_for("the map did not block writing", || {
        controls.mapped.load(Ordering::SeqCst) > BEFORE
            && map_back_pressured(&client) > blocked_before
    });
    assert_eq!(
        client.pending_checkpoint().map(|p| (p.id, p.acknowledged)),
        Some((1, 1)),
        "the blocked map still holds its acknowledgement"
    );

    // Past the timeout (not yet the next trigger): the blocked write converts the
    // queued barrier and acknowledges; the sink meets the priority barrier once
    // it finished the buffer it is writing.
    controls.clock.advance(Duration::from_millis(200));
    wait_for("the blocked map did not acknowledge", || {
        client
            .pending_checkpoint()
            .is_none_or(|p| p.acknowledged >= 2)
    });
    let mut granted = 0;
    while controls.sink.at_snapshot(1).is_none() {
        assert!(
            granted < WITHIN,
            "the map's barrier did not overtake its output queue: {:?}",
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
    client.cancel();
    permits.open();
    assert!(matches!(client.wait(), Err(JobError::Cancelled { .. })));
    let at_snapshot = controls.sink.at_snapshot(1).expect("snapshotted");
    let written = at_snapshot.len() as u64;
    assert_eq!(at_snapshot, (0..written).collect::<Vec<_>>());
    assert!(
        written <= PER_BUFFER,
        "the sink snapshotted within the buffer it was writing: {written}"
    );
    // The map's output state (before its barrier) and the sink's input state
    // (what the priority barrier overtook there) are every record before the
    // checkpoint the sink had not written, exactly.
    assert_eq!(
        completed.persisted_data,
        (BEFORE - written) * RECORD_BYTES,
        "the records in flight are stored"
    );

    // Restored: the source from its position (BEFORE), the map's and the sink's
    // records in flight from their channel state; with what the sink had written
    // at its snapshot, every number exactly once.
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
        RECORDS - BEFORE,
        "the source resumed at its position"
    );
    let mut all = at_snapshot;
    all.extend(restored.sink.written.lock().iter().copied());
    all.sort_unstable();
    assert_eq!(all, (0..RECORDS).collect::<Vec<_>>());
}
