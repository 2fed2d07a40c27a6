//! bincode 2's wire encoding ([`crate::codec::WIRE`]: fixed-width little-endian
//! integers) read back by a serde deserializer of our own, straight from a slice:
//! the counterpart of [`crate::bincode_serializer`]. bincode's decoder reads through
//! a reader and a configuration per field; this one is a cursor over the record's
//! bytes whose reads inline into the caller's loop (a window job's consumer spent a
//! fifth of its instructions in bincode's decoder).
//!
//! It only ever answers what bincode would: it gives up ([`Undecodable`]) on
//! anything it is not sure of (malformed bytes, `deserialize_any`, an error a
//! visitor raised) and the caller then decodes with bincode, which returns the
//! value or names the error. Tests hold its values equal to bincode's.

use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess,
    SeqAccess, VariantAccess, Visitor,
};

// Why the fast path gave up (the caller asks bincode instead): the serializer's
// give-up, a deserialization error too.
use crate::bincode_serializer::{Unencodable, Unencodable as Undecodable};

impl de::Error for Unencodable {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        Unencodable
    }
}

type Res<T> = Result<T, Undecodable>;

/// The value encoded in exactly `bytes`, or `None` if the fast path cannot tell
/// (then bincode decides: the value, or its error).
#[inline(always)]
pub(crate) fn decode_exact<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let mut reader = SliceDeserializer { rest: bytes };
    let value = T::deserialize(&mut reader).ok()?;
    reader.rest.is_empty().then_some(value)
}

/// A cursor over the bytes not read yet.
struct SliceDeserializer<'de> {
    rest: &'de [u8],
}

impl<'de> SliceDeserializer<'de> {
    /// The next `N` bytes.
    #[inline(always)]
    fn array<const N: usize>(&mut self) -> Res<[u8; N]> {
        let (head, rest) = self.rest.split_first_chunk::<N>().ok_or(Undecodable)?;
        self.rest = rest;
        Ok(*head)
    }

    /// The next `n` bytes, borrowed.
    #[inline(always)]
    fn take(&mut self, n: usize) -> Res<&'de [u8]> {
        if n > self.rest.len() {
            return Err(Undecodable);
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    #[inline(always)]
    fn byte(&mut self) -> Res<u8> {
        Ok(self.array::<1>()?[0])
    }

    /// A length (of a string, a sequence or a map): a `u64`.
    #[inline(always)]
    fn len(&mut self) -> Res<usize> {
        usize::try_from(u64::from_le_bytes(self.array()?)).map_err(|_| Undecodable)
    }

    /// A string's bytes, checked to be UTF-8.
    #[inline]
    fn str(&mut self) -> Res<&'de str> {
        let n = self.len()?;
        std::str::from_utf8(self.take(n)?).map_err(|_| Undecodable)
    }

    /// A `char`: its UTF-8 bytes (one to four, as the first says).
    fn char(&mut self) -> Res<char> {
        let first = *self.rest.first().ok_or(Undecodable)?;
        let width = match first {
            0x00..=0x7F => 1,
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => return Err(Undecodable),
        };
        let text = std::str::from_utf8(self.take(width)?).map_err(|_| Undecodable)?;
        text.chars().next().ok_or(Undecodable)
    }

    /// `n` values in a row, as a sequence.
    #[inline(always)]
    fn seq<V: Visitor<'de>>(&mut self, n: usize, visitor: V) -> Res<V::Value> {
        visitor.visit_seq(Counted { de: self, left: n })
    }
}

/// Reads a fixed-width little-endian integer and hands it to the visitor.
macro_rules! fixed {
    ($method:ident, $visit:ident, $ty:ty) => {
        #[inline(always)]
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
            visitor.$visit(<$ty>::from_le_bytes(self.array()?))
        }
    };
}

