//! A task: one parallel instance of a job vertex, running its operator chain on its
//! own thread until its input ends, it fails, or the job is cancelled. A stopped job
//! ends its source tasks' input early; the end then flows downstream as usual.

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
        let chain: &mut dyn Chain = match &mut self.input {
            TaskInput::Source(driver) => {
                run_source(
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
                run_network(
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
        finish(chain, ck.as_ref(), &self.cancel);
    }
}

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

/// Snapshots the chain, sends the barrier downstream, acknowledges.
fn take_checkpoint(
    chain: &mut dyn Chain,
    ck: &TaskCheckpointing,
    barrier: CheckpointBarrier,
    timing: BarrierArrival,
) {
    let mut snapshot = ChainSnapshot::default();
    chain.snapshot_state(barrier.id, &mut snapshot);
    chain.emit_barrier(barrier);
    ck.ack(barrier.id, snapshot, timing);
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
/// final snapshot is complete, which commits what is pending.
fn finish(chain: &mut dyn Chain, ck: Option<&TaskCheckpointing>, cancel: &CancelToken) {
    if let Some(ck) = ck {
        let mut snapshot = ChainSnapshot::default();
        chain.snapshot_state(FINAL_SNAPSHOT_ID, &mut snapshot);
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
) {
    loop {
        stop_if_cancelled(cancel);
        if let Some(ck) = ck.as_mut()
            && let Some(barrier) = ck.new_trigger()
        {
            take_checkpoint(driver, ck, barrier, BarrierArrival::default());
            if ck.stops_after(barrier.id) {
                // Stopped with a savepoint: nothing is read after its barrier.
                break;
            }
        }
        notify_completed(driver, ck);
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
    driver.end_input();
}

/// Applies an alignment step: blocks a channel that delivered the barrier, takes the
/// checkpoint once all did, and lets the blocked channels flow again.
fn align(
    gate: &mut InputGate,
    decoder: &mut Box<dyn RecordDecoder>,
    ck: Option<&TaskCheckpointing>,
    alignment: Alignment,
) {
    let gate_error = |e: NetworkError| resume_unwind(Box::new(format!("input gate failed: {e}")));
    if let Some(channel) = alignment.block {
        gate.block_channel(channel).unwrap_or_else(gate_error);
    }
    if let (Some(barrier), Some(ck)) = (alignment.aligned, ck) {
        take_checkpoint(decoder, ck, barrier, alignment.timing);
    }
    for channel in alignment.resume {
        gate.resume_channel(channel).unwrap_or_else(gate_error);
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
) {
    let mut pending = false;
    let mut valve = WatermarkValve::new(gate.num_channels());
    let mut aligner = ck
        .as_ref()
        .map(|ck| BarrierAligner::new(gate.num_channels(), ck.mode));
    // At most one per poll: a poll hands out one buffer, and an event is a buffer.
    let mut alignment_input: Option<(usize, Option<CheckpointBarrier>)> = None;
    loop {
        stop_if_cancelled(cancel);
        let wait = flush.bound_wait(if pending {
            PENDING_POLL_INTERVAL
        } else {
            POLL_INTERVAL
        });
        let polled = gate.poll_framed(wait, &mut |item| {
            let advanced = match item {
                GateItem::Records { framed, .. } => {
                    decoder.decode_framed(framed);
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
                    alignment_input = Some((channel, None));
                    valve.on_channel_finished(channel)
                }
                GateItem::Event {
                    channel,
                    event: Event::CheckpointBarrier { id, timestamp },
                } => {
                    alignment_input = Some((channel, Some(CheckpointBarrier { id, timestamp })));
                    ValveOutput::default()
                }
                GateItem::Event { .. } => ValveOutput::default(),
            };
            advanced.forward_to(&mut **decoder);
        });
        decoder.deliver();
        if let (Some(aligner), Some((channel, barrier))) = (&mut aligner, alignment_input.take()) {
            let alignment = match barrier {
                Some(barrier) => aligner.on_barrier(channel, barrier),
                None => aligner.on_channel_finished(channel),
            };
            align(gate, decoder, ck.as_ref(), alignment);
        }
        notify_completed(decoder, ck);
        pending = decoder.poll_pending();
        match polled {
            Ok(GatePoll::Processed) | Ok(GatePoll::Timeout) => {}
            Ok(GatePoll::Finished) => break,
            Ok(GatePoll::Cancelled) | Err(NetworkError::Cancelled) => {
                resume_unwind(Box::new(TaskCancelled))
            }
            Err(e) => resume_unwind(Box::new(format!("input gate failed: {e}"))),
        }
        if flush.due_after_wait() {
            flushed(flush, metrics);
            decoder.flush();
        }
    }
    decoder.end_input();
}
