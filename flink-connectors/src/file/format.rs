//! How a line of a file becomes a record.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;

/// Turns one line (without its line terminator) into a record, or says why it cannot.
pub trait LineFormat<T>: Send + Sync + 'static {
    /// Parses `line`: `Ok(None)` skips it, an `Err` carries the reason and makes the
    /// line a dead letter.
    fn parse(&self, line: &str) -> Result<Option<T>, String>;
}

/// Every line is a `String` record, as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct TextLines;

impl LineFormat<String> for TextLines {
    fn parse(&self, line: &str) -> Result<Option<String>, String> {
        Ok(Some(line.to_string()))
    }
}

/// Every non-empty line is one JSON document, deserialized with serde. Empty lines are
/// skipped.
pub struct JsonLines<T>(PhantomData<fn() -> T>);

impl<T> JsonLines<T> {
    /// The JSON-lines format of `T`.
    pub fn new() -> Self {
        Self(PhantomData)
    }
}

impl<T> Default for JsonLines<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> std::fmt::Debug for JsonLines<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JsonLines")
    }
}

impl<T: DeserializeOwned + 'static> LineFormat<T> for JsonLines<T> {
    fn parse(&self, line: &str) -> Result<Option<T>, String> {
        if line.trim().is_empty() {
            return Ok(None);
        }
        serde_json::from_str(line)
            .map(Some)
            .map_err(|e| format!("invalid JSON: {e}"))
    }
}
