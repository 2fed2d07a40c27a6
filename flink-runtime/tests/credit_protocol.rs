//! Integration tests of the credit-based network layer.

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use flink_runtime::network::{
    CancelToken, Event, GateItem, GatePoll, InputGate, IoMetrics, NetworkConfig, NetworkError,
    PartitionWriter, ResultPartition, connect_all_to_all, connect_forward, local_connect,
};
use proptest::prelude::*;

/// Tiny deterministic PRNG (xorshift) for consumer slowness and record contents.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// Record `k` of channel `ch` with `len` bytes; content identifies channel and index.
fn make_record(ch: usize, k: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (ch * 31 + k * 7 + i) as u8)
        .collect::<Vec<u8>>()
}

struct Setup {
    config: NetworkConfig,
    pool_size: usize,
    /// One producer per channel (each a 1-subpartition partition) instead of one producer
    /// with N subpartitions.
    multi_producer: bool,
    /// Flush after every `flush_every` records of a channel (0 = never, only finish).
    flush_every: usize,
    slowness_seed: u64,
}

struct Outcome {
    received: Vec<Vec<Vec<u8>>>,
    events: Vec<Vec<Event>>,
    partitions: Vec<Arc<ResultPartition>>,
    gate_stats: flink_runtime::network::GateStats,
}

/// Run producers -> one gate; return what arrived per channel.
fn run(setup: &Setup, records: &[Vec<usize>]) -> Outcome {
    let n = records.len();
    let cancel = CancelToken::new();
    let out_metrics = IoMetrics::new();
    let in_metrics = IoMetrics::new();
    let gate = InputGate::new(n, &setup.config, cancel.clone(), Arc::clone(&in_metrics)).unwrap();
    let partitions: Vec<Arc<ResultPartition>> = if setup.multi_producer {
        (0..n)
            .map(|_| {
                ResultPartition::new(
                    1,
                    setup.pool_size.max(2),
                    setup.config.buffer_size,
                    cancel.clone(),
                    Arc::clone(&out_metrics),
                )
                .unwrap()
            })
            .collect()
    } else {
        vec![
            ResultPartition::new(
                n,
                setup.pool_size.max(n + 1),
                setup.config.buffer_size,
                cancel.clone(),
                Arc::clone(&out_metrics),
            )
            .unwrap(),
        ]
    };
    if setup.multi_producer {
        for (i, p) in partitions.iter().enumerate() {
            local_connect(p, 0, &gate, i).unwrap();
        }
    } else {
        for i in 0..n {
            local_connect(&partitions[0], i, &gate, i).unwrap();
        }
    }

    let flush_every = setup.flush_every;
    let mut producers = Vec::new();
    if setup.multi_producer {
        for (ch, p) in partitions.iter().enumerate() {
            let p = Arc::clone(p);
            let lens = records[ch].clone();
            producers.push(thread::spawn(move || {
                let mut w = PartitionWriter::new(p).unwrap();
                for (k, len) in lens.iter().enumerate() {
                    w.emit(0, &make_record(ch, k, *len)).unwrap();
                    if flush_every > 0 && k % flush_every == 0 {
                        w.flush(0).unwrap();
                    }
                }
                w.finish().unwrap();
            }));
        }
    } else {
        let p = Arc::clone(&partitions[0]);
        let recs = records.to_vec();
        producers.push(thread::spawn(move || {
            let mut w = PartitionWriter::new(p).unwrap();
            let max = recs.iter().map(Vec::len).max().unwrap_or(0);
            for k in 0..max {
                for (ch, lens) in recs.iter().enumerate() {
                    if let Some(len) = lens.get(k) {
                        w.emit(ch, &make_record(ch, k, *len)).unwrap();
                        if flush_every > 0 && k % flush_every == 0 {
                            w.flush(ch).unwrap();
                        }
                    }
                }
            }
            w.finish().unwrap();
        }));
    }

    let seed = setup.slowness_seed;
    let consumer = thread::spawn(move || {
        let mut gate = gate;
        let mut rng = Rng(seed | 1);
        let mut received = vec![Vec::new(); n];
        let mut events = vec![Vec::new(); n];
        loop {
            match rng.next() % 8 {
                0 => thread::yield_now(),
                1 => thread::sleep(Duration::from_micros(rng.next() % 5)),
                _ => {}
            }
            let r = gate
                .poll(Duration::from_secs(30), &mut |item| match item {
                    GateItem::Record { channel, bytes } => received[channel].push(bytes.to_vec()),
                    GateItem::Event { channel, event } => events[channel].push(event),
                    GateItem::Records { .. } => unreachable!("poll hands out single records"),
                })
                .unwrap();
            match r {
                GatePoll::Processed => {}
                GatePoll::Finished => break,
                other => panic!("unexpected poll outcome {other:?}"),
            }
        }
        let stats = gate.stats();
        (received, events, stats)
    });
    for p in producers {
        p.join().unwrap();
    }
    let (received, events, gate_stats) = consumer.join().unwrap();
    Outcome {
        received,
        events,
        partitions,
        gate_stats,
    }
}

