//! A task: one parallel instance of a job vertex, running its operator chain on its
//! own thread until its input ends, it fails, or the job is cancelled. A stopped job
//! ends its source tasks' input early; the end then flows downstream as usual.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use flink_core::failure::{OperatorFailure, TaskCancelled, panic_message};
use flink_core::node::SourceDriver;
use flink_core::source::SourcePoll;
use flink_core::stream_type::RecordDecoder;
use flink_core::watermark::Watermark;

use crate::flush_timer::FlushClock;
use crate::network::{CancelToken, Event, GateItem, GatePoll, InputGate, NetworkError, Waiting};
use crate::task_metrics::TaskMetrics;
use crate::watermark_valve::WatermarkValve;

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
        match &mut self.input {
            TaskInput::Source(driver) => run_source(
                driver.as_mut(),
                &mut self.flush,
                &self.cancel,
                &self.stop,
                &self.metrics,
            ),
            TaskInput::Network { gate, decoder } => run_network(
                gate,
                decoder.as_mut(),
                &mut self.flush,
                &self.cancel,
                &self.metrics,
            ),
        }
    }
}

fn stop_if_cancelled(cancel: &CancelToken) {
    if cancel.is_cancelled() {
        resume_unwind(Box::new(TaskCancelled));
    }
}

fn run_source(
    driver: &mut dyn SourceDriver,
    flush: &mut FlushClock,
    cancel: &CancelToken,
    stop: &AtomicBool,
    metrics: &TaskMetrics,
) {
    loop {
        stop_if_cancelled(cancel);
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

/// Publishes the tick a task flushed at (flushes observable in tick counts).
fn flushed(flush: &FlushClock, metrics: &TaskMetrics) {
    metrics.set_flush_ticks(flush.ticks_seen());
}

fn run_network(
    gate: &mut InputGate,
    decoder: &mut dyn RecordDecoder,
    flush: &mut FlushClock,
    cancel: &CancelToken,
    metrics: &TaskMetrics,
) {
    let mut pending = false;
    let mut valve = WatermarkValve::new(gate.num_channels());
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
                    None
                }
                GateItem::Record { bytes, .. } => {
                    decoder.decode(bytes);
                    None
                }
                GateItem::Event {
                    channel,
                    event: Event::Watermark(ts),
                } => valve.on_watermark(channel, Watermark(ts)),
                GateItem::Event {
                    channel,
                    event: Event::EndOfPartition,
                } => valve.on_channel_finished(channel),
                GateItem::Event { .. } => None,
            };
            if let Some(watermark) = advanced {
                decoder.watermark(watermark);
            }
        });
        decoder.deliver();
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
