//! The stable hash of a key, computed without building its bytes in a buffer first.
//!
//! A key's hash is defined (see [`crate::key_group`]) as MurmurHash3 x86_32, seed 0,
//! over the key's encoding in bincode 2's standard configuration ([`KEY_HASH`]).
//! [`stable_key_hash`] produces the same bytes with a serde serializer of its own that
//! feeds them straight into the hash: no bincode encoder, no `io::Write`, no `Vec`.
//! For an integer or string key the whole path inlines to a few instructions per
//! byte. [`reference_key_hash`] is the definition itself; tests hold the two equal.

use serde::Serialize;

use crate::bincode_serializer::{BincodeSerializer, ByteSink, Res, Unencodable};
use crate::codec::{KEY_HASH, encode_with};

/// MurmurHash3 x86_32 over bytes that arrive in pieces. Bytes short of a 4-byte
/// block wait in a register, not in memory: a key's bytes are hashed as they are
/// produced, with no store to reload.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Murmur3 {
    h: u32,
    /// Bytes taken so far, pending ones included.
    len: usize,
    /// Up to three bytes of the next block, little-endian.
    pending: u32,
    pending_len: u32,
}

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

impl Murmur3 {
    /// A hash with `seed` over no bytes yet.
    #[inline(always)]
    pub(crate) fn new(seed: u32) -> Self {
        Self {
            h: seed,
            len: 0,
            pending: 0,
            pending_len: 0,
        }
    }

    #[inline(always)]
    fn mix(&mut self, k: u32) {
        self.h ^= k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        self.h = self
            .h
            .rotate_left(13)
            .wrapping_mul(5)
            .wrapping_add(0xe654_6b64);
    }

    /// Takes one byte.
    #[inline(always)]
    pub(crate) fn byte(&mut self, b: u8) {
        self.pending |= u32::from(b) << (8 * self.pending_len);
        self.pending_len += 1;
        self.len += 1;
        if self.pending_len == 4 {
            self.mix(self.pending);
            self.pending = 0;
            self.pending_len = 0;
        }
    }

    /// Takes the low `n` bytes (1 to 8) of `v`, little-endian; the other bytes of `v`
    /// must be zero. An integer goes in as one value, not byte by byte.
    #[inline(always)]
    pub(crate) fn word(&mut self, v: u64, n: u32) {
        debug_assert!((1..=8).contains(&n) && (n == 8 || v >> (8 * n) == 0));
        let mut acc = u128::from(self.pending) | (u128::from(v) << (8 * self.pending_len));
        let mut have = self.pending_len + n;
        self.len += n as usize;
        // At most 11 bytes: two blocks at most.
        while have >= 4 {
            self.mix(acc as u32);
            acc >>= 32;
            have -= 4;
        }
        self.pending = acc as u32;
        self.pending_len = have;
    }

    /// Takes `bytes`.
    #[inline(always)]
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        if bytes.len() <= 8 {
            if let Some(w) = short_le(bytes) {
                self.word(w, bytes.len() as u32);
            }
        } else {
            self.write_long(bytes);
        }
    }

    /// Takes a long run of bytes: whole blocks straight from the slice.
    #[inline(never)]
    fn write_long(&mut self, mut bytes: &[u8]) {
        while self.pending_len != 0 {
            let Some((b, rest)) = bytes.split_first() else {
                return;
            };
            self.byte(*b);
            bytes = rest;
        }
        let mut chunks = bytes.chunks_exact(4);
        for chunk in &mut chunks {
            self.mix(u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]));
        }
        self.len += bytes.len() - chunks.remainder().len();
        for b in chunks.remainder() {
            self.byte(*b);
        }
    }

    /// The hash of the bytes taken.
    #[inline(always)]
    pub(crate) fn finish(self) -> u32 {
        let mut h = self.h;
        if self.pending_len != 0 {
            h ^= self
                .pending
                .wrapping_mul(C1)
                .rotate_left(15)
                .wrapping_mul(C2);
        }
        // MurmurHash3 mixes in the length modulo 2^32.
        h ^= self.len as u32;
        h ^= h >> 16;
        h = h.wrapping_mul(0x85eb_ca6b);
        h ^= h >> 13;
        h = h.wrapping_mul(0xc2b2_ae35);
        h ^ (h >> 16)
    }
}

/// Up to 8 bytes as a little-endian integer, from at most three loads, whatever the
/// length (overlapping loads put the same byte in the same place); `None` if empty.
#[inline(always)]
fn short_le(bytes: &[u8]) -> Option<u64> {
    let n = bytes.len();
    debug_assert!(n <= 8);
    let le32 = |at: usize| u64::from(u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()));
    match n {
        0 => None,
        1..=3 => Some(
            u64::from(bytes[0])
                | u64::from(bytes[n / 2]) << (8 * (n / 2))
                | u64::from(bytes[n - 1]) << (8 * (n - 1)),
        ),
        _ => Some(le32(0) | le32(n - 4) << (8 * (n - 4))),
    }
}

