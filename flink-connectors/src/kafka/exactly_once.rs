//! The exactly-once Kafka sink: a [`TwoPhaseCommitWriter`] over a small pool of
//! transactional producers per writer, as Flink's `KafkaSink` with
//! `DeliveryGuarantee.EXACTLY_ONCE`.
//!
//! - Writer `s` owns the transactional ids `<prefix>-<s>-<k>`, `k < pool size`. A
//!   transaction stays open from the barrier that pre-commits it until its
//!   checkpoint completes, while the next one takes records, and a librdkafka
//!   producer has one transaction at a time: hence a pool (Flink's ids are
//!   `<prefix>-<subtask>-<checkpoint offset>` for the same reason).
//! - Pre-commit (on the barrier) flushes the transaction: every record is acknowledged
//!   by the broker. Commit (on completion) is `commit_transaction`.
//! - Starting a writer fences its ids: `init_transactions` on each aborts whatever a
//!   previous process left open on them; producers of an earlier attempt of the
//!   same job in this process are taken over instead (see below).
//! - **Restore.** A restored checkpoint's pre-committed transactions must be
//!   committed. Flink's `KafkaSink` resumes them from any process with the producer
//!   id and epoch stored in the checkpoint; librdkafka cannot resume a transaction
//!   of another producer instance. So the sink keeps the producers of an ended
//!   attempt (a task failure restarts the job in the same process) and the new
//!   writer commits the restored transaction on the very producer that opened it, if
//!   that producer has not committed it yet: exactly once across task failures and
//!   restarts. After the whole process died, the producer is gone: if the process
//!   had committed the transaction before it died (the usual case: commits follow
//!   completion at once), nothing is lost; if it died between the checkpoint's
//!   completion and the commit, `init_transactions` aborts the transaction and its
//!   records are lost, which the writer reports as a warning naming the id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flink_core::operator::RuntimeContext;
use flink_core::sink::SinkError;
use flink_core::transactional::{TwoPhaseCommitSink, TwoPhaseCommitWriter};
use rdkafka::producer::Producer;
use serde::{Deserialize, Serialize};

use super::error::KafkaConnectorError;
use super::sink::{KafkaWriter, SinkConfig, create_producer};

/// How long transaction requests (init, commit, abort) may take.
const TXN_TIMEOUT: Duration = Duration::from_secs(30);

/// Producers of ended attempts by transactional id, shared by a sink's writers.
pub(super) type Parked<T> = Arc<Mutex<HashMap<String, TxnProducer<T>>>>;

/// One transactional producer and what it is doing.
pub(super) struct TxnProducer<T> {
    writer: KafkaWriter<T>,
    /// Whether a transaction is open on it.
    open: bool,
    /// The checkpoint its open transaction was pre-committed for.
    precommitted: Option<u64>,
    /// Whether this process created it when the writer started (fencing the id),
    /// rather than taking it over from an earlier attempt.
    fenced: bool,
}

/// A Kafka transaction, as stored in a checkpoint while pre-committed.
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
    pub(super) parked: Parked<T>,
}

impl<T: Send + 'static> TwoPhaseCommitSink<T> for ExactlyOnceKafka<T> {
    type Writer = KafkaTransactionWriter<T>;

    fn create_writer(&self, ctx: &RuntimeContext) -> Self::Writer {
        let prefix = self
            .config
            .transactional_id_prefix
            .clone()
            .expect("checked by the builder");
        let mut writer = KafkaTransactionWriter {
            config: self.config.clone(),
            parked: self.parked.clone(),
            producers: HashMap::new(),
            free: Vec::new(),
            ids: (0..self.config.transaction_pool_size)
                .map(|k| format!("{prefix}-{}-{k}", ctx.subtask_index))
                .collect(),
            settled: false,
        };
        if let Err(e) = writer.start(ctx) {
            flink_core::failure::fail_operator(&ctx.operator_name, e.to_string());
        }
        writer
    }
}

