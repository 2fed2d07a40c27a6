//! Counting what a cancellation dropped: [`AbandonedRecords`] from the operators'
//! record counters and gauges (see its documentation for the exact definition).

use flink_core::graph::JobGraph;
use flink_core::partitioner::PartitionKind;

use crate::job_result::{AbandonedRecords, OperatorSummary};

/// Where the records an operator receives come from.
#[derive(Debug, Clone)]
pub(crate) struct RecordFlow {
    /// The receiving node.
    target: usize,
    /// (producing node, copies of each record the target receives). `None` when a
    /// side-output stream feeds the target: per-tag counts do not exist.
    inputs: Option<Vec<(usize, u64)>>,
}

/// The record flows of every non-source node of `jg`.
pub(crate) fn record_flows(jg: &JobGraph) -> Vec<RecordFlow> {
    let sg = &jg.stream_graph;
    let mut flows: Vec<RecordFlow> = Vec::new();
    for edge in &sg.edges {
        let copies = match edge.partitioner.kind {
            PartitionKind::Broadcast => sg.nodes[edge.target].parallelism as u64,
            _ => 1,
        };
        let flow = match flows.iter_mut().find(|f| f.target == edge.target) {
            Some(f) => f,
            None => {
                flows.push(RecordFlow {
                    target: edge.target,
                    inputs: Some(Vec::new()),
                });
                flows.last_mut().expect("just pushed")
            }
        };
        match (&mut flow.inputs, &edge.tag) {
            (Some(inputs), None) => inputs.push((edge.source, copies)),
            (inputs, _) => *inputs = None,
        }
    }
    flows
}

/// What the operators' counters say was dropped; `operators` is indexed by node id.
pub(crate) fn abandoned(operators: &[OperatorSummary], flows: &[RecordFlow]) -> AbandonedRecords {
    let by_id = |id: usize| operators.iter().find(|o| o.id == id);
    let between_operators = flows
        .iter()
        .filter_map(|f| {
            let inputs = f.inputs.as_ref()?;
            let sent: u64 = inputs
                .iter()
                .filter_map(|&(u, copies)| by_id(u).map(|o| o.records_out * copies))
                .sum();
            Some(sent.saturating_sub(by_id(f.target)?.records_in))
        })
        .sum();
    let inside_operators = operators
        .iter()
        .map(|o| o.custom("queued").or(o.custom("in_flight")).unwrap_or(0))
        .sum();
    AbandonedRecords {
        between_operators,
        inside_operators,
    }
}
