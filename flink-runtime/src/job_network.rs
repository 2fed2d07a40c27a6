//! The network of one job: a result partition per (producer subtask, job edge), an
//! input gate per consumer subtask, and a credit-based channel per execution-graph
//! channel between them.
//!
//! In a job spread over processes only this process's subtasks get partitions and
//! gates; a channel to or from another process is the logical channel numbered by its
//! index in the execution graph (the same in every process) on the connection to
//! that process.

use std::collections::HashMap;
use std::sync::Arc;

use crate::precise_timer::SystemClock;
use flink_core::graph::{ExecutionGraph, JobGraph};

use crate::cluster::ClusterLinks;
use crate::job_result::JobError;
use crate::network::{
    CancelToken, InputGate, IoMetrics, NetworkConfig, ResultPartition, local_connect,
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
    /// Creates and connects everything `eg` describes that runs in this process
    /// (everything without `links`).
    pub(crate) fn build(
        jg: &JobGraph,
        eg: &ExecutionGraph,
        cancel: &CancelToken,
        io: &HashMap<(usize, usize), Arc<IoMetrics>>,
        links: Option<&ClusterLinks>,
    ) -> Result<Self, JobError> {
        let runtime = |e: &dyn std::fmt::Display| JobError::Runtime(e.to_string());
        let process_of = |subtask: usize| links.map(|l| l.cluster().process_of(subtask));
        let me = links.map(|l| l.cluster().index);
        let local = |subtask: usize| process_of(subtask) == me;
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
            for p in (0..jg.vertices[e.source_vertex].parallelism).filter(|&p| local(p)) {
                let key = (e.source_vertex, p);
                let partition = ResultPartition::with_max_buffers_per_channel(
                    n,
                    net.default_partition_pool_size(n),
                    net.buffer_size,
                    cancel.clone(),
                    io[&key].clone(),
                    config.max_buffers_per_channel,
                )
                .map_err(|e| runtime(&e))?;
                partitions
                    .entry(key)
                    .or_default()
                    .insert(edge_id, partition);
            }
        }
        let mut channel_counts: HashMap<(usize, usize), usize> = HashMap::new();
        for c in eg.channels.iter().filter(|c| local(c.consumer.1)) {
            *channel_counts.entry(c.consumer).or_default() += 1;
        }
        let mut gates = HashMap::new();
        for (&consumer, &n) in &channel_counts {
            let mut gate = InputGate::new(n, &net, cancel.clone(), io[&consumer].clone())
                .map_err(|e| runtime(&e))?;
            // Debloating measures real throughput (its idle time is wall time), so it
            // runs on the system clock even when the job's clock is a manual one.
            gate.enable_debloating(&config.buffer_debloat, Arc::new(SystemClock::new()));
            // An aligned barrier may go unaligned while it waits in the gate's
            // queues: the channels announce it (before any channel connects).
            if config
                .checkpointing
                .as_ref()
                .is_some_and(|c| c.unaligned && c.aligned_checkpoint_timeout.is_some())
            {
                gate.announce_aligned_barriers();
            }
            gates.insert(consumer, gate);
        }
        for (id, c) in eg.channels.iter().enumerate() {
            let (producer_local, consumer_local) = (local(c.producer.1), local(c.consumer.1));
            // Both ends agree on the id without talking: the graphs are the same
            // (the handshake compared their fingerprints).
            let id = u32::try_from(id).map_err(|e| runtime(&e))?;
            let link = |subtask: usize| {
                process_of(subtask)
                    .and_then(|p| links.and_then(|l| l.to(p)))
                    .ok_or_else(|| JobError::Runtime(format!("no connection for channel {id}")))
            };
            match (producer_local, consumer_local) {
                (true, true) => local_connect(
                    &partitions[&c.producer][&c.job_edge],
                    c.subpartition,
                    &gates[&c.consumer],
                    c.gate_channel,
                )
                .map_err(|e| runtime(&e))?,
                (true, false) => link(c.consumer.1)?
                    .register_sender(id, &partitions[&c.producer][&c.job_edge], c.subpartition)
                    .map_err(|e| runtime(&e))?,
                (false, true) => link(c.producer.1)?
                    .register_receiver(id, &gates[&c.consumer], c.gate_channel)
                    .map_err(|e| runtime(&e))?,
                (false, false) => {}
            }
        }
        // Small buffers before debloating's first measurement help only a
        // checkpoint's barriers (less data to wait behind under back pressure);
        // without checkpoints they would cost a short job its first period at a
        // fraction of its rate (10 % of a 1 s `throughput window` run, measured).
        if config.checkpointing.is_some() {
            for gate in gates.values() {
                gate.announce_initial_buffer_size();
            }
        }
        let subtasks = jg
            .vertices
            .iter()
            .map(|v| (0..v.parallelism).filter(|&s| local(s)).count())
            .sum();
        Ok(Self {
            gates,
            partitions,
            subtasks,
        })
    }

    /// How many subtasks run in this process.
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
