//! The exactly-once PostgreSQL sink: one database transaction per checkpoint and
//! writer, committed when the checkpoint completes, with a marker row in the same
//! transaction so that a commit replayed after a restore is a no-op.

use std::hash::{BuildHasher, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

use flink_core::operator::RuntimeContext;
use flink_core::services::RuntimeServices;
use flink_core::sink::{Sink, SinkError, SinkWriter};
use flink_core::transactional::{TransactionalSink, TwoPhaseCommitSink, TwoPhaseCommitWriter};
use serde::{Deserialize, Serialize};
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;

use super::config::PostgresConfig;
use super::error::{PostgresConnectorError, describe};
use super::value::SqlValue;
use super::writer::{insert_sql, quote_ident};
use crate::runtime::OwnedRuntime;

/// The marker table's default name.
pub const DEFAULT_MARKER_TABLE: &str = "flink_rs_committed_transactions";

/// Writes a stream into a PostgreSQL table exactly once, with checkpoints.
///
/// Made by [`PostgresSink::exactly_once`](super::PostgresSink::exactly_once). Each
/// writer collects the rows of a checkpoint (they are stored in the checkpoint when
/// its barrier passes: the pre-commit); when the checkpoint completes it writes
/// them in one database transaction together with a marker row (job, subtask,
/// checkpoint id, transaction id) in the marker table. A commit replayed after a
/// restore finds the marker and does nothing; one that never happened (the
/// process died first) writes the rows then. Rows wait in memory and in the
/// checkpoint until their checkpoint completes, so the table lags by one
/// checkpoint interval. A row the database refuses fails the job (a transaction is
/// all or nothing: there are no dead letters here).
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
/// );
/// let sink = PostgresSink::new(config).unwrap().exactly_once("word-count");
/// let env = StreamExecutionEnvironment::new();
/// env.from_collection(vec![("a".to_string(), 1u64)]).sink_to(sink);
/// ```
pub struct PostgresExactlyOnceSink<T> {
    config: PostgresConfig<T>,
    job: String,
    marker_table: String,
}

impl<T> PostgresExactlyOnceSink<T> {
    pub(super) fn new(config: PostgresConfig<T>, job: &str) -> Self {
        Self {
            config,
            job: job.to_string(),
            marker_table: DEFAULT_MARKER_TABLE.to_string(),
        }
    }

    /// The marker table (default [`DEFAULT_MARKER_TABLE`], created if missing).
    pub fn marker_table(mut self, table: &str) -> Self {
        self.marker_table = table.to_string();
        self
    }
}

/// A value as stored in a checkpoint (JSON as its text: the checkpoint format
/// cannot hold a self-describing `serde_json::Value`).
#[derive(Debug, Clone, Serialize, Deserialize)]
enum StoredValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
    Json(String),
}

impl From<SqlValue> for StoredValue {
    fn from(v: SqlValue) -> Self {
        match v {
            SqlValue::Null => Self::Null,
            SqlValue::Bool(b) => Self::Bool(b),
            SqlValue::Int(i) => Self::Int(i),
            SqlValue::Float(f) => Self::Float(f),
            SqlValue::Text(s) => Self::Text(s),
            SqlValue::Bytes(b) => Self::Bytes(b),
            SqlValue::Json(j) => Self::Json(j.to_string()),
        }
    }
}

impl StoredValue {
    fn into_sql(self) -> Result<SqlValue, PostgresConnectorError> {
        Ok(match self {
            Self::Null => SqlValue::Null,
            Self::Bool(b) => SqlValue::Bool(b),
            Self::Int(i) => SqlValue::Int(i),
            Self::Float(f) => SqlValue::Float(f),
            Self::Text(s) => SqlValue::Text(s),
            Self::Bytes(b) => SqlValue::Bytes(b),
            Self::Json(j) => SqlValue::Json(
                serde_json::from_str(&j)
                    .map_err(|e| PostgresConnectorError::Runtime(format!("stored JSON: {e}")))?,
            ),
        })
    }
}

