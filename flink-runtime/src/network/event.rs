//! In-band events that travel in order with the data, one per event buffer.

use flink_core::checkpoint::StopMode;
use flink_core::watermark::WatermarkStatus;

use super::error::NetworkError;

const TAG_END_OF_PARTITION: u8 = 0;
const TAG_WATERMARK: u8 = 1;
const TAG_CHECKPOINT_BARRIER: u8 = 2;
const TAG_CUSTOM: u8 = 3;
const TAG_WATERMARK_STATUS: u8 = 4;
const TAG_UNALIGNED_BARRIER: u8 = 5;
const TAG_STOP_BARRIER: u8 = 6;

/// The byte of a [`StopMode`] in a stopping barrier.
const STOP_NO_DRAIN: u8 = 0;
const STOP_DRAIN: u8 = 1;

/// An event sent in-band through a subpartition. Events consume credit like data buffers
/// and are delivered in order with the records around them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Event {
    /// The producer finished this subpartition; nothing follows.
    EndOfPartition,
    /// Event-time progress of the producer.
    Watermark(i64),
    /// A checkpoint barrier (reserved for checkpointing).
    CheckpointBarrier {
        /// Checkpoint id.
        id: u64,
        /// Checkpoint trigger timestamp (ms).
        timestamp: i64,
    },
    /// The barrier of an unaligned checkpoint: a priority event that overtakes the
    /// buffers queued ahead of it (in the sender's subpartition and in the receiver's
    /// input channel) and needs no credit; what it overtook is stored with the
    /// checkpoint as channel state.
    UnalignedBarrier {
        /// Checkpoint id.
        id: u64,
        /// Checkpoint trigger timestamp (ms).
        timestamp: i64,
    },
    /// The (aligned) barrier of a savepoint that stops the job: the tasks end after
    /// it as `mode` says. Its own tag, so ordinary barriers stay 16 bytes.
    StopBarrier {
        /// Checkpoint id.
        id: u64,
        /// Checkpoint trigger timestamp (ms).
        timestamp: i64,
        /// Whether the tasks end with or without a drain.
        mode: StopMode,
    },
    /// Opaque user-defined event payload.
    Custom(Vec<u8>),
    /// The producer went idle (its watermark holds nothing back) or active again.
    WatermarkStatus(WatermarkStatus),
}

impl Event {
    /// Number of bytes of the encoding.
    pub fn encoded_len(&self) -> usize {
        1 + match self {
            Event::EndOfPartition => 0,
            Event::Watermark(_) => 8,
            Event::CheckpointBarrier { .. } | Event::UnalignedBarrier { .. } => 16,
            Event::StopBarrier { .. } => 17,
            Event::Custom(bytes) => bytes.len(),
            Event::WatermarkStatus(_) => 1,
        }
    }

    /// Encode into the front of `out`; returns the encoded length, or `None` if it does not fit.
    pub fn encode_into(&self, out: &mut [u8]) -> Option<usize> {
        let len = self.encoded_len();
        if out.len() < len {
            return None;
        }
        match self {
            Event::EndOfPartition => out[0] = TAG_END_OF_PARTITION,
            Event::Watermark(ts) => {
                out[0] = TAG_WATERMARK;
                out[1..9].copy_from_slice(&ts.to_le_bytes());
            }
            Event::CheckpointBarrier { id, timestamp } => {
                out[0] = TAG_CHECKPOINT_BARRIER;
                out[1..9].copy_from_slice(&id.to_le_bytes());
                out[9..17].copy_from_slice(&timestamp.to_le_bytes());
            }
            Event::UnalignedBarrier { id, timestamp } => {
                out[0] = TAG_UNALIGNED_BARRIER;
                out[1..9].copy_from_slice(&id.to_le_bytes());
                out[9..17].copy_from_slice(&timestamp.to_le_bytes());
            }
            Event::StopBarrier {
                id,
                timestamp,
                mode,
            } => {
                out[0] = TAG_STOP_BARRIER;
                out[1..9].copy_from_slice(&id.to_le_bytes());
                out[9..17].copy_from_slice(&timestamp.to_le_bytes());
                out[17] = match mode {
                    StopMode::NoDrain => STOP_NO_DRAIN,
                    StopMode::Drain => STOP_DRAIN,
                };
            }
            Event::Custom(bytes) => {
                out[0] = TAG_CUSTOM;
                out[1..len].copy_from_slice(bytes);
            }
            Event::WatermarkStatus(status) => {
                out[0] = TAG_WATERMARK_STATUS;
                out[1] = u8::from(status.is_idle());
            }
        }
        Some(len)
    }

