//! Errors of the PostgreSQL connectors, and which ones are worth a retry.

use thiserror::Error;

/// Why a PostgreSQL sink or destination failed.
#[derive(Debug, Error)]
pub enum PostgresConnectorError {
    /// A required option was not given or is unusable.
    #[error("postgres: invalid configuration: {0}")]
    Config(String),
    /// Transient errors went on past the retry limit.
    #[error("postgres: giving up after {attempts} attempts: {last}")]
    RetriesExhausted {
        /// Attempts made.
        attempts: u32,
        /// The last error.
        last: String,
    },
    /// An error no retry can cure and no single row is to blame for (a missing table,
    /// a syntax error, a permission).
    #[error("postgres: {0}")]
    Fatal(String),
    /// The writer's runtime could not be started or ended unexpectedly.
    #[error("postgres: runtime: {0}")]
    Runtime(String),
}

/// What an error means for the batch that met it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ErrorClass {
    /// Try again (after reconnecting when the connection is gone).
    Transient,
    /// Some row's data is refused: find it and dead-letter it.
    Row,
    /// Nothing to retry and no row to blame.
    Fatal,
}

/// The error as a person should read it: the database's message, detail and
/// SQLSTATE when it comes from the server, the whole cause chain otherwise.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        );
        if let Some(detail) = db.detail() {
            s.push_str(&format!("; {detail}"));
        }
        return s;
    }
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        s.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    s
}

pub(crate) fn classify(e: &tokio_postgres::Error) -> ErrorClass {
    if e.is_closed() {
        return ErrorClass::Transient;
    }
    if let Some(code) = e.code() {
        let code = code.code();
        return match code {
            "40001" | "40P01" | "55P03" | "57P01" | "57P02" | "57P03" => ErrorClass::Transient,
            c if c.starts_with("08") || c.starts_with("53") => ErrorClass::Transient,
            c if c.starts_with("22") || c.starts_with("23") => ErrorClass::Row,
            _ => ErrorClass::Fatal,
        };
    }
    let text = e.to_string();
    if text.starts_with("error serializing parameter") {
        ErrorClass::Row
    } else if text.starts_with("error connecting")
        || text.starts_with("error communicating")
        || text.contains("timed out")
        || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
    {
        ErrorClass::Transient
    } else {
        ErrorClass::Fatal
    }
}