fn check_credit_and_pools(setup: &Setup, n: usize, out: &Outcome) {
    let gs = out.gate_stats;
    assert_eq!(gs.credit_violations, 0);
    assert!(gs.floating_allocated <= setup.config.floating_buffers_per_gate);
    assert!(gs.max_segments_in_use <= setup.config.gate_segment_capacity(n));
    let mut shipped = 0;
    for p in &out.partitions {
        let ps = p.stats();
        assert_eq!(ps.credit_violations, 0);
        assert!(ps.buffers_shipped <= ps.credit_received, "{ps:?}");
        assert!(ps.pool_allocated <= ps.pool_capacity, "{ps:?}");
        assert!(ps.pool_max_in_use <= ps.pool_capacity, "{ps:?}");
        assert_eq!(ps.queued, 0);
        shipped += ps.buffers_shipped;
    }
    assert_eq!(shipped, gs.buffers_received);
    assert!(gs.buffers_received <= gs.credit_announced);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn every_record_arrives_once_in_order(
        buffer_size in 64usize..=256,
        channels in 1usize..=3,
        exclusive in 1usize..=3,
        floating in 0usize..=4,
        extra_pool in 0usize..=4,
        multi_producer in any::<bool>(),
        flush_every in 0usize..=20,
        seed in any::<u64>(),
        lens in prop::collection::vec(prop::collection::vec(0usize..=768, 0..120), 3),
    ) {
        let config = NetworkConfig {
            buffer_size,
            exclusive_buffers_per_channel: exclusive,
            floating_buffers_per_gate: floating,
        };
        // Records from 0 up to 3x the buffer size.
        let records: Vec<Vec<usize>> = lens[..channels]
            .iter()
            .map(|v| v.iter().map(|l| l % (3 * buffer_size + 1)).collect())
            .collect();
        let setup = Setup {
            config,
            pool_size: channels + 1 + extra_pool,
            multi_producer,
            flush_every,
            slowness_seed: seed,
        };
        let out = run(&setup, &records);
        for (ch, lens) in records.iter().enumerate() {
            let expected: Vec<Vec<u8>> =
                lens.iter().enumerate().map(|(k, l)| make_record(ch, k, *l)).collect();
            prop_assert_eq!(&out.received[ch], &expected);
            prop_assert_eq!(&out.events[ch], &vec![Event::EndOfPartition]);
        }
        check_credit_and_pools(&setup, channels, &out);
    }
}

#[test]
fn huge_records_through_minimal_pools() {
    let setup = Setup {
        config: NetworkConfig {
            buffer_size: 64,
            exclusive_buffers_per_channel: 1,
            floating_buffers_per_gate: 0,
        },
        pool_size: 2,
        multi_producer: false,
        flush_every: 0,
        slowness_seed: 7,
    };
    let records = vec![vec![10_000, 0, 1, 2, 3, 60, 61, 62, 63, 64, 5_000]];
    let out = run(&setup, &records);
    let expected: Vec<Vec<u8>> = records[0]
        .iter()
        .enumerate()
        .map(|(k, l)| make_record(0, k, *l))
        .collect();
    assert_eq!(out.received[0], expected);
    check_credit_and_pools(&setup, 1, &out);
}

