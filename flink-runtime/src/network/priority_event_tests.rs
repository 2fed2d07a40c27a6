//! The path of a priority event (an unaligned checkpoint's barrier) through a local
//! channel: it overtakes the buffers queued at the sender and received at the
//! receiver, needs no credit, and the overtaken buffers still arrive, in order.

use std::time::Duration;

use super::{
    CancelToken, Event, GateItem, GatePoll, InputGate, IoMetrics, NetworkConfig, PartitionWriter,
    ResultPartition, local_connect,
};

/// One producer (one subpartition) feeding a gate of one channel with 2 exclusive
/// segments and no floating ones; each record fills a buffer of 64 bytes.
fn wired() -> (PartitionWriter, InputGate) {
    wired_with(2, false)
}

/// [`wired`] with `exclusive` segments; `announce`: the gate announces the aligned
/// barriers its channel queues.
fn wired_with(exclusive: usize, announce: bool) -> (PartitionWriter, InputGate) {
    let cancel = CancelToken::new();
    let config = NetworkConfig {
        buffer_size: 64,
        exclusive_buffers_per_channel: exclusive,
        floating_buffers_per_gate: 0,
    };
    let partition = ResultPartition::new(1, 16, 64, cancel.clone(), IoMetrics::new()).unwrap();
    let gate = InputGate::new(1, &config, cancel, IoMetrics::new()).unwrap();
    if announce {
        gate.announce_aligned_barriers();
    }
    local_connect(&partition, 0, &gate, 0).unwrap();
    (PartitionWriter::new(partition).unwrap(), gate)
}

fn record(i: u8) -> Vec<u8> {
    vec![i; 60] // with its 4-byte prefix: one full buffer
}

#[test]
fn a_priority_barrier_overtakes_queued_and_received_buffers_without_credit() {
    let (mut writer, mut gate) = wired();
    for i in 0..5 {
        writer.emit(0, &record(i)).unwrap();
        writer.flush(0).unwrap();
    }
    // 2 buffers shipped on the initial credit, 3 queued at the sender.
    assert_eq!(writer.partition().subpartition_stats(0).unwrap().queued, 3);
    let barrier = Event::UnalignedBarrier {
        id: 7,
        timestamp: 1,
    };
    let output_state = writer.broadcast_priority_event(&barrier).unwrap();
    assert_eq!(output_state.len(), 1);
    let queued: Vec<u8> = output_state[0].iter().map(|b| b.bytes[4]).collect();
    assert_eq!(
        queued,
        vec![2, 3, 4],
        "copies of what it overtook at the sender"
    );

    let mut items = Vec::new();
    let mut on_item = |item: GateItem<'_>| {
        items.push(match item {
            GateItem::Event { event, .. } => format!("{event:?}"),
            GateItem::Record { bytes, .. } => format!("record {}", bytes[0]),
            GateItem::Records {
                framed, decoded, ..
            } => {
                decoded.set(5); // one frame of one byte
                format!("record {}", framed[4])
            }
        })
    };
    let wait = Duration::from_secs(5);
    assert_eq!(gate.poll(wait, &mut on_item).unwrap(), GatePoll::Processed);
    // What it overtook at the receiver (the 2 received buffers), as channel state.
    let input_state = overtaken_records(&mut gate);
    assert_eq!(input_state, vec![0, 1]);
    for _ in 0..5 {
        assert_eq!(gate.poll(wait, &mut on_item).unwrap(), GatePoll::Processed);
    }
    assert_eq!(
        items,
        vec![
            format!("{barrier:?}"),
            "record 0".into(),
            "record 1".into(),
            "record 2".into(),
            "record 3".into(),
            "record 4".into(),
        ],
        "the barrier first, then every record in order"
    );
    assert_eq!(gate.stats().credit_violations, 0);
}

