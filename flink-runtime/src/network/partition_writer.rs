//! The task-side writer of a result partition: records and events in, buffers out.

use std::sync::Arc;

use super::buffer::BufferKind;
use super::error::NetworkError;
use super::event::Event;
use super::record_serializer::RecordSerializer;
use super::result_partition::ResultPartition;
use crate::checkpoint::channel_state::ChannelBuffer;

/// Writes already-serialized records and events into a [`ResultPartition`].
///
/// Owned by exactly one task thread. The per-record path is a memcpy into the current
/// buffer of the subpartition; locks are taken only per buffer (request, enqueue).
/// Buffers are queued when full, on [`flush`](Self::flush) and before events; the caller
/// decides when to flush (buffer timeout, every record, end of input).
#[derive(Debug)]
pub struct PartitionWriter {
    partition: Arc<ResultPartition>,
    serializers: Vec<RecordSerializer>,
    finished: bool,
}

impl PartitionWriter {
    /// The writer of `partition`. Each partition has at most one writer; a second call
    /// fails with [`NetworkError::WriterExists`].
    pub fn new(partition: Arc<ResultPartition>) -> Result<Self, NetworkError> {
        partition.claim_writer()?;
        let serializers = (0..partition.num_subpartitions())
            .map(|_| RecordSerializer::new())
            .collect();
        Ok(Self {
            partition,
            serializers,
            finished: false,
        })
    }

    /// The partition written to.
    pub fn partition(&self) -> &Arc<ResultPartition> {
        &self.partition
    }

    /// Number of subpartitions (consumer channels).
    pub fn num_subpartitions(&self) -> usize {
        self.serializers.len()
    }

    /// Append one record (already serialized bytes) to `subpartition`. Blocks while the
    /// pool is exhausted (back pressure); fails on cancellation or a released receiver.
    #[inline]
    pub fn emit(&mut self, subpartition: usize, record: &[u8]) -> Result<(), NetworkError> {
        if let Some(ser) = self.serializers.get_mut(subpartition)
            && ser.try_write(record)
        {
            return Ok(());
        }
        self.emit_slow(subpartition, record)
    }

    /// Room to encode the next record for `subpartition` in place (see
    /// [`RecordSerializer::spare`]); empty if there is none or the index is out of range,
    /// then the record goes through [`emit`](Self::emit).
    #[inline]
    pub fn spare(&mut self, subpartition: usize) -> &mut [u8] {
        match self.serializers.get_mut(subpartition) {
            Some(ser) => ser.spare(),
            None => &mut [],
        }
    }

    /// Completes a record of `len` bytes encoded into [`spare`](Self::spare).
    ///
    /// # Panics
    /// If `len` exceeds the room `spare` returned (a caller bug).
    #[inline]
    pub fn commit(&mut self, subpartition: usize, len: usize) {
        self.serializers[subpartition].commit(len);
    }

    /// Raw room for complete frames written back to back for `subpartition` (see
    /// [`RecordSerializer::spare_frames`]); empty if there is none.
    #[inline]
    pub fn spare_frames(&mut self, subpartition: usize) -> &mut [u8] {
        match self.serializers.get_mut(subpartition) {
            Some(ser) => ser.spare_frames(),
            None => &mut [],
        }
    }