#[test]
fn events_arrive_in_order_with_data_and_finish_the_gate() {
    let config = NetworkConfig {
        buffer_size: 128,
        ..NetworkConfig::default()
    };
    let cancel = CancelToken::new();
    let metrics = IoMetrics::new();
    let p = ResultPartition::new(2, 6, 128, cancel.clone(), Arc::clone(&metrics)).unwrap();
    let mut gate = InputGate::new(2, &config, cancel, Arc::clone(&metrics)).unwrap();
    local_connect(&p, 0, &gate, 0).unwrap();
    local_connect(&p, 1, &gate, 1).unwrap();
    let writer = thread::spawn(move || {
        let mut w = PartitionWriter::new(p).unwrap();
        w.emit(0, b"a").unwrap();
        w.emit(1, b"b").unwrap();
        w.broadcast_event(&Event::Watermark(5)).unwrap();
        w.emit(0, &[9u8; 300]).unwrap();
        w.emit_event(0, &Event::Custom(b"hi".to_vec())).unwrap();
        w.broadcast_event(&Event::CheckpointBarrier {
            id: 1,
            timestamp: 2,
        })
        .unwrap();
        w.broadcast_record(b"c").unwrap();
        w.finish().unwrap();
        assert_eq!(w.emit(0, b"late"), Err(NetworkError::WriterFinished));
    });
    #[derive(Debug, PartialEq)]
    enum Item {
        R(Vec<u8>),
        E(Event),
    }
    let mut seen: Vec<Vec<Item>> = vec![Vec::new(), Vec::new()];
    loop {
        let r = gate
            .poll(Duration::from_secs(30), &mut |item| match item {
                GateItem::Record { channel, bytes } => seen[channel].push(Item::R(bytes.to_vec())),
                GateItem::Event { channel, event } => seen[channel].push(Item::E(event)),
                GateItem::Records { .. } => unreachable!("poll hands out single records"),
            })
            .unwrap();
        if r == GatePoll::Finished {
            break;
        }
        assert_eq!(r, GatePoll::Processed);
    }
    writer.join().unwrap();
    let barrier = Event::CheckpointBarrier {
        id: 1,
        timestamp: 2,
    };
    assert_eq!(
        seen[0],
        vec![
            Item::R(b"a".to_vec()),
            Item::E(Event::Watermark(5)),
            Item::R(vec![9u8; 300]),
            Item::E(Event::Custom(b"hi".to_vec())),
            Item::E(barrier.clone()),
            Item::R(b"c".to_vec()),
            Item::E(Event::EndOfPartition),
        ]
    );
    assert_eq!(
        seen[1],
        vec![
            Item::R(b"b".to_vec()),
            Item::E(Event::Watermark(5)),
            Item::E(barrier),
            Item::R(b"c".to_vec()),
            Item::E(Event::EndOfPartition),
        ]
    );
    assert!(gate.is_finished());
    assert_eq!(
        gate.poll(Duration::ZERO, &mut |_| {}).unwrap(),
        GatePoll::Finished
    );
}

