//! [`NexmarkSource`]: the events of the Nexmark benchmark (people, auctions, bids),
//! from the `nexmark` crate's generator (RisingWave's port of the reference
//! generator), as a parallel, checkpointed source.
//!
//! Event `i` of the benchmark is the same whatever the parallelism: reader `r` of
//! `p` emits events `r, r + p, r + 2p, ..`, each reader in timestamp order (with
//! the default `out_of_order_group_size` of 1), so monotonous watermarks per reader
//! hold. For repeatable output fix the config's `base_time` (the default is the
//! wall clock at the time the config is made).

use flink_core::checkpoint::{StateError, decode_state, encode_state};
use flink_core::functions::Collector;
use flink_core::operator::RuntimeContext;
use flink_core::source::{Boundedness, Source, SourceOutput, SourcePoll, SourceReader};
use flink_core::sources::SOURCE_BATCH;

pub use nexmark::EventGenerator;
pub use nexmark::config::NexmarkConfig;
pub use nexmark::event::{Auction, Bid, Event, Person};

/// The Nexmark events `0..events` (or unbounded), split among parallel readers.
///
/// ```
/// use flink_connectors::nexmark::{Event, NexmarkConfig, NexmarkSource};
/// use flink_core::prelude::*;
///
/// let config = NexmarkConfig {
///     base_time: 0,
///     ..NexmarkConfig::default()
/// };
/// let env = StreamExecutionEnvironment::new();
/// let prices = env
///     .from_source(NexmarkSource::new(config, 1_000), "Nexmark")
///     .flat_map(|e: Event, out: &mut dyn Collector<u64>| {
///         if let Event::Bid(bid) = e {
///             out.collect(bid.price as u64)
///         }
///     })
///     .collect_vec();
/// # let _ = prices;
/// ```
pub struct NexmarkSource {
    config: NexmarkConfig,
    events: Option<u64>,
}

impl NexmarkSource {
    /// The first `events` events of the benchmark under `config`.
    pub fn new(config: NexmarkConfig, events: u64) -> Self {
        Self {
            config,
            events: Some(events),
        }
    }

    /// Events without end.
    pub fn unbounded(config: NexmarkConfig) -> Self {
        Self {
            config,
            events: None,
        }
    }
}

impl Source<Event> for NexmarkSource {
    fn boundedness(&self) -> Boundedness {
        match self.events {
            Some(_) => Boundedness::Bounded,
            None => Boundedness::Unbounded,
        }
    }

    fn create_reader(&self, ctx: &RuntimeContext) -> Box<dyn SourceReader<Event>> {
        let (first, step) = (ctx.subtask_index as u64, ctx.parallelism.max(1) as u64);
        Box::new(NexmarkReader {
            config: self.config.clone(),
            generator: EventGenerator::new(self.config.clone())
                .with_offset(first)
                .with_step(step),
            step,
            end: self.events.unwrap_or(u64::MAX),
        })
    }
}

/// One reader's events: offsets `next, next + step, ..` below `end`.
struct NexmarkReader {
    config: NexmarkConfig,
    generator: EventGenerator,
    step: u64,
    end: u64,
}

impl SourceReader<Event> for NexmarkReader {
    fn poll_next(&mut self, out: &mut SourceOutput<Event>) -> SourcePoll {
        for _ in 0..SOURCE_BATCH {
            if self.generator.offset() >= self.end {
                break;
            }
            match self.generator.next() {
                Some(event) => out.collect(event),
                None => break,
            }
        }
        if self.generator.offset() >= self.end {
            SourcePoll::Finished
        } else {
            SourcePoll::MoreAvailable
        }
    }

    /// The offset of the next event to emit.
    fn snapshot_position(&mut self) -> Result<Option<Vec<u8>>, StateError> {
        encode_state(&self.generator.offset()).map(Some)
    }

    fn restore_position(&mut self, position: &[u8]) -> Result<(), StateError> {
        let offset: u64 = decode_state(position)?;
        self.generator = EventGenerator::new(self.config.clone())
            .with_offset(offset)
            .with_step(self.step);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use flink_core::clock::ManualClock;

    use super::*;

    fn context(subtask_index: usize, parallelism: usize) -> RuntimeContext {
        RuntimeContext::standalone(
            "nexmark",
            subtask_index,
            parallelism,
            Arc::new(ManualClock::new()),
        )
    }

    fn config() -> NexmarkConfig {
        NexmarkConfig {
            base_time: 0,
            ..NexmarkConfig::default()
        }
    }

    fn drain(reader: &mut dyn SourceReader<Event>, out: &mut SourceOutput<Event>) {
        while reader.poll_next(out) != SourcePoll::Finished {}
    }

    #[test]
    fn readers_share_the_events_and_resume_from_their_position() {
        const EVENTS: u64 = 5_000;
        let expected: Vec<Event> = EventGenerator::new(config())
            .take(EVENTS as usize)
            .collect();
        let source = NexmarkSource::new(config(), EVENTS);
        let mut by_offset = Vec::new();
        for i in 0..3 {
            let mut reader = source.create_reader(&context(i, 3));
            let mut out = SourceOutput::new();
            // Reader 1 stops after one batch and a new reader resumes its position.
            if i == 1 {
                reader.poll_next(&mut out);
                let position = reader.snapshot_position().unwrap().unwrap();
                reader = source.create_reader(&context(i, 3));
                reader.restore_position(&position).unwrap();
            }
            drain(reader.as_mut(), &mut out);
            let events = out.take();
            assert!(
                events
                    .windows(2)
                    .all(|w| w[0].timestamp() <= w[1].timestamp()),
                "each reader in time order"
            );
            by_offset.extend(events.into_iter().enumerate().map(|(k, e)| (k * 3 + i, e)));
        }
        by_offset.sort_by_key(|(offset, _)| *offset);
        let events: Vec<Event> = by_offset.into_iter().map(|(_, e)| e).collect();
        assert_eq!(events, expected);
    }
}
