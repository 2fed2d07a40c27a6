//! A sink writing records to a PostgreSQL table in batches.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use flink_core::dead_letter::{DeadLetter, dead_letter_tag};
use flink_core::functions::Collector;
use flink_core::operator::RuntimeContext;
use flink_core::services::RuntimeServices;
use flink_core::side_output::SideOutput;
use flink_core::sink::{Sink, SinkError, SinkWriter};
use tokio::sync::mpsc;

use super::config::PostgresConfig;
use super::error::PostgresConnectorError;
use super::exactly_once::PostgresExactlyOnceSink;
use super::value::SqlValue;
use super::writer::{BatchWriter, Counters};
use crate::runtime::OwnedRuntime;

/// Live counts of a [`PostgresSink`], summed over its writers.
#[derive(Debug, Clone, Default)]
pub struct PostgresSinkMetrics {
    counters: Arc<Counters>,
}

impl PostgresSinkMetrics {
    /// Rows the database acknowledged.
    pub fn rows_written(&self) -> u64 {
        self.counters.rows_written.load(Ordering::Relaxed)
    }
    /// Batches acknowledged (committed, with their refused rows dead-lettered).
    pub fn batches_acknowledged(&self) -> u64 {
        self.counters.batches_acknowledged.load(Ordering::Relaxed)
    }
    /// Rows the database refused, sent to dead letters.
    pub fn dead_letters(&self) -> u64 {
        self.counters.dead_letters.load(Ordering::Relaxed)
    }
    /// Transient errors retried.
    pub fn retries(&self) -> u64 {
        self.counters.retries.load(Ordering::Relaxed)
    }
}

/// Writes records into a PostgreSQL table with multi-row `INSERT`s (or upserts).
///
/// Each writer owns a one-thread tokio runtime running its connection. Records are
/// batched ([`batch_size`](PostgresConfig::batch_size) rows); a full batch is handed
/// to the connection and the writer goes on, with at most
/// [`max_pending_batches`](PostgresConfig::max_pending_batches) batches not yet
/// acknowledged: beyond that `write` blocks, which back pressure carries to the
/// sources. A batch is acknowledged when its statement committed.
///
/// - Transient errors (connection lost, serialization failure, deadlock, server
///   shutting down) are retried with exponential backoff, reconnecting as needed; past
///   the retry limit the job fails.
/// - When the database refuses a batch because of its data (a constraint violation,
///   a value that does not fit), the batch's rows are written one by one: the rows it
///   refuses become [`DeadLetter<T>`]s (the record, and the database's message as
///   reason) on [`dead_letter_tag::<T>()`] (read them with
///   [`DeadLetterSinkExt`](crate::DeadLetterSinkExt)); the others are written.
/// - Other errors (no such table, permission denied) fail the job.
/// - Every wait (for a free batch slot, for the last acknowledgments in `finish`)
///   ends when the job is cancelled, also against a server that never answers.
/// - With [`upsert_on`](PostgresConfig::upsert_on), replaying records does not
///   duplicate rows: together with a replaying source this is effectively once.
///
/// A partial batch is written only when the input ends (or the job is stopped): the
/// sink is called only when a record arrives, so rows of a low-rate stream wait until
/// the batch fills. For an unbounded stream write through the async sink instead:
/// `sink_to_async(AsyncSink::new(PostgresDestination::new(config)?))` writes a partial
/// batch once it waited `max_time_in_buffer` (see [`PostgresDestination`]).
///
/// [`PostgresDestination`]: super::PostgresDestination
///
/// ```no_run
/// use flink_connectors::postgres::{PostgresConfig, PostgresSink, SqlValue};
/// use flink_core::prelude::*;
///
/// let config = PostgresConfig::new(
///     "postgres://postgres@127.0.0.1:5432/postgres",
///     "counts",
///     ["word", "n"],
///     |(word, n): &(String, u64)| vec![SqlValue::from(word.as_str()), SqlValue::Int(*n as i64)],
/// )
/// .upsert_on(["word"]);
/// let env = StreamExecutionEnvironment::new();
/// env.from_collection(vec![("a".to_string(), 1u64)])
///     .sink_to(PostgresSink::new(config).unwrap());
/// ```
pub struct PostgresSink<T> {
    config: PostgresConfig<T>,
    metrics: PostgresSinkMetrics,
}

impl<T> PostgresSink<T> {
    /// A sink writing as `config` says.
    ///
    /// # Errors
    /// When the configuration is inconsistent (no columns, an upsert key that is not
    /// a column).
    pub fn new(config: PostgresConfig<T>) -> Result<Self, PostgresConnectorError> {
        config.validate()?;
        Ok(Self {
            config,
            metrics: PostgresSinkMetrics::default(),
        })
    }