impl<'de> Deserializer<'de> for &mut SliceDeserializer<'de> {
    type Error = Undecodable;

    /// bincode's encoding does not describe itself: bincode refuses this too.
    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Res<V::Value> {
        Err(Undecodable)
    }

    #[inline(always)]
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        match self.byte()? {
            0 => visitor.visit_bool(false),
            1 => visitor.visit_bool(true),
            _ => Err(Undecodable),
        }
    }

    fixed!(deserialize_i8, visit_i8, i8);
    fixed!(deserialize_i16, visit_i16, i16);
    fixed!(deserialize_i32, visit_i32, i32);
    fixed!(deserialize_i64, visit_i64, i64);
    fixed!(deserialize_i128, visit_i128, i128);
    fixed!(deserialize_u8, visit_u8, u8);
    fixed!(deserialize_u16, visit_u16, u16);
    fixed!(deserialize_u32, visit_u32, u32);
    fixed!(deserialize_u64, visit_u64, u64);
    fixed!(deserialize_u128, visit_u128, u128);
    fixed!(deserialize_f32, visit_f32, f32);
    fixed!(deserialize_f64, visit_f64, f64);

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        visitor.visit_char(self.char()?)
    }

    #[inline]
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        visitor.visit_borrowed_str(self.str()?)
    }

    #[inline]
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        self.deserialize_str(visitor)
    }

    #[inline]
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        let n = self.len()?;
        visitor.visit_borrowed_bytes(self.take(n)?)
    }

    #[inline]
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        self.deserialize_bytes(visitor)
    }

    #[inline]
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        match self.byte()? {
            0 => visitor.visit_none(),
            1 => visitor.visit_some(self),
            _ => Err(Undecodable),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Res<V::Value> {
        visitor.visit_unit()
    }

    #[inline]
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Res<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    #[inline]
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        let n = self.len()?;
        self.seq(n, visitor)
    }

    #[inline(always)]
    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Res<V::Value> {
        self.seq(len, visitor)
    }

    #[inline(always)]
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Res<V::Value> {
        self.seq(len, visitor)
    }

    #[inline]
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        let n = self.len()?;
        visitor.visit_map(Counted { de: self, left: n })
    }

    /// A struct is its fields in order, as a tuple.
    #[inline(always)]
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Res<V::Value> {
        self.seq(fields.len(), visitor)
    }

    #[inline]
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Res<V::Value> {
        visitor.visit_enum(self)
    }

    /// Not in bincode's encoding (it refuses it too).
    fn deserialize_identifier<V: Visitor<'de>>(self, _: V) -> Res<V::Value> {
        Err(Undecodable)
    }

    /// Not in bincode's encoding (it refuses it too).
    fn deserialize_ignored_any<V: Visitor<'de>>(self, _: V) -> Res<V::Value> {
        Err(Undecodable)
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// The items of a sequence, tuple, struct or map whose length is known.
struct Counted<'a, 'de> {
    de: &'a mut SliceDeserializer<'de>,
    left: usize,
}

impl<'de> SeqAccess<'de> for Counted<'_, 'de> {
    type Error = Undecodable;

    #[inline(always)]
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Res<Option<T::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

impl<'de> MapAccess<'de> for Counted<'_, 'de> {
    type Error = Undecodable;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Res<Option<K::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Res<V::Value> {
        seed.deserialize(&mut *self.de)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

impl<'de> EnumAccess<'de> for &mut SliceDeserializer<'de> {
    type Error = Undecodable;
    type Variant = Self;

    /// The variant's index, a `u32`.
    #[inline]
    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Res<(V::Value, Self)> {
        let index = u32::from_le_bytes(self.array()?);
        let value = seed.deserialize(IntoDeserializer::<Undecodable>::into_deserializer(index))?;
        Ok((value, self))
    }
}

impl<'de> VariantAccess<'de> for &mut SliceDeserializer<'de> {
    type Error = Undecodable;

    fn unit_variant(self) -> Res<()> {
        Ok(())
    }

