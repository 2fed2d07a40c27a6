//! Re-partitioning the channel state of an unaligned checkpoint for a job restored
//! at another parallelism (Flink's rescaling of in-flight data).
//!
//! Channel state names the channels of the job that wrote it: a task's input
//! channels by gate index, its outputs by (job edge, subpartition). The job graph
//! at the saved parallelism is rebuilt from the new one (same operators and edges,
//! each node at the parallelism the checkpoint lists), which tells for every stored
//! buffer the channel, and so the exchange (stream edge) and the producer and
//! consumer subtasks, it was on. Per channel, the consumer's input state followed by
//! the producer's output state is the channel's byte stream of records before the
//! barrier (see docs/checkpoints.md, "Why the cut is consistent"), made of whole
//! records. Every record of an exchange then goes to the consumer subtask the edge's
//! partitioner picks at the new parallelism ([`flink_core::record_router`]) and is
//! stored as that subtask's input state on a channel of the same exchange, so it is
//! replayed before any new input, as at the same parallelism.
//!
//! Order: the records of one old channel keep their order, and a record that would
//! go to a subtask now is queued there ahead of everything the restored producers
//! send. A key's in-flight records all travelled on one old channel (its owner's),
//! so they reach its new owner in their order.
//!
//! Events: a watermark is a promise of its producer subtask about one channel, which
//! re-partitioning dissolves. As Flink does for rescaled channel state, each new
//! consumer gets, after its records of an exchange, the smallest of the last
//! watermarks stored on the old channels its records come from, and only if every
//! one of those channels stored one (else none: the restored producers send their
//! own). Watermark statuses are dropped (a channel then counts as active until its
//! producer says otherwise), as are stale barriers; an end of partition is never
//! stored (a channel that ended is complete) and the restored producers end their
//! channels themselves. A custom event cannot be placed and refuses the restore.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use flink_core::checkpoint::CheckpointLocation;
use flink_core::graph::{ExecutionGraph, JobGraph, StreamGraph};
use flink_core::partitioner::{PartitionKind, Target};

use super::channel_state::{ChannelBuffer, ChannelState};
use super::restore::RestoreError;
use super::storage::LoadedCheckpoint;
use crate::network::{Event, RecordDeserializer};

/// How the job about to run relates to the one that wrote a checkpoint.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum GraphChange {
    /// Same operators at the same parallelism: channel state restores as stored.
    Same,
    /// Same operators, some at another parallelism: channel state is re-partitioned.
    Rescaled,
    /// Other operators: channel state cannot be placed.
    Changed {
        /// The operator that differs.
        operator: String,
        /// How.
        reason: String,
    },
}

/// Compares the operators the checkpoint lists with `graph`'s (by node id and uid).
pub(crate) fn compare(checkpoint: &LoadedCheckpoint, graph: &StreamGraph) -> GraphChange {
    if checkpoint.operators.len() != graph.nodes.len() {
        return GraphChange::Changed {
            operator: "(the job's operators)".into(),
            reason: format!(
                "the checkpoint lists {} operators and the job has {}",
                checkpoint.operators.len(),
                graph.nodes.len()
            ),
        };
    }
    let mut rescaled = false;
    for saved in &checkpoint.operators {
        match graph.nodes.get(saved.node) {
            Some(n) if n.operator_id() == saved.uid => {
                rescaled |= n.parallelism != saved.parallelism;
            }
            _ => {
                return GraphChange::Changed {
                    operator: saved.name.clone(),
                    reason: format!(
                        "the job has no operator with its id '{}' at its place in the graph",
                        saved.uid
                    ),
                };
            }
        }
    }
    if rescaled {
        GraphChange::Rescaled
    } else {
        GraphChange::Same
    }
}

/// The records of one old channel, parsed from its stored buffers.
#[derive(Debug, Default)]
struct ChannelFlow {
    /// Each record's bytes (without the frame's length prefix), in order.
    records: Vec<Vec<u8>>,
    /// The last watermark stored on it.
    watermark: Option<i64>,
}

