use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use crate::checkpoint::{StateError, decode_state, encode_state};
use crate::functions::Collector;
use crate::operator::RuntimeContext;
use crate::source::{Boundedness, Source, SourceOutput, SourcePoll, SourceReader};
use crate::sources::BATCH;
use crate::watermark::{
    DEFAULT_AUTO_WATERMARK_INTERVAL, SplitWatermarks, TimestampFn, WatermarkStrategy,
};

/// Emits `f(i)` for each index `i` of a range (or of `0..` when unbounded). The range
/// is split into contiguous, equal shares among the parallel readers, so every index
/// is emitted exactly once whatever the parallelism.
pub struct GeneratorSource<F> {
    range: Option<Range<u64>>,
    f: Arc<F>,
}

impl<F> GeneratorSource<F> {
    /// A bounded generator over `range`.
    pub fn bounded(range: Range<u64>, f: F) -> Self {
        Self {
            range: Some(range),
            f: Arc::new(f),
        }
    }

    /// An unbounded generator over `0..`; each reader `i` of `p` emits indices `i, i+p, ..`.
    pub fn unbounded(f: F) -> Self {
        Self {
            range: None,
            f: Arc::new(f),
        }
    }

    /// Makes watermarks in the source, per split, as Flink's
    /// `env.fromSource(source, watermarkStrategy, ..)`: each split a reader reads
    /// (its own share; after a restore at a lower parallelism, the shares of the
    /// readers it took over) has its own generator, and the reader emits the
    /// minimum over its unfinished splits, so a split that is behind in event time
    /// holds the watermark back instead of having its records dropped as late. The
    /// strategy's timestamp assigner (required) stamps the records, as after
    /// `assign_timestamps_and_watermarks`.
    ///
    /// ```
    /// use flink_core::prelude::*;
    /// use flink_core::sources::SequenceSource;
    /// use flink_core::watermark::WatermarkStrategy;
    ///
    /// let env = StreamExecutionEnvironment::new();
    /// let numbers = env.from_source(
    ///     SequenceSource::range(0, 999)
    ///         .with_watermarks(WatermarkStrategy::monotonous(|x: &u64| *x as i64)),
    ///     "numbers",
    /// );
    /// # let _ = numbers;
    /// ```
    pub fn with_watermarks<T>(
        self,
        strategy: WatermarkStrategy<T>,
    ) -> WatermarkedGeneratorSource<F, T>
    where
        F: Fn(u64) -> T,
    {
        WatermarkedGeneratorSource {
            inner: self,
            strategy,
            interval: DEFAULT_AUTO_WATERMARK_INTERVAL,
        }
    }

    /// A reader of this source's share for subtask `ctx.subtask_index`.
    fn reader<T: 'static>(
        &self,
        ctx: &RuntimeContext,
        watermarks: Option<SplitWatermarks<T>>,
    ) -> GeneratorReader<F, T> {
        let (next, end, step) = match &self.range {
            Some(r) => {
                let s = share(r, ctx.subtask_index, ctx.parallelism);
                (s.start, s.end, 1)
            }
            None => (ctx.subtask_index as u64, u64::MAX, ctx.parallelism as u64),
        };
        let mut reader = GeneratorReader {
            last: None,
            next,
            end,
            step,
            index: 0,
            more: VecDeque::new(),
            f: self.f.clone(),
            bounded: self.range.is_some(),
            watermarks,
        };
        reader.index = reader.track();
        reader
    }
}

/// A [`GeneratorSource`] making its watermarks per split
/// ([`GeneratorSource::with_watermarks`]).
pub struct WatermarkedGeneratorSource<F, T> {
    inner: GeneratorSource<F>,
    strategy: WatermarkStrategy<T>,
    interval: Duration,
}

impl<F, T> WatermarkedGeneratorSource<F, T> {
    /// How often the periodic watermark generators run, on the job's clock
    /// (default 200 ms; zero: after every batch). It is the source's setting, not
    /// `env.set_auto_watermark_interval`, as for the Kafka source.
    pub fn watermark_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }
}

