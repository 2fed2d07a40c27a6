//! [`BarrierAligner`]: decides when a task with several input channels has received
//! a checkpoint's barrier from all of them, which channels to hold back meanwhile
//! (aligned), or when to snapshot at once and which channels' in-flight records to
//! record as channel state (unaligned, or aligned past its timeout).

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
    /// Every live channel delivered this barrier: acknowledge it (snapshot and
    /// forward it first unless `unaligned_snapshot` did already).
    pub(crate) aligned: Option<CheckpointBarrier>,
    /// The checkpoint goes unaligned now: snapshot and forward its barrier (as a
    /// priority event) at once.
    pub(crate) unaligned_snapshot: Option<CheckpointBarrier>,
    /// Channels whose channel state is recorded from now on (after the snapshot).
    pub(crate) record: Vec<usize>,
    /// Channels that delivered the unaligned checkpoint's barrier or ended: their
    /// recorded channel state is complete.
    pub(crate) end_record: Vec<usize>,
    /// An unaligned checkpoint in progress was given up (a newer one came): drop
    /// its snapshot and channel state.
    pub(crate) discard: bool,
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
    /// Whether it went unaligned (snapshot taken, channels not blocked).
    unaligned: bool,
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

    /// Barrier `barrier` arrived on `channel`; `unaligned`: the checkpoint is to be
    /// unaligned from now on (the barrier came as a priority event, or unaligned
    /// checkpoints are on and it is past the aligned-checkpoint timeout).
    pub(crate) fn on_barrier(
        &mut self,
        channel: usize,
        barrier: CheckpointBarrier,
        unaligned: bool,
    ) -> Alignment {
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
            outcome.discard = old.unaligned;
            if !old.unaligned {
                outcome.resume = blocked(self.mode, &old.arrived);
            }
        }
        let channels = self.finished.len();
        let current = self.current.get_or_insert_with(|| Current {
            barrier,
            arrived: vec![false; channels],
            first_at: Instant::now(),
            first_barrier_ms: now_ms(),
            unaligned: false,
        });
        if unaligned && !current.unaligned {
            Self::go_unaligned(self.mode, current, &self.finished, &mut outcome);
        }
        current.arrived[channel] = true;
        let is_unaligned = current.unaligned;
        if is_unaligned {
            outcome.end_record.push(channel);
        }
        outcome.resume.retain(|&c| c != channel);
        self.complete_if_aligned(&mut outcome);
        if outcome.aligned.is_none() && !is_unaligned && self.mode == CheckpointingMode::ExactlyOnce
        {
            outcome.block = Some(channel);
        }
        outcome
    }

    /// The checkpoint being aligned, while it is still aligned (for the
    /// aligned-checkpoint timeout).
    pub(crate) fn aligning(&self) -> Option<CheckpointBarrier> {
        self.current
            .as_ref()
            .filter(|c| !c.unaligned)
            .map(|c| c.barrier)
    }

    /// The aligned checkpoint in progress timed out: it goes unaligned.
    pub(crate) fn time_out(&mut self) -> Alignment {
        let mut outcome = Alignment::default();
        if let Some(current) = self.current.as_mut().filter(|c| !c.unaligned) {
            Self::go_unaligned(self.mode, current, &self.finished, &mut outcome);
        }
        outcome
    }

    /// Switches `current` to unaligned: snapshot now, record every channel that has
    /// not delivered the barrier yet, release the blocked ones.
    fn go_unaligned(
        mode: CheckpointingMode,
        current: &mut Current,
        finished: &[bool],
        outcome: &mut Alignment,
    ) {
        current.unaligned = true;
        outcome.unaligned_snapshot = Some(current.barrier);
        outcome.record = (0..finished.len())
            .filter(|&c| !current.arrived[c] && !finished[c])
            .collect();
        outcome.resume.extend(blocked(mode, &current.arrived));
    }

    /// `channel` delivered its end of input.
    pub(crate) fn on_channel_finished(&mut self, channel: usize) -> Alignment {
        self.finished[channel] = true;
        let mut outcome = Alignment::default();
        if let Some(current) = &self.current
            && current.unaligned
            && !current.arrived[channel]
        {
            // Everything it delivered since the snapshot was in flight.
            outcome.end_record.push(channel);
        }
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
                persisted_data: 0,
            };
            if !current.unaligned {
                outcome.resume.extend(blocked(self.mode, &current.arrived));
            }
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
        CheckpointBarrier::new(id, 0)
    }

    #[test]
    fn exactly_once_blocks_each_channel_until_all_delivered() {
        let mut a = BarrierAligner::new(3, CheckpointingMode::ExactlyOnce);
        assert_eq!(a.on_barrier(1, b(1), false).block, Some(1));
        assert_eq!(a.on_barrier(0, b(1), false).block, Some(0));
        let done = a.on_barrier(2, b(1), false);
        assert_eq!(done.aligned, Some(b(1)));
        assert_eq!(done.block, None);
        assert_eq!(done.resume, vec![0, 1, 2]);
    }

    #[test]
    fn the_aligned_outcome_says_when_the_first_barrier_came() {
        let mut a = BarrierAligner::new(2, CheckpointingMode::ExactlyOnce);
        let before = now_ms();
        let started = Instant::now();
        assert_eq!(
            a.on_barrier(0, b(1), false).timing,
            BarrierArrival::default()
        );
        let done = a.on_barrier(1, b(1), false);
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
        assert_eq!(a.on_barrier(0, b(4), false).aligned, None);
        let done = a.on_channel_finished(1);
        assert_eq!(done.aligned, Some(b(4)));
        assert_eq!(done.resume, vec![0]);
        // Later checkpoints align on the live channel alone.
        assert_eq!(a.on_barrier(0, b(5), false).aligned, Some(b(5)));
    }

    #[test]
    fn at_least_once_never_blocks() {
        let mut a = BarrierAligner::new(2, CheckpointingMode::AtLeastOnce);
        assert_eq!(a.on_barrier(0, b(1), false), Alignment::default());
        let done = a.on_barrier(1, b(1), false);
        assert_eq!(done.aligned, Some(b(1)));
        assert!(done.resume.is_empty());
    }

    #[test]
    fn unaligned_snapshots_at_the_first_barrier_and_records_the_other_channels() {
        let mut a = BarrierAligner::new(3, CheckpointingMode::ExactlyOnce);
        a.on_channel_finished(2);
        let first = a.on_barrier(1, b(1), true);
        assert_eq!(first.unaligned_snapshot, Some(b(1)));
        assert_eq!(first.block, None, "nothing is blocked");
        assert_eq!(first.record, vec![0, 1]);
        assert_eq!(first.end_record, vec![1], "its own overtaken buffers");
        assert_eq!(first.aligned, None);
        let last = a.on_barrier(0, b(1), false);
        assert_eq!(last.unaligned_snapshot, None, "taken once");
        assert_eq!(last.end_record, vec![0]);
        assert_eq!(last.aligned, Some(b(1)));
        assert!(last.resume.is_empty());
    }

    #[test]
    fn an_aligned_checkpoint_times_out_into_an_unaligned_one() {
        let mut a = BarrierAligner::new(3, CheckpointingMode::ExactlyOnce);
        assert_eq!(a.aligning(), None);
        assert_eq!(a.on_barrier(0, b(2), false).block, Some(0));
        assert_eq!(a.aligning(), Some(b(2)));
        let switched = a.time_out();
        assert_eq!(switched.unaligned_snapshot, Some(b(2)));
        assert_eq!(switched.record, vec![1, 2]);
        assert_eq!(switched.resume, vec![0], "the blocked channel flows again");
        assert_eq!(a.aligning(), None);
        assert_eq!(a.on_barrier(1, b(2), false).end_record, vec![1]);
        let done = a.on_channel_finished(2);
        assert_eq!(done.end_record, vec![2]);
        assert_eq!(done.aligned, Some(b(2)));
    }

    #[test]
    fn a_newer_barrier_discards_an_unaligned_checkpoint_in_progress() {
        let mut a = BarrierAligner::new(2, CheckpointingMode::ExactlyOnce);
        a.on_barrier(0, b(1), true);
        let next = a.on_barrier(1, b(2), true);
        assert!(next.discard);
        assert_eq!(next.unaligned_snapshot, Some(b(2)));
        assert_eq!(next.record, vec![0, 1]);
    }

    #[test]
    fn a_newer_barrier_gives_the_older_alignment_up() {
        let mut a = BarrierAligner::new(2, CheckpointingMode::ExactlyOnce);
        a.on_barrier(0, b(1), false);
        let next = a.on_barrier(1, b(2), false);
        assert_eq!(next.resume, vec![0], "channel 0 was held for checkpoint 1");
        assert_eq!(next.block, Some(1));
        assert_eq!(a.on_barrier(0, b(1), false), Alignment::default(), "stale");
        assert_eq!(a.on_barrier(0, b(2), false).aligned, Some(b(2)));
    }
}