/// Re-partitions `states` (the non-empty channel states of `checkpoint`, by saved
/// (vertex, subtask)) for `jg`, whose operators are the saved ones at other
/// parallelisms ([`GraphChange::Rescaled`]): the channel state of each new
/// (vertex, subtask), input side only.
pub(crate) fn rescale(
    states: &HashMap<(usize, usize), ChannelState>,
    checkpoint: &LoadedCheckpoint,
    jg: &JobGraph,
    path: &CheckpointLocation,
) -> Result<HashMap<(usize, usize), Arc<ChannelState>>, RestoreError> {
    let saved = saved_job_graph(checkpoint, &jg.stream_graph);
    let saved_eg = ExecutionGraph::from_job_graph(&saved);
    let flows = channel_flows(states, &saved, &saved_eg, path)?;
    let mut by_edge: BTreeMap<usize, Vec<(usize, &ChannelFlow)>> = BTreeMap::new();
    for (i, c) in saved_eg.channels.iter().enumerate() {
        let flow = flows.get(&i).unwrap_or(&EMPTY);
        by_edge
            .entry(saved.edges[c.job_edge].stream_edge)
            .or_default()
            .push((c.consumer.1, flow));
    }
    let new_eg = ExecutionGraph::from_job_graph(jg);
    let mut out: HashMap<(usize, usize), ChannelState> = HashMap::new();
    for (stream_edge, channels) in by_edge {
        if channels.iter().all(|(_, f)| f.records.is_empty()) {
            continue;
        }
        let saved_consumers = saved.vertices
            [saved.vertex_of_node[jg.stream_graph.edges[stream_edge].target]]
            .parallelism;
        for (key, input) in
            repartition_edge(jg, &new_eg, stream_edge, &channels, saved_consumers, path)?
        {
            out.entry(key).or_default().inputs.push(input);
        }
    }
    Ok(out.into_iter().map(|(k, v)| (k, Arc::new(v))).collect())
}

static EMPTY: ChannelFlow = ChannelFlow {
    records: Vec::new(),
    watermark: None,
};

/// The job graph the checkpoint was written by: `graph` with each node at its saved
/// parallelism (the caller checked they are the same nodes), and each implicit edge
/// resolved again as the graph builder does (forward between equal parallelisms,
/// else rebalance), then chained by the same rules. Only its shape (vertices, job
/// edges, channels) is used: an edge turned forward here keeps its rebalance
/// partitioner object, which nothing routes with.
fn saved_job_graph(checkpoint: &LoadedCheckpoint, graph: &StreamGraph) -> JobGraph {
    let mut saved = graph.clone();
    for op in &checkpoint.operators {
        saved.nodes[op.node].parallelism = op.parallelism;
    }
    for edge in &mut saved.edges {
        if edge.partitioner.explicit {
            continue;
        }
        let equal = saved.nodes[edge.source].parallelism == saved.nodes[edge.target].parallelism;
        edge.partitioner.kind = if equal {
            PartitionKind::Forward
        } else {
            PartitionKind::Rebalance
        };
    }
    JobGraph::from_stream_graph(&saved)
}

/// The parsed records and last watermark of every old channel (by index in
/// `saved_eg`) that has stored buffers; a stored buffer that belongs to no channel
/// of the saved job is an error.
fn channel_flows(
    states: &HashMap<(usize, usize), ChannelState>,
    saved: &JobGraph,
    saved_eg: &ExecutionGraph,
    path: &CheckpointLocation,
) -> Result<HashMap<usize, ChannelFlow>, RestoreError> {
    let mismatch = |(vertex, subtask): (usize, usize), what: String| RestoreError::Corrupt {
        path: path.clone(),
        file: format!("task-{vertex}-{subtask}"),
        reason: format!("channel state: {what}, which the job at the saved parallelism lacks"),
    };
    let mut by_channel: HashMap<usize, (Vec<&ChannelBuffer>, Vec<&ChannelBuffer>)> = HashMap::new();
    for (&task, state) in states {
        for (gate_channel, buffers) in &state.inputs {
            let i = saved_eg
                .channels
                .iter()
                .position(|c| c.consumer == task && c.gate_channel == *gate_channel)
                .ok_or_else(|| mismatch(task, format!("input channel {gate_channel}")))?;
            by_channel.entry(i).or_default().0.extend(buffers);
        }
        for (edge, subpartition, buffers) in &state.outputs {
            let i = saved_eg
                .channels
                .iter()
                .position(|c| {
                    c.producer == task && c.job_edge == *edge && c.subpartition == *subpartition
                })
                .ok_or_else(|| {
                    mismatch(
                        task,
                        format!("subpartition {subpartition} of job edge {edge}"),
                    )
                })?;
            by_channel.entry(i).or_default().1.extend(buffers);
        }
    }
    let mut flows = HashMap::new();
    for (i, (inputs, outputs)) in by_channel {
        let c = &saved_eg.channels[i];
        let flow = parse(inputs.into_iter().chain(outputs)).map_err(|reason| {
            let consumer = &saved.vertices[c.consumer.0].name;
            match reason {
                Unplaceable::Corrupt(reason) => RestoreError::Corrupt {
                    path: path.clone(),
                    file: format!("task-{}-{}", c.consumer.0, c.consumer.1),
                    reason: format!(
                        "channel state of the channel from subtask {} into '{consumer}': {reason}",
                        c.producer.1
                    ),
                },
                Unplaceable::Event(reason) => RestoreError::UnalignedRescale {
                    path: path.clone(),
                    operator: consumer.clone(),
                    reason,
                },
            }
        })?;
        flows.insert(i, flow);
    }
    Ok(flows)
}

