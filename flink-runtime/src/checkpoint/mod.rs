//! Checkpointing in the runtime: the job's coordinator (`coordinator`) triggers
//! checkpoints and stores what the tasks acknowledge (`storage`); each task's side
//! (`task_side`) sees triggers and completions; a task with several inputs aligns
//! barriers (`barrier_aligner`). See docs/checkpoints.md.

pub(crate) mod barrier_aligner;
pub(crate) mod channel_rescale;
pub(crate) mod channel_state;
pub(crate) mod coordinator;
pub(crate) mod restore;
pub(crate) mod savepoint;
pub(crate) mod stats;
pub(crate) mod storage;
pub(crate) mod task_side;

pub use coordinator::CheckpointCounts;
pub use restore::{RestoreError, latest_checkpoint};
pub use savepoint::SavepointError;
pub use stats::{BarrierTiming, CompletedCheckpoint, PendingCheckpoint};
