//! The floating receiver segments of one input gate, lent to channels with backlog.

use std::collections::VecDeque;

use parking_lot::Mutex;

use super::input_channel::Segment;

struct FloatingState {
    free: Vec<Segment>,
    allocated: usize,
    waiters: VecDeque<usize>,
}

/// Bounded pool of floating segments shared by the channels of a gate. Never blocks:
/// a channel that cannot get enough registers as a waiter and is handed the next
/// recycled floating segment. Invariant: free segments and waiters never coexist.
///
/// Lock order: this lock may be taken while holding an input channel lock, never the
/// other way round.
pub(crate) struct FloatingPool {
    state: Mutex<FloatingState>,
    capacity: usize,
    segment_size: usize,
}

impl FloatingPool {
    pub(crate) fn new(capacity: usize, segment_size: usize) -> Self {
        Self {
            state: Mutex::new(FloatingState {
                free: Vec::with_capacity(capacity),
                allocated: 0,
                waiters: VecDeque::new(),
            }),
            capacity,
            segment_size,
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn allocated(&self) -> usize {
        self.state.lock().allocated
    }

    /// Move up to `need` segments into `out`. If fewer were available, register `channel`
    /// as waiting and return `true`.
    pub(crate) fn request_into(&self, need: usize, channel: usize, out: &mut Vec<Segment>) -> bool {
        let mut st = self.state.lock();
        let mut got = 0;
        while got < need {
            if let Some(s) = st.free.pop() {
                out.push(s);
            } else if st.allocated < self.capacity {
                st.allocated += 1;
                out.push(Segment::new(self.segment_size, true));
            } else {
                break;
            }
            got += 1;
        }
        if got < need {
            if !st.waiters.contains(&channel) {
                st.waiters.push_back(channel);
            }
            true
        } else {
            false
        }
    }

    /// Return a segment. If a channel is waiting, the segment is handed back together with
    /// that channel (removed from the waiters) so the caller can offer it there.
    pub(crate) fn put_or_waiter(&self, segment: Segment) -> Option<(Segment, usize)> {
        let mut st = self.state.lock();
        match st.waiters.pop_front() {
            Some(w) => Some((segment, w)),
            None => {
                st.free.push(segment);
                None
            }
        }
    }
}
