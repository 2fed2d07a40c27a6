//! [`EvictingWindowedStream`]: a windowed stream with an evictor, awaiting its
//! `process` function.

use std::hash::Hash;

use super::{EvictingProcessWindow, Evictor, TimeWindow, Trigger, WindowAssigner, WindowedStream};
use crate::datastream::DataStream;
use crate::functions::Collector;
use crate::stream_type::Record;

/// A keyed, windowed stream whose windows keep their records (with their
/// timestamps) for an [`Evictor`]; see [`WindowedStream::evictor`].
pub struct EvictingWindowedStream<K, T, W, Tr, E> {
    windowed: WindowedStream<K, T, W, Tr>,
    evictor: E,
}

impl<K, T, W, Tr, E> EvictingWindowedStream<K, T, W, Tr, E>
where
    K: Record + Hash + Eq,
    T: Record,
    W: WindowAssigner,
    Tr: Trigger<T>,
    E: Evictor<T>,
{
    pub(crate) fn new(windowed: WindowedStream<K, T, W, Tr>, evictor: E) -> Self {
        Self { windowed, evictor }
    }

    /// Each time a window fires, the evictor removes records, `f` gets the records
    /// left with the key and the window, and the evictor may remove more after
    /// (Flink's `process` on an evicting window). Evicted records are gone from the
    /// window.
    pub fn process<O, F>(&self, f: F) -> DataStream<O>
    where
        O: Record,
        F: FnMut(&K, &TimeWindow, &[T], &mut dyn Collector<O>) + Clone + Send + Sync + 'static,
    {
        self.windowed.apply_checked(
            "Evicting Window Process",
            EvictingProcessWindow(f, self.evictor.clone()),
            self.evictor.validate(),
        )
    }
}
