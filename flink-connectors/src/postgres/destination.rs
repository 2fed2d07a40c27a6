//! PostgreSQL as an [`AckDestination`]: a record is acknowledged when the batch it was
//! written in committed.

use std::sync::Arc;

use flink_core::destination::{AckDestination, DeliveryError};
use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use super::config::PostgresConfig;
use super::error::PostgresConnectorError;
use super::value::SqlValue;
use super::writer::{BatchWriter, Counters};
use crate::runtime::OwnedRuntime;

type Ack = oneshot::Sender<Result<(), DeliveryError>>;

enum Command {
    Row(Vec<SqlValue>, Ack),
    Flush(Ack),
}

/// Writes records into a PostgreSQL table, batching the rows of concurrent `send`s:
/// the batch is written when it holds [`batch_size`](PostgresConfig::batch_size) rows
/// or after [`linger`](PostgresConfig::linger), and each record's future resolves when
/// its batch committed. Transient errors are retried (see [`PostgresConfig::retries`]);
/// a record the database refuses resolves to [`DeliveryError::Permanent`] with the
/// database's message (the rest of its batch is written); retries exhausted resolve
/// to [`DeliveryError::Retryable`]. At most
/// [`max_pending_batches`](PostgresConfig::max_pending_batches) batches of records
/// wait for the connection; `send` waits beyond that.
///
/// The connection runs on the destination's own one-thread tokio runtime, so the
/// futures can be awaited on any executor.
///
/// ```no_run
/// use flink_connectors::postgres::{PostgresConfig, PostgresDestination, SqlValue};
/// use flink_core::destination::AckDestination;
///
/// let dest = PostgresDestination::new(PostgresConfig::new(
///     "postgres://postgres@127.0.0.1:5432/postgres",
///     "events",
///     ["id"],
///     |id: &i64| vec![SqlValue::Int(*id)],
/// ))
/// .unwrap();
/// futures::executor::block_on(dest.send(7)).unwrap();
/// ```
pub struct PostgresDestination<T> {
    tx: mpsc::Sender<Command>,
    mapper: PostgresConfig<T>,
    _runtime: Arc<OwnedRuntime>,
}

impl<T> PostgresDestination<T> {
    /// A destination writing as `config` says.
    ///
    /// # Errors
    /// When the configuration is inconsistent or the runtime cannot start.
    pub fn new(config: PostgresConfig<T>) -> Result<Self, PostgresConnectorError>
    where
        T: 'static,
    {
        config.validate()?;
        let runtime = OwnedRuntime::new("pg-dest", 1)
            .map_err(|e| PostgresConnectorError::Runtime(e.to_string()))?;
        let (tx, rx) = mpsc::channel(config.max_pending_batches * config.batch_size);
        let writer = BatchWriter::new(config.clone(), Arc::new(Counters::default()));
        runtime
            .handle()
            .spawn(run(writer, rx, config.batch_size, config.linger));
        Ok(Self {
            tx,
            mapper: config,
            _runtime: Arc::new(runtime),
        })
    }
}

async fn run<T>(
    mut writer: BatchWriter<T>,
    mut rx: mpsc::Receiver<Command>,
    batch_size: usize,
    linger: std::time::Duration,
) {
    let mut rows = Vec::new();
    let mut acks: Vec<Ack> = Vec::new();
    let mut flushes: Vec<Ack> = Vec::new();
    loop {
        // Wait for the first command, then gather until full or the linger passes.
        let first = rx.recv().await;
        let Some(first) = first else { break };
        let mut next = Some(first);
        let deadline = tokio::time::Instant::now() + linger;
        loop {
            match next.take() {
                Some(Command::Row(row, ack)) => {
                    rows.push(row);
                    acks.push(ack);
                }
                Some(Command::Flush(ack)) => {
                    flushes.push(ack);
                    break;
                }
                None => {}
            }
            if rows.len() >= batch_size {
                break;
            }
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(cmd)) => next = Some(cmd),
                Ok(None) | Err(_) => break,
            }
        }
        if !rows.is_empty() {
            let batch = std::mem::take(&mut rows);
            let batch_acks = std::mem::take(&mut acks);
            match writer.write(&batch).await {
                Ok(outcomes) => {
                    for (ack, outcome) in batch_acks.into_iter().zip(outcomes) {
                        let _ = ack.send(match outcome {
                            None => Ok(()),
                            Some(reason) => Err(DeliveryError::Permanent(reason)),
                        });
                    }
                }
                Err(e) => {
                    let err = match e {
                        PostgresConnectorError::RetriesExhausted { .. } => {
                            DeliveryError::Retryable(e.to_string())
                        }
                        _ => DeliveryError::Permanent(e.to_string()),
                    };
                    for ack in batch_acks {
                        let _ = ack.send(Err(err.clone()));
                    }
                }
            }
        }
        for ack in flushes.drain(..) {
            let _ = ack.send(Ok(()));
        }
    }
}

impl<T: Send + Sync + 'static> AckDestination<T> for PostgresDestination<T> {
    fn send(&self, record: T) -> BoxFuture<'static, Result<(), DeliveryError>> {
        let row = (self.mapper.mapper)(&record);
        let tx = self.tx.clone();
        Box::pin(async move {
            let (ack, done) = oneshot::channel();
            tx.send(Command::Row(row, ack))
                .await
                .map_err(|_| DeliveryError::Retryable("the postgres writer stopped".into()))?;
            done.await
                .map_err(|_| DeliveryError::Retryable("the postgres writer stopped".into()))?
        })
    }

    fn flush(&self) -> BoxFuture<'static, Result<(), DeliveryError>> {
        let tx = self.tx.clone();
        Box::pin(async move {
            let (ack, done) = oneshot::channel();
            tx.send(Command::Flush(ack))
                .await
                .map_err(|_| DeliveryError::Retryable("the postgres writer stopped".into()))?;
            done.await
                .map_err(|_| DeliveryError::Retryable("the postgres writer stopped".into()))?
        })
    }
}
