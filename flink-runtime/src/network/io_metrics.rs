//! I/O metrics of one task: back pressure, idleness, throughput and pool usage.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Shared, lock-free I/O counters of a task. Written by the network layer,
/// read by anyone (e.g. a monitoring thread).
#[derive(Debug, Default)]
pub struct IoMetrics {
    back_pressured_ns: AtomicU64,
    idle_ns: AtomicU64,
    buffers_shipped: AtomicU64,
    bytes_shipped: AtomicU64,
    bytes_received: AtomicU64,
    out_pool_used: AtomicUsize,
    out_pool_capacity: AtomicUsize,
    in_pool_used: AtomicUsize,
    in_pool_capacity: AtomicUsize,
    /// The buffer size the task's input gate announced last (buffer debloating);
    /// 0 when it does not debloat.
    debloated_buffer_size: AtomicUsize,
    /// What the task thread is blocked on right now, a [`Waiting`] as a byte.
    waiting: AtomicU8,
}

/// What a task thread is blocked on at one moment; set only around blocking waits,
/// so the flag costs nothing on the paths that do not wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// Not blocked: the thread works.
    Nothing = 0,
    /// An output buffer or credit (back pressure).
    Output = 1,
    /// Input (idle).
    Input = 2,
}

impl IoMetrics {
    /// New zeroed metrics, ready to be shared.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Total nanoseconds writers spent blocked waiting for an output buffer.
    pub fn back_pressured_ns(&self) -> u64 {
        self.back_pressured_ns.load(Ordering::Relaxed)
    }

    /// The buffer size the task's input gate announced last to its producers (buffer
    /// debloating), `None` when it does not debloat (or has no input gate).
    pub fn debloated_buffer_size(&self) -> Option<usize> {
        match self.debloated_buffer_size.load(Ordering::Relaxed) {
            0 => None,
            size => Some(size),
        }
    }

    pub(crate) fn set_debloated_buffer_size(&self, size: usize) {
        self.debloated_buffer_size.store(size, Ordering::Relaxed);
    }

    /// Total nanoseconds readers spent blocked waiting for input.
    pub fn idle_ns(&self) -> u64 {
        self.idle_ns.load(Ordering::Relaxed)
    }

    /// Number of buffers (data and event) shipped by the partitions of this task.
    pub fn buffers_shipped(&self) -> u64 {
        self.buffers_shipped.load(Ordering::Relaxed)
    }

    /// Number of bytes shipped by the partitions of this task.
    pub fn bytes_shipped(&self) -> u64 {
        self.bytes_shipped.load(Ordering::Relaxed)
    }

    /// Number of bytes the input gate of this task received (0 for a source).
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received.load(Ordering::Relaxed)
    }

    /// Output buffers currently handed out (in a writer or queued) and total output capacity.
    pub fn out_pool(&self) -> (usize, usize) {
        (
            self.out_pool_used.load(Ordering::Relaxed),
            self.out_pool_capacity.load(Ordering::Relaxed),
        )
    }

    /// Input segments currently holding received data and total input capacity
    /// (exclusive + floating).
    pub fn in_pool(&self) -> (usize, usize) {
        (
            self.in_pool_used.load(Ordering::Relaxed),
            self.in_pool_capacity.load(Ordering::Relaxed),
        )
    }

    /// Fraction of output buffers in use, in `[0, 1]` (0 when there is no output pool).
    pub fn out_pool_usage(&self) -> f64 {
        fraction(self.out_pool())
    }

    /// Fraction of input segments holding unconsumed data, in `[0, 1]` (0 without input).
    pub fn in_pool_usage(&self) -> f64 {
        fraction(self.in_pool())
    }

    /// What the task thread is blocked on now.
    pub fn waiting(&self) -> Waiting {
        match self.waiting.load(Ordering::Relaxed) {
            1 => Waiting::Output,
            2 => Waiting::Input,
            _ => Waiting::Nothing,
        }
    }

    /// Marks the start (`Output`, `Input`) or end (`Nothing`) of a blocking wait.
    pub fn set_waiting(&self, waiting: Waiting) {
        self.waiting.store(waiting as u8, Ordering::Relaxed);
    }

    pub(crate) fn add_back_pressured(&self, d: Duration) {
        self.back_pressured_ns
            .fetch_add(saturating_nanos(d).max(1), Ordering::Relaxed);
    }

    /// Adds time spent waiting for input outside a gate (a source with nothing to read).
    pub fn add_idle(&self, d: Duration) {
        self.idle_ns
            .fetch_add(saturating_nanos(d).max(1), Ordering::Relaxed);
    }

    pub(crate) fn add_shipped(&self, bytes: usize) {
        self.buffers_shipped.fetch_add(1, Ordering::Relaxed);
        self.bytes_shipped
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts one received buffer of `bytes` (once per buffer, not per record).
    pub(crate) fn add_received(&self, bytes: usize) {
        self.bytes_received
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn add_out_capacity(&self, n: usize) {
        self.out_pool_capacity.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn sub_out_capacity(&self, n: usize) {
        self.out_pool_capacity.fetch_sub(n, Ordering::Relaxed);
    }

    pub(crate) fn out_used_inc(&self) {
        self.out_pool_used.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn out_used_dec(&self) {
        self.out_pool_used.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn add_in_capacity(&self, n: usize) {
        self.in_pool_capacity.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn sub_in_capacity(&self, n: usize) {
        self.in_pool_capacity.fetch_sub(n, Ordering::Relaxed);
    }

    pub(crate) fn in_used_inc(&self) {
        self.in_pool_used.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn in_used_sub(&self, n: usize) {
        self.in_pool_used.fetch_sub(n, Ordering::Relaxed);
    }
}

fn saturating_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn fraction((used, cap): (usize, usize)) -> f64 {
    if cap == 0 {
        0.0
    } else {
        (used as f64 / cap as f64).min(1.0)
    }
}
