//! A numbers source into a sink gated by permits, with checkpoints on the manual
//! clock that go unaligned after an aligned-checkpoint timeout: the job the
//! aligned-checkpoint-timeout tests (issue 10) drive by counts, and the steps they
//! share (wait, grant until the sink's snapshot, cancel, restore).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flink_core::checkpoint::StateError;
use flink_core::clock::ManualClock;
use flink_core::operator::RuntimeContext;
use flink_core::sink::{Sink, SinkError, SinkWriter};
use flink_core::source::{Boundedness, Source, SourceOutput, SourcePoll, SourceReader};
use flink_runtime::checkpoint::{CompletedCheckpoint, latest_checkpoint};
use flink_runtime::prelude::*;
use parking_lot::Mutex;

use super::full_queues;
use super::permits::Permits;

/// Bytes of one record in a buffer: its length prefix and the number.
pub const RECORD_BYTES: u64 = 4 + 8;
/// Records in one full buffer (of [`full_queues::small_buffers`]).
pub const PER_BUFFER: u64 = 1024 / RECORD_BYTES;
/// Permits granted at a time while waiting for the sink's snapshot.
pub const STEP: u64 = 25;
/// Guard against a hang (not a timing assertion).
pub const GUARD: Duration = Duration::from_secs(60);

/// Emits `0..records` in small batches, but none at or past its limit (it waits
/// there until the test raises it); its position is the next number. Counts what
/// it emitted and remembers the newest checkpoint it took.
#[derive(Clone)]
pub struct Numbers {
    records: u64,
    limit: Arc<AtomicU64>,
    emitted: Arc<AtomicU64>,
    snapshotted: Arc<AtomicU64>,
}

impl Numbers {
    /// `0..records`, held at `limit` until [`Numbers::raise_limit`].
    pub fn new(records: u64, limit: u64) -> Self {
        Numbers {
            records,
            limit: Arc::new(AtomicU64::new(limit)),
            emitted: Arc::default(),
            snapshotted: Arc::default(),
        }
    }

    /// Lets the source go on up to `limit`.
    pub fn raise_limit(&self, limit: u64) {
        self.limit.store(limit, Ordering::SeqCst);
    }

    /// Records emitted so far (by this run: a restored source counts from its position).
    pub fn emitted(&self) -> u64 {
        self.emitted.load(Ordering::SeqCst)
    }

    /// The newest checkpoint the source took (0: none).
    pub fn snapshotted(&self) -> u64 {
        self.snapshotted.load(Ordering::SeqCst)
    }
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
        if self.next == self.numbers.records {
            return SourcePoll::Finished;
        }
        let limit = self.numbers.limit.load(Ordering::SeqCst);
        let end = (self.next + 8).min(self.numbers.records).min(limit);
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
#[derive(Clone, Default)]
pub struct GatedSink {
    pub permits: Arc<Permits>,
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
    pub fn at_snapshot(&self, id: u64) -> Option<Vec<u64>> {
        self.at_snapshot
            .lock()
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, w)| w.clone())
    }

    /// Records written so far.
    pub fn written(&self) -> u64 {
        self.written.lock().len() as u64
    }

    /// Grants [`STEP`] permits at a time, from `granted` granted so far, until the
    /// sink took checkpoint 1's snapshot; fails with `what` (and the pending
    /// checkpoint) once `within` were granted without it. Returns the permits granted.
    #[track_caller]
    pub fn grant_until_snapshot(
        &self,
        client: &JobClient,
        mut granted: u64,
        within: u64,
        what: &str,
    ) -> u64 {
        while self.at_snapshot(1).is_none() {
            assert!(
                granted < within,
                "{what}: {:?}",
                client.pending_checkpoint()
            );
            self.permits.grant(STEP);
            granted += STEP;
            self.permits.wait_used(granted);
        }
        granted
    }

    /// `at_snapshot` followed by what the sink wrote, sorted: with a sink restored
    /// from that snapshot's checkpoint, every number once.
    pub fn after(&self, at_snapshot: Vec<u64>) -> Vec<u64> {
        let mut all = at_snapshot;
        all.extend(self.written.lock().iter().copied());
        all.sort_unstable();
        all
    }
}

/// A job's controls.
pub struct Controls {
    pub clock: ManualClock,
    pub numbers: Numbers,
    pub sink: GatedSink,
}

/// `numbers` -> `between` -> [network] -> gated sink, p=1, checkpoints every
/// second on the manual clock stored in `dir`, unaligned after an
/// aligned-checkpoint timeout of 100 ms; small buffers (the tests' counts rely on
/// their full size).
pub fn job(
    dir: &Path,
    numbers: Numbers,
    between: impl FnOnce(DataStream<u64>) -> DataStream<u64>,
) -> (StreamExecutionEnvironment, Controls) {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1);
    full_queues::small_buffers(&env);
    let (clock, settings) = full_queues::checkpoints_on_manual_clock(&env, dir);
    settings
        .enable_unaligned_checkpoints(true)
        .aligned_checkpoint_timeout(Duration::from_millis(100));
    let sink = GatedSink::default();
    between(env.from_source(numbers.clone(), "Numbers"))
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
#[track_caller]
pub fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + GUARD;
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits until checkpoint 1 completed, as the job's first; returns it.
#[track_caller]
pub fn wait_first_completed(client: &JobClient) -> CompletedCheckpoint {
    wait_for("checkpoint 1 did not complete", || {
        !client.completed_checkpoints().is_empty()
    });
    let completed = client.completed_checkpoints()[0];
    assert_eq!(completed.id, 1);
    completed
}

/// Cancels `client`'s job, letting `sink` write freely so it can end; checks that
/// it ended cancelled.
#[track_caller]
pub fn cancel(client: JobClient, sink: &GatedSink) {
    client.cancel();
    sink.permits.open();
    assert!(matches!(client.wait(), Err(JobError::Cancelled { .. })));
}

/// The sink's snapshot of checkpoint 1, checked: the first numbers, within the
/// buffer the sink was writing, and `completed` stored exactly the rest of the
/// first `before` numbers as channel state (`stored` names them on failure).
#[track_caller]
pub fn snapshot_within_a_buffer(
    sink: &GatedSink,
    completed: &CompletedCheckpoint,
    before: u64,
    stored: &str,
) -> Vec<u64> {
    let at_snapshot = sink.at_snapshot(1).expect("snapshotted");
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
        (before - written) * RECORD_BYTES,
        "{stored}"
    );
    at_snapshot
}

/// Restores the job named `name` from its checkpoint 1 in `run`, built by `job`
/// with its checkpoints in `dir`, and runs it to its end with its sink ungated and
/// its clock driven; returns its controls.
pub fn restore_checkpoint_1(
    name: &str,
    run: &Path,
    dir: &Path,
    job: impl FnOnce(&Path) -> (StreamExecutionEnvironment, Controls),
) -> Controls {
    let checkpoint = latest_checkpoint(run, name).unwrap().expect("checkpoint 1");
    assert!(checkpoint.to_string().ends_with("chk-1"), "{checkpoint}");
    let (env, restored) = job(dir);
    env.restore_from(&checkpoint);
    restored.sink.permits.open();
    let client = env.execute_async(name).expect("the restore is accepted");
    full_queues::run_on_clock(
        client,
        &restored.clock,
        GUARD,
        "the restored job did not finish",
    )
    .expect("the restored job finishes");
    restored
}
