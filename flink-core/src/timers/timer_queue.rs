//! [`TimerQueue`]: timers of one time domain, deduplicated per key and timestamp,
//! popped in timestamp order.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::hash::Hash;

use hashbrown::HashSet;

use super::TimerSet;

/// A timer in the heap: ordered by timestamp, then by registration, so equal
/// timestamps fire in the order they were registered.
struct Entry<K> {
    timestamp: i64,
    seq: u64,
    key: K,
}

impl<K> PartialEq for Entry<K> {
    fn eq(&self, other: &Self) -> bool {
        (self.timestamp, self.seq) == (other.timestamp, other.seq)
    }
}
impl<K> Eq for Entry<K> {}
impl<K> PartialOrd for Entry<K> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<K> Ord for Entry<K> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.timestamp, self.seq).cmp(&(other.timestamp, other.seq))
    }
}

/// Timers of one time domain (event or processing time) for keys `K`, as Flink's
/// `InternalTimerService` queue: registering the same key and timestamp twice keeps
/// one timer; deleting one that is not there does nothing; due timers come out in
/// timestamp order. Deleted timers leave the queue lazily, when they reach its front.
///
/// Timers registered in time order (event-time windows register their ends as the
/// watermark moves on) go to a FIFO queue, pushed and popped in O(1); only a timer
/// earlier than the newest one queued goes to the heap. Due timers come from
/// whichever front is earlier, so the order is the same as one heap's.
///
/// ```
/// use flink_core::timers::TimerQueue;
///
/// let mut timers = TimerQueue::default();
/// timers.register("b", 20);
/// timers.register("a", 10);
/// timers.register("a", 10); // deduplicated
/// timers.register("c", 30);
/// timers.delete(&"c", 30);
/// assert_eq!(timers.pop_due(25), Some(("a", 10)));
/// assert_eq!(timers.pop_due(25), Some(("b", 20)));
/// assert_eq!(timers.pop_due(i64::MAX), None);
/// ```
pub struct TimerQueue<K> {
    /// Timers in (timestamp, registration) order: each was at or after the one
    /// before it when registered.
    in_order: VecDeque<Entry<K>>,
    /// Timers registered before the newest one in `in_order`.
    heap: BinaryHeap<Reverse<Entry<K>>>,
    live: HashSet<(K, i64)>,
    seq: u64,
}

impl<K> Default for TimerQueue<K> {
    fn default() -> Self {
        Self {
            in_order: VecDeque::new(),
            heap: BinaryHeap::new(),
            live: HashSet::new(),
            seq: 0,
        }
    }
}

impl<K: Hash + Eq + Clone> TimerQueue<K> {
    /// A timer for `key` at `timestamp`; a second one for the same pair is ignored.
    pub fn register(&mut self, key: K, timestamp: i64) {
        if self.live.insert((key.clone(), timestamp)) {
            self.seq += 1;
            let entry = Entry {
                timestamp,
                seq: self.seq,
                key,
            };
            match self.in_order.back() {
                Some(newest) if timestamp < newest.timestamp => self.heap.push(Reverse(entry)),
                _ => self.in_order.push_back(entry),
            }
        }
    }

    /// Removes the timer for `key` at `timestamp`, if there is one.
    pub fn delete(&mut self, key: &K, timestamp: i64) {
        self.live.remove(&(key.clone(), timestamp));
    }

    /// The earliest timer at or before `time`, removed; `None` when none is due.
    pub fn pop_due(&mut self, time: i64) -> Option<(K, i64)> {
        while self.front()?.timestamp <= time {
            let entry = self.pop_front()?;
            if self.live.remove(&(entry.key.clone(), entry.timestamp)) {
                return Some((entry.key, entry.timestamp));
            }
            // Deleted (or deleted and registered again, with a later entry): skip.
        }
        None
    }

    /// The earliest live timer's timestamp.
    pub fn next_timestamp(&mut self) -> Option<i64> {
        while let Some(front) = self.front() {
            if self.live.contains(&(front.key.clone(), front.timestamp)) {
                return Some(front.timestamp);
            }
            self.pop_front();
        }
        None
    }

    /// Whether the in-order queue's front comes before the heap's top (then it is
    /// the earliest entry); `None` when both are empty.
    fn in_order_first(&self) -> Option<bool> {
        match (self.in_order.front(), self.heap.peek()) {
            (None, None) => None,
            (Some(_), None) => Some(true),
            (None, Some(_)) => Some(false),
            (Some(a), Some(Reverse(b))) => Some(a < b),
        }
    }

    /// The earliest entry, live or deleted.
    fn front(&self) -> Option<&Entry<K>> {
        match self.in_order_first()? {
            true => self.in_order.front(),
            false => self.heap.peek().map(|Reverse(e)| e),
        }
    }

    /// Removes the earliest entry, live or deleted.
    fn pop_front(&mut self) -> Option<Entry<K>> {
        match self.in_order_first()? {
            true => self.in_order.pop_front(),
            false => self.heap.pop().map(|Reverse(e)| e),
        }
    }

    /// How many timers are registered.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether no timer is registered.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Every registered timer, in no particular order (for snapshots).
    pub fn iter(&self) -> impl Iterator<Item = &(K, i64)> {
        self.live.iter()
    }

