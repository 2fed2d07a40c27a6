//! A source reading Kafka partitions assigned deterministically to parallel readers.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flink_core::checkpoint::StateError;
use flink_core::dead_letter::{DeadLetter, dead_letter_tag};
use flink_core::functions::Collector;
use flink_core::operator::RuntimeContext;
use flink_core::side_output::SideOutput;
use flink_core::source::{Boundedness, Source, SourceOutput, SourcePoll, SourceReader};
use flink_core::watermark::{DEFAULT_AUTO_WATERMARK_INTERVAL, TimestampFn, WatermarkStrategy};
use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use regex::Regex;
use serde::de::DeserializeOwned;

use super::deserializer::{
    BytesDeserializer, JsonDeserializer, KafkaRecordDeserializer, StringDeserializer,
    ValueDeserializer, ValueOnly,
};
use super::error::KafkaConnectorError;
use super::finished_commit::{CommitSlot, commit_when_finished};
use super::last_batch::LastBatch;
use super::offsets::KafkaOffsets;
use super::source_position::{
    PartitionPosition, decode_positions, encode_positions, merge_positions,
};
use flink_core::watermark::SplitWatermarks;

/// Records emitted per poll at most.
const BATCH: usize = 1_000;
/// How long a poll waits for the first message.
const POLL_WAIT: Duration = Duration::from_millis(100);
/// Timeout of metadata, watermark and offset look-ups.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a reader refreshes the high watermarks (for the lag metric).
const WATERMARK_REFRESH: Duration = Duration::from_secs(1);

/// Where a reader starts in each partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartingOffsets {
    /// The earliest offset still held (the low watermark).
    Earliest,
    /// The end of the partition at start: only records produced afterwards.
    Latest,
    /// The group's committed offset; where there is none, the earliest.
    Committed,
    /// The first record whose timestamp is at or after this many milliseconds since
    /// the Unix epoch; the end of the partition where there is none.
    Timestamp(i64),
}

/// Which topics to read.
#[derive(Debug, Clone)]
enum Topics {
    List(Vec<String>),
    Pattern(Regex),
}

struct Config {
    properties: Vec<(String, String)>,
    topics: Topics,
    starting: StartingOffsets,
    boundedness: Boundedness,
    commit_offsets: bool,
}

/// Reads Kafka topics into a stream of `T`.
///
/// At its first poll each parallel reader lists the partitions of the topics (a list,
/// or every non-internal topic matching a regular expression), sorts them by
/// (topic, partition) and takes those whose index `i` has `i % parallelism ==
/// subtask`. It `assign`s them (no consumer-group rebalancing), so each partition is
/// read by exactly one subtask. Partitions are discovered once, at start.
///
/// - **Bounded** mode stops each partition at its end offset (high watermark) seen at
///   start; **unbounded** mode reads until the job is stopped or cancelled. A bounded partition
///   also ends when the consumer's position reaches the end offset without a message
///   there (transaction markers, aborted records), and when its unread records up to
///   the end offset were deleted (retention, DeleteRecords; logged as a warning).
/// - A message the deserializer rejects becomes a [`DeadLetter<Vec<u8>>`] (the value
///   bytes, the error and the message's position as reason) on
///   [`dead_letter_tag::<Vec<u8>>()`]; reading goes on.
/// - **Checkpoints** (as Flink's `KafkaSource`): a reader's position is the next
///   offset (and, bounded, the stop offset) of each of its partitions; after a
///   restore it seeks there, so with an exactly-once sink every record is processed
///   once. Partitions not in the restored position start at the starting offsets.
///   A restore may change the parallelism (`Source::can_restore_rescaled`): every
///   reader holds the positions of all old readers and takes those of the
///   partitions it is now assigned, so each partition resumes from its saved offset
///   in exactly one reader, as in Flink's `KafkaSource`. Behind a rate limiter
///   (`.rate_limited(..)`) that holds part of a batch back, the position is the one
///   after the records that went out (`SourceReader::snapshot_position_after`),
///   with the batch's dead letters already out, so none is emitted twice.
/// - With [`commit_offsets`](KafkaSourceBuilder::commit_offsets) the group's offsets
///   are committed when a checkpoint completes (the offsets of that checkpoint) and
///   once the job finished successfully (input ended, or stopped with a drain),
///   never for records the sinks have not finished with. They are for monitoring and
///   for [`StartingOffsets::Committed`]; a restore uses the checkpoint's offsets.
/// - [`offsets`](Self::offsets) is a shared handle on every partition's next offset,
///   high watermark and lag.
/// - Memory: the reader only polls librdkafka when the task asks for records, and
///   librdkafka's prefetch queue is bounded (`queued.max.messages.kbytes`, 2 MiB per
///   reader by default), so a back-pressured job does not buffer more.
///
/// ```no_run
/// use flink_connectors::kafka::{KafkaSource, StartingOffsets};
/// use flink_core::prelude::*;
///
/// let source = KafkaSource::<String>::builder()
///     .bootstrap_servers("127.0.0.1:9092")
///     .topics(["events"])
///     .group_id("my-job")
///     .starting_offsets(StartingOffsets::Earliest)
///     .bounded()
///     .string_values()
///     .build()
///     .unwrap();
/// let lag = source.offsets();
/// let env = StreamExecutionEnvironment::new();
/// env.from_source(source, "Kafka").collect_vec();
/// # let _ = lag;
/// ```
pub struct KafkaSource<T> {
    config: Arc<Config>,
    deserializer: Arc<dyn KafkaRecordDeserializer<T>>,
    offsets: KafkaOffsets,
    watermarks: Option<SourceWatermarks<T>>,
}