/// The writer of one exactly-once Kafka sink instance: its pool of transactional
/// producers.
pub struct KafkaTransactionWriter<T> {
    config: Arc<SinkConfig<T>>,
    parked: Parked<T>,
    /// This writer's producers by transactional id.
    producers: HashMap<String, TxnProducer<T>>,
    /// Ids of producers without a transaction.
    free: Vec<String>,
    /// This writer's transactional ids.
    ids: Vec<String>,
    /// Whether the transactions left pre-committed by an earlier attempt and not
    /// recovered were aborted.
    settled: bool,
}

impl<T: 'static> KafkaTransactionWriter<T> {
    /// Takes over the producers of an earlier attempt (aborting their transactions
    /// that were not pre-committed) and fences the other ids.
    fn start(&mut self, ctx: &RuntimeContext) -> Result<(), KafkaConnectorError> {
        let mut parked = self.parked.lock().unwrap_or_else(|p| p.into_inner());
        for id in &self.ids {
            let producer = match parked.remove(id) {
                Some(mut p) => {
                    p.writer = p.writer.rebind(ctx);
                    p.fenced = false;
                    if p.open && p.precommitted.is_none() {
                        abort(&self.config, &mut p, id)?;
                    }
                    p
                }
                None => fenced_producer(&self.config, id, ctx)?,
            };
            if !producer.open {
                self.free.push(id.clone());
            }
            self.producers.insert(id.clone(), producer);
        }
        // The lowest id first, so a job that needs one transaction at a time
        // alternates between two producers.
        self.free.sort_by(|a, b| b.cmp(a));
        Ok(())
    }

    /// Aborts the transactions an earlier attempt pre-committed for checkpoints that
    /// never completed (those of the restored checkpoint were committed by now).
    fn settle(&mut self) -> Result<(), KafkaConnectorError> {
        if self.settled {
            return Ok(());
        }
        self.settled = true;
        for id in self.ids.clone() {
            let p = self
                .producers
                .get_mut(&id)
                .expect("every id has a producer");
            if p.open {
                tracing::info!(
                    transactional_id = %id,
                    checkpoint = ?p.precommitted,
                    "kafka sink: aborting a transaction of a checkpoint that did not complete"
                );
                abort(&self.config, p, &id)?;
                self.free.push(id);
            }
        }
        Ok(())
    }

    fn producer(&mut self, txn: &KafkaTransaction) -> Result<&mut TxnProducer<T>, SinkError> {
        self.producers
            .get_mut(&txn.transactional_id)
            .ok_or_else(|| format!("no producer for {}", txn.transactional_id).into())
    }
}

/// A new producer with transactional id `id`, its earlier incarnations fenced.
fn fenced_producer<T: 'static>(
    config: &Arc<SinkConfig<T>>,
    id: &str,
    ctx: &RuntimeContext,
) -> Result<TxnProducer<T>, KafkaConnectorError> {
    let producer = create_producer(&config.properties, Some(id))?;
    producer
        .init_transactions(TXN_TIMEOUT)
        .map_err(KafkaConnectorError::client(format!(
            "init_transactions of {id}"
        )))?;
    Ok(TxnProducer {
        writer: KafkaWriter::new(config.clone(), producer, ctx),
        open: false,
        precommitted: None,
        fenced: true,
    })
}

/// Aborts the open transaction of `p` by fencing its id: the producer is dropped
/// (its unacknowledged records purged) and a new one with the same id calls
/// `init_transactions`, which makes the broker abort the transaction. Reusing the
/// producer after `abort_transaction` is what librdkafka offers, but a producer whose
/// in-flight records were purged may refuse records afterwards (`Erroneous state`).
fn abort<T: 'static>(
    config: &SinkConfig<T>,
    p: &mut TxnProducer<T>,
    id: &str,
) -> Result<(), KafkaConnectorError> {
    let placeholder = create_producer(&config.properties, None)?;
    drop(std::mem::replace(&mut p.writer.producer, placeholder));
    let producer = create_producer(&config.properties, Some(id))?;
    producer
        .init_transactions(TXN_TIMEOUT)
        .map_err(KafkaConnectorError::client(format!(
            "init_transactions of {id} (aborting its open transaction)"
        )))?;
    p.writer.producer = producer;
    p.open = false;
    p.precommitted = None;
    Ok(())
}