/// Channel 0 is blocked at the consumer, so its segments stay occupied and its credit
/// drops to zero; channel 1 of the same partition and gate keeps flowing.
#[test]
fn zero_credit_on_one_channel_does_not_stall_another() {
    let config = NetworkConfig {
        buffer_size: 64,
        exclusive_buffers_per_channel: 2,
        floating_buffers_per_gate: 1,
    };
    let cancel = CancelToken::new();
    let out_m = IoMetrics::new();
    let in_m = IoMetrics::new();
    // Pool large enough to park channel 0's backlog and still serve channel 1.
    let p = ResultPartition::new(2, 10, 64, cancel.clone(), Arc::clone(&out_m)).unwrap();
    let mut gate = InputGate::new(2, &config, cancel, Arc::clone(&in_m)).unwrap();
    local_connect(&p, 0, &gate, 0).unwrap();
    local_connect(&p, 1, &gate, 1).unwrap();
    gate.block_channel(0).unwrap();

    // Fill channel 0 with 6 full buffers: 2 exclusive + 1 floating can be shipped,
    // the rest must stay queued for lack of credit.
    let mut w = PartitionWriter::new(Arc::clone(&p)).unwrap();
    for k in 0..6 {
        w.emit(0, &make_record(0, k, 60)).unwrap();
    }
    w.flush(0).unwrap();
    let writer = thread::spawn(move || {
        for k in 0..2000 {
            w.emit(1, &make_record(1, k, 20)).unwrap();
        }
        w.flush(1).unwrap();
        w.emit_event(1, &Event::EndOfPartition).unwrap();
        w
    });
    let mut got1 = Vec::new();
    let mut saw_eop1 = false;
    while !saw_eop1 {
        let r = gate
            .poll(Duration::from_secs(30), &mut |item| match item {
                GateItem::Record { channel, bytes } => {
                    assert_eq!(channel, 1);
                    got1.push(bytes.to_vec());
                }
                GateItem::Event { channel, event } => {
                    assert_eq!((channel, event), (1, Event::EndOfPartition));
                    saw_eop1 = true;
                }
                GateItem::Records { .. } => unreachable!("poll hands out single records"),
            })
            .unwrap();
        assert_eq!(r, GatePoll::Processed);
    }
    let mut w = writer.join().unwrap();
    assert_eq!(got1.len(), 2000);
    assert!(
        got1.iter()
            .enumerate()
            .all(|(k, r)| *r == make_record(1, k, 20))
    );

    let s0 = p.subpartition_stats(0).unwrap();
    assert_eq!(s0.credit, 0, "{s0:?}");
    assert!(s0.queued > 0, "{s0:?}");
    assert_eq!(s0.buffers_shipped, s0.credit_received);
    assert!(in_m.in_pool_usage() > 0.0);
    assert!(gate.is_channel_finished(1));
    assert!(!gate.is_finished());

    // Resume channel 0: everything drains.
    gate.resume_channel(0).unwrap();
    w.emit_event(0, &Event::EndOfPartition).unwrap();
    let mut got0 = Vec::new();
    loop {
        let r = gate
            .poll(Duration::from_secs(30), &mut |item| {
                if let GateItem::Record { bytes, .. } = item {
                    got0.push(bytes.to_vec());
                }
            })
            .unwrap();
        if r == GatePoll::Finished {
            break;
        }
    }
    assert_eq!(got0.len(), 6);
    let ps = p.stats();
    assert_eq!(ps.credit_violations, 0);
    assert_eq!(gate.stats().credit_violations, 0);
    assert!(ps.buffers_shipped <= ps.credit_received);
}

#[test]
fn cancellation_wakes_blocked_writer_and_blocked_poll() {
    let cancel = CancelToken::new();
    let metrics = IoMetrics::new();
    // Partition connected to nothing: zero credit, the writer blocks once the pool is used up.
    let p = ResultPartition::new(1, 2, 64, cancel.clone(), Arc::clone(&metrics)).unwrap();
    let writer = thread::spawn(move || {
        let mut w = PartitionWriter::new(p).unwrap();
        loop {
            if let Err(e) = w.emit(0, &[1u8; 100]) {
                return e;
            }
        }
    });
    // A gate whose channel never receives anything.
    let gate_metrics = IoMetrics::new();
    let mut gate = InputGate::new(
        1,
        &NetworkConfig::default(),
        cancel.clone(),
        Arc::clone(&gate_metrics),
    )
    .unwrap();
    let reader = thread::spawn(move || gate.poll(Duration::MAX, &mut |_| {}));
    thread::sleep(Duration::from_millis(100));
    assert!(metrics.out_pool_usage() > 0.99);
    cancel.cancel();
    assert_eq!(writer.join().unwrap(), NetworkError::Cancelled);
    assert_eq!(reader.join().unwrap().unwrap(), GatePoll::Cancelled);
    assert!(metrics.back_pressured_ns() > 0);
    assert!(gate_metrics.idle_ns() > 0);
}

