//! The sender side of a task's output: N subpartitions sharing one bounded buffer pool.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use super::buffer::Buffer;
use super::buffer_pool::BufferPool;
use super::cancel::CancelToken;
use super::error::NetworkError;
use super::io_metrics::IoMetrics;
use super::subpartition::{Subpartition, SubpartitionStats};
use super::transport::ChannelTransport;

/// Aggregated credit counters over all subpartitions of a partition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartitionStats {
    /// Credit announced by receivers so far.
    pub credit_received: u64,
    /// Buffers shipped so far.
    pub buffers_shipped: u64,
    /// Buffers that would have been shipped without credit (must be 0).
    pub credit_violations: u64,
    /// Buffers currently queued in all subpartitions.
    pub queued: usize,
    /// Segments allocated by the partition's pool (never above its capacity).
    pub pool_allocated: usize,
    /// High-water mark of pool buffers in use.
    pub pool_max_in_use: usize,
    /// Capacity of the partition's pool.
    pub pool_capacity: usize,
}

/// A result partition: `N` subpartitions (one per consumer channel) and one bounded
/// [`BufferPool`]. Shared (`Arc`) between the writing task (through a
/// [`PartitionWriter`](super::partition_writer::PartitionWriter)) and the channels that
/// drain it.
pub struct ResultPartition {
    subpartitions: Vec<Arc<Subpartition>>,
    pool: BufferPool,
    /// The most buffers one subpartition may have queued before a writer asking for
    /// another buffer for it waits (see [`Self::with_max_buffers_per_channel`]).
    max_buffers_per_channel: usize,
    cancel: CancelToken,
    metrics: Arc<IoMetrics>,
    writer_claimed: AtomicBool,
}

impl std::fmt::Debug for ResultPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultPartition")
            .field("subpartitions", &self.subpartitions.len())
            .field("pool", &self.pool)
            .finish()
    }
}

impl ResultPartition {
    /// A partition with `num_subpartitions` subpartitions and a pool of `pool_size` buffers
    /// of `buffer_size` bytes. `pool_size` must be at least `num_subpartitions + 1`.
    pub fn new(
        num_subpartitions: usize,
        pool_size: usize,
        buffer_size: usize,
        cancel: CancelToken,
        metrics: Arc<IoMetrics>,
    ) -> Result<Arc<Self>, NetworkError> {
        if num_subpartitions == 0 {
            return Err(NetworkError::InvalidConfig(
                "a result partition needs at least one subpartition".into(),
            ));
        }
        if pool_size < num_subpartitions + 1 {
            return Err(NetworkError::InvalidConfig(format!(
                "pool of {pool_size} buffers is too small for {num_subpartitions} subpartitions (need >= N+1)"
            )));
        }
        let pool = BufferPool::new(
            pool_size,
            buffer_size,
            cancel.clone(),
            Some(Arc::clone(&metrics)),
        )?;
        let subpartitions = (0..num_subpartitions)
            .map(|i| {
                Arc::new(Subpartition::new(
                    i,
                    pool_size.min(16),
                    Arc::clone(&metrics),
                ))
            })
            .collect();
        Ok(Arc::new(Self {
            subpartitions,
            pool,
            max_buffers_per_channel: usize::MAX,
            cancel,
            metrics,
            writer_claimed: AtomicBool::new(false),
        }))
    }

    /// As [`new`](Self::new), with at most `max_buffers_per_channel` buffers queued
    /// per subpartition, as Flink's `taskmanager.network.memory.max-buffers-per-channel`:
    /// a writer asking for a buffer for a subpartition with that many queued waits
    /// (back pressure) even while the pool has free buffers, so one hot subpartition
    /// whose receiver does not read cannot take the whole pool from the others. A
    /// subpartition then holds at most the cap plus the buffer being filled. Events
    /// are exempt (they need one small buffer and must reach every channel).
    pub fn with_max_buffers_per_channel(
        num_subpartitions: usize,
        pool_size: usize,
        buffer_size: usize,
        cancel: CancelToken,
        metrics: Arc<IoMetrics>,
        max_buffers_per_channel: usize,
    ) -> Result<Arc<Self>, NetworkError> {
        if max_buffers_per_channel == 0 {
            return Err(NetworkError::InvalidConfig(
                "max buffers per channel must be at least 1".into(),
            ));
        }
        let mut partition = Self::new(num_subpartitions, pool_size, buffer_size, cancel, metrics)?;
        Arc::get_mut(&mut partition)
            .expect("a new partition is not shared yet")
            .max_buffers_per_channel = max_buffers_per_channel;
        Ok(partition)
    }

    /// The cap on buffers queued per subpartition (`usize::MAX`: none).
    pub fn max_buffers_per_channel(&self) -> usize {
        self.max_buffers_per_channel
    }

    /// A buffer for records of `subpartition`: blocks while the pool is exhausted or
    /// the subpartition has [`max_buffers_per_channel`](Self::max_buffers_per_channel)
    /// buffers queued.
    ///
    /// The buffer is cut at the size the subpartition's receiver announced, if it
    /// announced one (buffer debloating).
    pub fn request_buffer(&self, subpartition: usize) -> Result<Buffer, NetworkError> {
        let sub = self.sub(subpartition)?;
        let cap = self.max_buffers_per_channel;
        let mut buffer = self.pool.request_when(|| sub.queued_now() < cap)?;
        let announced = sub.announced_size();
        if announced > 0 {
            buffer.set_limit(announced);
        }
        Ok(buffer)
    }

