//! The commit of a Kafka reader's offsets once the whole job finished successfully
//! (`KafkaSourceBuilder::commit_offsets`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::offsets::KafkaOffsets;
use super::source_position::PartitionPosition;

/// What a reader leaves for the commit after the job finished (the reader ends
/// with its task, before the downstream tasks do).
#[derive(Default)]
pub(super) struct CommitSlotState {
    /// Its consumer, once it started.
    pub(super) consumer: Option<Arc<BaseConsumer>>,
    /// Its newest position taken for a checkpoint, if any.
    pub(super) checkpointed: Option<Vec<PartitionPosition>>,
}

/// Shared between a reader and its end-of-job action.
pub(super) type CommitSlot = Arc<Mutex<CommitSlotState>>;

/// The end-of-job action of reader `subtask`: commits, for each of its partitions,
/// the offset after every record it handed on, which the finished job wrote. With
/// checkpointing that is the offset of the reader's newest checkpoint position
/// (its final snapshot, or the savepoint it was stopped with): only that one
/// counts what went out when a rate-limited reader held records back, which the
/// offsets read (`offsets`) already passed. Without, the offsets read.
pub(super) fn commit_when_finished(
    slot: CommitSlot,
    offsets: KafkaOffsets,
    subtask: usize,
) -> flink_core::job_hooks::JobFinishedHook {
    Box::new(move || {
        let state = std::mem::take(&mut *slot.lock().unwrap_or_else(|p| p.into_inner()));
        let Some(consumer) = state.consumer else {
            return; // never started: nothing read, nothing to commit
        };
        let read: BTreeMap<(String, i32), i64> = offsets
            .snapshot()
            .into_iter()
            .filter(|(_, p)| p.subtask == subtask)
            .map(|(tp, p)| (tp, p.next_offset))
            .collect();
        let to_commit = match state.checkpointed {
            // Only this reader's partitions (a position taken before it started
            // holds every restored one).
            Some(positions) => positions
                .into_iter()
                .map(|p| ((p.topic, p.partition), p.next_offset))
                .filter(|(tp, _)| read.contains_key(tp))
                .collect(),
            None => read,
        };
        commit(&consumer, subtask, &to_commit);
    })
}

/// Commits `offsets` (next offset by topic and partition) synchronously.
fn commit(consumer: &BaseConsumer, subtask: usize, offsets: &BTreeMap<(String, i32), i64>) {
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), next) in offsets {
        let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(*next));
    }
    if tpl.count() == 0 {
        return;
    }
    match consumer.commit(&tpl, CommitMode::Sync) {
        Ok(()) => tracing::info!(
            subtask,
            partitions = tpl.count(),
            "kafka source: committed the offsets of the finished job"
        ),
        Err(e) => {
            tracing::warn!(subtask, error = %e, "kafka source: committing offsets failed")
        }
    }
}
