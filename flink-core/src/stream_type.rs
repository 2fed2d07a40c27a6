//! The record type of a stream, as an object: the graph stores one per node so the
//! runtime can build typed fan-outs, network outputs and decoders for types it never
//! names.

use std::any::Any;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bincode_serializer::encode_into_room;
use crate::codec::{LENGTH_PREFIX, decode, encode_into};
use crate::failure::fail_operator;
use crate::functions::Collector;
use crate::output::{AnyOutput, FanOut, Output};
use crate::partitioner::{ChannelSelector, Partitioner, Target};
use crate::watermark::{Watermark, WatermarkStatus};

/// The bound every record type meets.
pub trait Record: Serialize + DeserializeOwned + Clone + Send + 'static {}
impl<T: Serialize + DeserializeOwned + Clone + Send + 'static> Record for T {}

/// The byte-level side of a network output, implemented by the runtime: it frames
/// serialized records into buffers of the edge's result partition.
pub trait RecordBytesWriter: Send {
    /// Writes one serialized record to `channel`.
    fn write(&mut self, channel: usize, record: &[u8]);
    /// Room to serialize the next record for `channel` in place, in the buffer it is
    /// written to; empty when there is none (the record then goes through
    /// [`write`](Self::write)). Saves a copy per record.
    fn spare(&mut self, _channel: usize) -> &mut [u8] {
        &mut []
    }
    /// Completes a record of `len` bytes serialized into the start of what
    /// [`spare`](Self::spare) returned for `channel`; framed exactly as
    /// [`write`](Self::write) frames it.
    fn commit(&mut self, _channel: usize, _len: usize) {
        unreachable!("commit without room from spare")
    }
    /// Raw room in `channel`'s current buffer for several complete frames (each a
    /// [`LENGTH_PREFIX`] length, then the record) written back to back; empty when
    /// there is none. Lets a batch for one channel cost one call, not one per record.
    fn spare_frames(&mut self, _channel: usize) -> &mut [u8] {
        &mut []
    }
    /// Completes `len` bytes of complete frames written at the start of what
    /// [`spare_frames`](Self::spare_frames) returned for `channel`.
    fn commit_frames(&mut self, _channel: usize, _len: usize) {
        unreachable!("commit_frames without room from spare_frames")
    }
    /// [`spare_frames`](Self::spare_frames) of every channel at once, in channel order
    /// (appended to `rooms`), so a batch can be scattered over the channels in one pass.
    /// Each is completed with [`commit_frames`](Self::commit_frames) after `rooms` is
    /// dropped.
    fn spare_frames_all<'w>(&'w mut self, _rooms: &mut Vec<&'w mut [u8]>) {}
    /// Writes one serialized record to every channel.
    fn broadcast(&mut self, record: &[u8]);
    /// Called after every record when the buffer timeout is zero, and by the task
    /// on its flush timer otherwise.
    fn flush(&mut self);
    /// No more records: flush and send end-of-partition downstream.
    fn finish(&mut self);
    /// Sends event-time progress to every channel, after the records written so far.
    fn watermark(&mut self, watermark: Watermark);
    /// Sends a change of the [`WatermarkStatus`] to every channel, after the records
    /// written so far. The default drops it (an output that is not a network one).
    fn watermark_status(&mut self, _status: WatermarkStatus) {}
    /// Sends a checkpoint barrier to every channel, after the records written so far.
    fn barrier(&mut self, barrier: crate::checkpoint::CheckpointBarrier);
    /// The operator whose output this is, named in errors about its records.
    fn operator(&self) -> &str {
        "unknown operator"
    }
}

