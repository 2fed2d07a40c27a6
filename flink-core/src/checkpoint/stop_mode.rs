//! [`StopMode`]: how a job stopped with a savepoint ends its tasks.

use serde::{Deserialize, Serialize};

/// How a job stopped with a savepoint ends (Flink's `stop` and `stop --drain`). The
/// barrier of a savepoint that stops without drain carries it, so every task learns
/// it in order with its input, whatever process it runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StopMode {
    /// Flink's default stop: every task ends right after the savepoint's barrier,
    /// without end-of-input work. Windows and timers do not fire at the end, final
    /// reductions emit nothing: what the job took in but did not output is held in
    /// the savepoint's state and output by the job restored from it.
    NoDrain,
    /// `stop --drain`: the sources end their input first, so event time advances to
    /// the end and every operator emits its final results (windows fire); once
    /// every task finished, the savepoint holds their final states (as Flink takes
    /// it after `MAX_WATERMARK`). Meant for a job that is not resumed. A barrier
    /// carrying it ends the sources' input after it.
    Drain,
}
