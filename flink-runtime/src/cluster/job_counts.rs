//! Process 0's result covers the whole job: every other process sends it its final
//! operator counts before its Close.

use super::links::ClusterLinks;
use crate::job_result::OperatorSummary;
use crate::network::tcp::OperatorCounts;

/// The final counts of this process's operators, as sent to process 0.
pub(crate) fn final_counts(operators: &[OperatorSummary]) -> Vec<OperatorCounts> {
    operators
        .iter()
        .map(|o| OperatorCounts {
            node: u32::try_from(o.id).unwrap_or(u32::MAX),
            records_in: o.records_in,
            records_out: o.records_out,
            side_output_unconsumed: o.side_output_unconsumed,
            dead_letters_discarded: o.dead_letters_discarded,
        })
        .collect()
}

/// `own` (this process's operator counts), plus on process 0 of a job spread over
/// processes every other process's final counts, which arrived before their Close.
pub(crate) fn whole_job_operators(
    mut own: Vec<OperatorSummary>,
    links: Option<&ClusterLinks>,
) -> Vec<OperatorSummary> {
    let Some(links) = links.filter(|l| l.cluster().index == 0) else {
        return own;
    };
    for c in links.peer_counts() {
        if let Some(op) = own.iter_mut().find(|o| o.id == c.node as usize) {
            op.records_in += c.records_in;
            op.records_out += c.records_out;
            op.side_output_unconsumed += c.side_output_unconsumed;
            op.dead_letters_discarded += c.dead_letters_discarded;
        }
    }
    own
}