impl<T, F> Source<T> for WatermarkedGeneratorSource<F, T>
where
    T: Send + 'static,
    F: Fn(u64) -> T + Send + Sync + 'static,
{
    fn boundedness(&self) -> Boundedness {
        Source::<T>::boundedness(&self.inner)
    }

    fn can_restore_rescaled(&self) -> bool {
        true
    }

    fn timestamps(&self) -> Option<TimestampFn<T>> {
        self.strategy.timestamp_assigner().cloned()
    }

    fn validate(&self) -> Result<(), String> {
        if self.strategy.timestamp_assigner().is_none() {
            return Err(
                "the watermark strategy of a generator source needs a timestamp \
                        assigner (its records have no timestamps of their own)"
                    .into(),
            );
        }
        if self.strategy.idleness().is_some_and(|d| d.is_zero()) {
            return Err("the watermark idleness timeout must be greater than zero".into());
        }
        Ok(())
    }

    fn create_reader(&self, ctx: &RuntimeContext) -> Box<dyn SourceReader<T>> {
        let watermarks = SplitWatermarks::new(
            self.strategy.clone(),
            ctx.services.clock.clone(),
            self.interval,
        );
        Box::new(self.inner.reader(ctx, Some(watermarks)))
    }
}

/// The generator function of a sequence: a zero-sized function item, not a `fn`
/// pointer, so that filling a batch compiles to a plain counting loop rather than an
/// indirect call per record (a third of the `chain` benchmark's time).
#[inline(always)]
fn identity(i: u64) -> u64 {
    i
}

/// The numbers of a range, as a source: `SequenceSource::range(1..=n)` like Flink's
/// `fromSequence(1, n)`.
pub struct SequenceSource;

impl SequenceSource {
    /// A bounded source of every `u64` in `from..=to`.
    pub fn range(
        from: u64,
        to: u64,
    ) -> GeneratorSource<impl Fn(u64) -> u64 + Send + Sync + 'static> {
        GeneratorSource::bounded(from..to.saturating_add(1), identity)
    }

    /// An unbounded source of `0, 1, 2, ..`.
    pub fn unbounded() -> GeneratorSource<impl Fn(u64) -> u64 + Send + Sync + 'static> {
        GeneratorSource::unbounded(identity)
    }
}

/// This reader's share of `range`: contiguous, sizes differing by at most one.
fn share(range: &Range<u64>, index: usize, parallelism: usize) -> Range<u64> {
    let len = range.end.saturating_sub(range.start);
    let (p, i) = (parallelism as u64, index as u64);
    let (base, extra) = (len / p, len % p);
    let start = range.start + i * base + i.min(extra);
    let size = base + u64::from(i < extra);
    start..start + size
}

impl<T, F> Source<T> for GeneratorSource<F>
where
    T: Send + 'static,
    F: Fn(u64) -> T + Send + Sync + 'static,
{
    fn boundedness(&self) -> Boundedness {
        match self.range {
            Some(_) => Boundedness::Bounded,
            None => Boundedness::Unbounded,
        }
    }

    fn can_restore_rescaled(&self) -> bool {
        true
    }

    fn create_reader(&self, ctx: &RuntimeContext) -> Box<dyn SourceReader<T>> {
        Box::new(self.reader(ctx, None))
    }
}

/// The indices `next, next + step, ...` below `end` that a reader has still to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Split {
    next: u64,
    end: u64,
    step: u64,
}

/// A reader's position: the splits it has left, the current one first. After a
/// restore at another parallelism a reader can own several (see
/// [`SourceReader::restore_rescaled`]).
#[derive(serde::Serialize, serde::Deserialize)]
struct GeneratorPosition {
    splits: Vec<Split>,
}

/// Where the split of the last batch went when the batch was done: whether it is
/// the current split, the last of the further ones, or was read to its end and
/// dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Current,
    Last,
    Gone,
}

/// The last batch: its split as it was before it, how many records it had, and
/// where its split went.
#[derive(Debug, Clone, Copy)]
struct LastBatch {
    from: Split,
    records: usize,
    slot: Slot,
}

struct GeneratorReader<F, T> {
    /// The last poll's batch, for the position after part of it.
    last: Option<LastBatch>,
    next: u64,
    end: u64,
    step: u64,
    /// The current split's index in `watermarks`.
    index: usize,
    /// Further splits (with their indices in `watermarks`), read in turn with the
    /// current one (a batch each), so that unbounded splits all advance.
    more: VecDeque<(Split, usize)>,
    f: Arc<F>,
    bounded: bool,
    /// The per-split watermarks, if the source makes them.
    watermarks: Option<SplitWatermarks<T>>,
}

