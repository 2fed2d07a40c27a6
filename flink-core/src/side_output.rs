//! Typed side outputs: a second (third, ...) stream an operator can emit into besides
//! its main output, such as dead letters or late records.

use std::any::Any;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::failure::fail_operator;
use crate::functions::Collector;
use crate::output::{AnyOutput, Output};
use crate::timestamped::Timestamped;
use crate::watermark::NO_TIMESTAMP;

/// Names a side output of records of type `T`. Equal ids mean the same side output.
///
/// ```
/// use flink_core::prelude::*;
/// use flink_core::side_output::OutputTag;
///
/// let env = StreamExecutionEnvironment::new();
/// let odd = OutputTag::<u64>::new("odd");
/// let tag = odd.clone();
/// let evens = env.from_sequence(1, 10).transform("Split", move |ctx| {
///     SplitOdd { odd: ctx.side_output(&tag) }
/// });
/// let odds = evens.side_output(&odd).collect_vec();
/// # let _ = (evens, odds);
///
/// struct SplitOdd { odd: flink_core::side_output::SideOutput<u64> }
/// impl flink_core::operator::Operator<u64, u64> for SplitOdd {
///     fn process<C: Collector<u64> + ?Sized>(&mut self, x: u64, out: &mut C) {
///         if x % 2 == 1 { self.odd.collect(x) } else { out.collect(x) }
///     }
/// }
/// ```
pub struct OutputTag<T> {
    id: Arc<str>,
    /// Says why a record was written here, for the error of a dead letter nobody
    /// reads (set by [`dead_letter_tag`](crate::dead_letter::dead_letter_tag)).
    reason: Option<fn(&T) -> String>,
    _type: PhantomData<fn() -> T>,
}

impl<T> OutputTag<T> {
    /// A tag with identifier `id`.
    pub fn new(id: &str) -> Self {
        Self {
            id: id.into(),
            reason: None,
            _type: PhantomData,
        }
    }

    /// A tag whose records say in words why they were written, read by `reason`.
    pub(crate) fn with_reason(id: &str, reason: fn(&T) -> String) -> Self {
        Self {
            reason: Some(reason),
            ..Self::new(id)
        }
    }

    /// The identifier.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether this is the dead-letter side output
    /// ([`DEAD_LETTER_TAG_ID`](crate::dead_letter::DEAD_LETTER_TAG_ID)), which a job
    /// may not leave unread.
    pub fn is_dead_letters(&self) -> bool {
        &*self.id == crate::dead_letter::DEAD_LETTER_TAG_ID
    }
}

