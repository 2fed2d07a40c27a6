//! What a PostgreSQL sink or destination writes, and how.

use std::sync::Arc;
use std::time::Duration;

use super::error::PostgresConnectorError;
use super::value::SqlValue;

type Mapper<T> = dyn Fn(&T) -> Vec<SqlValue> + Send + Sync;

/// The table, columns, row mapping and tuning shared by [`PostgresSink`] and
/// [`PostgresDestination`].
///
/// [`PostgresSink`]: super::PostgresSink
/// [`PostgresDestination`]: super::PostgresDestination
pub struct PostgresConfig<T> {
    pub(crate) url: String,
    pub(crate) table: String,
    pub(crate) columns: Vec<String>,
    pub(crate) mapper: Arc<Mapper<T>>,
    pub(crate) upsert_key: Vec<String>,
    pub(crate) batch_size: usize,
    pub(crate) max_pending_batches: usize,
    pub(crate) max_retries: u32,
    pub(crate) initial_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) linger: Duration,
}

impl<T> Clone for PostgresConfig<T> {
    fn clone(&self) -> Self {
        Self {
            url: self.url.clone(),
            table: self.table.clone(),
            columns: self.columns.clone(),
            mapper: self.mapper.clone(),
            upsert_key: self.upsert_key.clone(),
            batch_size: self.batch_size,
            max_pending_batches: self.max_pending_batches,
            max_retries: self.max_retries,
            initial_backoff: self.initial_backoff,
            max_backoff: self.max_backoff,
            linger: self.linger,
        }
    }
}

impl<T> PostgresConfig<T> {
    /// Writes into `table` (optionally `schema.table`) of the database at `url`
    /// (`postgres://user@host:port/db`), one row per record: `columns` get the values
    /// `mapper` returns, in order.
    pub fn new<S: AsRef<str>>(
        url: &str,
        table: &str,
        columns: impl IntoIterator<Item = S>,
        mapper: impl Fn(&T) -> Vec<SqlValue> + Send + Sync + 'static,
    ) -> Self {
        Self {
            url: url.to_string(),
            table: table.to_string(),
            columns: columns
                .into_iter()
                .map(|c| c.as_ref().to_string())
                .collect(),
            mapper: Arc::new(mapper),
            upsert_key: Vec::new(),
            batch_size: 500,
            max_pending_batches: 4,
            max_retries: 8,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            linger: Duration::from_millis(5),
        }
    }

    /// Upserts on these key columns (`INSERT .. ON CONFLICT (key) DO UPDATE SET` the
    /// other columns), so replaying records does not duplicate rows. The key needs a
    /// unique index. Within one batch the last record of a key wins.
    pub fn upsert_on<S: AsRef<str>>(mut self, key: impl IntoIterator<Item = S>) -> Self {
        self.upsert_key = key.into_iter().map(|c| c.as_ref().to_string()).collect();
        self
    }

    /// Rows per multi-row `INSERT` (default 500; capped so a statement has at most
    /// 65,535 parameters).
    pub fn batch_size(mut self, rows: usize) -> Self {
        self.batch_size = rows.max(1);
        self
    }

    /// Batches handed to the database connection and not yet acknowledged, at most
    /// (default 4). The sink blocks beyond it; the destination's `send` waits.
    pub fn max_pending_batches(mut self, n: usize) -> Self {
        self.max_pending_batches = n.max(1);
        self
    }

    /// Retries of a transient error (lost connection, serialization failure,
    /// deadlock, ...) before giving up (default 8), with exponential backoff from
    /// `initial` to `max` (default 50 ms to 5 s).
    pub fn retries(mut self, max_retries: u32, initial: Duration, max: Duration) -> Self {
        self.max_retries = max_retries;
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// How long the destination waits for more records before writing a partial
    /// batch (default 5 ms).
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), PostgresConnectorError> {
        if self.columns.is_empty() {
            return Err(PostgresConnectorError::Config("no columns".into()));
        }
        if let Some(k) = self.upsert_key.iter().find(|k| !self.columns.contains(k)) {
            return Err(PostgresConnectorError::Config(format!(
                "upsert key column {k} is not among the columns"
            )));
        }
        Ok(())
    }

    /// Rows per statement, within PostgreSQL's 65,535 parameters.
    pub(crate) fn rows_per_statement(&self) -> usize {
        self.batch_size.min(65_535 / self.columns.len()).max(1)
    }
}