impl<F, T: 'static> GeneratorReader<F, T> {
    fn current(&self) -> Split {
        Split {
            next: self.next,
            end: self.end,
            step: self.step,
        }
    }

    fn set_current(&mut self, split: Split) {
        (self.next, self.end, self.step) = (split.next, split.end, split.step);
    }

    /// The splits left, the current one first.
    fn splits(&self) -> Vec<Split> {
        let mut splits = vec![self.current()];
        splits.extend(self.more.iter().map(|(split, _)| *split));
        splits
    }

    /// The splits had only the first `emitted` records of the last batch gone out:
    /// the batch's split goes back to its first record that did not (a split the
    /// batch read to its end comes back, first).
    ///
    /// # Errors
    /// When `emitted` exceeds the records of the last batch.
    fn splits_after(&self, emitted: usize) -> Result<Vec<Split>, StateError> {
        let mut splits = self.splits();
        let records = self.last.map_or(0, |l| l.records);
        if emitted > records {
            return Err(StateError::Encode(format!(
                "the position after {emitted} records of a batch of {records}"
            )));
        }
        let Some(last) = self.last.filter(|_| emitted < records) else {
            return Ok(splits);
        };
        let back = Split {
            next: last.from.next + emitted as u64 * last.from.step,
            ..last.from
        };
        match last.slot {
            Slot::Current => splits[0] = back,
            Slot::Last => *splits.last_mut().expect("the current split") = back,
            Slot::Gone => splits.insert(0, back),
        }
        Ok(splits)
    }

    /// A watermark generator for the next split; its index (0 without watermarks).
    fn track(&mut self) -> usize {
        self.watermarks.as_mut().map_or(0, SplitWatermarks::track)
    }

    /// Takes `splits` as this reader's work (an empty list: nothing left), each
    /// with a fresh watermark generator.
    fn take_splits(&mut self, splits: Vec<Split>) {
        if let Some(w) = &mut self.watermarks {
            w.clear();
        }
        self.more = splits
            .into_iter()
            .filter(|s| s.next < s.end)
            .map(|s| (s, self.track()))
            .collect();
        let (current, index) = self.more.pop_front().unwrap_or((
            Split {
                next: 0,
                end: 0,
                step: 1,
            },
            usize::MAX,
        ));
        self.set_current(current);
        self.index = index;
    }

    /// Shows the records this poll emitted (from `start` on) to the current
    /// split's generator; a split read to its end stops holding the watermark.
    fn observe(&mut self, out: &SourceOutput<T>, start: usize) {
        if let Some(w) = &mut self.watermarks {
            for record in &out.batch[start..] {
                w.on_record(self.index, record, None);
            }
            if self.next >= self.end {
                w.finish(self.index);
            }
        }
    }
}

