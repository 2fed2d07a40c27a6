//! Checkpoints: their configuration ([`CheckpointConfig`]), the restart strategy
//! ([`RestartStrategy`]), and what operators, sources and sinks write into one and
//! read back ([`encode_state`], [`snapshot_keyed`], [`RestoredState`]). The runtime
//! triggers, aligns, stores and restores them; see docs/checkpoints.md.

pub(crate) mod blob;
mod config;
mod deferred;
pub(crate) mod keyed;
mod location;
mod restart;
mod restore;
mod settings;
mod snapshot;
mod stop_mode;

pub use config::{CheckpointConfig, CheckpointStorage, CheckpointingMode, MIN_CHECKPOINT_INTERVAL};
pub use deferred::{DeferredState, encode_now};
pub use keyed::{restore_keyed, snapshot_keyed};
pub use location::CheckpointLocation;
pub use restart::{RestartStrategy, RestartTracker};
pub use restore::RestoreSettings;
pub use settings::CheckpointSettings;
pub use snapshot::{
    ChainSnapshot, CheckpointBarrier, FINAL_SNAPSHOT_ID, RestoredState, STATE_FORMAT_VERSION,
    StateError, TIMESTAMPED_CHANNELS_VERSION, decode_state, encode_state, state_version,
};
pub use stop_mode::StopMode;