/// The byte-level side of an input: decodes serialized records into the chain.
pub trait RecordDecoder: Send {
    /// Decodes one serialized record into the pending batch.
    fn decode(&mut self, record: &[u8]);
    /// Decodes the complete framed records (each a [`LENGTH_PREFIX`] length, then that
    /// many bytes) at the start of `framed` into the pending batch and returns the
    /// bytes they took: one call per input buffer instead of one per record. `framed`
    /// may end inside a frame (a record the next buffer continues): that frame is left,
    /// so the frames are walked once, here, and not first by the runtime as well.
    fn decode_framed(&mut self, framed: &[u8]) -> usize {
        let mut frames = crate::codec::frames(framed);
        for record in frames.by_ref() {
            self.decode(record);
        }
        framed.len() - frames.rest().len()
    }
    /// Hands the pending batch to the chain (called after each input buffer).
    fn deliver(&mut self);
    /// All inputs ended.
    fn end_input(&mut self);
    /// The job stops without drain after a savepoint's barrier: ends the chain
    /// without end-of-input work ([`Output::stop_without_drain`]).
    fn stop_without_drain(&mut self);
    /// Event time of the whole input advanced: deliver the pending batch, then pass
    /// the watermark into the chain.
    fn watermark(&mut self, watermark: Watermark);
    /// The whole input went idle or active again: deliver the pending batch, then
    /// pass the status into the chain.
    fn watermark_status(&mut self, status: WatermarkStatus);
    /// Flush partial network buffers down the chain.
    fn flush(&mut self);
    /// Lets the chain emit results ready without input; true if work is pending.
    fn poll_pending(&mut self) -> bool;
    /// Delivers the pending batch, then snapshots the chain's state.
    fn snapshot_state(&mut self, checkpoint_id: u64, into: &mut crate::checkpoint::ChainSnapshot);
    /// Sends a checkpoint barrier down the chain and out of it.
    fn emit_barrier(&mut self, barrier: crate::checkpoint::CheckpointBarrier);
    /// Checkpoint `checkpoint_id` completed.
    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64);
}

/// Type-erased operations on a record type.
pub trait StreamType: Send + Sync {
    /// The Rust type name, for plans.
    fn type_name(&self) -> &'static str;
    /// A fan-out of typed outputs (`AnyOutput`s of this type).
    fn fan_out(&self, outputs: Vec<AnyOutput>) -> AnyOutput;
    /// An output that partitions and serializes into `writer`. `partitioner` is a
    /// `Partitioner<T>` of this type, erased.
    fn network_output(
        &self,
        partitioner: &(dyn Any + Send + Sync),
        writer: Box<dyn RecordBytesWriter>,
        setup: NetworkOutputSetup,
    ) -> AnyOutput;
    /// A round-robin partitioner for this type, for implicit edges whose parallelism
    /// changes.
    fn rebalance_partitioner(&self) -> crate::node::EdgePartitioner;
    /// A side-output slot around `out`, an output of this type.
    fn side_slot(&self, out: AnyOutput) -> crate::side_output::SideSlot;
    /// A decoder feeding `head`, an output of this type.
    fn decoder(&self, head: AnyOutput, operator: Arc<str>) -> Box<dyn RecordDecoder>;
    /// Where serialized records of this type go among `subtasks` consumers under
    /// `partitioner` (a `Partitioner<T>` of this type, erased): how a restore
    /// re-partitions records stored in flight ([`crate::record_router`]).
    ///
    /// # Errors
    /// [`RouteError`](crate::record_router::RouteError) when `partitioner` is of
    /// another type or `subtasks` is 0.
    fn record_router(
        &self,
        partitioner: &(dyn Any + Send + Sync),
        subtasks: usize,
        max_parallelism: usize,
    ) -> Result<Box<dyn crate::record_router::RecordRouter>, crate::record_router::RouteError>;
}

/// Numbers a network output needs besides its partitioner.
#[derive(Debug, Clone, Copy)]
pub struct NetworkOutputSetup {
    /// Downstream channels of this producer.
    pub channels: usize,
    /// Number of key groups.
    pub max_parallelism: usize,
    /// Index of the producing instance (to stagger round robin).
    pub subtask_index: usize,
}

/// The [`StreamType`] of `T`.
pub struct TypeOf<T>(PhantomData<fn() -> T>);

impl<T: Record> TypeOf<T> {
    /// The type object of `T`.
    pub fn arc() -> Arc<dyn StreamType> {
        Arc::new(Self(PhantomData))
    }
}

