use crate::partitioner::PartitionKind;

use super::job_graph::JobGraph;
use super::plan::{Plan, PlanEdge, PlanNode};

/// The parallel instances of one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionVertex {
    /// The job vertex.
    pub job_vertex: usize,
    /// Its name.
    pub name: String,
    /// How many subtasks.
    pub parallelism: usize,
}

/// One credit-based channel: a producer subtask's subpartition feeding one input
/// channel of a consumer subtask's gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// The job edge it belongs to.
    pub job_edge: usize,
    /// Producer (vertex, subtask).
    pub producer: (usize, usize),
    /// Consumer (vertex, subtask).
    pub consumer: (usize, usize),
    /// Subpartition index in the producer's result partition for this edge.
    pub subpartition: usize,
    /// Channel index in the consumer's input gate.
    pub gate_channel: usize,
}

/// Every subtask and every channel of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionGraph {
    /// One entry per job vertex.
    pub vertices: Vec<ExecutionVertex>,
    /// Every channel.
    pub channels: Vec<Channel>,
}

impl ExecutionGraph {
    /// Expands `jg`: forward edges connect subtask `i` to subtask `i`; every other
    /// partitioning connects every producer subtask to every consumer subtask.
    pub fn from_job_graph(jg: &JobGraph) -> Self {
        let vertices = jg
            .vertices
            .iter()
            .map(|v| ExecutionVertex {
                job_vertex: v.id,
                name: v.name.clone(),
                parallelism: v.parallelism,
            })
            .collect();
        let mut next_gate_channel = vec![vec![]; jg.vertices.len()];
        for v in &jg.vertices {
            next_gate_channel[v.id] = vec![0usize; v.parallelism];
        }
        let mut channels = Vec::new();
        for (edge_id, e) in jg.edges.iter().enumerate() {
            let producers = jg.vertices[e.source_vertex].parallelism;
            let consumers = jg.vertices[e.target_vertex].parallelism;
            let forward = e.partitioner.kind == PartitionKind::Forward;
            for p in 0..producers {
                let slots = next_gate_channel[e.target_vertex]
                    .iter_mut()
                    .take(consumers);
                for (c, slot) in slots.enumerate() {
                    if forward && p != c {
                        continue;
                    }
                    channels.push(Channel {
                        job_edge: edge_id,
                        producer: (e.source_vertex, p),
                        consumer: (e.target_vertex, c),
                        subpartition: if forward { 0 } else { c },
                        gate_channel: *slot,
                    });
                    *slot += 1;
                }
            }
        }
        Self { vertices, channels }
    }

    /// Subpartitions the producer of `job_edge` needs.
    pub fn subpartitions(jg: &JobGraph, job_edge: usize) -> usize {
        let e = &jg.edges[job_edge];
        match e.partitioner.kind {
            PartitionKind::Forward => 1,
            _ => jg.vertices[e.target_vertex].parallelism,
        }
    }

    /// The printable plan: one node per subtask, one edge per channel.
    pub fn plan(&self) -> Plan {
        let id = |(v, s): (usize, usize)| format!("v{v}s{s}");
        let mut nodes = Vec::new();
        for v in &self.vertices {
            for s in 0..v.parallelism {
                nodes.push(PlanNode {
                    id: id((v.job_vertex, s)),
                    name: format!("{} ({}/{})", v.name, s + 1, v.parallelism),
                    parallelism: 1,
                    details: vec![],
                });
            }
        }
        let edges = self
            .channels
            .iter()
            .map(|c| PlanEdge {
                from: id(c.producer),
                to: id(c.consumer),
                label: format!("sp{} -> ch{}", c.subpartition, c.gate_channel),
            })
            .collect();
        Plan {
            kind: "execution",
            nodes,
            edges,
        }
    }
}
