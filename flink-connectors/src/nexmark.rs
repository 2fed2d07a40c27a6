//! [`NexmarkSource`]: the events of the Nexmark benchmark (people, auctions, bids),
//! from the `nexmark` crate's generator (RisingWave's port of the reference
//! generator), as a parallel, checkpointed source.
//!
//! Event `i` of the benchmark is the same whatever the parallelism: reader `r` of
//! `p` emits events `r, r + p, r + 2p, ..`, each reader in timestamp order (with
//! the default `out_of_order_group_size` of 1), so monotonous watermarks per reader
//! hold. For repeatable output fix the config's `base_time` (the default is the
//! wall clock at the time the config is made).
//!
//! A reader's position lists the streams of offsets it has left (next offset and
//! step), so a savepoint taken at one parallelism restores at another: saved reader
//! `j`'s streams go to new reader `j % p`, which merges its streams by offset (its
//! events stay in timestamp order) and emits each of their events exactly once. At a
//! higher parallelism the readers beyond the saved count have no stream and finish
//! at once. A position of the earlier encoding (a bare next offset) restores only at
//! the parallelism it was saved with.

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

    /// A reader's position names the streams of offsets it has left, so the
    /// positions of a run at one parallelism can be dealt to the readers of another.
    fn can_restore_rescaled(&self) -> bool {
        true
    }

    fn create_reader(&self, ctx: &RuntimeContext) -> Box<dyn SourceReader<Event>> {
        let own = Stream {
            next: ctx.subtask_index as u64,
            step: ctx.parallelism.max(1) as u64,
        };
        let mut reader = NexmarkReader {
            config: self.config.clone(),
            own,
            streams: Vec::new(),
            end: self.events.unwrap_or(u64::MAX),
        };
        reader.take_streams(vec![own]);
        Box::new(reader)
    }
}

/// Starts every position in the stream-list encoding. The encoding written before
/// it (one varint: the reader's next offset) never starts with these four bytes: a
/// varint starting with `N` ends after one byte.
const MARKER: [u8; 4] = *b"NXr2";

/// The offsets `next, next + step, next + 2 * step, ..` below the source's end: the
/// rest of the stream of a reader of a run at parallelism `step` (its first offset
/// is `next % step`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Stream {
    next: u64,
    step: u64,
}

/// A reader's position: the streams it has left. After a restore at another
/// parallelism a reader can own several (see [`SourceReader::restore_rescaled`]).
#[derive(serde::Serialize, serde::Deserialize)]
struct NexmarkPosition {
    marker: [u8; 4],
    streams: Vec<Stream>,
}

/// One reader's events: those of its streams below `end`, merged by offset.
struct NexmarkReader {
    config: NexmarkConfig,
    /// This reader's own stream from its start: what a position of the earlier
    /// encoding (a bare next offset) continues.
    own: Stream,
    /// A generator and its step per stream not yet read to `end`.
    streams: Vec<(EventGenerator, u64)>,
    end: u64,
}

impl NexmarkReader {
    /// Takes `streams` as this reader's work, dropping those already at their end.
    fn take_streams(&mut self, streams: Vec<Stream>) {
        self.streams = streams
            .into_iter()
            .filter(|s| s.next < self.end)
            .map(|s| {
                let generator = EventGenerator::new(self.config.clone())
                    .with_offset(s.next)
                    .with_step(s.step);
                (generator, s.step)
            })
            .collect();
    }

    /// The streams of the stream-list `position`, or `None` if it is of the
    /// earlier encoding.
    fn decode(position: &[u8]) -> Result<Option<Vec<Stream>>, StateError> {
        let Ok(decoded) = decode_state::<NexmarkPosition>(position) else {
            return Ok(None);
        };
        if decoded.marker != MARKER {
            return Ok(None);
        }
        if let Some(s) = decoded.streams.iter().find(|s| s.step == 0) {
            return Err(StateError::Corrupt(format!(
                "the Nexmark source stream from offset {} has step 0",
                s.next
            )));
        }
        Ok(Some(decoded.streams))
    }

    /// The stream with the lowest next offset: merging by offset keeps the reader's
    /// events in timestamp order however many streams it reads.
    fn lowest(&mut self) -> Option<&mut EventGenerator> {
        self.streams
            .iter_mut()
            .map(|(generator, _)| generator)
            .min_by_key(|generator| generator.offset())
    }
}

impl SourceReader<Event> for NexmarkReader {
    fn poll_next(&mut self, out: &mut SourceOutput<Event>) -> SourcePoll {
        let end = self.end;
        for _ in 0..SOURCE_BATCH {
            let Some(generator) = self.lowest() else {
                break;
            };
            // The generator is infinite: `next` always yields.
            if let Some(event) = generator.next() {
                out.collect(event);
            }
            if generator.offset() >= end {
                self.streams.retain(|(g, _)| g.offset() < end);
            }
        }
        if self.streams.is_empty() {
            SourcePoll::Finished
        } else {
            SourcePoll::MoreAvailable
        }
    }

    /// The streams left, each as its next offset and step.
    fn snapshot_position(&mut self) -> Result<Option<Vec<u8>>, StateError> {
        let streams = self
            .streams
            .iter()
            .map(|(generator, step)| Stream {
                next: generator.offset(),
                step: *step,
            })
            .collect();
        encode_state(&NexmarkPosition {
            marker: MARKER,
            streams,
        })
        .map(Some)
    }

