//! [`RecordWriter`]: the bridge from a chain's typed network output (which partitions
//! and serializes records) to a result partition's buffers.

use std::panic::resume_unwind;
use std::sync::Arc;

use flink_core::failure::{TaskCancelled, fail_operator};
use flink_core::stream_type::RecordBytesWriter;
use flink_core::watermark::{Watermark, WatermarkStatus};

use crate::checkpoint::channel_state::{ChannelState, OutputChannelState};
use crate::network::{Event, NetworkError, PartitionWriter};

/// Writes serialized records of one producer subtask into one result partition.
pub struct RecordWriter {
    writer: PartitionWriter,
    flush_every_record: bool,
    operator: String,
    /// With checkpoints: where an unaligned barrier's overtaken buffers go, and the
    /// job edge this writer's partition belongs to.
    channel_state: Option<(Arc<OutputChannelState>, usize)>,
}

impl RecordWriter {
    /// A writer for the output of `operator` into `writer`'s partition.
    pub fn new(writer: PartitionWriter, flush_every_record: bool, operator: String) -> Self {
        Self {
            writer,
            flush_every_record,
            operator,
            channel_state: None,
        }
    }

    /// Takes part in unaligned checkpoints as the output of job edge `edge`: first
    /// queues the buffers `restored` (an unaligned checkpoint's output channel state
    /// of this task) holds for the edge, ahead of anything written later; then sends
    /// the barriers `collector` is armed for as priority events and gives it the
    /// buffers they overtook.
    pub(crate) fn with_channel_state(
        mut self,
        collector: Arc<OutputChannelState>,
        edge: usize,
        restored: Option<&ChannelState>,
    ) -> Self {
        if let Some(restored) = restored {
            for subpartition in 0..self.writer.num_subpartitions() {
                let r = self
                    .writer
                    .restore_buffers(subpartition, restored.output(edge, subpartition));
                self.check(r);
            }
        }
        collector.register(edge, self.writer.partition().clone());
        self.channel_state = Some((collector, edge));
        self
    }

    /// Turns a network error into the task's stop. Cancellation, and a consumer that
    /// went away (which only happens while the job is going down because some other
    /// task failed), unwind quietly so the failure that caused it is the one reported;
    /// any other error fails the job naming the producing operator.
    fn check(&self, result: Result<(), NetworkError>) {
        match result {
            Ok(()) => {}
            Err(
                NetworkError::Cancelled
                | NetworkError::ReceiverReleased { .. }
                | NetworkError::ChannelReleased { .. },
            ) => resume_unwind(Box::new(TaskCancelled)),
            Err(e) => fail_operator(&self.operator, format!("network output failed: {e}")),
        }
    }
}

impl RecordBytesWriter for RecordWriter {
    #[inline]
    fn write(&mut self, channel: usize, record: &[u8]) {
        let mut r = self.writer.emit(channel, record);
        if self.flush_every_record && r.is_ok() {
            r = self.writer.flush(channel);
        }
        self.check(r);
    }

    #[inline]
    fn spare(&mut self, channel: usize) -> &mut [u8] {
        self.writer.spare(channel)
    }

    #[inline]
    fn commit(&mut self, channel: usize, len: usize) {
        self.writer.commit(channel, len);
        if self.flush_every_record {
            let r = self.writer.flush(channel);
            self.check(r);
        }
    }

    #[inline]
    fn spare_frames(&mut self, channel: usize) -> &mut [u8] {
        self.writer.spare_frames(channel)
    }

    #[inline]
    fn spare_frames_all<'w>(&'w mut self, rooms: &mut Vec<&'w mut [u8]>) {
        self.writer.spare_frames_all(rooms);
    }

    #[inline]
    fn commit_frames(&mut self, channel: usize, len: usize) {
        self.writer.commit_frames(channel, len);
        if self.flush_every_record {
            let r = self.writer.flush(channel);
            self.check(r);
        }
    }

    fn broadcast(&mut self, record: &[u8]) {
        let mut r = self.writer.broadcast_record(record);
        if self.flush_every_record && r.is_ok() {
            r = self.writer.flush_all();
        }
        self.check(r);
    }

    fn flush(&mut self) {
        let r = self.writer.flush_shippable();
        self.check(r);
    }

    fn finish(&mut self) {
        let r = self.writer.finish();
        self.check(r);
    }

    fn watermark(&mut self, watermark: Watermark) {
        let r = self
            .writer
            .broadcast_event(&Event::Watermark(watermark.timestamp()));
        self.check(r);
    }

    fn watermark_status(&mut self, status: WatermarkStatus) {
        let r = self.writer.broadcast_event(&Event::WatermarkStatus(status));
        self.check(r);
    }

    fn barrier(&mut self, barrier: flink_core::checkpoint::CheckpointBarrier) {
        if let Some((collector, edge)) = &self.channel_state
            && collector.is_unaligned(barrier.id)
        {
            let event = Event::UnalignedBarrier {
                id: barrier.id,
                timestamp: barrier.timestamp,
            };
            match self.writer.broadcast_priority_event(&event) {
                Ok(overtaken) => {
                    for (subpartition, buffers) in overtaken.into_iter().enumerate() {
                        collector.add(*edge, subpartition, buffers);
                    }
                }
                Err(e) => self.check(Err(e)),
            }
            return;
        }
        let event = match barrier.stop {
            Some(mode) => Event::StopBarrier {
                id: barrier.id,
                timestamp: barrier.timestamp,
                mode,
            },
            None => Event::CheckpointBarrier {
                id: barrier.id,
                timestamp: barrier.timestamp,
            },
        };
        let r = self.writer.broadcast_event(&event);
        self.check(r);
    }

    fn operator(&self) -> &str {
        &self.operator
    }
}
