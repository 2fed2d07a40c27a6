//! bincode 2's standard encoding written by a serde serializer of our own into a
//! [`ByteSink`]: a hash taking the bytes as they come ([`crate::key_hash`]) or the
//! room left in a network buffer ([`encode_into_room`]). Being generic over the
//! sink, the whole path inlines into the caller's loop: no bincode encoder, no
//! `io::Write`, no per-field error plumbing beyond a room check. Tests hold its
//! bytes equal to bincode's for every kind of value.

use std::fmt;

use serde::Serialize;
use serde::ser::{self, Serializer};

/// Where the serializer's bytes go.
pub(crate) trait ByteSink {
    /// Takes one byte.
    fn byte(&mut self, b: u8) -> Res;
    /// Takes the low `n` bytes (1 to 8) of `v`, little-endian; the other bytes of
    /// `v` are zero.
    fn word(&mut self, v: u64, n: u32) -> Res;
    /// Takes `bytes`.
    fn write(&mut self, bytes: &[u8]) -> Res;
}

/// A serde serializer writing bincode's standard encoding into a [`ByteSink`].
///
/// Rules of that encoding (bincode 2.0, `config::standard()`): `u8`, `i8` and `bool`
/// as one byte; other integers as varints (values up to 250 in one byte, else a
/// marker 251/252/253/254 and 2/4/8/16 little-endian bytes; signed ones zigzag
/// first); floats little-endian; `char` as UTF-8; strings and byte strings as varint
/// length then bytes; `None`/`Some` as 0/1 before the value; enum variants as the
/// variant index (a `u32` varint); sequences and maps as varint length then items;
/// tuples and structs as their fields in order, nothing around them.
///
/// With `FIXINT` (bincode's `with_fixed_int_encoding()`, the wire's configuration)
/// every integer is its width in little-endian bytes instead, signed ones in two's
/// complement; lengths are `u64`s and variant indexes `u32`s.
pub(crate) struct BincodeSerializer<S, const FIXINT: bool> {
    pub(crate) sink: S,
}

/// A value this serializer does not write: one bincode cannot encode either (a
/// sequence of unknown length, a custom serialization error), or one that does not
/// fit the sink's room. Callers then take bincode's own path, which names the error
/// or spans buffers.
#[derive(Debug)]
pub(crate) struct Unencodable;

impl fmt::Display for Unencodable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("value not handled by the fast path")
    }
}

impl std::error::Error for Unencodable {}

impl ser::Error for Unencodable {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        Unencodable
    }
}

const SINGLE_BYTE_MAX: u8 = 250;
const U16_BYTE: u8 = 251;
const U32_BYTE: u8 = 252;
const U64_BYTE: u8 = 253;
const U128_BYTE: u8 = 254;

impl<S: ByteSink, const FIXINT: bool> BincodeSerializer<S, FIXINT> {
    #[inline(always)]
    fn varint(&mut self, v: u64) -> Res {
        let m = &mut self.sink;
        if v <= u64::from(SINGLE_BYTE_MAX) {
            m.word(v, 1)
        } else if v <= u64::from(u16::MAX) {
            m.word(u64::from(U16_BYTE) | v << 8, 3)
        } else if v <= u64::from(u32::MAX) {
            m.word(u64::from(U32_BYTE) | v << 8, 5)
        } else {
            m.word(u64::from(U64_BYTE), 1)?;
            m.word(v, 8)
        }
    }

    #[inline(always)]
    fn varint_signed(&mut self, v: i64) -> Res {
        self.varint(zigzag(v))
    }

    /// An unsigned integer of `width` bytes.
    #[inline(always)]
    fn uint(&mut self, v: u64, width: u32) -> Res {
        if FIXINT {
            self.sink.word(v, width)
        } else {
            self.varint(v)
        }
    }

    /// A signed integer of `width` bytes.
    #[inline(always)]
    fn int(&mut self, v: i64, width: u32) -> Res {
        if FIXINT {
            let bits = if width == 8 {
                v as u64
            } else {
                v as u64 & ((1 << (8 * width)) - 1)
            };
            self.sink.word(bits, width)
        } else {
            self.varint_signed(v)
        }
    }

    /// A length (of a string, sequence or map).
    #[inline(always)]
    fn len(&mut self, len: usize) -> Res {
        self.uint(len as u64, 8)
    }

    /// An enum variant's index.
    #[inline(always)]
    fn variant(&mut self, index: u32) -> Res {
        self.uint(index.into(), 4)
    }

    #[inline]
    fn uint128(&mut self, v: u128) -> Res {
        if FIXINT {
            self.sink.write(&v.to_le_bytes())
        } else {
            self.varint128(v)
        }
    }

    #[inline]
    fn varint128(&mut self, v: u128) -> Res {
        match u64::try_from(v) {
            Ok(small) => self.varint(small),
            Err(_) => {
                self.sink.byte(U128_BYTE)?;
                self.sink.write(&v.to_le_bytes())
            }
        }
    }
}