/// The reader first idles (nothing sent yet), then only starts consuming once the writer
/// has every pool buffer in use, so the writer must block: both counters become positive.
#[test]
fn back_pressure_and_idle_time_are_accounted() {
    let config = NetworkConfig {
        buffer_size: 64,
        exclusive_buffers_per_channel: 1,
        floating_buffers_per_gate: 0,
    };
    let cancel = CancelToken::new();
    let out_m = IoMetrics::new();
    let in_m = IoMetrics::new();
    let p = ResultPartition::new(1, 2, 64, cancel.clone(), Arc::clone(&out_m)).unwrap();
    let mut gate = InputGate::new(1, &config, cancel, Arc::clone(&in_m)).unwrap();
    local_connect(&p, 0, &gate, 0).unwrap();
    assert_eq!(
        gate.poll(Duration::from_millis(5), &mut |_| {}).unwrap(),
        GatePoll::Timeout
    );
    assert!(in_m.idle_ns() > 0);
    let writer = thread::spawn(move || {
        let mut w = PartitionWriter::new(p).unwrap();
        for k in 0..100 {
            w.emit(0, &make_record(0, k, 60)).unwrap();
        }
        w.finish().unwrap();
    });
    while out_m.out_pool().0 < 2 {
        thread::yield_now();
    }
    let mut n = 0;
    while gate
        .poll(Duration::from_secs(30), &mut |item| {
            if let GateItem::Record { channel, bytes } = item {
                assert_eq!(bytes, make_record(channel, n, 60));
                n += 1;
            }
        })
        .unwrap()
        != GatePoll::Finished
    {}
    writer.join().unwrap();
    assert_eq!(n, 100);
    assert!(out_m.back_pressured_ns() > 0);
    assert_eq!(out_m.out_pool_usage(), 0.0);
    assert_eq!(in_m.in_pool_usage(), 0.0);
    assert_eq!(out_m.buffers_shipped(), 101);
}

#[test]
fn dropping_the_receiver_releases_a_blocked_writer() {
    let cancel = CancelToken::new();
    let metrics = IoMetrics::new();
    let config = NetworkConfig {
        buffer_size: 64,
        ..NetworkConfig::default()
    };
    let p = ResultPartition::new(1, 2, 64, cancel.clone(), Arc::clone(&metrics)).unwrap();
    let gate = InputGate::new(1, &config, cancel, IoMetrics::new()).unwrap();
    local_connect(&p, 0, &gate, 0).unwrap();
    let writer = thread::spawn(move || {
        let mut w = PartitionWriter::new(p).unwrap();
        loop {
            if let Err(e) = w.emit(0, &[1u8; 100]) {
                return e;
            }
        }
    });
    thread::sleep(Duration::from_millis(50));
    drop(gate);
    assert_eq!(
        writer.join().unwrap(),
        NetworkError::ReceiverReleased { subpartition: 0 }
    );
}

