//! Batches a rate-limited reader re-reads when it is restored: the part of a batch
//! that a saved reader still held back when the position was taken.

use std::collections::VecDeque;

use crate::checkpoint::StateError;
use crate::source::{SourceOutput, SourceReader};

/// The rest of a batch re-read at a restore, emitted before anything else.
pub(super) struct RereadBatch<T> {
    /// The inner position that reads this batch first (a snapshot names the batch
    /// by it).
    pub(super) from: Vec<u8>,
    /// Records of the batch emitted, before the savepoint or since.
    pub(super) emitted: usize,
    /// Records of the batch not emitted yet.
    pub(super) records: VecDeque<T>,
}

/// A batch re-read from `from` by `reader` (a fresh inner reader, used for this
/// batch only), without its first `skip` records; with the reader's position after
/// the batch.
///
/// # Errors
/// When the reader refuses `from`, or re-reads fewer than `skip` records (a source
/// whose batches after a position are not what they were).
pub(super) fn reread<T>(
    mut reader: Box<dyn SourceReader<T>>,
    from: &[u8],
    skip: usize,
) -> Result<(RereadBatch<T>, Option<Vec<u8>>), StateError> {
    // Rescaled, not plain: `from` may be another subtask's position.
    reader.restore_rescaled(&[from])?;
    let mut out = SourceOutput::new();
    reader.poll_next(&mut out);
    if out.len() < skip {
        return Err(StateError::Corrupt(format!(
            "the source re-read {} records where {skip} had been emitted",
            out.len()
        )));
    }
    let records = out.batch.drain(skip..).collect();
    let batch = RereadBatch {
        from: from.to_vec(),
        emitted: skip,
        records,
    };
    Ok((batch, reader.snapshot_position()?))
}

/// Emits up to `n` records of `batches`, the first batch first; how many went out.
/// Batches emitted to their end are dropped.
pub(super) fn emit<T>(
    batches: &mut VecDeque<RereadBatch<T>>,
    mut n: usize,
    out: &mut SourceOutput<T>,
) -> usize {
    let mut sent = 0;
    while n > 0
        && let Some(batch) = batches.front_mut()
    {
        let k = n.min(batch.records.len());
        out.batch.extend(batch.records.drain(..k));
        batch.emitted += k;
        (n, sent) = (n - k, sent + k);
        if batch.records.is_empty() {
            batches.pop_front();
        }
    }
    sent
}
