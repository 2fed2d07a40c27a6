//! The user function traits. Each has a blanket implementation for closures, so
//! `stream.map(|x| x * 2)` and `stream.map(MyMapper)` both work.

use crate::timestamped::Timestamped;

/// Receives the records a function emits.
pub trait Collector<T> {
    /// Emits one record downstream.
    fn collect(&mut self, record: T);

    /// Delivers what was collected so far all the way out of the task (down the chain
    /// and into network buffers, flushed). An operator calls this before it blocks
    /// waiting for something that records it already emitted may be needed for, such
    /// as the gateway waiting for records to finish downstream.
    fn flush_before_wait(&mut self) {}

    /// Passes event-time progress downstream, after every record collected before
    /// it. Runtime outputs forward it; collectors that are not stream outputs (a
    /// `Vec`, the end of a sink) ignore it. Operators call it, user functions need not.
    fn emit_watermark(&mut self, _watermark: crate::watermark::Watermark) {}

    /// Passes a change of the stream's [`WatermarkStatus`](crate::watermark::WatermarkStatus)
    /// downstream, in order with records and watermarks; like
    /// [`emit_watermark`](Self::emit_watermark), only runtime outputs forward it.
    fn emit_watermark_status(&mut self, _status: crate::watermark::WatermarkStatus) {}

    /// Gives the records collected from now on the event timestamp `timestamp`
    /// (Flink's `TimestampedCollector::setAbsoluteTimestamp`), on a stream whose
    /// records carry timestamps; elsewhere it does nothing. Operators call it (a
    /// window before it emits a window's results, a timer before its function
    /// runs); an operator that does not has its outputs stamped with the input
    /// record's timestamp.
    fn set_timestamp(&mut self, _timestamp: i64) {}
}

/// One record in, one record out.
pub trait MapFunction<I, O>: Send + 'static {
    /// Transforms one record.
    fn map(&mut self, value: I) -> O;
}

impl<I, O, F: FnMut(I) -> O + Send + 'static> MapFunction<I, O> for F {
    fn map(&mut self, value: I) -> O {
        self(value)
    }
}

/// Keeps the records for which it returns `true`.
pub trait FilterFunction<T>: Send + 'static {
    /// Decides whether `value` goes on.
    fn filter(&mut self, value: &T) -> bool;
}

impl<T, F: FnMut(&T) -> bool + Send + 'static> FilterFunction<T> for F {
    fn filter(&mut self, value: &T) -> bool {
        self(value)
    }
}

/// One record in, any number out.
pub trait FlatMapFunction<I, O>: Send + 'static {
    /// Emits zero or more records for `value`.
    fn flat_map(&mut self, value: I, out: &mut dyn Collector<O>);
}

impl<I, O, F: FnMut(I, &mut dyn Collector<O>) + Send + 'static> FlatMapFunction<I, O> for F {
    fn flat_map(&mut self, value: I, out: &mut dyn Collector<O>) {
        self(value, out)
    }
}

/// Combines two records of one key into one.
pub trait ReduceFunction<T>: Send + 'static {
    /// Folds `value` into the accumulated `acc`.
    fn reduce(&mut self, acc: T, value: T) -> T;
}

impl<T, F: FnMut(T, T) -> T + Send + 'static> ReduceFunction<T> for F {
    fn reduce(&mut self, acc: T, value: T) -> T {
        self(acc, value)
    }
}

/// Extracts the key a record is partitioned and grouped by.
pub trait KeySelector<T, K>: Send + Sync + 'static {
    /// Returns the key of `value`.
    fn key(&self, value: &T) -> K;

    /// Appends the key of each record of `records` to `keys`, in order (a selector
    /// behind a dynamic call overrides it to make one call per batch).
    #[inline]
    fn keys(&self, records: &[T], keys: &mut Vec<K>) {
        keys.extend(records.iter().map(|r| self.key(r)));
    }

    /// Appends the key of each record of `records`, records with their timestamps,
    /// to `keys`, in order (as [`keys`](Self::keys)).
    #[inline]
    fn keys_of_stamped(&self, records: &[Timestamped<T>], keys: &mut Vec<K>) {
        keys.extend(records.iter().map(|r| self.key(&r.value)));
    }
}

impl<T, K, F: Fn(&T) -> K + Send + Sync + 'static> KeySelector<T, K> for F {
    fn key(&self, value: &T) -> K {
        self(value)
    }
}

/// Collects into a `Vec`; handy for testing functions in isolation.
impl<T> Collector<T> for Vec<T> {
    fn collect(&mut self, record: T) {
        self.push(record);
    }
}
