//! Exactly-once output through two-phase commit, as Flink's
//! `TwoPhaseCommitSinkFunction`: records go into a transaction; on a checkpoint
//! barrier the transaction is pre-committed and kept in the checkpoint; when the
//! checkpoint completes it is committed; after a restore, the transactions of the
//! restored checkpoint are committed again (commits are idempotent) and whatever was
//! written after it is never committed.
//!
//! [`TransactionalCollectingSink`] is such a sink in memory, for tests and small jobs.

use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{FINAL_SNAPSHOT_ID, decode_state, encode_state};
use crate::operator::RuntimeContext;
use crate::sink::{Sink, SinkError, SinkWriter};

/// One parallel instance of a two-phase-commit sink: it writes into transactions
/// that the runtime pre-commits on a barrier and commits when the checkpoint
/// completes.
pub trait TwoPhaseCommitWriter<T>: Send {
    /// A transaction; it is stored in checkpoints while pre-committed.
    type Transaction: Serialize + DeserializeOwned + Send + 'static;

    /// Opens a transaction.
    ///
    /// # Errors
    /// Fails the job.
    fn begin_transaction(&mut self) -> Result<Self::Transaction, SinkError>;

    /// Writes `record` into `txn`.
    ///
    /// # Errors
    /// Fails the job.
    fn write(&mut self, txn: &mut Self::Transaction, record: T) -> Result<(), SinkError>;

    /// Makes `txn` durable enough to be committed later (flush it); it belongs to
    /// checkpoint `checkpoint_id` ([`FINAL_SNAPSHOT_ID`] at the end of the input).
    ///
    /// # Errors
    /// Fails the checkpoint's task, so the job restarts.
    fn pre_commit(
        &mut self,
        txn: &mut Self::Transaction,
        checkpoint_id: u64,
    ) -> Result<(), SinkError>;

    /// Commits a pre-committed transaction. Must be idempotent: after a restore the
    /// same transaction may be committed again.
    ///
    /// # Errors
    /// Fails the job.
    fn commit(&mut self, txn: Self::Transaction) -> Result<(), SinkError>;

    /// A transaction from a restored checkpoint: by default it is committed (it was
    /// pre-committed, and its checkpoint completed).
    ///
    /// # Errors
    /// Fails the job.
    fn recover_and_commit(&mut self, txn: Self::Transaction) -> Result<(), SinkError> {
        self.commit(txn)
    }
}

/// A two-phase-commit sink: makes one [`TwoPhaseCommitWriter`] per parallel instance.
/// Wrap it in [`TransactionalSink`] to write a stream into it.
pub trait TwoPhaseCommitSink<T>: Send + Sync + 'static {
    /// The writer of one instance.
    type Writer: TwoPhaseCommitWriter<T> + 'static;

    /// Creates the writer of the instance `ctx`.
    fn create_writer(&self, ctx: &RuntimeContext) -> Self::Writer;
}

/// A [`Sink`] made of a [`TwoPhaseCommitSink`]: what `DataStream::sink_to` takes.
///
/// ```
/// use flink_core::prelude::*;
/// use flink_core::transactional::TransactionalSink;
///
/// let env = StreamExecutionEnvironment::new();
/// let out = TransactionalCollectingSink::<u64>::new();
/// env.from_sequence(1, 3).sink_to(TransactionalSink::new(out.clone()));
/// assert!(out.committed().is_empty(), "nothing is committed before the job ran");
/// ```
pub struct TransactionalSink<S>(pub S);

impl<S> TransactionalSink<S> {
    /// Wraps `sink`.
    pub fn new(sink: S) -> Self {
        Self(sink)
    }
}

impl<T: Send + 'static, S: TwoPhaseCommitSink<T>> Sink<T> for TransactionalSink<S> {
    fn create_writer(&self, ctx: &RuntimeContext) -> Box<dyn SinkWriter<T>> {
        transactional_writer(self.0.create_writer(ctx))
    }
}

/// `writer` driven through checkpoints.
fn transactional_writer<T: Send + 'static, W: TwoPhaseCommitWriter<T> + 'static>(
    writer: W,
) -> Box<dyn SinkWriter<T>> {
    Box::new(TransactionalWriter::<T, W> {
        writer,
        current: None,
        pending: Vec::new(),
        _records: std::marker::PhantomData,
    })
}

/// Runs a [`TwoPhaseCommitWriter`]'s transactions through checkpoints.
struct TransactionalWriter<T, W: TwoPhaseCommitWriter<T>> {
    writer: W,
    /// The transaction records are written into.
    current: Option<W::Transaction>,
    /// Pre-committed transactions by checkpoint id, oldest first.
    pending: Vec<(u64, W::Transaction)>,
    _records: std::marker::PhantomData<fn(T)>,
}

impl<T, W: TwoPhaseCommitWriter<T>> TransactionalWriter<T, W> {
    fn pre_commit_current(&mut self, checkpoint_id: u64) -> Result<(), SinkError> {
        if let Some(mut txn) = self.current.take() {
            self.writer.pre_commit(&mut txn, checkpoint_id)?;
            self.pending.push((checkpoint_id, txn));
        }
        Ok(())
    }
}