impl<T: Send + 'static, F: Fn(u64) -> T + Send + Sync> SourceReader<T> for GeneratorReader<F, T> {
    fn poll_next(&mut self, out: &mut SourceOutput<T>) -> SourcePoll {
        let start = out.batch.len();
        let from = self.current();
        let batch_end = self.end.min(self.next.saturating_add(BATCH * self.step));
        if self.step == 1 {
            // An exact-size range: the batch is filled without per-record checks.
            let f = &*self.f;
            out.batch.extend((self.next..batch_end).map(f));
            self.next = batch_end;
        }
        while self.next < batch_end {
            out.collect((self.f)(self.next));
            self.next += self.step;
        }
        self.observe(out, start);
        let mut slot = Slot::Current;
        if !self.more.is_empty() {
            // Several splits (after a rescaled restore): the next one's turn.
            let current = self.current();
            slot = Slot::Gone;
            if current.next < current.end {
                self.more.push_back((current, self.index));
                slot = Slot::Last;
            }
            let (next, index) = self.more.pop_front().expect("non-empty");
            self.set_current(next);
            self.index = index;
        }
        self.last = Some(LastBatch {
            from,
            records: out.batch.len() - start,
            slot,
        });
        if let Some(w) = &mut self.watermarks {
            w.emit(self.bounded, out);
        }
        if self.next >= self.end {
            SourcePoll::Finished
        } else {
            SourcePoll::MoreAvailable
        }
    }

    fn snapshot_position(&mut self) -> Result<Option<Vec<u8>>, StateError> {
        let splits = self.splits();
        encode_state(&GeneratorPosition { splits }).map(Some)
    }

    /// The split of the last batch back at its first record that did not go out:
    /// a generator has no dead letters, so its position is just that much further.
    fn snapshot_position_after(&mut self, emitted: usize) -> Result<Option<Vec<u8>>, StateError> {
        let splits = self.splits_after(emitted)?;
        encode_state(&GeneratorPosition { splits }).map(Some)
    }

    fn restore_position(&mut self, position: &[u8]) -> Result<(), StateError> {
        match decode_state::<GeneratorPosition>(position) {
            Ok(position) => {
                self.take_splits(position.splits);
                Ok(())
            }
            // Phase 1 stored the next index of the reader's own share alone.
            Err(e) => match decode_state::<u64>(position) {
                Ok(next) if (self.next..=self.end).contains(&next) => {
                    self.next = next;
                    Ok(())
                }
                _ => Err(e),
            },
        }
    }

    /// Takes the splits of every position given: each index left in them is
    /// emitted by exactly one reader of the new parallelism.
    fn restore_rescaled(&mut self, positions: &[&[u8]]) -> Result<(), StateError> {
        let mut splits = Vec::new();
        for position in positions {
            let position: GeneratorPosition = decode_state(position)?;
            splits.extend(position.splits);
        }
        self.take_splits(splits);
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::clock::ManualClock;

    fn context(subtask_index: usize, parallelism: usize) -> RuntimeContext {
        RuntimeContext::standalone(
            "seq",
            subtask_index,
            parallelism,
            Arc::new(ManualClock::new()),
        )
    }

    fn drain(reader: &mut dyn SourceReader<u64>) -> Vec<u64> {
        let mut out = SourceOutput::new();
        while reader.poll_next(&mut out) != SourcePoll::Finished {}
        out.batch
    }

    fn reader(
        source: &GeneratorSource<impl Fn(u64) -> u64 + Send + Sync + 'static>,
        i: usize,
        p: usize,
    ) -> Box<dyn SourceReader<u64>> {
        source.create_reader(&context(i, p))
    }

    /// Readers of `p` restored from `saved` (saved subtask `j` to reader `j % p`),
    /// drained.
    fn restored_and_drained(
        source: &GeneratorSource<impl Fn(u64) -> u64 + Send + Sync + 'static>,
        saved: &[Vec<u8>],
        p: usize,
    ) -> Vec<u64> {
        let mut all = Vec::new();
        for i in 0..p {
            let mut r = reader(source, i, p);
            let mine: Vec<&[u8]> = saved.iter().skip(i).step_by(p).map(Vec::as_slice).collect();
            r.restore_rescaled(&mine).unwrap();
            all.extend(drain(&mut *r));
        }
        all
    }

    #[test]
    fn positions_after_part_of_a_batch_restore_the_rest_exactly_once() {
        // 0..3000 at 2: shares 0..1500 and 1500..3000. A reader of the first share
        // alone keeps its split current. One reader restored with both reads 1,024
        // of the first (it goes last), 1,024 of the second (it goes last), then
        // the first's other 476 (it is read to its end and gone).
        let source = SequenceSource::range(0, 2_999);
        let fresh: Vec<Vec<u8>> = (0..2)
            .map(|i| reader(&source, i, 2).snapshot_position().unwrap().unwrap())
            .collect();
        let both = || {
            let mut r = reader(&source, 0, 1);
            r.restore_rescaled(&[&fresh[0], &fresh[1]]).unwrap();
            r
        };
        let cases: [(Box<dyn SourceReader<u64>>, usize, usize); 4] = [
            (reader(&source, 0, 2), 1, 1_024),
            (both(), 1, 1_024),
            (both(), 2, 1_024),
            (both(), 3, 476),
        ];
        for (case, (mut r, polls, len)) in cases.into_iter().enumerate() {
            let mut out = SourceOutput::new();
            let mut emitted = Vec::new();
            for _ in 0..polls {
                emitted.extend(out.take());
                r.poll_next(&mut out);
            }
            let last = out.take();
            assert_eq!(last.len(), len, "case {case}");
            assert!(r.snapshot_position_after(len + 1).is_err());
            // Of the first reader, the second share was never read.
            let others = if case == 0 {
                vec![fresh[1].clone()]
            } else {
                vec![]
            };
            for cut in [0, 1, 300, len] {
                let mut saved = vec![r.snapshot_position_after(cut).unwrap().unwrap()];
                saved.extend(others.iter().cloned());
                for p in [1, 2, 3] {
                    let mut all = [&emitted[..], &last[..cut]].concat();
                    all.extend(restored_and_drained(&source, &saved, p));
                    all.sort_unstable();
                    assert_eq!(
                        all,
                        (0..3_000).collect::<Vec<_>>(),
                        "case {case}, {cut} at {p}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_phase_one_position_restores_in_the_readers_own_share() {
        let source = SequenceSource::range(0, 99);
        let mut r = reader(&source, 1, 2);
        r.restore_position(&encode_state(&90u64).unwrap()).unwrap();
        assert_eq!(drain(&mut *r), (90..100).collect::<Vec<_>>());
    }

    #[test]
    fn unbounded_splits_dealt_to_fewer_readers_all_advance() {
        let source = SequenceSource::unbounded();
        let saved: Vec<Vec<u8>> = (0..3)
            .map(|i| reader(&source, i, 3).snapshot_position().unwrap().unwrap())
            .collect();
        let mut r = reader(&source, 0, 1);
        let all: Vec<&[u8]> = saved.iter().map(Vec::as_slice).collect();
        r.restore_rescaled(&all).unwrap();
        let mut out = SourceOutput::new();
        for _ in 0..3 {
            r.poll_next(&mut out);
        }
        // One batch of each split: every number below 3 * BATCH exactly once.
        let mut got = out.batch;
        got.sort_unstable();
        assert_eq!(got, (0..3 * BATCH).collect::<Vec<_>>());
    }

    #[test]
    fn positions_saved_at_two_restore_at_any_parallelism_exactly_once() {
        let source = SequenceSource::range(1, 20_000);
        // Two readers, each a batch into its share.
        let mut saved = Vec::new();
        let mut emitted = Vec::new();
        for i in 0..2 {
            let mut r = reader(&source, i, 2);
            let mut out = SourceOutput::new();
            r.poll_next(&mut out);
            emitted.extend(out.batch);
            saved.push(r.snapshot_position().unwrap().unwrap());
        }
        for p in [1, 3, 4] {
            let mut all = emitted.clone();
            for i in 0..p {
                let mut r = reader(&source, i, p);
                let mine: Vec<&[u8]> = crate::source::dealt_to(saved.iter(), i, p)
                    .map(Vec::as_slice)
                    .collect();
                r.restore_rescaled(&mine).unwrap();
                all.extend(drain(&mut *r));
            }
            all.sort_unstable();
            assert_eq!(all, (1..=20_000).collect::<Vec<_>>(), "parallelism {p}");
        }
    }

    #[test]
    fn splits_taken_over_by_one_reader_each_hold_its_watermark_back_until_they_finish() {
        use crate::watermark::Watermark;
        let source = SequenceSource::range(0, 9_999)
            .with_watermarks(WatermarkStrategy::monotonous(|x: &u64| *x as i64))
            .watermark_interval(Duration::ZERO);
        // Saved at 2 before any record: shares 0..5000 and 5000..10000.
        let saved: Vec<Vec<u8>> = (0..2)
            .map(|i| {
                let mut r = source.create_reader(&context(i, 2));
                r.snapshot_position().unwrap().unwrap()
            })
            .collect();
        let mut r = source.create_reader(&context(0, 1));
        let all: Vec<&[u8]> = saved.iter().map(Vec::as_slice).collect();
        r.restore_rescaled(&all).unwrap();
        let (mut watermark, mut records, mut watermarks) = (Watermark::MIN, 0, Vec::new());
        let mut out = SourceOutput::new();
        loop {
            let poll = r.poll_next(&mut out);
            for x in out.take() {
                // Not late: above every watermark emitted before it.
                assert!(x as i64 > watermark.0, "{x} late behind {watermark:?}");
                records += 1;
            }
            if let Some(w) = out.take_watermark() {
                assert!(w > watermark);
                watermark = w;
                watermarks.push(w.0);
            }
            if poll == SourcePoll::Finished {
                break;
            }
        }
        assert_eq!(records, 10_000);
        // Batches alternate between the splits: the first one's records set the
        // watermark while both run; once it finished, the second one's do.
        let (first, second): (Vec<i64>, Vec<i64>) = watermarks.iter().partition(|w| **w < 5_000);
        assert_eq!(first, [1_022, 2_046, 3_070, 4_094]);
        // The last batch finishes the second split: the end of input (not a
        // watermark) then advances event time to the end.
        assert_eq!(second.last(), Some(&9_094), "{second:?}");
    }

    #[test]
    fn a_generator_strategy_without_a_timestamp_assigner_is_refused() {
        let source = SequenceSource::range(0, 9)
            .with_watermarks(WatermarkStrategy::<u64>::for_monotonous_timestamps());
        assert!(Source::<u64>::validate(&source).is_err());
        let ok = SequenceSource::range(0, 9)
            .with_watermarks(WatermarkStrategy::monotonous(|x: &u64| *x as i64));
        assert!(Source::<u64>::validate(&ok).is_ok());
    }

    #[test]
    fn shares_cover_the_range_exactly_once() {
        for p in 1..7 {
            let mut covered = vec![];
            for i in 0..p {
                covered.extend(share(&(3..20), i, p));
            }
            assert_eq!(covered, (3..20).collect::<Vec<_>>());
        }
    }
}
