use serde::{Deserialize, Serialize};

/// A record inside the five-stage pipeline, with what the stages learn about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// The key KeyGen derived (empty before KeyGen).
    pub key: String,
    /// The logical partition KeyGen chose.
    pub partition: u32,
    /// When the gateway admitted it, on the job's clock (nanoseconds).
    pub admitted_ns: u64,
    /// The gateway subtask that admitted it ([`RESTORED_ORIGIN`](super::RESTORED_ORIGIN)
    /// once re-issued from a snapshot): where it ends, it is counted as ended for
    /// that subtask's in-pipeline count, in whichever process.
    pub origin: u32,
    /// The record itself.
    pub payload: T,
}

impl<T> Envelope<T> {
    /// The same envelope around another payload.
    pub fn with_payload<U>(self, payload: U) -> Envelope<U> {
        Envelope {
            key: self.key,
            partition: self.partition,
            admitted_ns: self.admitted_ns,
            origin: self.origin,
            payload,
        }
    }
}
