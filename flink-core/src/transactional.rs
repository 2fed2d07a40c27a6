//! Exactly-once output through two-phase commit, as Flink's
//! `TwoPhaseCommitSinkFunction`: records go into a transaction; on a checkpoint
//! barrier the transaction is pre-committed and kept in the checkpoint; when the
//! checkpoint completes it is committed; after a restore, the transactions of the
//! restored checkpoint are committed again (commits are idempotent) and whatever was
//! written after it is never committed.
//!
//! As in Flink, the next transaction is begun right after the barrier's pre-commit
//! and its handle stored in the checkpoint too, so that a restore can abort it
//! ([`TwoPhaseCommitWriter::recover_and_abort`]) even after the process that
//! opened it died; a writer dropped with a transaction open (the task failed or
//! was cancelled) aborts it ([`TwoPhaseCommitWriter::abort`]).
//!
//! [`TransactionalCollectingSink`] is such a sink in memory, for tests and small jobs.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{FINAL_SNAPSHOT_ID, StateError, decode_state, encode_state};
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

    /// `txn` will never be committed: it was open (begun, not pre-committed) when
    /// the writer was dropped before the end of its input, because the task failed
    /// or the job was cancelled. Undo what it wrote; the records are written again
    /// after the restore. By default nothing is done (what was never committed is
    /// invisible to readers anyway). Called from the writer's drop, which cannot
    /// raise an error: log it in the connector.
    ///
    /// # Errors
    /// Ignored by the caller (see above).
    fn abort(&mut self, txn: Self::Transaction) -> Result<(), SinkError> {
        let _ = txn;
        Ok(())
    }

    /// A transaction from a restored checkpoint that was open there (begun right
    /// after its barrier, not pre-committed): it belongs to no completed
    /// checkpoint and is never committed. Called after the restored checkpoint's
    /// pre-committed transactions were recovered, also after the process that
    /// opened it died. It may have been aborted already ([`abort`](Self::abort)),
    /// or, when an older savepoint is restored, committed by the run that went on
    /// after it: an abort must then change nothing. By default nothing is done.
    ///
    /// # Errors
    /// Fails the job.
    fn recover_and_abort(&mut self, txn: Self::Transaction) -> Result<(), SinkError> {
        let _ = txn;
        Ok(())
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
        finished: false,
        _records: std::marker::PhantomData,
    })
}

/// The first byte of a [`TransactionalState`] of format 2. Format 1 (before the
/// open transaction was stored) is the bare list of pre-committed transactions,
/// whose first byte is its length as a bincode varint: never 255 (a varint's
/// first byte is at most 254), so neither format reads as the other.
const TRANSACTIONAL_STATE_V2: u8 = 255;

/// What a [`TransactionalSink`]'s writer stores in a checkpoint: its pre-committed
/// transactions by checkpoint id, oldest first, and the transaction that was open
/// (begun after the barrier), if any. Connectors that recover transactions before
/// `restore_state` (the Kafka sink does, when its writer is created) read it with
/// [`TransactionalState::decode`].
#[derive(Debug)]
pub struct TransactionalState<Txn> {
    /// Pre-committed transactions by checkpoint id, oldest first.
    pub pending: Vec<(u64, Txn)>,
    /// The transaction open at the checkpoint: never committed.
    pub open: Option<Txn>,
}

impl<Txn: DeserializeOwned> TransactionalState<Txn> {
    /// Reads a writer's state of either format (format 1 has no open transaction).
    ///
    /// # Errors
    /// Bytes of another kind, cut short, or of a newer version.
    pub fn decode(bytes: &[u8]) -> Result<Self, StateError> {
        type V2<Txn> = (u8, Vec<(u64, Txn)>, Option<Txn>);
        match decode_state::<V2<Txn>>(bytes) {
            Ok((TRANSACTIONAL_STATE_V2, pending, open)) => Ok(Self { pending, open }),
            _ => Ok(Self {
                pending: decode_state(bytes)?,
                open: None,
            }),
        }
    }
}

/// Encodes a writer's state in format 2 (see [`TransactionalState`]).
fn encode_transactional_state<Txn: Serialize>(
    pending: &[(u64, Txn)],
    open: Option<&Txn>,
) -> Result<Vec<u8>, StateError> {
    encode_state(&(TRANSACTIONAL_STATE_V2, pending, open))
}

