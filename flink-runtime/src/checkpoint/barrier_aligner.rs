//! [`BarrierAligner`]: decides when a task with several input channels has received
//! a checkpoint's barrier from all of them, and which channels to hold back
//! meanwhile.

use std::time::Instant;

use flink_core::checkpoint::{CheckpointBarrier, CheckpointingMode};

use super::stats::{BarrierArrival, now_ms};

/// What the task does after a barrier or a channel's end arrived.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Alignment {
    /// A channel that delivered the barrier and must not be read further until the
    /// alignment completes (exactly once only).
    pub(crate) block: Option<usize>,
    /// Channels to read again (the alignment completed or was given up).
    pub(crate) resume: Vec<usize>,
    /// Every live channel delivered this barrier: snapshot and forward it.
    pub(crate) aligned: Option<CheckpointBarrier>,
    /// How long the aligned checkpoint's barriers took to arrive (with `aligned`).
    pub(crate) timing: BarrierArrival,
}

/// The checkpoint being aligned.
#[derive(Debug)]
struct Current {
    barrier: CheckpointBarrier,
    /// Which channels delivered its barrier.
    arrived: Vec<bool>,
    /// When the first barrier arrived.
    first_at: Instant,
    /// Wall-clock ms since the epoch of the first barrier.
    first_barrier_ms: u64,
}

/// The alignment of one task's input channels.
#[derive(Debug)]
pub(crate) struct BarrierAligner {
    mode: CheckpointingMode,
    /// Channels whose input ended: they count as aligned.
    finished: Vec<bool>,
    /// The checkpoint being aligned.
    current: Option<Current>,
    /// The newest checkpoint aligned or given up: older barriers are stale.
    last: u64,
}

impl BarrierAligner {
    /// An aligner over `channels` input channels.
    pub(crate) fn new(channels: usize, mode: CheckpointingMode) -> Self {
        Self {
            mode,
            finished: vec![false; channels],
            current: None,
            last: 0,
        }
    }

    /// Barrier `barrier` arrived on `channel`.
    pub(crate) fn on_barrier(&mut self, channel: usize, barrier: CheckpointBarrier) -> Alignment {
        let mut outcome = Alignment::default();
        if barrier.id <= self.last {
            return outcome;
        }
        if self
            .current
            .as_ref()
            .is_some_and(|c| c.barrier.id < barrier.id)
        {
            // A newer checkpoint overtook this one (the coordinator gave it up):
            // release its channels and align the new one.
            let old = self.current.take().expect("checked");
            self.last = old.barrier.id;
            outcome.resume = blocked(self.mode, &old.arrived);
        }
        let channels = self.finished.len();
        let current = self.current.get_or_insert_with(|| Current {
            barrier,
            arrived: vec![false; channels],
            first_at: Instant::now(),
            first_barrier_ms: now_ms(),
        });
        current.arrived[channel] = true;
        outcome.resume.retain(|&c| c != channel);
        self.complete_if_aligned(&mut outcome);
        if outcome.aligned.is_none() && self.mode == CheckpointingMode::ExactlyOnce {
            outcome.block = Some(channel);
        }
        outcome
    }

    /// `channel` delivered its end of input.
    pub(crate) fn on_channel_finished(&mut self, channel: usize) -> Alignment {
        self.finished[channel] = true;
        let mut outcome = Alignment::default();
        self.complete_if_aligned(&mut outcome);
        outcome
    }

    fn complete_if_aligned(&mut self, outcome: &mut Alignment) {
        let Some(current) = &self.current else {
            return;
        };
        let done = current
            .arrived
            .iter()
            .zip(&self.finished)
            .all(|(&arrived, &finished)| arrived || finished);
        if done {
            outcome.aligned = Some(current.barrier);
            outcome.timing = BarrierArrival {
                first_barrier_ms: current.first_barrier_ms,
                alignment_ms: u64::try_from(current.first_at.elapsed().as_millis())
                    .unwrap_or(u64::MAX),
            };
            outcome.resume.extend(blocked(self.mode, &current.arrived));
            self.last = current.barrier.id;
            self.current = None;
        }
    }
}

/// The channels an alignment blocked.
fn blocked(mode: CheckpointingMode, arrived: &[bool]) -> Vec<usize> {
    match mode {
        CheckpointingMode::ExactlyOnce => (0..arrived.len()).filter(|&c| arrived[c]).collect(),
        CheckpointingMode::AtLeastOnce => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(id: u64) -> CheckpointBarrier {
        CheckpointBarrier { id, timestamp: 0 }
    }

    #[test]
    fn exactly_once_blocks_each_channel_until_all_delivered() {
        let mut a = BarrierAligner::new(3, CheckpointingMode::ExactlyOnce);
        assert_eq!(a.on_barrier(1, b(1)).block, Some(1));
        assert_eq!(a.on_barrier(0, b(1)).block, Some(0));
        let done = a.on_barrier(2, b(1));
        assert_eq!(done.aligned, Some(b(1)));
        assert_eq!(done.block, None);
        assert_eq!(done.resume, vec![0, 1, 2]);
    }

    #[test]
    fn the_aligned_outcome_says_when_the_first_barrier_came() {
        let mut a = BarrierAligner::new(2, CheckpointingMode::ExactlyOnce);
        let before = now_ms();
        let started = Instant::now();
        assert_eq!(a.on_barrier(0, b(1)).timing, BarrierArrival::default());
        let done = a.on_barrier(1, b(1));
        let (after, elapsed) = (now_ms(), started.elapsed().as_millis() as u64);
        let first = done.timing.first_barrier_ms;
        assert!(
            (before..=after).contains(&first),
            "{before} <= {first} <= {after}"
        );
        assert!(done.timing.alignment_ms <= elapsed);
    }

    #[test]
    fn a_finished_channel_counts_as_aligned() {
        let mut a = BarrierAligner::new(2, CheckpointingMode::ExactlyOnce);
        assert_eq!(a.on_barrier(0, b(4)).aligned, None);
        let done = a.on_channel_finished(1);
        assert_eq!(done.aligned, Some(b(4)));
        assert_eq!(done.resume, vec![0]);
        // Later checkpoints align on the live channel alone.
        assert_eq!(a.on_barrier(0, b(5)).aligned, Some(b(5)));
    }

    #[test]
    fn at_least_once_never_blocks() {
        let mut a = BarrierAligner::new(2, CheckpointingMode::AtLeastOnce);
        assert_eq!(a.on_barrier(0, b(1)), Alignment::default());
        let done = a.on_barrier(1, b(1));
        assert_eq!(done.aligned, Some(b(1)));
        assert!(done.resume.is_empty());
    }

    #[test]
    fn a_newer_barrier_gives_the_older_alignment_up() {
        let mut a = BarrierAligner::new(2, CheckpointingMode::ExactlyOnce);
        a.on_barrier(0, b(1));
        let next = a.on_barrier(1, b(2));
        assert_eq!(next.resume, vec![0], "channel 0 was held for checkpoint 1");
        assert_eq!(next.block, Some(1));
        assert_eq!(a.on_barrier(0, b(1)), Alignment::default(), "stale");
        assert_eq!(a.on_barrier(0, b(2)).aligned, Some(b(2)));
    }
}
