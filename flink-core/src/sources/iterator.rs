//! A source draining one iterator, with parallelism one.

use std::sync::Mutex;

use crate::checkpoint::{StateError, decode_state, encode_state};
use crate::functions::Collector;
use crate::operator::RuntimeContext;
use crate::source::{Boundedness, Source, SourceOutput, SourcePoll, SourceReader};
use crate::sources::BATCH;

/// Emits the items of one iterator; runs with parallelism one, like Flink's
/// `fromCollection` over an iterator.
pub struct IteratorSource<I> {
    iter: Mutex<Option<I>>,
}

impl<I> IteratorSource<I> {
    /// A source that drains `iter`.
    pub fn new(iter: I) -> Self {
        Self {
            iter: Mutex::new(Some(iter)),
        }
    }
}

impl<I> Source<I::Item> for IteratorSource<I>
where
    I: Iterator + Send + 'static,
    I::Item: Send + 'static,
{
    fn boundedness(&self) -> Boundedness {
        Boundedness::Bounded
    }

    fn create_reader(&self, ctx: &RuntimeContext) -> Box<dyn SourceReader<I::Item>> {
        let iter = self
            .iter
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        match iter {
            Some(iter) => Box::new(IterReader::new(iter)),
            // A second run of the same graph, or a restart: the iterator was consumed
            // by the first run. Emitting nothing would lose its records unnoticed.
            None => Box::new(ConsumedIterator {
                operator: ctx.operator_name.to_string(),
            }),
        }
    }

    fn is_parallel(&self) -> bool {
        false
    }
}

/// The reader of an iterator source whose iterator an earlier run consumed: it fails
/// the job, naming the source.
struct ConsumedIterator {
    operator: String,
}

impl<T> SourceReader<T> for ConsumedIterator {
    fn poll_next(&mut self, _out: &mut SourceOutput<T>) -> SourcePoll {
        crate::failure::fail_operator(
            &self.operator,
            "its iterator was consumed by an earlier run of the job (a restart or a second \
             execute): an iterator source cannot be read again; use from_collection for a \
             job that can restart"
                .to_string(),
        )
    }

    /// Restoring changes nothing: the first poll fails.
    fn restore_position(&mut self, _position: &[u8]) -> Result<(), StateError> {
        Ok(())
    }
}

/// Reads an iterator, counting what it emitted: the count is its position (the
/// iterator yields the same items again when the reader is created anew).
struct IterReader<I> {
    iter: I,
    emitted: u64,
}

impl<I> IterReader<I> {
    fn new(iter: I) -> Self {
        Self { iter, emitted: 0 }
    }
}

impl<I: Iterator + Send> SourceReader<I::Item> for IterReader<I> {
    fn poll_next(&mut self, out: &mut SourceOutput<I::Item>) -> SourcePoll {
        for _ in 0..BATCH {
            match self.iter.next() {
                Some(item) => {
                    self.emitted += 1;
                    out.collect(item);
                }
                None => return SourcePoll::Finished,
            }
        }
        SourcePoll::MoreAvailable
    }

    fn snapshot_position(&mut self) -> Result<Option<Vec<u8>>, StateError> {
        encode_state(&self.emitted).map(Some)
    }

    /// Skips the items emitted before the checkpoint.
    fn restore_position(&mut self, position: &[u8]) -> Result<(), StateError> {
        let emitted: u64 = decode_state(position)?;
        for i in 0..emitted {
            if self.iter.next().is_none() {
                return Err(StateError::Corrupt(format!(
                    "position {emitted} is past the end of this reader's {i} items"
                )));
            }
        }
        self.emitted = emitted;
        Ok(())
    }
}