impl<T: Record> StreamType for TypeOf<T> {
    fn type_name(&self) -> &'static str {
        std::any::type_name::<T>()
    }

    fn fan_out(&self, outputs: Vec<AnyOutput>) -> AnyOutput {
        let mut typed: Vec<Box<dyn Output<T>>> =
            outputs.into_iter().map(AnyOutput::into_typed).collect();
        if typed.len() == 1 {
            return AnyOutput::new(typed.pop().expect("one output"));
        }
        AnyOutput::new::<T>(Box::new(FanOut::new(typed)))
    }

    fn network_output(
        &self,
        partitioner: &(dyn Any + Send + Sync),
        writer: Box<dyn RecordBytesWriter>,
        setup: NetworkOutputSetup,
    ) -> AnyOutput {
        let partitioner = partitioner
            .downcast_ref::<Partitioner<T>>()
            .expect("edge partitioner of the producer's record type")
            .clone();
        let selector = ChannelSelector::new(
            partitioner,
            setup.channels,
            setup.max_parallelism,
            setup.subtask_index,
        );
        AnyOutput::new::<T>(Box::new(NetworkOutput {
            selector,
            writer,
            scratch: Vec::with_capacity(256),
            checked: false,
            picked: Vec::new(),
            used: Vec::new(),
        }))
    }

    fn side_slot(&self, out: AnyOutput) -> crate::side_output::SideSlot {
        crate::side_output::SideSlot::new::<T>(out)
    }

    fn rebalance_partitioner(&self) -> crate::node::EdgePartitioner {
        crate::node::EdgePartitioner::new(Partitioner::<T>::Rebalance, false)
    }

    fn decoder(&self, head: AnyOutput, operator: Arc<str>) -> Box<dyn RecordDecoder> {
        Box::new(TypedDecoder {
            head: head.into_typed::<T>(),
            batch: Vec::new(),
            operator,
        })
    }

    fn record_router(
        &self,
        partitioner: &(dyn Any + Send + Sync),
        subtasks: usize,
        max_parallelism: usize,
    ) -> Result<Box<dyn crate::record_router::RecordRouter>, crate::record_router::RouteError> {
        crate::record_router::erased_router_for::<T>(partitioner, subtasks, max_parallelism)
    }
}

/// Partitions and serializes records into a [`RecordBytesWriter`].
struct NetworkOutput<T> {
    selector: ChannelSelector<T>,
    writer: Box<dyn RecordBytesWriter>,
    scratch: Vec<u8>,
    /// Whether the first record was checked to round-trip.
    checked: bool,
    /// The channel of each record of the batch being written.
    picked: Vec<u32>,
    /// Bytes framed into each channel's room during a scatter.
    used: Vec<usize>,
}

impl<T: Record> NetworkOutput<T> {
    /// Fails the producing operator, naming it and `T`, if the record just encoded
    /// into `scratch` does not decode, or decodes to a value whose encoding has
    /// another length (lengths, not bytes: a `HashMap` re-encodes its entries in
    /// another order, correctly). Serde types that only a
    /// self-describing format can read (`serde_json::Value`, `#[serde(untagged)]` or
    /// `#[serde(flatten)]`, `skip_serializing_if`) fail here on their first record
    /// instead of failing (or decoding garbage) in the consumer.
    #[cold]
    fn check_round_trip(&mut self) {
        self.checked = true;
        let problem = match decode::<T>(&self.scratch) {
            Err(e) => format!("bincode cannot decode what it encoded: {e}"),
            Ok(back) => {
                let mut again = Vec::with_capacity(self.scratch.len());
                encode_into(&back, &mut again);
                if again.len() == self.scratch.len() {
                    return;
                }
                "it decodes to a different value than was encoded".to_string()
            }
        };
        fail_operator(
            self.writer.operator(),
            unsendable_type_message(std::any::type_name::<T>(), &problem),
        )
    }
}

/// The error of a record type that cannot cross a task boundary.
fn unsendable_type_message(type_name: &str, problem: &str) -> String {
    format!(
        "records of type {type_name} cannot be sent to another task: {problem}. Records \
         between tasks are bincode-encoded, which needs types whose serde form does not \
         depend on the data (structs, tuples, enums with tags, Vec, maps, strings, \
         numbers); self-describing types such as serde_json::Value, \
         #[serde(untagged)] or #[serde(flatten)] or skip_serializing_if do not work: \
         convert them (for example to a String) before the exchange"
    )
}

impl<T: Record> Collector<T> for NetworkOutput<T> {
    #[inline]
    fn collect(&mut self, record: T) {
        let target = self.selector.select(&record);
        if let Target::Channel(c) = target
            && self.checked
            && let Some(n) = encode_into_room(&record, self.writer.spare(c))
        {
            self.writer.commit(c, n);
            return;
        }
        self.collect_via_scratch(&record, target);
    }