/// The stable hash of a key: MurmurHash3 x86_32 (seed 0) of its [`KEY_HASH`] encoding.
///
/// Equal to [`reference_key_hash`] for every key; faster, as no bytes are buffered.
///
/// ```
/// use flink_core::key_group::{reference_key_hash, stable_key_hash};
/// let key = ("auction".to_string(), 42u64);
/// assert_eq!(stable_key_hash(&key), reference_key_hash(&key, &mut Vec::new()));
/// ```
///
/// # Panics
/// As [`reference_key_hash`], if the key cannot be encoded (a sequence or map whose
/// `Serialize` does not tell its length, or a custom impl returning an error).
#[inline]
pub fn stable_key_hash<K: Serialize + ?Sized>(key: &K) -> u32 {
    let mut hasher = BincodeSerializer::<_, false> {
        sink: Murmur3::new(0),
    };
    match key.serialize(&mut hasher) {
        Ok(()) => hasher.sink.finish(),
        // The definition names the error (and fails the same way).
        Err(Unencodable) => reference_key_hash(key, &mut Vec::new()),
    }
}

/// The definition of a key's hash: encode it with bincode into `scratch`, then hash
/// those bytes. Kept as the reference [`stable_key_hash`] is tested against.
///
/// # Panics
/// If the key cannot be encoded in [`KEY_HASH`] (see [`crate::codec::encode_with`]).
pub fn reference_key_hash<K: Serialize + ?Sized>(key: &K, scratch: &mut Vec<u8>) -> u32 {
    scratch.clear();
    encode_with(key, scratch, KEY_HASH);
    let mut murmur = Murmur3::new(0);
    murmur.write(scratch);
    murmur.finish()
}

impl ByteSink for Murmur3 {
    #[inline(always)]
    fn byte(&mut self, b: u8) -> Res {
        Murmur3::byte(self, b);
        Ok(())
    }

    #[inline(always)]
    fn word(&mut self, v: u64, n: u32) -> Res {
        Murmur3::word(self, v, n);
        Ok(())
    }

    #[inline(always)]
    fn write(&mut self, bytes: &[u8]) -> Res {
        Murmur3::write(self, bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fmt;

    use proptest::prelude::*;
    use serde::Serialize;

    use super::*;

    /// The fast path and the definition agree on `key`.
    fn agree<K: Serialize + ?Sized + fmt::Debug>(key: &K) {
        assert_eq!(
            stable_key_hash(key),
            reference_key_hash(key, &mut Vec::new()),
            "key {key:?}"
        );
    }

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

    #[derive(Debug, Serialize)]
    struct Wrapper(i16);

    #[test]
    fn varint_boundaries_agree() {
        for v in [
            0u64,
            250,
            251,
            65_535,
            65_536,
            u64::from(u32::MAX),
            u64::from(u32::MAX) + 1,
            u64::MAX,
        ] {
            agree(&v);
            agree(&(v as u32));
            agree(&(v as u16));
            agree(&(v as i64));
            agree(&-(v as i64));
            agree(&u128::from(v));
            agree(&(u128::from(v) << 64));
            agree(&-(i128::from(v) << 64));
        }
        agree(&i64::MIN);
        agree(&i128::MIN);
        agree(&i16::MIN);
        agree(&i8::MIN);
    }

    #[test]
    fn other_data_model_types_agree() {
        agree(&());
        agree(&true);
        agree(&'ß');
        agree(&1.5f32);
        agree(&-2.25f64);
        agree(&Some("x"));
        agree(&None::<u64>);
        agree(&Shape::Unit);
        agree(&Shape::Newtype(-7));
        agree(&Shape::Tuple(300, '€'));
        agree(&Shape::Struct {
            id: u128::MAX,
            tag: Some("t".into()),
        });
        agree(&Wrapper(-300));
        agree(&vec![1u8, 2, 3]);
        agree(&BTreeMap::from([("a", 1u32), ("b", 70_000)]));
        agree(&"x".repeat(1000));
        // Every short length, at every offset within a block.
        let text = "abcdefghijklmnopqrstuvwxyz";
        for n in 0..=text.len() {
            agree(&text[..n]);
            agree(&(7u8, &text[..n]));
            agree(&(300u16, &text[..n], n as u8));
            agree(&(70_000u32, &text[..n]));
        }
        agree(&"127.0.0.1".parse::<std::net::IpAddr>().unwrap());
    }

    proptest! {
        #[test]
        fn integers_agree(a in any::<u64>(), b in any::<i64>(), c in any::<u32>(), d in any::<i32>()) {
            agree(&a);
            agree(&b);
            agree(&c);
            agree(&d);
            agree(&(a % 1000));
            agree(&(a, b, c, d));
        }

        #[test]
        fn strings_agree(s in ".{0,80}", n in any::<u64>()) {
            agree(&s);
            agree(s.as_str());
            agree(&(s.clone(), n));
            agree(&(n, s.as_str(), s.len() as u32));
        }

        #[test]
        fn bids_agree(
            auction in any::<u64>(),
            bidder in any::<u64>(),
            price in any::<u64>(),
            channel in "[a-z]{0,40}",
            date_time in any::<i64>(),
        ) {
            agree(&Bid { auction, bidder, price, channel, date_time });
        }

        #[test]
        fn sequences_agree(v in proptest::collection::vec(any::<u16>(), 0..100)) {
            agree(&v);
        }
    }
}
