//! [`WatermarkStrategy`]: a timestamp assigner and a watermark generator, as
//! Flink's `WatermarkStrategy`.

use std::sync::Arc;
use std::time::Duration;

use crate::timestamped::Timestamped;

use super::generator::{
    AscendingTimestampsWatermarks, BoundedOutOfOrdernessWatermarks, NoWatermarks,
    WatermarkGenerator,
};

/// The timestamp of a record that has none (Flink's `Long.MIN_VALUE`): what a
/// strategy without a timestamp assigner sees.
pub const NO_TIMESTAMP: i64 = i64::MIN;

/// How often periodic generators are asked for a watermark unless the job sets
/// [`ExecutionConfig::auto_watermark_interval`](crate::config::ExecutionConfig::auto_watermark_interval):
/// Flink's default, 200 ms.
pub const DEFAULT_AUTO_WATERMARK_INTERVAL: Duration = Duration::from_millis(200);

/// A record's event time in milliseconds.
pub type TimestampFn<T> = Arc<dyn Fn(&T) -> i64 + Send + Sync>;
/// A [`TimestampFn`] run over a batch of records at once: one dynamic call per
/// batch rather than per record.
type StampBatchFn<T> = Arc<dyn Fn(&mut [Timestamped<T>]) + Send + Sync>;
type GeneratorFactory<T> = Arc<dyn Fn() -> Box<dyn WatermarkGenerator<T>> + Send + Sync>;

/// How a stream's records get event-time progress: a timestamp per record (the
/// assigner, in milliseconds) and a [`WatermarkGenerator`] per parallel instance,
/// as Flink's `WatermarkStrategy`. Periodic generators emit on the job's
/// auto-watermark interval (default 200 ms, on the job's clock); see
/// [`assign_timestamps_and_watermarks`](crate::datastream::DataStream::assign_timestamps_and_watermarks).
///
/// ```
/// use std::time::Duration;
/// use flink_core::prelude::*;
/// use flink_core::watermark::WatermarkStrategy;
///
/// let env = StreamExecutionEnvironment::new();
/// let timed = env.from_sequence(1, 100).assign_timestamps_and_watermarks(
///     WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(10))
///         .with_timestamp_assigner(|x: &u64| *x as i64),
/// );
/// # let _ = timed;
/// ```
pub struct WatermarkStrategy<T> {
    pub(crate) timestamp: Option<TimestampFn<T>>,
    /// The same assigner, looping over a batch.
    stamp_batch: Option<StampBatchFn<T>>,
    pub(crate) generator: GeneratorFactory<T>,
    pub(crate) idleness: Option<Duration>,
}

impl<T> Clone for WatermarkStrategy<T> {
    fn clone(&self) -> Self {
        Self {
            timestamp: self.timestamp.clone(),
            stamp_batch: self.stamp_batch.clone(),
            generator: self.generator.clone(),
            idleness: self.idleness,
        }
    }
}

impl<T> WatermarkStrategy<T> {
    /// The timestamp assigner, if one was given: a source with timestamps of its
    /// own (a Kafka record's) uses them where there is none.
    pub fn timestamp_assigner(&self) -> Option<&TimestampFn<T>> {
        self.timestamp.as_ref()
    }

    /// The idleness timeout of [`with_idleness`](Self::with_idleness), if any.
    pub fn idleness(&self) -> Option<Duration> {
        self.idleness
    }
}