    fn emit_watermark(&mut self, watermark: Watermark) {
        self.writer.watermark(watermark);
    }

    fn emit_watermark_status(&mut self, status: WatermarkStatus) {
        self.writer.watermark_status(status);
    }
}

/// Frames `records[i]` into `rooms[picked[i]]` after the `used` bytes of that room,
/// until one does not fit: its index is returned. `rooms` must hold a room per channel
/// (an empty one when a channel has no buffer: its first record does not fit).
#[inline]
fn scatter_into<T: Record>(
    rooms: &mut [&mut [u8]],
    used: &mut [usize],
    records: &[T],
    picked: &[u32],
) -> Option<usize> {
    for (i, (record, &channel)) in records.iter().zip(picked).enumerate() {
        let channel = channel as usize;
        let (Some(room), Some(at)) = (rooms.get_mut(channel), used.get_mut(channel)) else {
            return Some(i);
        };
        match encode_frame(record, &mut room[*at..]) {
            Some(n) => *at += n,
            None => return Some(i),
        }
    }
    None
}

/// Writes one frame (length prefix, then the encoding of `record`) at the start of
/// `room`; `None` if it does not fit.
#[inline]
fn encode_frame<T: Record>(record: &T, room: &mut [u8]) -> Option<usize> {
    let (prefix, body) = room.split_first_chunk_mut::<LENGTH_PREFIX>()?;
    let n = encode_into_room(record, body)?;
    *prefix = u32::try_from(n).ok()?.to_le_bytes();
    Some(LENGTH_PREFIX + n)
}

impl<T: Record> NetworkOutput<T> {
    /// Frames `records` back to back into `channel`'s buffer, committing once per
    /// buffer; a record that does not fit in what is left goes the general way.
    fn frame_run<'r>(&mut self, channel: usize, records: impl Iterator<Item = &'r T>)
    where
        T: 'r,
    {
        let mut records = records.peekable();
        while records.peek().is_some() {
            let room = self.writer.spare_frames(channel);
            let mut used = 0;
            let mut did_not_fit = None;
            for record in records.by_ref() {
                match encode_frame(record, &mut room[used..]) {
                    Some(n) => used += n,
                    None => {
                        did_not_fit = Some(record);
                        break;
                    }
                }
            }
            if used > 0 {
                self.writer.commit_frames(channel, used);
            }
            if let Some(record) = did_not_fit {
                self.collect_via_scratch(record, Target::Channel(channel));
            }
        }
    }

    /// Frames each record of `batch` into the buffer of the channel picked for it, in
    /// one pass with every channel's room at hand: no per-channel grouping of the
    /// batch first. A record that does not fit commits what was framed so far on
    /// every channel (each channel keeps its records in batch order) and goes the
    /// general way; then the rooms are taken again.
    fn scatter(&mut self, batch: &[T]) {
        let mut next = 0;
        let mut used = std::mem::take(&mut self.used);
        while next < batch.len() {
            used.clear();
            used.resize(self.selector.channels(), 0);
            let did_not_fit = {
                let mut rooms = Vec::with_capacity(used.len());
                self.writer.spare_frames_all(&mut rooms);
                scatter_into(&mut rooms, &mut used, &batch[next..], &self.picked[next..])
            };
            for (channel, &len) in used.iter().enumerate() {
                if len > 0 {
                    self.writer.commit_frames(channel, len);
                }
            }
            match did_not_fit {
                Some(at) => {
                    let i = next + at;
                    let channel = self.picked[i] as usize;
                    self.collect_via_scratch(&batch[i], Target::Channel(channel));
                    next = i + 1;
                }
                None => next = batch.len(),
            }
        }
        self.used = used;
    }

    /// The general path: a record broadcast, the first one (checked to round-trip),
    /// or one that does not fit in the current buffer's room (it then spans buffers).
    #[inline(never)]
    fn collect_via_scratch(&mut self, record: &T, target: Target) {
        self.scratch.clear();
        encode_into(record, &mut self.scratch);
        if !self.checked {
            self.check_round_trip();
        }
        match target {
            Target::Channel(c) => self.writer.write(c, &self.scratch),
            Target::All => self.writer.broadcast(&self.scratch),
        }
    }
}

