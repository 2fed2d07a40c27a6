//! What a graph node runs, with its types erased: factories the runtime calls once per
//! parallel instance to build a chain of typed operators.

use std::any::Any;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::checkpoint::{ChainSnapshot, CheckpointBarrier};
use crate::failure::{attribute_panics, fail_operator};
use crate::metrics::Counter;
use crate::operator::{Chained, Operator, RuntimeContext};
use crate::output::{AnyOutput, Output};
use crate::partitioner::{PartitionKind, Partitioner};
use crate::side_output::SideOutputControl;
use crate::source::{Boundedness, Source, SourceOutput, SourcePoll};
use crate::stream_type::Record;
use crate::watermark::WatermarkStatus;

/// How a node may be chained with its neighbours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ChainingStrategy {
    /// Chain with upstream and downstream where the rules allow.
    Always,
    /// Never chain (`disable_chaining`).
    Never,
    /// Start a new chain here, but let downstream chain to it (`start_new_chain`).
    Head,
}

/// Drives one parallel source instance: polls its reader into the chain.
pub trait SourceDriver: Send {
    /// Emits a batch.
    fn poll(&mut self) -> SourcePoll;
    /// The reader finished: propagate end of input down the chain.
    fn end_input(&mut self);
    /// The job stops without drain after a savepoint's barrier: ends the chain
    /// without end-of-input work ([`Output::stop_without_drain`]).
    fn stop_without_drain(&mut self);
    /// Flush partial network buffers down the chain.
    fn flush(&mut self);
    /// Lets the chain emit results ready without input; true if work is pending.
    fn poll_pending(&mut self) -> bool;
    /// Snapshots the reader's position and the chain's state (between two polls).
    fn snapshot_state(&mut self, checkpoint_id: u64, into: &mut ChainSnapshot);
    /// Sends `barrier` downstream after the records read so far.
    fn emit_barrier(&mut self, barrier: CheckpointBarrier);
    /// Checkpoint `checkpoint_id` completed.
    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64);
}

/// Builds the parallel instances of a source node.
pub trait SourceFactory: Send + Sync {
    /// Bounded or not.
    fn boundedness(&self) -> Boundedness;
    /// Whether more than one instance may run.
    fn is_parallel(&self) -> bool;
    /// Whether it restores positions saved at another parallelism
    /// ([`Source::can_restore_rescaled`]).
    fn can_restore_rescaled(&self) -> bool;
    /// What can be checked before the job runs ([`Source::validate`]).
    ///
    /// # Errors
    /// Why the source cannot work.
    fn validate(&self) -> Result<(), String>;
    /// One instance, emitting into `out` (an output of the node's record type).
    fn create(&self, ctx: &RuntimeContext, out: AnyOutput) -> Box<dyn SourceDriver>;
}

/// Builds the parallel instances of an operator node.
pub trait OperatorFactory: Send + Sync {
    /// One instance emitting into `out`; returns the instance as an output of the
    /// node's input type.
    fn create(&self, ctx: &RuntimeContext, out: AnyOutput) -> AnyOutput;
}

/// What a node runs.
#[derive(Clone)]
pub enum NodeKind {
    /// A source: no inputs.
    Source(Arc<dyn SourceFactory>),
    /// An operator with one logical input (possibly fed by several edges).
    Operator(Arc<dyn OperatorFactory>),
}

/// The partitioner of an edge, erased: `Partitioner<T>` for the edge's record type.
#[derive(Clone)]
pub struct EdgePartitioner {
    /// The kind, for plans and chaining.
    pub kind: PartitionKind,
    /// Whether the user asked for it (an implicit edge becomes rebalance when the
    /// parallelism changes, as in Flink).
    pub explicit: bool,
    /// The typed partitioner.
    pub typed: Arc<dyn Any + Send + Sync>,
}

impl EdgePartitioner {
    /// Erases `partitioner`.
    pub fn new<T: 'static>(partitioner: Partitioner<T>, explicit: bool) -> Self {
        Self {
            kind: partitioner.kind(),
            explicit,
            typed: Arc::new(partitioner),
        }
    }
}

pub(crate) struct SourceNode<T> {
    pub(crate) source: Arc<dyn Source<T>>,
}

impl<T: Record> SourceFactory for SourceNode<T> {
    fn boundedness(&self) -> Boundedness {
        self.source.boundedness()
    }

    fn is_parallel(&self) -> bool {
        self.source.is_parallel()
    }

    fn can_restore_rescaled(&self) -> bool {
        self.source.can_restore_rescaled()
    }

    fn validate(&self) -> Result<(), String> {
        self.source.validate()
    }