impl<T: Send, W: TwoPhaseCommitWriter<T>> SinkWriter<T> for TransactionalWriter<T, W> {
    fn write(&mut self, record: T) -> Result<(), SinkError> {
        let txn = match &mut self.current {
            Some(txn) => txn,
            None => self.current.insert(self.writer.begin_transaction()?),
        };
        self.writer.write(txn, record)
    }

    /// The input ended: the last transaction is pre-committed, to be committed with
    /// the checkpoint that follows the end (or at once without checkpoints).
    fn finish(&mut self) -> Result<(), SinkError> {
        self.pre_commit_current(FINAL_SNAPSHOT_ID)
    }

    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<Option<Vec<u8>>, SinkError> {
        self.pre_commit_current(checkpoint_id)?;
        Ok(Some(encode_state(&self.pending)?))
    }

    fn restore_state(&mut self, state: &[u8]) -> Result<(), SinkError> {
        let pending: Vec<(u64, W::Transaction)> = decode_state(state)?;
        for (_, txn) in pending {
            self.writer.recover_and_commit(txn)?;
        }
        Ok(())
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<(), SinkError> {
        // Transactions of this checkpoint and older ones (whose notification may have
        // been missed); FINAL_SNAPSHOT_ID is the largest id, so it commits all.
        let later = self.pending.iter().position(|(id, _)| *id > checkpoint_id);
        let done: Vec<_> = match later {
            Some(i) => self.pending.drain(..i).collect(),
            None => self.pending.drain(..).collect(),
        };
        for (_, txn) in done {
            self.writer.commit(txn)?;
        }
        Ok(())
    }
}

/// What the in-memory transactional sink committed: each transaction's records, by
/// (subtask, checkpoint id, transaction id).
type Committed<T> = BTreeMap<(usize, u64, TransactionId), Vec<T>>;

/// Names one transaction of the in-memory sink: the order it began in this process,
/// then a number drawn once per process (a transaction replayed from a savepoint of
/// another process keeps its name and meets no other).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct TransactionId(u64, u64);

impl TransactionId {
    fn next() -> Self {
        static PROCESS: OnceLock<u64> = OnceLock::new();
        static BEGUN: AtomicU64 = AtomicU64::new(0);
        let process = *PROCESS.get_or_init(|| {
            std::collections::hash_map::RandomState::new().hash_one(std::process::id())
        });
        Self(BEGUN.fetch_add(1, Ordering::Relaxed), process)
    }
}

/// A two-phase-commit sink that commits into memory: the committed records are
/// readable after (and while) the job runs, each committed transaction exactly once
/// however often it is committed. Clones share the committed records.
///
/// ```
/// use flink_core::prelude::*;
/// use flink_core::transactional::TransactionalSink;
///
/// let env = StreamExecutionEnvironment::new();
/// let out = TransactionalCollectingSink::<u64>::new();
/// env.from_sequence(1, 3).sink_to(out.clone());
/// // After `flink_runtime::execute(&env, "job")`, `out.committed()` holds 1, 2, 3.
/// ```
pub struct TransactionalCollectingSink<T> {
    committed: Arc<Mutex<Committed<T>>>,
}

impl<T> Clone for TransactionalCollectingSink<T> {
    fn clone(&self) -> Self {
        Self {
            committed: self.committed.clone(),
        }
    }
}

impl<T> Default for TransactionalCollectingSink<T> {
    fn default() -> Self {
        Self {
            committed: Arc::default(),
        }
    }
}

impl<T: Clone> TransactionalCollectingSink<T> {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every committed record, by subtask, then transaction, then order written.
    pub fn committed(&self) -> Vec<T> {
        self.lock().values().flatten().cloned().collect()
    }