#[test]
fn forward_and_all_to_all_wiring() {
    let config = NetworkConfig {
        buffer_size: 128,
        ..NetworkConfig::default()
    };
    let cancel = CancelToken::new();
    let m = IoMetrics::new();
    let par = 3;
    // all-to-all: 3 producers x 3 consumers.
    let partitions: Vec<_> = (0..par)
        .map(|_| {
            ResultPartition::new(
                par,
                config.default_partition_pool_size(par),
                128,
                cancel.clone(),
                Arc::clone(&m),
            )
            .unwrap()
        })
        .collect();
    let gates: Vec<_> = (0..par)
        .map(|_| InputGate::new(par, &config, cancel.clone(), Arc::clone(&m)).unwrap())
        .collect();
    connect_all_to_all(&partitions, &gates).unwrap();
    let producers: Vec<_> = partitions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let p = Arc::clone(p);
            thread::spawn(move || {
                let mut w = PartitionWriter::new(p).unwrap();
                for k in 0..500u64 {
                    let target = (k % par as u64) as usize;
                    let mut rec = (i as u64).to_le_bytes().to_vec();
                    rec.extend_from_slice(&k.to_le_bytes());
                    w.emit(target, &rec).unwrap();
                }
                w.finish().unwrap();
            })
        })
        .collect();
    let consumers: Vec<_> = gates
        .into_iter()
        .enumerate()
        .map(|(j, mut g)| {
            thread::spawn(move || {
                let mut last = vec![None::<u64>; par];
                let mut count = 0;
                while g
                    .poll(Duration::from_secs(30), &mut |item| {
                        if let GateItem::Record { channel, bytes } = item {
                            let producer = u64::from_le_bytes(bytes[..8].try_into().unwrap());
                            let k = u64::from_le_bytes(bytes[8..].try_into().unwrap());
                            assert_eq!(producer as usize, channel);
                            assert_eq!(k as usize % par, j);
                            assert!(last[channel].is_none_or(|l| l < k));
                            last[channel] = Some(k);
                            count += 1;
                        }
                    })
                    .unwrap()
                    != GatePoll::Finished
                {}
                count
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    let total: usize = consumers.into_iter().map(|c| c.join().unwrap()).sum();
    assert_eq!(total, 1500);

    // forward: producer i -> consumer i.
    let partitions: Vec<_> = (0..2)
        .map(|_| ResultPartition::new(1, 3, 128, cancel.clone(), Arc::clone(&m)).unwrap())
        .collect();
    let gates: Vec<_> = (0..2)
        .map(|_| InputGate::new(1, &config, cancel.clone(), Arc::clone(&m)).unwrap())
        .collect();
    connect_forward(&partitions, &gates).unwrap();
    for (i, p) in partitions.iter().enumerate() {
        let mut w = PartitionWriter::new(Arc::clone(p)).unwrap();
        w.emit(0, &[i as u8]).unwrap();
        w.finish().unwrap();
    }
    for (i, mut g) in gates.into_iter().enumerate() {
        let mut got = Vec::new();
        while g
            .poll(Duration::from_secs(30), &mut |item| {
                if let GateItem::Record { bytes, .. } = item {
                    got.push(bytes.to_vec());
                }
            })
            .unwrap()
            != GatePoll::Finished
        {}
        assert_eq!(got, vec![vec![i as u8]]);
    }
}

#[test]
fn invalid_configurations_are_rejected() {
    let cancel = CancelToken::new();
    let m = IoMetrics::new();
    assert!(ResultPartition::new(3, 3, 64, cancel.clone(), Arc::clone(&m)).is_err());
    let p = ResultPartition::new(1, 2, 1024, cancel.clone(), Arc::clone(&m)).unwrap();
    let small = NetworkConfig {
        buffer_size: 512,
        ..NetworkConfig::default()
    };
    let g = InputGate::new(1, &small, cancel.clone(), Arc::clone(&m)).unwrap();
    assert!(local_connect(&p, 0, &g, 0).is_err());
    let big = NetworkConfig {
        buffer_size: 1024,
        ..NetworkConfig::default()
    };
    let g = InputGate::new(2, &big, cancel, m).unwrap();
    local_connect(&p, 0, &g, 0).unwrap();
    assert!(local_connect(&p, 0, &g, 1).is_err());
    assert!(local_connect(&p, 1, &g, 1).is_err());
    let _w = PartitionWriter::new(Arc::clone(&p)).unwrap();
    assert_eq!(
        PartitionWriter::new(p).unwrap_err(),
        NetworkError::WriterExists
    );
}

/// Throughput smoke test (no assertion on time): a u64 record stream through one channel
/// with default sizes. Run with
/// `cargo test --release -p flink-runtime --test credit_protocol -- --ignored --nocapture`.
#[test]
#[ignore]
fn throughput_u64_one_channel() {
    let config = NetworkConfig::default();
    let cancel = CancelToken::new();
    let m = IoMetrics::new();
    let p = ResultPartition::new(
        1,
        config.default_partition_pool_size(1),
        config.buffer_size,
        cancel.clone(),
        Arc::clone(&m),
    )
    .unwrap();
    let mut gate = InputGate::new(1, &config, cancel, Arc::clone(&m)).unwrap();
    local_connect(&p, 0, &gate, 0).unwrap();
    const N: u64 = 100_000_000;
    let start = std::time::Instant::now();
    let writer = thread::spawn(move || {
        let mut w = PartitionWriter::new(p).unwrap();
        for i in 0..N {
            w.emit(0, &i.to_le_bytes()).unwrap();
        }
        w.finish().unwrap();
    });
    let mut sum = 0u64;
    let mut count = 0u64;
    while gate
        .poll(Duration::from_secs(30), &mut |item| {
            if let GateItem::Record { bytes, .. } = item {
                sum = sum.wrapping_add(u64::from_le_bytes(bytes.try_into().unwrap()));
                count += 1;
            }
        })
        .unwrap()
        != GatePoll::Finished
    {}
    writer.join().unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(count, N);
    assert_eq!(sum, N * (N - 1) / 2);
    println!(
        "{:.1} M records/s, {:.0} MB/s shipped, back pressure {:.2}s, idle {:.2}s",
        N as f64 / secs / 1e6,
        m.bytes_shipped() as f64 / secs / 1e6,
        m.back_pressured_ns() as f64 / 1e9,
        m.idle_ns() as f64 / 1e9
    );
}
