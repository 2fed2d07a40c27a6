//! A task: one parallel instance of a job vertex, running its operator chain on its
//! own thread until its input ends, it fails, or the job is cancelled. A stopped job
//! ends its source tasks' input early; the end then flows downstream as usual. A job
//! stopped with a savepoint without drain ends every task right after the
//! savepoint's barrier instead, without end-of-input work.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use flink_core::checkpoint::{ChainSnapshot, CheckpointBarrier, FINAL_SNAPSHOT_ID};
use flink_core::failure::{OperatorFailure, TaskCancelled, panic_message};
use flink_core::node::SourceDriver;
use flink_core::source::SourcePoll;
use flink_core::stream_type::RecordDecoder;
use flink_core::watermark::Watermark;

use crate::checkpoint::barrier_aligner::{Alignment, BarrierAligner};
use crate::checkpoint::channel_state::{CHANNEL_STATE_NODE, ChannelBuffer, ChannelState};
use crate::checkpoint::stats::BarrierArrival;
use crate::checkpoint::task_side::TaskCheckpointing;
use crate::flush_timer::FlushClock;
use crate::network::{CancelToken, Event, GateItem, GatePoll, InputGate, NetworkError, Waiting};
use crate::task_metrics::TaskMetrics;
use crate::watermark_valve::{ValveOutput, WatermarkValve};

/// How long a blocked task waits before re-checking cancellation; shortened to its
/// next flush deadline when the buffer timeout is shorter
/// ([`FlushClock::bound_wait`]).
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How long it waits for input while an operator has work pending (async calls in
/// flight whose results must go out even if no input arrives).
const PENDING_POLL_INTERVAL: Duration = Duration::from_micros(200);
/// How long a back-pressured source with unaligned checkpoints waits before it
/// looks again for room in its output (and for a trigger).
const OUTPUT_WAIT: Duration = Duration::from_millis(1);
/// The longest a pending source sleeps at once.
const MAX_SOURCE_BACKOFF: Duration = Duration::from_millis(10);

/// Where a task's records come from.
pub(crate) enum TaskInput {
    /// A source reader at the head of the chain.
    Source(Box<dyn SourceDriver>),
    /// An input gate whose records are decoded into the chain.
    Network {
        gate: InputGate,
        decoder: Box<dyn RecordDecoder>,
    },
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TaskOutcome {
    /// Input ended and everything was flushed downstream.
    Finished,
    /// An operator failed.
    Failed { operator: String, message: String },
    /// The job was cancelled.
    Cancelled,
}

/// A task ready to run.
pub(crate) struct Task {
    pub(crate) input: TaskInput,
    pub(crate) flush: FlushClock,
    pub(crate) cancel: CancelToken,
    /// Set when the job is stopped with a drain: a source stops reading.
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) metrics: Arc<TaskMetrics>,
    /// The task's part in checkpoints; `None` when the job takes none.
    pub(crate) checkpointing: Option<TaskCheckpointing>,
}

impl Task {
    /// Runs `build` then the task it builds, turning every way of stopping into an
    /// outcome; nothing unwinds past this function.
    pub(crate) fn run_guarded(task_name: &str, build: impl FnOnce() -> Task) -> TaskOutcome {
        match catch_unwind(AssertUnwindSafe(|| build().run())) {
            Ok(()) => TaskOutcome::Finished,
            Err(payload) => {
                if payload.is::<TaskCancelled>() {
                    TaskOutcome::Cancelled
                } else if let Some(f) = payload.downcast_ref::<OperatorFailure>() {
                    TaskOutcome::Failed {
                        operator: f.operator.clone(),
                        message: f.message.clone(),
                    }
                } else {
                    TaskOutcome::Failed {
                        operator: task_name.to_string(),
                        message: panic_message(&*payload),
                    }
                }
            }
        }
    }

    fn run(mut self) {
        let ck = &mut self.checkpointing;
        let stopped: Option<FinalStates>;
        let chain: &mut dyn Chain = match &mut self.input {
            TaskInput::Source(driver) => {
                stopped = run_source(
                    driver,
                    &mut self.flush,
                    &self.cancel,
                    &self.stop,
                    &self.metrics,
                    ck,
                );
                driver
            }
            TaskInput::Network { gate, decoder } => {
                stopped = run_network(
                    gate,
                    decoder,
                    &mut self.flush,
                    &self.cancel,
                    &self.metrics,
                    ck,
                );
                decoder
            }
        };
        finish(chain, ck.as_ref(), &self.cancel, stopped);
    }
}

/// The states a task stopped without drain took for the savepoint (encoded): its
/// final state, as nothing changed after it.
type FinalStates = Vec<(usize, Vec<u8>)>;

/// The checkpoint operations of a chain, whatever its input.
trait Chain {
    fn snapshot_state(&mut self, checkpoint_id: u64, into: &mut ChainSnapshot);
    fn emit_barrier(&mut self, barrier: CheckpointBarrier);
    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64);
}