impl<T: Record> Output<T> for NetworkOutput<T> {
    /// The channels of a batch's records are picked first (one dynamic call per
    /// batch), then each record is framed straight into its channel's buffer, every
    /// channel's room at hand ([`scatter`](Self::scatter)): no writer call per
    /// record; each channel sees its records in batch order and the same bytes as
    /// record by record.
    fn collect_batch(&mut self, batch: &mut Vec<T>) {
        if !self.checked || self.selector.is_broadcast() {
            for record in batch.drain(..) {
                self.collect(record);
            }
            return;
        }
        let channels = self.selector.channels();
        if channels == 1 {
            self.frame_run(0, batch.iter());
        } else {
            self.picked.clear();
            self.selector.select_channels(batch, &mut self.picked);
            self.scatter(batch);
        }
        batch.clear();
    }

    fn end_input(&mut self) {
        self.writer.finish();
    }

    /// Only the end of partition: the consumers end too, without a drain.
    fn stop_without_drain(&mut self) {
        self.writer.finish();
    }

    fn flush(&mut self) {
        self.writer.flush();
    }

    fn emit_barrier(&mut self, barrier: crate::checkpoint::CheckpointBarrier) {
        self.writer.barrier(barrier);
    }
}

struct TypedDecoder<T> {
    head: Box<dyn Output<T>>,
    batch: Vec<T>,
    operator: Arc<str>,
}

impl<T: Record> TypedDecoder<T> {
    /// Fails the operator on a record that does not decode (off the hot path).
    #[cold]
    #[inline(never)]
    fn undecodable(&self, e: bincode::error::DecodeError) -> ! {
        fail_operator(
            &self.operator,
            format!(
                "cannot decode input record of type {}: {e}",
                std::any::type_name::<T>()
            ),
        )
    }
}

impl<T: Record> RecordDecoder for TypedDecoder<T> {
    // Always: called per record from `decode_framed`; the inliner once left it out
    // after unrelated changes (the window job: 544 M -> 604 M instructions; see
    // `codec::decode_off_hot_path` for the rest of that story).
    #[inline(always)]
    fn decode(&mut self, record: &[u8]) {
        match decode::<T>(record) {
            Ok(value) => self.batch.push(value),
            Err(e) => self.undecodable(e),
        }
    }

    fn deliver(&mut self) {
        if !self.batch.is_empty() {
            self.head.collect_batch(&mut self.batch);
        }
    }

    fn end_input(&mut self) {
        self.deliver();
        self.head.end_input();
    }

    fn stop_without_drain(&mut self) {
        self.deliver();
        self.head.stop_without_drain();
    }

    fn watermark(&mut self, watermark: Watermark) {
        self.deliver();
        self.head.emit_watermark(watermark);
    }

    fn watermark_status(&mut self, status: WatermarkStatus) {
        self.deliver();
        self.head.emit_watermark_status(status);
    }

    fn flush(&mut self) {
        self.deliver();
        self.head.flush();
    }

    fn poll_pending(&mut self) -> bool {
        self.head.poll_pending()
    }

    fn snapshot_state(&mut self, checkpoint_id: u64, into: &mut crate::checkpoint::ChainSnapshot) {
        self.deliver();
        self.head.snapshot_state(checkpoint_id, into);
    }

