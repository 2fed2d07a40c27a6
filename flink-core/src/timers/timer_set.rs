//! [`TimerSet`]: the live timers of a [`TimerQueue`](super::TimerQueue), copied for
//! a snapshot.

/// Every live timer of a queue at one moment, as `(key, timestamp)` pairs in the
/// order the queue's [`iter`](super::TimerQueue::iter) gives them: a snapshot
/// encodes it later, on another thread, while the queue goes on changing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerSet<K>(Vec<(K, i64)>);

impl<K> TimerSet<K> {
    /// The timers of `timers`.
    pub(crate) fn new(timers: Vec<(K, i64)>) -> Self {
        Self(timers)
    }

    /// Every timer, in the order they were copied.
    pub fn iter(&self) -> impl Iterator<Item = &(K, i64)> {
        self.0.iter()
    }

    /// How many timers there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
