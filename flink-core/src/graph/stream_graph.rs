use std::sync::Arc;

use crate::config::ExecutionConfig;
use crate::environment::{Builder, EdgeSpec};
use crate::error::GraphError;
use crate::node::{ChainingStrategy, EdgePartitioner, NodeKind};
use crate::partitioner::PartitionKind;
use crate::stream_type::StreamType;

use super::plan::{Plan, PlanEdge, PlanNode};

/// An operator of the job, with its parallelism resolved.
#[derive(Clone)]
pub struct StreamNode {
    /// Index in [`StreamGraph::nodes`]; edges always go from lower to higher ids.
    pub id: usize,
    /// Display name.
    pub name: String,
    /// Stable user id, if set.
    pub uid: Option<String>,
    /// Parallel instances.
    pub parallelism: usize,
    /// Chaining preference.
    pub chaining: ChainingStrategy,
    /// What runs.
    pub kind: NodeKind,
    /// The record type the node emits.
    pub output_type: Arc<dyn StreamType>,
    /// Record types of its side outputs that something reads, by tag id.
    pub side_types: Vec<(String, Arc<dyn StreamType>)>,
    /// Whether this is a sink.
    pub is_sink: bool,
    /// Whether its dead letters, if no stream reads them, are dropped and counted
    /// (`discard_dead_letters`) instead of failing the job.
    pub discard_dead_letters: bool,
}

impl StreamNode {
    /// The id its state is stored under in checkpoints and savepoints: its
    /// [`uid`](crate::datastream::DataStream::uid) if set, else one generated from
    /// its position in the graph (`auto-<n>`, as Flink hashes the graph position): the
    /// same program builds the same ids, but adding or removing an operator before
    /// it changes them, so jobs whose savepoints must survive changes set uids.
    pub fn operator_id(&self) -> String {
        match &self.uid {
            Some(uid) => uid.clone(),
            None => format!("auto-{}", self.id),
        }
    }
}

/// A connection between two operators.
#[derive(Clone)]
pub struct StreamEdge {
    /// Producer node id.
    pub source: usize,
    /// Consumer node id.
    pub target: usize,
    /// Partitioning, resolved (an implicit edge is forward or rebalance).
    pub partitioner: EdgePartitioner,
    /// The side output this edge carries, or `None` for the main output.
    pub tag: Option<String>,
}

/// The operators of a job as the user described them, validated.
#[derive(Clone)]
pub struct StreamGraph {
    /// The configuration the job runs with.
    pub config: ExecutionConfig,
    /// Nodes in creation (and therefore topological) order.
    pub nodes: Vec<StreamNode>,
    /// Edges.
    pub edges: Vec<StreamEdge>,
    /// The clock set on the environment, if any.
    pub clock: Option<Arc<dyn crate::clock::Clock>>,
    /// The five-stage pipelines applied in the job (`apply_pipeline`), in order, so
    /// the runtime can serve their status.
    pub pipelines: Vec<crate::pipeline::PipelineHandle>,
    /// The runtime mode, resolved: `Streaming` or `Batch`, never `Automatic`.
    pub runtime_mode: crate::runtime_mode::RuntimeMode,
}

impl StreamGraph {
    pub(crate) fn build(b: &Builder) -> Result<Self, GraphError> {
        b.config.validate()?;
        if let Some(e) = b.errors.first() {
            return Err(e.clone());
        }
        if !b.nodes.iter().any(|n| n.is_sink) {
            return Err(GraphError::NoSink);
        }
        let nodes = b
            .nodes
            .iter()
            .enumerate()
            .map(|(id, n)| resolve_node(&b.config, id, n))
            .collect::<Result<Vec<_>, _>>()?;
        check_unique_uids(&nodes)?;
        check_pipeline_limits(&b.pipelines, &nodes)?;
        let runtime_mode = crate::runtime_mode::resolve(b)?;
        let edges = b
            .edges
            .iter()
            .map(|e| resolve_edge(&nodes, e))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            config: b.config.clone(),
            nodes,
            edges,
            clock: b.clock.clone(),
            pipelines: b.pipelines.clone(),
            runtime_mode,
        })
    }

    /// The record type carried by `edge`: its side output's type, or the main one.
    pub fn edge_type(&self, edge: &StreamEdge) -> Arc<dyn StreamType> {
        edge_type(&self.nodes[edge.source], edge.tag.as_deref())
    }

    /// Edges into `node`.
    pub fn inputs_of(&self, node: usize) -> impl Iterator<Item = &StreamEdge> {
        self.edges.iter().filter(move |e| e.target == node)
    }

    /// Edges out of `node`.
    pub fn outputs_of(&self, node: usize) -> impl Iterator<Item = &StreamEdge> {
        self.edges.iter().filter(move |e| e.source == node)
    }

    /// The printable plan.
    pub fn plan(&self) -> Plan {
        Plan {
            kind: "stream",
            nodes: self
                .nodes
                .iter()
                .map(|n| PlanNode {
                    id: n.id.to_string(),
                    name: n.name.clone(),
                    parallelism: n.parallelism,
                    details: vec![format!("out: {}", n.output_type.type_name())],
                })
                .collect(),
            edges: self
                .edges
                .iter()
                .map(|e| PlanEdge {
                    from: e.source.to_string(),
                    to: e.target.to_string(),
                    label: match &e.tag {
                        Some(tag) => format!("{} [side output '{tag}']", e.partitioner.kind),
                        None => e.partitioner.kind.to_string(),
                    },
                })
                .collect(),
        }
    }
}

