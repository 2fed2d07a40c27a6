//! [`StreamExecutionEnvironment`]: where a job is described.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::config::{BufferTimeout, ExecutionConfig};
use crate::datastream::DataStream;
use crate::error::GraphError;
use crate::graph::{JobGraph, StreamGraph};
use crate::node::{ChainingStrategy, EdgePartitioner, NodeKind, SourceNode};
use crate::source::Source;
use crate::sources::{CollectionSource, GeneratorSource, IteratorSource, SequenceSource};
use crate::stream_type::{Record, StreamType, TypeOf};

/// A node as the builder records it, before defaults are resolved.
pub(crate) struct NodeSpec {
    pub(crate) name: String,
    pub(crate) uid: Option<String>,
    pub(crate) parallelism: Option<usize>,
    pub(crate) chaining: ChainingStrategy,
    pub(crate) kind: NodeKind,
    pub(crate) output_type: Arc<dyn StreamType>,
    /// Record types of the side outputs read downstream, by tag id.
    pub(crate) side_types: Vec<(String, Arc<dyn StreamType>)>,
    pub(crate) is_sink: bool,
    /// Whether dead letters nobody reads are dropped (and counted) instead of failing.
    pub(crate) discard_dead_letters: bool,
}

/// An edge as the builder records it.
pub(crate) struct EdgeSpec {
    pub(crate) source: usize,
    pub(crate) target: usize,
    pub(crate) partitioner: EdgePartitioner,
    pub(crate) tag: Option<String>,
}

#[derive(Default)]
pub(crate) struct Builder {
    pub(crate) config: ExecutionConfig,
    pub(crate) nodes: Vec<NodeSpec>,
    pub(crate) edges: Vec<EdgeSpec>,
    /// Problems found while describing the job, reported when it is built.
    pub(crate) errors: Vec<GraphError>,
    /// The clock operators wait on; `None` means the runtime's real clock.
    pub(crate) clock: Option<Arc<dyn Clock>>,
    /// The five-stage pipelines applied in this job, for the runtime to show.
    pub(crate) pipelines: Vec<crate::pipeline::PipelineHandle>,
    /// Streaming, batch or automatic, as set.
    pub(crate) runtime_mode: crate::runtime_mode::RuntimeMode,
    /// What the mode resolved to when the job was last built, read by the operators
    /// that run differently in batch mode.
    pub(crate) resolved_mode: crate::runtime_mode::ResolvedMode,
}

/// The entry point of a job: holds the configuration and the operators described so
/// far. Cheap to clone; clones describe the same job.
///
/// ```
/// use flink_core::prelude::*;
///
/// let env = StreamExecutionEnvironment::new();
/// env.set_parallelism(2);
/// let out = env.from_sequence(1, 10).map(|x| x * 2).collect_vec();
/// let plan = env.job_graph().unwrap();
/// assert_eq!(plan.vertices.len(), 1); // source, map and sink form one chain
/// # let _ = out;
/// ```
#[derive(Clone, Default)]
pub struct StreamExecutionEnvironment {
    pub(crate) inner: Rc<RefCell<Builder>>,
}

impl StreamExecutionEnvironment {
    /// A new environment with the default configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new environment with `config` (validated when the job is built).
    pub fn with_config(config: ExecutionConfig) -> Self {
        let env = Self::new();
        env.inner.borrow_mut().config = config;
        env
    }

    /// The current configuration.
    pub fn config(&self) -> ExecutionConfig {
        self.inner.borrow().config.clone()
    }

    /// Changes the configuration in place.
    pub fn configure(&self, f: impl FnOnce(&mut ExecutionConfig)) -> &Self {
        f(&mut self.inner.borrow_mut().config);
        self
    }

    /// Serves the job's REST API (Flink's `/jobs/...` endpoints) and Prometheus
    /// `/metrics` on `address` while it runs; the runtime starts the server when the
    /// job is submitted and the job's client tells the address it bound (port 0
    /// picks a free one). `address` must be a loopback address such as
    /// `127.0.0.1:8081`; serving on another interface is explicit, through
    /// [`enable_web_ui_with`](Self::enable_web_ui_with) and
    /// [`WebUiConfig::exposed`](crate::web_ui::WebUiConfig::exposed). A bad address is
    /// a `ConfigError` when the job is built. See docs/rest-api.md.
    ///
    /// ```
    /// use flink_core::prelude::*;
    ///
    /// let env = StreamExecutionEnvironment::new();
    /// env.enable_web_ui("127.0.0.1:0".parse().unwrap());
    /// assert_eq!(env.config().web_ui, Some(WebUiConfig::loopback(0)));
    /// ```
    pub fn enable_web_ui(&self, address: std::net::SocketAddr) -> &Self {
        self.enable_web_ui_with(crate::web_ui::WebUiConfig::new(address))
    }