/// Why a channel's stored buffers cannot be re-partitioned.
enum Unplaceable {
    /// They are not a stream of whole records and events.
    Corrupt(String),
    /// They hold an event that has no place at another parallelism.
    Event(String),
}

/// Parses one channel's stored buffers (input side, then output side) into whole
/// records and its last watermark.
fn parse<'a>(buffers: impl Iterator<Item = &'a ChannelBuffer>) -> Result<ChannelFlow, Unplaceable> {
    let mut flow = ChannelFlow::default();
    let mut deserializer = RecordDeserializer::new();
    for buffer in buffers {
        if !buffer.event {
            deserializer
                .feed(&buffer.bytes, 0, |record| {
                    flow.records.push(record.to_vec())
                })
                .map_err(|e| Unplaceable::Corrupt(e.to_string()))?;
            continue;
        }
        if deserializer.is_mid_record() {
            return Err(Unplaceable::Corrupt("an event inside a record".into()));
        }
        match Event::decode(&buffer.bytes, 0).map_err(|e| Unplaceable::Corrupt(e.to_string()))? {
            Event::Watermark(ts) => flow.watermark = Some(flow.watermark.map_or(ts, |w| w.max(ts))),
            // See the module's doc: dropped, or never stored.
            Event::WatermarkStatus(_)
            | Event::CheckpointBarrier { .. }
            | Event::StopBarrier { .. }
            | Event::UnalignedBarrier { .. }
            | Event::EndOfPartition => {}
            Event::Custom(_) => {
                return Err(Unplaceable::Event(
                    "a custom event is in flight, and it has no place at another parallelism"
                        .into(),
                ));
            }
        }
    }
    if deserializer.is_mid_record() {
        return Err(Unplaceable::Corrupt("it ends inside a record".into()));
    }
    Ok(flow)
}

/// What one new consumer subtask replays of one exchange.
#[derive(Default)]
struct Replay {
    /// Its records, framed back to back.
    framed: Vec<u8>,
    records: usize,
    /// The smallest last watermark of the old channels its records come from, while
    /// every one of them had one.
    watermark: Option<Option<i64>>,
}

impl Replay {
    fn push(&mut self, record: &[u8]) {
        let len = u32::try_from(record.len()).expect("a stored record fits its frame");
        self.framed.extend_from_slice(&len.to_le_bytes());
        self.framed.extend_from_slice(record);
        self.records += 1;
    }

    /// An old channel whose records may come here (whether any did or not).
    fn add_source(&mut self, watermark: Option<i64>) {
        self.watermark = Some(match (self.watermark, watermark) {
            (None, w) => w,
            (Some(Some(a)), Some(b)) => Some(a.min(b)),
            (Some(_), _) => None,
        });
    }

    /// The buffers to replay: the records, then the watermark.
    fn into_buffers(self) -> Vec<ChannelBuffer> {
        let mut buffers = vec![ChannelBuffer {
            event: false,
            bytes: self.framed,
        }];
        if let Some(Some(ts)) = self.watermark {
            buffers.push(ChannelBuffer {
                event: true,
                bytes: Event::Watermark(ts).encode(),
            });
        }
        buffers
    }
}