/// Zigzag: 0, -1, 1, -2 ... to 0, 1, 2, 3 ...; the same value at every width.
#[inline]
fn zigzag(v: i64) -> u64 {
    if v < 0 {
        !(v as u64) * 2 + 1
    } else {
        (v as u64) * 2
    }
}

fn zigzag128(v: i128) -> u128 {
    if v < 0 {
        !(v as u128) * 2 + 1
    } else {
        (v as u128) * 2
    }
}

pub(crate) type Res = Result<(), Unencodable>;

impl<S: ByteSink, const FIXINT: bool> Serializer for &mut BincodeSerializer<S, FIXINT> {
    type Ok = ();
    type Error = Unencodable;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    #[inline]
    fn serialize_bool(self, v: bool) -> Res {
        self.sink.byte(u8::from(v))
    }
    #[inline]
    fn serialize_i8(self, v: i8) -> Res {
        self.sink.byte(v as u8)
    }
    #[inline]
    fn serialize_i16(self, v: i16) -> Res {
        self.int(v.into(), 2)
    }
    #[inline]
    fn serialize_i32(self, v: i32) -> Res {
        self.int(v.into(), 4)
    }
    #[inline]
    fn serialize_i64(self, v: i64) -> Res {
        self.int(v, 8)
    }
    #[inline]
    fn serialize_i128(self, v: i128) -> Res {
        if FIXINT {
            self.sink.write(&v.to_le_bytes())
        } else {
            self.varint128(zigzag128(v))
        }
    }
    #[inline]
    fn serialize_u8(self, v: u8) -> Res {
        self.sink.byte(v)
    }
    #[inline]
    fn serialize_u16(self, v: u16) -> Res {
        self.uint(v.into(), 2)
    }
    #[inline]
    fn serialize_u32(self, v: u32) -> Res {
        self.uint(v.into(), 4)
    }
    #[inline]
    fn serialize_u64(self, v: u64) -> Res {
        self.uint(v, 8)
    }
    #[inline]
    fn serialize_u128(self, v: u128) -> Res {
        self.uint128(v)
    }
    #[inline]
    fn serialize_f32(self, v: f32) -> Res {
        self.sink.word(v.to_bits().into(), 4)
    }
    #[inline]
    fn serialize_f64(self, v: f64) -> Res {
        self.sink.word(v.to_bits(), 8)
    }
    #[inline]
    fn serialize_char(self, v: char) -> Res {
        self.sink.write(v.encode_utf8(&mut [0; 4]).as_bytes())
    }
    #[inline]
    fn serialize_str(self, v: &str) -> Res {
        self.serialize_bytes(v.as_bytes())
    }
    #[inline]
    fn serialize_bytes(self, v: &[u8]) -> Res {
        self.len(v.len())?;
        self.sink.write(v)
    }
    #[inline]
    fn serialize_none(self) -> Res {
        self.sink.byte(0)
    }
    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Res {
        self.sink.byte(1)?;
        value.serialize(self)
    }
    #[inline]
    fn serialize_unit(self) -> Res {
        Ok(())
    }
    #[inline]
    fn serialize_unit_struct(self, _name: &'static str) -> Res {
        Ok(())
    }
    #[inline]
    fn serialize_unit_variant(self, _name: &'static str, index: u32, _v: &'static str) -> Res {
        self.variant(index)
    }
    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _n: &'static str, v: &T) -> Res {
        v.serialize(self)
    }
    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        value: &T,
    ) -> Res {
        self.variant(index)?;
        value.serialize(self)
    }
    #[inline]
    fn serialize_seq(self, len: Option<usize>) -> Result<Self, Unencodable> {
        self.len(len.ok_or(Unencodable)?)?;
        Ok(self)
    }
    #[inline]
    fn serialize_tuple(self, _len: usize) -> Result<Self, Unencodable> {
        Ok(self)
    }
    #[inline]
    fn serialize_tuple_struct(self, _n: &'static str, _l: usize) -> Result<Self, Unencodable> {
        Ok(self)
    }
    #[inline]
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, Unencodable> {
        self.variant(index)?;
        Ok(self)
    }
    #[inline]
    fn serialize_map(self, len: Option<usize>) -> Result<Self, Unencodable> {
        self.len(len.ok_or(Unencodable)?)?;
        Ok(self)
    }
    #[inline]
    fn serialize_struct(self, _n: &'static str, _l: usize) -> Result<Self, Unencodable> {
        Ok(self)
    }
    #[inline]
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, Unencodable> {
        self.variant(index)?;
        Ok(self)
    }
    #[inline]
    fn is_human_readable(&self) -> bool {
        // As bincode: types such as `IpAddr` then choose their compact form.
        false
    }
}

/// The parts of compound values are written one after the other, nothing between.
macro_rules! compound {
    ($($trait:ident :: $method:ident $(($key:ty))?),* $(,)?) => {$(
        impl<S: ByteSink, const FIXINT: bool> ser::$trait for &mut BincodeSerializer<S, FIXINT> {
            type Ok = ();
            type Error = Unencodable;
            fn $method<T: Serialize + ?Sized>(&mut self, $(_key: $key,)? value: &T) -> Res {
                value.serialize(&mut **self)
            }
            fn end(self) -> Res {
                Ok(())
            }
        }
    )*};
}

