//! How a Kafka message becomes a record.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;

/// Turns the bytes of a message's key or value into a value.
pub trait ValueDeserializer<T>: Send + Sync + 'static {
    /// Deserializes `bytes`; an `Err` carries the reason (the message becomes a dead
    /// letter).
    fn deserialize(&self, bytes: &[u8]) -> Result<T, String>;
}

/// The raw bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesDeserializer;

impl ValueDeserializer<Vec<u8>> for BytesDeserializer {
    fn deserialize(&self, bytes: &[u8]) -> Result<Vec<u8>, String> {
        Ok(bytes.to_vec())
    }
}

/// UTF-8 text; invalid UTF-8 is an error.
#[derive(Debug, Clone, Copy, Default)]
pub struct StringDeserializer;

impl ValueDeserializer<String> for StringDeserializer {
    fn deserialize(&self, bytes: &[u8]) -> Result<String, String> {
        std::str::from_utf8(bytes)
            .map(str::to_string)
            .map_err(|e| format!("invalid UTF-8: {e}"))
    }
}

/// A JSON document deserialized with serde.
pub struct JsonDeserializer<T>(PhantomData<fn() -> T>);

impl<T> JsonDeserializer<T> {
    /// The JSON deserializer of `T`.
    pub fn new() -> Self {
        Self(PhantomData)
    }
}

impl<T> Default for JsonDeserializer<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> std::fmt::Debug for JsonDeserializer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JsonDeserializer")
    }
}

impl<T: DeserializeOwned + 'static> ValueDeserializer<T> for JsonDeserializer<T> {
    fn deserialize(&self, bytes: &[u8]) -> Result<T, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON: {e}"))
    }
}

impl<T, F> ValueDeserializer<T> for F
where
    F: Fn(&[u8]) -> Result<T, String> + Send + Sync + 'static,
{
    fn deserialize(&self, bytes: &[u8]) -> Result<T, String> {
        self(bytes)
    }
}

/// Turns a whole message (key and value) into a record.
pub trait KafkaRecordDeserializer<T>: Send + Sync + 'static {
    /// Deserializes a message; `None` is an absent key or value (a tombstone).
    fn deserialize(&self, key: Option<&[u8]>, value: Option<&[u8]>) -> Result<T, String>;
}

/// Deserializes the value only (a missing value is an error).
#[derive(Debug, Clone, Copy, Default)]
pub struct ValueOnly<D>(pub D);

impl<T, D: ValueDeserializer<T>> KafkaRecordDeserializer<T> for ValueOnly<D> {
    fn deserialize(&self, _key: Option<&[u8]>, value: Option<&[u8]>) -> Result<T, String> {
        self.0.deserialize(value.ok_or("message has no value")?)
    }
}

/// Deserializes key and value into `(Option<K>, V)` (a missing key is `None`; a
/// missing value is an error).
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyValue<KD, VD, K = (), V = ()> {
    key: KD,
    value: VD,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<KD, VD, K, V> KeyValue<KD, VD, K, V> {
    /// Key through `key`, value through `value`.
    pub fn new(key: KD, value: VD) -> Self {
        Self {
            key,
            value,
            _types: PhantomData,
        }
    }
}

impl<K, V, KD, VD> KafkaRecordDeserializer<(Option<K>, V)> for KeyValue<KD, VD, K, V>
where
    K: 'static,
    V: 'static,
    KD: ValueDeserializer<K>,
    VD: ValueDeserializer<V>,
{
    fn deserialize(
        &self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<(Option<K>, V), String> {
        let key = key
            .map(|k| self.key.deserialize(k))
            .transpose()
            .map_err(|e| format!("key: {e}"))?;
        let value = self
            .value
            .deserialize(value.ok_or("message has no value")?)
            .map_err(|e| format!("value: {e}"))?;
        Ok((key, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deserializers_report_what_is_wrong() {
        assert_eq!(StringDeserializer.deserialize(b"ok"), Ok("ok".to_string()));
        assert!(
            StringDeserializer
                .deserialize(&[0xff])
                .unwrap_err()
                .starts_with("invalid UTF-8")
        );
        let json = JsonDeserializer::<u32>::new();
        assert!(
            json.deserialize(b"\"x\"")
                .unwrap_err()
                .starts_with("invalid JSON")
        );
        let kv =
            KeyValue::<_, _, String, u32>::new(StringDeserializer, JsonDeserializer::<u32>::new());
        assert_eq!(
            kv.deserialize(Some(b"k"), Some(b"7")),
            Ok((Some("k".to_string()), 7))
        );
        assert_eq!(kv.deserialize(None, Some(b"7")), Ok((None, 7)));
        assert!(kv.deserialize(Some(b"k"), None).is_err());
        assert!(
            kv.deserialize(Some(&[0xff]), Some(b"7"))
                .unwrap_err()
                .starts_with("key: invalid UTF-8")
        );
    }
}
