//! The async core both the sink and the destination use: writes a batch of rows with
//! one multi-row `INSERT`, retries transient errors with backoff (reconnecting when
//! the connection is gone), and when the database refuses the batch because of its
//! data, writes the rows one by one to find the ones it refuses.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Statement};

use super::config::PostgresConfig;
use super::error::{ErrorClass, PostgresConnectorError, classify, describe};
use super::value::SqlValue;

/// Counters a writer keeps, shared with whoever watches.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) rows_written: AtomicU64,
    pub(crate) batches_acknowledged: AtomicU64,
    pub(crate) dead_letters: AtomicU64,
    pub(crate) retries: AtomicU64,
}

/// The outcome of one row: `None` written, `Some(reason)` refused for good.
pub(crate) type RowOutcome = Option<String>;

pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub(crate) struct BatchWriter<T> {
    config: PostgresConfig<T>,
    client: Option<Client>,
    statements: HashMap<usize, Statement>,
    counters: Arc<Counters>,
}

impl<T> BatchWriter<T> {
    pub(crate) fn new(config: PostgresConfig<T>, counters: Arc<Counters>) -> Self {
        Self {
            config,
            client: None,
            statements: HashMap::new(),
            counters,
        }
    }

    /// Rows one statement takes at most.
    pub(crate) fn rows_per_statement(&self) -> usize {
        self.config.rows_per_statement()
    }

    fn sql(&self, rows: usize) -> String {
        insert_sql(&self.config, rows)
    }

    async fn connect(&mut self) -> Result<(), tokio_postgres::Error> {
        if self.client.as_ref().is_some_and(|c| !c.is_closed()) {
            return Ok(());
        }
        self.client = None;
        self.statements.clear();
        let (client, connection) = tokio_postgres::connect(&self.config.url, NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "postgres: connection ended");
            }
        });
        self.client = Some(client);
        Ok(())
    }

    /// One attempt at one statement over `rows`.
    async fn execute(&mut self, rows: &[&[SqlValue]]) -> Result<u64, tokio_postgres::Error> {
        self.connect().await?;
        if !self.statements.contains_key(&rows.len()) {
            let sql = self.sql(rows.len());
            let stmt = self
                .client
                .as_ref()
                .expect("connected")
                .prepare(&sql)
                .await?;
            self.statements.insert(rows.len(), stmt);
        }
        let stmt = &self.statements[&rows.len()];
        let params: Vec<&(dyn ToSql + Sync)> = rows
            .iter()
            .flat_map(|r| r.iter().map(|v| v as &(dyn ToSql + Sync)))
            .collect();
        self.client
            .as_ref()
            .expect("connected")
            .execute(stmt, &params)
            .await
    }

    /// Executes, retrying transient errors; returns the first non-transient error.
    async fn execute_retrying(
        &mut self,
        rows: &[&[SqlValue]],
    ) -> Result<Result<(), tokio_postgres::Error>, PostgresConnectorError> {
        let mut backoff = self.config.initial_backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.execute(rows).await {
                Ok(_) => return Ok(Ok(())),
                Err(e) if classify(&e) == ErrorClass::Transient => {
                    if attempt > self.config.max_retries {
                        return Err(PostgresConnectorError::RetriesExhausted {
                            attempts: attempt,
                            last: describe(&e),
                        });
                    }
                    tracing::warn!(error = %describe(&e), attempt, ?backoff, "postgres: transient error, retrying");
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    if e.is_closed() {
                        self.client = None;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.config.max_backoff);
                }
                Err(e) => return Ok(Err(e)),
            }
        }
    }

    /// Writes `rows` (in order) and says, per row, whether it was written or refused.
    pub(crate) async fn write(
        &mut self,
        rows: &[Vec<SqlValue>],
    ) -> Result<Vec<RowOutcome>, PostgresConnectorError> {
        let mut outcomes: Vec<RowOutcome> = vec![None; rows.len()];
        // With upsert, one statement may not touch a key twice: the last record wins.
        let mut keep: Vec<usize> = (0..rows.len()).collect();
        if !self.config.upsert_key.is_empty() {
            let key_idx: Vec<usize> = self
                .config
                .upsert_key
                .iter()
                .map(|k| {
                    self.config
                        .columns
                        .iter()
                        .position(|c| c == k)
                        .expect("validated")
                })
                .collect();
            let mut last: HashMap<Vec<String>, usize> = HashMap::new();
            for (i, row) in rows.iter().enumerate() {
                let key = key_idx
                    .iter()
                    .map(|&k| row.get(k).map(SqlValue::key_text).unwrap_or_default())
                    .collect();
                last.insert(key, i);
            }
            let winners: std::collections::HashSet<usize> = last.into_values().collect();
            keep.retain(|i| winners.contains(i));
        }
        for chunk in keep.chunks(self.config.rows_per_statement()) {
            let batch: Vec<&[SqlValue]> = chunk.iter().map(|&i| rows[i].as_slice()).collect();
            if let Some(bad) = batch
                .iter()
                .position(|r| r.len() != self.config.columns.len())
            {
                return Err(PostgresConnectorError::Config(format!(
                    "the mapper returned {} values for {} columns",
                    batch[bad].len(),
                    self.config.columns.len()
                )));
            }
            match self.execute_retrying(&batch).await? {
                Ok(()) => {}
                Err(e) => match classify(&e) {
                    ErrorClass::Row => {
                        tracing::debug!(error = %describe(&e), rows = chunk.len(), "postgres: batch refused, isolating rows");
                        for &i in chunk {
                            if let Err(e) = self.execute_retrying(&[rows[i].as_slice()]).await? {
                                match classify(&e) {
                                    ErrorClass::Row => {
                                        outcomes[i] = Some(describe(&e));
                                        self.counters.dead_letters.fetch_add(1, Ordering::Relaxed);
                                    }
                                    _ => return Err(PostgresConnectorError::Fatal(describe(&e))),
                                }
                            }
                        }
                    }
                    _ => return Err(PostgresConnectorError::Fatal(describe(&e))),
                },
            }
        }
        let written = outcomes.iter().filter(|o| o.is_none()).count() as u64;
        self.counters
            .rows_written
            .fetch_add(written, Ordering::Relaxed);
        self.counters
            .batches_acknowledged
            .fetch_add(1, Ordering::Relaxed);
        Ok(outcomes)
    }
}