    fn create(&self, ctx: &RuntimeContext, out: AnyOutput) -> Box<dyn SourceDriver> {
        let mut reader = self.source.create_reader(ctx);
        let saved_parallelism = ctx.restored.by_subtask.len();
        let restored = if saved_parallelism == 0 || saved_parallelism == ctx.parallelism {
            ctx.restored
                .own(ctx.subtask_index)
                .map(|position| {
                    attribute_panics(&ctx.operator_name, || reader.restore_position(position))
                })
                .transpose()
        } else {
            // Saved at another parallelism: saved subtask j goes to reader j % p.
            let positions: Vec<&[u8]> = crate::source::dealt_to(
                ctx.restored.by_subtask.iter(),
                ctx.subtask_index,
                ctx.parallelism,
            )
            .filter_map(|s| s.as_deref())
            .collect();
            attribute_panics(&ctx.operator_name, || reader.restore_rescaled(&positions)).map(Some)
        };
        if let Err(e) = restored {
            fail_operator(
                &ctx.operator_name,
                format!("cannot restore the source position: {e}"),
            );
        }
        Box::new(TypedSourceDriver {
            reader,
            node_id: ctx.node_id,
            out: out.into_typed::<T>(),
            batch: SourceOutput::new(),
            records_out: Counter::new(ctx.metrics.records_out.clone()),
            name: ctx.operator_name.clone(),
            side_outputs: ctx.side_outputs.controls(),
        })
    }
}

struct TypedSourceDriver<T> {
    reader: Box<dyn crate::source::SourceReader<T>>,
    node_id: usize,
    out: Box<dyn Output<T>>,
    batch: SourceOutput<T>,
    records_out: Counter,
    name: Arc<str>,
    side_outputs: Vec<Arc<dyn SideOutputControl>>,
}

impl<T: Record> SourceDriver for TypedSourceDriver<T> {
    fn poll(&mut self) -> SourcePoll {
        let (reader, batch) = (&mut self.reader, &mut self.batch);
        let status = attribute_panics(&self.name, || reader.poll_next(batch));
        // A reader's own watermarks: Active before the records, Idle and the
        // watermark after them.
        let watermark_status = self.batch.take_watermark_status();
        if watermark_status == Some(WatermarkStatus::Active) {
            self.out.emit_watermark_status(WatermarkStatus::Active);
        }
        if !self.batch.batch.is_empty() {
            self.records_out.add(self.batch.batch.len() as u64);
            self.out.collect_batch(&mut self.batch.batch);
        }
        if let Some(watermark) = self.batch.take_watermark() {
            self.out.emit_watermark(watermark);
        }
        if watermark_status == Some(WatermarkStatus::Idle) {
            self.out.emit_watermark_status(WatermarkStatus::Idle);
        }
        status
    }

    fn end_input(&mut self) {
        self.out.end_input();
        for side in &self.side_outputs {
            side.end_input();
        }
    }

    fn stop_without_drain(&mut self) {
        self.out.stop_without_drain();
        for side in &self.side_outputs {
            side.stop_without_drain();
        }
    }

    fn flush(&mut self) {
        self.out.flush();
        for side in &self.side_outputs {
            side.flush();
        }
    }

    fn poll_pending(&mut self) -> bool {
        self.out.poll_pending()
    }

    fn snapshot_state(&mut self, checkpoint_id: u64, into: &mut ChainSnapshot) {
        let reader = &mut self.reader;
        match attribute_panics(&self.name, || {
            reader.snapshot_position_for_checkpoint(checkpoint_id)
        }) {
            Ok(Some(position)) => into.add(self.node_id, position),
            Ok(None) => {}
            Err(e) => fail_operator(
                &self.name,
                format!("cannot snapshot the source position: {e}"),
            ),
        }
        self.out.snapshot_state(checkpoint_id, into);
        for side in &self.side_outputs {
            side.snapshot_state(checkpoint_id, into);
        }
    }

    fn emit_barrier(&mut self, barrier: CheckpointBarrier) {
        self.out.emit_barrier(barrier);
        for side in &self.side_outputs {
            side.emit_barrier(barrier);
        }
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) {
        let reader = &mut self.reader;
        attribute_panics(&self.name, || {
            reader.notify_checkpoint_complete(checkpoint_id);
        });
        self.out.notify_checkpoint_complete(checkpoint_id);
        for side in &self.side_outputs {
            side.notify_checkpoint_complete(checkpoint_id);
        }
    }
}

/// An operator node made from a per-instance constructor.
pub(crate) struct OperatorNode<I, O, Op, Make> {
    make: Make,
    _types: PhantomData<fn(I, Op) -> O>,
}

impl<I, O, Op, Make> OperatorNode<I, O, Op, Make> {
    pub(crate) fn new(make: Make) -> Self {
        Self {
            make,
            _types: PhantomData,
        }
    }
}

impl<I, O, Op, Make> OperatorFactory for OperatorNode<I, O, Op, Make>
where
    I: 'static,
    O: Send + 'static,
    Op: Operator<I, O>,
    Make: Fn(&RuntimeContext) -> Op + Send + Sync,
{
    fn create(&self, ctx: &RuntimeContext, out: AnyOutput) -> AnyOutput {
        let op = (self.make)(ctx);
        AnyOutput::new::<I>(Box::new(Chained::new(op, out.into_typed::<O>(), ctx)))
    }
}
