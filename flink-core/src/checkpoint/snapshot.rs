//! What a checkpoint holds of one operator: versioned, serde-encoded bytes
//! ([`encode_state`], [`decode_state`]), collected along a chain into a
//! [`ChainSnapshot`] and handed back on restore as [`RestoredState`].

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

use super::DeferredState;

/// The version of the state format written by this release. A reader accepts this
/// version and older ones it knows; a newer one is an error, never a misread.
///
/// - 1: the first format.
/// - 2: a keyed process function's entry per key also holds its named states
///   (list, map, ...); every other layout is unchanged, so their readers read both.
/// - 3: records of streams with event timestamps carry them (each record's
///   timestamp, then the record: [`Timestamped`](crate::timestamped::Timestamped)),
///   which changes the bytes of an unaligned checkpoint's channel state on such
///   edges; operator state is unchanged, so its readers read 1 to 3.
pub const STATE_FORMAT_VERSION: u32 = 3;

/// The first [`STATE_FORMAT_VERSION`] whose channel state (records in flight) has
/// the records of streams with timestamps as [`Timestamped`](crate::timestamped::Timestamped).
pub const TIMESTAMPED_CHANNELS_VERSION: u32 = 3;

/// The first bytes of every state blob, so that bytes of another kind are refused.
const MAGIC: [u8; 4] = *b"FRS1";

/// A checkpoint barrier: checkpoint `id`, triggered at `timestamp` (ms on the job's
/// clock); the barrier of a savepoint that stops the job says how it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointBarrier {
    /// The checkpoint's id, increasing over the life of the job (also across
    /// restarts).
    pub id: u64,
    /// When the coordinator triggered it.
    pub timestamp: i64,
    /// Set on the barrier of a savepoint that stops the job: the tasks end after it.
    pub stop: Option<super::StopMode>,
}

impl CheckpointBarrier {
    /// The barrier of checkpoint `id` triggered at `timestamp`, which stops nothing.
    pub fn new(id: u64, timestamp: i64) -> Self {
        Self {
            id,
            timestamp,
            stop: None,
        }
    }

    /// Whether the tasks end right after this barrier without end-of-input work
    /// ([`StopMode::NoDrain`](super::StopMode::NoDrain)).
    pub fn stops_without_drain(&self) -> bool {
        self.stop == Some(super::StopMode::NoDrain)
    }
}

/// The id a task uses for the snapshot it takes when its input ended: it stands for
/// "the checkpoint that completes after this task finished".
pub const FINAL_SNAPSHOT_ID: u64 = u64::MAX;

/// A state that cannot be written or read back.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StateError {
    /// Serializing failed.
    #[error("cannot serialize state: {0}")]
    Encode(String),
    /// The bytes are not a state blob, or are cut short, or do not decode as the
    /// operator's state type.
    #[error("corrupt state: {0}")]
    Corrupt(String),
    /// The state was written by a newer format.
    #[error("state format version {found} is newer than this release's {supported}")]
    UnsupportedVersion {
        /// The version in the bytes.
        found: u32,
        /// The newest version this release reads.
        supported: u32,
    },
}

/// Encodes `state` with its format header (magic, version) and bincode 2 (serde).
///
/// # Errors
/// When serde cannot serialize the value.
pub fn encode_state<S: Serialize + ?Sized>(state: &S) -> Result<Vec<u8>, StateError> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&STATE_FORMAT_VERSION.to_le_bytes());
    bincode::serde::encode_into_std_write(state, &mut out, bincode::config::standard())
        .map_err(|e| StateError::Encode(e.to_string()))?;
    Ok(out)
}

/// The format version [`encode_state`] wrote into `bytes`, for a reader whose
/// layout changed between versions.
///
/// # Errors
/// Bytes of another kind, or cut short.
pub fn state_version(bytes: &[u8]) -> Result<u32, StateError> {
    match bytes.split_first_chunk::<4>() {
        Some((magic, rest)) if *magic == MAGIC => rest
            .first_chunk::<4>()
            .map(|v| u32::from_le_bytes(*v))
            .ok_or_else(|| StateError::Corrupt("shorter than its header".into())),
        Some(_) => Err(StateError::Corrupt("not a flink-rs state blob".into())),
        None => Err(StateError::Corrupt("shorter than its header".into())),
    }
}