    /// How many transactions were committed.
    pub fn committed_transactions(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, Committed<T>> {
        self.committed.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A transaction of the in-memory sink: its records.
#[derive(Serialize, Deserialize)]
pub struct CollectingTransaction<T> {
    /// The subtask that wrote it (after a rescaled restore another subtask may
    /// commit it; it stays under its writer's name).
    subtask: usize,
    /// Its own name: what makes a second commit of it change nothing.
    id: TransactionId,
    /// The checkpoint it was pre-committed for.
    checkpoint_id: Option<u64>,
    records: Vec<T>,
}

/// The writer of one instance of [`TransactionalCollectingSink`].
pub struct CollectingTransactionWriter<T> {
    subtask: usize,
    committed: Arc<Mutex<Committed<T>>>,
}

impl<T> TwoPhaseCommitWriter<T> for CollectingTransactionWriter<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    type Transaction = CollectingTransaction<T>;

    fn begin_transaction(&mut self) -> Result<Self::Transaction, SinkError> {
        Ok(CollectingTransaction {
            subtask: self.subtask,
            id: TransactionId::next(),
            checkpoint_id: None,
            records: Vec::new(),
        })
    }

    fn write(&mut self, txn: &mut Self::Transaction, record: T) -> Result<(), SinkError> {
        txn.records.push(record);
        Ok(())
    }

    fn pre_commit(
        &mut self,
        txn: &mut Self::Transaction,
        checkpoint_id: u64,
    ) -> Result<(), SinkError> {
        txn.checkpoint_id = Some(checkpoint_id);
        Ok(())
    }

    /// Committing a transaction again (a restore replays the commits of its
    /// checkpoint) changes nothing. Transactions are named by their own id, not by
    /// (subtask, checkpoint id): the final transaction of a subtask that finished is
    /// pre-committed for `FINAL_SNAPSHOT_ID` in every run, so a run restored from a
    /// savepoint taken after that subtask finished commits another transaction under
    /// the same subtask and checkpoint id.
    fn commit(&mut self, txn: Self::Transaction) -> Result<(), SinkError> {
        let checkpoint = txn
            .checkpoint_id
            .ok_or("a transaction was committed without being pre-committed")?;
        let mut committed = self.committed.lock().unwrap_or_else(|p| p.into_inner());
        committed
            .entry((txn.subtask, checkpoint, txn.id))
            .or_insert(txn.records);
        Ok(())
    }
}

impl<T> TwoPhaseCommitSink<T> for TransactionalCollectingSink<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    type Writer = CollectingTransactionWriter<T>;

    fn create_writer(&self, ctx: &RuntimeContext) -> Self::Writer {
        CollectingTransactionWriter {
            subtask: ctx.subtask_index,
            committed: self.committed.clone(),
        }
    }
}

/// The in-memory sink is a [`Sink`] of its own: `stream.sink_to(sink.clone())`.
impl<T> Sink<T> for TransactionalCollectingSink<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    fn create_writer(&self, ctx: &RuntimeContext) -> Box<dyn SinkWriter<T>> {
        transactional_writer(TwoPhaseCommitSink::create_writer(self, ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(sink: &TransactionalCollectingSink<u32>, subtask: usize) -> Box<dyn SinkWriter<u32>> {
        transactional_writer(CollectingTransactionWriter {
            subtask,
            committed: sink.committed.clone(),
        })
    }

    #[test]
    fn commits_on_completion_and_again_on_restore_exactly_once() {
        let sink = TransactionalCollectingSink::new();
        let mut w = writer(&sink, 0);
        w.write(1).unwrap();
        w.write(2).unwrap();
        let chk1 = w.snapshot_state(1).unwrap().unwrap();
        w.write(3).unwrap();
        assert!(
            sink.committed().is_empty(),
            "nothing commits before completion"
        );
        let _chk2 = w.snapshot_state(2).unwrap().unwrap();
        w.notify_checkpoint_complete(1).unwrap();
        assert_eq!(sink.committed(), vec![1, 2]);
        w.write(4).unwrap(); // lost with the failure below: never committed
        // The job fails and restarts from checkpoint 1, whose transaction was
        // committed already: committing it again changes nothing.
        let mut again = writer(&sink, 0);
        again.restore_state(&chk1).unwrap();
        assert_eq!(sink.committed(), vec![1, 2]);
        again.write(3).unwrap();
        again.finish().unwrap();
        again.notify_checkpoint_complete(FINAL_SNAPSHOT_ID).unwrap();
        assert_eq!(sink.committed(), vec![1, 2, 3]);
        assert_eq!(sink.committed_transactions(), 2);
    }

    #[test]
    fn final_transactions_of_two_runs_of_one_subtask_both_commit() {
        let sink = TransactionalCollectingSink::new();
        // The first run's subtask 0 reaches its end before a savepoint.
        let mut first = writer(&sink, 0);
        first.write(1).unwrap();
        first.finish().unwrap();
        let savepoint = first.snapshot_state(3).unwrap().unwrap();
        first.notify_checkpoint_complete(FINAL_SNAPSHOT_ID).unwrap();
        // The run restored from the savepoint replays its commit (a no-op) and its
        // subtask 0 ends too, with a final transaction of its own.
        let mut restored = writer(&sink, 0);
        restored.restore_state(&savepoint).unwrap();
        restored.write(2).unwrap();
        restored.finish().unwrap();
        restored
            .notify_checkpoint_complete(FINAL_SNAPSHOT_ID)
            .unwrap();
        assert_eq!(sink.committed(), vec![1, 2]);
        assert_eq!(sink.committed_transactions(), 2);
    }

    #[test]
    fn a_restored_pending_transaction_is_committed() {
        let sink = TransactionalCollectingSink::new();
        let mut w = writer(&sink, 1);
        w.write(7).unwrap();
        let chk = w.snapshot_state(5).unwrap().unwrap();
        // Checkpoint 5 completed, but the job failed before the notification.
        writer(&sink, 1).restore_state(&chk).unwrap();
        assert_eq!(sink.committed(), vec![7]);
    }
}
