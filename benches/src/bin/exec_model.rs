//! Execution-model micro-benchmark: one OS thread per stage (what the engine does)
//! against one tokio task per stage, with the same per-buffer work in both.
//!
//! `cargo run --release -p benches --bin exec_model -- [records=N] [runs=R] [rounds=K]
//! [work=W] [shapes=A,B,C] [models=threads,threads-condvar,tokio-mt2,tokio-ct]`
//!
//! - **A** (throughput, the `nochain` job's shape): source -> map(x*2) ->
//!   filter(x%3 != 0) -> sink, one stage per thread or task. Every hop moves 32 KiB
//!   buffers of records (a 4-byte length prefix and a u64 in 8 bytes, so stages
//!   really decode and encode) through a bounded exchange: each hop owns
//!   [`BUFFERS_PER_HOP`] buffers, a sender must take an empty one back from its
//!   receiver before it can fill it, so a returned buffer is the credit.
//! - **B** (hand-off latency): one buffer holding one record bounced between two
//!   stages over capacity-1 queues; round-trip percentiles.
//! - **C** (many stages on few cores): shape A replicated four times (16 stages).
//!
//! `work=W` adds W rounds of integer mixing per record in every stage of A and C, to
//! bring the per-record cost near the engine's (the bare stages are several times
//! cheaper, which magnifies whatever a hand-off costs).
//!
//! Models: `threads` (std's bounded `sync_channel`, the crossbeam-channel algorithm,
//! which spins briefly before parking), `threads-condvar` (a mutex and condition
//! variable that only notifies a parked waiter, as the engine's pools and gates do),
//! `tokio-mt2` (tokio tasks, `tokio::sync::mpsc`, multi-thread runtime with 2
//! workers) and `tokio-ct` (the same tasks on a current-thread runtime).
//!
//! Runs are interleaved (every shape and model once per run, the model order rotated
//! each run) and the medians are printed at the end. This is not the engine: no
//! copy into receiver segments, no metrics, no flush timer, no cancellation checks.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use tokio::sync::mpsc;

/// Size of every exchanged buffer, the engine's default.
const BUFFER_SIZE: usize = 32 * 1024;
/// Buffers in flight per hop: the engine's 2 exclusive segments per channel plus the
/// gate's 8 floating ones, for a gate with one channel.
const BUFFERS_PER_HOP: usize = 10;
/// Length prefix plus the fixed-width u64, as the engine writes a `u64` record.
const RECORD_LEN: usize = 4 + 8;
/// Pipelines in shape C.
const SHAPE_C_PARALLELISM: u64 = 4;

const ALL_MODELS: [Model; 4] = [
    Model::Threads,
    Model::ThreadsCondvar,
    Model::TokioMt2,
    Model::TokioCt,
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Model {
    Threads,
    ThreadsCondvar,
    TokioMt2,
    TokioCt,
}

impl Model {
    fn name(self) -> &'static str {
        match self {
            Model::Threads => "threads",
            Model::ThreadsCondvar => "threads-condvar",
            Model::TokioMt2 => "tokio-mt2",
            Model::TokioCt => "tokio-ct",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        ALL_MODELS
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| anyhow!("unknown model '{s}'"))
    }
}

// ---------------------------------------------------------------------------
// Buffers and the per-buffer work, shared by every model.

/// A fixed-size buffer and how many of its bytes are written.
struct Buf {
    data: Box<[u8]>,
    len: usize,
}

impl Buf {
    fn new() -> Self {
        Self {
            data: vec![0u8; BUFFER_SIZE].into_boxed_slice(),
            len: 0,
        }
    }

    fn is_full(&self) -> bool {
        self.len + RECORD_LEN > self.data.len()
    }

    /// Callers check `is_full` first; the slice index panics otherwise.
    #[inline]
    fn push(&mut self, v: u64) {
        let dst = &mut self.data[self.len..self.len + RECORD_LEN];
        dst[..4].copy_from_slice(&8u32.to_le_bytes());
        dst[4..].copy_from_slice(&v.to_le_bytes());
        self.len += RECORD_LEN;
    }