/// The multi-row `INSERT` (or upsert) of `rows` rows into the configured table.
pub(crate) fn insert_sql<T>(config: &PostgresConfig<T>, rows: usize) -> String {
    let table = config
        .table
        .split('.')
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join(".");
    let cols: Vec<String> = config.columns.iter().map(|c| quote_ident(c)).collect();
    let n = cols.len();
    let mut sql = format!("INSERT INTO {table} ({}) VALUES ", cols.join(", "));
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..n {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", r * n + c + 1));
        }
        sql.push(')');
    }
    if !config.upsert_key.is_empty() {
        let key: Vec<String> = config.upsert_key.iter().map(|c| quote_ident(c)).collect();
        let rest: Vec<String> = config
            .columns
            .iter()
            .filter(|c| !config.upsert_key.contains(c))
            .map(|c| format!("{0} = EXCLUDED.{0}", quote_ident(c)))
            .collect();
        if rest.is_empty() {
            sql.push_str(&format!(" ON CONFLICT ({}) DO NOTHING", key.join(", ")));
        } else {
            sql.push_str(&format!(
                " ON CONFLICT ({}) DO UPDATE SET {}",
                key.join(", "),
                rest.join(", ")
            ));
        }
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(upsert: &[&str]) -> BatchWriter<()> {
        let config =
            PostgresConfig::new("postgres://x", "s.t", ["id", "name", "n"], |_: &()| vec![])
                .upsert_on(upsert.iter().copied());
        BatchWriter::new(config, Arc::default())
    }

    #[test]
    fn insert_statement_quotes_identifiers_and_numbers_parameters() {
        assert_eq!(
            writer(&[]).sql(2),
            r#"INSERT INTO "s"."t" ("id", "name", "n") VALUES ($1, $2, $3), ($4, $5, $6)"#
        );
    }

    #[test]
    fn upsert_statement_updates_the_other_columns() {
        assert_eq!(
            writer(&["id"]).sql(1),
            r#"INSERT INTO "s"."t" ("id", "name", "n") VALUES ($1, $2, $3) ON CONFLICT ("id") DO UPDATE SET "name" = EXCLUDED."name", "n" = EXCLUDED."n""#
        );
        assert!(
            writer(&["id", "name", "n"])
                .sql(1)
                .ends_with(r#"ON CONFLICT ("id", "name", "n") DO NOTHING"#)
        );
    }
}