impl Chain for Box<dyn SourceDriver> {
    fn snapshot_state(&mut self, checkpoint_id: u64, into: &mut ChainSnapshot) {
        SourceDriver::snapshot_state(&mut **self, checkpoint_id, into);
    }
    fn emit_barrier(&mut self, barrier: CheckpointBarrier) {
        SourceDriver::emit_barrier(&mut **self, barrier);
    }
    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) {
        SourceDriver::notify_checkpoint_complete(&mut **self, checkpoint_id);
    }
}

impl Chain for Box<dyn RecordDecoder> {
    fn snapshot_state(&mut self, checkpoint_id: u64, into: &mut ChainSnapshot) {
        RecordDecoder::snapshot_state(&mut **self, checkpoint_id, into);
    }
    fn emit_barrier(&mut self, barrier: CheckpointBarrier) {
        RecordDecoder::emit_barrier(&mut **self, barrier);
    }
    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) {
        RecordDecoder::notify_checkpoint_complete(&mut **self, checkpoint_id);
    }
}

/// A snapshot taken and its barrier forwarded, not acknowledged yet: an unaligned
/// checkpoint waits for every input channel's barrier (its channel state is
/// complete only then).
struct Snapshotted {
    barrier: CheckpointBarrier,
    snapshot: ChainSnapshot,
    /// What the barrier overtook in the task's output subpartitions.
    outputs: Vec<(usize, usize, Vec<ChannelBuffer>)>,
    /// Input channel state recorded so far, by channel.
    inputs: Vec<(usize, Vec<ChannelBuffer>)>,
}

/// Snapshots the chain and sends the barrier downstream: as a priority event that
/// overtakes the queued output (whose copies it keeps) when `unaligned`.
fn snapshot_and_forward(
    chain: &mut dyn Chain,
    ck: &TaskCheckpointing,
    barrier: CheckpointBarrier,
    unaligned: bool,
) -> Snapshotted {
    let mut snapshot = ChainSnapshot::default();
    chain.snapshot_state(barrier.id, &mut snapshot);
    if unaligned {
        ck.output_state.arm(barrier.id);
    }
    chain.emit_barrier(barrier);
    Snapshotted {
        barrier,
        snapshot,
        outputs: ck.output_state.take(),
        inputs: Vec::new(),
    }
}

/// Acknowledges a snapshot with its channel state (if any), stored under
/// [`CHANNEL_STATE_NODE`].
fn acknowledge(ck: &TaskCheckpointing, taken: Snapshotted, timing: BarrierArrival) {
    send_ack(taken, timing, ck.acker());
}

/// Adds the channel state (if any) to the snapshot and sends it with `ack`.
fn send_ack(
    taken: Snapshotted,
    mut timing: BarrierArrival,
    ack: impl FnOnce(u64, ChainSnapshot, BarrierArrival),
) {
    let Snapshotted {
        barrier,
        mut snapshot,
        outputs,
        inputs,
    } = taken;
    let channels = ChannelState { inputs, outputs };
    if !channels.is_empty() {
        let bytes = channels.encode().unwrap_or_else(|e| {
            resume_unwind(Box::new(format!("cannot encode channel state: {e}")))
        });
        tracing::debug!(
            checkpoint = barrier.id,
            bytes = channels.bytes(),
            "channel state of an unaligned checkpoint"
        );
        snapshot.add(CHANNEL_STATE_NODE, bytes);
        timing.persisted_data = channels.bytes() as u64;
    }
    ack(barrier.id, snapshot, timing);
}

