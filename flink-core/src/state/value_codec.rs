//! One state value on its own, without the state format's header: what operator
//! states that are restored before their type is known keep per map (broadcast
//! state) or per element (operator list state).

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::checkpoint::StateError;

/// `value` in bincode's standard configuration.
pub(crate) fn encode_value<V: Serialize + ?Sized>(value: &V) -> Result<Vec<u8>, StateError> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| StateError::Encode(e.to_string()))
}

/// The value [`encode_value`] wrote into `bytes`, all of them.
pub(crate) fn decode_value<V: DeserializeOwned>(bytes: &[u8]) -> Result<V, String> {
    let (value, used) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map_err(|e| e.to_string())?;
    if used != bytes.len() {
        return Err(format!("{} bytes left over", bytes.len() - used));
    }
    Ok(value)
}
