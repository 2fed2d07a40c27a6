//! Channel state of an unaligned checkpoint: the records in flight that the
//! checkpoint cut, as the raw buffers they travelled in. A task stores it with its
//! snapshot (under the reserved node [`CHANNEL_STATE_NODE`], so the coordinator and
//! the storage treat it as any other state: versioned, checksummed) and is fed it
//! back on restore before any new input or output. See docs/checkpoints.md.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use flink_core::checkpoint::{
    CheckpointBarrier, CheckpointConfig, CheckpointLocation, StateError,
    TIMESTAMPED_CHANNELS_VERSION, decode_state, encode_state, state_version,
};
use flink_core::clock::Clock;
use flink_core::graph::JobGraph;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::channel_rescale::{GraphChange, compare, rescale};
use super::restore::RestoreError;
use super::storage::LoadedCheckpoint;
use crate::network::{BufferKind, ResultPartition};

/// The node id a task's channel state is stored under in its snapshot (no operator
/// has it: node ids are indices into the graph).
pub(crate) const CHANNEL_STATE_NODE: usize = usize::MAX - 1;

/// One buffer in flight: record frames (a record may continue in the next buffer
/// of the same channel) or one encoded event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ChannelBuffer {
    /// An event buffer (else data).
    pub(crate) event: bool,
    /// Its bytes.
    pub(crate) bytes: Vec<u8>,
}

impl ChannelBuffer {
    /// A copy of a buffer of `kind` holding `bytes`.
    pub(crate) fn new(kind: BufferKind, bytes: &[u8]) -> Self {
        Self {
            event: kind == BufferKind::Event,
            bytes: bytes.to_vec(),
        }
    }

    /// The kind of buffer it was.
    pub(crate) fn kind(&self) -> BufferKind {
        if self.event {
            BufferKind::Event
        } else {
            BufferKind::Data
        }
    }
}

/// The channel state of one task for one checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ChannelState {
    /// Input side, by input channel: the part of a record the channel's
    /// deserializer held, then the buffers that arrived before the channel's barrier
    /// but were not processed before the task's snapshot.
    pub(crate) inputs: Vec<(usize, Vec<ChannelBuffer>)>,
    /// Output side, by (job edge, subpartition): the buffers the barrier overtook in
    /// the subpartition's queue.
    pub(crate) outputs: Vec<(usize, usize, Vec<ChannelBuffer>)>,
}

impl ChannelState {
    /// Whether it holds no buffer at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.inputs.iter().all(|(_, b)| b.is_empty())
            && self.outputs.iter().all(|(_, _, b)| b.is_empty())
    }

    /// Bytes of the buffers it holds.
    pub(crate) fn bytes(&self) -> usize {
        let sum = |b: &[ChannelBuffer]| b.iter().map(|b| b.bytes.len()).sum::<usize>();
        self.inputs.iter().map(|(_, b)| sum(b)).sum::<usize>()
            + self.outputs.iter().map(|(_, _, b)| sum(b)).sum::<usize>()
    }

    /// Encoded with the state format's header (magic, version).
    pub(crate) fn encode(&self) -> Result<Vec<u8>, StateError> {
        encode_state(self)
    }

    /// Decodes what [`encode`](Self::encode) wrote. Records in flight written
    /// before records carried their timestamps (format 2 and older) may be of
    /// another layout than this build's, so such a state that holds any buffer is
    /// refused, never misread.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, StateError> {
        let state: Self = decode_state(bytes)?;
        let version = state_version(bytes)?;
        if version < TIMESTAMPED_CHANNELS_VERSION && !state.is_empty() {
            return Err(StateError::Corrupt(format!(
                "channel state of format {version} predates records carrying their \
                 timestamps (format {TIMESTAMPED_CHANNELS_VERSION}); restore from an \
                 aligned checkpoint or a savepoint"
            )));
        }
        Ok(state)
    }

    /// The input-side buffers of `channel`, in order.
    pub(crate) fn input(&self, channel: usize) -> impl Iterator<Item = &ChannelBuffer> {
        self.inputs
            .iter()
            .filter(move |(c, _)| *c == channel)
            .flat_map(|(_, b)| b)
    }

    /// The output-side buffers of subpartition `subpartition` of job edge `edge`.
    pub(crate) fn output(
        &self,
        edge: usize,
        subpartition: usize,
    ) -> impl Iterator<Item = &ChannelBuffer> {
        self.outputs
            .iter()
            .filter(move |(e, s, _)| *e == edge && *s == subpartition)
            .flat_map(|(_, _, b)| b)
    }
}

