//! The exactly-once Kafka sink: a [`TwoPhaseCommitWriter`] with one transactional
//! producer per transaction, as Flink's `KafkaSink` with
//! `DeliveryGuarantee.EXACTLY_ONCE`.
//!
//! - **Ids.** Writer `s` of an attempt that restored checkpoint `r` (0 for a fresh
//!   start) names its transactions `<prefix>-<s>-<r>-<n>`, `n = 0, 1, ..`: a
//!   transaction stays open from the barrier that pre-commits it until its
//!   checkpoint completes while the next one takes records, and a librdkafka
//!   producer has one transaction at a time. Each producer is made (and its id
//!   initialized with `init_transactions`, ~100 ms) on a helper thread ahead of
//!   need, while the previous transaction takes records.
//! - Pre-commit (on the barrier) flushes the transaction: every record is
//!   acknowledged by the broker. Commit (on completion) is `commit_transaction`; the
//!   producer is then dropped.
//! - **Restore.** A restored checkpoint's pre-committed transactions are committed
//!   through their coordinator with the producer id and epoch it reports for the
//!   stored id (`DescribeTransactions`, `EndTxn`; see `txn_recovery`), so also after
//!   the process that opened them died. Transactions with this writer's ids that are
//!   still open and not in the restored checkpoint belong to checkpoints that never
//!   completed: they are found with `ListTransactions` and aborted by fencing
//!   their ids (`InitProducerId`, which also refuses the dead producer's late
//!   requests).
//!   Both happen when the writer is created, before it takes records.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use flink_core::operator::RuntimeContext;
use flink_core::sink::SinkError;
use flink_core::transactional::{TransactionalState, TwoPhaseCommitSink, TwoPhaseCommitWriter};
use rdkafka::producer::{BaseProducer, Producer};
use serde::{Deserialize, Serialize};

use super::error::KafkaConnectorError;
use super::sink::{KafkaWriter, Reports, SinkConfig, create_producer};
use super::test_hooks;
use super::txn_coordinator::TxnCoordinators;
use super::txn_recovery::{Recovered, abort_lingering, commit_recovered, subtask_of};

/// How long transaction requests (init, commit) may take.
const TXN_TIMEOUT: Duration = Duration::from_secs(30);
/// How many producers are made ahead of need: initializing one takes ~100 ms to
/// ~300 ms (more on a busy machine), longer than a short checkpoint interval.
const SPARES: usize = 2;

/// A Kafka transaction, as stored in a checkpoint while pre-committed (the same
/// shape as the pool-based sink of earlier versions stored, so their checkpoints
/// restore too).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KafkaTransaction {
    /// The producer's transactional id.
    transactional_id: String,
    /// The checkpoint it was pre-committed for.
    checkpoint_id: Option<u64>,
}

/// The two-phase-commit sink behind `KafkaSink` with exactly once.
pub(super) struct ExactlyOnceKafka<T> {
    pub(super) config: Arc<SinkConfig<T>>,
}

impl<T: Send + 'static> TwoPhaseCommitSink<T> for ExactlyOnceKafka<T> {
    type Writer = KafkaTransactionWriter<T>;

    fn create_writer(&self, ctx: &RuntimeContext) -> Self::Writer {
        let prefix = self
            .config
            .transactional_id_prefix
            .clone()
            .expect("checked by the builder");
        let restored = ctx.restored.checkpoint_id.unwrap_or(0);
        let mut writer = KafkaTransactionWriter {
            config: self.config.clone(),
            ctx: ctx.clone(),
            id_base: format!("{prefix}-{}-{restored}-", ctx.subtask_index),
            prefix,
            next: 0,
            spares: VecDeque::new(),
            open: Vec::new(),
            coordinators: TxnCoordinators::new(&self.config.bootstrap),
            recovered: HashSet::new(),
        };
        if let Err(e) = writer.start() {
            tracing::error!(error = %e, "kafka sink: the exactly-once writer cannot start");
            flink_core::failure::fail_operator(&ctx.operator_name, e.to_string());
        }
        writer
    }
}