/// Decodes what [`encode_state`] wrote; every byte must be used.
///
/// # Errors
/// Bytes of another kind, cut short, of a newer version, or of another type.
pub fn decode_state<S: DeserializeOwned>(bytes: &[u8]) -> Result<S, StateError> {
    let Some((magic, rest)) = bytes.split_first_chunk::<4>() else {
        return Err(StateError::Corrupt("shorter than its header".into()));
    };
    if *magic != MAGIC {
        return Err(StateError::Corrupt("not a flink-rs state blob".into()));
    }
    let Some((version, body)) = rest.split_first_chunk::<4>() else {
        return Err(StateError::Corrupt("shorter than its header".into()));
    };
    let version = u32::from_le_bytes(*version);
    if version > STATE_FORMAT_VERSION {
        return Err(StateError::UnsupportedVersion {
            found: version,
            supported: STATE_FORMAT_VERSION,
        });
    }
    let (state, used) = bincode::serde::decode_from_slice(body, bincode::config::standard())
        .map_err(|e| StateError::Corrupt(e.to_string()))?;
    if used != body.len() {
        return Err(StateError::Corrupt(format!(
            "{} bytes left over after the state",
            body.len() - used
        )));
    }
    Ok(state)
}

/// The states of the operators of one chain for one checkpoint, by graph node id.
#[derive(Debug, Default)]
pub struct ChainSnapshot {
    /// (node id, state bytes) of every operator that has state and was encoded.
    pub states: Vec<(usize, Vec<u8>)>,
    /// (node id, state) of operators whose encoding was deferred
    /// ([`DeferredState`]); [`materialize`](Self::materialize) moves them to
    /// `states`.
    pub deferred: Vec<(usize, DeferredState)>,
}

impl ChainSnapshot {
    /// Adds the state of node `node`.
    pub fn add(&mut self, node: usize, bytes: Vec<u8>) {
        self.states.push((node, bytes));
    }

    /// Adds the state of node `node`, whose encoding may run later.
    pub fn add_deferred(&mut self, node: usize, state: DeferredState) {
        self.deferred.push((node, state));
    }

    /// Runs the deferred encodings (the asynchronous phase of the snapshot), so that
    /// `states` holds every operator's bytes.
    ///
    /// # Errors
    /// The first deferred encoding that failed, with its node.
    pub fn materialize(&mut self) -> Result<(), (usize, StateError)> {
        for (node, state) in self.deferred.drain(..) {
            let bytes = state.into_bytes().map_err(|e| (node, e))?;
            self.states.push((node, bytes));
        }
        Ok(())
    }
}

/// The state an operator instance starts from: what every instance of its node
/// snapshotted in the checkpoint being restored (none on a fresh start).
#[derive(Debug, Clone, Default)]
pub struct RestoredState {
    /// The restored checkpoint's id.
    pub checkpoint_id: Option<u64>,
    /// The snapshot of each subtask of the node, by subtask index (at the parallelism
    /// the checkpoint was taken with); `None` where an instance had no state.
    pub by_subtask: Arc<[Option<Arc<[u8]>>]>,
}

impl RestoredState {
    /// Nothing to restore.
    pub fn none() -> Self {
        Self::default()
    }

    /// The snapshot of subtask `index`, for state that belongs to one instance (a
    /// source's position, a sink's transactions).
    pub fn own(&self, index: usize) -> Option<&[u8]> {
        self.by_subtask.get(index).and_then(|s| s.as_deref())
    }

    /// Every subtask's snapshot, for keyed state, which an instance filters by key
    /// group.
    pub fn all(&self) -> impl Iterator<Item = &[u8]> {
        self.by_subtask.iter().filter_map(|s| s.as_deref())
    }

    /// Whether there is anything to restore.
    pub fn is_empty(&self) -> bool {
        self.by_subtask.iter().all(Option::is_none)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_with_its_header() {
        let bytes = encode_state(&vec![(1u64, "a".to_string())]).unwrap();
        assert_eq!(&bytes[..4], b"FRS1");
        let back: Vec<(u64, String)> = decode_state(&bytes).unwrap();
        assert_eq!(back, vec![(1, "a".to_string())]);
    }

    #[test]
    fn truncated_foreign_and_newer_bytes_are_refused() {
        let bytes = encode_state(&vec![1u64, 2, 3]).unwrap();
        let cut = decode_state::<Vec<u64>>(&bytes[..bytes.len() - 3]).unwrap_err();
        assert!(matches!(cut, StateError::Corrupt(_)), "{cut}");
        assert!(decode_state::<Vec<u64>>(b"nope, not state").is_err());
        let mut newer = bytes.clone();
        newer[4..8].copy_from_slice(&(STATE_FORMAT_VERSION + 1).to_le_bytes());
        assert_eq!(
            decode_state::<Vec<u64>>(&newer).unwrap_err(),
            StateError::UnsupportedVersion {
                found: STATE_FORMAT_VERSION + 1,
                supported: STATE_FORMAT_VERSION
            }
        );
        let mut longer = bytes;
        longer.push(0);
        assert!(decode_state::<Vec<u64>>(&longer).is_err());
    }
}
