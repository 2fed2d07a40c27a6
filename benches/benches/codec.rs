//! Record layouts of real jobs through the wire codec and the key hash, in records/s.
//!
//! Each iteration encodes (or decodes, or hashes the key of) a batch of 1,024 records
//! back to back in one buffer, as a network buffer fills, so the figures are per
//! record on one core with the buffer warm. Layouts: `(u64, u64)` (the keyed
//! harness job), `(String, u64)` (word count) and a Nexmark bid of five fields.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use flink_core::codec::{decode, encode_into};
use flink_core::key_group::{reference_key_hash, stable_key_hash};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

const BATCH: usize = 1024;

/// A Nexmark bid (auction, bidder, price, channel, date_time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Bid {
    auction: u64,
    bidder: u64,
    price: u64,
    channel: String,
    date_time: i64,
}

const CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];

fn pairs() -> Vec<(u64, u64)> {
    (0..BATCH as u64).map(|i| (i % 1000, 1)).collect()
}

fn words() -> Vec<(String, u64)> {
    (0..BATCH as u64)
        .map(|i| (format!("word-{}", i % 1000), 1))
        .collect()
}

fn bids() -> Vec<Bid> {
    (0..BATCH as u64)
        .map(|i| Bid {
            auction: 1000 + i % 100,
            bidder: 2000 + i * 7 % 1000,
            price: 100 + i * 13 % 10_000,
            channel: CHANNELS[i as usize % CHANNELS.len()].to_string(),
            date_time: 1_700_000_000_000 + i as i64,
        })
        .collect()
}

/// Encodes `records` back to back; returns the buffer and where each record ends.
fn encode_all<T: Serialize>(records: &[T], buf: &mut Vec<u8>, ends: &mut Vec<usize>) {
    buf.clear();
    ends.clear();
    for r in records {
        encode_into(r, buf);
        ends.push(buf.len());
    }
}

fn layout<T>(c: &mut Criterion, name: &str, records: Vec<T>)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(BATCH as u64));
    let mut buf = Vec::with_capacity(64 * BATCH);
    let mut ends = Vec::with_capacity(BATCH);
    g.bench_function(BenchmarkId::new("encode", name), |b| {
        b.iter(|| encode_all(black_box(&records), &mut buf, &mut ends))
    });
    encode_all(&records, &mut buf, &mut ends);
    let first: T = decode(&buf[..ends[0]]).unwrap();
    assert_eq!(first, records[0]);
    g.bench_function(BenchmarkId::new("decode", name), |b| {
        b.iter(|| {
            let mut start = 0;
            for &end in &ends {
                black_box(decode::<T>(black_box(&buf[start..end])).unwrap());
                start = end;
            }
        })
    });
    g.finish();
}

/// The key hash of each layout's key: the serializer fed straight into the hash
/// (`stable`) against bincode into a scratch buffer (`reference`, the definition).
fn key_hash(c: &mut Criterion) {
    let mut g = c.benchmark_group("key hash");
    g.throughput(Throughput::Elements(BATCH as u64));
    let keys: Vec<u64> = pairs().into_iter().map(|r| r.0).collect();
    let words: Vec<String> = words().into_iter().map(|r| r.0).collect();
    let auctions: Vec<(u64, String)> = bids().into_iter().map(|b| (b.auction, b.channel)).collect();
    let mut scratch = Vec::new();
    g.bench_function("stable u64", |b| {
        b.iter(|| {
            keys.iter()
                .map(|k| stable_key_hash(black_box(k)))
                .sum::<u32>()
        })
    });
    g.bench_function("reference u64", |b| {
        b.iter(|| {
            keys.iter()
                .map(|k| reference_key_hash(black_box(k), &mut scratch))
                .sum::<u32>()
        })
    });
    g.bench_function("stable String", |b| {
        b.iter(|| {
            words
                .iter()
                .map(|k| stable_key_hash(black_box(k)))
                .sum::<u32>()
        })
    });
    g.bench_function("reference String", |b| {
        b.iter(|| {
            words
                .iter()
                .map(|k| reference_key_hash(black_box(k), &mut scratch))
                .sum::<u32>()
        })
    });
    g.bench_function("stable (u64, String)", |b| {
        b.iter(|| {
            auctions
                .iter()
                .map(|k| stable_key_hash(black_box(k)))
                .sum::<u32>()
        })
    });
    g.bench_function("reference (u64, String)", |b| {
        b.iter(|| {
            auctions
                .iter()
                .map(|k| reference_key_hash(black_box(k), &mut scratch))
                .sum::<u32>()
        })
    });
    g.finish();
}

fn codec(c: &mut Criterion) {
    layout(c, "(u64, u64)", pairs());
    layout(c, "(String, u64)", words());
    layout(c, "bid", bids());
}

criterion_group!(benches, codec, key_hash);
criterion_main!(benches);