compound!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
    SerializeStruct::serialize_field(&'static str),
    SerializeStructVariant::serialize_field(&'static str),
);

impl<S: ByteSink, const FIXINT: bool> ser::SerializeMap for &mut BincodeSerializer<S, FIXINT> {
    type Ok = ();
    type Error = Unencodable;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Res {
        key.serialize(&mut **self)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Res {
        value.serialize(&mut **self)
    }
    fn end(self) -> Res {
        Ok(())
    }
}

/// The room left in a buffer, filled from its start.
pub(crate) struct SliceSink<'a> {
    room: &'a mut [u8],
    at: usize,
}

impl ByteSink for SliceSink<'_> {
    #[inline(always)]
    fn byte(&mut self, b: u8) -> Res {
        let slot = self.room.get_mut(self.at).ok_or(Unencodable)?;
        *slot = b;
        self.at += 1;
        Ok(())
    }

    #[inline(always)]
    fn word(&mut self, v: u64, n: u32) -> Res {
        let n = n as usize;
        match self.room.get_mut(self.at..self.at + 8) {
            // All 8 bytes stored at once; those past `n` are overwritten next or
            // lie beyond what is committed.
            Some(eight) => eight.copy_from_slice(&v.to_le_bytes()),
            None => self
                .room
                .get_mut(self.at..self.at + n)
                .ok_or(Unencodable)?
                .copy_from_slice(&v.to_le_bytes()[..n]),
        }
        self.at += n;
        Ok(())
    }

    #[inline(always)]
    fn write(&mut self, bytes: &[u8]) -> Res {
        let end = self.at + bytes.len();
        self.room
            .get_mut(self.at..end)
            .ok_or(Unencodable)?
            .copy_from_slice(bytes);
        self.at = end;
        Ok(())
    }
}

/// Writes the wire's encoding of `value` ([`crate::codec::WIRE`]: bincode's standard
/// configuration with fixed-width integers) at the start of `room`, returning the
/// bytes written; `None` if it does not fit or is not encodable (then encode it
/// with bincode itself, which spans buffers or names the error).
#[inline(always)]
pub(crate) fn encode_into_room<T: Serialize + ?Sized>(value: &T, room: &mut [u8]) -> Option<usize> {
    let mut serializer = BincodeSerializer::<_, true> {
        sink: SliceSink { room, at: 0 },
    };
    value.serialize(&mut serializer).ok()?;
    Some(serializer.sink.at)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[derive(Debug, Serialize)]
    struct Bid {
        auction: u64,
        bidder: u64,
        price: u64,
        channel: String,
        date_time: i64,
    }

    #[derive(Debug, Serialize)]
    enum Shape {
        Unit,
        Newtype(i32),
        Tuple(u16, char),
        Struct { id: u128, tag: Option<String> },
    }

    /// Written into rooms of every size up to the encoding's and beyond: the bytes
    /// are bincode's when it fits, `None` when it does not.
    fn same_as_bincode<T: Serialize + fmt::Debug>(value: &T) {
        let mut expected = Vec::new();
        crate::codec::encode_into(value, &mut expected);
        for size in 0..=expected.len() + 9 {
            let mut room = vec![0xAA; size];
            match encode_into_room(value, &mut room) {
                Some(n) => {
                    assert!(size >= expected.len(), "{value:?} fit in {size}");
                    assert_eq!(&room[..n], &expected[..], "{value:?}");
                }
                None => assert!(size < expected.len(), "{value:?} refused in {size}"),
            }
        }
    }

    #[test]
    fn writes_bincodes_bytes_for_every_kind_of_value_or_nothing_if_it_does_not_fit() {
        for v in [0u64, 250, 251, 65_535, 65_536, u32::MAX.into(), u64::MAX] {
            same_as_bincode(&v);
            same_as_bincode(&(v, v / 3));
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX, -300] {
            same_as_bincode(&v);
        }
        same_as_bincode(&(u128::MAX, i128::MIN, -5i8, 7u8, true, 'é', 1.5f32, -2.25f64));
        same_as_bincode(&("auction".to_string(), 42u64));
        same_as_bincode(&"x".repeat(300));
        same_as_bincode(&Bid {
            auction: 1_000,
            bidder: 7,
            price: 1 << 40,
            channel: "Google".into(),
            date_time: -86_400_000,
        });
        for shape in [
            Shape::Unit,
            Shape::Newtype(-9),
            Shape::Tuple(300, 'z'),
            Shape::Struct {
                id: 1 << 100,
                tag: Some("t".into()),
            },
            Shape::Struct { id: 3, tag: None },
        ] {
            same_as_bincode(&shape);
        }
        same_as_bincode(&vec![Some(1u32), None]);
        same_as_bincode(&BTreeMap::from([(1u16, "a".to_string()), (2, "bb".into())]));
        same_as_bincode(&((), [1u8, 2, 3]));
    }
}