fn check_unique_uids(nodes: &[StreamNode]) -> Result<(), GraphError> {
    let mut seen: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for n in nodes {
        if let Some(uid) = &n.uid
            && let Some(first) = seen.insert(uid, &n.name)
        {
            return Err(GraphError::DuplicateUid {
                uid: uid.clone(),
                first: first.to_string(),
                second: n.name.clone(),
            });
        }
    }
    Ok(())
}

/// Each gateway subtask keeps its records under its share of `max_concurrent`: a
/// subtask with a share of 0 would never admit anything.
fn check_pipeline_limits(
    pipelines: &[crate::pipeline::PipelineHandle],
    nodes: &[StreamNode],
) -> Result<(), GraphError> {
    for p in pipelines {
        let parallelism = nodes.get(p.gateway).map_or(1, |n| n.parallelism);
        if p.config.gateway.max_concurrent < parallelism {
            return Err(crate::pipeline::PipelineConfigError {
                field: "gateway.max_concurrent",
                problem: format!(
                    "is {}, below the gateway's parallelism {parallelism}: each gateway \
                     subtask needs a share of at least one record",
                    p.config.gateway.max_concurrent
                ),
            }
            .into());
        }
    }
    Ok(())
}

fn resolve_node(
    config: &ExecutionConfig,
    id: usize,
    spec: &crate::environment::NodeSpec,
) -> Result<StreamNode, GraphError> {
    let parallelism = spec.parallelism.unwrap_or(config.parallelism);
    config.validate_parallelism(&spec.name, parallelism)?;
    if let NodeKind::Source(s) = &spec.kind
        && !s.is_parallel()
        && parallelism > 1
    {
        return Err(GraphError::NonParallelOperator {
            operator: spec.name.clone(),
            parallelism,
        });
    }
    if let NodeKind::Source(s) = &spec.kind {
        s.validate().map_err(|reason| GraphError::InvalidSource {
            operator: spec.name.clone(),
            reason,
        })?;
    }
    Ok(StreamNode {
        id,
        name: spec.name.clone(),
        uid: spec.uid.clone(),
        parallelism,
        chaining: spec.chaining,
        kind: spec.kind.clone(),
        output_type: spec.output_type.clone(),
        side_types: spec.side_types.clone(),
        is_sink: spec.is_sink,
        discard_dead_letters: spec.discard_dead_letters,
    })
}

fn edge_type(source: &StreamNode, tag: Option<&str>) -> Arc<dyn StreamType> {
    match tag {
        Some(tag) => source
            .side_types
            .iter()
            .find(|(id, _)| id == tag)
            .map(|(_, t)| t.clone())
            .expect("side_output registers the tag's type"),
        None => source.output_type.clone(),
    }
}

fn resolve_edge(nodes: &[StreamNode], spec: &EdgeSpec) -> Result<StreamEdge, GraphError> {
    let (source, target) = (spec.source, spec.target);
    let (up, down) = (&nodes[source], &nodes[target]);
    let mut partitioner = spec.partitioner.clone();
    if partitioner.kind == PartitionKind::Forward && up.parallelism != down.parallelism {
        if partitioner.explicit {
            return Err(GraphError::ForwardParallelismMismatch {
                from: up.name.clone(),
                from_parallelism: up.parallelism,
                to: down.name.clone(),
                to_parallelism: down.parallelism,
            });
        }
        partitioner = edge_type(up, spec.tag.as_deref()).rebalance_partitioner();
    }
    Ok(StreamEdge {
        source,
        target,
        partitioner,
        tag: spec.tag.clone(),
    })
}
