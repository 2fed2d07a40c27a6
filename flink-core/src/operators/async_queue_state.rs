//! The async operator's queue as stored in a checkpoint: the inputs of its calls
//! whose results had not left, and the watermarks between them, in order.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::state_codec::StateCodec;

/// One element of a stored queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum QueuedElement<I> {
    /// A call's input; the call is issued again on restore.
    Record(I),
    /// A watermark held in the queue behind earlier calls (its timestamp).
    Watermark(i64),
    /// A call's input with its record's event timestamp (a stream with
    /// timestamps; last, so queues stored before it decode as they were).
    TimedRecord(I, i64),
}

/// The codec of a stored queue.
pub(crate) type QueueCodec<I> = StateCodec<Vec<QueuedElement<I>>>;

/// The inputs of the calls whose results have not left, by sequence number: calls
/// are numbered in start order and every call's input is added, so a deque from the
/// oldest one held is enough (no tree, no hashing per record).
pub(crate) struct PendingInputs<I> {
    /// Sequence number of `slots[0]`.
    first: u64,
    /// `None` where the result already left.
    slots: VecDeque<Option<I>>,
}

impl<I> PendingInputs<I> {
    pub(crate) fn new() -> Self {
        Self {
            first: 0,
            slots: VecDeque::new(),
        }
    }

    /// The input of call `seq`, the call after the last one added.
    pub(crate) fn push(&mut self, seq: u64, input: I) {
        if self.slots.is_empty() {
            self.first = seq;
        }
        debug_assert_eq!(seq, self.first + self.slots.len() as u64, "calls in order");
        self.slots.push_back(Some(input));
    }

    /// The result of call `seq` left.
    pub(crate) fn remove(&mut self, seq: u64) {
        let Some(index) = seq.checked_sub(self.first) else {
            return;
        };
        if let Some(slot) = self.slots.get_mut(index as usize) {
            *slot = None;
        }
        while matches!(self.slots.front(), Some(None)) {
            self.slots.pop_front();
            self.first += 1;
        }
    }

    /// The input of call `seq`, while it has not left.
    pub(crate) fn get(&self, seq: u64) -> Option<&I> {
        let index = seq.checked_sub(self.first)?;
        self.slots.get(usize::try_from(index).ok()?)?.as_ref()
    }

    /// The inputs held, oldest first, with their sequence numbers.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &I)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, slot)| slot.as_ref().map(|input| (self.first + i as u64, input)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_inputs_keep_order_and_forget_what_left() {
        let mut pending = PendingInputs::new();
        for seq in 3..8 {
            pending.push(seq, seq * 10);
        }
        pending.remove(5);
        pending.remove(3);
        let held: Vec<(u64, u64)> = pending.iter().map(|(s, i)| (s, *i)).collect();
        assert_eq!(held, vec![(4, 40), (6, 60), (7, 70)]);
        for seq in [4, 6, 7] {
            pending.remove(seq);
        }
        assert_eq!(pending.iter().count(), 0);
        pending.push(8, 80);
        assert_eq!(pending.iter().collect::<Vec<_>>(), vec![(8, &80)]);
    }

    #[test]
    fn a_queue_round_trips_in_order() {
        let codec = QueueCodec::<String>::new();
        let queue = vec![
            QueuedElement::Record("a".to_string()),
            QueuedElement::Watermark(7),
            QueuedElement::Record("b".to_string()),
            QueuedElement::TimedRecord("c".to_string(), -5),
        ];
        let bytes = codec.encode(&queue).unwrap();
        assert_eq!(codec.decode(&bytes).unwrap(), queue);
        assert!(codec.decode(&bytes[..bytes.len() - 1]).is_err());
    }
}
