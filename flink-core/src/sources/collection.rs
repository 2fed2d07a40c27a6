use std::sync::Mutex;

use crate::functions::Collector;
use crate::operator::RuntimeContext;
use crate::source::{Boundedness, Source, SourceOutput, SourcePoll, SourceReader};
use crate::sources::BATCH;

/// Emits the elements of a `Vec`, split into contiguous shares among the readers.
pub struct CollectionSource<T> {
    items: Vec<T>,
}

impl<T> CollectionSource<T> {
    /// A source over `items`.
    pub fn new(items: Vec<T>) -> Self {
        Self { items }
    }
}

impl<T: Clone + Send + Sync + 'static> Source<T> for CollectionSource<T> {
    fn boundedness(&self) -> Boundedness {
        Boundedness::Bounded
    }

    fn create_reader(&self, ctx: &RuntimeContext) -> Box<dyn SourceReader<T>> {
        let n = self.items.len();
        let (i, p) = (ctx.subtask_index, ctx.parallelism);
        let share = self.items[n * i / p..n * (i + 1) / p].to_vec();
        Box::new(IterReader(share.into_iter()))
    }
}

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

    fn create_reader(&self, _ctx: &RuntimeContext) -> Box<dyn SourceReader<I::Item>> {
        let iter = self
            .iter
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        match iter {
            Some(iter) => Box::new(IterReader(iter)),
            // A second run of the same graph: the iterator was consumed by the first.
            None => Box::new(IterReader(std::iter::empty())),
        }
    }

    fn is_parallel(&self) -> bool {
        false
    }
}

struct IterReader<I>(I);

impl<I: Iterator + Send> SourceReader<I::Item> for IterReader<I> {
    fn poll_next(&mut self, out: &mut SourceOutput<I::Item>) -> SourcePoll {
        for _ in 0..BATCH {
            match self.0.next() {
                Some(item) => out.collect(item),
                None => return SourcePoll::Finished,
            }
        }
        SourcePoll::MoreAvailable
    }
}
