//! The credit-based protocol over TCP on loopback (two endpoints in one test process).

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use flink_core::buffer_debloat::BufferDebloatConfig;
use flink_core::clock::ManualClock;
use flink_runtime::network::tcp::{
    BUFFER_HEADER_LEN, CRC_LEN, Frame, LENGTH_LEN, OperatorCounts, Role, TcpConfig, TcpConnection,
    TcpError, TlsSettings, handshake,
};
use flink_runtime::network::{
    BufferKind, CancelToken, Event, GateItem, GatePoll, InputGate, IoMetrics, NetworkConfig,
    NetworkError, PartitionWriter, ResultPartition,
};
use proptest::prelude::*;

const GUARD: Duration = Duration::from_secs(30);

fn config(job: &str, secret: &[u8]) -> TcpConfig {
    TcpConfig {
        job_id: job.into(),
        process: 0,
        secret: secret.to_vec(),
        handshake_timeout: Duration::from_secs(10),
        max_buffer_size: 4096,
        heartbeat_timeout: None,
        tls: None,
    }
}

/// Connect a dialer with `a` to an acceptor with `b` on loopback.
fn pair(
    a: TcpConfig,
    b: TcpConfig,
) -> (
    Result<TcpConnection, TcpError>,
    Result<TcpConnection, TcpError>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = thread::spawn(move || TcpConnection::accept(&listener, &b));
    let dialer = TcpConnection::connect(addr, &a);
    (dialer, acceptor.join().unwrap())
}

fn connected() -> (TcpConnection, TcpConnection) {
    let (a, b) = pair(config("job", b"s3cret"), config("job", b"s3cret"));
    (a.unwrap(), b.unwrap())
}

fn net_config(buffer_size: usize, exclusive: usize, floating: usize) -> NetworkConfig {
    NetworkConfig {
        buffer_size,
        exclusive_buffers_per_channel: exclusive,
        floating_buffers_per_gate: floating,
    }
}

fn record(ch: usize, k: usize) -> Vec<u8> {
    let len = 1 + (k * 37 + ch * 11) % 300;
    (0..len).map(|i| (ch * 31 + k * 7 + i) as u8).collect()
}

fn partition(subpartitions: usize, pool: usize, buffer_size: usize) -> Arc<ResultPartition> {
    ResultPartition::new(
        subpartitions,
        pool,
        buffer_size,
        CancelToken::new(),
        IoMetrics::new(),
    )
    .unwrap()
}

/// Writes `n` records per subpartition with a watermark every 100 and a barrier in the
/// middle, then finishes.
fn produce(p: Arc<ResultPartition>, n: usize) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut w = PartitionWriter::new(p).unwrap();
        let subs = w.num_subpartitions();
        for k in 0..n {
            for ch in 0..subs {
                w.emit(ch, &record(ch, k)).unwrap();
                if k % 100 == 99 {
                    w.emit_event(ch, &Event::Watermark(k as i64)).unwrap();
                }
            }
            if k == n / 2 {
                w.broadcast_event(&Event::CheckpointBarrier {
                    id: 1,
                    timestamp: 7,
                })
                .unwrap();
            }
        }
        w.finish().unwrap();
    })
}

type Received = (Vec<Vec<Vec<u8>>>, Vec<Vec<Event>>);

