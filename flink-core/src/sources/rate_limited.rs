//! [`RateLimitedSource`]: any source, read at most at a given rate, as Flink's
//! `RateLimiterStrategy` limits a source's readers.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use crate::checkpoint::StateError;
use crate::clock::Clock;
use crate::operator::RuntimeContext;
use crate::source::{Boundedness, Source, SourceOutput, SourcePoll, SourceReader};

mod inner_context;
mod position;
#[cfg(test)]
mod position_after_tests;
mod reread;

use inner_context::inner_context;
use position::RatePosition;
use reread::RereadBatch;

/// How fast a source may emit: no limit, or at most a number of records per second
/// over all parallel readers (each reader gets an equal share), with bursts of at
/// most a tenth of a second's worth.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimiterStrategy {
    records_per_second: Option<f64>,
}

/// A rate that cannot be a limit.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("a source rate limit must be a positive, finite number of records per second, got {0}")]
pub struct InvalidRate(pub f64);

impl RateLimiterStrategy {
    /// No limit.
    pub fn no_op() -> Self {
        Self {
            records_per_second: None,
        }
    }

    /// At most `records_per_second` over all readers of the source.
    ///
    /// # Errors
    /// When the rate is zero, negative or not finite.
    pub fn per_second(records_per_second: f64) -> Result<Self, InvalidRate> {
        if records_per_second.is_finite() && records_per_second > 0.0 {
            Ok(Self {
                records_per_second: Some(records_per_second),
            })
        } else {
            Err(InvalidRate(records_per_second))
        }
    }

    /// The limit over all readers, if any.
    pub fn records_per_second(&self) -> Option<f64> {
        self.records_per_second
    }
}

/// A source whose readers emit at most at the rate of a [`RateLimiterStrategy`]
/// (a token bucket on the job's clock). Each reader holds back at most one batch of
/// its inner reader while it waits for tokens.
///
/// A checkpoint taken while part of a batch is held saves the inner reader's
/// position after the records that went out, when the inner reader can give it
/// ([`SourceReader::snapshot_position_after`]; Kafka, file, sequence, generator
/// and collection readers do): the restored
/// reader goes on from there, at any parallelism its inner source restores at.
/// Otherwise it saves the position before the batch and how many of its records
/// went out. It restores at another parallelism when its inner source does
/// ([`Source::can_restore_rescaled`]): such a half-emitted batch is re-read from
/// the position before it by a fresh inner reader, which then hands the position
/// after the batch to the new reader, so every record not emitted before the
/// savepoint is emitted exactly once after it. Re-reading needs an inner source
/// that reads the same first batch again from a position (the Nexmark source does),
/// and emits the batch's dead letters again.
///
/// ```
/// use flink_core::prelude::*;
/// use flink_core::sources::{GeneratorSource, RateLimiterStrategy};
///
/// let env = StreamExecutionEnvironment::new();
/// let paced = env.from_source(
///     GeneratorSource::bounded(0..1_000, |i| i * 2).rate_limited(RateLimiterStrategy::per_second(10_000.0).unwrap()),
///     "paced",
/// );
/// # let _ = paced;
/// ```
pub struct RateLimitedSource<S> {
    /// Shared with the readers, which create fresh inner readers to re-read
    /// batches on a rescaled restore.
    inner: Arc<S>,
    strategy: RateLimiterStrategy,
}

impl<S> RateLimitedSource<S> {
    /// `inner`, limited by `strategy`.
    pub fn new(inner: S, strategy: RateLimiterStrategy) -> Self {
        Self {
            inner: Arc::new(inner),
            strategy,
        }
    }
}