    /// Encode into a fresh vector.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![0u8; self.encoded_len()];
        self.encode_into(&mut v);
        v
    }

    /// Whether the encoded event `bytes` is a priority event (an unaligned barrier),
    /// which a receiver hands out ahead of the buffers queued before it.
    pub fn is_priority(bytes: &[u8]) -> bool {
        bytes.first() == Some(&TAG_UNALIGNED_BARRIER)
    }

    /// The checkpoint id and trigger timestamp of an encoded aligned checkpoint
    /// barrier (not a stopping one, which is never taken unaligned), else `None`.
    /// Reads the tag first, so other events cost one comparison.
    pub(crate) fn aligned_barrier(bytes: &[u8]) -> Option<(u64, i64)> {
        match bytes {
            [TAG_CHECKPOINT_BARRIER, body @ ..] if body.len() == 16 => {
                let le8 = |b: &[u8]| -> [u8; 8] { b.try_into().expect("8 bytes") };
                Some((
                    u64::from_le_bytes(le8(&body[..8])),
                    i64::from_le_bytes(le8(&body[8..])),
                ))
            }
            _ => None,
        }
    }

    /// Decode an event received on `channel` (the channel is only used for error reports).
    pub fn decode(bytes: &[u8], channel: usize) -> Result<Event, NetworkError> {
        let corrupt = |reason: &str| NetworkError::CorruptStream {
            channel,
            reason: reason.to_string(),
        };
        let (&tag, body) = bytes.split_first().ok_or_else(|| corrupt("empty event"))?;
        let fixed = |n: usize| -> Result<(), NetworkError> {
            if body.len() == n {
                Ok(())
            } else {
                Err(corrupt("event body has wrong length"))
            }
        };
        let le8 = |b: &[u8]| -> [u8; 8] { b.try_into().expect("8 bytes") };
        match tag {
            TAG_END_OF_PARTITION => {
                fixed(0)?;
                Ok(Event::EndOfPartition)
            }
            TAG_WATERMARK => {
                fixed(8)?;
                Ok(Event::Watermark(i64::from_le_bytes(le8(body))))
            }
            TAG_CHECKPOINT_BARRIER => {
                fixed(16)?;
                Ok(Event::CheckpointBarrier {
                    id: u64::from_le_bytes(le8(&body[..8])),
                    timestamp: i64::from_le_bytes(le8(&body[8..])),
                })
            }
            TAG_UNALIGNED_BARRIER => {
                fixed(16)?;
                Ok(Event::UnalignedBarrier {
                    id: u64::from_le_bytes(le8(&body[..8])),
                    timestamp: i64::from_le_bytes(le8(&body[8..])),
                })
            }
            TAG_STOP_BARRIER => {
                fixed(17)?;
                Ok(Event::StopBarrier {
                    id: u64::from_le_bytes(le8(&body[..8])),
                    timestamp: i64::from_le_bytes(le8(&body[8..16])),
                    mode: match body[16] {
                        STOP_NO_DRAIN => StopMode::NoDrain,
                        STOP_DRAIN => StopMode::Drain,
                        _ => return Err(corrupt("stop mode is neither 0 nor 1")),
                    },
                })
            }
            TAG_CUSTOM => Ok(Event::Custom(body.to_vec())),
            TAG_WATERMARK_STATUS => match body {
                [0] => Ok(Event::WatermarkStatus(WatermarkStatus::Active)),
                [1] => Ok(Event::WatermarkStatus(WatermarkStatus::Idle)),
                _ => Err(corrupt("watermark status is neither 0 nor 1")),
            },
            _ => Err(corrupt("unknown event tag")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip() {
        for e in [
            Event::EndOfPartition,
            Event::Watermark(-42),
            Event::CheckpointBarrier {
                id: 7,
                timestamp: 1234,
            },
            Event::UnalignedBarrier {
                id: 8,
                timestamp: -5,
            },
            Event::StopBarrier {
                id: 9,
                timestamp: 77,
                mode: StopMode::NoDrain,
            },
            Event::StopBarrier {
                id: 10,
                timestamp: 78,
                mode: StopMode::Drain,
            },
            Event::Custom(vec![1, 2, 3]),
            Event::Custom(vec![]),
            Event::WatermarkStatus(WatermarkStatus::Idle),
            Event::WatermarkStatus(WatermarkStatus::Active),
        ] {
            assert_eq!(Event::decode(&e.encode(), 0).unwrap(), e);
            assert_eq!(e.encode().len(), e.encoded_len());
        }
    }

    #[test]
    fn only_an_aligned_barrier_reads_as_one() {
        let barrier = Event::CheckpointBarrier {
            id: 7,
            timestamp: -3,
        };
        assert_eq!(Event::aligned_barrier(&barrier.encode()), Some((7, -3)));
        for other in [
            Event::UnalignedBarrier {
                id: 7,
                timestamp: -3,
            },
            Event::StopBarrier {
                id: 7,
                timestamp: -3,
                mode: StopMode::NoDrain,
            },
            Event::Watermark(7),
            Event::EndOfPartition,
        ] {
            assert_eq!(Event::aligned_barrier(&other.encode()), None, "{other:?}");
        }
        assert_eq!(Event::aligned_barrier(&barrier.encode()[..16]), None);
    }

    #[test]
    fn garbage_is_rejected() {
        assert!(Event::decode(&[], 0).is_err());
        assert!(Event::decode(&[9], 0).is_err());
        assert!(Event::decode(&[TAG_WATERMARK, 1, 2], 0).is_err());
        assert!(Event::decode(&[TAG_WATERMARK_STATUS, 2], 0).is_err());
        assert!(Event::decode(&[TAG_WATERMARK_STATUS], 0).is_err());
        let mut stop = Event::StopBarrier {
            id: 1,
            timestamp: 2,
            mode: StopMode::Drain,
        }
        .encode();
        stop[17] = 2;
        assert!(Event::decode(&stop, 0).is_err());
        assert!(Event::decode(&stop[..17], 0).is_err());
    }
}
