//! [`RateLimitedSource`]: any source, read at most at a given rate, as Flink's
//! `RateLimiterStrategy` limits a source's readers.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use crate::checkpoint::{StateError, decode_state, encode_state};
use crate::clock::Clock;
use crate::operator::RuntimeContext;
use crate::source::{Boundedness, Source, SourceOutput, SourcePoll, SourceReader};

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
    inner: S,
    strategy: RateLimiterStrategy,
}

impl<S> RateLimitedSource<S> {
    /// `inner`, limited by `strategy`.
    pub fn new(inner: S, strategy: RateLimiterStrategy) -> Self {
        Self { inner, strategy }
    }
}

impl<T: Send + 'static, S: Source<T>> Source<T> for RateLimitedSource<S> {
    fn boundedness(&self) -> Boundedness {
        self.inner.boundedness()
    }

    fn is_parallel(&self) -> bool {
        self.inner.is_parallel()
    }

    fn timestamps(&self) -> Option<crate::watermark::TimestampFn<T>> {
        self.inner.timestamps()
    }

    fn create_reader(&self, ctx: &RuntimeContext) -> Box<dyn SourceReader<T>> {
        let reader = self.inner.create_reader(ctx);
        match self.strategy.records_per_second {
            None => reader,
            Some(rate) => {
                let rate = rate / ctx.parallelism as f64;
                let burst = (rate / 10.0).max(1.0);
                let clock = ctx.services.clock.clone();
                Box::new(RateLimitedReader {
                    inner: reader,
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
                })
            }
        }
    }
}

struct RateLimitedReader<T> {
    inner: Box<dyn SourceReader<T>>,
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

    /// The position now; `checkpoint_id` is handed to the inner reader when its
    /// own position is taken.
    fn position(&mut self, checkpoint_id: Option<u64>) -> Result<Option<Vec<u8>>, StateError> {
        let position = if self.held.is_empty() {
            RatePosition {
                inner: match checkpoint_id {
                    Some(id) => self.inner.snapshot_position_for_checkpoint(id)?,
                    None => self.inner.snapshot_position()?,
                },
                skip: 0,
            }
        } else {
            RatePosition {
                inner: self.held_from.clone(),
                skip: self.held_len - self.held.len(),
            }
        };
        match position.inner {
            Some(_) => encode_state(&position).map(Some),
            None => Ok(None),
        }
    }
}

impl<T: Send> SourceReader<T> for RateLimitedReader<T> {
    fn poll_next(&mut self, out: &mut SourceOutput<T>) -> SourcePoll {
        if self.held.is_empty() && !self.inner_finished {
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
        let n = (self.tokens.floor() as usize).min(self.held.len());
        self.tokens -= n as f64;
        out.batch.extend(self.held.drain(..n));
        if self.held.is_empty() && self.inner_finished {
            SourcePoll::Finished
        } else if self.tokens < 1.0 {
            SourcePoll::Pending(self.wait_for_token())
        } else {
            SourcePoll::MoreAvailable
        }
    }

    /// The inner position before the held records, and how many of them went out.
    fn snapshot_position(&mut self) -> Result<Option<Vec<u8>>, StateError> {
        self.position(None)
    }

    /// As [`snapshot_position`](Self::snapshot_position); the inner reader learns
    /// the checkpoint id when nothing is held (a Kafka reader then commits this
    /// checkpoint's offsets on completion; a later checkpoint's commit covers one
    /// taken while records were held).
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

    /// Restores the inner reader, then re-reads and drops what had gone out of its
    /// next batch.
    fn restore_position(&mut self, position: &[u8]) -> Result<(), StateError> {
        let position: RatePosition = decode_state(position)?;
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
}

/// A rate-limited reader's position.
#[derive(serde::Serialize, serde::Deserialize)]
struct RatePosition {
    /// The inner reader's position before its current batch.
    inner: Option<Vec<u8>>,
    /// Records of that batch already emitted.
    skip: usize,
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
        let mut reader = RateLimitedReader {
            inner: Box::new(Recording(calls.clone())),
            held: VecDeque::new(),
            held_from: None,
            held_len: 0,
            scratch: SourceOutput::new(),
            inner_finished: false,
            rate: 10.0,
            burst: 1.0,
            tokens: 1.0,
            last_refill: Duration::ZERO,
            clock,
        };
        assert!(
            reader
                .snapshot_position_for_checkpoint(7)
                .unwrap()
                .is_some()
        );
        reader.notify_checkpoint_complete(7);
        assert_eq!(*calls.lock().unwrap(), ["snapshot 7", "complete 7"]);
    }
}