/// Snapshots the chain, sends the barrier downstream, acknowledges.
fn take_checkpoint(
    chain: &mut dyn Chain,
    ck: &TaskCheckpointing,
    barrier: CheckpointBarrier,
    unaligned: bool,
    timing: BarrierArrival,
) {
    let taken = snapshot_and_forward(chain, ck, barrier, unaligned);
    acknowledge(ck, taken, timing);
}

/// Snapshots the chain and forwards an aligned barrier; acknowledges at once, or
/// holds the acknowledgement (in the task's `OutputChannelState`) while the barrier
/// may still go unaligned in an output queue: it is sent once every barrier left,
/// at the aligned-checkpoint timeout with what the converted barriers overtook as
/// output channel state (also by a write blocked on a full output, between its
/// waits). A checkpoint held before is acknowledged first, as it is.
fn take_aligned(
    chain: &mut dyn Chain,
    ck: &TaskCheckpointing,
    barrier: CheckpointBarrier,
    timing: BarrierArrival,
) {
    release_held(ck);
    let taken = snapshot_and_forward(chain, ck, barrier, false);
    if ck.timeoutable(barrier) {
        let ack = ck.acker();
        ck.output_state.hold(
            barrier,
            Box::new(move |outputs| {
                let mut taken = taken;
                taken.outputs.extend(outputs);
                send_ack(taken, timing, ack);
            }),
        );
        ck.output_state.resolve_held();
    } else {
        acknowledge(ck, taken, timing);
    }
}

/// Acknowledges the held checkpoint as it is (aligned): a newer checkpoint or the
/// end of the task came first, and its barriers are never converted afterwards.
fn release_held(ck: &TaskCheckpointing) {
    ck.output_state.release_held(Vec::new());
}

/// Snapshots the chain for a savepoint that stops the job without drain, sends its
/// barrier downstream and acknowledges; returns the encoded states, which stay the
/// task's final state (nothing is processed after the barrier).
fn take_stopping_checkpoint(
    chain: &mut dyn Chain,
    ck: &TaskCheckpointing,
    barrier: CheckpointBarrier,
    timing: BarrierArrival,
) -> FinalStates {
    let mut taken = snapshot_and_forward(chain, ck, barrier, false);
    // Encoded here, not by the coordinator: the final state needs the bytes too.
    if let Err((node, e)) = taken.snapshot.materialize() {
        resume_unwind(Box::new(format!(
            "the state of node {node} did not encode: {e}"
        )));
    }
    let states = taken.snapshot.states.clone();
    acknowledge(ck, taken, timing);
    states
}

/// Tells the chain of a checkpoint completed since it last looked.
fn notify_completed(chain: &mut dyn Chain, ck: &mut Option<TaskCheckpointing>) {
    if let Some(id) = ck.as_mut().and_then(TaskCheckpointing::newly_completed) {
        chain.notify_checkpoint_complete(id);
    }
}

/// After the input ended: with checkpoints, reports the final state and waits for a
/// checkpoint that holds it (so that what a two-phase-commit sink wrote last is
/// committed consistently with every other task's state); then tells the chain the
/// final snapshot is complete, which commits what is pending. A task stopped
/// without drain reports the states it took for the savepoint (`stopped`): a new
/// snapshot would let operators emit before it (`prepare_snapshot_pre_barrier`),
/// past the savepoint and after the end of partition.
fn finish(
    chain: &mut dyn Chain,
    ck: Option<&TaskCheckpointing>,
    cancel: &CancelToken,
    stopped: Option<FinalStates>,
) {
    if let Some(ck) = ck {
        let snapshot = match stopped {
            Some(states) => ChainSnapshot {
                states,
                ..ChainSnapshot::default()
            },
            None => {
                let mut snapshot = ChainSnapshot::default();
                chain.snapshot_state(FINAL_SNAPSHOT_ID, &mut snapshot);
                snapshot
            }
        };
        if !ck.finish_and_wait(snapshot, cancel) {
            resume_unwind(Box::new(TaskCancelled));
        }
    }
    chain.notify_checkpoint_complete(FINAL_SNAPSHOT_ID);
}

fn stop_if_cancelled(cancel: &CancelToken) {
    if cancel.is_cancelled() {
        resume_unwind(Box::new(TaskCancelled));
    }
}

