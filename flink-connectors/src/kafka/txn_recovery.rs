//! Settling the transactions an earlier attempt (maybe an earlier process) left
//! behind, through the transaction coordinator and without their producers:
//! committing a restored checkpoint's pre-committed transactions and aborting the
//! lingering ones of checkpoints that never completed.
//!
//! A restored transaction is committed with `EndTxn` and the producer id and epoch
//! the coordinator reports for its transactional id (`DescribeTransactions`).
//! Fencing (`InitProducerId`, librdkafka's `init_transactions`) would abort it
//! instead, so it is never used for a commit; it is how a lingering transaction is
//! aborted, as it also bumps the epoch: a request of the dead producer that reaches
//! the broker late cannot open a new transaction on the id (after a plain
//! `EndTxn(abort)` at the same epoch it could, and would hold `read_committed`
//! readers back until it timed out).

use super::error::KafkaConnectorError;
use super::txn_coordinator::{TxnCoordinators, TxnDescription};

/// What committing a restored transaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Recovered {
    /// It was open and is now committed.
    Committed,
    /// It had been committed before (a replayed commit is a no-op).
    AlreadyCommitted,
}

/// Commits the pre-committed transaction of `transactional_id` (checkpoint
/// `checkpoint`), whose producer may be gone.
///
/// # Errors
/// [`KafkaConnectorError::TransactionLost`] when the broker aborted it or does not
/// know it; protocol and coordinator errors.
pub(super) fn commit_recovered(
    coordinators: &mut TxnCoordinators,
    transactional_id: &str,
    checkpoint: Option<u64>,
) -> Result<Recovered, KafkaConnectorError> {
    let lost = |state: String| KafkaConnectorError::TransactionLost {
        transactional_id: transactional_id.to_string(),
        checkpoint,
        state,
    };
    let Some(txn) = coordinators.describe(transactional_id)? else {
        return Err(lost("unknown transactional id".into()));
    };
    match txn.state.as_str() {
        "Ongoing" => {
            let error = commit(coordinators, transactional_id, &txn)?;
            if error == 0 {
                return Ok(Recovered::Committed);
            }
            // Something ended it meanwhile (another commit of the same
            // transaction): its state says how.
            match coordinators.describe(transactional_id)?.map(|t| t.state) {
                Some(s) if committed(&s) => Ok(Recovered::AlreadyCommitted),
                Some(s) if s != "Ongoing" => Err(lost(s)),
                _ => Err(KafkaConnectorError::Coordinator {
                    transactional_id: transactional_id.to_string(),
                    request: "EndTxn(commit)",
                    error_code: error,
                }),
            }
        }
        s if committed(s) => Ok(Recovered::AlreadyCommitted),
        // Aborted (the transaction timed out, or an id was fenced), or a new
        // producer took the id over (`Empty`): the transaction is gone.
        _ => Err(lost(txn.state)),
    }
}

/// Aborts the open transaction of `transactional_id`, if it is still open, by
/// fencing the id.
///
/// # Errors
/// Protocol and coordinator errors; the transaction still open after the fencing.
pub(super) fn abort_lingering(
    coordinators: &mut TxnCoordinators,
    transactional_id: &str,
) -> Result<(), KafkaConnectorError> {
    let Some(txn) = coordinators.describe(transactional_id)? else {
        return Ok(());
    };
    if txn.state != "Ongoing" {
        return Ok(());
    }
    tracing::info!(
        transactional_id,
        producer_id = txn.producer_id,
        epoch = txn.producer_epoch,
        "kafka sink: aborting a transaction of a checkpoint that did not complete"
    );
    // The id's own timeout (librdkafka's default where the broker reports none).
    let timeout = if txn.transaction_timeout_ms > 0 {
        txn.transaction_timeout_ms
    } else {
        60_000
    };
    coordinators.fence(transactional_id, timeout)?;
    match coordinators.describe(transactional_id)? {
        Some(t) if t.state == "Ongoing" => Err(KafkaConnectorError::Coordinator {
            transactional_id: transactional_id.to_string(),
            request: "InitProducerId (the transaction is still open)",
            error_code: 0,
        }),
        _ => Ok(()),
    }
}

/// `EndTxn(commit)` with the producer id and epoch of `txn`; Kafka's error code.
fn commit(
    coordinators: &mut TxnCoordinators,
    transactional_id: &str,
    txn: &TxnDescription,
) -> Result<i16, KafkaConnectorError> {
    coordinators.end_txn(transactional_id, txn.producer_id, txn.producer_epoch, true)
}

/// Whether a coordinator state means the transaction committed.
fn committed(state: &str) -> bool {
    matches!(state, "PrepareCommit" | "CompleteCommit")
}

/// The subtask index in a transactional id of the sink with `prefix`:
/// `<prefix>-<subtask>-<restored checkpoint>-<n>`, or `<prefix>-<subtask>-<k>` as
/// the pool of earlier versions named them. `None` for ids of other shapes (another
/// job's prefix that starts with this one).
pub(super) fn subtask_of(prefix: &str, transactional_id: &str) -> Option<usize> {
    let rest = transactional_id.strip_prefix(prefix)?.strip_prefix('-')?;
    let parts: Vec<&str> = rest.split('-').collect();
    if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.parse::<u64>().is_err()) {
        return None;
    }
    parts[0].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::subtask_of;

    #[test]
    fn ids_of_this_sink_name_their_subtask_and_others_are_not_ours() {
        assert_eq!(subtask_of("job", "job-3-17-2"), Some(3));
        assert_eq!(subtask_of("job", "job-1-0"), Some(1), "the pool ids of old");
        assert_eq!(subtask_of("job", "job-x-1-2"), None);
        assert_eq!(subtask_of("job", "job-2-1-2-3"), None, "prefix job-2's");
        assert_eq!(subtask_of("job", "jobs-1-2-3"), None);
        assert_eq!(subtask_of("job", "other-1-2-3"), None);
    }
}
