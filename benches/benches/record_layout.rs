//! Record layouts of real jobs through the path records take between tasks, in records/s
//! on one core.
//!
//! Encode: a batch of 1,024 records handed to the engine's network output (the one a
//! task's chain ends in: partitioner, then each record framed into the current 32 KiB
//! buffer of its channel), whose buffers are recycled as soon as they fill. Decode: the
//! buffers that output wrote, handed one at a time to the engine's record decoder (as an
//! input gate hands a buffer's complete records), which rebuilds the records into a batch
//! and delivers it to the next operator, here a sink that drops them. Both are the
//! `StreamType` objects the runtime itself builds for a `DataStream<T>`, so the figures
//! follow whatever the engine's wire format does.
//!
//! Layouts: `(u64, u64)` (the keyed harness job), `(String, u64)` (word count, words of
//! 8-9 bytes) and a Nexmark bid of five fields.

use std::sync::{Arc, Mutex};

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use flink_core::functions::Collector;
use flink_core::output::{AnyOutput, Output};
use flink_core::partitioner::Partitioner;
use flink_core::stream_type::{NetworkOutputSetup, Record, RecordBytesWriter, TypeOf};
use flink_core::watermark::Watermark;
use serde::{Deserialize, Serialize};

/// Records per batch handed to the network output (the source batch of the harness).
const BATCH: usize = 1024;
/// The engine's default network buffer size.
const BUFFER: usize = 32 * 1024;
/// The engine's default number of key groups.
const KEY_GROUPS: usize = 128;

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

/// One channel's network buffers: `BUFFER` bytes filled with frames, recycled at once
/// when full (a consumer that keeps up), or kept in `shipped` when capturing.
struct BufferWriter {
    buffer: Box<[u8]>,
    used: usize,
    shipped: Option<Arc<Mutex<Vec<Vec<u8>>>>>,
}

impl BufferWriter {
    fn new(shipped: Option<Arc<Mutex<Vec<Vec<u8>>>>>) -> Self {
        Self {
            buffer: vec![0; BUFFER].into_boxed_slice(),
            used: 0,
            shipped,
        }
    }

    /// Sends the filled part of the buffer on and starts an empty one.
    fn ship(&mut self) {
        if let Some(shipped) = &self.shipped
            && self.used > 0
        {
            let bytes = self.buffer[..self.used].to_vec();
            shipped.lock().expect("not poisoned").push(bytes);
        }
        self.used = 0;
    }
}

impl RecordBytesWriter for BufferWriter {
    fn write(&mut self, _channel: usize, record: &[u8]) {
        let frame = flink_core::codec::LENGTH_PREFIX + record.len();
        assert!(
            frame <= BUFFER,
            "the layouts here are far smaller than a buffer"
        );
        if self.used + frame > BUFFER {
            self.ship();
        }
        let len = u32::try_from(record.len()).expect("small record");
        self.buffer[self.used..self.used + 4].copy_from_slice(&len.to_le_bytes());
        self.buffer[self.used + 4..self.used + frame].copy_from_slice(record);
        self.used += frame;
    }

    fn spare(&mut self, _channel: usize) -> &mut [u8] {
        let start = (self.used + flink_core::codec::LENGTH_PREFIX).min(BUFFER);
        &mut self.buffer[start..]
    }

    fn commit(&mut self, _channel: usize, len: usize) {
        let prefix = u32::try_from(len).expect("small record").to_le_bytes();
        self.buffer[self.used..self.used + 4].copy_from_slice(&prefix);
        self.used += flink_core::codec::LENGTH_PREFIX + len;
    }

    fn spare_frames(&mut self, _channel: usize) -> &mut [u8] {
        &mut self.buffer[self.used..]
    }

    fn commit_frames(&mut self, _channel: usize, len: usize) {
        self.used += len;
    }

    fn broadcast(&mut self, record: &[u8]) {
        self.write(0, record);
    }

    fn flush(&mut self) {
        self.ship();
    }

