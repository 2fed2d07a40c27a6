//! [`StopMode`]: how a job stopped with a savepoint ends its tasks.

use serde::{Deserialize, Serialize};

/// How a job stopped with a savepoint ends (Flink's `stop` and `stop --drain`). A
/// stopping savepoint's barrier carries it, so every task learns it in order with
/// its input, whatever process it runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StopMode {
    /// Flink's default stop: every task ends right after the savepoint's barrier,
    /// without end-of-input work. Windows and timers do not fire at the end, final
    /// reductions emit nothing: what the job took in but did not output is held in
    /// the savepoint's state and output by the job restored from it.
    NoDrain,
    /// `stop --drain`: the sources end their input after the savepoint's barrier, so
    /// event time advances to the end and every operator emits its final results
    /// (windows fire); meant for a job that is not resumed.
    Drain,
}