fn run_source(
    driver: &mut Box<dyn SourceDriver>,
    flush: &mut FlushClock,
    cancel: &CancelToken,
    stop: &AtomicBool,
    metrics: &TaskMetrics,
    ck: &mut Option<TaskCheckpointing>,
) -> Option<FinalStates> {
    loop {
        stop_if_cancelled(cancel);
        if let Some(ck) = ck.as_mut()
            && let Some(barrier) = ck.new_trigger()
        {
            if barrier.stops_without_drain() {
                // Stopped with a savepoint, without drain: the task ends here.
                release_held(ck);
                let states =
                    take_stopping_checkpoint(driver, ck, barrier, BarrierArrival::default());
                driver.stop_without_drain();
                return Some(states);
            }
            if ck.unaligned_now(barrier) {
                release_held(ck);
                take_checkpoint(driver, ck, barrier, true, BarrierArrival::default());
            } else {
                take_aligned(driver, ck, barrier, BarrierArrival::default());
            }
        }
        if let Some(ck) = ck.as_ref() {
            ck.output_state.resolve_held();
        }
        notify_completed(driver, ck);
        if let Some(ck) = ck.as_ref()
            && ck.config.unaligned
            && !stop.load(Ordering::Relaxed)
            && ck.output_state.output_blocked()
        {
            // Back-pressured: a batch read now would block half-written, and the
            // next barrier with it. Wait here, where triggers are seen.
            driver.flush();
            let started = Instant::now();
            metrics.io.set_waiting(Waiting::Output);
            std::thread::sleep(OUTPUT_WAIT);
            metrics.io.set_waiting(Waiting::Nothing);
            metrics.io.add_back_pressured(started.elapsed());
            continue;
        }
        if stop.load(Ordering::Relaxed) {
            // Stopped with a drain: end the input exactly as if the reader had
            // finished, so end-of-partition follows the last record read.
            break;
        }
        match driver.poll() {
            SourcePoll::MoreAvailable => {}
            SourcePoll::Pending(wait) => {
                // Nothing to read: ship what is buffered rather than wait for a tick.
                driver.poll_pending();
                driver.flush();
                let started = Instant::now();
                metrics.io.set_waiting(Waiting::Input);
                std::thread::sleep(wait.min(MAX_SOURCE_BACKOFF));
                metrics.io.set_waiting(Waiting::Nothing);
                metrics.io.add_idle(started.elapsed());
            }
            SourcePoll::Finished => break,
        }
        if flush.due() {
            flushed(flush, metrics);
            driver.flush();
        }
    }
    if let Some(ck) = ck.as_ref() {
        release_held(ck);
    }
    driver.end_input();
    None
}

/// Applies an alignment step: blocks a channel that delivered the barrier (aligned),
/// or snapshots at once and records channel state (unaligned); acknowledges once
/// every channel delivered the barrier, and lets blocked channels flow again.
/// Returns the states taken when the barrier stops the job without drain.
fn align(
    gate: &mut InputGate,
    decoder: &mut Box<dyn RecordDecoder>,
    ck: Option<&TaskCheckpointing>,
    pending: &mut Option<Snapshotted>,
    alignment: Alignment,
) -> Option<FinalStates> {
    let ck = ck?;
    if alignment.discard {
        gate.discard_channel_state();
        *pending = None;
    }
    if let Some(barrier) = alignment.unaligned_snapshot {
        release_held(ck);
        *pending = Some(snapshot_and_forward(decoder, ck, barrier, true));
    }
    for channel in alignment.record {
        gate.begin_channel_state(channel)
            .unwrap_or_else(gate_failed);
    }
    for channel in alignment.end_record {
        let state = gate.end_channel_state(channel).unwrap_or_else(gate_failed);
        if let Some(p) = pending.as_mut() {
            p.inputs.push((channel, state));
        }
    }
    if let Some(channel) = alignment.block {
        gate.block_channel(channel).unwrap_or_else(gate_failed);
    }
    let mut stopped = None;
    if let Some(barrier) = alignment.aligned {
        match pending.take() {
            Some(taken) if taken.barrier.id == barrier.id => {
                acknowledge(ck, taken, alignment.timing);
            }
            _ if barrier.stops_without_drain() => {
                release_held(ck);
                stopped = Some(take_stopping_checkpoint(
                    decoder,
                    ck,
                    barrier,
                    alignment.timing,
                ));
            }
            _ => take_aligned(decoder, ck, barrier, alignment.timing),
        }
    }
    for channel in alignment.resume {
        gate.resume_channel(channel).unwrap_or_else(gate_failed);
    }
    stopped
}