/// The per-partition watermarks of [`KafkaSourceBuilder::with_watermarks`].
struct SourceWatermarks<T> {
    strategy: WatermarkStrategy<T>,
    interval: Duration,
}

impl<T> KafkaSource<T> {
    /// A builder.
    pub fn builder() -> KafkaSourceBuilder<T> {
        KafkaSourceBuilder {
            bootstrap: None,
            group_id: None,
            topics: None,
            starting: StartingOffsets::Earliest,
            boundedness: Boundedness::Unbounded,
            deserializer: None,
            properties: Vec::new(),
            commit_offsets: false,
            watermarks: None,
            watermark_interval: DEFAULT_AUTO_WATERMARK_INTERVAL,
        }
    }

    /// The shared handle on every partition's progress and lag.
    pub fn offsets(&self) -> KafkaOffsets {
        self.offsets.clone()
    }
}

/// Builds a [`KafkaSource`].
pub struct KafkaSourceBuilder<T> {
    bootstrap: Option<String>,
    group_id: Option<String>,
    topics: Option<Result<Topics, String>>,
    starting: StartingOffsets,
    boundedness: Boundedness,
    deserializer: Option<Arc<dyn KafkaRecordDeserializer<T>>>,
    properties: Vec<(String, String)>,
    commit_offsets: bool,
    watermarks: Option<WatermarkStrategy<T>>,
    watermark_interval: Duration,
}

impl<T> KafkaSourceBuilder<T> {
    /// Makes watermarks in the source, per partition, as Flink's
    /// `env.fromSource(kafkaSource, watermarkStrategy, ..)`: each partition has its
    /// own generator of `strategy`, fed with the strategy's timestamp of each record,
    /// or the Kafka record's timestamp (create or log-append time) where the
    /// strategy has no assigner; a reader emits the minimum over its partitions, so
    /// a lagging partition holds event time back instead of making its records late.
    /// A finished (bounded) partition no longer counts; with
    /// [`with_idleness`](WatermarkStrategy::with_idleness) neither does one without
    /// records for that long, until its next record; a reader whose partitions are
    /// all idle, or that has none, marks its output idle. Periodic generators run
    /// every [`watermark_interval`](Self::watermark_interval). With an assigner the
    /// stream carries the records' timestamps (for windows) as after
    /// `assign_timestamps_and_watermarks`; the Kafka timestamps themselves drive
    /// the watermarks only.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use flink_connectors::kafka::KafkaSource;
    /// use flink_core::watermark::WatermarkStrategy;
    ///
    /// let source = KafkaSource::<String>::builder()
    ///     .bootstrap_servers("127.0.0.1:9092")
    ///     .topics(["events"])
    ///     .string_values()
    ///     .with_watermarks(
    ///         WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_secs(5))
    ///             .with_idleness(Duration::from_secs(60)),
    ///     )
    ///     .build()
    ///     .unwrap();
    /// # let _ = source;
    /// ```
    pub fn with_watermarks(mut self, strategy: WatermarkStrategy<T>) -> Self {
        self.watermarks = Some(strategy);
        self
    }

    /// How often the periodic watermark generators of
    /// [`with_watermarks`](Self::with_watermarks) run, on the job's clock (default
    /// Flink's 200 ms; zero: after every poll).
    pub fn watermark_interval(mut self, interval: Duration) -> Self {
        self.watermark_interval = interval;
        self
    }

    /// The brokers to bootstrap from, `host:port[,host:port...]` (required).
    pub fn bootstrap_servers(mut self, servers: &str) -> Self {
        self.bootstrap = Some(servers.to_string());
        self
    }

    /// The consumer group, for committed offsets (default `flink-rs`).
    pub fn group_id(mut self, group: &str) -> Self {
        self.group_id = Some(group.to_string());
        self
    }

    /// Reads these topics.
    pub fn topics<S: AsRef<str>>(mut self, topics: impl IntoIterator<Item = S>) -> Self {
        let list = topics.into_iter().map(|t| t.as_ref().to_string()).collect();
        self.topics = Some(Ok(Topics::List(list)));
        self
    }

    /// Reads every non-internal topic whose whole name matches `pattern`.
    pub fn topic_pattern(mut self, pattern: &str) -> Self {
        self.topics = Some(
            Regex::new(&format!("^(?:{pattern})$"))
                .map(Topics::Pattern)
                .map_err(|e| format!("topic pattern {pattern:?}: {e}")),
        );
        self
    }

    /// Where to start (default [`StartingOffsets::Earliest`]).
    pub fn starting_offsets(mut self, starting: StartingOffsets) -> Self {
        self.starting = starting;
        self
    }

    /// Stops at the end offsets seen at start.
    pub fn bounded(mut self) -> Self {
        self.boundedness = Boundedness::Bounded;
        self
    }

    /// Reads until cancelled (the default).
    pub fn unbounded(mut self) -> Self {
        self.boundedness = Boundedness::Unbounded;
        self
    }