    /// [`spare_frames`](Self::spare_frames) of every subpartition, in order, appended
    /// to `rooms`.
    #[inline]
    pub fn spare_frames_all<'w>(&'w mut self, rooms: &mut Vec<&'w mut [u8]>) {
        rooms.extend(self.serializers.iter_mut().map(|ser| ser.spare_frames()));
    }

    /// Completes `len` bytes of frames written into [`spare_frames`](Self::spare_frames).
    ///
    /// # Panics
    /// If `len` exceeds the room `spare_frames` returned (a caller bug).
    #[inline]
    pub fn commit_frames(&mut self, subpartition: usize, len: usize) {
        self.serializers[subpartition].commit_frames(len);
    }

    #[cold]
    fn emit_slow(&mut self, subpartition: usize, record: &[u8]) -> Result<(), NetworkError> {
        self.check_writable(subpartition)?;
        let partition = &self.partition;
        let (before, rest) = self.serializers.split_at_mut(subpartition);
        let (serializer, after) = rest.split_first_mut().expect("index checked");
        serializer.write(
            record,
            &mut || {
                if partition.would_block(subpartition) {
                    // About to wait for `subpartition` (its receiver is slow or
                    // stalled): first let the records already written to the other
                    // channels go, so the hot one does not hold them back until the
                    // next flush tick, which this thread cannot run while it waits.
                    let others = before.iter_mut().enumerate().chain(
                        after
                            .iter_mut()
                            .enumerate()
                            .map(|(i, s)| (subpartition + 1 + i, s)),
                    );
                    for (i, other) in others {
                        flush_if_shippable(partition, i, other)?;
                    }
                }
                partition.request_buffer(subpartition)
            },
            &mut |buffer| partition.add_buffer(subpartition, buffer),
        )
    }

    /// Append a record to every subpartition.
    pub fn broadcast_record(&mut self, record: &[u8]) -> Result<(), NetworkError> {
        for i in 0..self.serializers.len() {
            self.emit(i, record)?;
        }
        Ok(())
    }

    /// Queue the partially filled buffer of `subpartition`, if it holds data.
    pub fn flush(&mut self, subpartition: usize) -> Result<(), NetworkError> {
        self.check_index(subpartition)?;
        if let Some(buffer) = self.serializers[subpartition].take_filled() {
            self.partition.add_buffer(subpartition, buffer)?;
        }
        Ok(())
    }

    /// The buffer timeout's flush: finish partial buffers only where they can ship
    /// at once. Where credit is exhausted the data could not move anyway, so the
    /// buffer keeps filling instead of occupying a whole pool buffer half empty; this
    /// is what Flink's flush achieves by exposing the written part of a buffer that
    /// stays open for writing. Such data ships with the next full buffer or the next
    /// tick that finds credit.
    pub fn flush_shippable(&mut self) -> Result<(), NetworkError> {
        for (i, serializer) in self.serializers.iter_mut().enumerate() {
            flush_if_shippable(&self.partition, i, serializer)?;
        }
        Ok(())
    }

    /// Flush every subpartition.
    pub fn flush_all(&mut self) -> Result<(), NetworkError> {
        for i in 0..self.serializers.len() {
            self.flush(i)?;
        }
        Ok(())
    }

    /// Write an event to one subpartition, after flushing its partial data buffer.
    pub fn emit_event(&mut self, subpartition: usize, event: &Event) -> Result<(), NetworkError> {
        self.check_writable(subpartition)?;
        self.flush(subpartition)?;
        let len = event.encoded_len();
        let buffer_size = self.partition.buffer_size();
        if len > buffer_size {
            return Err(NetworkError::EventTooLarge { len, buffer_size });
        }
        let mut buffer = self.partition.pool().request()?;
        let n = event
            .encode_into(buffer.spare_mut())
            .expect("size checked against buffer size");
        buffer.commit(n);
        buffer.set_kind(BufferKind::Event);
        self.partition.add_buffer(subpartition, buffer)
    }

    /// Sends the barrier of an unaligned checkpoint to every subpartition as a
    /// priority event, after flushing the partial buffers: it overtakes what is
    /// queued and needs no credit. Returns, per subpartition, copies of the buffers
    /// it overtook (they still ship, after it): the output channel state.
    pub(crate) fn broadcast_priority_event(
        &mut self,
        event: &Event,
    ) -> Result<Vec<Vec<ChannelBuffer>>, NetworkError> {
        let mut overtaken = Vec::with_capacity(self.serializers.len());
        for i in 0..self.serializers.len() {
            self.check_writable(i)?;
            self.flush(i)?;
            overtaken.push(self.partition.add_priority_event(i, event.encode())?);
        }
        Ok(overtaken)
    }

    /// Queues buffers restored from an unaligned checkpoint's output channel state
    /// on `subpartition`, before anything else is written to it.
    pub(crate) fn restore_buffers<'a>(
        &mut self,
        subpartition: usize,
        buffers: impl Iterator<Item = &'a ChannelBuffer>,
    ) -> Result<(), NetworkError> {
        self.check_writable(subpartition)?;
        let buffer_size = self.partition.buffer_size();
        for restored in buffers {
            // Buffers are restored whole (a record may span buffers, but a length
            // prefix never does), so they must fit the buffers of this run.
            let len = restored.bytes.len();
            if len > buffer_size {
                return Err(NetworkError::InvalidConfig(format!(
                    "a restored in-flight buffer of {len} bytes exceeds the buffer size {buffer_size}; restore with the buffer size it was written with"
                )));
            }
            let mut buffer = self.partition.pool().request()?;
            buffer.spare_mut()[..len].copy_from_slice(&restored.bytes);
            buffer.commit(len);
            buffer.set_kind(restored.kind());
            self.partition.add_buffer(subpartition, buffer)?;
        }
        Ok(())
    }

    /// Write an event to every subpartition.
    pub fn broadcast_event(&mut self, event: &Event) -> Result<(), NetworkError> {
        for i in 0..self.serializers.len() {
            self.emit_event(i, event)?;
        }
        Ok(())
    }

    /// Flush everything, then send `EndOfPartition` on every subpartition. Afterwards
    /// every write fails with [`NetworkError::WriterFinished`].
    pub fn finish(&mut self) -> Result<(), NetworkError> {
        if self.finished {
            return Ok(());
        }
        self.broadcast_event(&Event::EndOfPartition)?;
        self.finished = true;
        for s in &mut self.serializers {
            s.clear();
        }
        tracing::debug!(
            subpartitions = self.serializers.len(),
            "partition writer finished"
        );
        Ok(())
    }

    /// Whether [`finish`](Self::finish) completed.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    fn check_index(&self, subpartition: usize) -> Result<(), NetworkError> {
        if subpartition < self.serializers.len() {
            Ok(())
        } else {
            Err(NetworkError::IndexOutOfRange {
                what: "subpartition",
                index: subpartition,
                len: self.serializers.len(),
            })
        }
    }

    fn check_writable(&self, subpartition: usize) -> Result<(), NetworkError> {
        if self.finished {
            return Err(NetworkError::WriterFinished);
        }
        if self.partition.cancel_token().is_cancelled() {
            return Err(NetworkError::Cancelled);
        }
        self.check_index(subpartition)
    }
}

/// Queues the partial buffer of `subpartition` if it holds data and would ship at once.
fn flush_if_shippable(
    partition: &ResultPartition,
    subpartition: usize,
    serializer: &mut RecordSerializer,
) -> Result<(), NetworkError> {
    if serializer.has_data()
        && partition.can_ship_now(subpartition)
        && let Some(buffer) = serializer.take_filled()
    {
        partition.add_buffer(subpartition, buffer)?;
    }
    Ok(())
}