/// Runs a [`TwoPhaseCommitWriter`]'s transactions through checkpoints.
struct TransactionalWriter<T, W: TwoPhaseCommitWriter<T>> {
    writer: W,
    /// The transaction records are written into.
    current: Option<W::Transaction>,
    /// Pre-committed transactions by checkpoint id, oldest first.
    pending: Vec<(u64, W::Transaction)>,
    /// Whether the input ended (or the job stopped): no transaction is begun after.
    finished: bool,
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
        self.finished = true;
        self.pre_commit_current(FINAL_SNAPSHOT_ID)
    }

    /// The job stops right after a savepoint's barrier: the transaction begun after
    /// it holds nothing and never will, so it is aborted rather than committed (a
    /// restore of the savepoint aborts it again, which changes nothing).
    fn stop_without_drain(&mut self) -> Result<(), SinkError> {
        self.finished = true;
        match self.current.take() {
            Some(txn) => self.writer.abort(txn),
            None => Ok(()),
        }
    }

    /// Pre-commits the open transaction, then (unless the input ended) begins the
    /// next one at once, as Flink does, so that the checkpoint can name it: a
    /// restore aborts it.
    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<Option<Vec<u8>>, SinkError> {
        self.pre_commit_current(checkpoint_id)?;
        if !self.finished && self.current.is_none() {
            self.current = Some(self.writer.begin_transaction()?);
        }
        Ok(Some(encode_transactional_state(
            &self.pending,
            self.current.as_ref(),
        )?))
    }

    /// Commits the restored checkpoint's pre-committed transactions, then aborts
    /// the one that was open there.
    fn restore_state(&mut self, state: &[u8]) -> Result<(), SinkError> {
        let restored = TransactionalState::<W::Transaction>::decode(state)?;
        for (_, txn) in restored.pending {
            self.writer.recover_and_commit(txn)?;
        }
        if let Some(txn) = restored.open {
            self.writer.recover_and_abort(txn)?;
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

impl<T, W: TwoPhaseCommitWriter<T>> Drop for TransactionalWriter<T, W> {
    /// Dropped with a transaction open: the task failed or was cancelled before
    /// its input ended, so that transaction is never committed. (Pre-committed
    /// ones are left alone: their checkpoint may still complete, and a restore
    /// commits them.) Best effort: an error is the connector's to log (core has
    /// no logging), and what stays behind is aborted again on restore or cleaned
    /// up by the connector; a panic in `abort` is caught, since this may run while
    /// a panic unwinds, where a second one would abort the process.
    fn drop(&mut self) {
        if let Some(txn) = self.current.take() {
            let writer = &mut self.writer;
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| writer.abort(txn)));
        }
    }
}

/// What the in-memory transactional sink committed: each transaction's records, by
/// (subtask, checkpoint id, transaction id).
type Committed<T> = BTreeMap<(usize, u64, TransactionId), Vec<T>>;

/// The in-memory sink's ledger: what it committed, and how many transactions it
/// began and aborted, so a test can check that each one begun ended one way.
struct Ledger<T> {
    committed: Committed<T>,
    begun: usize,
    aborted: BTreeSet<TransactionId>,
}

impl<T> Default for Ledger<T> {
    fn default() -> Self {
        Self {
            committed: BTreeMap::new(),
            begun: 0,
            aborted: BTreeSet::new(),
        }
    }
}

impl<T> Ledger<T> {
    fn is_committed(&self, id: TransactionId) -> bool {
        self.committed.keys().any(|k| k.2 == id)
    }
}

/// A ledger shared by a sink's clones and writers.
type SharedLedger<T> = Arc<Mutex<Ledger<T>>>;

fn lock<T>(ledger: &SharedLedger<T>) -> MutexGuard<'_, Ledger<T>> {
    ledger.lock().unwrap_or_else(|p| p.into_inner())
}

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
/// however often it is committed. It also keeps a ledger of the transactions it
/// began and aborted. Clones share the committed records and the ledger.
///
/// A restored job commits its checkpoint's transactions again, a savepoint's too
/// (even after the run stopped with it committed them): restore it into a clone of
/// the same sink, as a real job writes into the same destination; a new sink takes
/// those records as new ones.
///
/// ```
/// use flink_core::prelude::*;
/// use flink_core::transactional::TransactionalSink;
///
/// let env = StreamExecutionEnvironment::new();
/// let out = TransactionalCollectingSink::<u64>::new();
/// env.from_sequence(1, 3).sink_to(out.clone());
/// // After `flink_runtime::execute(&env, "job")`, `out.committed()` holds 1, 2, 3.
/// assert_eq!((out.begun_transactions(), out.aborted_transactions()), (0, 0));
/// ```
pub struct TransactionalCollectingSink<T> {
    ledger: SharedLedger<T>,
}

