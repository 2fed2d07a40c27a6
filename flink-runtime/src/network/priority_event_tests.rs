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
    let cancel = CancelToken::new();
    let config = NetworkConfig {
        buffer_size: 64,
        exclusive_buffers_per_channel: 2,
        floating_buffers_per_gate: 0,
    };
    let partition = ResultPartition::new(1, 16, 64, cancel.clone(), IoMetrics::new()).unwrap();
    let gate = InputGate::new(1, &config, cancel, IoMetrics::new()).unwrap();
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
    let input_state: Vec<u8> = gate
        .end_channel_state(0)
        .unwrap()
        .iter()
        .map(|b| b.bytes[4])
        .collect();
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