    /// Commits to the group the offsets of what the job has finished with: with
    /// checkpointing, the offsets of each checkpoint when it completes (as Flink's
    /// `commit.offsets.on.checkpoint`); in any case once the whole job ended
    /// successfully (its bounded input ended, or it was stopped with a drain,
    /// `JobClient::stop`). Then every record before those offsets has been written
    /// (and, by a two-phase-commit sink, committed), so a new job started from the
    /// committed offsets ([`StartingOffsets::Committed`]) loses nothing: at-least-once
    /// (records after the last commit are read again). Nothing is committed on a
    /// timer, nor after a cancellation or a failure. Default off.
    pub fn commit_offsets(mut self, commit: bool) -> Self {
        self.commit_offsets = commit;
        self
    }

    /// Sets a librdkafka consumer property (passed through as is; it overrides the
    /// source's own defaults).
    pub fn property(mut self, key: &str, value: &str) -> Self {
        self.properties.push((key.to_string(), value.to_string()));
        self
    }

    /// Deserializes whole messages (key and value) with `deserializer`.
    pub fn deserializer(mut self, deserializer: impl KafkaRecordDeserializer<T>) -> Self {
        self.deserializer = Some(Arc::new(deserializer));
        self
    }

    /// Deserializes message values with `deserializer`, ignoring keys.
    pub fn value_deserializer(self, deserializer: impl ValueDeserializer<T>) -> Self
    where
        T: 'static,
    {
        self.deserializer(ValueOnly(deserializer))
    }

    /// Builds the source.
    ///
    /// # Errors
    /// When the bootstrap servers, the topics or the deserializer are missing, or the
    /// topic pattern is not a regular expression.
    pub fn build(self) -> Result<KafkaSource<T>, KafkaConnectorError> {
        let bootstrap = self
            .bootstrap
            .ok_or(KafkaConnectorError::Missing("bootstrap_servers"))?;
        let topics = self
            .topics
            .ok_or(KafkaConnectorError::Missing("topics or topic_pattern"))?
            .map_err(KafkaConnectorError::Invalid)?;
        let deserializer = self
            .deserializer
            .ok_or(KafkaConnectorError::Missing("deserializer"))?;
        if let Some(idleness) = self.watermarks.as_ref().and_then(|w| w.idleness())
            && idleness.is_zero()
        {
            return Err(KafkaConnectorError::Invalid(
                "the watermark idleness timeout must be greater than zero".into(),
            ));
        }
        let mut properties = vec![
            ("bootstrap.servers".to_string(), bootstrap),
            (
                "group.id".to_string(),
                self.group_id.unwrap_or_else(|| "flink-rs".to_string()),
            ),
            ("enable.auto.commit".into(), "false".into()),
            ("enable.auto.offset.store".into(), "false".into()),
            ("auto.offset.reset".into(), "earliest".into()),
            ("queued.max.messages.kbytes".into(), "2048".into()),
            ("queued.min.messages".into(), "10000".into()),
        ];
        properties.extend(self.properties);
        Ok(KafkaSource {
            config: Arc::new(Config {
                properties,
                topics,
                starting: self.starting,
                boundedness: self.boundedness,
                commit_offsets: self.commit_offsets,
            }),
            deserializer,
            offsets: KafkaOffsets::default(),
            watermarks: self.watermarks.map(|strategy| SourceWatermarks {
                strategy,
                interval: self.watermark_interval,
            }),
        })
    }
}

impl KafkaSourceBuilder<Vec<u8>> {
    /// Values as raw bytes.
    pub fn bytes_values(self) -> Self {
        self.value_deserializer(BytesDeserializer)
    }
}

impl KafkaSourceBuilder<String> {
    /// Values as UTF-8 text (invalid UTF-8 becomes a dead letter).
    pub fn string_values(self) -> Self {
        self.value_deserializer(StringDeserializer)
    }
}

impl<T: DeserializeOwned + 'static> KafkaSourceBuilder<T> {
    /// Values as JSON documents of `T` (invalid JSON becomes a dead letter).
    pub fn json_values(self) -> Self {
        self.value_deserializer(JsonDeserializer::<T>::new())
    }
}

impl<T: Send + 'static> Source<T> for KafkaSource<T> {
    fn boundedness(&self) -> Boundedness {
        self.config.boundedness
    }

    /// Partitions are assigned by (topic, partition) order modulo the parallelism
    /// and every reader holds every saved position, so each partition resumes from
    /// its saved offset in exactly one reader of any new parallelism.
    fn can_restore_rescaled(&self) -> bool {
        true
    }

    fn timestamps(&self) -> Option<TimestampFn<T>> {
        self.watermarks
            .as_ref()
            .and_then(|w| w.strategy.timestamp_assigner().cloned())
    }

    fn create_reader(&self, ctx: &RuntimeContext) -> Box<dyn SourceReader<T>> {
        let commit_slot = self.config.commit_offsets.then(|| {
            let slot = CommitSlot::default();
            ctx.services.on_job_finished.register(commit_when_finished(
                slot.clone(),
                self.offsets.clone(),
                ctx.subtask_index,
            ));
            slot
        });
        Box::new(KafkaReader {
            config: self.config.clone(),
            deserializer: self.deserializer.clone(),
            offsets: self.offsets.clone(),
            subtask: ctx.subtask_index,
            parallelism: ctx.parallelism,
            operator: ctx.operator_name.to_string(),
            dead_letters: ctx.side_output(&dead_letter_tag::<Vec<u8>>()),
            consumer_lag: ctx.metrics.custom("consumer_lag"),
            commit_slot,
            state: None,
            // Every instance's position, so that each partition is found whichever
            // instance had it (the parallelism may have changed). Bytes that do not
            // decode are skipped here and fail the restore in the reader they are
            // dealt to (`restore_position` / `restore_rescaled`).
            restored: (!ctx.restored.is_empty()).then(|| {
                merge_positions(
                    ctx.restored
                        .all()
                        .filter_map(|bytes| decode_positions(bytes).ok()),
                )
            }),
            to_commit: Vec::new(),
            watermarks: self.watermarks.as_ref().map(|w| {
                SplitWatermarks::new(w.strategy.clone(), ctx.services.clock.clone(), w.interval)
            }),
            last_batch: LastBatch::default(),
        })
    }
}