    /// Takes the streams of the position; a position of the earlier encoding (the
    /// next offset of this reader's own stream) continues that stream.
    fn restore_position(&mut self, position: &[u8]) -> Result<(), StateError> {
        if let Some(streams) = Self::decode(position)? {
            self.take_streams(streams);
            return Ok(());
        }
        let next: u64 = decode_state(position)?;
        if next % self.own.step != self.own.next {
            return Err(StateError::Corrupt(format!(
                "Nexmark source offset {next} is not in the stream of reader {} of {}",
                self.own.next, self.own.step
            )));
        }
        self.take_streams(vec![Stream { next, ..self.own }]);
        Ok(())
    }

    /// Takes the streams of every position given; their events are merged by
    /// offset. Positions of the earlier encoding are refused: a bare next offset
    /// does not say the step of the stream it continues.
    fn restore_rescaled(&mut self, positions: &[&[u8]]) -> Result<(), StateError> {
        let mut streams = Vec::new();
        for position in positions {
            match Self::decode(position)? {
                Some(taken) => streams.extend(taken),
                None => {
                    return Err(StateError::Corrupt(
                        "a Nexmark source position of the earlier encoding (a bare next \
                         offset) restores only at the parallelism it was saved with"
                            .into(),
                    ));
                }
            }
        }
        self.take_streams(streams);
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

    /// The Debug strings of `events`, sorted: their multiset.
    fn multiset(events: &[Event]) -> Vec<String> {
        let mut all: Vec<String> = events.iter().map(|e| format!("{e:?}")).collect();
        all.sort_unstable();
        all
    }

    fn in_time_order(events: &[Event]) -> bool {
        events
            .windows(2)
            .all(|w| w[0].timestamp() <= w[1].timestamp())
    }

    #[test]
    fn positions_saved_at_two_restore_at_one_three_and_four_exactly_once() {
        const EVENTS: u64 = 10_000;
        let expected = multiset(
            &EventGenerator::new(config())
                .take(EVENTS as usize)
                .collect::<Vec<_>>(),
        );
        let source = NexmarkSource::new(config(), EVENTS);
        // Reader j of 2 saves after j + 1 batches: the streams are at different
        // offsets.
        let mut saved = Vec::new();
        let mut emitted = Vec::new();
        for j in 0..2 {
            let mut reader = source.create_reader(&context(j, 2));
            let mut out = SourceOutput::new();
            for _ in 0..=j {
                reader.poll_next(&mut out);
            }
            emitted.extend(out.take());
            saved.push(reader.snapshot_position().unwrap().unwrap());
        }
        assert_eq!(emitted.len() as u64, 3 * SOURCE_BATCH);
        for p in [1, 3, 4] {
            let mut all = emitted.clone();
            for i in 0..p {
                let mut reader = source.create_reader(&context(i, p));
                let mine: Vec<&[u8]> = flink_core::source::dealt_to(saved.iter(), i, p)
                    .map(Vec::as_slice)
                    .collect();
                reader.restore_rescaled(&mine).unwrap();
                let mut out = SourceOutput::new();
                drain(reader.as_mut(), &mut out);
                let events = out.take();
                assert!(in_time_order(&events), "reader {i} of {p} in time order");
                all.extend(events);
            }
            assert_eq!(multiset(&all), expected, "parallelism {p}");
        }
    }

    #[test]
    fn a_reader_holding_two_streams_saves_and_restores_both() {
        const EVENTS: u64 = 6_000;
        let expected: Vec<Event> = EventGenerator::new(config())
            .take(EVENTS as usize)
            .collect();
        let source = NexmarkSource::new(config(), EVENTS);
        let saved: Vec<Vec<u8>> = (0..2)
            .map(|j| {
                let mut reader = source.create_reader(&context(j, 2));
                reader.snapshot_position().unwrap().unwrap()
            })
            .collect();
        let all: Vec<&[u8]> = saved.iter().map(Vec::as_slice).collect();
        // One reader takes both streams, reads a batch, saves; another restores
        // that at the same parallelism.
        let mut first = source.create_reader(&context(0, 1));
        first.restore_rescaled(&all).unwrap();
        let mut out = SourceOutput::new();
        first.poll_next(&mut out);
        let position = first.snapshot_position().unwrap().unwrap();
        let mut second = source.create_reader(&context(0, 1));
        second.restore_position(&position).unwrap();
        drain(second.as_mut(), &mut out);
        // Merged by offset, both streams from offset 0: the unrescaled order.
        assert_eq!(out.take(), expected);
    }

    #[test]
    fn an_old_position_restores_at_its_parallelism_only() {
        let source = NexmarkSource::new(config(), 2_000);
        let old = encode_state(&1_001u64).unwrap();
        let mut reader = source.create_reader(&context(1, 2));
        reader.restore_position(&old).unwrap();
        let mut out = SourceOutput::new();
        drain(reader.as_mut(), &mut out);
        let expected: Vec<Event> = EventGenerator::new(config())
            .with_offset(1_001)
            .with_step(2)
            .take(500)
            .collect();
        assert_eq!(out.take(), expected);
        // Not an offset of reader 0's stream.
        let mut other = source.create_reader(&context(0, 2));
        let err = other.restore_position(&old).unwrap_err().to_string();
        assert!(err.contains("not in the stream of reader 0 of 2"), "{err}");
        // At another parallelism the step it continues is unknown.
        let mut rescaled = source.create_reader(&context(0, 3));
        let err = rescaled.restore_rescaled(&[&old]).unwrap_err().to_string();
        assert!(
            err.contains("restores only at the parallelism it was saved with"),
            "{err}"
        );
    }
}
