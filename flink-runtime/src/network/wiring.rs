//! Wiring helpers: connect producers' partitions to consumers' gates in-process.

use std::sync::Arc;

use super::error::NetworkError;
use super::input_gate::InputGate;
use super::local_channel::local_connect;
use super::result_partition::ResultPartition;

/// Forward edge: producer `i`'s partition (one subpartition) feeds consumer `i`'s gate
/// (one channel). Requires equal parallelism.
pub fn connect_forward(
    partitions: &[Arc<ResultPartition>],
    gates: &[InputGate],
) -> Result<(), NetworkError> {
    if partitions.len() != gates.len() {
        return Err(NetworkError::InvalidConfig(format!(
            "forward edge needs equal parallelism ({} producers, {} consumers)",
            partitions.len(),
            gates.len()
        )));
    }
    for (p, g) in partitions.iter().zip(gates) {
        local_connect(p, 0, g, 0)?;
    }
    Ok(())
}

/// All-to-all edge: subpartition `j` of producer `i` feeds channel `i` of consumer `j`.
/// Every partition needs one subpartition per consumer, every gate one channel per producer.
pub fn connect_all_to_all(
    partitions: &[Arc<ResultPartition>],
    gates: &[InputGate],
) -> Result<(), NetworkError> {
    for (i, p) in partitions.iter().enumerate() {
        if p.num_subpartitions() != gates.len() {
            return Err(NetworkError::InvalidConfig(format!(
                "partition {i} has {} subpartitions for {} consumers",
                p.num_subpartitions(),
                gates.len()
            )));
        }
        for (j, g) in gates.iter().enumerate() {
            local_connect(p, j, g, i)?;
        }
    }
    Ok(())
}