/// One assigned partition.
struct Assigned {
    topic: String,
    partition: i32,
    next_offset: i64,
    stop: Option<i64>,
    done: bool,
    /// The partition's log start offset (low watermark) as last seen.
    log_start: i64,
    /// Records and dead letters not yet published to the shared handle.
    new_records: u64,
    new_dead_letters: u64,
    /// Whether this poll touched the partition.
    touched: bool,
    /// Offsets ahead whose messages went out as dead letters before the restore
    /// (see `PartitionPosition::dead_letters_out`), ascending.
    dead_letters_out: VecDeque<i64>,
}

struct ReaderState {
    consumer: Arc<BaseConsumer>,
    partitions: Vec<Assigned>,
    /// Topic -> (partition, index into `partitions`).
    index: HashMap<String, Vec<(i32, usize)>>,
    last_refresh: Instant,
}

struct KafkaReader<T> {
    config: Arc<Config>,
    deserializer: Arc<dyn KafkaRecordDeserializer<T>>,
    offsets: KafkaOffsets,
    subtask: usize,
    parallelism: usize,
    operator: String,
    dead_letters: SideOutput<DeadLetter<Vec<u8>>>,
    /// This reader's lag (records behind the high watermarks), as an operator metric.
    consumer_lag: Arc<std::sync::atomic::AtomicU64>,
    /// Where the consumer goes for the end-of-job commit, when committing is on.
    commit_slot: Option<CommitSlot>,
    state: Option<ReaderState>,
    /// The position restored from a checkpoint, by (topic, partition), until the
    /// reader starts.
    restored: Option<HashMap<(String, i32), PartitionPosition>>,
    /// Positions of checkpoints taken and not yet known complete, oldest first: the
    /// offsets to commit when they complete.
    to_commit: Vec<(u64, Vec<PartitionPosition>)>,
    /// The per-partition watermarks, if the source makes them; partition `i` of
    /// `ReaderState::partitions` is tracked as `i`.
    watermarks: Option<SplitWatermarks<T>>,
    /// What the last poll emitted, for the position after part of it.
    last_batch: LastBatch,
}

impl<T> KafkaReader<T> {
    /// Lists, splits, resolves and assigns this reader's partitions.
    fn start(&self) -> Result<ReaderState, KafkaConnectorError> {
        let mut cc = ClientConfig::new();
        for (k, v) in &self.config.properties {
            cc.set(k, v);
        }
        let consumer: BaseConsumer = cc
            .create()
            .map_err(KafkaConnectorError::client("create consumer"))?;
        let all = list_partitions(&consumer, &self.config.topics)?;
        let mine: Vec<(String, i32)> = all
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % self.parallelism == self.subtask)
            .map(|(_, tp)| tp)
            .collect();
        let committed = if self.config.starting == StartingOffsets::Committed && !mine.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for (t, p) in &mine {
                tpl.add_partition(t, *p);
            }
            Some(
                consumer
                    .committed_offsets(tpl, LOOKUP_TIMEOUT)
                    .map_err(KafkaConnectorError::client("read committed offsets"))?,
            )
        } else {
            None
        };
        let by_time = if let StartingOffsets::Timestamp(ts) = self.config.starting {
            let mut tpl = TopicPartitionList::new();
            for (t, p) in &mine {
                tpl.add_partition_offset(t, *p, Offset::Offset(ts))
                    .map_err(KafkaConnectorError::client("offsets for time"))?;
            }
            Some(
                consumer
                    .offsets_for_times(tpl, LOOKUP_TIMEOUT)
                    .map_err(KafkaConnectorError::client("offsets for time"))?,
            )
        } else {
            None
        };
        let bounded = self.config.boundedness == Boundedness::Bounded;
        let mut partitions = Vec::new();
        let mut assignment = TopicPartitionList::new();
        for (topic, partition) in mine {
            let (low, high) = consumer
                .fetch_watermarks(&topic, partition, LOOKUP_TIMEOUT)
                .map_err(KafkaConnectorError::client(format!(
                    "watermarks of {topic}/{partition}"
                )))?;
            let lookup = |list: &Option<TopicPartitionList>| {
                list.as_ref()
                    .and_then(|l| l.find_partition(&topic, partition))
                    .map(|e| e.offset())
            };
            let restored = self
                .restored
                .as_ref()
                .and_then(|r| r.get(&(topic.clone(), partition)));
            let start = match self.config.starting {
                StartingOffsets::Earliest => low,
                StartingOffsets::Latest => high,
                StartingOffsets::Committed => match lookup(&committed) {
                    Some(Offset::Offset(o)) => o.clamp(low, high),
                    _ => low,
                },
                StartingOffsets::Timestamp(_) => match lookup(&by_time) {
                    Some(Offset::Offset(o)) => o.clamp(low, high),
                    _ => high,
                },
            };
            // A restored partition goes on where the checkpoint left it, up to the
            // stop offset it had (records deleted meanwhile are skipped).
            let start = restored.map_or(start, |r| r.next_offset.max(low));
            let stop = bounded.then(|| restored.and_then(|r| r.stop).unwrap_or(high));
            let done = stop.is_some_and(|s| start >= s);
            tracing::info!(
                subtask = self.subtask,
                %topic, partition, start, ?stop, low, high,
                "kafka source: assigned partition"
            );
            self.offsets.update(&topic, partition, |p| {
                p.subtask = self.subtask;
                p.next_offset = start;
                p.high_watermark = high;
                p.stop_offset = stop;
            });
            if !done {
                assignment
                    .add_partition_offset(&topic, partition, Offset::Offset(start))
                    .map_err(KafkaConnectorError::client("assign"))?;
            }
            let dead_letters_out = restored
                .map(|r| r.dead_letters_out.iter().copied().filter(|&d| d >= start))
                .into_iter()
                .flatten()
                .collect();
            partitions.push(Assigned {
                topic,
                partition,
                next_offset: start,
                stop,
                done,
                log_start: low,
                new_records: 0,
                new_dead_letters: 0,
                touched: false,
                dead_letters_out,
            });
        }
        consumer
            .assign(&assignment)
            .map_err(KafkaConnectorError::client("assign"))?;
        let mut index: HashMap<String, Vec<(i32, usize)>> = HashMap::new();
        for (i, p) in partitions.iter().enumerate() {
            index
                .entry(p.topic.clone())
                .or_default()
                .push((p.partition, i));
        }
        let consumer = Arc::new(consumer);
        if let Some(slot) = &self.commit_slot {
            slot.lock().unwrap_or_else(|p| p.into_inner()).consumer = Some(consumer.clone());
        }
        Ok(ReaderState {
            consumer,
            partitions,
            index,
            last_refresh: Instant::now(),
        })
    }
}