    fn finish(&mut self) {
        self.ship();
    }

    fn watermark(&mut self, _watermark: Watermark) {}

    fn barrier(&mut self, _barrier: flink_core::checkpoint::CheckpointBarrier) {
        // The benchmark measures records only; no checkpoint runs through it.
    }
}

/// The end of the decoding task's chain: drops what it gets, counting it.
struct DroppingSink(u64);

impl<T> Collector<T> for DroppingSink {
    fn collect(&mut self, _record: T) {
        self.0 += 1;
    }
}

impl<T> Output<T> for DroppingSink {
    fn collect_batch(&mut self, batch: &mut Vec<T>) {
        self.0 += batch.len() as u64;
        batch.clear();
    }

    fn end_input(&mut self) {}

    fn flush(&mut self) {}
}

/// The engine's network output for `T` on a forward edge with one channel.
fn network_output<T: Record>(writer: BufferWriter) -> Box<dyn Output<T>> {
    let setup = NetworkOutputSetup {
        channels: 1,
        max_parallelism: KEY_GROUPS,
        subtask_index: 0,
    };
    TypeOf::<T>::arc()
        .network_output(&Partitioner::<T>::Forward, Box::new(writer), setup)
        .into_typed::<T>()
}

/// The buffers the network output writes for `records`.
fn buffers_of<T: Record>(records: &[T]) -> Vec<Vec<u8>> {
    let shipped = Arc::new(Mutex::new(Vec::new()));
    let mut out = network_output::<T>(BufferWriter::new(Some(shipped.clone())));
    out.collect_batch(&mut records.to_vec());
    out.end_input();
    drop(out);
    Arc::try_unwrap(shipped)
        .expect("the output is gone")
        .into_inner()
        .expect("not poisoned")
}

fn layout<T: Record + PartialEq + std::fmt::Debug>(c: &mut Criterion, name: &str, records: Vec<T>) {
    let mut g = c.benchmark_group("record layout");
    g.throughput(Throughput::Elements(BATCH as u64));

    let mut out = network_output::<T>(BufferWriter::new(None));
    g.bench_function(BenchmarkId::new("encode", name), |b| {
        b.iter_batched_ref(
            || records.clone(),
            |batch| out.collect_batch(batch),
            BatchSize::SmallInput,
        )
    });

    let buffers = buffers_of(&records);
    let decoded = Arc::new(Mutex::new(Vec::new()));
    let mut check = TypeOf::<T>::arc().decoder(
        AnyOutput::new::<T>(Box::new(Keep(decoded.clone()))),
        Arc::from("check"),
    );
    for buffer in &buffers {
        check.decode_framed(buffer);
    }
    check.deliver();
    assert_eq!(
        *decoded.lock().expect("not poisoned"),
        records,
        "{name} round trip"
    );

    let mut decoder = TypeOf::<T>::arc().decoder(
        AnyOutput::new::<T>(Box::new(DroppingSink(0))),
        Arc::from("bench"),
    );
    g.bench_function(BenchmarkId::new("decode", name), |b| {
        b.iter(|| {
            for buffer in &buffers {
                decoder.decode_framed(std::hint::black_box(buffer));
                decoder.deliver();
            }
        })
    });
    g.finish();
}

/// Keeps what it gets (the round-trip check before the decode benchmark).
struct Keep<T>(Arc<Mutex<Vec<T>>>);

impl<T> Collector<T> for Keep<T> {
    fn collect(&mut self, record: T) {
        self.0.lock().expect("not poisoned").push(record);
    }
}

impl<T: Send> Output<T> for Keep<T> {
    fn end_input(&mut self) {}

    fn flush(&mut self) {}
}

fn record_layouts(c: &mut Criterion) {
    layout(c, "(u64, u64)", pairs());
    layout(c, "(String, u64)", words());
    layout(c, "bid", bids());
}

criterion_group!(benches, record_layouts);
criterion_main!(benches);