impl<T: 'static> WatermarkStrategy<T> {
    /// Records may arrive up to `max` later than the newest timestamp seen: after a
    /// record with timestamp `t` the watermark becomes at most `t - max - 1` ms.
    pub fn for_bounded_out_of_orderness(max: Duration) -> Self {
        Self::for_generator(move || BoundedOutOfOrdernessWatermarks::new(max))
    }

    /// Timestamps never go backwards: the watermark follows the newest one.
    pub fn for_monotonous_timestamps() -> Self {
        Self::for_generator(AscendingTimestampsWatermarks::default)
    }

    /// No watermarks until the input ends.
    pub fn no_watermarks() -> Self {
        Self::for_generator(|| NoWatermarks)
    }

    /// A custom generator, made once per parallel instance by `make`.
    ///
    /// ```
    /// use flink_core::watermark::*;
    ///
    /// /// Punctuated: the watermark is every even timestamp.
    /// struct Even;
    /// impl WatermarkGenerator<i64> for Even {
    ///     fn on_event(&mut self, _: &i64, ts: i64, out: &mut WatermarkOutput) {
    ///         if ts % 2 == 0 {
    ///             out.emit_watermark(Watermark(ts));
    ///         }
    ///     }
    ///     fn on_periodic_emit(&mut self, _: &mut WatermarkOutput) {}
    /// }
    ///
    /// let strategy = WatermarkStrategy::for_generator(|| Even).with_timestamp_assigner(|x: &i64| *x);
    /// # let _ = strategy;
    /// ```
    pub fn for_generator<G: WatermarkGenerator<T>>(
        make: impl Fn() -> G + Send + Sync + 'static,
    ) -> Self {
        Self {
            timestamp: None,
            stamp_batch: None,
            generator: Arc::new(move || Box::new(make()) as Box<dyn WatermarkGenerator<T>>),
            idleness: None,
        }
    }

    /// Takes each record's event time (milliseconds) from `timestamp`. Without an
    /// assigner every record has [`NO_TIMESTAMP`], as a Flink record without one.
    pub fn with_timestamp_assigner(
        mut self,
        timestamp: impl Fn(&T) -> i64 + Send + Sync + 'static,
    ) -> Self {
        let timestamp = Arc::new(timestamp);
        let each = timestamp.clone();
        self.stamp_batch = Some(Arc::new(move |batch: &mut [Timestamped<T>]| {
            for record in batch {
                record.timestamp = each(&record.value);
            }
        }));
        self.timestamp = Some(timestamp);
        self
    }

    /// Marks a parallel instance's output idle once it saw no records for `timeout`
    /// of the job's clock (Flink's `withIdleness`), so that a source instance or
    /// partition without data does not hold back the watermark downstream: the
    /// tasks reading it compute their watermark from their other inputs. Its first
    /// record makes it active again; it rejoins downstream once its watermark caught
    /// up, so event time never goes backwards. Idleness is checked on the
    /// auto-watermark interval, so it shows up between `timeout` and `timeout` plus
    /// one interval after the last record; an idle instance emits no periodic
    /// watermarks. A `timeout` of zero is invalid, as in Flink: the job build fails
    /// with [`GraphError::InvalidWatermarkStrategy`](crate::error::GraphError::InvalidWatermarkStrategy).
    ///
    /// ```
    /// use std::time::Duration;
    /// use flink_core::watermark::WatermarkStrategy;
    ///
    /// let strategy = WatermarkStrategy::for_monotonous_timestamps()
    ///     .with_timestamp_assigner(|x: &u64| *x as i64)
    ///     .with_idleness(Duration::from_secs(5));
    /// # let _ = strategy;
    /// ```
    pub fn with_idleness(mut self, timeout: Duration) -> Self {
        self.idleness = Some(timeout);
        self
    }

    /// Shorthand for
    /// `for_bounded_out_of_orderness(max).with_timestamp_assigner(timestamp)`.
    pub fn bounded_out_of_orderness(
        max: Duration,
        timestamp: impl Fn(&T) -> i64 + Send + Sync + 'static,
    ) -> Self {
        Self::for_bounded_out_of_orderness(max).with_timestamp_assigner(timestamp)
    }

    /// Shorthand for `for_monotonous_timestamps().with_timestamp_assigner(timestamp)`.
    pub fn monotonous(timestamp: impl Fn(&T) -> i64 + Send + Sync + 'static) -> Self {
        Self::for_monotonous_timestamps().with_timestamp_assigner(timestamp)
    }

    /// The record's event time under this strategy ([`NO_TIMESTAMP`] without an
    /// assigner).
    #[inline]
    pub fn timestamp_of(&self, record: &T) -> i64 {
        self.timestamp.as_ref().map_or(NO_TIMESTAMP, |f| f(record))
    }

    /// Sets each record's timestamp from the assigner, a whole batch in one call;
    /// without an assigner the timestamps stay as they are.
    #[inline]
    pub fn stamp_batch(&self, batch: &mut [Timestamped<T>]) {
        if let Some(stamp) = &self.stamp_batch {
            stamp(batch);
        }
    }

    /// A generator for one parallel instance (or one partition of a source that
    /// tracks watermarks per partition).
    pub fn create_generator(&self) -> Box<dyn WatermarkGenerator<T>> {
        (self.generator)()
    }
}
