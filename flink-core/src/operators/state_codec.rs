//! [`StateCodec`]: how an operator whose type parameters are not always serializable
//! stores a state of type `S` when they are.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::checkpoint::{StateError, decode_state, encode_state};

/// Encodes and decodes a state `S` in the state format (magic, version, bincode):
/// plain function pointers, so an operator needs `S: Serialize` only where it is
/// built to store that state, not for every use of its type.
pub(crate) struct StateCodec<S> {
    encode: fn(&S) -> Result<Vec<u8>, StateError>,
    decode: fn(&[u8]) -> Result<S, StateError>,
}

impl<S: Serialize + DeserializeOwned> StateCodec<S> {
    /// The codec of the state format.
    pub(crate) fn new() -> Self {
        Self {
            encode: |state| encode_state(state),
            decode: |bytes| decode_state(bytes),
        }
    }
}

impl<S> StateCodec<S> {
    pub(crate) fn encode(&self, state: &S) -> Result<Vec<u8>, StateError> {
        (self.encode)(state)
    }

    pub(crate) fn decode(&self, bytes: &[u8]) -> Result<S, StateError> {
        (self.decode)(bytes)
    }
}