    /// Serves the REST API and metrics as `config` says (address, exposure, token).
    pub fn enable_web_ui_with(&self, config: crate::web_ui::WebUiConfig) -> &Self {
        self.configure(|c| c.web_ui = Some(config))
    }

    /// Takes a checkpoint every `interval` (Flink's `enableCheckpointing`), with
    /// Flink's defaults for the rest; the returned settings change them. A failed
    /// job then restarts from its latest completed checkpoint, per its
    /// [`RestartStrategy`](crate::checkpoint::RestartStrategy). See
    /// docs/checkpoints.md.
    ///
    /// ```
    /// use std::time::Duration;
    /// use flink_core::prelude::*;
    ///
    /// let env = StreamExecutionEnvironment::new();
    /// env.enable_checkpointing(Duration::from_millis(500))
    ///     .set_storage_dir(std::env::temp_dir().join("my-job-checkpoints"));
    /// assert_eq!(env.checkpoint_config().unwrap().interval, Duration::from_millis(500));
    /// ```
    pub fn enable_checkpointing(
        &self,
        interval: Duration,
    ) -> crate::checkpoint::CheckpointSettings {
        self.configure(|c| {
            c.checkpointing = Some(crate::checkpoint::CheckpointConfig::new(interval));
        });
        crate::checkpoint::CheckpointSettings::new(self.clone())
    }

    /// The checkpoint configuration, if checkpointing is enabled.
    pub fn checkpoint_config(&self) -> Option<crate::checkpoint::CheckpointConfig> {
        self.inner.borrow().config.checkpointing.clone()
    }

    /// Starts the job from the savepoint or retained checkpoint in `path` (the
    /// directory holding `_metadata`; Flink's `--fromSavepoint`): a local path or an
    /// object-store URL such as `s3://bucket/savepoints/savepoint-job-3`
    /// ([`CheckpointLocation`](crate::checkpoint::CheckpointLocation); a URL of an
    /// unknown scheme fails the build with a `ConfigError`). State is mapped
    /// to operators by their [`uid`](crate::datastream::DataStream::uid); state of
    /// a uid that no operator of this job has fails the submission unless
    /// [`allow_non_restored_state`](Self::allow_non_restored_state) is set.
    /// Operators may run at another parallelism than when the state was saved.
    /// Reading it fails the submission (nothing starts) when the directory is
    /// missing, a file is corrupt or truncated, or its format is newer.
    ///
    /// ```
    /// use flink_core::prelude::*;
    ///
    /// let env = StreamExecutionEnvironment::new();
    /// env.restore_from("/var/lib/my-job/savepoint-1").allow_non_restored_state(true);
    /// let restore = env.config().restore.unwrap();
    /// assert!(restore.allow_non_restored_state);
    /// env.restore_from("s3://bucket/savepoints/savepoint-job-3");
    /// assert!(env.config().restore.unwrap().path.as_directory().is_none());
    /// ```
    pub fn restore_from(&self, path: impl Into<crate::checkpoint::CheckpointLocation>) -> &Self {
        let path = path.into();
        self.configure(|c| {
            let allow = c
                .restore
                .as_ref()
                .is_some_and(|r| r.allow_non_restored_state);
            c.restore = Some(crate::checkpoint::RestoreSettings {
                path,
                allow_non_restored_state: allow,
            });
        })
    }

    /// Whether a restore skips state that no operator of the job owns (Flink's
    /// `--allowNonRestoredState`); see [`restore_from`](Self::restore_from). Call it
    /// after `restore_from`: without a restore it has nothing to apply to.
    pub fn allow_non_restored_state(&self, allow: bool) -> &Self {
        self.configure(|c| {
            if let Some(r) = &mut c.restore {
                r.allow_non_restored_state = allow;
            }
        })
    }

    /// Sets what happens when a task fails (Flink's `restart-strategy`).
    pub fn set_restart_strategy(&self, strategy: crate::checkpoint::RestartStrategy) -> &Self {
        self.configure(|c| c.restart_strategy = Some(strategy))
    }

    /// Sets the default parallelism.
    pub fn set_parallelism(&self, parallelism: usize) -> &Self {
        self.configure(|c| c.parallelism = parallelism)
    }

    /// Sets the maximum parallelism (number of key groups).
    pub fn set_max_parallelism(&self, max_parallelism: usize) -> &Self {
        self.configure(|c| c.max_parallelism = max_parallelism)
    }

