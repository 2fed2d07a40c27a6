//! [`DeferredState`]: an operator's snapshot whose encoding runs after the task
//! went on processing (Flink's asynchronous snapshot phase).

use std::fmt;

use super::StateError;

/// The encoding of one operator's state for one checkpoint, either done or still to
/// do. An operator that can copy its state cheaply (a clone of its maps) hands the
/// copy's encoding back as a closure: the task stops only for the copy, and the
/// checkpoint's writer runs the closure on its own thread (the asynchronous phase).
pub struct DeferredState(Inner);

enum Inner {
    Ready(Vec<u8>),
    Later(Box<dyn FnOnce() -> Result<Vec<u8>, StateError> + Send>),
}

impl DeferredState {
    /// State already encoded (the synchronous snapshot).
    pub fn ready(bytes: Vec<u8>) -> Self {
        Self(Inner::Ready(bytes))
    }

    /// State to be encoded by `encode`, which owns a copy of it taken at the
    /// checkpoint's point in the stream.
    pub fn later(encode: impl FnOnce() -> Result<Vec<u8>, StateError> + Send + 'static) -> Self {
        Self(Inner::Later(Box::new(encode)))
    }

    /// The encoded state (runs the encoding if it was deferred).
    ///
    /// # Errors
    /// When the deferred encoding fails.
    pub fn into_bytes(self) -> Result<Vec<u8>, StateError> {
        match self.0 {
            Inner::Ready(bytes) => Ok(bytes),
            Inner::Later(encode) => encode(),
        }
    }
}

/// A deferred snapshot encoded at once: the synchronous `snapshot_state` of an
/// operator whose `snapshot_state_deferred` does the work.
///
/// # Errors
/// When taking the snapshot or its encoding fails.
pub fn encode_now(
    deferred: Result<Option<DeferredState>, StateError>,
) -> Result<Option<Vec<u8>>, StateError> {
    deferred?.map(DeferredState::into_bytes).transpose()
}

impl fmt::Debug for DeferredState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Inner::Ready(bytes) => write!(f, "DeferredState::Ready({} bytes)", bytes.len()),
            Inner::Later(_) => f.write_str("DeferredState::Later"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deferred_encoding_runs_when_the_bytes_are_asked_for() {
        assert_eq!(
            DeferredState::ready(vec![1, 2]).into_bytes(),
            Ok(vec![1, 2])
        );
        let copy = vec![7u8, 8];
        assert_eq!(
            DeferredState::later(move || Ok(copy)).into_bytes(),
            Ok(vec![7, 8])
        );
        let failing = DeferredState::later(|| Err(StateError::Encode("no".into())));
        assert_eq!(failing.into_bytes(), Err(StateError::Encode("no".into())));
    }
}