/// Input state for one new (vertex, subtask): (input channel, buffers).
type Placed = ((usize, usize), (usize, Vec<ChannelBuffer>));

/// Routes the records of stream edge `stream_edge`, stored on `channels` (each with
/// its old consumer subtask, in channel order), to the consumer subtasks of `jg`:
/// for each, the input channel (of this edge) they are replayed on and the buffers.
fn repartition_edge(
    jg: &JobGraph,
    new_eg: &ExecutionGraph,
    stream_edge: usize,
    channels: &[(usize, &ChannelFlow)],
    saved_consumers: usize,
    path: &CheckpointLocation,
) -> Result<Vec<Placed>, RestoreError> {
    let sg = &jg.stream_graph;
    let edge = &sg.edges[stream_edge];
    let consumer = &sg.nodes[edge.target];
    let refuse = |reason: String| RestoreError::UnalignedRescale {
        path: path.clone(),
        operator: consumer.name.clone(),
        reason,
    };
    let Some(job_edge) = jg.edges.iter().position(|e| e.stream_edge == stream_edge) else {
        return Err(refuse(format!(
            "records were in flight into it from '{}', which it is chained to now",
            sg.nodes[edge.source].name
        )));
    };
    let target = jg.edges[job_edge].target_vertex;
    let subtasks = jg.vertices[target].parallelism;
    let mut router = sg
        .edge_type(edge)
        .record_router(
            &*edge.partitioner.typed,
            subtasks,
            sg.config.max_parallelism,
        )
        .map_err(|e| refuse(e.to_string()))?;
    let mut replays: Vec<Replay> = (0..subtasks).map(|_| Replay::default()).collect();
    if edge.partitioner.kind == PartitionKind::Broadcast {
        // Subtask c restores the broadcast state of old subtask c % saved (see
        // `BroadcastProcess::restore_state`): it takes what was in flight to that one.
        for (c, replay) in replays.iter_mut().enumerate() {
            for (_, flow) in channels.iter().filter(|(d, _)| *d == c % saved_consumers) {
                replay.add_source(flow.watermark);
                flow.records.iter().for_each(|r| replay.push(r));
            }
        }
    } else {
        for replay in &mut replays {
            channels
                .iter()
                .for_each(|(_, f)| replay.add_source(f.watermark));
        }
        for record in channels.iter().flat_map(|(_, f)| &f.records) {
            match router.route(record).map_err(|e| refuse(e.to_string()))? {
                Target::Channel(c) => replays[c].push(record),
                Target::All => replays.iter_mut().for_each(|r| r.push(record)),
            }
        }
    }
    let mut out = Vec::new();
    for (c, replay) in replays.into_iter().enumerate() {
        if replay.records == 0 {
            continue;
        }
        let gate_channel = new_eg
            .channels
            .iter()
            .find(|ch| ch.job_edge == job_edge && ch.consumer == (target, c))
            .map(|ch| ch.gate_channel)
            .ok_or_else(|| {
                refuse(format!(
                    "its subtask {c} has no input channel of the exchange"
                ))
            })?;
        tracing::info!(
            operator = %consumer.name,
            subtask = c,
            records = replay.records,
            "records in flight re-partitioned to this subtask"
        );
        out.push(((target, c), (gate_channel, replay.into_buffers())));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::storage::OperatorEntry;
    use crate::network::BufferKind;
    use flink_core::environment::StreamExecutionEnvironment;
    use flink_core::key_group::subtask_of_key;

    fn frame(record: u64) -> Vec<u8> {
        let mut body = Vec::new();
        flink_core::codec::encode_into(&record, &mut body);
        let mut framed = (body.len() as u32).to_le_bytes().to_vec();
        framed.extend(body);
        framed
    }

    fn data(records: impl IntoIterator<Item = u64>) -> ChannelBuffer {
        let bytes: Vec<u8> = records.into_iter().flat_map(frame).collect();
        ChannelBuffer::new(BufferKind::Data, &bytes)
    }

    fn watermark(ts: i64) -> ChannelBuffer {
        ChannelBuffer::new(BufferKind::Event, &Event::Watermark(ts).encode())
    }

    /// sequence -> key_by(x) (or rebalance) -> sink at `p`.
    fn job(p: usize, keyed: bool) -> JobGraph {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        let numbers = env.from_sequence(1, 2);
        if keyed {
            numbers.key_by(|x: &u64| *x).map(|x: u64| x).collect_vec();
        } else {
            numbers.rebalance().collect_vec();
        }
        JobGraph::from_stream_graph(&env.stream_graph().unwrap())
    }

    fn checkpoint_of(jg: &JobGraph) -> LoadedCheckpoint {
        LoadedCheckpoint {
            id: 1,
            tasks: Vec::new(),
            operators: jg
                .stream_graph
                .nodes
                .iter()
                .map(|n| OperatorEntry {
                    node: n.id,
                    uid: n.operator_id(),
                    name: n.name.clone(),
                    parallelism: n.parallelism,
                })
                .collect(),
        }
    }

    /// Every record each new consumer replays, by subtask, and its watermark.
    fn replayed(
        out: &HashMap<(usize, usize), Arc<ChannelState>>,
    ) -> BTreeMap<usize, (Vec<u64>, Option<i64>)> {
        let mut by_subtask = BTreeMap::new();
        for (&(_, s), state) in out {
            let mut records = Vec::new();
            let mut last = None;
            for (_, buffers) in &state.inputs {
                let flow = parse(buffers.iter()).ok().unwrap();
                records.extend(
                    flow.records
                        .iter()
                        .map(|r| flink_core::codec::decode::<u64>(r).unwrap()),
                );
                last = flow.watermark;
            }
            by_subtask.insert(s, (records, last));
        }
        by_subtask
    }

    /// Keyed job at 2: consumer 0's input channel 1 (from producer 1) holds 0..50
    /// cut across buffers then a watermark; producer 0's subpartition 1 holds
    /// 100..150 and a watermark.
    fn keyed_states() -> HashMap<(usize, usize), ChannelState> {
        let all: Vec<u8> = (0..50).flat_map(frame).collect();
        // The writer never cuts a length prefix: cut inside the fourth body.
        let (a, b) = all.split_at(42);
        let mut states = HashMap::new();
        states.insert(
            (1, 0),
            ChannelState {
                inputs: vec![(
                    1,
                    vec![
                        ChannelBuffer::new(BufferKind::Data, a),
                        ChannelBuffer::new(BufferKind::Data, b),
                        watermark(40),
                    ],
                )],
                outputs: Vec::new(),
            },
        );
        states.insert(
            (0, 0),
            ChannelState {
                inputs: Vec::new(),
                outputs: vec![(0, 1, vec![data(100..150), watermark(70)])],
            },
        );
        states
    }

    #[test]
    fn keyed_records_in_flight_go_to_their_key_groups_new_owner_in_order() {
        let saved = job(2, true);
        let checkpoint = checkpoint_of(&saved);
        for p in [1, 3, 4] {
            let now = job(p, true);
            assert_eq!(
                compare(&checkpoint, &now.stream_graph),
                GraphChange::Rescaled
            );
            let path = CheckpointLocation::from("chk-1");
            let out = rescale(&keyed_states(), &checkpoint, &now, &path).unwrap();
            let replayed = replayed(&out);
            let mut every: Vec<u64> = Vec::new();
            for (&s, (records, _)) in &replayed {
                for &r in records {
                    assert_eq!(subtask_of_key(&r, 128, p), s, "record {r} at {p}");
                }
                // Each old channel's records keep their order.
                let firsts: Vec<u64> = records.iter().copied().filter(|&r| r < 100).collect();
                assert!(firsts.is_sorted(), "{firsts:?}");
                every.extend(records);
            }
            every.sort_unstable();
            assert_eq!(
                every,
                (0..50).chain(100..150).collect::<Vec<u64>>(),
                "at {p}"
            );
            // Only the channels stored are known to hold a watermark: the others
            // of the exchange (0 -> 0, 1 -> 1) hold none, so none is replayed.
            assert!(replayed.values().all(|(_, w)| w.is_none()), "{replayed:?}");
        }
    }

    #[test]
    fn the_smallest_watermark_follows_when_every_old_channel_had_one() {
        let saved = job(2, false);
        let checkpoint = checkpoint_of(&saved);
        // Rebalance at 2: producers (vertex 0) and consumers (vertex 1), 4 channels.
        let mut states = HashMap::new();
        for consumer in 0..2 {
            states.insert(
                (1, consumer),
                ChannelState {
                    inputs: (0..2)
                        .map(|gate| {
                            let base = (consumer * 2 + gate) as u64 * 10;
                            (
                                gate,
                                vec![data(base..base + 10), watermark(50 + base as i64)],
                            )
                        })
                        .collect(),
                    outputs: Vec::new(),
                },
            );
        }
        let now = job(3, false);
        let out = rescale(&states, &checkpoint, &now, &CheckpointLocation::from("c")).unwrap();
        let replayed = replayed(&out);
        let mut every: Vec<u64> = Vec::new();
        for (records, watermark) in replayed.values() {
            // 40 records round robin over 3: 14, 13, 13.
            assert!((13..=14).contains(&records.len()), "{replayed:?}");
            assert_eq!(*watermark, Some(50));
            every.extend(records);
        }
        every.sort_unstable();
        assert_eq!(every, (0..40).collect::<Vec<u64>>());
    }

    #[test]
    fn a_new_broadcast_consumer_takes_what_was_in_flight_to_the_old_one_it_restores_from() {
        let broadcast = |p: usize| {
            let env = StreamExecutionEnvironment::new();
            env.set_parallelism(p);
            env.from_sequence(1, 2).broadcast().collect_vec();
            JobGraph::from_stream_graph(&env.stream_graph().unwrap())
        };
        let checkpoint = checkpoint_of(&broadcast(2));
        // Old consumer d held, from each producer u, the records 100 d + 10 u ..+3.
        let mut states = HashMap::new();
        for d in 0..2u64 {
            states.insert(
                (1, d as usize),
                ChannelState {
                    inputs: (0..2u64)
                        .map(|u| {
                            let base = 100 * d + 10 * u;
                            (u as usize, vec![data(base..base + 3)])
                        })
                        .collect(),
                    outputs: Vec::new(),
                },
            );
        }
        let path = CheckpointLocation::from("c");
        let out = rescale(&states, &checkpoint, &broadcast(3), &path).unwrap();
        let replayed = replayed(&out);
        let of = |d: u64| -> Vec<u64> { [0, 1, 2, 10, 11, 12].map(|r| 100 * d + r).to_vec() };
        let got: Vec<Vec<u64>> = replayed.values().map(|(r, _)| r.clone()).collect();
        assert_eq!(got, vec![of(0), of(1), of(0)]);
    }

    #[test]
    fn what_cannot_be_placed_refuses_the_restore_naming_the_operator() {
        let saved = job(2, true);
        let checkpoint = checkpoint_of(&saved);
        let path = CheckpointLocation::from("chk-1");
        // A custom event in flight.
        let mut states = keyed_states();
        states.get_mut(&(1, 0)).unwrap().inputs[0]
            .1
            .push(ChannelBuffer::new(
                BufferKind::Event,
                &Event::Custom(vec![1]).encode(),
            ));
        let err = rescale(&states, &checkpoint, &job(3, true), &path).unwrap_err();
        assert!(
            matches!(&err, RestoreError::UnalignedRescale { reason, .. } if reason.contains("custom event")),
            "{err}"
        );
        // A channel's records cut short.
        let mut states = keyed_states();
        states.get_mut(&(1, 0)).unwrap().inputs[0].1.remove(1);
        let err = rescale(&states, &checkpoint, &job(3, true), &path).unwrap_err();
        assert!(matches!(err, RestoreError::Corrupt { .. }), "{err}");
        // A channel the saved job does not have.
        let mut states = keyed_states();
        states.get_mut(&(1, 0)).unwrap().inputs[0].0 = 7;
        let err = rescale(&states, &checkpoint, &job(3, true), &path).unwrap_err();
        assert!(
            matches!(&err, RestoreError::Corrupt { reason, .. } if reason.contains("input channel 7")),
            "{err}"
        );
        // Another job.
        assert!(matches!(
            compare(&checkpoint, &job(2, false).stream_graph),
            GraphChange::Changed { .. }
        ));
    }
}