impl<T> Clone for OutputTag<T> {
    fn clone(&self) -> Self {
        Self {
            id: self.id.clone(),
            reason: self.reason,
            _type: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for OutputTag<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OutputTag({})", self.id)
    }
}

type Shared<T> = Arc<Mutex<Box<dyn Output<T>>>>;

fn lock<T>(shared: &Shared<T>) -> MutexGuard<'_, Box<dyn Output<T>>> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where an operator writes one side output. Records written to a side output that
/// nothing consumes are counted (see `OperatorSummary::side_output_unconsumed` in the
/// runtime), never silently dropped; a dead letter nobody reads fails the job unless
/// the operator's dead letters were discarded on purpose
/// (`DataStream::discard_dead_letters`), where they are counted as discarded.
pub struct SideOutput<T> {
    target: Target<T>,
}

/// What becomes of the records written to one side output.
enum Target<T> {
    /// A downstream operator reads them.
    Wired(Shared<T>),
    /// A downstream operator reads them from a stream with timestamps: each gets
    /// the timestamp of the record the operator is processing (as in Flink).
    WiredStamped {
        shared: Shared<Timestamped<T>>,
        timestamp: RecordTimestamp,
    },
    /// Nothing reads them: counted (side outputs other than dead letters).
    Counted(Arc<AtomicU64>),
    /// Dead letters the user chose to discard: counted.
    Discarded(Arc<AtomicU64>),
    /// Dead letters nobody reads: the first one fails the operator.
    Refused {
        operator: Arc<str>,
        reason: Option<fn(&T) -> String>,
    },
}

impl<T> Collector<T> for SideOutput<T> {
    fn collect(&mut self, record: T) {
        match &self.target {
            Target::Wired(shared) => lock(shared).collect(record),
            Target::WiredStamped { shared, timestamp } => lock(shared).collect(Timestamped {
                timestamp: timestamp.get(),
                value: record,
            }),
            Target::Counted(count) | Target::Discarded(count) => {
                count.fetch_add(1, Ordering::Relaxed);
            }
            Target::Refused { operator, reason } => {
                let reason = reason.map_or_else(|| "no reason given".to_string(), |r| r(&record));
                fail_operator(operator, unread_dead_letter_message(reason))
            }
        }
    }
}

/// The error of a dead letter that no stream reads.
fn unread_dead_letter_message(reason: String) -> String {
    format!(
        "emitted a dead letter that no stream reads ({reason}); read the operator's dead \
         letters (`stream.dead_letters::<T>()`, or `side_output(&dead_letter_tag::<T>())`) \
         or drop them on purpose with `discard_dead_letters()`"
    )
}

impl<T> SideOutput<T> {
    /// Whether a downstream operator reads this side output.
    pub fn is_consumed(&self) -> bool {
        matches!(self.target, Target::Wired(_) | Target::WiredStamped { .. })
    }
}

/// End-of-input and flush for a side output, without its type.
pub trait SideOutputControl: Send + Sync {
    /// Propagates end of input.
    fn end_input(&self);
    /// Propagates a stop without drain ([`Output::stop_without_drain`]).
    fn stop_without_drain(&self);
    /// Propagates a flush.
    fn flush(&self);
    /// Propagates event-time progress.
    fn emit_watermark(&self, watermark: crate::watermark::Watermark);
    /// Snapshots the operators behind the side output.
    fn snapshot_state(&self, checkpoint_id: u64, into: &mut crate::checkpoint::ChainSnapshot);
    /// Propagates a checkpoint barrier.
    fn emit_barrier(&self, barrier: crate::checkpoint::CheckpointBarrier);
    /// Propagates a completed checkpoint.
    fn notify_checkpoint_complete(&self, checkpoint_id: u64);
}

impl<T: 'static> SideOutputControl for Shared<T> {
    fn end_input(&self) {
        lock(self).end_input();
    }

    fn stop_without_drain(&self) {
        lock(self).stop_without_drain();
    }

    fn flush(&self) {
        lock(self).flush();
    }

    fn emit_watermark(&self, watermark: crate::watermark::Watermark) {
        lock(self).emit_watermark(watermark);
    }

    fn snapshot_state(&self, checkpoint_id: u64, into: &mut crate::checkpoint::ChainSnapshot) {
        lock(self).snapshot_state(checkpoint_id, into);
    }

    fn emit_barrier(&self, barrier: crate::checkpoint::CheckpointBarrier) {
        lock(self).emit_barrier(barrier);
    }

    fn notify_checkpoint_complete(&self, checkpoint_id: u64) {
        lock(self).notify_checkpoint_complete(checkpoint_id);
    }
}

/// One wired side output: the typed target and its control.
pub struct SideSlot {
    typed: Box<dyn Any + Send + Sync>,
    control: Arc<dyn SideOutputControl>,
}

impl SideSlot {
    /// Wraps `out`, an output of `T`.
    pub fn new<T: 'static>(out: AnyOutput) -> Self {
        let shared: Shared<T> = Arc::new(Mutex::new(out.into_typed::<T>()));
        Self {
            control: Arc::new(shared.clone()),
            typed: Box::new(shared),
        }
    }
}

/// The event timestamp of the record an operator instance is processing, shared
/// by the wrapper that knows it ([`Stamped`](crate::operators::Stamped)) with the
/// instance's side outputs, which stamp what they emit into a stream with
/// timestamps with it. [`NO_TIMESTAMP`] outside a record.
#[derive(Clone, Debug)]
pub struct RecordTimestamp(Arc<AtomicI64>);