/// A transactional producer made ahead of need: its id and the producer, or why it
/// could not be made.
type Spare = JoinHandle<Result<(String, BaseProducer<Reports>), KafkaConnectorError>>;

/// The writer of one exactly-once Kafka sink instance.
pub struct KafkaTransactionWriter<T> {
    config: Arc<SinkConfig<T>>,
    ctx: RuntimeContext,
    /// The transactional id prefix.
    prefix: String,
    /// `<prefix>-<subtask>-<restored checkpoint>-`: this attempt's ids are it and a
    /// number.
    id_base: String,
    /// The number of the next id.
    next: u64,
    /// The producers of the next transactions, oldest first, being made.
    spares: VecDeque<Spare>,
    /// The producers of this writer's transactions not committed yet, by id.
    open: Vec<(String, KafkaWriter<T>)>,
    coordinators: TxnCoordinators,
    /// Ids of restored transactions committed (or found committed) already.
    recovered: HashSet<String>,
}

impl<T: 'static> KafkaTransactionWriter<T> {
    /// Commits the restored checkpoint's transactions that this instance recovers,
    /// aborts its lingering ones and starts making the first producer.
    fn start(&mut self) -> Result<(), KafkaConnectorError> {
        for (checkpoint, txn) in self.restored_transactions()? {
            tracing::debug!(checkpoint, id = %txn.transactional_id, "kafka sink: restored");
            self.recover(&txn)?;
        }
        let (s, p) = (self.ctx.subtask_index, self.ctx.parallelism.max(1));
        let prefix = format!("{}-", self.prefix);
        for (id, _) in self.coordinators.ongoing(&prefix)? {
            // The instance that restores subtask j's state (j % p) settles j's ids.
            let mine = subtask_of(&self.prefix, &id).is_some_and(|j| j % p == s);
            if mine && !self.recovered.contains(&id) {
                abort_lingering(&mut self.coordinators, &id)?;
            }
        }
        while self.spares.len() < SPARES {
            self.make_spare();
        }
        Ok(())
    }

    /// The pre-committed transactions in the restored checkpoint that this instance
    /// recovers: saved subtask `j`'s go to instance `j % p`, as the sink operator
    /// hands them to `restore_state` (which then finds them committed).
    fn restored_transactions(&self) -> Result<Vec<(u64, KafkaTransaction)>, KafkaConnectorError> {
        let restored = &self.ctx.restored;
        let (s, p) = (self.ctx.subtask_index, self.ctx.parallelism.max(1));
        let mut all = Vec::new();
        for (j, state) in restored.by_subtask.iter().enumerate() {
            let Some(state) = state.as_deref().filter(|_| j % p == s) else {
                continue;
            };
            // The transaction open at the checkpoint is not recovered: it is one of
            // this writer's ids still open, aborted by fencing below.
            let restored = TransactionalState::<KafkaTransaction>::decode(state)
                .map_err(|e| KafkaConnectorError::Invalid(format!("restored state: {e}")))?;
            all.extend(restored.pending);
        }
        Ok(all)
    }

    /// Commits a restored transaction through its coordinator, once.
    fn recover(&mut self, txn: &KafkaTransaction) -> Result<(), KafkaConnectorError> {
        if self.recovered.contains(&txn.transactional_id) {
            return Ok(());
        }
        let outcome = commit_recovered(
            &mut self.coordinators,
            &txn.transactional_id,
            txn.checkpoint_id,
        )?;
        if outcome == Recovered::Committed {
            tracing::info!(
                transactional_id = %txn.transactional_id,
                checkpoint = ?txn.checkpoint_id,
                "kafka sink: committed a restored transaction"
            );
        }
        self.recovered.insert(txn.transactional_id.clone());
        Ok(())
    }

    /// Starts making the producer of the next transaction on a helper thread.
    fn make_spare(&mut self) {
        let id = format!("{}{}", self.id_base, self.next);
        self.next += 1;
        let properties = self.config.properties.clone();
        self.spares.push_back(std::thread::spawn(move || {
            let producer = create_producer(&properties, Some(&id))?;
            producer
                .init_transactions(TXN_TIMEOUT)
                .map_err(KafkaConnectorError::client(format!(
                    "init_transactions of {id}"
                )))?;
            Ok((id, producer))
        }));
    }

    /// The next producer, its id initialized; starts making the one after.
    fn take_spare(&mut self) -> Result<(String, BaseProducer<Reports>), KafkaConnectorError> {
        if self.spares.is_empty() {
            self.make_spare();
        }
        let spare = self.spares.pop_front().expect("made above");
        // A cancelled job does not wait for a broker that does not answer.
        while !spare.is_finished() {
            self.ctx.services.cancelled.stop_task_if_cancelled();
            std::thread::sleep(Duration::from_millis(1));
        }
        let made = spare.join().unwrap_or_else(|_| {
            Err(KafkaConnectorError::Invalid(
                "the thread making a producer panicked".into(),
            ))
        });
        self.make_spare();
        made
    }

    fn producer(&mut self, txn: &KafkaTransaction) -> Result<&mut KafkaWriter<T>, SinkError> {
        self.open
            .iter_mut()
            .find(|(id, _)| *id == txn.transactional_id)
            .map(|(_, w)| w)
            .ok_or_else(|| format!("no producer for {}", txn.transactional_id).into())
    }
}