/// The rows of one checkpoint of one writer.
#[derive(Debug, Serialize, Deserialize)]
pub struct PostgresTransaction {
    /// Unique per transaction: the marker's key.
    id: String,
    checkpoint_id: Option<u64>,
    rows: Vec<Vec<StoredValue>>,
}

/// The writer of one instance of [`PostgresExactlyOnceSink`].
pub struct PostgresTransactionWriter<T> {
    config: PostgresConfig<T>,
    job: String,
    marker_table: String,
    subtask: usize,
    services: RuntimeServices,
    client: Option<tokio_postgres::Client>,
    /// Runs the connection.
    runtime: OwnedRuntime,
}

/// A transaction id no other transaction has: random bits, the time and the subtask.
fn transaction_id(subtask: usize) -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(nanos);
    h.write_usize(subtask);
    format!("{subtask}-{nanos:x}-{:016x}", h.finish())
}

impl<T> PostgresTransactionWriter<T> {
    /// Writes the marker and, if it is new, the rows, in one transaction (opening
    /// the connection and creating the marker table first if needed). Returns
    /// whether it wrote: `false` means the transaction had been committed before.
    fn commit_rows(&mut self, txn: &PostgresTransaction) -> Result<bool, PostgresConnectorError> {
        let rows: Vec<Vec<SqlValue>> = txn
            .rows
            .iter()
            .map(|r| r.iter().cloned().map(StoredValue::into_sql).collect())
            .collect::<Result<_, _>>()?;
        let per_statement = self.config.rows_per_statement().max(1);
        let insert = |n: usize| insert_sql(&self.config, n);
        let marker = quote_ident(&self.marker_table);
        let (job, subtask) = (self.job.clone(), self.subtask as i32);
        // The final snapshot's id (u64::MAX) is stored as -1.
        let checkpoint = txn.checkpoint_id.map_or(-1, |c| c as i64);
        let id = txn.id.clone();
        let url = self.config.url.clone();
        let mut client = self.client.take();
        let statements: Vec<(String, usize)> = rows
            .chunks(per_statement)
            .map(|c| (insert(c.len()), c.len()))
            .collect();
        let work = async move {
            if client.as_ref().is_none_or(|c| c.is_closed()) {
                let (c, connection) = tokio_postgres::connect(&url, NoTls).await?;
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::warn!(error = %e, "postgres: connection ended");
                    }
                });
                // Under an advisory lock: writers creating the table at once would
                // collide in the catalog (CREATE TABLE IF NOT EXISTS is not atomic).
                let lock_key = marker.replace('\'', "''");
                c.batch_execute(&format!(
                    "BEGIN; SELECT pg_advisory_xact_lock(hashtext('{lock_key}')); \
                     CREATE TABLE IF NOT EXISTS {marker} (transaction_id text PRIMARY KEY, \
                     job text NOT NULL, subtask integer NOT NULL, checkpoint_id bigint NOT NULL, \
                     committed_at timestamptz NOT NULL DEFAULT now()); COMMIT;"
                ))
                .await?;
                client = Some(c);
            }
            let c = client.as_mut().expect("connected");
            let tx = c.transaction().await?;
            let inserted = tx
                .execute(
                    &format!(
                        "INSERT INTO {marker} (transaction_id, job, subtask, checkpoint_id) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT (transaction_id) DO NOTHING"
                    ),
                    &[&id, &job, &subtask, &checkpoint],
                )
                .await?;
            if inserted == 0 {
                tx.rollback().await?;
                return Ok::<_, tokio_postgres::Error>((client, false));
            }
            let mut rest = rows.as_slice();
            for (sql, n) in &statements {
                let (chunk, more) = rest.split_at(*n);
                rest = more;
                let params: Vec<&(dyn ToSql + Sync)> = chunk
                    .iter()
                    .flat_map(|r| r.iter().map(|v| v as &(dyn ToSql + Sync)))
                    .collect();
                tx.execute(sql.as_str(), &params).await?;
            }
            tx.commit().await?;
            Ok((client, true))
        };
        let handle = self.runtime.handle().spawn(work);
        match self.services.block_on_in_task(handle) {
            Ok(Ok((client, wrote))) => {
                self.client = client;
                Ok(wrote)
            }
            Ok(Err(e)) => Err(PostgresConnectorError::Runtime(format!(
                "committing transaction {} of checkpoint {checkpoint}: {}",
                txn.id,
                describe(&e)
            ))),
            Err(e) => Err(PostgresConnectorError::Runtime(e.to_string())),
        }
    }
}