    /// This sink, exactly once with checkpoints: a database transaction per
    /// checkpoint and writer, with a marker row naming `job` (see
    /// [`PostgresExactlyOnceSink`]). Rows the database refuses fail the job.
    pub fn exactly_once(self, job: &str) -> PostgresExactlyOnceSink<T> {
        PostgresExactlyOnceSink::new(self.config, job)
    }

    /// The live counts of this sink's writers.
    pub fn metrics(&self) -> PostgresSinkMetrics {
        self.metrics.clone()
    }
}

/// Records and their rows, in the same order.
struct Batch<T> {
    records: Vec<T>,
    rows: Vec<Vec<SqlValue>>,
}

impl<T> Batch<T> {
    fn with_capacity(n: usize) -> Self {
        Self {
            records: Vec::with_capacity(n),
            rows: Vec::with_capacity(n),
        }
    }
}

impl<T: Send + 'static> Sink<T> for PostgresSink<T> {
    fn create_writer(&self, ctx: &RuntimeContext) -> Box<dyn SinkWriter<T>> {
        let name = format!("pg-sink-{}", ctx.subtask_index);
        let runtime = OwnedRuntime::new(&name, 1)
            .unwrap_or_else(|e| panic!("postgres sink: cannot start its runtime: {e}"));
        let (tx, mut rx) = mpsc::channel::<Batch<T>>(self.config.max_pending_batches);
        let (dead_tx, dead_rx) = std::sync::mpsc::channel::<(T, String)>();
        let mut writer = BatchWriter::new(self.config.clone(), self.metrics.counters.clone());
        let worker = runtime.handle().spawn(async move {
            while let Some(batch) = rx.recv().await {
                let outcomes = writer.write(&batch.rows).await?;
                for (record, outcome) in batch.records.into_iter().zip(outcomes) {
                    if let Some(reason) = outcome {
                        let _ = dead_tx.send((record, reason));
                    }
                }
            }
            Ok::<(), PostgresConnectorError>(())
        });
        Box::new(PostgresWriter {
            mapper: self.config.clone(),
            batch_size: self.config.batch_size,
            batch: Batch::with_capacity(self.config.batch_size),
            tx: Some(tx),
            worker: Some(worker),
            dead_rx,
            dead_letters: ctx.side_output(&dead_letter_tag::<T>()),
            operator: ctx.operator_name.to_string(),
            services: ctx.services.clone(),
            _runtime: runtime,
        })
    }
}

struct PostgresWriter<T> {
    mapper: PostgresConfig<T>,
    batch_size: usize,
    batch: Batch<T>,
    tx: Option<mpsc::Sender<Batch<T>>>,
    worker: Option<tokio::task::JoinHandle<Result<(), PostgresConnectorError>>>,
    dead_rx: std::sync::mpsc::Receiver<(T, String)>,
    dead_letters: SideOutput<DeadLetter<T>>,
    operator: String,
    /// For waits that end when the job is cancelled.
    services: RuntimeServices,
    /// Runs the connection; the writer waits on it through `services`, so that a
    /// cancellation ends the wait.
    _runtime: OwnedRuntime,
}

impl<T: Send + 'static> PostgresWriter<T> {
    fn drain_dead_letters(&mut self) {
        while let Ok((record, reason)) = self.dead_rx.try_recv() {
            self.dead_letters.collect(
                DeadLetter::new(record, &self.operator, reason.clone()).with_last_error(reason),
            );
        }
    }

    /// The worker's error, after it stopped.
    fn worker_error(&mut self) -> PostgresConnectorError {
        self.tx = None;
        match self.worker.take() {
            Some(w) => match self.services.block_on_in_task(w) {
                Ok(Ok(())) => PostgresConnectorError::Runtime("the writer stopped".into()),
                Ok(Err(e)) => e,
                Err(e) => PostgresConnectorError::Runtime(e.to_string()),
            },
            None => PostgresConnectorError::Runtime("the writer stopped".into()),
        }
    }

    fn submit(&mut self) -> Result<(), PostgresConnectorError> {
        if self.batch.records.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Batch::with_capacity(self.batch_size));
        let sent = match &self.tx {
            Some(tx) => self.services.block_on_in_task(tx.send(batch)).is_ok(),
            None => false,
        };
        self.drain_dead_letters();
        if sent {
            Ok(())
        } else {
            Err(self.worker_error())
        }
    }
}

impl<T: Send + 'static> SinkWriter<T> for PostgresWriter<T> {
    fn write(&mut self, record: T) -> Result<(), SinkError> {
        self.batch.rows.push((self.mapper.mapper)(&record));
        self.batch.records.push(record);
        if self.batch.records.len() >= self.batch_size {
            self.submit()?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.submit()?;
        self.tx = None;
        let result = match self.worker.take() {
            Some(w) => match self.services.block_on_in_task(w) {
                Ok(r) => r,
                Err(e) => Err(PostgresConnectorError::Runtime(e.to_string())),
            },
            None => Ok(()),
        };
        self.drain_dead_letters();
        result?;
        Ok(())
    }
}