impl<T> KafkaReader<T> {
    /// Decodes `positions` (an error says what is wrong with the bytes) and merges
    /// them into the restored position.
    fn add_restored(&mut self, positions: &[&[u8]]) -> Result<(), StateError> {
        let mut all: Vec<Vec<PartitionPosition>> = positions
            .iter()
            .map(|bytes| decode_positions(bytes))
            .collect::<Result<_, _>>()?;
        if let Some(restored) = self.restored.take() {
            all.push(restored.into_values().collect());
        }
        self.restored = Some(merge_positions(all));
        Ok(())
    }

    /// Every partition's position now (the restored one before the reader started).
    fn position(&self) -> Vec<PartitionPosition> {
        match &self.state {
            Some(state) => state
                .partitions
                .iter()
                .map(|p| PartitionPosition {
                    topic: p.topic.clone(),
                    partition: p.partition,
                    next_offset: p.next_offset,
                    stop: p.stop,
                    dead_letters_out: p
                        .dead_letters_out
                        .iter()
                        .copied()
                        .filter(|&d| d >= p.next_offset)
                        .collect(),
                })
                .collect(),
            None => {
                let mut list: Vec<_> = self
                    .restored
                    .iter()
                    .flat_map(|r| r.values().cloned())
                    .collect();
                list.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
                list
            }
        }
    }

    /// The bytes of `position`, taken for checkpoint `checkpoint_id`: its offsets
    /// are committed when the checkpoint completes, if committing is on, and when
    /// the job finished if it is the newest.
    fn checkpoint_position(
        &mut self,
        checkpoint_id: u64,
        position: Vec<PartitionPosition>,
    ) -> Result<Option<Vec<u8>>, StateError> {
        let bytes = encode_positions(&position)?;
        if let Some(slot) = &self.commit_slot {
            // The newest: a later checkpoint's position is never behind.
            slot.lock().unwrap_or_else(|p| p.into_inner()).checkpointed = Some(position.clone());
        }
        if self.config.commit_offsets {
            self.to_commit.push((checkpoint_id, position));
        }
        Ok(Some(bytes))
    }

    /// Commits `positions` to the group, synchronously: a checkpoint's offsets are
    /// committed before the task goes on (a failed commit is logged: the offsets are
    /// in the checkpoint, the group's are for monitoring and new jobs).
    fn commit(&self, checkpoint_id: u64, positions: &[PartitionPosition]) {
        let Some(state) = &self.state else {
            return; // never started: nothing read since the restored position
        };
        let mut tpl = TopicPartitionList::new();
        // Only this reader's partitions (a position taken before it started holds
        // every restored one).
        let mine = |p: &&PartitionPosition| {
            state
                .index
                .get(&p.topic)
                .is_some_and(|ps| ps.iter().any(|(n, _)| *n == p.partition))
        };
        for p in positions.iter().filter(mine) {
            let _ = tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(p.next_offset));
        }
        if tpl.count() == 0 {
            return;
        }
        match state.consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => tracing::debug!(
                subtask = self.subtask,
                checkpoint_id,
                partitions = tpl.count(),
                "kafka source: committed the offsets of a completed checkpoint"
            ),
            Err(e) => tracing::warn!(
                subtask = self.subtask,
                checkpoint_id,
                error = %e,
                "kafka source: committing the offsets of a completed checkpoint failed"
            ),
        }
    }
}

impl Assigned {
    /// Whether the message at `offset` (the next one read) went out as a dead
    /// letter before the restore; forgets the dead letters out up to it.
    fn passes_dead_letter_out(&mut self, offset: i64) -> bool {
        while self.dead_letters_out.front().is_some_and(|&d| d < offset) {
            self.dead_letters_out.pop_front();
        }
        self.dead_letters_out.front() == Some(&offset) && {
            self.dead_letters_out.pop_front();
            true
        }
    }