impl<T: Send + 'static> TwoPhaseCommitWriter<T> for KafkaTransactionWriter<T> {
    type Transaction = KafkaTransaction;

    fn begin_transaction(&mut self) -> Result<KafkaTransaction, SinkError> {
        self.settle()?;
        let Some(id) = self.free.pop() else {
            return Err(format!(
                "kafka sink: all {} transactional producers hold transactions awaiting \
                 their checkpoints (checkpoints failed in a row?): raise \
                 transaction_pool_size",
                self.ids.len()
            )
            .into());
        };
        let p = self
            .producers
            .get_mut(&id)
            .expect("every id has a producer");
        p.writer
            .producer
            .begin_transaction()
            .map_err(KafkaConnectorError::client(format!(
                "begin a transaction on {id}"
            )))?;
        p.open = true;
        Ok(KafkaTransaction {
            transactional_id: id,
            checkpoint_id: None,
        })
    }

    fn write(&mut self, txn: &mut KafkaTransaction, record: T) -> Result<(), SinkError> {
        let p = self.producer(txn)?;
        p.writer.send(&record)?;
        p.writer.producer.poll(Duration::ZERO);
        p.writer.check_failures()?;
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
        p.writer.flush(timeout)?;
        p.writer.check_failures()?;
        p.precommitted = Some(checkpoint_id);
        txn.checkpoint_id = Some(checkpoint_id);
        Ok(())
    }

    /// Commits, unless the producer committed this transaction already (it then
    /// holds no transaction, or a later one).
    fn commit(&mut self, txn: KafkaTransaction) -> Result<(), SinkError> {
        let id = txn.transactional_id.clone();
        let p = self.producer(&txn)?;
        if !(p.open && p.precommitted.is_some() && p.precommitted == txn.checkpoint_id) {
            tracing::debug!(transactional_id = %id, "kafka sink: transaction committed already");
            return Ok(());
        }
        if p.writer.cancelled() {
            // The job is being cancelled: leave it to the next attempt to commit.
            return Err("the job was cancelled before the commit".into());
        }
        p.writer
            .producer
            .commit_transaction(TXN_TIMEOUT)
            .map_err(KafkaConnectorError::client(format!(
                "commit the transaction of {id}"
            )))?;
        p.open = false;
        p.precommitted = None;
        self.free.push(id);
        Ok(())
    }

    /// A restored checkpoint's transaction: committed on the producer that opened it
    /// when this process still has it; otherwise (the process was restarted) its
    /// fate was sealed before: committed by the previous process, or aborted when
    /// this writer fenced the id.
    fn recover_and_commit(&mut self, txn: KafkaTransaction) -> Result<(), SinkError> {
        let p = self.producer(&txn)?;
        let resumable = p.open && p.precommitted == txn.checkpoint_id;
        if resumable {
            tracing::info!(
                transactional_id = %txn.transactional_id,
                checkpoint = ?txn.checkpoint_id,
                "kafka sink: committing a restored transaction"
            );
            return self.commit(txn);
        }
        if p.fenced {
            tracing::warn!(
                transactional_id = %txn.transactional_id,
                checkpoint = ?txn.checkpoint_id,
                "kafka sink: a restored transaction of an earlier process cannot be \
                 resumed (librdkafka): if that process died before committing it, \
                 fencing the id aborted it and its records are lost"
            );
        } else {
            tracing::debug!(
                transactional_id = %txn.transactional_id,
                checkpoint = ?txn.checkpoint_id,
                "kafka sink: a restored transaction was committed already"
            );
        }
        Ok(())
    }
}

impl<T> Drop for KafkaTransactionWriter<T> {
    /// The producers go back to the sink for the next attempt, with their
    /// transactions (a pre-committed one may have to be committed after the restore).
    fn drop(&mut self) {
        let mut parked = self.parked.lock().unwrap_or_else(|p| p.into_inner());
        parked.extend(self.producers.drain());
    }
}