impl<T: Send + 'static> TwoPhaseCommitWriter<T> for KafkaTransactionWriter<T> {
    type Transaction = KafkaTransaction;

    fn begin_transaction(&mut self) -> Result<KafkaTransaction, SinkError> {
        let (id, producer) = self.take_spare()?;
        producer
            .begin_transaction()
            .map_err(KafkaConnectorError::client(format!(
                "begin a transaction on {id}"
            )))?;
        let writer = KafkaWriter::new(self.config.clone(), producer, &self.ctx);
        self.open.push((id.clone(), writer));
        Ok(KafkaTransaction {
            transactional_id: id,
            checkpoint_id: None,
        })
    }

    fn write(&mut self, txn: &mut KafkaTransaction, record: T) -> Result<(), SinkError> {
        let p = self.producer(txn)?;
        p.send(&record)?;
        p.producer.poll(Duration::ZERO);
        p.check_failures()?;
        Ok(())
    }

    /// Flushes: every record of the transaction is acknowledged by the broker.
    fn pre_commit(
        &mut self,
        txn: &mut KafkaTransaction,
        checkpoint_id: u64,
    ) -> Result<(), SinkError> {
        let timeout = self.config.flush_timeout;
        let p = self.producer(txn)?;
        p.flush(timeout)?;
        p.check_failures()?;
        txn.checkpoint_id = Some(checkpoint_id);
        Ok(())
    }

    /// Commits on the producer that opened the transaction; a transaction of an
    /// earlier attempt (restored) through its coordinator. Committing again is a
    /// no-op.
    fn commit(&mut self, txn: KafkaTransaction) -> Result<(), SinkError> {
        let Some(i) = self
            .open
            .iter()
            .position(|(id, _)| *id == txn.transactional_id)
        else {
            return Ok(self.recover(&txn)?);
        };
        if self.open[i].1.cancelled() {
            // The job is being cancelled: leave it to the next attempt to commit.
            return Err("the job was cancelled before the commit".into());
        }
        test_hooks::before_commit(&txn.transactional_id);
        let (id, writer) = self.open.remove(i);
        writer
            .producer
            .commit_transaction(TXN_TIMEOUT)
            .map_err(KafkaConnectorError::client(format!(
                "commit the transaction of {id}"
            )))?;
        Ok(())
    }

    /// A restored checkpoint's transaction: committed when the writer started, or
    /// now (through its coordinator) if it was not among those.
    fn recover_and_commit(&mut self, txn: KafkaTransaction) -> Result<(), SinkError> {
        Ok(self.recover(&txn)?)
    }

    // `abort` and `recover_and_abort` keep their defaults (nothing): the open
    // transaction's producer goes with the writer and the broker never shows its
    // records to `read_committed` readers; the next attempt's writer fences each id
    // of its subtask's prefix still open and not recovered when it starts
    // (`InitProducerId`), which aborts it at the broker, also after the process that
    // opened it died.
}