    /// Finishes a bounded partition the consumer is known to be at or past its stop
    /// offset in, although no message brought it there: the offsets left below the stop
    /// hold nothing the consumer delivers (transaction markers, aborted or compacted
    /// records), or the records were deleted (retention, DeleteRecords) before they
    /// were fetched. Waiting for a message at `stop - 1` would wait forever. The next
    /// offset becomes the stop offset, as for a partition read to its end. Returns
    /// whether the partition finished now.
    fn finish_at(&mut self, offset: i64) -> bool {
        match self.stop {
            Some(stop) if !self.done && offset >= stop => {
                self.next_offset = stop;
                self.done = true;
                self.touched = true;
                true
            }
            _ => false,
        }
    }
}

/// Stops fetching a finished partition.
fn pause(consumer: &BaseConsumer, part: &Assigned) {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&part.topic, part.partition);
    if let Err(e) = consumer.pause(&tpl) {
        tracing::debug!(error = %e, "kafka source: pause of a finished partition");
    }
}

fn list_partitions(
    consumer: &BaseConsumer,
    topics: &Topics,
) -> Result<Vec<(String, i32)>, KafkaConnectorError> {
    let mut out = Vec::new();
    let mut collect = |metadata: rdkafka::metadata::Metadata,
                       keep: &dyn Fn(&str) -> bool|
     -> Result<(), KafkaConnectorError> {
        for topic in metadata.topics() {
            if !keep(topic.name()) {
                continue;
            }
            if let Some(err) = topic.error() {
                return Err(KafkaConnectorError::Invalid(format!(
                    "topic {}: {}",
                    topic.name(),
                    rdkafka::types::RDKafkaErrorCode::from(err)
                )));
            }
            for p in topic.partitions() {
                out.push((topic.name().to_string(), p.id()));
            }
        }
        Ok(())
    };
    match topics {
        Topics::List(list) => {
            for t in list {
                let md = consumer
                    .fetch_metadata(Some(t), LOOKUP_TIMEOUT)
                    .map_err(KafkaConnectorError::client(format!("metadata of {t}")))?;
                collect(md, &|name| name == t)?;
            }
        }
        Topics::Pattern(re) => {
            let md = consumer
                .fetch_metadata(None, LOOKUP_TIMEOUT)
                .map_err(KafkaConnectorError::client("metadata"))?;
            collect(md, &|name| !name.starts_with("__") && re.is_match(name))?;
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

impl<T: Send + 'static> SourceReader<T> for KafkaReader<T> {
    fn snapshot_position(&mut self) -> Result<Option<Vec<u8>>, StateError> {
        encode_positions(&self.position()).map(Some)
    }

    fn snapshot_position_for_checkpoint(
        &mut self,
        checkpoint_id: u64,
    ) -> Result<Option<Vec<u8>>, StateError> {
        let position = self.position();
        self.checkpoint_position(checkpoint_id, position)
    }

    /// Each partition back to its first record of the last batch that did not go
    /// out (see `LastBatch::position_after`).
    fn snapshot_position_after(&mut self, emitted: usize) -> Result<Option<Vec<u8>>, StateError> {
        let position = self.last_batch.position_after(emitted, self.position())?;
        encode_positions(&position).map(Some)
    }

    /// As `snapshot_position_after`; the checkpoint's completion commits these
    /// offsets, so never one past a record that did not go out.
    fn snapshot_position_after_for_checkpoint(
        &mut self,
        checkpoint_id: u64,
        emitted: usize,
    ) -> Result<Option<Vec<u8>>, StateError> {
        let position = self.last_batch.position_after(emitted, self.position())?;
        self.checkpoint_position(checkpoint_id, position)
    }

    /// Commits the offsets of the newest checkpoint up to `checkpoint_id` (older
    /// ones are covered by it; the final snapshot's id is the largest).
    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) {
        let done = self
            .to_commit
            .iter()
            .rposition(|(id, _)| *id <= checkpoint_id);
        if let Some(i) = done {
            let (id, positions) = self.to_commit.drain(..=i).next_back().expect("non-empty");
            self.commit(id, &positions);
        }
    }

    /// Checks this instance's own position; the reader already holds every
    /// instance's (see `create_reader`) and adds this one to them.
    fn restore_position(&mut self, position: &[u8]) -> Result<(), StateError> {
        self.add_restored(&[position])
    }

    /// A restore at another parallelism. The positions dealt to this reader
    /// (saved subtask `j` to reader `j % p`) need not hold its partitions: the
    /// partition -> reader assignment depends on the parallelism, so the reader
    /// already holds every old instance's position (see `create_reader`) and takes
    /// from it the partitions it is assigned at start. Here it checks the positions
    /// dealt to it, so a corrupt one fails the restore naming the source: every
    /// saved position is dealt to exactly one reader.
    fn restore_rescaled(&mut self, positions: &[&[u8]]) -> Result<(), StateError> {
        self.add_restored(positions)
    }

    fn poll_next(&mut self, out: &mut SourceOutput<T>) -> SourcePoll {
        self.last_batch.clear();
        if self.state.is_none() {
            let state = self
                .start()
                .unwrap_or_else(|e| panic!("kafka source subtask {}: {e}", self.subtask));
            if let Some(w) = &mut self.watermarks {
                for (i, part) in state.partitions.iter().enumerate() {
                    let tracked = w.track();
                    debug_assert_eq!(tracked, i);
                    if part.done {
                        w.finish(i);
                    }
                }
            }
            self.state = Some(state);
        }
        let state = self.state.as_mut().expect("started");
        if !state.partitions.iter().any(|p| !p.done)
            && self.config.boundedness == Boundedness::Unbounded
        {
            // Nothing assigned to this reader: idle until cancelled.
            if let Some(w) = &mut self.watermarks {
                w.emit(false, out);
            }
            return SourcePoll::Pending(POLL_WAIT);
        }
        let mut wait = POLL_WAIT;
        let mut emitted = 0;
        // Whether librdkafka's queue ran empty: every message fetched so far was seen.
        let mut drained = false;
        while emitted < BATCH && state.partitions.iter().any(|p| !p.done) {
            let Some(result) = state.consumer.poll(wait) else {
                drained = true;
                break;
            };
            wait = Duration::ZERO;
            let msg = match result {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "kafka source: consumer error");
                    continue;
                }
            };
            let Some(i) = state.index.get(msg.topic()).and_then(|ps| {
                ps.iter()
                    .find(|(p, _)| *p == msg.partition())
                    .map(|(_, i)| *i)
            }) else {
                continue;
            };
            let part = &mut state.partitions[i];
            let offset = msg.offset();
            if part.done || offset < part.next_offset || part.stop.is_some_and(|s| offset >= s) {
                continue;
            }
            part.next_offset = offset + 1;
            emitted += 1;
            // Some(true): a record; Some(false): a new dead letter; None: a dead
            // letter that went out before the restore, which emits nothing now.
            let good = if part.passes_dead_letter_out(offset) {
                self.last_batch.dead_letter(i, offset);
                None
            } else {
                match self.deserializer.deserialize(msg.key(), msg.payload()) {
                    Ok(record) => {
                        if let Some(w) = &mut self.watermarks {
                            w.on_record(i, &record, msg.timestamp().to_millis());
                        }
                        out.collect(record);
                        self.last_batch.record(i, offset);
                        Some(true)
                    }
                    Err(err) => {
                        let reason = format!(
                            "{err} (topic {}, partition {}, offset {offset})",
                            part.topic, part.partition
                        );
                        self.dead_letters.collect(DeadLetter::new(
                            msg.payload().unwrap_or_default().to_vec(),
                            &self.operator,
                            reason,
                        ));
                        self.last_batch.dead_letter(i, offset);
                        Some(false)
                    }
                }
            };
            let next = part.next_offset;
            if part.stop.is_some_and(|s| next >= s) {
                part.done = true;
                pause(&state.consumer, part);
            }
            part.touched = true;
            match good {
                Some(true) => part.new_records += 1,
                Some(false) => part.new_dead_letters += 1,
                None => {}
            }
        }
        if drained && state.partitions.iter().any(|p| !p.done) {
            // A bounded partition whose last offsets below the stop are no message (a
            // transaction marker, say) ends when the consumer's position passes them;
            // one whose unread records were deleted ends when the log start passes the
            // stop (the consumer was reset there and its position says nothing).
            let positions = state.consumer.position().ok();
            for part in state.partitions.iter_mut().filter(|p| !p.done) {
                let position = positions
                    .as_ref()
                    .and_then(|l| l.find_partition(&part.topic, part.partition))
                    .map(|e| e.offset());
                let before = part.next_offset;
                if let Some(Offset::Offset(position)) = position
                    && part.finish_at(position)
                {
                    tracing::debug!(
                        subtask = self.subtask, topic = %part.topic, partition = part.partition,
                        next_offset = before, position, stop = ?part.stop,
                        "kafka source: no messages left below the stop offset; partition done"
                    );
                    pause(&state.consumer, part);
                } else if part.finish_at(part.log_start) {
                    tracing::warn!(
                        subtask = self.subtask, topic = %part.topic, partition = part.partition,
                        next_offset = before, log_start = part.log_start, stop = ?part.stop,
                        deleted_unread = part.next_offset - before,
                        "kafka source: records deleted (retention?) before they were read; \
                         partition done"
                    );
                    pause(&state.consumer, part);
                }
            }
        }
        // Publish this poll's progress: one update per partition touched.
        for part in state.partitions.iter_mut().filter(|p| p.touched) {
            let (next, records, dead) = (part.next_offset, part.new_records, part.new_dead_letters);
            self.offsets.update(&part.topic, part.partition, |p| {
                p.next_offset = next;
                p.high_watermark = p.high_watermark.max(next);
                p.records += records;
                p.dead_letters += dead;
            });
            part.touched = false;
            part.new_records = 0;
            part.new_dead_letters = 0;
        }
        self.consumer_lag.store(
            self.offsets.lag_of_subtask(self.subtask),
            std::sync::atomic::Ordering::Relaxed,
        );
        if state.last_refresh.elapsed() >= WATERMARK_REFRESH {
            state.last_refresh = Instant::now();
            for p in &mut state.partitions {
                if let Ok((low, high)) = state.consumer.fetch_watermarks(
                    &p.topic,
                    p.partition,
                    Duration::from_millis(500),
                ) {
                    p.log_start = p.log_start.max(low);
                    self.offsets
                        .update(&p.topic, p.partition, |s| s.high_watermark = high);
                }
            }
        }
        let bounded = self.config.boundedness == Boundedness::Bounded;
        if let Some(w) = &mut self.watermarks {
            for (i, part) in state.partitions.iter().enumerate() {
                if part.done {
                    w.finish(i);
                }
            }
            w.emit(bounded, out);
        }
        let finished = state.partitions.iter().all(|p| p.done) && bounded;
        if finished {
            SourcePoll::Finished
        } else if emitted > 0 {
            SourcePoll::MoreAvailable
        } else {
            SourcePoll::Pending(Duration::ZERO)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use flink_core::checkpoint::RestoredState;
    use flink_core::clock::ManualClock;

    use flink_core::operator::RuntimeContext;

    use flink_core::source::Source;

    use super::{Assigned, KafkaSource, PartitionPosition, decode_positions, encode_positions};

    /// The context of reader `subtask` of `parallelism`, restoring `saved` (one
    /// position per old subtask).
    fn context(subtask: usize, parallelism: usize, saved: &[Vec<u8>]) -> RuntimeContext {
        let by_subtask: Vec<Option<Arc<[u8]>>> = saved
            .iter()
            .map(|b| Some(Arc::from(b.as_slice())))
            .collect();
        RuntimeContext {
            restored: RestoredState {
                checkpoint_id: Some(1),
                by_subtask: by_subtask.into(),
            },
            ..RuntimeContext::standalone(
                "Kafka",
                subtask,
                parallelism,
                Arc::new(ManualClock::new()),
            )
        }
    }

    fn source() -> KafkaSource<String> {
        KafkaSource::builder()
            .bootstrap_servers("127.0.0.1:1")
            .topics(["t"])
            .bounded()
            .string_values()
            .build()
            .unwrap()
    }

    #[test]
    fn a_rescaled_reader_holds_every_saved_partition_until_it_starts() {
        // Saved at 2: subtask 0 had partitions 0 and 2, subtask 1 had 1 and 3.
        let saved = [
            encode_positions(&[pos(0, 7), pos(2, 9)]).unwrap(),
            encode_positions(&[pos(1, 4), pos(3, 5)]).unwrap(),
        ];
        let source = source();
        assert!(source.can_restore_rescaled());
        // Reader 2 of 3 is dealt no saved position, yet it will own partition 2.
        let mut reader = source.create_reader(&context(2, 3, &saved));
        reader.restore_rescaled(&[]).unwrap();
        let position: Vec<PartitionPosition> =
            decode_positions(&reader.snapshot_position().unwrap().unwrap()).unwrap();
        assert_eq!(position, [pos(0, 7), pos(1, 4), pos(2, 9), pos(3, 5)]);
    }

    #[test]
    fn a_corrupt_position_fails_the_restore() {
        let good = encode_positions(&[pos(0, 7)]).unwrap();
        let saved = [good.clone(), b"not a position".to_vec()];
        let source = source();
        let mut reader = source.create_reader(&context(0, 1, &saved));
        let err = reader
            .restore_rescaled(&[&good, b"not a position"])
            .unwrap_err();
        assert!(err.to_string().contains("corrupt state"), "{err}");
        // A truncated position as well.
        let mut reader = source.create_reader(&context(0, 2, &saved[..1]));
        let err = reader
            .restore_position(&good[..good.len() - 3])
            .unwrap_err();
        assert!(err.to_string().contains("corrupt state"), "{err}");
    }

    fn pos(partition: i32, next_offset: i64) -> PartitionPosition {
        PartitionPosition {
            topic: "t".into(),
            partition,
            next_offset,
            stop: Some(100),
            dead_letters_out: Vec::new(),
        }
    }

    fn part(next_offset: i64, stop: Option<i64>) -> Assigned {
        Assigned {
            topic: "t".into(),
            partition: 0,
            next_offset,
            stop,
            done: false,
            log_start: 0,
            new_records: 0,
            new_dead_letters: 0,
            touched: false,
            dead_letters_out: Default::default(),
        }
    }

    #[test]
    fn a_bounded_partition_finishes_once_the_consumer_is_at_or_past_its_stop() {
        // Below the stop: still reading.
        let mut p = part(10, Some(17));
        assert!(!p.finish_at(16));
        assert_eq!((p.done, p.next_offset, p.touched), (false, 10, false));
        // At the stop (a transaction marker at 16 was passed): done, at the stop.
        assert!(p.finish_at(17));
        assert_eq!((p.done, p.next_offset, p.touched), (true, 17, true));
        // Once only.
        assert!(!p.finish_at(20));
        assert_eq!(p.next_offset, 17);
        // Past the stop (the log start moved beyond it): done, at the stop, not beyond.
        let mut p = part(3, Some(17));
        assert!(p.finish_at(40));
        assert_eq!((p.done, p.next_offset), (true, 17));
    }

    #[test]
    fn a_dead_letter_out_before_the_restore_is_passed_over_once() {
        let mut p = part(10, None);
        p.dead_letters_out = [12, 15].into();
        assert!(!p.passes_dead_letter_out(10));
        assert!(p.passes_dead_letter_out(12));
        assert!(!p.passes_dead_letter_out(12));
        // 15 was deleted before it was read: forgotten once the reader is past it.
        assert!(!p.passes_dead_letter_out(16));
        assert!(p.dead_letters_out.is_empty());
    }

    #[test]
    fn an_unbounded_partition_never_finishes() {
        let mut p = part(10, None);
        assert!(!p.finish_at(i64::MAX));
        assert_eq!((p.done, p.next_offset), (false, 10));
    }
}