    #[inline]
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Res<T::Value> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Res<V::Value> {
        self.seq(len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Res<V::Value> {
        self.seq(fields.len(), visitor)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::codec::{decode_off_hot_path, encode_into};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Bid {
        auction: u64,
        bidder: u64,
        price: u64,
        channel: String,
        date_time: i64,
        extra: Option<Vec<u8>>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Shape {
        Unit,
        Newtype(i32),
        Tuple(u16, char),
        Struct { id: u128, tag: Option<String> },
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Wrapper(f64);

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Marker;

    /// The fast path reads every valid encoding, and to what bincode reads.
    fn reads_as_bincode<T>(value: &T)
    where
        T: Serialize + DeserializeOwned + PartialEq + fmt::Debug,
    {
        let mut bytes = Vec::new();
        encode_into(value, &mut bytes);
        let fast: Option<T> = decode_exact(&bytes);
        assert_eq!(fast.as_ref(), Some(value), "{bytes:?}");
        let slow: T = decode_off_hot_path(&bytes).unwrap();
        assert_eq!(&slow, value);
    }

    /// On every prefix, every extension and every single-byte change of a valid
    /// encoding the fast path either gives up or reads what bincode reads.
    fn never_disagrees_with_bincode<T>(value: &T)
    where
        T: Serialize + DeserializeOwned + PartialEq + fmt::Debug,
    {
        let mut bytes = Vec::new();
        encode_into(value, &mut bytes);
        let mut variants: Vec<Vec<u8>> = (0..bytes.len()).map(|n| bytes[..n].to_vec()).collect();
        variants.push([bytes.as_slice(), &[0]].concat());
        for i in 0..bytes.len() {
            for b in [0u8, 1, 2, 0x7F, 0x80, 0xC3, 0xFF] {
                let mut changed = bytes.clone();
                changed[i] = b;
                variants.push(changed);
            }
        }
        for bytes in variants {
            if let Some(fast) = decode_exact::<T>(&bytes) {
                // Compared encoded: a NaN read by both is not equal to itself.
                let slow = decode_off_hot_path::<T>(&bytes).expect("bincode reads it too");
                let (mut a, mut b) = (Vec::new(), Vec::new());
                encode_into(&fast, &mut a);
                encode_into(&slow, &mut b);
                assert_eq!(a, b, "{bytes:?}");
            }
        }
    }

    fn check<T>(value: T)
    where
        T: Serialize + DeserializeOwned + PartialEq + fmt::Debug,
    {
        reads_as_bincode(&value);
        never_disagrees_with_bincode(&value);
    }

    #[test]
    fn scalars_read_as_bincode_reads_them() {
        check(true);
        check(false);
        check(-5i8);
        check(200u8);
        check(-30_000i16);
        check(60_000u16);
        check(i32::MIN);
        check(u32::MAX);
        check(-1i64);
        check(u64::MAX);
        check(i128::MIN);
        check(u128::MAX - 3);
        check(1.5f32);
        check(-2.25f64);
        check('a');
        check('é');
        check('€');
        check('🦀');
        check(());
    }

    #[test]
    fn records_of_every_shape_read_as_bincode_reads_them() {
        check((1_000i64, (42u64, 1u64)));
        check("word".to_string());
        check(String::new());
        check(vec![1u64, 2, 3]);
        check(Some(7u32));
        check(None::<u32>);
        check(Wrapper(0.5));
        check(Marker);
        check(Bid {
            auction: 1,
            bidder: 2,
            price: 300,
            channel: "web".into(),
            date_time: -4,
            extra: Some(vec![0, 255]),
        });
        for shape in [
            Shape::Unit,
            Shape::Newtype(-9),
            Shape::Tuple(5, 'x'),
            Shape::Struct {
                id: 1 << 100,
                tag: Some("t".into()),
            },
        ] {
            check(shape);
        }
        check(BTreeMap::from([
            (1u8, "a".to_string()),
            (2, "b".to_string()),
        ]));
        check(HashMap::from([("k".to_string(), vec![Some(1i16), None])]));
        check(serde_bytes_like(vec![9u8; 3]));
    }

    /// A byte buffer serialized as bytes (not as a sequence of u8).
    fn serde_bytes_like(bytes: Vec<u8>) -> ByteBuf {
        ByteBuf(bytes)
    }

    #[derive(Debug, PartialEq)]
    struct ByteBuf(Vec<u8>);

    impl Serialize for ByteBuf {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(&self.0)
        }
    }

    impl<'de> Deserialize<'de> for ByteBuf {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Bytes;
            impl Visitor<'_> for Bytes {
                type Value = ByteBuf;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
                    Ok(ByteBuf(v.to_vec()))
                }
            }
            d.deserialize_byte_buf(Bytes)
        }
    }

    #[test]
    fn malformed_bytes_are_left_to_bincode() {
        assert!(decode_exact::<bool>(&[2]).is_none());
        assert!(decode_exact::<Option<u8>>(&[2, 0]).is_none());
        assert!(decode_exact::<u64>(&[1, 2, 3]).is_none());
        assert!(
            decode_exact::<u32>(&[1, 2, 3, 4, 5]).is_none(),
            "trailing byte"
        );
        assert!(decode_exact::<String>(&[2, 0, 0, 0, 0, 0, 0, 0, 0xC3, 0x28]).is_none());
        assert!(decode_exact::<String>(&[9, 0, 0, 0, 0, 0, 0, 0, b'a']).is_none());
        assert!(decode_exact::<char>(&[0xFF]).is_none());
        assert!(
            decode_exact::<Shape>(&[4, 0, 0, 0]).is_none(),
            "no variant 4"
        );
        assert!(
            decode_exact::<serde_json::Value>(&[0]).is_none(),
            "needs deserialize_any"
        );
    }
}