    /// Sets the network buffer size in bytes.
    pub fn set_buffer_size(&self, bytes: usize) -> &Self {
        self.configure(|c| c.buffer_size = bytes)
    }

    /// Sets the most output buffers one channel may have queued before its producer
    /// waits (Flink's `taskmanager.network.memory.max-buffers-per-channel`, default
    /// 10); at least 1, checked when the job is built.
    ///
    /// ```
    /// use flink_core::prelude::*;
    ///
    /// let env = StreamExecutionEnvironment::new();
    /// env.set_max_buffers_per_channel(4);
    /// assert_eq!(env.config().max_buffers_per_channel, 4);
    /// ```
    pub fn set_max_buffers_per_channel(&self, buffers: usize) -> &Self {
        self.configure(|c| c.max_buffers_per_channel = buffers)
    }

    /// Sets the buffer timeout: `Some(0)` flushes every record, `None` only full buffers.
    pub fn set_buffer_timeout(&self, timeout: Option<Duration>) -> &Self {
        let t = match timeout {
            Some(d) if d.is_zero() => BufferTimeout::EveryRecord,
            Some(d) => BufferTimeout::Interval(d),
            None => BufferTimeout::OnlyWhenFull,
        };
        self.configure(|c| c.buffer_timeout = t)
    }

    /// Makes every operator of the job wait on `clock` (tests use a
    /// [`ManualClock`](crate::clock::ManualClock) to control time).
    pub fn set_clock(&self, clock: Arc<dyn Clock>) -> &Self {
        self.inner.borrow_mut().clock = Some(clock);
        self
    }

    /// How often periodic watermark generators emit, on the job's clock (Flink's
    /// `setAutoWatermarkInterval`, default 200 ms; zero: after every batch). Applies
    /// to `assign_timestamps_and_watermarks` calls made after it.
    pub fn set_auto_watermark_interval(&self, interval: std::time::Duration) -> &Self {
        self.configure(|c| {
            c.set_auto_watermark_interval(interval);
        })
    }

    /// Spreads the job over the processes `cluster` names, this process being one of
    /// them (application mode: every process runs the same binary and builds the same
    /// graph). A bad setting is a `ConfigError` when the job is built. See
    /// docs/deployment.md.
    ///
    /// ```
    /// use flink_core::cluster::ClusterConfig;
    /// use flink_core::prelude::*;
    ///
    /// let env = StreamExecutionEnvironment::new();
    /// let peers = vec!["127.0.0.1:7000".into(), "127.0.0.1:7001".into()];
    /// env.set_cluster(ClusterConfig::new(2, 5, peers, b"secret".to_vec()));
    /// let _ = env.from_sequence(1, 3).collect_vec();
    /// assert!(env.job_graph().is_err()); // index 5 of 2 processes
    /// ```
    pub fn set_cluster(&self, cluster: crate::cluster::ClusterConfig) -> &Self {
        self.configure(|c| c.cluster = Some(cluster))
    }

    /// Joins the cluster the process environment describes (`FLINK_RS_PROCESSES`,
    /// `FLINK_RS_PROCESS_INDEX`, `FLINK_RS_PEERS`, `FLINK_RS_SECRET`, as the
    /// `flink-rs run` launcher sets them); without them the job runs in this process
    /// alone, so one binary serves both. A bad variable is an error when the job is
    /// built.
    ///
    /// ```
    /// use flink_core::prelude::*;
    ///
    /// let env = StreamExecutionEnvironment::new();
    /// env.set_cluster_from_env();
    /// # let cluster_set = std::env::var("FLINK_RS_PROCESSES").is_ok();
    /// # if !cluster_set {
    /// assert_eq!(env.config().cluster, None);
    /// # }
    /// ```
    pub fn set_cluster_from_env(&self) -> &Self {
        match crate::cluster::ClusterConfig::from_env() {
            Ok(Some(cluster)) => self.set_cluster(cluster),
            Ok(None) => self,
            Err(e) => {
                self.record_error(GraphError::Config(e.into()));
                self
            }
        }
    }

    /// Turns operator chaining off for the whole job.
    pub fn disable_operator_chaining(&self) -> &Self {
        self.configure(|c| c.chaining = false)
    }

