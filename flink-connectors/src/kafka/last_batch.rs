//! What a Kafka reader's last poll read, message by message, so that it can say
//! where it would be had only part of that batch gone out (a rate-limited reader
//! holding the rest back when a checkpoint is taken).

use flink_core::checkpoint::StateError;

use super::source_position::PartitionPosition;

/// The messages of the last poll that went out, by partition index (into the
/// reader's partitions) and offset. At most a batch; cleared at each poll.
#[derive(Debug, Default)]
pub(super) struct LastBatch {
    /// The records emitted, in emission order.
    records: Vec<(usize, i64)>,
    /// The messages that emitted no record but went out: dead letters made in this
    /// poll, and dead letters out before (restored) that it passed over.
    dead_letters: Vec<(usize, i64)>,
}

impl LastBatch {
    /// Forgets the previous poll's messages.
    pub(super) fn clear(&mut self) {
        self.records.clear();
        self.dead_letters.clear();
    }

    /// A record of partition `index` at `offset` was emitted.
    pub(super) fn record(&mut self, index: usize, offset: i64) {
        self.records.push((index, offset));
    }

    /// The message of partition `index` at `offset` went out as a dead letter.
    pub(super) fn dead_letter(&mut self, index: usize, offset: i64) {
        self.dead_letters.push((index, offset));
    }

    /// The positions had only the first `emitted` records of the batch gone out,
    /// from `now` (each partition's position after the whole batch, in the order of
    /// the reader's partitions). A partition with a record not emitted goes back to
    /// the first such record; its dead letters after that record went out with the
    /// batch, so they join its dead letters out and are not emitted again. The
    /// other partitions keep their position after the batch: all their records and
    /// dead letters went out (so do offsets a bounded partition skipped to its end).
    ///
    /// # Errors
    /// When `emitted` exceeds the records of the batch.
    pub(super) fn position_after(
        &self,
        emitted: usize,
        mut now: Vec<PartitionPosition>,
    ) -> Result<Vec<PartitionPosition>, StateError> {
        let Some(held) = self.records.get(emitted..) else {
            return Err(StateError::Encode(format!(
                "the position after {emitted} records of a batch of {}",
                self.records.len()
            )));
        };
        let mut first_held: Vec<Option<i64>> = vec![None; now.len()];
        for &(index, offset) in held {
            // Offsets of a partition come in order: its first held is its lowest.
            first_held[index].get_or_insert(offset);
        }
        for &(index, offset) in &self.dead_letters {
            if first_held[index].is_some_and(|first| offset > first) {
                now[index].dead_letters_out.push(offset);
            }
        }
        for (position, first) in now.iter_mut().zip(first_held) {
            if let Some(first) = first {
                position.next_offset = first;
                position.dead_letters_out.sort_unstable();
                position.dead_letters_out.dedup();
            }
        }
        Ok(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(partition: i32, next_offset: i64, dead: &[i64]) -> PartitionPosition {
        PartitionPosition {
            topic: "t".into(),
            partition,
            next_offset,
            stop: None,
            dead_letters_out: dead.to_vec(),
        }
    }

    /// Partitions 0, 1 and 2 interleaved: 0@10 r, 1@20 r, 0@11 dead, 1@21 r,
    /// 0@12 r, 2@5 dead, 0@13 dead, 1@22 r, 2@6 dead; partition 1 had 30 out before
    /// (restored) and passed over 23 (out before, no longer listed).
    fn batch() -> (LastBatch, Vec<PartitionPosition>) {
        let mut b = LastBatch::default();
        b.record(0, 10);
        b.record(1, 20);
        b.dead_letter(0, 11);
        b.record(1, 21);
        b.record(0, 12);
        b.dead_letter(2, 5);
        b.dead_letter(0, 13);
        b.record(1, 22);
        b.dead_letter(1, 23);
        b.dead_letter(2, 6);
        let now = vec![pos(0, 14, &[]), pos(1, 24, &[30]), pos(2, 7, &[])];
        (b, now)
    }

    #[test]
    fn the_position_after_part_of_a_batch_goes_back_to_each_partitions_first_held_record() {
        let (b, now) = batch();
        // Nothing out: every partition back to its first record; the dead letters
        // behind them went out already.
        assert_eq!(
            b.position_after(0, now.clone()).unwrap(),
            [pos(0, 10, &[11, 13]), pos(1, 20, &[23, 30]), pos(2, 7, &[]),]
        );
        // 0@10 and 1@20 out.
        assert_eq!(
            b.position_after(2, now.clone()).unwrap(),
            [pos(0, 12, &[13]), pos(1, 21, &[23, 30]), pos(2, 7, &[]),]
        );
        // All but 1@22.
        assert_eq!(
            b.position_after(4, now.clone()).unwrap(),
            [pos(0, 14, &[]), pos(1, 22, &[23, 30]), pos(2, 7, &[]),]
        );
        // The whole batch: the position now.
        assert_eq!(b.position_after(5, now.clone()).unwrap(), now);
        assert!(b.position_after(6, now).is_err());
    }

    #[test]
    fn a_cleared_batch_is_the_position_now() {
        let (mut b, now) = batch();
        b.clear();
        assert_eq!(b.position_after(0, now.clone()).unwrap(), now);
    }
}