#[test]
fn a_recording_channel_keeps_a_cut_record_and_what_it_delivers() {
    let (mut writer, mut gate) = wired();
    // A record of 100 bytes spans two buffers.
    writer.emit(0, &[9u8; 100]).unwrap();
    writer.flush(0).unwrap();
    let mut records = Vec::new();
    let wait = Duration::from_secs(5);
    gate.poll(wait, &mut |_| {}).unwrap(); // first half: held by the deserializer
    gate.begin_channel_state(0).unwrap();
    gate.poll(wait, &mut |item| {
        if let GateItem::Record { bytes, .. } = item {
            records.push(bytes.to_vec());
        }
    })
    .unwrap();
    assert_eq!(records, vec![vec![9u8; 100]], "processed as usual");
    let state = gate.end_channel_state(0).unwrap();
    // Replayed into a fresh gate, the state yields the whole record again.
    let (_w, mut fresh) = wired();
    let mut replayed = Vec::new();
    fresh
        .replay_channel_state(0, state.iter(), &mut |item| match item {
            GateItem::Record { bytes, .. } => replayed.push(bytes.len()),
            GateItem::Records {
                framed, decoded, ..
            } => {
                let mut frames = flink_core::codec::frames(framed);
                replayed.extend(frames.by_ref().map(<[u8]>::len));
                decoded.set(framed.len() - frames.rest().len());
            }
            GateItem::Event { .. } => {}
        })
        .unwrap();
    assert_eq!(replayed, vec![100]);
}

#[test]
fn a_queued_aligned_barrier_converts_into_a_priority_barrier_with_what_it_overtook() {
    let (mut writer, mut gate) = wired();
    for i in 0..5 {
        writer.emit(0, &record(i)).unwrap();
        writer.flush(0).unwrap();
    }
    let aligned = Event::CheckpointBarrier {
        id: 7,
        timestamp: 1,
    };
    writer.broadcast_event(&aligned).unwrap();
    for i in 5..7 {
        writer.emit(0, &record(i)).unwrap();
        writer.flush(0).unwrap();
    }
    let partition = writer.partition().clone();
    // 2 buffers shipped on the initial credit; 3, the barrier and 2 queued.
    assert_eq!(partition.subpartition_stats(0).unwrap().queued, 6);
    assert!(partition.holds_barrier(7));
    assert!(!partition.holds_barrier(8));
    assert!(partition.convert_barrier(8).is_empty(), "no such barrier");

    let converted = partition.convert_barrier(7);
    assert_eq!(converted.len(), 1);
    assert_eq!(converted[0].0, 0);
    let overtaken: Vec<u8> = converted[0].1.iter().map(|b| b.bytes[4]).collect();
    assert_eq!(overtaken, vec![2, 3, 4], "only what was queued before it");
    assert!(!partition.holds_barrier(7));
    assert_eq!(partition.subpartition_stats(0).unwrap().queued, 5);
    assert!(partition.convert_barrier(7).is_empty(), "converted once");

    let mut items = Vec::new();
    let wait = Duration::from_secs(5);
    for _ in 0..8 {
        assert_eq!(
            gate.poll(wait, &mut |item| items.push(describe(item)))
                .unwrap(),
            GatePoll::Processed
        );
    }
    let unaligned = Event::UnalignedBarrier {
        id: 7,
        timestamp: 1,
    };
    let mut expected = vec![format!("{unaligned:?}")];
    expected.extend((0..7).map(|i| format!("record {i}")));
    assert_eq!(
        items, expected,
        "the barrier first, once, then every record"
    );
    assert_eq!(gate.stats().credit_violations, 0);

    // A barrier that already shipped stays aligned.
    writer
        .broadcast_event(&Event::CheckpointBarrier {
            id: 8,
            timestamp: 2,
        })
        .unwrap();
    assert!(!partition.holds_barrier(8));
    assert!(partition.convert_barrier(8).is_empty());
}

/// One gate item as text (records of [`record`]: their first byte).
fn describe(item: GateItem<'_>) -> String {
    match item {
        GateItem::Event { event, .. } => format!("{event:?}"),
        GateItem::Record { bytes, .. } => format!("record {}", bytes[0]),
        GateItem::Records {
            framed, decoded, ..
        } => {
            decoded.set(framed.len().min(64));
            format!("record {}", framed[4])
        }
    }
}

/// Emits records `from..to`, one buffer each, shipped at once (credit permitting).
fn emit_records(writer: &mut PartitionWriter, from: u8, to: u8) {
    for i in from..to {
        writer.emit(0, &record(i)).unwrap();
        writer.flush(0).unwrap();
    }
}

/// Emits records `0..before`, checkpoint 7's aligned barrier, then records
/// `before..to`, each shipped at once (credit permitting).
fn emit_around_barrier(writer: &mut PartitionWriter, before: u8, to: u8) {
    emit_records(writer, 0, before);
    writer
        .broadcast_event(&Event::CheckpointBarrier {
            id: 7,
            timestamp: 1,
        })
        .unwrap();
    emit_records(writer, before, to);
}