    /// Adds a source.
    pub fn from_source<T: Record>(&self, source: impl Source<T>, name: &str) -> DataStream<T> {
        let non_parallel = !source.is_parallel();
        // A source with timestamps emits them with its records.
        let (kind, output_type, timestamps) = match source.timestamps() {
            None => (
                NodeKind::Source(Arc::new(SourceNode {
                    source: Arc::new(source),
                })),
                TypeOf::<T>::arc(),
                crate::timestamped::Timestamps::None,
            ),
            Some(timestamp) => (
                NodeKind::Source(Arc::new(SourceNode::<crate::timestamped::Timestamped<T>> {
                    source: Arc::new(crate::sources::StampedSource::new(
                        Arc::new(source),
                        timestamp,
                    )),
                })),
                TypeOf::<crate::timestamped::Timestamped<T>>::arc(),
                crate::timestamped::Timestamps::Every,
            ),
        };
        let id = self.add_node(name, kind, output_type, false);
        if non_parallel {
            self.inner.borrow_mut().nodes[id].parallelism = Some(1);
        }
        let mut stream = DataStream::from_node(self.clone(), id);
        stream.timestamps = timestamps;
        stream
    }

    /// Runs the job as a stream, a batch, or batch when every source is bounded
    /// (Flink's `setRuntimeMode`; default [`RuntimeMode::Streaming`]). See
    /// [`RuntimeMode`] for what changes in batch mode.
    ///
    /// [`RuntimeMode`]: crate::runtime_mode::RuntimeMode
    /// [`RuntimeMode::Streaming`]: crate::runtime_mode::RuntimeMode::Streaming
    pub fn set_runtime_mode(&self, mode: crate::runtime_mode::RuntimeMode) -> &Self {
        self.inner.borrow_mut().runtime_mode = mode;
        self
    }

    /// The runtime mode as set (before `Automatic` is resolved).
    pub fn runtime_mode(&self) -> crate::runtime_mode::RuntimeMode {
        self.inner.borrow().runtime_mode
    }

    /// The handle the operators read the resolved mode from.
    pub(crate) fn resolved_mode(&self) -> crate::runtime_mode::ResolvedMode {
        self.inner.borrow().resolved_mode.clone()
    }

    /// A bounded source of the numbers `from..=to`, split among parallel instances.
    pub fn from_sequence(&self, from: u64, to: u64) -> DataStream<u64> {
        self.from_source(SequenceSource::range(from, to), "Sequence Source")
    }

    /// A source emitting `f(i)` for `i` in `0..count`, or forever when `count` is `None`.
    pub fn from_generator<T, F>(&self, count: Option<u64>, f: F) -> DataStream<T>
    where
        T: Record,
        F: Fn(u64) -> T + Send + Sync + 'static,
    {
        let source = match count {
            Some(n) => GeneratorSource::bounded(0..n, f),
            None => GeneratorSource::unbounded(f),
        };
        self.from_source(source, "Generator Source")
    }

    /// A source over the elements of `items`.
    pub fn from_collection<T: Record + Sync>(&self, items: Vec<T>) -> DataStream<T> {
        self.from_source(CollectionSource::new(items), "Collection Source")
    }

    /// A non-parallel source draining an iterator.
    pub fn from_iter<I>(&self, iter: I) -> DataStream<I::Item>
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: Record,
    {
        self.from_source(IteratorSource::new(iter.into_iter()), "Iterator Source")
    }

    /// The validated stream graph of the job described so far.
    pub fn stream_graph(&self) -> Result<StreamGraph, GraphError> {
        StreamGraph::build(&self.inner.borrow())
    }

    /// The job graph (operators chained into tasks) of the job described so far.
    pub fn job_graph(&self) -> Result<JobGraph, GraphError> {
        Ok(JobGraph::from_stream_graph(&self.stream_graph()?))
    }

    pub(crate) fn add_node(
        &self,
        name: &str,
        kind: NodeKind,
        output_type: Arc<dyn StreamType>,
        is_sink: bool,
    ) -> usize {
        let mut b = self.inner.borrow_mut();
        b.nodes.push(NodeSpec {
            name: name.to_string(),
            uid: None,
            parallelism: None,
            chaining: ChainingStrategy::Always,
            kind,
            output_type,
            side_types: Vec::new(),
            is_sink,
            discard_dead_letters: false,
        });
        b.nodes.len() - 1
    }

    pub(crate) fn add_edge(
        &self,
        source: usize,
        target: usize,
        partitioner: EdgePartitioner,
        tag: Option<String>,
    ) {
        self.inner.borrow_mut().edges.push(EdgeSpec {
            source,
            target,
            partitioner,
            tag,
        });
    }

    pub(crate) fn record_error(&self, error: GraphError) {
        self.inner.borrow_mut().errors.push(error);
    }

    pub(crate) fn with_node(&self, id: usize, f: impl FnOnce(&mut NodeSpec)) {
        f(&mut self.inner.borrow_mut().nodes[id]);
    }
}