impl<T: Send + 'static, S: Source<T>> Source<T> for RateLimitedSource<S> {
    fn boundedness(&self) -> Boundedness {
        self.inner.boundedness()
    }

    fn is_parallel(&self) -> bool {
        self.inner.is_parallel()
    }

    /// The inner source's: see the type's documentation for how held batches are
    /// dealt out.
    fn can_restore_rescaled(&self) -> bool {
        self.inner.can_restore_rescaled()
    }

    fn timestamps(&self) -> Option<crate::watermark::TimestampFn<T>> {
        self.inner.timestamps()
    }

    fn create_reader(&self, ctx: &RuntimeContext) -> Box<dyn SourceReader<T>> {
        let Some(rate) = self.strategy.records_per_second else {
            return self.inner.create_reader(ctx);
        };
        let reader = self.inner.create_reader(&inner_context(ctx));
        let rate = rate / ctx.parallelism as f64;
        let (source, mut context) = (self.inner.clone(), ctx.clone());
        // Readers restore from what they are given, not from the context:
        // the saved positions need not live as long as the reader.
        context.restored = crate::checkpoint::RestoredState::none();
        let fresh: FreshReader<T> = Box::new(move || source.create_reader(&context));
        Box::new(RateLimitedReader::new(
            reader,
            fresh,
            rate,
            ctx.services.clock.clone(),
        ))
    }
}

/// Creates a fresh inner reader of the same subtask.
type FreshReader<T> = Box<dyn Fn() -> Box<dyn SourceReader<T>> + Send>;

struct RateLimitedReader<T> {
    inner: Box<dyn SourceReader<T>>,
    /// Fresh inner readers, for re-reading held batches on a restore.
    fresh: FreshReader<T>,
    /// What is left of batches re-read at the restore; emitted before the inner
    /// reader is polled.
    reread: VecDeque<RereadBatch<T>>,
    /// Records read from the inner reader, not yet emitted.
    held: VecDeque<T>,
    /// The inner reader's position before it read the held records (taken only
    /// when the inner reader can be checkpointed).
    held_from: Option<Vec<u8>>,
    /// How many records the inner reader's last poll gave.
    held_len: usize,
    scratch: SourceOutput<T>,
    inner_finished: bool,
    rate: f64,
    burst: f64,
    tokens: f64,
    last_refill: Duration,
    clock: Arc<dyn Clock>,
}

impl<T> RateLimitedReader<T> {
    /// Reads `inner` at `rate` records per second, with bursts of a tenth of a
    /// second's worth.
    fn new(
        inner: Box<dyn SourceReader<T>>,
        fresh: FreshReader<T>,
        rate: f64,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let burst = (rate / 10.0).max(1.0);
        Self {
            inner,
            fresh,
            reread: VecDeque::new(),
            held: VecDeque::new(),
            held_from: None,
            held_len: 0,
            scratch: SourceOutput::new(),
            inner_finished: false,
            rate,
            burst,
            tokens: burst,
            last_refill: clock.now(),
            clock,
        }
    }

    fn refill(&mut self) {
        let now = self.clock.now();
        let elapsed = now.saturating_sub(self.last_refill).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last_refill = now;
    }

    /// Until the next whole token.
    fn wait_for_token(&self) -> Duration {
        Duration::from_secs_f64(((1.0 - self.tokens) / self.rate).max(0.0))
    }

    /// Whether nothing read is waiting to go out.
    fn nothing_held(&self) -> bool {
        self.reread.is_empty() && self.held.is_empty()
    }

    /// The position now; `checkpoint_id` is handed to the inner reader when its
    /// own position is taken.
    fn position(&mut self, checkpoint_id: Option<u64>) -> Result<Option<Vec<u8>>, StateError> {
        let (inner, skip) = if self.held.is_empty() {
            let inner = match checkpoint_id {
                Some(id) => self.inner.snapshot_position_for_checkpoint(id)?,
                None => self.inner.snapshot_position()?,
            };
            (inner, 0)
        } else {
            self.held_position(checkpoint_id)?
        };
        let reread = self
            .reread
            .iter()
            .map(|b| (b.from.clone(), b.emitted))
            .collect();
        match inner {
            Some(inner) => RatePosition {
                inner: Some(inner),
                skip,
                reread,
            }
            .encode()
            .map(Some),
            None => Ok(None),
        }
    }

