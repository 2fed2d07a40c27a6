//! The network of one job: a result partition per (producer subtask, job edge), an
//! input gate per consumer subtask, and a credit-based channel per execution-graph
//! channel between them.

use std::collections::HashMap;
use std::sync::Arc;

use flink_core::graph::{ExecutionGraph, JobGraph};

use crate::network::{
    CancelToken, InputGate, IoMetrics, NetworkConfig, NetworkError, ResultPartition, local_connect,
};

/// Partitions and gates of every subtask, wired together, waiting to be handed to the
/// tasks.
pub(crate) struct JobNetwork {
    gates: HashMap<(usize, usize), InputGate>,
    /// Partitions by (vertex, subtask), then by job edge.
    partitions: HashMap<(usize, usize), HashMap<usize, Arc<ResultPartition>>>,
    subtasks: usize,
}

impl JobNetwork {
    /// Creates and connects everything `eg` describes.
    pub(crate) fn build(
        jg: &JobGraph,
        eg: &ExecutionGraph,
        cancel: &CancelToken,
        io: &HashMap<(usize, usize), Arc<IoMetrics>>,
    ) -> Result<Self, NetworkError> {
        let config = &jg.stream_graph.config;
        let net = NetworkConfig {
            buffer_size: config.buffer_size,
            exclusive_buffers_per_channel: config.exclusive_buffers_per_channel,
            floating_buffers_per_gate: config.floating_buffers_per_gate,
        };
        // The I/O metrics (one per subtask, shared by its partitions and gate) outlive
        // the network: a restarted job keeps counting into them.
        let mut partitions: HashMap<(usize, usize), HashMap<usize, Arc<ResultPartition>>> =
            HashMap::new();
        for (edge_id, e) in jg.edges.iter().enumerate() {
            let n = ExecutionGraph::subpartitions(jg, edge_id);
            for p in 0..jg.vertices[e.source_vertex].parallelism {
                let key = (e.source_vertex, p);
                let partition = ResultPartition::with_max_buffers_per_channel(
                    n,
                    net.default_partition_pool_size(n),
                    net.buffer_size,
                    cancel.clone(),
                    io[&key].clone(),
                    config.max_buffers_per_channel,
                )?;
                partitions
                    .entry(key)
                    .or_default()
                    .insert(edge_id, partition);
            }
        }
        let mut channel_counts: HashMap<(usize, usize), usize> = HashMap::new();
        for c in &eg.channels {
            *channel_counts.entry(c.consumer).or_default() += 1;
        }
        let mut gates = HashMap::new();
        for (&consumer, &n) in &channel_counts {
            let gate = InputGate::new(n, &net, cancel.clone(), io[&consumer].clone())?;
            gates.insert(consumer, gate);
        }
        for c in &eg.channels {
            let partition = &partitions[&c.producer][&c.job_edge];
            local_connect(
                partition,
                c.subpartition,
                &gates[&c.consumer],
                c.gate_channel,
            )?;
        }
        let subtasks = jg.vertices.iter().map(|v| v.parallelism).sum();
        Ok(Self {
            gates,
            partitions,
            subtasks,
        })
    }

    /// How many subtasks the job has.
    pub(crate) fn subtask_count(&self) -> usize {
        self.subtasks
    }

    /// The input gate of a subtask, if it has inputs.
    pub(crate) fn take_gate(&mut self, vertex: usize, subtask: usize) -> Option<InputGate> {
        self.gates.remove(&(vertex, subtask))
    }

    /// The result partitions of a subtask, by job edge.
    pub(crate) fn partitions_of(
        &mut self,
        vertex: usize,
        subtask: usize,
    ) -> HashMap<usize, Arc<ResultPartition>> {
        self.partitions
            .remove(&(vertex, subtask))
            .unwrap_or_default()
    }
}