/// What the network outputs of one task overtook with an unaligned barrier: the
/// task arms it with the checkpoint's id before it sends the barrier, each
/// `RecordWriter` of the task adds what its subpartitions' barriers overtook, and
/// the task takes it into its snapshot.
#[derive(Default)]
pub(crate) struct OutputChannelState {
    inner: Mutex<OutputInner>,
    /// An aligned checkpoint's acknowledgement held while its barrier may still go
    /// unaligned in an output queue (`task::take_aligned`).
    held: Mutex<Option<(CheckpointBarrier, HeldAck)>>,
    /// Whether `held` is set, readable without the lock on the write path.
    holding: AtomicBool,
    /// The task's result partitions by job edge, to see whether its output has
    /// room and to find its queued barriers.
    partitions: Mutex<Vec<(usize, Arc<ResultPartition>)>>,
    /// The job's checkpoint settings and clock, with unaligned checkpoints and an
    /// aligned-checkpoint timeout only: a held acknowledgement may then time out.
    timeout: Option<(Arc<CheckpointConfig>, Arc<dyn Clock>)>,
}

impl std::fmt::Debug for OutputChannelState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputChannelState")
            .field("inner", &self.inner)
            .field("holding", &self.holding)
            .finish()
    }
}

/// Sends a held acknowledgement, given the output channel state its barriers'
/// conversion produced (empty if none was converted).
pub(crate) type HeldAck = Box<dyn FnOnce(Vec<(usize, usize, Vec<ChannelBuffer>)>) + Send>;

#[derive(Debug, Default)]
struct OutputInner {
    /// The checkpoint whose barrier is sent unaligned now.
    unaligned: Option<u64>,
    outputs: Vec<(usize, usize, Vec<ChannelBuffer>)>,
}

impl OutputChannelState {
    /// The output channel state of a task of a job with checkpoint settings
    /// `config`, whose aligned-checkpoint timeout is measured on `clock`.
    pub(crate) fn new(config: Arc<CheckpointConfig>, clock: Arc<dyn Clock>) -> Self {
        let timeout = (config.unaligned && config.aligned_checkpoint_timeout.is_some())
            .then_some((config, clock));
        Self {
            timeout,
            ..Self::default()
        }
    }

    /// The barrier of `checkpoint` goes out unaligned.
    pub(crate) fn arm(&self, checkpoint: u64) {
        let mut inner = self.inner.lock();
        inner.unaligned = Some(checkpoint);
        inner.outputs.clear();
    }

    /// Whether the barrier of `checkpoint` goes out unaligned.
    pub(crate) fn is_unaligned(&self, checkpoint: u64) -> bool {
        self.inner.lock().unaligned == Some(checkpoint)
    }

    /// Subpartition `subpartition` of job edge `edge` overtook `buffers`.
    pub(crate) fn add(&self, edge: usize, subpartition: usize, buffers: Vec<ChannelBuffer>) {
        self.inner
            .lock()
            .outputs
            .push((edge, subpartition, buffers));
    }

    /// Holds the acknowledgement `ack` of the aligned checkpoint of `barrier`.
    pub(crate) fn hold(&self, barrier: CheckpointBarrier, ack: HeldAck) {
        *self.held.lock() = Some((barrier, ack));
        self.holding.store(true, Ordering::Release);
    }

    /// The checkpoint whose acknowledgement is held, if any.
    pub(crate) fn held(&self) -> Option<CheckpointBarrier> {
        if !self.holding.load(Ordering::Acquire) {
            return None;
        }
        self.held.lock().as_ref().map(|(b, _)| *b)
    }

    /// Sends the held acknowledgement with `outputs` as its output channel state;
    /// its barriers are never converted afterwards.
    pub(crate) fn release_held(&self, outputs: Vec<(usize, usize, Vec<ChannelBuffer>)>) {
        let held = self.held.lock().take();
        self.holding.store(false, Ordering::Release);
        if let Some((_, ack)) = held {
            ack(outputs);
        }
    }

    /// Acknowledges the held checkpoint once its barriers left the output queues;
    /// past its aligned-checkpoint timeout (on the job's clock) first turns the
    /// ones still queued into unaligned barriers and stores what they overtook.
    /// Called on the task's loop and by a write blocked on a full output between
    /// its waits, so that a blocked task converts and acknowledges too.
    pub(crate) fn resolve_held(&self) {
        let Some(barrier) = self.held() else {
            return;
        };
        let converted = if self.holds_barrier(barrier.id) {
            if !self.timed_out(barrier) {
                return;
            }
            self.convert_barrier(barrier.id)
        } else {
            Vec::new()
        };
        if !converted.is_empty() {
            tracing::debug!(
                checkpoint = barrier.id,
                channels = converted.len(),
                "aligned barrier timed out in an output queue: sent unaligned"
            );
        }
        self.release_held(converted);
    }