/// Polls `n` buffers, describing what each handed out.
fn poll_n(gate: &mut InputGate, n: usize) -> Vec<String> {
    let mut items = Vec::new();
    for _ in 0..n {
        assert_eq!(
            gate.poll(Duration::from_secs(5), &mut |item| items
                .push(describe(item)))
                .unwrap(),
            GatePoll::Processed
        );
    }
    items
}

/// Polls checkpoint 7's pulled barrier, which must come first and unaligned;
/// returns the records it overtook (their numbers), as channel 0's state.
#[track_caller]
fn poll_pulled_barrier(gate: &mut InputGate) -> Vec<u8> {
    let unaligned = Event::UnalignedBarrier {
        id: 7,
        timestamp: 1,
    };
    assert_eq!(poll_n(gate, 1), vec![format!("{unaligned:?}")]);
    overtaken_records(gate)
}

/// Ends channel 0's recording; returns the records (their numbers, see [`record`])
/// it recorded: what a barrier overtook there, as channel state.
fn overtaken_records(gate: &mut InputGate) -> Vec<u8> {
    gate.end_channel_state(0)
        .unwrap()
        .iter()
        .map(|b| b.bytes[4])
        .collect()
}

#[test]
fn a_received_aligned_barrier_is_pulled_ahead_of_the_buffers_before_it() {
    let (mut writer, mut gate) = wired_with(8, true);
    emit_around_barrier(&mut writer, 3, 5);
    // Everything shipped: the barrier waits at the receiver, behind 3 buffers.
    assert_eq!(writer.partition().subpartition_stats(0).unwrap().queued, 0);
    assert_eq!(gate.oldest_announced(), Some((7, 1)));
    assert_eq!(gate.convert_announced(8), 0, "no such barrier");

    assert_eq!(gate.convert_announced(7), 1);
    assert_eq!(
        gate.oldest_announced(),
        None,
        "converted: no longer announced"
    );
    assert_eq!(gate.convert_announced(7), 0, "converted once");
    let overtaken = poll_pulled_barrier(&mut gate);
    assert_eq!(
        overtaken,
        vec![0, 1, 2],
        "copies of exactly the 3 before it"
    );
    let expected: Vec<String> = (0..5).map(|i| format!("record {i}")).collect();
    assert_eq!(
        poll_n(&mut gate, 5),
        expected,
        "every buffer still delivered once, in order, and no aligned barrier"
    );
    let stats = gate.stats();
    assert_eq!(stats.credit_violations, 0);
    assert_eq!(stats.buffers_received, 6, "5 records and the barrier");
}

#[test]
fn a_pulled_barrier_goes_before_a_priority_event_that_came_after_it() {
    let (mut writer, mut gate) = wired_with(8, true);
    emit_around_barrier(&mut writer, 2, 3);
    // A newer checkpoint's unaligned barrier arrives after it.
    writer
        .broadcast_priority_event(&Event::UnalignedBarrier {
            id: 8,
            timestamp: 2,
        })
        .unwrap();
    assert_eq!(gate.convert_announced(7), 1);
    let items = poll_n(&mut gate, 2);
    assert_eq!(
        items,
        vec![
            format!(
                "{:?}",
                Event::UnalignedBarrier {
                    id: 7,
                    timestamp: 1
                }
            ),
            format!(
                "{:?}",
                Event::UnalignedBarrier {
                    id: 8,
                    timestamp: 2
                }
            ),
        ]
    );
    // The newer barrier overtook the 3 records (not the converted barrier).
    let overtaken = overtaken_records(&mut gate);
    assert_eq!(overtaken, vec![0, 1, 2]);
    let expected: Vec<String> = (0..3).map(|i| format!("record {i}")).collect();
    assert_eq!(poll_n(&mut gate, 3), expected);
}

#[test]
fn a_barrier_taken_in_order_or_unannounced_is_not_pulled() {
    let aligned = Event::CheckpointBarrier {
        id: 7,
        timestamp: 1,
    };
    let (mut writer, mut gate) = wired_with(8, true);
    emit_records(&mut writer, 0, 1);
    writer.broadcast_event(&aligned).unwrap();
    assert_eq!(gate.oldest_announced(), Some((7, 1)));
    assert_eq!(
        poll_n(&mut gate, 2),
        vec!["record 0".to_string(), format!("{aligned:?}")]
    );
    assert_eq!(gate.oldest_announced(), None, "delivered in order");
    assert_eq!(gate.convert_announced(7), 0);

    // A gate that does not announce keeps the barrier in order.
    let (mut writer, mut gate) = wired_with(8, false);
    emit_records(&mut writer, 0, 1);
    writer.broadcast_event(&aligned).unwrap();
    assert_eq!(gate.oldest_announced(), None);
    assert_eq!(gate.convert_announced(7), 0);
    assert_eq!(
        poll_n(&mut gate, 2),
        vec!["record 0".to_string(), format!("{aligned:?}")]
    );
}