    /// Decodes the record at `pos`; a wrong length prefix means a broken exchange, so
    /// it panics and the stage's join reports it.
    #[inline]
    fn read(&self, pos: usize) -> u64 {
        let rec = &self.data[pos..pos + RECORD_LEN];
        let len = u32::from_le_bytes(rec[..4].try_into().unwrap());
        assert_eq!(len, 8, "corrupt record at byte {pos}");
        u64::from_le_bytes(rec[4..].try_into().unwrap())
    }
}

/// Extra CPU work per record and stage (`work=` argument), set once before any run.
static WORK: AtomicU32 = AtomicU32::new(0);

/// `work` rounds of integer mixing whose result is kept alive: stands in for the
/// per-record cost the engine has and this benchmark otherwise lacks (generic
/// decoders, operator calls, metrics), so the hand-off cost can be seen at an
/// engine-like share of the total.
#[inline]
fn burn(x: u64, work: u32) {
    let mut h = x;
    for _ in 0..work {
        h = (h ^ (h >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    }
    std::hint::black_box(h);
}

/// Fills `out` (from empty) with `next..=last`, advancing `next`.
fn fill_source(out: &mut Buf, next: &mut u64, last: u64) {
    let work = WORK.load(Ordering::Relaxed);
    out.len = 0;
    while *next <= last && !out.is_full() {
        burn(*next, work);
        out.push(*next);
        *next += 1;
    }
}

/// Decodes records of `input` from `*pos`, encodes `f`'s results into `out`, and
/// stops when the input is exhausted or `out` is full.
#[inline]
fn transform(input: &Buf, pos: &mut usize, out: &mut Buf, f: impl Fn(u64) -> Option<u64>) {
    let work = WORK.load(Ordering::Relaxed);
    while *pos < input.len && !out.is_full() {
        let x = input.read(*pos);
        burn(x, work);
        if let Some(v) = f(x) {
            out.push(v);
        }
        *pos += RECORD_LEN;
    }
}

/// What a sink saw: record count and wrapping sum of values.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
struct Tally {
    count: u64,
    sum: u64,
}

impl Tally {
    fn consume(&mut self, input: &Buf) {
        let work = WORK.load(Ordering::Relaxed);
        let mut pos = 0;
        while pos < input.len {
            let x = input.read(pos);
            burn(x, work);
            self.count += 1;
            self.sum = self.sum.wrapping_add(x);
            pos += RECORD_LEN;
        }
    }

    fn add(self, other: Tally) -> Tally {
        Tally {
            count: self.count + other.count,
            sum: self.sum.wrapping_add(other.sum),
        }
    }

    /// What the sink must see for the source range `first..=last`.
    fn expected(first: u64, last: u64) -> Tally {
        // Closed forms over 1..=n, differenced: count and sum of 2x for x not
        // divisible by 3 (2x % 3 == 0 exactly when x % 3 == 0).
        let upto = |n: u64| -> (u128, u128) {
            let n = n as u128;
            let m = n / 3;
            (n - m, 2 * (n * (n + 1) / 2 - 3 * m * (m + 1) / 2))
        };
        let (c1, s1) = upto(last);
        let (c0, s0) = upto(first - 1);
        Tally {
            count: (c1 - c0) as u64,
            sum: (s1 - s0) as u64,
        }
    }
}

fn map_fn(x: u64) -> Option<u64> {
    Some(x * 2)
}

fn filter_fn(x: u64) -> Option<u64> {
    (!x.is_multiple_of(3)).then_some(x)
}

/// Splits `1..=records` into `parts` contiguous ranges.
fn ranges(records: u64, parts: u64) -> Vec<(u64, u64)> {
    (0..parts)
        .map(|i| (i * records / parts + 1, (i + 1) * records / parts))
        .collect()
}

// ---------------------------------------------------------------------------
// Thread model: blocking queues, one OS thread per stage.

/// A bounded blocking queue of buffers with separately owned ends; the receiving end
/// reports the end of the stream once every sender is gone.
trait Flavor: 'static {
    /// Sending end.
    type Tx: Send + 'static;
    /// Receiving end.
    type Rx: Send + 'static;
    /// A queue holding up to `cap` buffers.
    fn bounded(cap: usize) -> (Self::Tx, Self::Rx);
    /// Enqueues; fails when the receiver is gone.
    fn send(tx: &Self::Tx, b: Buf) -> Result<()>;
    /// Blocks for the next buffer; `None` once the sender is gone and drained.
    fn recv(rx: &Self::Rx) -> Option<Buf>;
}

/// std's bounded channel (crossbeam-channel's array flavour since Rust 1.67).
struct StdChannel;

impl Flavor for StdChannel {
    type Tx = SyncSender<Buf>;
    type Rx = Receiver<Buf>;

    fn bounded(cap: usize) -> (Self::Tx, Self::Rx) {
        sync_channel(cap)
    }

    fn send(tx: &Self::Tx, b: Buf) -> Result<()> {
        tx.send(b).map_err(|_| anyhow!("receiver gone"))
    }

    fn recv(rx: &Self::Rx) -> Option<Buf> {
        rx.recv().ok()
    }
}

/// A mutex-protected deque with one condition variable, notified only when the
/// consumer is parked: the waiting discipline of the engine's buffer pool and gate.
struct CondvarQueue;

struct CvState {
    items: VecDeque<Buf>,
    waiting: bool,
    closed: bool,
}

struct CvShared {
    state: Mutex<CvState>,
    ready: Condvar,
}

impl CvShared {
    fn close(&self) {
        let mut st = self.state.lock().unwrap();
        st.closed = true;
        if st.waiting {
            self.ready.notify_one();
        }
    }
}

/// Sending end of a [`CondvarQueue`]; dropping it ends the stream.
struct CvTx(Arc<CvShared>);
/// Receiving end of a [`CondvarQueue`]; dropping it makes sends fail.
struct CvRx(Arc<CvShared>);

impl Drop for CvTx {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl Drop for CvRx {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl Flavor for CondvarQueue {
    type Tx = CvTx;
    type Rx = CvRx;

    fn bounded(cap: usize) -> (Self::Tx, Self::Rx) {
        let shared = Arc::new(CvShared {
            state: Mutex::new(CvState {
                items: VecDeque::with_capacity(cap),
                waiting: false,
                closed: false,
            }),
            ready: Condvar::new(),
        });
        (CvTx(shared.clone()), CvRx(shared))
    }

    fn send(tx: &Self::Tx, b: Buf) -> Result<()> {
        let mut st = tx.0.state.lock().unwrap();
        // Both ends close the same flag; a send after our own close cannot happen.
        ensure!(!st.closed, "receiver gone");
        // Never blocks: the credit protocol bounds what is in flight to the pool size.
        st.items.push_back(b);
        let wake = st.waiting;
        drop(st);
        if wake {
            tx.0.ready.notify_one();
        }
        Ok(())
    }

    fn recv(rx: &Self::Rx) -> Option<Buf> {
        let mut st = rx.0.state.lock().unwrap();
        loop {
            if let Some(b) = st.items.pop_front() {
                return Some(b);
            }
            if st.closed {
                return None;
            }
            st.waiting = true;
            st = rx.0.ready.wait(st).unwrap();
            st.waiting = false;
        }
    }
}

/// Sender side of a hop: ships full buffers, takes empty ones (credit) back.
struct Out<F: Flavor> {
    data: F::Tx,
    credit: F::Rx,
}

/// Receiver side of a hop.
struct In<F: Flavor> {
    data: F::Rx,
    credit: F::Tx,
}

fn hop<F: Flavor>() -> Result<(Out<F>, In<F>)> {
    let (data_tx, data_rx) = F::bounded(BUFFERS_PER_HOP);
    let (credit_tx, credit_rx) = F::bounded(BUFFERS_PER_HOP);
    for _ in 0..BUFFERS_PER_HOP {
        F::send(&credit_tx, Buf::new())?;
    }
    Ok((
        Out {
            data: data_tx,
            credit: credit_rx,
        },
        In {
            data: data_rx,
            credit: credit_tx,
        },
    ))
}

impl<F: Flavor> Out<F> {
    fn take(&self) -> Result<Buf> {
        let mut b = F::recv(&self.credit).context("downstream ended early")?;
        b.len = 0;
        Ok(b)
    }
}

fn source_thread<F: Flavor>(out: Out<F>, (first, last): (u64, u64)) -> Result<()> {
    let mut next = first;
    while next <= last {
        let mut b = out.take()?;
        fill_source(&mut b, &mut next, last);
        F::send(&out.data, b)?;
    }
    Ok(())
}

fn transform_thread<F: Flavor>(
    input: In<F>,
    out: Out<F>,
    f: impl Fn(u64) -> Option<u64> + Copy,
) -> Result<()> {
    let mut cur = out.take()?;
    while let Some(b) = F::recv(&input.data) {
        let mut pos = 0;
        loop {
            transform(&b, &mut pos, &mut cur, f);
            if cur.is_full() {
                F::send(&out.data, cur)?;
                cur = out.take()?;
            }
            if pos == b.len {
                break;
            }
        }
        // Upstream drops its credit queue once it has sent everything, so a failed
        // return at the end is expected and harmless.
        let _ = F::send(&input.credit, b);
    }
    if cur.len > 0 {
        F::send(&out.data, cur)?;
    }
    Ok(())
}

fn sink_thread<F: Flavor>(input: In<F>) -> Tally {
    let mut tally = Tally::default();
    while let Some(b) = F::recv(&input.data) {
        tally.consume(&b);
        let _ = F::send(&input.credit, b);
    }
    tally
}

fn join<T>(h: std::thread::JoinHandle<T>) -> Result<T> {
    h.join().map_err(|_| anyhow!("a stage thread panicked"))
}

/// Runs one shape-A pipeline per range, one thread per stage; returns the sinks'
/// total and the wall time from the first spawn to the last join.
fn pipelines_threads<F: Flavor>(parts: &[(u64, u64)]) -> Result<(Tally, Duration)> {
    let start = Instant::now();
    let mut stages = Vec::new();
    let mut sinks = Vec::new();
    for &range in parts {
        let (o1, i1) = hop::<F>()?;
        let (o2, i2) = hop::<F>()?;
        let (o3, i3) = hop::<F>()?;
        let spawn = |name: &str| std::thread::Builder::new().name(name.into());
        stages.push(spawn("source").spawn(move || source_thread(o1, range))?);
        stages.push(spawn("map").spawn(move || transform_thread(i1, o2, map_fn))?);
        stages.push(spawn("filter").spawn(move || transform_thread(i2, o3, filter_fn))?);
        sinks.push(spawn("sink").spawn(move || sink_thread(i3))?);
    }
    let mut total = Tally::default();
    for h in sinks {
        total = total.add(join(h)?);
    }
    for h in stages {
        join(h)??;
    }
    Ok((total, start.elapsed()))
}

// ---------------------------------------------------------------------------
// Task model: tokio tasks and tokio::sync::mpsc, the same work per buffer.

/// Sender side of an async hop.
struct AOut {
    data: mpsc::Sender<Buf>,
    credit: mpsc::Receiver<Buf>,
}

/// Receiver side of an async hop.
struct AIn {
    data: mpsc::Receiver<Buf>,
    credit: mpsc::Sender<Buf>,
}

fn ahop() -> (AOut, AIn) {
    let (data_tx, data_rx) = mpsc::channel(BUFFERS_PER_HOP);
    let (credit_tx, credit_rx) = mpsc::channel(BUFFERS_PER_HOP);
    for _ in 0..BUFFERS_PER_HOP {
        credit_tx
            .try_send(Buf::new())
            .expect("credit queue sized for the pool");
    }
    (
        AOut {
            data: data_tx,
            credit: credit_rx,
        },
        AIn {
            data: data_rx,
            credit: credit_tx,
        },
    )
}

impl AOut {
    async fn take(&mut self) -> Result<Buf> {
        let mut b = self.credit.recv().await.context("downstream ended early")?;
        b.len = 0;
        Ok(b)
    }

    async fn ship(&self, b: Buf) -> Result<()> {
        self.data
            .send(b)
            .await
            .map_err(|_| anyhow!("receiver gone"))
    }
}

async fn source_task(mut out: AOut, (first, last): (u64, u64)) -> Result<()> {
    let mut next = first;
    while next <= last {
        let mut b = out.take().await?;
        fill_source(&mut b, &mut next, last);
        out.ship(b).await?;
    }
    Ok(())
}

async fn transform_task(
    mut input: AIn,
    mut out: AOut,
    f: impl Fn(u64) -> Option<u64> + Copy,
) -> Result<()> {
    let mut cur = out.take().await?;
    while let Some(b) = input.data.recv().await {
        let mut pos = 0;
        loop {
            transform(&b, &mut pos, &mut cur, f);
            if cur.is_full() {
                out.ship(cur).await?;
                cur = out.take().await?;
            }
            if pos == b.len {
                break;
            }
        }
        // As in the thread model: upstream may already be gone at the end.
        let _ = input.credit.send(b).await;
    }
    if cur.len > 0 {
        out.ship(cur).await?;
    }
    Ok(())
}

async fn sink_task(mut input: AIn) -> Tally {
    let mut tally = Tally::default();
    while let Some(b) = input.data.recv().await {
        tally.consume(&b);
        let _ = input.credit.send(b).await;
    }
    tally
}

fn runtime(model: Model) -> Result<tokio::runtime::Runtime> {
    Ok(match model {
        Model::TokioMt2 => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()?,
        Model::TokioCt => tokio::runtime::Builder::new_current_thread().build()?,
        _ => bail!("{} is not a tokio model", model.name()),
    })
}

/// Runs one shape-A pipeline per range, one task per stage; timed like
/// [`pipelines_threads`] (the runtime is built before the clock starts).
fn pipelines_tokio(
    rt: &tokio::runtime::Runtime,
    parts: &[(u64, u64)],
) -> Result<(Tally, Duration)> {
    rt.block_on(async {
        let start = Instant::now();
        let mut stages = Vec::new();
        let mut sinks = Vec::new();
        for &range in parts {
            let (o1, i1) = ahop();
            let (o2, i2) = ahop();
            let (o3, i3) = ahop();
            stages.push(tokio::spawn(source_task(o1, range)));
            stages.push(tokio::spawn(transform_task(i1, o2, map_fn)));
            stages.push(tokio::spawn(transform_task(i2, o3, filter_fn)));
            sinks.push(tokio::spawn(sink_task(i3)));
        }
        let mut total = Tally::default();
        for h in sinks {
            total = total.add(h.await?);
        }
        for h in stages {
            h.await??;
        }
        Ok((total, start.elapsed()))
    })
}

// ---------------------------------------------------------------------------
// Shapes.

/// CPU seconds (user + system, all threads) this process has used so far, from
/// /proc/self/stat in clock ticks (100 per second on Linux).
fn cpu_seconds() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the parenthesised command name; utime and stime are the 12th and
    // 13th of them (fields 14 and 15 of the whole line).
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("odd /proc/self/stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>()? + f[12].parse::<u64>()?;
    Ok(ticks as f64 / 100.0)
}

/// One throughput run of shape A (`parallelism` 1) or C.
struct Throughput {
    /// Source records per second, the convention of `throughput nochain`.
    rate: f64,
    /// Records the sinks counted (checked against the closed form).
    sink: u64,
    seconds: f64,
    cpu: f64,
}

fn throughput(model: Model, records: u64, parallelism: u64) -> Result<Throughput> {
    let parts = ranges(records, parallelism);
    let rt = match model {
        Model::TokioMt2 | Model::TokioCt => Some(runtime(model)?),
        _ => None,
    };
    let cpu0 = cpu_seconds()?;
    let (tally, elapsed) = match model {
        Model::Threads => pipelines_threads::<StdChannel>(&parts)?,
        Model::ThreadsCondvar => pipelines_threads::<CondvarQueue>(&parts)?,
        Model::TokioMt2 | Model::TokioCt => pipelines_tokio(rt.as_ref().unwrap(), &parts)?,
    };
    let cpu = cpu_seconds()? - cpu0;
    let expected = parts
        .iter()
        .fold(Tally::default(), |t, &(a, b)| t.add(Tally::expected(a, b)));
    ensure!(
        tally == expected,
        "{}: sink saw {tally:?}, expected {expected:?}",
        model.name()
    );
    let seconds = elapsed.as_secs_f64();
    Ok(Throughput {
        rate: records as f64 / seconds,
        sink: tally.count,
        seconds,
        cpu,
    })
}

/// Bounces one buffer holding one record between two stages `rounds` times after
/// `rounds / 10` warm-up rounds; returns the round trips in nanoseconds.
fn ping_pong_threads<F: Flavor>(rounds: usize) -> Result<Vec<u64>> {
    let (to_b, b_in) = F::bounded(1);
    let (to_a, a_in) = F::bounded(1);
    let b = std::thread::Builder::new()
        .name("pong".into())
        .spawn(move || -> Result<()> {
            while let Some(mut buf) = F::recv(&b_in) {
                let v = buf.read(0);
                buf.len = 0;
                buf.push(v + 1);
                F::send(&to_a, buf)?;
            }
            Ok(())
        })?;
    let a =
        std::thread::Builder::new()
            .name("ping".into())
            .spawn(move || -> Result<Vec<u64>> {
                let warm = rounds / 10;
                let mut samples = Vec::with_capacity(rounds);
                let mut buf = Buf::new();
                for i in 0..(warm + rounds) as u64 {
                    buf.len = 0;
                    buf.push(i);
                    let t = Instant::now();
                    F::send(&to_b, buf)?;
                    buf = F::recv(&a_in).context("pong ended")?;
                    let rtt = t.elapsed().as_nanos() as u64;
                    ensure!(buf.read(0) == i + 1, "pong answered wrong");
                    if i >= warm as u64 {
                        samples.push(rtt);
                    }
                }
                Ok(samples)
            })?;
    let samples = join(a)??;
    join(b)??;
    Ok(samples)
}

fn ping_pong_tokio(rt: &tokio::runtime::Runtime, rounds: usize) -> Result<Vec<u64>> {
    rt.block_on(async {
        let (to_b, mut b_in) = mpsc::channel::<Buf>(1);
        let (to_a, mut a_in) = mpsc::channel::<Buf>(1);
        let b = tokio::spawn(async move {
            while let Some(mut buf) = b_in.recv().await {
                let v = buf.read(0);
                buf.len = 0;
                buf.push(v + 1);
                to_a.send(buf).await.map_err(|_| anyhow!("ping gone"))?;
            }
            anyhow::Ok(())
        });
        let a = tokio::spawn(async move {
            let warm = rounds / 10;
            let mut samples = Vec::with_capacity(rounds);
            let mut buf = Buf::new();
            for i in 0..(warm + rounds) as u64 {
                buf.len = 0;
                buf.push(i);
                let t = Instant::now();
                to_b.send(buf).await.map_err(|_| anyhow!("pong gone"))?;
                buf = a_in.recv().await.context("pong ended")?;
                let rtt = t.elapsed().as_nanos() as u64;
                ensure!(buf.read(0) == i + 1, "pong answered wrong");
                if i >= warm as u64 {
                    samples.push(rtt);
                }
            }
            Ok(samples)
        });
        let samples = a.await??;
        b.await??;
        Ok(samples)
    })
}

/// Round-trip percentiles of one shape-B run, in microseconds.
struct Latency {
    p50: f64,
    p99: f64,
}

fn latency(model: Model, rounds: usize) -> Result<Latency> {
    let mut ns = match model {
        Model::Threads => ping_pong_threads::<StdChannel>(rounds)?,
        Model::ThreadsCondvar => ping_pong_threads::<CondvarQueue>(rounds)?,
        Model::TokioMt2 | Model::TokioCt => ping_pong_tokio(&runtime(model)?, rounds)?,
    };
    ensure!(ns.len() == rounds, "lost samples");
    ns.sort_unstable();
    let pct = |p: f64| ns[((ns.len() as f64 * p) as usize).min(ns.len() - 1)] as f64 / 1000.0;
    Ok(Latency {
        p50: pct(0.50),
        p99: pct(0.99),
    })
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn list(v: &[f64], digits: usize) -> String {
    v.iter()
        .map(|x| format!("{x:.digits$}"))
        .collect::<Vec<_>>()
        .join("/")
}

struct Args {
    records: u64,
    runs: usize,
    rounds: usize,
    work: u32,
    shapes: Vec<char>,
    models: Vec<Model>,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        records: 200_000_000,
        runs: 5,
        rounds: 100_000,
        work: 0,
        shapes: vec!['A', 'B', 'C'],
        models: ALL_MODELS.to_vec(),
    };
    for arg in std::env::args().skip(1) {
        let (k, v) = arg
            .split_once('=')
            .with_context(|| format!("expected key=value, got '{arg}'"))?;
        match k {
            "records" => a.records = v.parse().context("records")?,
            "runs" => a.runs = v.parse().context("runs")?,
            "rounds" => a.rounds = v.parse().context("rounds")?,
            "work" => a.work = v.parse().context("work")?,
            "shapes" => {
                a.shapes = v
                    .split(',')
                    .map(|s| match s {
                        "A" | "B" | "C" => Ok(s.chars().next().unwrap()),
                        _ => Err(anyhow!("unknown shape '{s}'")),
                    })
                    .collect::<Result<_>>()?
            }
            "models" => a.models = v.split(',').map(Model::parse).collect::<Result<_>>()?,
            _ => bail!("unknown argument '{k}' (records, runs, rounds, work, shapes, models)"),
        }
    }
    ensure!(
        a.runs > 0 && a.rounds > 0,
        "runs and rounds must be positive"
    );
    ensure!(
        a.records >= SHAPE_C_PARALLELISM,
        "records must be at least {SHAPE_C_PARALLELISM}"
    );
    Ok(a)
}

/// The machine is shared, so the load around the measurement goes into the output.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn main() -> Result<()> {
    let args = parse_args()?;
    WORK.store(args.work, Ordering::Relaxed);
    println!(
        "exec-model start records={} runs={} rounds={} work={} loadavg={}",
        args.records,
        args.runs,
        args.rounds,
        args.work,
        loadavg()
    );
    let m = args.models.len();
    // Indexed [A = 0, C = 1][model], one entry per run.
    let mut rates = vec![vec![Vec::new(); m]; 2];
    let mut cpus = vec![vec![Vec::new(); m]; 2];
    let mut p50s = vec![Vec::new(); m];
    let mut p99s = vec![Vec::new(); m];
    for run in 0..args.runs {
        for &shape in &args.shapes {
            for k in 0..m {
                // Rotate so no model always runs first (or right after another).
                let i = (k + run) % m;
                let model = args.models[i];
                match shape {
                    'A' | 'C' => {
                        let (s, p) = if shape == 'A' {
                            (0, 1)
                        } else {
                            (1, SHAPE_C_PARALLELISM)
                        };
                        let t = throughput(model, args.records, p)?;
                        println!(
                            "exec-model {shape} {} run={} stages={} records={} sink={} seconds={:.3} cpu={:.2} rate={:.0}",
                            model.name(),
                            run + 1,
                            4 * p,
                            args.records,
                            t.sink,
                            t.seconds,
                            t.cpu,
                            t.rate
                        );
                        rates[s][i].push(t.rate);
                        cpus[s][i].push(t.cpu / t.seconds);
                    }
                    _ => {
                        let l = latency(model, args.rounds)?;
                        println!(
                            "exec-model B {} run={} rounds={} rtt_p50_us={:.2} rtt_p99_us={:.2}",
                            model.name(),
                            run + 1,
                            args.rounds,
                            l.p50,
                            l.p99
                        );
                        p50s[i].push(l.p50);
                        p99s[i].push(l.p99);
                    }
                }
            }
        }
    }
    println!(
        "--- medians of {} runs (loadavg at end {})",
        args.runs,
        loadavg()
    );
    for &shape in &args.shapes {
        for (i, model) in args.models.iter().enumerate() {
            match shape {
                'A' | 'C' => {
                    let s = usize::from(shape == 'C');
                    println!(
                        "exec-model {shape} {} median cores_busy={:.2} rate={:.0} (runs {})",
                        model.name(),
                        median(&cpus[s][i]),
                        median(&rates[s][i]),
                        list(&rates[s][i], 0)
                    );
                }
                _ => println!(
                    "exec-model B {} median rtt_p50_us={:.2} rtt_p99_us={:.2} (p50 runs {}; p99 runs {})",
                    model.name(),
                    median(&p50s[i]),
                    median(&p99s[i]),
                    list(&p50s[i], 2),
                    list(&p99s[i], 2)
                ),
            }
        }
    }
    Ok(())
}