impl<T> Clone for TransactionalCollectingSink<T> {
    fn clone(&self) -> Self {
        Self {
            ledger: self.ledger.clone(),
        }
    }
}

impl<T> Default for TransactionalCollectingSink<T> {
    fn default() -> Self {
        Self {
            ledger: Arc::default(),
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
        lock(&self.ledger)
            .committed
            .values()
            .flatten()
            .cloned()
            .collect()
    }

    /// How many transactions were committed (empty ones too: a writer begins its
    /// next transaction on every barrier).
    pub fn committed_transactions(&self) -> usize {
        lock(&self.ledger).committed.len()
    }

    /// How many transactions the writers began.
    pub fn begun_transactions(&self) -> usize {
        lock(&self.ledger).begun
    }

    /// How many transactions were aborted (each counted once, however often it
    /// was aborted). One never both commits and aborts: a commit of an aborted
    /// transaction is an error, an abort of a committed one changes nothing.
    pub fn aborted_transactions(&self) -> usize {
        lock(&self.ledger).aborted.len()
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
    ledger: SharedLedger<T>,
}

impl<T> CollectingTransactionWriter<T> {
    /// Records `id` as aborted, unless it was committed (which cannot be undone;
    /// a restore of an older savepoint aborts what the run after it committed).
    fn record_abort(&self, id: TransactionId) {
        let mut ledger = lock(&self.ledger);
        if !ledger.is_committed(id) {
            ledger.aborted.insert(id);
        }
    }
}

impl<T> TwoPhaseCommitWriter<T> for CollectingTransactionWriter<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    type Transaction = CollectingTransaction<T>;

    fn begin_transaction(&mut self) -> Result<Self::Transaction, SinkError> {
        lock(&self.ledger).begun += 1;
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
        let mut ledger = lock(&self.ledger);
        if ledger.aborted.contains(&txn.id) {
            return Err("a transaction was committed after it was aborted".into());
        }
        ledger
            .committed
            .entry((txn.subtask, checkpoint, txn.id))
            .or_insert(txn.records);
        Ok(())
    }

    /// Its records are dropped; the ledger counts it.
    fn abort(&mut self, txn: Self::Transaction) -> Result<(), SinkError> {
        self.record_abort(txn.id);
        Ok(())
    }

    /// As [`abort`](Self::abort): the restored handle names the transaction.
    fn recover_and_abort(&mut self, txn: Self::Transaction) -> Result<(), SinkError> {
        self.record_abort(txn.id);
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
            ledger: self.ledger.clone(),
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
            ledger: sink.ledger.clone(),
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
    fn the_transaction_open_at_a_checkpoint_is_aborted_on_its_restore_and_each_ends_once() {
        let sink = TransactionalCollectingSink::new();
        let mut w = writer(&sink, 0);
        w.write(1).unwrap(); // begins A
        let chk1 = w.snapshot_state(1).unwrap().unwrap(); // pre-commits A, begins B
        assert_eq!(
            sink.begun_transactions(),
            2,
            "the next one begins at the barrier"
        );
        w.write(2).unwrap(); // into B
        w.notify_checkpoint_complete(1).unwrap(); // commits A
        // The task fails: its writer is dropped with B open.
        drop(w);
        assert_eq!(sink.aborted_transactions(), 1);
        // The restore of checkpoint 1 commits A again (no-op) and aborts B again
        // (no-op): the checkpoint named B as open.
        let mut again = writer(&sink, 0);
        again.restore_state(&chk1).unwrap();
        assert_eq!(sink.aborted_transactions(), 1, "B is counted once");
        again.write(2).unwrap(); // begins C
        again.finish().unwrap();
        again.notify_checkpoint_complete(FINAL_SNAPSHOT_ID).unwrap();
        drop(again);
        assert_eq!(sink.committed(), vec![1, 2]);
        assert_eq!(
            (
                sink.begun_transactions(),
                sink.committed_transactions(),
                sink.aborted_transactions()
            ),
            (3, 2, 1),
            "A and C committed, B aborted"
        );
    }

    #[test]
    fn a_restore_after_a_crash_aborts_the_open_transaction_it_never_saw_end() {
        let sink = TransactionalCollectingSink::new();
        let mut w = writer(&sink, 0);
        w.write(1).unwrap();
        let chk1 = w.snapshot_state(1).unwrap().unwrap();
        w.write(2).unwrap();
        // The process dies: no drop, no abort.
        std::mem::forget(w);
        assert_eq!(sink.aborted_transactions(), 0);
        let mut again = writer(&sink, 0);
        again.restore_state(&chk1).unwrap();
        assert_eq!(sink.committed(), vec![1], "checkpoint 1's transaction");
        assert_eq!(
            sink.aborted_transactions(),
            1,
            "the one open at checkpoint 1"
        );
    }

    #[test]
    fn a_stop_without_drain_aborts_the_empty_transaction_begun_after_the_savepoint() {
        let sink = TransactionalCollectingSink::new();
        let mut w = writer(&sink, 0);
        w.write(1).unwrap();
        let savepoint = w.snapshot_state(4).unwrap().unwrap();
        w.stop_without_drain().unwrap();
        w.notify_checkpoint_complete(4).unwrap();
        drop(w);
        assert_eq!(sink.committed(), vec![1]);
        assert_eq!(
            (sink.begun_transactions(), sink.aborted_transactions()),
            (2, 1)
        );
        // Restoring the savepoint aborts it again: nothing changes.
        writer(&sink, 0).restore_state(&savepoint).unwrap();
        assert_eq!(
            (sink.committed_transactions(), sink.aborted_transactions()),
            (1, 1)
        );
    }

    #[test]
    fn a_state_of_the_format_without_the_open_transaction_still_restores() {
        let sink = TransactionalCollectingSink::<u32>::new();
        let old = vec![(
            3u64,
            CollectingTransaction {
                subtask: 0,
                id: TransactionId::next(),
                checkpoint_id: Some(3),
                records: vec![5u32, 6],
            },
        )];
        let bytes = encode_state(&old).unwrap();
        writer(&sink, 0).restore_state(&bytes).unwrap();
        assert_eq!(sink.committed(), vec![5, 6]);
        assert_eq!(sink.aborted_transactions(), 0);
        let decoded = TransactionalState::<CollectingTransaction<u32>>::decode(&bytes).unwrap();
        assert_eq!((decoded.pending.len(), decoded.open.is_some()), (1, false));
    }

    #[test]
    fn committing_an_aborted_transaction_is_an_error_and_aborting_a_committed_one_is_not() {
        let sink = TransactionalCollectingSink::<u32>::new();
        let mut w = CollectingTransactionWriter {
            subtask: 0,
            ledger: sink.ledger.clone(),
        };
        let mut a = w.begin_transaction().unwrap();
        w.pre_commit(&mut a, 1).unwrap();
        let id = a.id;
        w.abort(a).unwrap();
        let replayed = CollectingTransaction {
            subtask: 0,
            id,
            checkpoint_id: Some(1),
            records: vec![1],
        };
        assert!(w.commit(replayed).is_err());
        let mut b = w.begin_transaction().unwrap();
        w.pre_commit(&mut b, 2).unwrap();
        let b_id = b.id;
        w.commit(b).unwrap();
        w.recover_and_abort(CollectingTransaction {
            subtask: 0,
            id: b_id,
            checkpoint_id: None,
            records: Vec::new(),
        })
        .unwrap();
        assert_eq!(
            (sink.committed_transactions(), sink.aborted_transactions()),
            (1, 1)
        );
    }

    /// Why a job restored from a savepoint must write into the same destination
    /// (the same sink's clones) to be exactly once: the restore commits the
    /// savepoint's transactions again, and only the ledger that committed them
    /// knows them; another one takes their records as new.
    #[test]
    fn a_restore_into_another_sink_commits_the_restored_transactions_there_too() {
        let first = TransactionalCollectingSink::new();
        let mut w = writer(&first, 0);
        w.write(1).unwrap();
        let savepoint = w.snapshot_state(2).unwrap().unwrap();
        w.notify_checkpoint_complete(2).unwrap();
        assert_eq!(first.committed(), vec![1]);
        // Into the same sink: changes nothing.
        writer(&first, 0).restore_state(&savepoint).unwrap();
        assert_eq!(
            (first.committed(), first.committed_transactions()),
            (vec![1], 1)
        );
        // Into a fresh sink: the savepoint's transaction is committed there too.
        let second = TransactionalCollectingSink::new();
        writer(&second, 0).restore_state(&savepoint).unwrap();
        assert_eq!(second.committed(), vec![1]);
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