    /// A copy of every registered timer, in [`iter`](Self::iter)'s order: what a
    /// snapshot encodes after the task went on (the queue's order and deleted
    /// entries are not copied).
    pub fn copy_live(&self) -> TimerSet<K> {
        TimerSet::new(self.live.iter().cloned().collect())
    }

    /// Removes every timer.
    pub fn clear(&mut self) {
        self.in_order.clear();
        self.heap.clear();
        self.live.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleting_then_registering_again_fires_once_and_equal_timestamps_in_registration_order() {
        let mut q = TimerQueue::default();
        q.register(1u32, 5);
        q.delete(&1, 5);
        q.register(1, 5);
        q.register(2, 5);
        q.register(0, 7);
        assert_eq!(q.len(), 3);
        assert_eq!(q.next_timestamp(), Some(5));
        assert_eq!(q.pop_due(4), None);
        assert_eq!(q.pop_due(10), Some((1, 5)));
        assert_eq!(q.pop_due(10), Some((2, 5)));
        assert_eq!(q.pop_due(10), Some((0, 7)));
        assert_eq!(q.pop_due(10), None);
        assert!(q.is_empty());
    }

    /// The queue as it was before the in-order fast path: one heap of every entry
    /// by (timestamp, registration), deleted ones skipped when they reach the top
    /// (so a timer deleted and registered again fires at its first entry's place).
    #[derive(Default)]
    struct OneHeap {
        heap: BinaryHeap<Reverse<(i64, u64, u32)>>,
        live: std::collections::HashSet<(u32, i64)>,
        seq: u64,
    }

    impl OneHeap {
        fn register(&mut self, key: u32, ts: i64) {
            if self.live.insert((key, ts)) {
                self.seq += 1;
                self.heap.push(Reverse((ts, self.seq, key)));
            }
        }

        fn delete(&mut self, key: u32, ts: i64) {
            self.live.remove(&(key, ts));
        }

        fn pop_due(&mut self, time: i64) -> Option<(u32, i64)> {
            while let Some(&Reverse((ts, _, key))) = self.heap.peek() {
                if ts > time {
                    return None;
                }
                self.heap.pop();
                if self.live.remove(&(key, ts)) {
                    return Some((key, ts));
                }
            }
            None
        }
    }

    #[test]
    fn in_order_and_out_of_order_timers_with_deletes_and_duplicates_pop_as_one_heap_would() {
        let mut q = TimerQueue::default();
        let mut model = OneHeap::default();
        // A fixed pseudo-random sequence (xorshift): mostly rising timestamps, some
        // earlier ones, duplicates, deletes and pops in between.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let (mut rising, mut fired, mut time) = (0i64, 0usize, 0i64);
        for _ in 0..20_000 {
            let r = next();
            let key = (r % 7) as u32;
            match (r >> 8) % 10 {
                0..=4 => {
                    rising += ((r >> 16) % 3) as i64;
                    q.register(key, rising);
                    model.register(key, rising);
                }
                5 => {
                    let ts = rising - ((r >> 16) % 50) as i64;
                    q.register(key, ts);
                    model.register(key, ts);
                }
                6 => {
                    let ts = rising - ((r >> 16) % 10) as i64;
                    q.delete(&key, ts);
                    model.delete(key, ts);
                }
                _ => {
                    time = time.max(rising - 20);
                    let due = q.pop_due(time);
                    assert_eq!(due, model.pop_due(time));
                    fired += usize::from(due.is_some());
                }
            }
            assert_eq!(q.len(), model.live.len());
        }
        let mut rest = Vec::new();
        while let Some(t) = q.pop_due(i64::MAX) {
            rest.push(t);
        }
        let expected: Vec<_> = std::iter::from_fn(|| model.pop_due(i64::MAX)).collect();
        assert_eq!(rest, expected);
        assert_eq!((fired, rest.len(), q.len()), (5_997, 4_733, 0));
    }

    #[test]
    fn a_copy_of_the_live_timers_keeps_the_timers_of_its_moment() {
        let mut q = TimerQueue::default();
        q.register(1u32, 5);
        q.register(2, 3);
        q.register(3, 9);
        q.delete(&3, 9);
        let copy = q.copy_live();
        assert_eq!(
            copy.iter().collect::<Vec<_>>(),
            q.iter().collect::<Vec<_>>()
        );
        q.register(4, 1);
        assert_eq!(q.pop_due(5), Some((4, 1)));
        let mut copied: Vec<_> = copy.iter().copied().collect();
        copied.sort_unstable();
        assert_eq!(copied, [(1, 5), (2, 3)]);
        assert_eq!(copy.len(), 2);
    }

    #[test]
    fn a_timer_earlier_than_the_newest_fires_first_and_equal_times_keep_registration_order() {
        let mut q = TimerQueue::default();
        q.register("late", 30);
        q.register("early", 10);
        q.register("late2", 30);
        q.register("mid", 20);
        q.register("early", 10);
        q.delete(&"mid", 20);
        q.register("mid", 20);
        assert_eq!(q.len(), 4);
        assert_eq!(q.next_timestamp(), Some(10));
        let all: Vec<_> = std::iter::from_fn(|| q.pop_due(30)).collect();
        assert_eq!(
            all,
            [("early", 10), ("mid", 20), ("late", 30), ("late2", 30)]
        );
    }
}