    /// Whether `barrier` (held, so neither a savepoint's nor a stopping one) is
    /// past its aligned-checkpoint timeout.
    fn timed_out(&self, barrier: CheckpointBarrier) -> bool {
        self.timeout.as_ref().is_some_and(|(config, clock)| {
            let now = i64::try_from(clock.now().as_millis()).unwrap_or(i64::MAX);
            config.unaligned_at(barrier.timestamp, now)
        })
    }

    /// The task writes to `partition`, of job edge `edge`. With a timeout, a
    /// write blocked on it resolves the held acknowledgement between its waits.
    pub(crate) fn register(self: &Arc<Self>, edge: usize, partition: Arc<ResultPartition>) {
        if self.timeout.is_some() {
            let state = Arc::downgrade(self);
            partition.pool().set_wait_hook(Box::new(move || {
                if let Some(state) = state.upgrade() {
                    state.resolve_held();
                }
            }));
        }
        self.partitions.lock().push((edge, partition));
    }

    /// Whether the aligned barrier of `checkpoint` still waits in an output queue:
    /// two loads per subpartition, no queue locked or scanned (it runs on every loop
    /// turn while an acknowledgement is held).
    pub(crate) fn holds_barrier(&self, checkpoint: u64) -> bool {
        self.partitions
            .lock()
            .iter()
            .any(|(_, p)| p.holds_barrier(checkpoint))
    }

    /// The aligned-checkpoint timeout of `checkpoint` passed: its aligned barriers
    /// still queued become unaligned ones ahead of the buffers before them; returns
    /// those buffers by (job edge, subpartition), the output channel state.
    pub(crate) fn convert_barrier(
        &self,
        checkpoint: u64,
    ) -> Vec<(usize, usize, Vec<ChannelBuffer>)> {
        let mut converted = Vec::new();
        for (edge, partition) in self.partitions.lock().iter() {
            for (subpartition, buffers) in partition.convert_barrier(checkpoint) {
                converted.push((*edge, subpartition, buffers));
            }
        }
        converted
    }

    /// Whether a record written now could block: some output partition has no
    /// free buffer, or a channel at its cap of queued buffers. A source with
    /// unaligned checkpoints then waits (looking for triggers) instead of reading a
    /// batch it could not finish writing, so that its barrier is not held back
    /// behind a blocked write (Flink's sources wait for output availability too).
    pub(crate) fn output_blocked(&self) -> bool {
        self.partitions.lock().iter().any(|(_, p)| {
            !p.pool().has_free() || (0..p.num_subpartitions()).any(|i| p.would_block(i))
        })
    }

    /// Everything added since [`arm`](Self::arm); disarms.
    pub(crate) fn take(&self) -> Vec<(usize, usize, Vec<ChannelBuffer>)> {
        let mut inner = self.inner.lock();
        inner.unaligned = None;
        std::mem::take(&mut inner.outputs)
    }
}