impl<T: Send + 'static> TwoPhaseCommitWriter<T> for PostgresTransactionWriter<T> {
    type Transaction = PostgresTransaction;

    fn begin_transaction(&mut self) -> Result<PostgresTransaction, SinkError> {
        Ok(PostgresTransaction {
            id: transaction_id(self.subtask),
            checkpoint_id: None,
            rows: Vec::new(),
        })
    }

    fn write(&mut self, txn: &mut PostgresTransaction, record: T) -> Result<(), SinkError> {
        let row = (self.config.mapper)(&record);
        txn.rows
            .push(row.into_iter().map(StoredValue::from).collect());
        Ok(())
    }

    /// The rows go into the checkpoint with the transaction: nothing to flush.
    fn pre_commit(
        &mut self,
        txn: &mut PostgresTransaction,
        checkpoint_id: u64,
    ) -> Result<(), SinkError> {
        txn.checkpoint_id = Some(checkpoint_id);
        Ok(())
    }

    /// Writes the rows and the marker in one transaction, unless the marker exists.
    /// An empty transaction writes nothing (a writer begins one on every barrier:
    /// an idle one would otherwise add a marker row per checkpoint).
    fn commit(&mut self, txn: PostgresTransaction) -> Result<(), SinkError> {
        if txn.rows.is_empty() {
            return Ok(());
        }
        let wrote = self.commit_rows(&txn)?;
        if !wrote {
            tracing::debug!(transaction = %txn.id, "postgres sink: transaction committed already");
        }
        Ok(())
    }

    /// Nothing of `txn` is in the database: its rows wait in memory until its
    /// checkpoint completes, and a database transaction is open only within
    /// [`commit`](Self::commit), which rolls it back on any error (tokio-postgres
    /// rolls back a transaction dropped uncommitted). The rows are dropped.
    fn abort(&mut self, txn: PostgresTransaction) -> Result<(), SinkError> {
        tracing::debug!(transaction = %txn.id, rows = txn.rows.len(), "postgres sink: aborted");
        Ok(())
    }

    // `recover_and_abort` keeps its default (nothing): as for `abort`, no row and
    // no marker of the transaction was ever written.
}

impl<T: Send + 'static> TwoPhaseCommitSink<T> for PostgresExactlyOnceSink<T> {
    type Writer = PostgresTransactionWriter<T>;

    fn create_writer(&self, ctx: &RuntimeContext) -> Self::Writer {
        let name = format!("pg-eos-sink-{}", ctx.subtask_index);
        let runtime = OwnedRuntime::new(&name, 1)
            .unwrap_or_else(|e| panic!("postgres sink: cannot start its runtime: {e}"));
        PostgresTransactionWriter {
            config: self.config.clone(),
            job: self.job.clone(),
            marker_table: self.marker_table.clone(),
            subtask: ctx.subtask_index,
            services: ctx.services.clone(),
            client: None,
            runtime,
        }
    }
}

impl<T: Send + 'static> Sink<T> for PostgresExactlyOnceSink<T> {
    fn create_writer(&self, ctx: &RuntimeContext) -> Box<dyn SinkWriter<T>> {
        let sink = PostgresExactlyOnceSink {
            config: self.config.clone(),
            job: self.job.clone(),
            marker_table: self.marker_table.clone(),
        };
        TransactionalSink(sink).create_writer(ctx)
    }
}