    /// The position while records of the inner reader's last batch are held: the
    /// inner reader's position after the records that went out, if it can say
    /// (nothing to re-read then); else the position before the batch with the
    /// number of its records out, to re-read it on restore.
    fn held_position(
        &mut self,
        checkpoint_id: Option<u64>,
    ) -> Result<(Option<Vec<u8>>, usize), StateError> {
        let out = self.held_len - self.held.len();
        let after = match checkpoint_id {
            Some(id) => self.inner.snapshot_position_after_for_checkpoint(id, out)?,
            None => self.inner.snapshot_position_after(out)?,
        };
        Ok(match after {
            Some(after) => (Some(after), 0),
            None => (self.held_from.clone(), out),
        })
    }

    /// Re-reads the batches a position names with their continuation elsewhere.
    fn reread_batches(&mut self, position: &RatePosition) -> Result<(), StateError> {
        for (from, skip) in &position.reread {
            let (batch, _) = reread::reread((self.fresh)(), from, *skip)?;
            self.keep(batch);
        }
        Ok(())
    }

    /// Keeps a re-read batch to emit first, unless nothing of it is left.
    fn keep(&mut self, batch: RereadBatch<T>) {
        if !batch.records.is_empty() {
            self.reread.push_back(batch);
        }
    }
}

impl<T: Send> SourceReader<T> for RateLimitedReader<T> {
    fn poll_next(&mut self, out: &mut SourceOutput<T>) -> SourcePoll {
        if self.nothing_held() && !self.inner_finished {
            self.held_from = self.inner.snapshot_position().ok().flatten();
            match self.inner.poll_next(&mut self.scratch) {
                SourcePoll::Finished => self.inner_finished = true,
                SourcePoll::Pending(wait) if self.scratch.is_empty() => {
                    return SourcePoll::Pending(wait);
                }
                SourcePoll::MoreAvailable | SourcePoll::Pending(_) => {}
            }
            // Drained, not taken: the scratch batch keeps its allocation.
            self.held_len = self.scratch.len();
            self.held.extend(self.scratch.batch.drain(..));
        }
        self.refill();
        let tokens = self.tokens.floor() as usize;
        let sent = reread::emit(&mut self.reread, tokens, out);
        let n = (tokens - sent).min(self.held.len());
        self.tokens -= (sent + n) as f64;
        out.batch.extend(self.held.drain(..n));
        if self.nothing_held() && self.inner_finished {
            SourcePoll::Finished
        } else if self.tokens < 1.0 {
            SourcePoll::Pending(self.wait_for_token())
        } else {
            SourcePoll::MoreAvailable
        }
    }

    /// The inner position after the held records that went out (or before them,
    /// with how many went out, for an inner reader that cannot say), and the
    /// batches re-read at a restore that are still held.
    fn snapshot_position(&mut self) -> Result<Option<Vec<u8>>, StateError> {
        self.position(None)
    }

    /// As [`snapshot_position`](Self::snapshot_position); the inner reader learns
    /// the checkpoint id with the position taken (a Kafka reader then commits this
    /// checkpoint's offsets on completion, those after the records that went out;
    /// an inner reader that cannot give a position after part of its batch learns
    /// nothing while records are held, and a later checkpoint's commit covers it).
    fn snapshot_position_for_checkpoint(
        &mut self,
        checkpoint_id: u64,
    ) -> Result<Option<Vec<u8>>, StateError> {
        self.position(Some(checkpoint_id))
    }