impl Default for RecordTimestamp {
    fn default() -> Self {
        Self(Arc::new(AtomicI64::new(NO_TIMESTAMP)))
    }
}

impl RecordTimestamp {
    /// The record being processed has `timestamp` ([`NO_TIMESTAMP`]: none).
    #[inline]
    pub fn set(&self, timestamp: i64) {
        self.0.store(timestamp, Ordering::Relaxed);
    }

    /// The current record's timestamp.
    #[inline]
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What happens to dead letters of an operator whose dead-letter side output no
/// stream reads.
#[derive(Clone, Debug, Default)]
pub enum UnreadDeadLetters {
    /// The first one fails the operator (the default: nothing is lost unnoticed).
    #[default]
    Fail,
    /// They are counted into the given counter and dropped
    /// (`DataStream::discard_dead_letters`).
    Discard(Arc<AtomicU64>),
}

/// The side outputs wired to one parallel operator instance, by tag id.
#[derive(Clone, Default)]
pub struct SideOutputs {
    slots: Arc<Mutex<HashMap<String, SideSlot>>>,
    unconsumed: Arc<AtomicU64>,
    operator: Arc<str>,
    unread_dead_letters: UnreadDeadLetters,
    /// What side outputs wired to streams with timestamps stamp records with.
    record_timestamp: RecordTimestamp,
}

impl std::fmt::Debug for SideOutputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        f.debug_struct("SideOutputs")
            .field("tags", &slots.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SideOutputs {
    /// Side outputs counting unconsumed records into `unconsumed`.
    pub fn new(unconsumed: Arc<AtomicU64>) -> Self {
        Self {
            unconsumed,
            ..Self::default()
        }
    }

    /// Says which operator these side outputs belong to (named in errors) and what
    /// becomes of its dead letters if no stream reads them.
    pub fn with_dead_letters(mut self, operator: &str, unread: UnreadDeadLetters) -> Self {
        self.operator = operator.into();
        self.unread_dead_letters = unread;
        self
    }

    /// The current record's timestamp for the side outputs, if any is wired (the
    /// operator's wrapper sets it per record on a stream with timestamps; without
    /// a wired side output there is nothing to set).
    pub fn record_timestamp(&self) -> Option<RecordTimestamp> {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        (!slots.is_empty()).then(|| self.record_timestamp.clone())
    }

    /// Wires `slot` as the side output `id`.
    pub fn insert(&self, id: &str, slot: SideSlot) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.insert(id.to_string(), slot);
    }

    /// The side output named by `tag`.
    ///
    /// # Panics
    /// If the tag's id was wired with another record type: two tags with one id and
    /// different types are a programming error.
    pub fn get<T: 'static>(&self, tag: &OutputTag<T>) -> SideOutput<T> {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let wired = slots.get(tag.id()).map(|slot| {
            if let Some(shared) = slot.typed.downcast_ref::<Shared<T>>() {
                return Target::Wired(shared.clone());
            }
            let shared = slot
                .typed
                .downcast_ref::<Shared<Timestamped<T>>>()
                .unwrap_or_else(|| panic!("side output '{}' has another record type", tag.id()));
            Target::WiredStamped {
                shared: shared.clone(),
                timestamp: self.record_timestamp.clone(),
            }
        });
        let target = match (wired, &self.unread_dead_letters) {
            (Some(wired), _) => wired,
            (None, _) if !tag.is_dead_letters() => Target::Counted(self.unconsumed.clone()),
            (None, UnreadDeadLetters::Discard(count)) => Target::Discarded(count.clone()),
            (None, UnreadDeadLetters::Fail) => Target::Refused {
                operator: self.operator.clone(),
                reason: tag.reason,
            },
        };
        SideOutput { target }
    }

    /// Controls of every wired side output.
    pub fn controls(&self) -> Vec<Arc<dyn SideOutputControl>> {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.values().map(|s| s.control.clone()).collect()
    }
}