#[test]
fn a_barrier_received_over_tcp_is_pulled_ahead_alike() {
    use super::tcp::{TcpConfig, TcpConnection};
    let config = TcpConfig {
        job_id: "announce".into(),
        process: 0,
        secret: b"s3cret".to_vec(),
        handshake_timeout: Duration::from_secs(10),
        max_buffer_size: 1024,
        heartbeat_timeout: None,
        tls: None,
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accept_config = config.clone();
    let acceptor = std::thread::spawn(move || TcpConnection::accept(&listener, &accept_config));
    let sender_side = TcpConnection::connect(addr, &config).unwrap();
    let receiver_side = acceptor.join().unwrap().unwrap();
    let cancel = CancelToken::new();
    let net = NetworkConfig {
        buffer_size: 64,
        exclusive_buffers_per_channel: 8,
        floating_buffers_per_gate: 0,
    };
    let partition = ResultPartition::new(1, 16, 64, cancel.clone(), IoMetrics::new()).unwrap();
    let mut gate = InputGate::new(1, &net, cancel, IoMetrics::new()).unwrap();
    gate.announce_aligned_barriers();
    sender_side.register_sender(3, &partition, 0).unwrap();
    receiver_side.register_receiver(3, &gate, 0).unwrap();
    let mut writer = PartitionWriter::new(partition).unwrap();
    emit_around_barrier(&mut writer, 3, 5);
    // Wait (bounded) until the receiver holds all 6 buffers.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while gate.stats().buffers_received < 6 {
        assert!(std::time::Instant::now() < deadline, "not received");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(gate.oldest_announced(), Some((7, 1)));
    assert_eq!(gate.convert_announced(7), 1);
    let overtaken = poll_pulled_barrier(&mut gate);
    assert_eq!(overtaken, vec![0, 1, 2]);
    let expected: Vec<String> = (0..5).map(|i| format!("record {i}")).collect();
    assert_eq!(poll_n(&mut gate, 5), expected);
    assert_eq!(gate.stats().credit_violations, 0);
}

#[test]
fn queued_aligned_barriers_are_counted_as_they_are_queued_shipped_converted_and_dropped() {
    let (mut writer, mut gate) = wired();
    let partition = writer.partition().clone();
    let barriers = || partition.subpartition_stats(0).unwrap().queued_barriers;
    let barrier = |id| Event::CheckpointBarrier { id, timestamp: 1 };
    // Two records ship on the initial credit; the rest waits for credit.
    for i in 0..3 {
        writer.emit(0, &record(i)).unwrap();
        writer.flush(0).unwrap();
    }
    writer.broadcast_event(&barrier(7)).unwrap();
    assert_eq!(barriers(), 1);
    assert!(partition.holds_barrier(7));
    // Neither another event nor a priority barrier counts.
    writer.broadcast_event(&Event::Watermark(5)).unwrap();
    writer
        .broadcast_priority_event(&Event::UnalignedBarrier {
            id: 8,
            timestamp: 1,
        })
        .unwrap();
    assert_eq!(barriers(), 1);
    writer.broadcast_event(&barrier(9)).unwrap();
    assert_eq!(barriers(), 2);
    assert!(partition.holds_barrier(9));

    // The receiver hands out the priority barrier and two records: the credit
    // ships record 2 and barrier 7.
    let wait = Duration::from_secs(5);
    let mut items = Vec::new();
    for _ in 0..3 {
        gate.poll(wait, &mut |item| items.push(describe(item)))
            .unwrap();
    }
    assert_eq!(
        partition.subpartition_stats(0).unwrap().queued,
        2,
        "{items:?}"
    );
    assert_eq!(barriers(), 1);
    assert!(partition.holds_barrier(9));

    // Converted, barrier 9 is no longer queued as an aligned barrier.
    assert_eq!(partition.convert_barrier(9).len(), 1);
    assert_eq!(barriers(), 0);
    assert!(!partition.holds_barrier(9));

    // A released subpartition drops its queue, barriers too.
    writer.broadcast_event(&barrier(10)).unwrap();
    assert_eq!(barriers(), 1);
    partition.release_subpartition(0).unwrap();
    assert_eq!(barriers(), 0);
    assert!(!partition.holds_barrier(10));
}
