//! The window operator's checkpoint: each key's windows (contents and trigger
//! state) and timers, grouped by key group; encoded from the live operator (the
//! synchronous snapshot) or from a [`WindowCopy`] taken at the barrier (the
//! deferred one), with the same bytes.

use std::hash::Hash;

use hashbrown::HashMap;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{StateError, snapshot_keyed};
use crate::timers::TimerSet;
use crate::windows::TimeWindow;

/// A key's entry in a checkpoint: its windows' contents and trigger states, and
/// their timers.
#[derive(Serialize)]
struct KeySnapshotRef<'a, A, S> {
    windows: Vec<(TimeWindow, Option<&'a A>, &'a S)>,
    event_timers: Vec<(TimeWindow, i64)>,
    processing_timers: Vec<(TimeWindow, i64)>,
}

/// [`KeySnapshotRef`] read back.
#[derive(Deserialize)]
pub(super) struct KeySnapshot<A, S> {
    pub(super) windows: Vec<(TimeWindow, Option<A>, S)>,
    pub(super) event_timers: Vec<(TimeWindow, i64)>,
    pub(super) processing_timers: Vec<(TimeWindow, i64)>,
}

/// A window of a key as the encoding reads it: the key, the window, its contents
/// and its trigger's state.
pub(super) type WindowRef<'a, K, A, S> = (&'a K, TimeWindow, Option<&'a A>, &'a S);

/// A key's window timers, as a timer queue holds them.
type WindowTimer<K> = ((K, TimeWindow), i64);

/// The window operator's state copied at a barrier: every window with its contents
/// and trigger state, in the order of the operator's table, and the live timers.
/// Encoding it gives the bytes the synchronous snapshot gave at that moment.
pub(super) struct WindowCopy<K, A, S> {
    pub(super) windows: Vec<(K, TimeWindow, Option<A>, S)>,
    pub(super) event_timers: TimerSet<(K, TimeWindow)>,
    pub(super) processing_timers: TimerSet<(K, TimeWindow)>,
}

impl<K, A, S> WindowCopy<K, A, S>
where
    K: Hash + Eq + Serialize,
    A: Serialize,
    S: Serialize,
{
    /// The checkpoint's bytes (run in the asynchronous phase).
    pub(super) fn encode(&self, max_parallelism: usize) -> Result<Vec<u8>, StateError> {
        encode_windows(
            self.windows
                .iter()
                .map(|(k, w, a, s)| (k, *w, a.as_ref(), s)),
            self.event_timers.iter(),
            self.processing_timers.iter(),
            max_parallelism,
        )
    }
}

/// Encodes `windows` and the timers by key and key group. Keys come in the order
/// they first appear (windows, then event timers, then processing timers), and each
/// key's windows and timers in time order, so the same state read in the same
/// order gives the same bytes.
///
/// # Errors
/// When a key, contents or trigger state cannot be serialized.
pub(super) fn encode_windows<'a, K, A, S>(
    windows: impl Iterator<Item = WindowRef<'a, K, A, S>>,
    event_timers: impl Iterator<Item = &'a WindowTimer<K>>,
    processing_timers: impl Iterator<Item = &'a WindowTimer<K>>,
    max_parallelism: usize,
) -> Result<Vec<u8>, StateError>
where
    K: Hash + Eq + Serialize + 'a,
    A: Serialize + 'a,
    S: Serialize + 'a,
{
    let mut keys = ByKey::default();
    for (key, window, acc, trigger) in windows {
        keys.entry(key).windows.push((window, acc, trigger));
    }
    for ((key, window), ts) in event_timers {
        keys.entry(key).event_timers.push((*window, *ts));
    }
    for ((key, window), ts) in processing_timers {
        keys.entry(key).processing_timers.push((*window, *ts));
    }
    for (_, entry) in &mut keys.entries {
        // Deterministic snapshots: windows and timers in time order.
        entry.windows.sort_unstable_by_key(|(w, _, _)| *w);
        entry.event_timers.sort_unstable();
        entry.processing_timers.sort_unstable();
    }
    snapshot_keyed(keys.entries.iter().map(|(k, v)| (*k, v)), max_parallelism)
}

/// Each key's [`KeySnapshotRef`], in the order the keys came.
struct ByKey<'a, K, A, S> {
    index: HashMap<&'a K, usize>,
    entries: Vec<(&'a K, KeySnapshotRef<'a, A, S>)>,
}

impl<K, A, S> Default for ByKey<'_, K, A, S> {
    fn default() -> Self {
        Self {
            index: HashMap::new(),
            entries: Vec::new(),
        }
    }
}

impl<'a, K: Hash + Eq, A, S> ByKey<'a, K, A, S> {
    /// `key`'s entry, new and empty the first time.
    fn entry(&mut self, key: &'a K) -> &mut KeySnapshotRef<'a, A, S> {
        let entries = &mut self.entries;
        let i = *self.index.entry(key).or_insert_with(|| {
            entries.push((
                key,
                KeySnapshotRef {
                    windows: Vec::new(),
                    event_timers: Vec::new(),
                    processing_timers: Vec::new(),
                },
            ));
            entries.len() - 1
        });
        &mut self.entries[i].1
    }
}
