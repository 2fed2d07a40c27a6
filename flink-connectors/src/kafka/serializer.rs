//! How a record becomes the bytes of a Kafka message's value.

use std::marker::PhantomData;

use serde::Serialize;

/// Turns a record into the bytes of a message value.
pub trait ValueSerializer<T>: Send + Sync + 'static {
    /// Serializes `record`; an `Err` carries the reason.
    fn serialize(&self, record: &T) -> Result<Vec<u8>, String>;
}

/// The record's bytes as they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesSerializer;

impl<T: AsRef<[u8]>> ValueSerializer<T> for BytesSerializer {
    fn serialize(&self, record: &T) -> Result<Vec<u8>, String> {
        Ok(record.as_ref().to_vec())
    }
}

/// The record's UTF-8 text (its `Display` form).
#[derive(Debug, Clone, Copy, Default)]
pub struct StringSerializer;

impl<T: std::fmt::Display> ValueSerializer<T> for StringSerializer {
    fn serialize(&self, record: &T) -> Result<Vec<u8>, String> {
        Ok(record.to_string().into_bytes())
    }
}

/// The record as a JSON document (serde).
pub struct JsonSerializer<T>(PhantomData<fn(T)>);

impl<T> JsonSerializer<T> {
    /// The JSON serializer of `T`.
    pub fn new() -> Self {
        Self(PhantomData)
    }
}

impl<T> Default for JsonSerializer<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> std::fmt::Debug for JsonSerializer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JsonSerializer")
    }
}

impl<T: Serialize + 'static> ValueSerializer<T> for JsonSerializer<T> {
    fn serialize(&self, record: &T) -> Result<Vec<u8>, String> {
        serde_json::to_vec(record).map_err(|e| e.to_string())
    }
}

/// Any `Fn(&T) -> Result<Vec<u8>, String>` is a serializer.
pub struct FnSerializer<F>(pub F);

impl<T, F> ValueSerializer<T> for FnSerializer<F>
where
    F: Fn(&T) -> Result<Vec<u8>, String> + Send + Sync + 'static,
{
    fn serialize(&self, record: &T) -> Result<Vec<u8>, String> {
        (self.0)(record)
    }
}