    /// The inner reader learns of completed checkpoints (a Kafka reader commits).
    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) {
        self.inner.notify_checkpoint_complete(checkpoint_id);
    }

    /// Re-reads the batches still held at the restore before, restores the inner
    /// reader, then re-reads and drops what had gone out of its next batch.
    fn restore_position(&mut self, position: &[u8]) -> Result<(), StateError> {
        let position = RatePosition::decode(position)?;
        self.reread_batches(&position)?;
        let Some(inner) = position.inner else {
            return Err(StateError::Corrupt("no inner position".into()));
        };
        self.inner.restore_position(&inner)?;
        if position.skip > 0 {
            self.held_from = Some(inner);
            if self.inner.poll_next(&mut self.scratch) == SourcePoll::Finished {
                self.inner_finished = true;
            }
            self.held_len = self.scratch.len();
            if self.held_len < position.skip {
                return Err(StateError::Corrupt(format!(
                    "the source re-read {} records where {} had been emitted",
                    self.held_len, position.skip
                )));
            }
            self.held.extend(self.scratch.batch.drain(position.skip..));
            self.scratch.batch.clear();
        }
        Ok(())
    }

    /// Takes over the positions of readers of a run at another parallelism: each
    /// half-emitted batch is re-read by a fresh inner reader (its rest is emitted
    /// first), and the inner reader takes over the positions after those batches
    /// with the positions of readers that held nothing.
    fn restore_rescaled(&mut self, positions: &[&[u8]]) -> Result<(), StateError> {
        let mut continued = Vec::with_capacity(positions.len());
        for bytes in positions {
            let position = RatePosition::decode(bytes)?;
            self.reread_batches(&position)?;
            let Some(inner) = position.inner else {
                return Err(StateError::Corrupt("no inner position".into()));
            };
            if position.skip == 0 {
                continued.push(inner);
                continue;
            }
            let (batch, after) = reread::reread((self.fresh)(), &inner, position.skip)?;
            self.keep(batch);
            continued.push(after.ok_or_else(|| {
                StateError::Corrupt("the re-read inner reader has no position".into())
            })?);
        }
        let continued: Vec<&[u8]> = continued.iter().map(Vec::as_slice).collect();
        self.inner.restore_rescaled(&continued)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::clock::ManualClock;

    /// An inner reader that records the checkpoint calls it gets.
    struct Recording(Arc<Mutex<Vec<String>>>);

    impl SourceReader<u64> for Recording {
        fn poll_next(&mut self, _out: &mut SourceOutput<u64>) -> SourcePoll {
            SourcePoll::Pending(Duration::ZERO)
        }

        fn snapshot_position(&mut self) -> Result<Option<Vec<u8>>, StateError> {
            self.0.lock().unwrap().push("snapshot".into());
            Ok(Some(vec![1]))
        }

        fn snapshot_position_for_checkpoint(
            &mut self,
            checkpoint_id: u64,
        ) -> Result<Option<Vec<u8>>, StateError> {
            self.0
                .lock()
                .unwrap()
                .push(format!("snapshot {checkpoint_id}"));
            Ok(Some(vec![1]))
        }

        fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) {
            self.0
                .lock()
                .unwrap()
                .push(format!("complete {checkpoint_id}"));
        }
    }

    #[test]
    fn the_inner_reader_learns_checkpoint_ids_and_completions() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let clock = Arc::new(ManualClock::new());
        let fresh: FreshReader<u64> = Box::new(|| unreachable!("no restore"));
        let mut reader =
            RateLimitedReader::new(Box::new(Recording(calls.clone())), fresh, 10.0, clock);
        assert!(
            reader
                .snapshot_position_for_checkpoint(7)
                .unwrap()
                .is_some()
        );
        reader.notify_checkpoint_complete(7);
        assert_eq!(*calls.lock().unwrap(), ["snapshot 7", "complete 7"]);
    }

    /// Records of the paced sequences below; 10,000 per second over all readers,
    /// so each reader's burst is smaller than a batch of the sequence.
    const N: u64 = 20_000;

    type Sequence = crate::sources::GeneratorSource<fn(u64) -> u64>;

    fn sequence() -> Sequence {
        let identity: fn(u64) -> u64 = |i| i;
        crate::sources::GeneratorSource::bounded(0..N, identity)
    }

    /// A sequence whose readers cannot say where they are after part of a batch
    /// (the default of `snapshot_position_after`): the wrapper re-reads held batches.
    struct Rereading(Sequence);

    impl Source<u64> for Rereading {
        fn boundedness(&self) -> Boundedness {
            Source::<u64>::boundedness(&self.0)
        }

        fn can_restore_rescaled(&self) -> bool {
            true
        }

        fn create_reader(&self, ctx: &RuntimeContext) -> Box<dyn SourceReader<u64>> {
            Box::new(NoPositionAfter(self.0.create_reader(ctx)))
        }
    }

    struct NoPositionAfter(Box<dyn SourceReader<u64>>);

    impl SourceReader<u64> for NoPositionAfter {
        fn poll_next(&mut self, out: &mut SourceOutput<u64>) -> SourcePoll {
            self.0.poll_next(out)
        }

        fn snapshot_position(&mut self) -> Result<Option<Vec<u8>>, StateError> {
            self.0.snapshot_position()
        }

        fn restore_position(&mut self, position: &[u8]) -> Result<(), StateError> {
            self.0.restore_position(position)
        }

        fn restore_rescaled(&mut self, positions: &[&[u8]]) -> Result<(), StateError> {
            self.0.restore_rescaled(positions)
        }
    }

    type Paced = RateLimitedSource<Rereading>;

    fn strategy() -> RateLimiterStrategy {
        RateLimiterStrategy::per_second(10_000.0).unwrap()
    }

    fn paced() -> Paced {
        Rereading(sequence()).rate_limited(strategy())
    }

    fn reader(
        source: &impl Source<u64>,
        clock: &Arc<ManualClock>,
        i: usize,
        p: usize,
    ) -> Box<dyn SourceReader<u64>> {
        source.create_reader(&RuntimeContext::standalone("paced", i, p, clock.clone()))
    }

    /// Polls `polls` times, a second apart (a full burst each time).
    fn poll(r: &mut dyn SourceReader<u64>, clock: &ManualClock, polls: usize) -> Vec<u64> {
        let mut out = SourceOutput::new();
        for _ in 0..polls {
            r.poll_next(&mut out);
            clock.advance(Duration::from_secs(1));
        }
        out.take()
    }

    fn drain(r: &mut dyn SourceReader<u64>, clock: &ManualClock) -> Vec<u64> {
        let mut out = SourceOutput::new();
        while r.poll_next(&mut out) != SourcePoll::Finished {
            clock.advance(Duration::from_secs(1));
        }
        out.take()
    }

    /// Readers of `p` restored from `saved` (saved subtask `j` to reader `j % p`).
    fn restored(
        source: &impl Source<u64>,
        clock: &Arc<ManualClock>,
        saved: &[Vec<u8>],
        p: usize,
    ) -> Vec<Box<dyn SourceReader<u64>>> {
        (0..p)
            .map(|i| {
                let mut r = reader(source, clock, i, p);
                let mine: Vec<&[u8]> = crate::source::dealt_to(saved.iter(), i, p)
                    .map(Vec::as_slice)
                    .collect();
                r.restore_rescaled(&mine).unwrap();
                r
            })
            .collect()
    }

    /// Two readers polled `polls[i]` times each, then saved: what they emitted and
    /// their positions.
    fn saved_at_two(
        source: &impl Source<u64>,
        clock: &Arc<ManualClock>,
        polls: [usize; 2],
    ) -> (Vec<u64>, Vec<Vec<u8>>) {
        let (mut emitted, mut saved) = (Vec::new(), Vec::new());
        for (i, polls) in polls.into_iter().enumerate() {
            let mut r = reader(source, clock, i, 2);
            emitted.extend(poll(&mut *r, clock, polls));
            saved.push(r.snapshot_position().unwrap().unwrap());
        }
        (emitted, saved)
    }

    fn assert_exactly_once(mut all: Vec<u64>, what: &str) {
        all.sort_unstable();
        assert_eq!(all, (0..N).collect::<Vec<_>>(), "{what}");
    }

    #[test]
    fn can_restore_rescaled_is_the_inner_sources() {
        assert!(Source::<u64>::can_restore_rescaled(&paced()));
        let items = crate::sources::IteratorSource::new(vec![1u64].into_iter())
            .rate_limited(RateLimiterStrategy::per_second(1.0).unwrap());
        assert!(!Source::<u64>::can_restore_rescaled(&items));
    }

    #[test]
    fn positions_saved_mid_batch_at_two_restore_at_any_parallelism_exactly_once() {
        let source = paced();
        let clock = Arc::new(ManualClock::new());
        // Bursts of 500 of batches of 1,024: 4 polls end 500 records into the
        // second batch, 3 polls at the end of the first, 1 poll 500 into it.
        for polls in [[4, 1], [4, 3], [1, 1]] {
            let (emitted, saved) = saved_at_two(&source, &clock, polls);
            let skips: Vec<usize> = saved
                .iter()
                .map(|s| RatePosition::decode(s).unwrap().skip)
                .collect();
            let expected = polls.map(|n| [0, 500, 500, 0, 500][n]);
            assert_eq!(skips, expected, "{polls:?}");
            for p in [1, 3, 4] {
                let mut all = emitted.clone();
                for mut r in restored(&source, &clock, &saved, p) {
                    all.extend(drain(&mut *r, &clock));
                }
                assert_exactly_once(all, &format!("{polls:?} restored at {p}"));
            }
        }
    }

    #[test]
    fn a_sequence_saved_mid_batch_saves_its_position_after_and_restores_exactly_once() {
        // The sequence's own readers say where they are after part of a batch:
        // nothing to re-read.
        let source = sequence().rate_limited(strategy());
        let clock = Arc::new(ManualClock::new());
        for polls in [[4, 1], [4, 3], [1, 1]] {
            let (emitted, saved) = saved_at_two(&source, &clock, polls);
            for s in &saved {
                let position = RatePosition::decode(s).unwrap();
                assert_eq!((position.skip, position.reread.len()), (0, 0), "{polls:?}");
            }
            for p in [1, 2, 3] {
                let mut all = emitted.clone();
                for mut r in restored(&source, &clock, &saved, p) {
                    all.extend(drain(&mut *r, &clock));
                }
                assert_exactly_once(all, &format!("{polls:?} restored at {p}"));
            }
        }
    }

    #[test]
    fn a_position_taken_while_reread_batches_are_held_restores_exactly_once() {
        let source = paced();
        let clock = Arc::new(ManualClock::new());
        let (mut emitted, saved) = saved_at_two(&source, &clock, [4, 1]);
        // At 3, bursts of 333: each taken-over reader emits part of its re-read
        // batch, then is saved again.
        let mut again = Vec::new();
        for mut r in restored(&source, &clock, &saved, 3) {
            emitted.extend(poll(&mut *r, &clock, 1));
            again.push(r.snapshot_position().unwrap().unwrap());
        }
        let reread: Vec<Vec<usize>> = again
            .iter()
            .map(|s| {
                let position = RatePosition::decode(s).unwrap();
                assert_eq!(position.skip, 0);
                position.reread.iter().map(|(_, skip)| *skip).collect()
            })
            .collect();
        assert_eq!(reread, [vec![500 + 333], vec![500 + 333], vec![]]);
        for p in [1, 2, 4] {
            let mut all = emitted.clone();
            for mut r in restored(&source, &clock, &again, p) {
                all.extend(drain(&mut *r, &clock));
            }
            assert_exactly_once(all, &format!("restored at {p}"));
        }
        // At the same parallelism, each reader restores its own position.
        let mut all = emitted.clone();
        for (i, position) in again.iter().enumerate() {
            let mut r = reader(&source, &clock, i, 3);
            r.restore_position(position).unwrap();
            all.extend(drain(&mut *r, &clock));
        }
        assert_exactly_once(all, "restored at 3");
    }
}
