use crate::node::{ChainingStrategy, EdgePartitioner};
use crate::partitioner::PartitionKind;

use super::plan::{Plan, PlanEdge, PlanNode};
use super::stream_graph::{StreamEdge, StreamGraph};

/// A task: a chain of operators that run in one thread, passing records by call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobVertex {
    /// Index in [`JobGraph::vertices`].
    pub id: usize,
    /// The chain's operator names joined by " -> ", as Flink names tasks.
    pub name: String,
    /// Parallel subtasks.
    pub parallelism: usize,
    /// Stream node ids in the chain, head first, in topological order.
    pub nodes: Vec<usize>,
}

impl JobVertex {
    /// The chain's first operator, which reads the task's input.
    pub fn head(&self) -> usize {
        self.nodes[0]
    }
}

/// A network connection between two tasks.
#[derive(Clone)]
pub struct JobEdge {
    /// Producing vertex.
    pub source_vertex: usize,
    /// Consuming vertex.
    pub target_vertex: usize,
    /// Producing stream node (inside the source vertex's chain).
    pub source_node: usize,
    /// Consuming stream node (the target vertex's head).
    pub target_node: usize,
    /// How records are partitioned.
    pub partitioner: EdgePartitioner,
    /// Index of the stream edge this job edge carries.
    pub stream_edge: usize,
}

/// The job after chaining: which operators share a task, and the network edges.
#[derive(Clone)]
pub struct JobGraph {
    /// The stream graph it was made from.
    pub stream_graph: StreamGraph,
    /// Tasks.
    pub vertices: Vec<JobVertex>,
    /// Network edges between tasks.
    pub edges: Vec<JobEdge>,
    /// For each stream node, the vertex it runs in.
    pub vertex_of_node: Vec<usize>,
}

impl JobGraph {
    /// Chains operators by Flink's rules: a forward edge between equal parallelism,
    /// the consumer has exactly one input edge, neither side disables chaining, the
    /// consumer does not start a new chain, and chaining is on for the job.
    pub fn from_stream_graph(sg: &StreamGraph) -> Self {
        let mut vertex_of_node = vec![usize::MAX; sg.nodes.len()];
        let mut vertices: Vec<JobVertex> = Vec::new();
        for node in &sg.nodes {
            let inputs: Vec<&StreamEdge> = sg.inputs_of(node.id).collect();
            match inputs.as_slice() {
                [only] if is_chainable(sg, only) => {
                    let v = vertex_of_node[only.source];
                    vertices[v].nodes.push(node.id);
                    vertex_of_node[node.id] = v;
                }
                _ => {
                    vertex_of_node[node.id] = vertices.len();
                    vertices.push(JobVertex {
                        id: vertices.len(),
                        name: String::new(),
                        parallelism: node.parallelism,
                        nodes: vec![node.id],
                    });
                }
            }
        }
        for v in &mut vertices {
            let names: Vec<&str> = v.nodes.iter().map(|&n| sg.nodes[n].name.as_str()).collect();
            v.name = names.join(" -> ");
        }
        let edges = sg
            .edges
            .iter()
            .enumerate()
            .filter(|(_, e)| vertex_of_node[e.source] != vertex_of_node[e.target])
            .map(|(stream_edge, e)| JobEdge {
                stream_edge,
                source_vertex: vertex_of_node[e.source],
                target_vertex: vertex_of_node[e.target],
                source_node: e.source,
                target_node: e.target,
                partitioner: e.partitioner.clone(),
            })
            .collect();
        Self {
            stream_graph: sg.clone(),
            vertices,
            edges,
            vertex_of_node,
        }
    }

    /// Whether the stream edge `source -> target` is inside one chain.
    pub fn is_chained(&self, source: usize, target: usize) -> bool {
        self.vertex_of_node[source] == self.vertex_of_node[target]
    }

    /// The printable plan.
    pub fn plan(&self) -> Plan {
        Plan {
            kind: "job",
            nodes: self
                .vertices
                .iter()
                .map(|v| PlanNode {
                    id: format!("v{}", v.id),
                    name: v.name.clone(),
                    parallelism: v.parallelism,
                    details: vec![format!("{} operator(s) chained", v.nodes.len())],
                })
                .collect(),
            edges: self
                .edges
                .iter()
                .map(|e| PlanEdge {
                    from: format!("v{}", e.source_vertex),
                    to: format!("v{}", e.target_vertex),
                    label: e.partitioner.kind.to_string(),
                })
                .collect(),
        }
    }
}

fn is_chainable(sg: &StreamGraph, edge: &StreamEdge) -> bool {
    let (up, down) = (&sg.nodes[edge.source], &sg.nodes[edge.target]);
    sg.config.chaining
        && edge.partitioner.kind == PartitionKind::Forward
        && up.parallelism == down.parallelism
        && up.chaining != ChainingStrategy::Never
        && down.chaining == ChainingStrategy::Always
}