/// Pulls ahead the aligned barriers received but still queued behind buffers the
/// task has not processed, once their checkpoint is past its aligned-checkpoint
/// timeout (on the job's clock), as Flink does with an announced barrier: each
/// comes next from its channel as a priority barrier, and the buffers it overtook
/// become input channel state. Only with unaligned checkpoints and a timeout (the
/// gate announces barriers then); the check is an atomic load until a barrier
/// is queued.
fn pull_timed_out_barriers(gate: &mut InputGate, ck: &TaskCheckpointing) {
    if !ck.config.unaligned || ck.config.aligned_checkpoint_timeout.is_none() {
        return;
    }
    while let Some((id, timestamp)) = gate.oldest_announced() {
        if !ck.unaligned_now(CheckpointBarrier::new(id, timestamp)) {
            return;
        }
        let channels = gate.convert_announced(id);
        tracing::debug!(
            checkpoint = id,
            channels,
            "aligned barrier timed out in an input queue: pulled ahead unaligned"
        );
    }
}

/// Fails the task on an error of its input gate.
fn gate_failed<T>(e: NetworkError) -> T {
    resume_unwind(Box::new(format!("input gate failed: {e}")))
}

/// Hands one item of the gate to the chain: records to the decoder, watermarks
/// through the valve; barriers and ends of channels are noted in `alignment_input`
/// (at most one per poll: a poll hands out one buffer, and an event is a buffer).
fn on_gate_item(
    item: GateItem<'_>,
    decoder: &mut Box<dyn RecordDecoder>,
    valve: &mut WatermarkValve,
    alignment_input: &mut Option<(usize, Option<(CheckpointBarrier, bool)>)>,
) {
    let advanced = match item {
        GateItem::Records {
            framed, decoded, ..
        } => {
            decoded.set(decoder.decode_framed(framed));
            ValveOutput::default()
        }
        GateItem::Record { bytes, .. } => {
            decoder.decode(bytes);
            ValveOutput::default()
        }
        GateItem::Event {
            channel,
            event: Event::Watermark(ts),
        } => valve.on_watermark(channel, Watermark(ts)),
        GateItem::Event {
            channel,
            event: Event::WatermarkStatus(status),
        } => valve.on_status(channel, status),
        GateItem::Event {
            channel,
            event: Event::EndOfPartition,
        } => {
            *alignment_input = Some((channel, None));
            valve.on_channel_finished(channel)
        }
        GateItem::Event {
            channel,
            event: Event::CheckpointBarrier { id, timestamp },
        } => {
            let barrier = CheckpointBarrier::new(id, timestamp);
            *alignment_input = Some((channel, Some((barrier, false))));
            ValveOutput::default()
        }
        GateItem::Event {
            channel,
            event:
                Event::StopBarrier {
                    id,
                    timestamp,
                    mode,
                },
        } => {
            let barrier = CheckpointBarrier {
                stop: Some(mode),
                ..CheckpointBarrier::new(id, timestamp)
            };
            *alignment_input = Some((channel, Some((barrier, false))));
            ValveOutput::default()
        }
        GateItem::Event {
            channel,
            event: Event::UnalignedBarrier { id, timestamp },
        } => {
            let barrier = CheckpointBarrier::new(id, timestamp);
            *alignment_input = Some((channel, Some((barrier, true))));
            ValveOutput::default()
        }
        GateItem::Event { .. } => ValveOutput::default(),
    };
    advanced.forward_to(&mut **decoder);
}

/// Feeds the channel state of the checkpoint restored from (an unaligned one) to
/// the chain, channel by channel, before any new input.
fn replay_channel_state(
    gate: &mut InputGate,
    decoder: &mut Box<dyn RecordDecoder>,
    valve: &mut WatermarkValve,
    state: &ChannelState,
) {
    let mut ignored = None;
    for channel in 0..gate.num_channels() {
        gate.replay_channel_state(channel, state.input(channel), &mut |item| {
            on_gate_item(item, decoder, valve, &mut ignored)
        })
        .unwrap_or_else(|e| {
            resume_unwind(Box::new(format!("restoring in-flight records failed: {e}")))
        });
        decoder.deliver();
    }
}

