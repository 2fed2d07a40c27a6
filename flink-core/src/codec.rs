//! Record serialization between tasks: bincode 2 over serde, little-endian with
//! fixed-width integers.
//!
//! Fixed width, as Flink's own serializers write a `long` in eight bytes: a record's
//! size then does not depend on its value, so a full set of in-flight buffers holds
//! the same number of records all job long and the rate a back-pressured source sees
//! is the rate of its sink. With variable-length integers, records grew from 3 to 5
//! bytes as a counter passed 65,535, the records in flight shrank by a third and the
//! source's steady-state rate read 5 % below its sink's.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Size of the length prefix that frames each record between tasks: a u32, little
/// endian, then the record's bytes (the runtime writes and checks the frames; a
/// decoder may read a run of complete frames in one call).
pub const LENGTH_PREFIX: usize = 4;

/// The bincode configuration of records on the wire.
pub const WIRE: bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Fixint,
> = bincode::config::standard().with_fixed_int_encoding();

/// The bincode configuration a key is hashed in (see [`crate::key_group`]): the
/// standard one, variable-length integers. It is part of the key-group contract and
/// independent of [`WIRE`], so records can change their wire form without moving
/// a single key to another subtask.
pub const KEY_HASH: bincode::config::Configuration = bincode::config::standard();

/// Appends the encoding of `value` to `buf`.
///
/// # Panics
/// If the type's `Serialize` implementation itself fails (for example a map with
/// non-string keys is fine, but a custom impl returning an error is not); the task
/// turns this into a job failure naming the operator.
pub fn encode_into<T: Serialize + ?Sized>(value: &T, buf: &mut Vec<u8>) {
    encode_with(value, buf, WIRE);
}

/// Encodes `value` into the start of `buf`, returning the bytes written; an error if
/// it does not fit (or its `Serialize` fails: [`encode_into`] then reports it).
#[inline]
pub fn encode_into_slice<T: Serialize + ?Sized>(
    value: &T,
    buf: &mut [u8],
) -> Result<usize, bincode::error::EncodeError> {
    bincode::serde::encode_into_slice(value, buf, WIRE)
}

/// Appends the encoding of `value` under `config` to `buf`; panics as [`encode_into`].
pub fn encode_with<T: Serialize + ?Sized, C: bincode::config::Config>(
    value: &T,
    buf: &mut Vec<u8>,
    config: C,
) {
    if let Err(e) = bincode::serde::encode_into_std_write(value, buf, config) {
        panic!(
            "cannot serialize record of type {}: {e}",
            std::any::type_name::<T>()
        );
    }
}

/// The records of a run of complete frames (each a [`LENGTH_PREFIX`] length, then that
/// many bytes), in order. Stops at a frame that is not complete; callers hand only
/// checked runs.
#[inline]
pub fn frames(run: &[u8]) -> Frames<'_> {
    Frames(run)
}

/// The iterator of [`frames`].
#[derive(Debug, Clone)]
pub struct Frames<'a>(&'a [u8]);

impl<'a> Frames<'a> {
    /// What is left: the frames not taken yet, or the incomplete frame the run ends
    /// in (empty once every frame was taken from a run of complete ones).
    #[inline]
    pub fn rest(&self) -> &'a [u8] {
        self.0
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        let (len, tail) = self.0.split_first_chunk::<LENGTH_PREFIX>()?;
        let len = u32::from_le_bytes(*len) as usize;
        if tail.len() < len {
            return None;
        }
        let (record, tail) = tail.split_at(len);
        self.0 = tail;
        Some(record)
    }
}

/// Decodes one value from exactly `bytes`, off the per-record path (restores, tools):
/// the same wire form as [`decode`], through another bincode entry point on purpose.
/// A second caller of [`decode`]'s bincode function for a record type made the
/// inliner keep that function out of line in the per-record decoder (the window job
/// took 6 % more instructions); with its own entry point here, the hot one keeps its
/// single caller.
#[inline(never)]
pub fn decode_off_hot_path<T: DeserializeOwned>(
    bytes: &[u8],
) -> Result<T, bincode::error::DecodeError> {
    let mut rest = bytes;
    let value = bincode::serde::decode_from_std_read(&mut rest, WIRE)?;
    if !rest.is_empty() {
        return Err(bincode::error::DecodeError::OtherString(format!(
            "{} trailing bytes after a record of type {}",
            rest.len(),
            std::any::type_name::<T>()
        )));
    }
    Ok(value)
}

/// Decodes one value from exactly `bytes`: our own reader of the wire encoding
/// first (`bincode_deserializer`, inlined), bincode's when that one gives
/// up (malformed bytes get bincode's error).
#[inline]
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, bincode::error::DecodeError> {
    match crate::bincode_deserializer::decode_exact(bytes) {
        Some(value) => Ok(value),
        None => decode_by_bincode(bytes),
    }
}

/// [`decode`] by bincode itself.
#[inline(never)]
fn decode_by_bincode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, bincode::error::DecodeError> {
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

    #[test]
    fn encodes_into_a_slice_as_into_a_vec_or_reports_no_room() {
        let value = ("word".to_string(), 7u64);
        let mut vec = vec![];
        encode_into(&value, &mut vec);
        let mut slice = [0u8; 64];
        let n = encode_into_slice(&value, &mut slice).unwrap();
        assert_eq!(&slice[..n], &vec[..]);
        assert!(encode_into_slice(&value, &mut slice[..vec.len() - 1]).is_err());
    }
}
