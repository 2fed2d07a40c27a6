//! Record serialization between tasks: bincode 2 with its standard configuration
//! (little-endian, variable-length integers) over serde.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The one bincode configuration flink-rs uses on the wire.
pub const WIRE: bincode::config::Configuration = bincode::config::standard();

/// Appends the encoding of `value` to `buf`.
///
/// # Panics
/// If the type's `Serialize` implementation itself fails (for example a map with
/// non-string keys is fine, but a custom impl returning an error is not); the task
/// turns this into a job failure naming the operator.
pub fn encode_into<T: Serialize + ?Sized>(value: &T, buf: &mut Vec<u8>) {
    if let Err(e) = bincode::serde::encode_into_std_write(value, buf, WIRE) {
        panic!(
            "cannot serialize record of type {}: {e}",
            std::any::type_name::<T>()
        );
    }
}

/// Decodes one value from exactly `bytes`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, bincode::error::DecodeError> {
    let (value, read) = bincode::serde::decode_from_slice(bytes, WIRE)?;
    if read != bytes.len() {
        return Err(bincode::error::DecodeError::OtherString(format!(
            "{} trailing bytes after a record of type {}",
            bytes.len() - read,
            std::any::type_name::<T>()
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let mut buf = vec![];
        encode_into(&("word".to_string(), 7u64), &mut buf);
        assert_eq!(decode::<(String, u64)>(&buf).unwrap(), ("word".into(), 7));
        assert!(decode::<(String, u64)>(&buf[..2]).is_err());
    }
}
