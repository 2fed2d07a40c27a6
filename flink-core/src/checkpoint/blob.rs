//! Byte blobs inside a state snapshot, encoded in one copy.
//!
//! serde writes a `Vec<u8>` or `&[u8]` element by element; bincode encodes each `u8`
//! as one byte, so `serialize_bytes` (length, then the bytes in one copy) writes the
//! very same bytes, many times faster. Snapshots written either way read the same.

use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// `#[serde(with = "blob")]` for a `Vec<u8>` field.
pub(crate) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(bytes)
}

/// See [`serialize`].
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    deserializer.deserialize_byte_buf(BlobVisitor)
}

struct BlobVisitor;

impl<'de> Visitor<'de> for BlobVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("bytes")
    }

    fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
        while let Some(b) = seq.next_element()? {
            out.push(b);
        }
        Ok(out)
    }
}

/// A borrowed blob to serialize.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlobRef<'a>(pub(crate) &'a [u8]);

impl Serialize for BlobRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// An owned blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Blob(pub(crate) Vec<u8>);

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize(deserializer).map(Blob)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_is_encoded_as_serde_encodes_its_bytes_one_by_one() {
        let bytes: Vec<u8> = (0..=255).collect();
        let config = bincode::config::standard();
        let one_by_one = bincode::serde::encode_to_vec(&bytes, config).unwrap();
        let blob = bincode::serde::encode_to_vec(BlobRef(&bytes), config).unwrap();
        assert_eq!(blob, one_by_one);
        let (back, _): (Blob, usize) =
            bincode::serde::decode_from_slice(&one_by_one, config).unwrap();
        assert_eq!(back.0, bytes);
    }
}