/// Publishes the tick a task flushed at (flushes observable in tick counts).
fn flushed(flush: &FlushClock, metrics: &TaskMetrics) {
    metrics.set_flush_ticks(flush.ticks_seen());
}

fn run_network(
    gate: &mut InputGate,
    decoder: &mut Box<dyn RecordDecoder>,
    flush: &mut FlushClock,
    cancel: &CancelToken,
    metrics: &TaskMetrics,
    ck: &mut Option<TaskCheckpointing>,
) -> Option<FinalStates> {
    let mut pending = false;
    let mut valve = WatermarkValve::new(gate.num_channels());
    let mut aligner = ck
        .as_ref()
        .map(|ck| BarrierAligner::new(gate.num_channels(), ck.mode));
    if let Some(state) = ck.as_ref().and_then(|c| c.restored_channels.clone()) {
        replay_channel_state(gate, decoder, &mut valve, &state);
    }
    let mut snapshotted: Option<Snapshotted> = None;
    let mut alignment_input: Option<(usize, Option<(CheckpointBarrier, bool)>)> = None;
    loop {
        stop_if_cancelled(cancel);
        let wait = flush.bound_wait(if pending {
            PENDING_POLL_INTERVAL
        } else {
            POLL_INTERVAL
        });
        let polled = gate.poll_framed(wait, &mut |item| {
            on_gate_item(item, decoder, &mut valve, &mut alignment_input)
        });
        decoder.deliver();
        if let (Some(aligner), Some(ck)) = (&mut aligner, ck.as_ref()) {
            let alignment = match alignment_input.take() {
                Some((channel, Some((barrier, priority)))) => {
                    let unaligned = priority || ck.unaligned_now(barrier);
                    let a = aligner.on_barrier(channel, barrier, unaligned);
                    if priority && a.end_record.is_empty() {
                        gate.clear_overtaken(channel); // a stale barrier's copies
                    }
                    Some(a)
                }
                Some((channel, None)) => Some(aligner.on_channel_finished(channel)),
                // The aligned-checkpoint timeout, on the job's clock.
                None => aligner
                    .aligning()
                    .filter(|&b| ck.unaligned_now(b))
                    .map(|_| aligner.time_out()),
            };
            if let Some(alignment) = alignment
                && let Some(states) = align(gate, decoder, Some(ck), &mut snapshotted, alignment)
            {
                // Stopped with a savepoint, without drain: the task ends here.
                decoder.stop_without_drain();
                read_to_end_after_stop(gate, cancel);
                return Some(states);
            }
            ck.output_state.resolve_held();
            pull_timed_out_barriers(gate, ck);
        }
        notify_completed(decoder, ck);
        pending = decoder.poll_pending();
        if input_ended(polled) {
            break;
        }
        if flush.due_after_wait() {
            flushed(flush, metrics);
            decoder.flush();
        }
    }
    if let Some(ck) = ck.as_ref() {
        release_held(ck);
    }
    decoder.end_input();
    None
}

/// Whether a poll found the input ended; a cancelled or failed gate ends the task.
fn input_ended(polled: Result<GatePoll, NetworkError>) -> bool {
    match polled {
        Ok(GatePoll::Processed) | Ok(GatePoll::Timeout) => false,
        Ok(GatePoll::Finished) => true,
        Ok(GatePoll::Cancelled) | Err(NetworkError::Cancelled) => {
            resume_unwind(Box::new(TaskCancelled))
        }
        Err(e) => resume_unwind(Box::new(format!("input gate failed: {e}"))),
    }
}

/// After a stop without drain: reads the input until every channel ended. Only the
/// ends of partition come after the savepoint's barrier (the producers stopped);
/// nothing read here reaches the chain, so no watermark advances.
fn read_to_end_after_stop(gate: &mut InputGate, cancel: &CancelToken) {
    let mut ignored = 0_u64;
    loop {
        stop_if_cancelled(cancel);
        let polled = gate.poll(POLL_INTERVAL, &mut |item| {
            if !matches!(item, GateItem::Event { .. }) {
                ignored += 1;
            }
        });
        if input_ended(polled) {
            break;
        }
    }
    if ignored > 0 {
        tracing::warn!(
            records = ignored,
            "records arrived after a stop without drain and were dropped"
        );
    }
}