    /// The receiver of `subpartition` announced a buffer size (entry point for a
    /// transport): its next buffers are cut at `size` bytes (at most the pool's).
    pub fn announce_buffer_size(
        &self,
        subpartition: usize,
        size: usize,
    ) -> Result<(), NetworkError> {
        self.sub(subpartition)?.announce_buffer_size(size);
        Ok(())
    }

    /// The buffer size the receiver of `subpartition` announced, if any.
    pub fn announced_buffer_size(
        &self,
        subpartition: usize,
    ) -> Result<Option<usize>, NetworkError> {
        let size = self.sub(subpartition)?.announced_size();
        Ok((size > 0).then_some(size))
    }

    /// Whether [`request_buffer`](Self::request_buffer) for `subpartition` would
    /// wait right now.
    pub(crate) fn would_block(&self, subpartition: usize) -> bool {
        self.sub(subpartition)
            .is_ok_and(|s| s.queued_now() >= self.max_buffers_per_channel)
            || !self.pool.has_free()
    }

    /// Number of subpartitions.
    pub fn num_subpartitions(&self) -> usize {
        self.subpartitions.len()
    }

    /// Size in bytes of each buffer.
    pub fn buffer_size(&self) -> usize {
        self.pool.segment_size()
    }

    /// The partition's buffer pool.
    pub fn pool(&self) -> &BufferPool {
        &self.pool
    }

    /// The cancellation token observed by blocking buffer requests.
    pub fn cancel_token(&self) -> &CancelToken {
        &self.cancel
    }

    /// The metrics this partition reports to.
    pub fn metrics(&self) -> &Arc<IoMetrics> {
        &self.metrics
    }

    /// Counters of one subpartition.
    pub fn subpartition_stats(
        &self,
        subpartition: usize,
    ) -> Result<SubpartitionStats, NetworkError> {
        Ok(self.sub(subpartition)?.stats())
    }

    /// Counters summed over all subpartitions plus pool usage.
    pub fn stats(&self) -> PartitionStats {
        let mut total = PartitionStats {
            pool_allocated: self.pool.allocated(),
            pool_max_in_use: self.pool.max_in_use(),
            pool_capacity: self.pool.capacity(),
            ..PartitionStats::default()
        };
        for s in &self.subpartitions {
            let st = s.stats();
            total.credit_received += st.credit_received;
            total.buffers_shipped += st.buffers_shipped;
            total.credit_violations += st.credit_violations;
            total.queued += st.queued;
        }
        total
    }

    /// Queue a finished buffer on a subpartition; it ships as soon as credit allows.
    pub fn add_buffer(&self, subpartition: usize, buffer: Buffer) -> Result<(), NetworkError> {
        self.sub(subpartition)?.add_buffer(buffer)
    }

    /// Ships the encoded priority event `event` on `subpartition` ahead of its queued
    /// buffers, without credit; returns copies of the buffers it overtook.
    pub(crate) fn add_priority_event(
        &self,
        subpartition: usize,
        event: Vec<u8>,
    ) -> Result<Vec<crate::checkpoint::channel_state::ChannelBuffer>, NetworkError> {
        self.sub(subpartition)?.add_priority_event(event)
    }

    /// Whether some subpartition still queues the aligned barrier of `checkpoint`.
    pub(crate) fn holds_barrier(&self, checkpoint: u64) -> bool {
        self.subpartitions
            .iter()
            .any(|s| s.holds_barrier(checkpoint))
    }

    /// Turns the aligned barrier of `checkpoint` into an unaligned one wherever it
    /// is still queued (see `Subpartition::convert_barrier`); returns, per
    /// subpartition converted, the buffers it overtook.
    pub(crate) fn convert_barrier(
        &self,
        checkpoint: u64,
    ) -> Vec<(usize, Vec<crate::checkpoint::channel_state::ChannelBuffer>)> {
        self.subpartitions
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.convert_barrier(checkpoint).map(|b| (i, b)))
            .collect()
    }

    /// Whether a buffer added to `subpartition` now would ship at once.
    pub(crate) fn can_ship_now(&self, subpartition: usize) -> bool {
        self.sub(subpartition).is_ok_and(|s| s.can_ship_now())
    }

    /// Receiver-announced credit for a subpartition (entry point for a transport).
    pub fn add_credit(&self, subpartition: usize, credit: usize) -> Result<(), NetworkError> {
        self.sub(subpartition)?.add_credit(credit);
        Ok(())
    }

    /// The receiver of a subpartition went away (entry point for a transport).
    pub fn release_subpartition(&self, subpartition: usize) -> Result<(), NetworkError> {
        self.sub(subpartition)?.release();
        Ok(())
    }

    /// Attach the transport a subpartition ships through. Each subpartition has exactly one.
    pub fn connect_subpartition(
        &self,
        subpartition: usize,
        transport: Weak<dyn ChannelTransport>,
        receiver_channel: usize,
    ) -> Result<(), NetworkError> {
        self.sub(subpartition)?.connect(transport, receiver_channel)
    }

    /// Claim the single writer slot; fails if a writer was already created.
    pub(crate) fn claim_writer(&self) -> Result<(), NetworkError> {
        if self.writer_claimed.swap(true, Ordering::AcqRel) {
            Err(NetworkError::WriterExists)
        } else {
            Ok(())
        }
    }

    pub(crate) fn subpartition_handle(
        &self,
        subpartition: usize,
    ) -> Result<Arc<Subpartition>, NetworkError> {
        self.sub(subpartition).map(Arc::clone)
    }

    fn sub(&self, i: usize) -> Result<&Arc<Subpartition>, NetworkError> {
        self.subpartitions
            .get(i)
            .ok_or(NetworkError::IndexOutOfRange {
                what: "subpartition",
                index: i,
                len: self.subpartitions.len(),
            })
    }
}
