//! Micro-benchmarks of the hot path: record serialization and one credit-based channel.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flink_core::codec::{decode, encode_into};
use flink_runtime::network::{
    CancelToken, GateItem, GatePoll, InputGate, IoMetrics, NetworkConfig, PartitionWriter,
    ResultPartition, local_connect,
};

fn serializer(c: &mut Criterion) {
    let mut g = c.benchmark_group("serializer");
    g.throughput(Throughput::Elements(1));
    let mut buf = Vec::with_capacity(64);
    g.bench_function("encode u64", |b| {
        b.iter(|| {
            buf.clear();
            encode_into(black_box(&123_456_789u64), &mut buf);
        })
    });
    let record = ("word".to_string(), 42u64);
    g.bench_function("encode (String, u64)", |b| {
        b.iter(|| {
            buf.clear();
            encode_into(black_box(&record), &mut buf);
        })
    });
    buf.clear();
    encode_into(&record, &mut buf);
    g.bench_function("decode (String, u64)", |b| {
        b.iter(|| decode::<(String, u64)>(black_box(&buf)).unwrap())
    });
    g.finish();
}

const RECORDS: u64 = 1_000_000;

/// One writer thread pushing 9-byte records through one channel to one gate.
fn channel(c: &mut Criterion) {
    let mut g = c.benchmark_group("channel");
    g.throughput(Throughput::Elements(RECORDS));
    g.sample_size(10);
    g.bench_function("1M x 9-byte records, one channel", |b| {
        b.iter(|| {
            let config = NetworkConfig::default();
            let cancel = CancelToken::new();
            let partition = ResultPartition::new(
                1,
                config.default_partition_pool_size(1),
                config.buffer_size,
                cancel.clone(),
                IoMetrics::new(),
            )
            .unwrap();
            let mut gate = InputGate::new(1, &config, cancel, IoMetrics::new()).unwrap();
            local_connect(&partition, 0, &gate, 0).unwrap();
            let writer = std::thread::spawn(move || {
                let mut w = PartitionWriter::new(partition).unwrap();
                let record = [7u8; 9];
                for _ in 0..RECORDS {
                    w.emit(0, &record).unwrap();
                }
                w.finish().unwrap();
            });
            let mut seen = 0u64;
            while gate
                .poll(Duration::from_millis(100), &mut |item| {
                    if let GateItem::Record { .. } = item {
                        seen += 1;
                    }
                })
                .unwrap()
                != GatePoll::Finished
            {}
            writer.join().unwrap();
            assert_eq!(seen, RECORDS);
        })
    });
    g.finish();
}

criterion_group!(benches, serializer, channel);
criterion_main!(benches);