    fn emit_barrier(&mut self, barrier: crate::checkpoint::CheckpointBarrier) {
        self.deliver();
        self.head.emit_barrier(barrier);
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) {
        self.head.notify_checkpoint_complete(checkpoint_id);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Room per channel, small so that records span "buffers" often.
    const ROOM: usize = 40;

    /// Per channel: the open buffer and the records that left it, in order.
    #[derive(Default)]
    struct Channel {
        buffer: Vec<u8>,
        records: Vec<Vec<u8>>,
    }

    impl Channel {
        /// Parses the open buffer's frames into `records` and empties it.
        fn close(&mut self) {
            let framed: usize = crate::codec::frames(&self.buffer)
                .map(|r| LENGTH_PREFIX + r.len())
                .sum();
            assert_eq!(framed, self.buffer.len(), "a partial frame");
            self.records
                .extend(crate::codec::frames(&self.buffer).map(<[u8]>::to_vec));
            self.buffer = vec![0; ROOM];
            self.buffer.clear();
        }
    }

    /// A writer whose buffers hold `ROOM` bytes; `write` closes the open buffer first.
    struct FakeWriter(Arc<Mutex<Vec<Channel>>>, Vec<[u8; ROOM]>, Vec<usize>);

    impl RecordBytesWriter for FakeWriter {
        fn write(&mut self, channel: usize, record: &[u8]) {
            self.sync(channel);
            let mut channels = self.0.lock().unwrap();
            channels[channel].close();
            channels[channel].records.push(record.to_vec());
            self.2[channel] = 0;
        }
        fn spare(&mut self, channel: usize) -> &mut [u8] {
            let used = self.2[channel];
            self.1[channel]
                .get_mut(used + LENGTH_PREFIX..)
                .unwrap_or(&mut [])
        }
        fn commit(&mut self, channel: usize, len: usize) {
            let used = self.2[channel];
            self.1[channel][used..used + LENGTH_PREFIX]
                .copy_from_slice(&(len as u32).to_le_bytes());
            self.2[channel] += LENGTH_PREFIX + len;
        }
        fn spare_frames(&mut self, channel: usize) -> &mut [u8] {
            let used = self.2[channel];
            &mut self.1[channel][used..]
        }
        fn commit_frames(&mut self, channel: usize, len: usize) {
            self.2[channel] += len;
        }
        fn broadcast(&mut self, _record: &[u8]) {
            unreachable!("no broadcast in these tests")
        }
        fn flush(&mut self) {}
        fn finish(&mut self) {
            for c in 0..self.1.len() {
                self.sync(c);
                self.0.lock().unwrap()[c].close();
            }
        }
        fn watermark(&mut self, _watermark: Watermark) {}
        fn barrier(&mut self, _barrier: crate::checkpoint::CheckpointBarrier) {}
    }

    impl FakeWriter {
        /// Copies the committed bytes of `channel`'s room into the shared view.
        fn sync(&mut self, channel: usize) {
            let bytes = self.1[channel][..self.2[channel]].to_vec();
            self.0.lock().unwrap()[channel].buffer = bytes;
        }
    }

    /// What each channel received when `records` went through a network output with
    /// `partitioner`, in batches of `batch` (0: record by record).
    fn received(
        partitioner: Partitioner<(u64, String)>,
        channels: usize,
        records: &[(u64, String)],
        batch: usize,
    ) -> Vec<Vec<Vec<u8>>> {
        let shared = Arc::new(Mutex::new(
            (0..channels).map(|_| Channel::default()).collect(),
        ));
        let writer = FakeWriter(shared.clone(), vec![[0; ROOM]; channels], vec![0; channels]);
        let setup = NetworkOutputSetup {
            channels,
            max_parallelism: 128,
            subtask_index: 0,
        };
        let mut out = TypeOf::<(u64, String)>(PhantomData)
            .network_output(&partitioner, Box::new(writer), setup)
            .into_typed::<(u64, String)>();
        if batch == 0 {
            records.iter().for_each(|r| out.collect(r.clone()));
        } else {
            for chunk in records.chunks(batch) {
                out.collect_batch(&mut chunk.to_vec());
            }
        }
        out.end_input();
        let channels = std::mem::take(&mut *shared.lock().unwrap());
        channels.into_iter().map(|c| c.records).collect()
    }

    #[test]
    fn a_batch_is_framed_exactly_as_its_records_one_by_one() {
        let records: Vec<(u64, String)> = (0..200u64)
            .map(|i| (i, "x".repeat((i % 13) as usize)))
            .collect();
        let by_key: Partitioner<(u64, String)> = Partitioner::Hash(Arc::new(
            crate::partitioner::SelectorHash(|r: &(u64, String)| r.0 % 17),
        ));
        for (partitioner, channels) in [
            (Partitioner::Forward, 1),
            (Partitioner::Rebalance, 3),
            (by_key.clone(), 2),
            (by_key, 5),
        ] {
            let one_by_one = received(partitioner.clone(), channels, &records, 0);
            let total: usize = one_by_one.iter().map(Vec::len).sum();
            assert_eq!(total, records.len());
            for batch in [1, 7, 64] {
                assert_eq!(
                    received(partitioner.clone(), channels, &records, batch),
                    one_by_one,
                    "{channels} channels in batches of {batch}"
                );
            }
        }
    }
}
