//! PostgreSQL as an [`AckDestination`] (a record is acknowledged when the batch it was
//! written in committed) and as a [`BatchDestination`] for the async sink (one request
//! is one batch written by one connection).

use std::sync::Arc;

use flink_core::async_sink::{BatchDestination, SubmitResult};
use flink_core::destination::{AckDestination, DeliveryError};
use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use super::config::PostgresConfig;
use super::error::PostgresConnectorError;
use super::value::SqlValue;
use super::writer::{BatchWriter, Counters};
use crate::runtime::OwnedRuntime;

type Ack = oneshot::Sender<Result<(), DeliveryError>>;

/// The answer to a whole batch: the rows not written with why, or a fatal error.
type BatchAck = oneshot::Sender<Result<Vec<(usize, DeliveryError)>, String>>;

enum Command {
    Row(Vec<SqlValue>, Ack),
    Batch(Vec<Vec<SqlValue>>, BatchAck),
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
/// It is also a [`BatchDestination`]: give it to
/// [`AsyncSink::new`](flink_core::async_sink::AsyncSink::new) to write each batch of
/// the async sink in one request (see the impl for what each error becomes). That is
/// the way to write an unbounded stream: the async sink writes a partial batch once
/// it waited `max_time_in_buffer`, so a trickle of rows does not wait for more.
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

/// The connection's loop: gathers the rows of `send`s into batches (until full or
/// the linger passed), and writes each batch of a `submit` as it comes, in order.
async fn run<T>(
    mut writer: BatchWriter<T>,
    mut rx: mpsc::Receiver<Command>,
    batch_size: usize,
    linger: std::time::Duration,
) {
    let mut rows = Vec::new();
    let mut acks: Vec<Ack> = Vec::new();
    let mut flushes: Vec<Ack> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        let mut batch = None;
        let deadline = tokio::time::Instant::now() + linger;
        loop {
            match next.take() {
                Some(Command::Row(row, ack)) => {
                    rows.push(row);
                    acks.push(ack);
                }
                Some(Command::Batch(batch_rows, ack)) => {
                    batch = Some((batch_rows, ack));
                    break;
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
        // Rows sent before the batch are written before it.
        write_rows(
            &mut writer,
            std::mem::take(&mut rows),
            std::mem::take(&mut acks),
        )
        .await;
        if let Some((batch_rows, ack)) = batch {
            write_batch(&mut writer, batch_rows, ack).await;
        }
        for ack in flushes.drain(..) {
            let _ = ack.send(Ok(()));
        }
    }
}

/// Writes the gathered rows of `send`s and resolves each one's acknowledgment.
async fn write_rows<T>(writer: &mut BatchWriter<T>, rows: Vec<Vec<SqlValue>>, acks: Vec<Ack>) {
    if rows.is_empty() {
        return;
    }
    match writer.write(&rows).await {
        Ok(outcomes) => {
            for (ack, outcome) in acks.into_iter().zip(outcomes) {
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
            for ack in acks {
                let _ = ack.send(Err(err.clone()));
            }
        }
    }
}

/// Writes one submitted batch at once (it is complete as submitted: no linger), one
/// statement per [`batch_size`](PostgresConfig::batch_size) rows, and answers which rows
/// were not written: refused ones as [`DeliveryError::Permanent`], those of a
/// statement whose retries ran out, and of the statements after it, as
/// [`DeliveryError::Retryable`] (the statements before it stay written). A batch whose requester gave up (its request timed out)
/// before it was started is not written: the async sink sends it again.
async fn write_batch<T>(writer: &mut BatchWriter<T>, rows: Vec<Vec<SqlValue>>, ack: BatchAck) {
    if ack.is_closed() {
        return;
    }
    let per_statement = writer.rows_per_statement();
    let mut failed = Vec::new();
    for (n, chunk) in rows.chunks(per_statement).enumerate() {
        let first = n * per_statement;
        match writer.write(chunk).await {
            Ok(outcomes) => {
                failed.extend(outcomes.into_iter().enumerate().filter_map(|(i, outcome)| {
                    outcome.map(|reason| (first + i, DeliveryError::Permanent(reason)))
                }))
            }
            Err(e @ PostgresConnectorError::RetriesExhausted { .. }) => {
                // The database is out of reach: the rest is not tried now either.
                let err = DeliveryError::Retryable(e.to_string());
                failed.extend((first..rows.len()).map(|i| (i, err.clone())));
                break;
            }
            Err(fatal) => {
                let _ = ack.send(Err(fatal.to_string()));
                return;
            }
        }
    }
    let _ = ack.send(Ok(failed));
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

/// The writer's task ended: only a bug (a panic in it) gets here, no retry helps.
fn writer_stopped<E>(_: E) -> flink_core::sink::SinkError {
    "postgres: the destination's writer stopped".into()
}

/// One request of the async sink is one batch: written with one multi-row statement
/// per [`batch_size`](PostgresConfig::batch_size) rows (set it at least to the async
/// sink's `max_batch_size` for one round trip per request), transient errors retried
/// inside the request as [`PostgresConfig::retries`] says. What the request answers:
///
/// - a row the database refuses for its data (SQLSTATE class 22 or 23: a constraint
///   violation, a value that does not fit, an unrepresentable parameter):
///   [`DeliveryError::Permanent`] with the database's message, which the async sink
///   makes a dead letter; the other rows are written;
/// - a statement whose transient errors (lost connection, server shutting down,
///   serialization failure, deadlock) outlasted the retries: its rows and those of
///   the statements after it as [`DeliveryError::Retryable`], which the async sink sends again per its retry
///   strategy;
/// - anything else, which no retry can fix (a missing table or column, a permission
///   or authentication refused, a mapper returning the wrong number of values): a
///   fatal error, which fails the job naming the sink.
///
/// All instances of the sink share the destination's one connection, so requests in
/// flight queue on it in order. A request that timed out may still be written (and is
/// then written again by the retry): use [`upsert_on`](PostgresConfig::upsert_on) to
/// make that harmless.
///
/// ```no_run
/// use std::time::Duration;
/// use flink_connectors::postgres::{PostgresConfig, PostgresDestination, SqlValue};
/// use flink_core::async_sink::{AsyncSink, AsyncSinkOptions};
/// use flink_core::prelude::*;
///
/// let dest = PostgresDestination::new(PostgresConfig::new(
///     "postgres://postgres@127.0.0.1:5432/postgres",
///     "events",
///     ["id"],
///     |id: &i64| vec![SqlValue::Int(*id)],
/// ))
/// .unwrap();
/// let env = StreamExecutionEnvironment::new();
/// env.from_collection(vec![1i64, 2, 3]).sink_to_async(
///     AsyncSink::new(dest).options(
///         AsyncSinkOptions::new()
///             .max_batch_size(500)
///             .max_time_in_buffer(Duration::from_millis(200)),
///     ),
/// );
/// ```
impl<T: Send + Sync + 'static> BatchDestination<T> for PostgresDestination<T> {
    fn submit(&self, batch: &[T]) -> BoxFuture<'static, SubmitResult> {
        let rows: Vec<Vec<SqlValue>> = batch.iter().map(|r| (self.mapper.mapper)(r)).collect();
        let tx = self.tx.clone();
        Box::pin(async move {
            let (ack, done) = oneshot::channel();
            tx.send(Command::Batch(rows, ack))
                .await
                .map_err(writer_stopped)?;
            Ok(done.await.map_err(writer_stopped)??)
        })
    }
}
