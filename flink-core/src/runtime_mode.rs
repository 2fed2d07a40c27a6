//! [`RuntimeMode`]: whether a job runs as an unbounded stream or as a bounded batch
//! (Flink's `RuntimeExecutionMode`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::GraphError;
use crate::node::NodeKind;
use crate::source::Boundedness;

/// How a job executes (set with
/// [`StreamExecutionEnvironment::set_runtime_mode`](crate::environment::StreamExecutionEnvironment::set_runtime_mode)).
///
/// In [`Batch`](Self::Batch) mode keyed `reduce`, `sum`, `min`, `max`, `min_by`,
/// `max_by` and `count` emit one final result per key when their input ends,
/// instead of a running result per record; every other operator behaves as in
/// streaming. A batch job needs every source bounded: an unbounded one is a
/// [`GraphError::UnboundedSourceInBatchMode`]
/// when the job is built.
///
/// ```
/// use flink_core::prelude::*;
///
/// let env = StreamExecutionEnvironment::new();
/// env.set_runtime_mode(RuntimeMode::Batch);
/// let words = env.from_collection(["to", "be", "or", "not", "to", "be"].map(String::from).to_vec());
/// // One (word, count) per word: (to, 2), (be, 2), (or, 1), (not, 1).
/// let counts = words.key_by(|w: &String| w.clone()).count().collect_vec();
/// # let _ = counts;
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RuntimeMode {
    /// Unbounded execution: running results per record (the default, as in Flink).
    #[default]
    Streaming,
    /// Bounded execution: final results per key at the end of input.
    Batch,
    /// Batch if every source is bounded, streaming otherwise.
    Automatic,
}

/// The mode a job resolved to when it was built, shared with the operators created
/// from it (they are described before the mode is known).
#[derive(Debug, Clone, Default)]
pub(crate) struct ResolvedMode(Arc<AtomicBool>);

impl ResolvedMode {
    /// Records whether the job runs as a batch.
    pub(crate) fn set_batch(&self, batch: bool) {
        self.0.store(batch, Ordering::Release);
    }

    /// Whether the job runs as a batch.
    pub(crate) fn is_batch(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Resolves the mode of the job `b` describes and tells its operators.
///
/// # Errors
/// [`GraphError::UnboundedSourceInBatchMode`] for batch mode with an unbounded
/// source.
pub(crate) fn resolve(b: &crate::environment::Builder) -> Result<RuntimeMode, GraphError> {
    let unbounded = b.nodes.iter().find(|n| match &n.kind {
        NodeKind::Source(source) => source.boundedness() == Boundedness::Unbounded,
        NodeKind::Operator(_) => false,
    });
    let resolved = match (b.runtime_mode, unbounded) {
        (RuntimeMode::Batch, Some(source)) => {
            return Err(GraphError::UnboundedSourceInBatchMode {
                operator: source.name.clone(),
            });
        }
        (RuntimeMode::Streaming, _) | (RuntimeMode::Automatic, Some(_)) => RuntimeMode::Streaming,
        (RuntimeMode::Batch | RuntimeMode::Automatic, None) => RuntimeMode::Batch,
    };
    b.resolved_mode.set_batch(resolved == RuntimeMode::Batch);
    Ok(resolved)
}
