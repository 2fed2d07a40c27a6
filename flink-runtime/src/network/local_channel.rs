//! The in-process transport: a subpartition shipping straight into an input channel.

use std::sync::{Arc, Weak};

use super::buffer::Buffer;
use super::error::NetworkError;
use super::input_gate::{GateShared, InputGate};
use super::result_partition::ResultPartition;
use super::subpartition::Subpartition;
use super::transport::{AddCredit, BufferResponse, ChannelTransport, CreditTransport};

/// Local (same process) channel between one subpartition and one input channel.
///
/// "Shipping" copies the sender buffer's bytes into a receiver-owned segment, exactly
/// as the network would, after which the sender buffer is recycled to its pool.
/// Ownership: the input channel owns this object (strongly, keeping the subpartition
/// and its queued data alive after the producer finished); the subpartition only holds
/// a weak reference, and this object holds the gate weakly, so no cycle exists.
pub struct LocalChannel {
    subpartition: Arc<Subpartition>,
    gate: Weak<GateShared>,
    channel: usize,
}

impl std::fmt::Debug for LocalChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalChannel")
            .field("channel", &self.channel)
            .finish()
    }
}

impl ChannelTransport for LocalChannel {
    fn send_buffer(&self, msg: BufferResponse<'_>) -> Result<(), NetworkError> {
        let gate = self.gate.upgrade().ok_or(NetworkError::ChannelReleased {
            channel: self.channel,
        })?;
        gate.channels[self.channel].on_buffer(msg, &gate)
    }

    fn ship(
        &self,
        _channel: usize,
        backlog: usize,
        buffer: &mut Buffer,
    ) -> Result<(), NetworkError> {
        let gate = self.gate.upgrade().ok_or(NetworkError::ChannelReleased {
            channel: self.channel,
        })?;
        gate.channels[self.channel].on_local_buffer(backlog, buffer, &gate)
    }
}

impl CreditTransport for LocalChannel {
    fn add_credit(&self, msg: AddCredit) {
        self.subpartition.add_credit(msg.credit);
    }

    fn cancel_partition_request(&self, _channel: usize) {
        self.subpartition.release();
    }

    fn announce_buffer_size(&self, _channel: usize, size: usize) {
        self.subpartition.announce_buffer_size(size);
    }
}

/// Connect subpartition `subpartition` of `partition` to input channel `channel` of `gate`
/// in-process. The channel's initial credit is announced immediately, so buffers already
/// queued in the subpartition start shipping.
pub fn local_connect(
    partition: &ResultPartition,
    subpartition: usize,
    gate: &InputGate,
    channel: usize,
) -> Result<(), NetworkError> {
    if partition.buffer_size() > gate.segment_size() {
        return Err(NetworkError::InvalidConfig(format!(
            "sender buffers of {} bytes do not fit receiver segments of {} bytes",
            partition.buffer_size(),
            gate.segment_size()
        )));
    }
    if gate.is_channel_connected(channel)? {
        return Err(NetworkError::AlreadyConnected {
            what: "input channel",
            index: channel,
        });
    }
    let local = Arc::new(LocalChannel {
        subpartition: partition.subpartition_handle(subpartition)?,
        gate: Arc::downgrade(gate.shared()),
        channel,
    });
    let weak: Weak<dyn ChannelTransport> = Arc::downgrade(&local) as Weak<dyn ChannelTransport>;
    partition.connect_subpartition(subpartition, weak, channel)?;
    gate.connect_channel(channel, local)
}