/// Polls `gate` to the end; records and events per channel.
fn consume(gate: &mut InputGate, mut before_poll: impl FnMut(usize)) -> Received {
    let n = gate.num_channels();
    let mut records = vec![Vec::new(); n];
    let mut events = vec![Vec::new(); n];
    let mut processed = 0;
    loop {
        before_poll(processed);
        let r = gate
            .poll(GUARD, &mut |item| match item {
                GateItem::Record { channel, bytes } => records[channel].push(bytes.to_vec()),
                GateItem::Event { channel, event } => events[channel].push(event),
                GateItem::Records { .. } => unreachable!(),
            })
            .unwrap();
        match r {
            GatePoll::Processed => processed += 1,
            GatePoll::Finished => return (records, events),
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn expected_events(n: usize, with_barrier: bool) -> Vec<Event> {
    let mut e = Vec::new();
    for k in 0..n {
        if k % 100 == 99 {
            e.push(Event::Watermark(k as i64));
        }
        if with_barrier && k == n / 2 {
            e.push(Event::CheckpointBarrier {
                id: 1,
                timestamp: 7,
            });
        }
    }
    e.push(Event::EndOfPartition);
    e
}

#[test]
fn records_and_events_arrive_in_order_exactly_in_both_directions() {
    let (a, b) = connected();
    let n = 1500;
    let nc = net_config(256, 2, 3);
    // A -> B: three logical channels; B -> A: two, on the same connection.
    let pa = partition(3, 5, 256);
    let pb = partition(2, 4, 256);
    let mut gate_b = InputGate::new(3, &nc, CancelToken::new(), IoMetrics::new()).unwrap();
    let mut gate_a = InputGate::new(2, &nc, CancelToken::new(), IoMetrics::new()).unwrap();
    for ch in 0..3 {
        a.register_sender(ch as u32, &pa, ch).unwrap();
        b.register_receiver(ch as u32, &gate_b, ch).unwrap();
    }
    for ch in 0..2 {
        // Receiver first this time: its credit waits for the sender's registration.
        a.register_receiver(100 + ch as u32, &gate_a, ch).unwrap();
        b.register_sender(100 + ch as u32, &pb, ch).unwrap();
    }
    let producers = [produce(Arc::clone(&pa), n), produce(Arc::clone(&pb), n)];
    let reader_a = thread::spawn(move || {
        let got = consume(&mut gate_a, |_| {});
        (got, gate_a.stats())
    });
    let (records_b, events_b) = consume(&mut gate_b, |k| {
        if k % 7 == 0 {
            thread::yield_now();
        }
    });
    let ((records_a, events_a), stats_a) = reader_a.join().unwrap();
    for p in producers {
        p.join().unwrap();
    }
    for (records, events) in [(&records_b, &events_b), (&records_a, &events_a)] {
        for ch in 0..records.len() {
            let want: Vec<Vec<u8>> = (0..n).map(|k| record(ch, k)).collect();
            assert_eq!(records[ch], want, "records of channel {ch}");
            assert_eq!(
                events[ch],
                expected_events(n, true),
                "events of channel {ch}"
            );
        }
    }
    // The credit protocol held over the wire.
    let gs = gate_b.stats();
    assert_eq!(gs.credit_violations, 0);
    assert_eq!(stats_a.credit_violations, 0);
    let ps = pa.stats();
    assert_eq!(ps.credit_violations, 0);
    assert_eq!(ps.queued, 0);
    assert!(ps.buffers_shipped <= ps.credit_received, "{ps:?}");
    assert_eq!(ps.buffers_shipped, gs.buffers_received);
    assert!(gs.buffers_received <= gs.credit_announced);
    assert_eq!(pb.stats().buffers_shipped, stats_a.buffers_received);
    assert!(a.failure().is_none() && b.failure().is_none());
    // Every buffer is one frame: frames received by B = its buffers + the credit
    // frames A announced.
    assert!(b.stats().frames_received >= gs.buffers_received);
}

#[test]
fn credits_bound_the_buffers_in_flight_with_a_slow_reader() {
    let (a, b) = connected();
    let (exclusive, floating) = (2, 1);
    let nc = net_config(128, exclusive, floating);
    let p = partition(1, 8, 128);
    let mut gate = InputGate::new(1, &nc, CancelToken::new(), IoMetrics::new()).unwrap();
    a.register_sender(0, &p, 0).unwrap();
    b.register_receiver(0, &gate, 0).unwrap();
    let n = 400;
    let producer = produce(Arc::clone(&p), n);
    let mut max_in_flight = 0;
    let mut max_queued = 0;
    let (records, _) = consume(&mut gate, |consumed| {
        // Slow reader: the sender gets ahead as far as credit lets it.
        thread::sleep(Duration::from_millis(1));
        let s = p.stats();
        let in_flight = s.buffers_shipped.saturating_sub(consumed as u64);
        max_in_flight = max_in_flight.max(in_flight);
        max_queued = max_queued.max(s.queued);
        assert!(
            in_flight <= (exclusive + floating) as u64,
            "{in_flight} buffers in flight after {consumed} consumed: {s:?}"
        );
        // The same bound in bytes on the wire: A sends nothing but data frames here,
        // each at most a buffer plus the frame overhead.
        let frame_max = (128 + LENGTH_LEN + BUFFER_HEADER_LEN + CRC_LEN) as u64;
        let window = (consumed + exclusive + floating) as u64;
        assert!(
            a.stats().bytes_sent <= window * frame_max,
            "{:?}",
            a.stats()
        );
    });
    producer.join().unwrap();
    assert_eq!(records[0].len(), n);
    // The sender really was held back (it queued behind missing credit).
    assert!(max_queued > 0, "sender never waited for credit");
    let gs = gate.stats();
    assert!(gs.max_segments_in_use <= nc.gate_segment_capacity(1));
    assert_eq!(gs.credit_violations, 0);
}

#[test]
fn a_debloated_buffer_size_reaches_the_sender_over_tcp() {
    let (a, b) = connected();
    let nc = net_config(4096, 2, 4);
    let p = partition(1, 8, 4096);
    let mut gate = InputGate::new(1, &nc, CancelToken::new(), IoMetrics::new()).unwrap();
    let clock = ManualClock::new();
    gate.enable_debloating(&BufferDebloatConfig::default(), Arc::new(clock.clone()));
    a.register_sender(0, &p, 0).unwrap();
    b.register_receiver(0, &gate, 0).unwrap();
    let producer = produce(Arc::clone(&p), 3_000);
    // A reader taking a second of the job's clock per buffer: ~4 KB/s, so the gate
    // announces buffers far below 4 KiB.
    let (records, _) = consume(&mut gate, |_| clock.advance(Duration::from_secs(1)));
    producer.join().unwrap();
    assert_eq!(records[0].len(), 3_000);
    let size = gate.debloated_buffer_size().unwrap();
    assert!(size < 4096, "announced {size}");
    let guard = Instant::now();
    while p.announced_buffer_size(0).unwrap() != Some(size) {
        assert!(guard.elapsed() < GUARD, "the size never reached the sender");
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_channel_without_credit_does_not_stall_another_on_the_same_connection() {
    let (a, b) = connected();
    let nc = net_config(128, 2, 0);
    // Two producers with their own pools, so only the connection is shared.
    let p0 = partition(1, 4, 128);
    let p1 = partition(1, 4, 128);
    let mut gate = InputGate::new(2, &nc, CancelToken::new(), IoMetrics::new()).unwrap();
    a.register_sender(0, &p0, 0).unwrap();
    a.register_sender(1, &p1, 0).unwrap();
    b.register_receiver(0, &gate, 0).unwrap();
    b.register_receiver(1, &gate, 1).unwrap();
    // Channel 0's consumer takes nothing: its credit runs out.
    gate.block_channel(0).unwrap();
    let n = 300;
    let h0 = produce(Arc::clone(&p0), n);
    let h1 = produce(Arc::clone(&p1), n);
    let mut got1 = Vec::new();
    let deadline = Instant::now() + GUARD;
    while !gate.is_channel_finished(1) {
        assert!(Instant::now() < deadline, "channel 1 stalled");
        gate.poll(GUARD, &mut |item| match item {
            GateItem::Record { channel, bytes } => {
                assert_eq!(channel, 1, "blocked channel delivered");
                got1.push(bytes.to_vec());
            }
            GateItem::Event { channel, .. } => assert_eq!(channel, 1),
            GateItem::Records { .. } => unreachable!(),
        })
        .unwrap();
    }
    h1.join().unwrap();
    let want1: Vec<Vec<u8>> = (0..n).map(|k| record(0, k)).collect();
    assert_eq!(got1, want1);
    // Channel 0 is stalled on credit: data queued at the sender, no credit left.
    let s0 = p0.stats();
    assert!(s0.queued > 0, "{s0:?}");
    assert_eq!(p0.subpartition_stats(0).unwrap().credit, 0);
    // Resumed, it delivers everything, exactly.
    gate.resume_channel(0).unwrap();
    let (records, events) = consume(&mut gate, |_| {});
    h0.join().unwrap();
    assert_eq!(records[0], want1);
    assert_eq!(events[0], expected_events(n, true));
    assert!(a.failure().is_none() && b.failure().is_none());
}

/// Waits (within the guard) until `done` holds; `what` names it in the failure.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + GUARD;
    while !done() {
        assert!(Instant::now() < deadline, "never: {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_cancelled_channel_drops_its_queued_data_and_releases_its_writer_while_another_flows() {
    let (a, b) = connected();
    // No floating segments: each channel's credit is exactly its 2 exclusive ones.
    let nc = net_config(128, 2, 0);
    // Two producers with their own pools, so only the connection is shared.
    let p0 = partition(1, 4, 128);
    let p1 = partition(1, 4, 128);
    // One gate per channel: dropping a gate is how a receiver releases its
    // channels, and it must release channel 0 only.
    let gate0 = InputGate::new(1, &nc, CancelToken::new(), IoMetrics::new()).unwrap();
    let mut gate1 = InputGate::new(1, &nc, CancelToken::new(), IoMetrics::new()).unwrap();
    a.register_sender(0, &p0, 0).unwrap();
    a.register_sender(1, &p1, 0).unwrap();
    b.register_receiver(0, &gate0, 0).unwrap();
    b.register_receiver(1, &gate1, 0).unwrap();
    // Channel 0's writer writes until it is told the receiver went away; nobody
    // reads gate 0, so it ships its 2 credits' worth and then queues and blocks.
    let writer0 = {
        let p0 = Arc::clone(&p0);
        thread::spawn(move || {
            let mut w = PartitionWriter::new(p0).unwrap();
            for k in 0..100_000 {
                if let Err(e) = w.emit(0, &record(0, k)) {
                    return (k, e);
                }
            }
            panic!("the writer of the cancelled channel was never released");
        })
    };
    // Channel 1 carries half its records before the cancel and half after it.
    let n = 600;
    let (resume_tx, resume_rx) = std::sync::mpsc::channel::<()>();
    let writer1 = {
        let p1 = Arc::clone(&p1);
        thread::spawn(move || {
            let mut w = PartitionWriter::new(p1).unwrap();
            for k in 0..n {
                if k == n / 2 {
                    w.flush_all().unwrap();
                    resume_rx.recv().unwrap();
                }
                w.emit(0, &record(1, k)).unwrap();
                if k % 100 == 99 {
                    w.emit_event(0, &Event::Watermark(k as i64)).unwrap();
                }
            }
            w.finish().unwrap();
        })
    };
    let reader1 = thread::spawn(move || {
        let got = consume(&mut gate1, |_| {});
        (got, gate1.stats())
    });
    wait_until("channel 0 stalled on credit with data queued", || {
        let s = p0.subpartition_stats(0).unwrap();
        s.buffers_shipped == 2 && s.credit == 0 && s.queued > 0
    });

    drop(gate0); // The receiver releases channel 0: a Cancel frame to A.
    wait_until("channel 0's writer released", || writer0.is_finished());
    let (written, err) = writer0.join().unwrap();
    assert!(
        matches!(err, NetworkError::ReceiverReleased { subpartition: 0 }),
        "{err:?}"
    );
    assert!(written > 0);
    // The queued data was dropped, not shipped: nothing queued, still 2 shipped.
    let s0 = p0.subpartition_stats(0).unwrap();
    assert_eq!((s0.queued, s0.buffers_shipped), (0, 2), "{s0:?}");
    assert_eq!(p0.stats().queued, 0);

    // Channel 1, on the same connection, goes on and delivers everything, exactly.
    resume_tx.send(()).unwrap();
    writer1.join().unwrap();
    let ((records, events), stats1) = reader1.join().unwrap();
    let want: Vec<Vec<u8>> = (0..n).map(|k| record(1, k)).collect();
    assert_eq!(records[0], want);
    assert_eq!(events[0], expected_events(n, false));
    assert_eq!(stats1.credit_violations, 0);
    let s1 = p1.stats();
    assert_eq!(s1.buffers_shipped, stats1.buffers_received);
    assert_eq!(s1.queued, 0);
    // On the wire A -> B: channel 0's 2 buffers and channel 1's, nothing else (no
    // heartbeats here): the dropped data never left A.
    assert_eq!(
        b.stats().frames_received,
        2 + s1.buffers_shipped,
        "{:?}",
        b.stats()
    );
    assert_eq!(p0.subpartition_stats(0).unwrap().buffers_shipped, 2);
    assert!(a.failure().is_none() && b.failure().is_none());
}

#[test]
fn a_cancel_that_arrives_before_its_sender_registers_releases_it_at_registration() {
    let (a, b) = connected();
    let nc = net_config(128, 2, 0);
    let gate = InputGate::new(1, &nc, CancelToken::new(), IoMetrics::new()).unwrap();
    // Receiver first: its credit, then its cancel, wait at A for a sender.
    b.register_receiver(5, &gate, 0).unwrap();
    drop(gate);
    // A third frame after them on the same ordered stream: once A read it, A has
    // dispatched the credit and the cancel.
    let other = InputGate::new(1, &nc, CancelToken::new(), IoMetrics::new()).unwrap();
    b.register_receiver(6, &other, 0).unwrap();
    wait_until("A read credit, cancel and credit", || {
        a.stats().frames_received == 3
    });
    let p = partition(1, 4, 128);
    a.register_sender(5, &p, 0).unwrap();
    let mut w = PartitionWriter::new(Arc::clone(&p)).unwrap();
    let mut first_error = None;
    for k in 0..10 {
        if let Err(e) = w.emit(0, &record(0, k)) {
            first_error = Some(e);
            break;
        }
    }
    let err = match first_error {
        Some(e) => e,
        None => w.finish().unwrap_err(),
    };
    assert!(
        matches!(err, NetworkError::ReceiverReleased { subpartition: 0 }),
        "{err:?}"
    );
    let s = p.stats();
    assert_eq!((s.buffers_shipped, s.queued), (0, 0), "{s:?}");
    assert_eq!(b.stats().frames_received, 0);
    assert!(a.failure().is_none() && b.failure().is_none());
}

fn refusal(a: TcpConfig, b: TcpConfig) -> (String, String) {
    let (ra, rb) = pair(a, b);
    let msg = |r: Result<TcpConnection, TcpError>| match r {
        Err(e @ TcpError::HandshakeRefused { .. }) => e.to_string(),
        other => panic!("expected a refusal, got {other:?}"),
    };
    (msg(ra), msg(rb))
}

#[test]
fn a_peer_of_another_job_or_secret_is_refused() {
    let (a, b) = refusal(config("job-a", b"s"), config("job-b", b"s"));
    assert!(
        a.contains("job \"job-b\"") && a.contains("127.0.0.1"),
        "{a}"
    );
    assert!(b.contains("job \"job-a\""), "{b}");
    let (a, b) = refusal(config("job", b"one"), config("job", b"two"));
    assert!(a.contains("shared secret"), "{a}");
    assert!(b.contains("shared secret"), "{b}");
}

#[test]
fn a_peer_of_another_protocol_version_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = thread::spawn(move || TcpConnection::accept(&listener, &config("job", b"s")));
    let mut raw = TcpStream::connect(addr).unwrap();
    let mut hello = b"FLRS".to_vec();
    hello.extend_from_slice(&99u16.to_be_bytes());
    hello.extend_from_slice(&3u16.to_be_bytes());
    hello.extend_from_slice(b"job");
    hello.extend_from_slice(&[0u8; 16]);
    raw.write_all(&hello).unwrap();
    let err = acceptor.join().unwrap().unwrap_err().to_string();
    assert!(err.contains("protocol version 99"), "{err}");
}

/// An accepted connection whose peer is a raw socket that passed the handshake, with
/// logical channel 0 registered into a one-channel gate.
fn raw_peer() -> (TcpConnection, TcpStream, InputGate, CancelToken) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = thread::spawn(move || TcpConnection::accept(&listener, &config("job", b"s")));
    let raw = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
            handshake(&mut raw, &config("job", b"s"), Role::Dialer, "raw")
                .await
                .unwrap();
            raw.into_std().unwrap()
        });
    raw.set_nonblocking(false).unwrap();
    let conn = acceptor.join().unwrap().unwrap();
    let cancel = CancelToken::new();
    let gate = InputGate::new(1, &net_config(256, 2, 0), cancel.clone(), IoMetrics::new()).unwrap();
    conn.register_receiver(0, &gate, 0).unwrap();
    conn.cancel_on_failure(cancel.clone());
    (conn, raw, gate, cancel)
}

fn data_frame() -> Vec<u8> {
    // One length-prefixed record of 4 bytes, as a partition writer lays it out.
    let mut bytes = 4u32.to_be_bytes().to_vec();
    bytes.extend_from_slice(b"rec!");
    Frame::Buffer {
        channel: 0,
        backlog: 0,
        kind: BufferKind::Data,
        bytes: &bytes,
    }
    .encode()
}

/// Waits for the connection to fail; the gate must hand out nothing but cancellation.
fn failure_of(conn: &TcpConnection, gate: &mut InputGate) -> Arc<TcpError> {
    let deadline = Instant::now() + GUARD;
    let err = loop {
        if let Some(e) = conn.failure() {
            break e;
        }
        assert!(Instant::now() < deadline, "connection never failed");
        thread::sleep(Duration::from_millis(5));
    };
    let r = gate.poll(Duration::from_millis(100), &mut |item| {
        panic!("a wrong record got through: {item:?}")
    });
    assert_eq!(r, Ok(GatePoll::Cancelled));
    err
}

#[test]
fn a_corrupt_frame_fails_the_connection_naming_it() {
    let (conn, mut raw, mut gate, _cancel) = raw_peer();
    let mut frame = data_frame();
    let last_payload = frame.len() - 5;
    frame[last_payload] ^= 0x01;
    raw.write_all(&frame).unwrap();
    let err = failure_of(&conn, &mut gate);
    assert!(matches!(*err, TcpError::CorruptFrame { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(conn.name()) && msg.contains("checksum"),
        "{msg}"
    );
}

#[test]
fn a_truncated_frame_fails_the_connection_naming_it() {
    let (conn, mut raw, mut gate, _cancel) = raw_peer();
    let frame = data_frame();
    raw.write_all(&frame[..frame.len() - 3]).unwrap();
    raw.shutdown(std::net::Shutdown::Write).unwrap();
    let err = failure_of(&conn, &mut gate);
    assert!(matches!(*err, TcpError::TruncatedFrame { .. }), "{err}");
    assert!(err.to_string().contains(conn.name()), "{err}");
}

#[test]
fn an_oversized_length_is_refused_before_reading() {
    let (conn, mut raw, mut gate, _cancel) = raw_peer();
    raw.write_all(&u32::MAX.to_be_bytes()).unwrap();
    let err = failure_of(&conn, &mut gate);
    assert!(err.to_string().contains("frame length"), "{err}");
}

#[test]
fn a_buffer_without_credit_fails_the_connection() {
    let (conn, mut raw, mut gate, _cancel) = raw_peer();
    // Credit is 2 exclusive segments; the third buffer violates the protocol.
    for _ in 0..3 {
        raw.write_all(&data_frame()).unwrap();
    }
    let deadline = Instant::now() + GUARD;
    while conn.failure().is_none() {
        assert!(Instant::now() < deadline, "connection never failed");
        thread::sleep(Duration::from_millis(5));
    }
    let err = conn.failure().unwrap();
    assert!(err.to_string().contains("credit violation"), "{err}");
    assert_eq!(gate.stats().credit_violations, 1);
    let _ = gate.poll(Duration::from_millis(10), &mut |_| {});
}

#[test]
fn a_closed_peer_fails_readers_and_writers_instead_of_hanging() {
    let (a, b) = connected();
    let cancel = CancelToken::new();
    let mut gate =
        InputGate::new(1, &net_config(128, 2, 0), cancel.clone(), IoMetrics::new()).unwrap();
    b.register_receiver(1, &gate, 0).unwrap();
    b.cancel_on_failure(cancel);
    // B's writer has no receiver on A: it fills its pool and waits for credit.
    let pb = partition(1, 2, 128);
    b.register_sender(2, &pb, 0).unwrap();
    let writer = thread::spawn(move || {
        let mut w = PartitionWriter::new(pb).unwrap();
        for k in 0..1000 {
            w.emit(0, &record(0, k))?;
        }
        w.finish()
    });
    drop(a);
    let err = failure_of(&b, &mut gate);
    assert!(matches!(*err, TcpError::PeerClosed { .. }), "{err}");
    assert!(err.to_string().contains(b.name()), "{err}");
    let written = writer.join().unwrap();
    assert!(
        matches!(written, Err(NetworkError::ReceiverReleased { .. })),
        "{written:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    /// The properties `credit_protocol.rs` checks in-process, over a TCP connection:
    /// every record once and in order, no credit violation, shipped <= credit, pools
    /// within bounds, everything shipped received.
    #[test]
    fn the_credit_protocol_holds_over_tcp(
        buffer_size in 64usize..=512,
        channels in 1usize..=3,
        exclusive in 1usize..=3,
        floating in 0usize..=3,
        extra_pool in 0usize..=3,
        n in 1usize..=300,
    ) {
        let (a, b) = connected();
        let nc = net_config(buffer_size, exclusive, floating);
        let p = partition(channels, channels + 1 + extra_pool, buffer_size);
        let mut gate = InputGate::new(channels, &nc, CancelToken::new(), IoMetrics::new()).unwrap();
        for ch in 0..channels {
            a.register_sender(ch as u32, &p, ch).unwrap();
            b.register_receiver(ch as u32, &gate, ch).unwrap();
        }
        let producer = produce(Arc::clone(&p), n);
        let (records, events) = consume(&mut gate, |_| {});
        producer.join().unwrap();
        for ch in 0..channels {
            let want: Vec<Vec<u8>> = (0..n).map(|k| record(ch, k)).collect();
            prop_assert_eq!(&records[ch], &want);
            prop_assert_eq!(&events[ch], &expected_events(n, true));
        }
        let gs = gate.stats();
        let ps = p.stats();
        prop_assert_eq!(gs.credit_violations, 0);
        prop_assert_eq!(ps.credit_violations, 0);
        prop_assert!(ps.buffers_shipped <= ps.credit_received);
        prop_assert!(ps.pool_max_in_use <= ps.pool_capacity);
        prop_assert!(gs.floating_allocated <= floating);
        prop_assert!(gs.max_segments_in_use <= nc.gate_segment_capacity(channels));
        prop_assert_eq!(ps.queued, 0);
        prop_assert_eq!(ps.buffers_shipped, gs.buffers_received);
        prop_assert!(gs.buffers_received <= gs.credit_announced);
        prop_assert!(a.failure().is_none());
    }
}

#[test]
fn credit_for_too_many_unregistered_channels_fails_the_connection() {
    let (conn, mut raw, mut gate, _cancel) = raw_peer();
    let mut frames = Vec::new();
    for channel in 1..=65_537u32 {
        frames.extend_from_slice(&Frame::Credit { channel, credit: 1 }.encode());
    }
    raw.write_all(&frames).unwrap();
    let err = failure_of(&conn, &mut gate);
    assert!(
        err.to_string().contains("unregistered logical channels"),
        "{err}"
    );
}

fn tls_config(node: &str, ca: &str) -> TcpConfig {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tls");
    let file = |name: String| std::fs::read(format!("{dir}/{name}")).unwrap();
    let tls = TlsSettings::from_pem(
        &file(format!("{node}-node.pem")),
        &file(format!("{node}-node.key")),
        &file(format!("{ca}-ca.pem")),
        "flink-rs",
    )
    .unwrap();
    TcpConfig {
        tls: Some(Arc::new(tls)),
        ..config("job", b"s3cret")
    }
}

#[test]
fn records_and_events_arrive_exactly_over_mutual_tls() {
    let (a, b) = pair(
        tls_config("cluster", "cluster"),
        tls_config("cluster", "cluster"),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let nc = net_config(256, 2, 2);
    let p = partition(2, 4, 256);
    let mut gate = InputGate::new(2, &nc, CancelToken::new(), IoMetrics::new()).unwrap();
    for ch in 0..2 {
        a.register_sender(ch as u32, &p, ch).unwrap();
        b.register_receiver(ch as u32, &gate, ch).unwrap();
    }
    let n = 1000;
    let producer = produce(Arc::clone(&p), n);
    let (records, events) = consume(&mut gate, |_| {});
    producer.join().unwrap();
    for ch in 0..2 {
        let want: Vec<Vec<u8>> = (0..n).map(|k| record(ch, k)).collect();
        assert_eq!(records[ch], want);
        assert_eq!(events[ch], expected_events(n, true));
    }
    assert_eq!(gate.stats().credit_violations, 0);
    assert!(a.failure().is_none() && b.failure().is_none());
}

#[test]
fn a_peer_without_a_certificate_of_the_cluster_ca_is_refused() {
    let (a, b) = pair(
        tls_config("other", "cluster"),
        tls_config("cluster", "cluster"),
    );
    for r in [a, b] {
        match r {
            Err(e @ TcpError::HandshakeRefused { .. }) => {
                // The side that rejects the certificate says so; with TLS 1.3 the
                // other learns it from the alert on its first read.
                let msg = e.to_string();
                assert!(
                    msg.contains("TLS: invalid peer certificate") || msg.contains("alert"),
                    "{msg}"
                )
            }
            other => panic!("expected a TLS refusal, got {other:?}"),
        }
    }
    // Plain TCP against TLS is refused too, on both sides.
    let (a, b) = pair(config("job", b"s3cret"), tls_config("cluster", "cluster"));
    assert!(matches!(a, Err(TcpError::HandshakeRefused { .. })), "{a:?}");
    assert!(matches!(b, Err(TcpError::HandshakeRefused { .. })), "{b:?}");
}

#[test]
fn unusable_tls_settings_are_a_typed_error() {
    let err = TlsSettings::from_pem(b"not a pem", b"", b"", "flink-rs").unwrap_err();
    assert!(matches!(err, TcpError::Tls { .. }), "{err}");
}

#[test]
fn a_silent_peer_times_out_with_a_clear_error() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts at the TCP level but never speaks.
    let silent = thread::spawn(move || listener.accept().unwrap().0);
    let cfg = TcpConfig {
        handshake_timeout: Duration::from_millis(200),
        ..config("job", b"s")
    };
    let err = TcpConnection::connect(addr, &cfg).unwrap_err().to_string();
    assert!(
        err.contains("did not complete the handshake within"),
        "{err}"
    );
    assert!(err.contains(&addr.to_string()), "{err}");
    drop(silent.join().unwrap());
}

#[test]
fn a_peer_closing_after_both_sides_said_close_is_no_failure() {
    let (a, b) = pair(
        TcpConfig {
            process: 1,
            ..config("job", b"s3cret")
        },
        config("job", b"s3cret"),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    // Each side learns the other's process index in the handshake.
    assert_eq!((a.peer_process(), b.peer_process()), (0, 1));
    assert!(a.senders_drained() && b.senders_drained());
    let counts = OperatorCounts {
        node: 2,
        records_in: 10,
        records_out: 9,
        side_output_unconsumed: 0,
        dead_letters_discarded: 1,
    };
    a.close(&[counts]);
    b.close(&[]);
    let deadline = std::time::Instant::now() + GUARD;
    while !(a.closed_by_peer() && b.closed_by_peer()) {
        assert!(std::time::Instant::now() < deadline, "Close never arrived");
        thread::sleep(Duration::from_millis(5));
    }
    // Counts travel before the Close, so they are complete once it arrived.
    assert_eq!(b.peer_counts(), vec![counts]);
    assert!(a.peer_counts().is_empty());
    drop(b);
    // The orderly end is not a failure; give the reader time to see the EOF.
    thread::sleep(Duration::from_millis(100));
    assert!(a.failure().is_none(), "{:?}", a.failure());
}

#[test]
fn a_silent_peer_fails_the_connection_by_heartbeat_timeout_and_a_live_one_does_not() {
    let heartbeats = |timeout_ms| TcpConfig {
        heartbeat_timeout: Some(Duration::from_millis(timeout_ms)),
        ..config("job", b"s")
    };
    // Both sides heartbeat: an idle connection (no channel carries anything) stays up.
    // (Generous: a loaded machine must not stall a live peer past it.)
    let (a, b) = pair(heartbeats(2000), heartbeats(2000));
    let (a, b) = (a.unwrap(), b.unwrap());
    // A stand-in peer that completed the handshake but never sends a frame again.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = thread::spawn(move || TcpConnection::accept(&listener, &heartbeats(200)));
    let _raw = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
            handshake(&mut raw, &config("job", b"s"), Role::Dialer, "raw")
                .await
                .unwrap();
            raw
        });
    let lonely = acceptor.join().unwrap().unwrap();
    let deadline = Instant::now() + GUARD;
    let err = loop {
        if let Some(e) = lonely.failure() {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "the silent peer was never detected"
        );
        thread::sleep(Duration::from_millis(5));
    };
    assert!(matches!(*err, TcpError::HeartbeatTimeout { .. }), "{err}");
    assert!(err.to_string().contains(lonely.name()), "{err}");
    // The live pair stays up past its own timeout: 8 heartbeats, one per 400 ms.
    while a.stats().frames_received < 8 {
        assert!(Instant::now() < deadline, "heartbeats stopped");
        thread::sleep(Duration::from_millis(20));
    }
    assert!(a.failure().is_none() && b.failure().is_none());
}