/// The channel state of every task in `checkpoint`, by (vertex, subtask) of `jg`,
/// the job about to run. Channel state names input channels and subpartitions of
/// the job that wrote it: into the same job at the same parallelism it restores as
/// stored; at another parallelism it is re-partitioned
/// ([`channel_rescale`](super::channel_rescale)); into a job with other operators
/// it cannot be placed ([`RestoreError::UnalignedRescale`]). Everything is decoded
/// and placed here, before any task starts.
pub(crate) fn restored_channel_states(
    checkpoint: &LoadedCheckpoint,
    jg: &JobGraph,
    path: &CheckpointLocation,
) -> Result<HashMap<(usize, usize), Arc<ChannelState>>, RestoreError> {
    let mut states = HashMap::new();
    for (vertex, subtask, stored) in &checkpoint.tasks {
        for (_, bytes) in stored.iter().filter(|(n, _)| *n == CHANNEL_STATE_NODE) {
            let file = format!("task-{vertex}-{subtask}");
            let state = ChannelState::decode(bytes).map_err(|e| match e {
                StateError::UnsupportedVersion { found, supported } => {
                    RestoreError::UnsupportedVersion {
                        path: path.clone(),
                        file: file.clone(),
                        found,
                        supported,
                    }
                }
                e => RestoreError::Corrupt {
                    path: path.clone(),
                    file: file.clone(),
                    reason: format!("channel state: {e}"),
                },
            })?;
            if !state.is_empty() {
                states.insert((*vertex, *subtask), state);
            }
        }
    }
    if states.is_empty() {
        return Ok(HashMap::new());
    }
    match compare(checkpoint, &jg.stream_graph) {
        GraphChange::Same => Ok(states.into_iter().map(|(k, v)| (k, Arc::new(v))).collect()),
        GraphChange::Rescaled => rescale(&states, checkpoint, jg, path),
        GraphChange::Changed { operator, reason } => Err(RestoreError::UnalignedRescale {
            path: path.clone(),
            operator,
            reason,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> ChannelState {
        ChannelState {
            inputs: vec![(
                1,
                vec![
                    ChannelBuffer::new(BufferKind::Data, &[4, 0, 0, 0, 1]),
                    ChannelBuffer::new(BufferKind::Event, &[1, 0, 0, 0, 0, 0, 0, 0, 0]),
                ],
            )],
            outputs: vec![(3, 0, vec![ChannelBuffer::new(BufferKind::Data, &[9; 7])])],
        }
    }

    #[test]
    fn channel_state_round_trips_through_its_versioned_encoding() {
        let s = state();
        let back = ChannelState::decode(&s.encode().unwrap()).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.bytes(), 5 + 9 + 7);
        assert_eq!(back.input(1).count(), 2);
        assert_eq!(back.input(0).count(), 0);
        assert_eq!(back.output(3, 0).next().unwrap().kind(), BufferKind::Data);
        assert!(!back.is_empty());
        assert!(ChannelState::default().is_empty());
    }

    #[test]
    fn records_in_flight_written_before_records_carried_timestamps_are_refused() {
        let mut old = state().encode().unwrap();
        old[4..8].copy_from_slice(&(TIMESTAMPED_CHANNELS_VERSION - 1).to_le_bytes());
        let err = ChannelState::decode(&old).unwrap_err().to_string();
        assert!(
            err.contains("predates records carrying their timestamps"),
            "{err}"
        );
        // Nothing in flight: nothing to misread.
        let mut empty = ChannelState::default().encode().unwrap();
        empty[4..8].copy_from_slice(&(TIMESTAMPED_CHANNELS_VERSION - 1).to_le_bytes());
        assert_eq!(
            ChannelState::decode(&empty).unwrap(),
            ChannelState::default()
        );
    }

    #[test]
    fn corrupt_channel_state_is_a_clear_restore_error() {
        let mut bytes = state().encode().unwrap();
        bytes.truncate(bytes.len() - 4);
        let checkpoint = LoadedCheckpoint {
            id: 3,
            tasks: vec![(1, 0, vec![(CHANNEL_STATE_NODE, bytes)])],
            operators: Vec::new(),
        };
        let env = flink_core::environment::StreamExecutionEnvironment::new();
        env.from_sequence(1, 2).collect_vec();
        let graph = JobGraph::from_stream_graph(&env.stream_graph().unwrap());
        let err = restored_channel_states(&checkpoint, &graph, &CheckpointLocation::from("chk-3"))
            .unwrap_err();
        assert!(
            matches!(&err, RestoreError::Corrupt { file, reason, .. }
                if file == "task-1-0" && reason.starts_with("channel state")),
            "{err}"
        );
    }

    #[test]
    fn records_in_flight_restore_as_stored_into_the_same_job_and_never_into_another() {
        let graph = |p: usize, rebalance: bool| {
            let env = flink_core::environment::StreamExecutionEnvironment::new();
            env.set_parallelism(p);
            let numbers = env.from_sequence(1, 2);
            if rebalance {
                numbers.rebalance().collect_vec();
            } else {
                numbers.map(|x: u64| x).rebalance().collect_vec();
            }
            JobGraph::from_stream_graph(&env.stream_graph().unwrap())
        };
        let saved = graph(2, true);
        let operators = saved
            .stream_graph
            .nodes
            .iter()
            .map(|n| super::super::storage::OperatorEntry {
                node: n.id,
                uid: n.operator_id(),
                name: n.name.clone(),
                parallelism: n.parallelism,
            })
            .collect();
        let checkpoint = LoadedCheckpoint {
            id: 3,
            tasks: vec![(1, 0, vec![(CHANNEL_STATE_NODE, state().encode().unwrap())])],
            operators,
        };
        let path = CheckpointLocation::from("chk-3");
        let same = restored_channel_states(&checkpoint, &saved, &path).unwrap();
        assert_eq!(same[&(1, 0)].input(1).count(), 2);
        // Other operators: nothing says where its records in flight belong.
        let err = restored_channel_states(&checkpoint, &graph(2, false), &path).unwrap_err();
        assert!(
            matches!(&err, RestoreError::UnalignedRescale { reason, .. }
                if reason.contains("lists 2 operators and the job has 3")),
            "{err}"
        );
    }

    #[test]
    fn output_state_is_collected_only_while_armed() {
        let out = OutputChannelState::default();
        assert!(!out.is_unaligned(4));
        out.arm(4);
        assert!(out.is_unaligned(4));
        out.add(0, 1, vec![ChannelBuffer::new(BufferKind::Data, &[1])]);
        assert_eq!(out.take().len(), 1);
        assert!(!out.is_unaligned(4));
        assert!(out.take().is_empty());
    }
}
