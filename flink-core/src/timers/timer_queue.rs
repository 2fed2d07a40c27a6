//! [`TimerQueue`]: timers of one time domain, deduplicated per key and timestamp,
//! popped in timestamp order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::Hash;

use hashbrown::HashSet;

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
/// timestamp order. Deleted timers leave the heap lazily, when they reach its top.
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
    heap: BinaryHeap<Reverse<Entry<K>>>,
    live: HashSet<(K, i64)>,
    seq: u64,
}

impl<K> Default for TimerQueue<K> {
    fn default() -> Self {
        Self {
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
            self.heap.push(Reverse(Entry {
                timestamp,
                seq: self.seq,
                key,
            }));
        }
    }

    /// Removes the timer for `key` at `timestamp`, if there is one.
    pub fn delete(&mut self, key: &K, timestamp: i64) {
        self.live.remove(&(key.clone(), timestamp));
    }

    /// The earliest timer at or before `time`, removed; `None` when none is due.
    pub fn pop_due(&mut self, time: i64) -> Option<(K, i64)> {
        while let Some(Reverse(top)) = self.heap.peek() {
            if top.timestamp > time {
                return None;
            }
            let Reverse(entry) = self.heap.pop().expect("peeked");
            if self.live.remove(&(entry.key.clone(), entry.timestamp)) {
                return Some((entry.key, entry.timestamp));
            }
            // Deleted (or deleted and registered again, with a later entry): skip.
        }
        None
    }

    /// The earliest live timer's timestamp.
    pub fn next_timestamp(&mut self) -> Option<i64> {
        while let Some(Reverse(top)) = self.heap.peek() {
            if self.live.contains(&(top.key.clone(), top.timestamp)) {
                return Some(top.timestamp);
            }
            self.heap.pop();
        }
        None
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

    /// Removes every timer.
    pub fn clear(&mut self) {
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
}
