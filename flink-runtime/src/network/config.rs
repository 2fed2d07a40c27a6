//! Sizing of network buffers and pools.

/// Default size of one network buffer / memory segment: 32 KiB.
pub const DEFAULT_BUFFER_SIZE: usize = 32 * 1024;

/// Sizing knobs of the credit-based network stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkConfig {
    /// Size in bytes of every buffer (sender) and segment (receiver).
    pub buffer_size: usize,
    /// Receiver segments owned by every input channel; also the channel's initial credit.
    pub exclusive_buffers_per_channel: usize,
    /// Floating receiver segments shared by all channels of one input gate.
    pub floating_buffers_per_gate: usize,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            buffer_size: DEFAULT_BUFFER_SIZE,
            exclusive_buffers_per_channel: 2,
            floating_buffers_per_gate: 8,
        }
    }
}

impl NetworkConfig {
    /// Suggested sender pool size for a partition with `num_subpartitions` subpartitions:
    /// `N * exclusive + floating`, but never less than `N + 1`.
    pub fn default_partition_pool_size(&self, num_subpartitions: usize) -> usize {
        (num_subpartitions * self.exclusive_buffers_per_channel + self.floating_buffers_per_gate)
            .max(num_subpartitions + 1)
    }

    /// Total number of receiver segments an input gate with `num_channels` channels may allocate.
    pub fn gate_segment_capacity(&self, num_channels: usize) -> usize {
        num_channels * self.exclusive_buffers_per_channel + self.floating_buffers_per_gate
    }
}
