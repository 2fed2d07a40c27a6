//! The local executor: runs a [`JobGraph`] in this process, one thread per subtask,
//! with every exchange going through credit-based channels.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use flink_core::checkpoint::{RestartStrategy, RestartTracker, RestoredState};

use flink_core::config::BufferTimeout;
use flink_core::graph::{ExecutionGraph, JobGraph};
use flink_core::metrics::OperatorMetrics;
use flink_core::node::NodeKind;
use flink_core::operator::RuntimeContext;
use flink_core::output::AnyOutput;
use flink_core::side_output::{SideOutputs, UnreadDeadLetters};
use flink_core::stream_type::NetworkOutputSetup;

use crate::abandoned::{RecordFlow, abandoned, record_flows};
use crate::async_executor::TokioSpawner;
use crate::bottleneck_watch::BottleneckWatch;
use crate::checkpoint::channel_state::{ChannelState, OutputChannelState, restored_channel_states};
use crate::checkpoint::coordinator::CheckpointCoordinator;
use crate::checkpoint::restore::restored_states;
use crate::checkpoint::savepoint::{MAX_WAITING_SAVEPOINTS, SavepointError, SavepointRequest};
use crate::checkpoint::storage::{CheckpointStore, LoadedCheckpoint, OperatorEntry};
use crate::checkpoint::task_side::{TaskCheckpointing, TaskMessage};
use crate::cluster::ClusterLinks;
use crate::flush_timer::FlushTimer;
use crate::job_client::{JobClient, JobControl, JobObservables, OperatorCounters};
use crate::job_network::JobNetwork as Network;
use crate::job_result::{JobError, JobExecutionResult, JobRestart, OperatorRole};
use crate::job_status::JobStatusCell;
use crate::network::{CancelToken, InputGate, PartitionWriter, ResultPartition};
use crate::precise_timer::SystemClock;
use crate::record_writer::RecordWriter;
use crate::task::{Task, TaskInput, TaskOutcome};
use crate::task_metrics::TaskMetrics;
use flink_core::services::RuntimeServices;

/// Everything one subtask needs to build its task on its own thread.
struct SubtaskSetup {
    vertex: usize,
    subtask: usize,
    gate: Option<InputGate>,
    /// Result partitions of this subtask, by job edge id.
    partitions: HashMap<usize, Arc<ResultPartition>>,
    metrics: Arc<TaskMetrics>,
    /// The checkpoint the operators start from, with each node's state.
    restored: Option<Arc<Restored>>,
    checkpointing: Option<TaskCheckpointing>,
}

/// A checkpoint being restored: its id and every node's state.
struct Restored {
    id: u64,
    by_node: HashMap<usize, RestoredState>,
    /// Channel state of an unaligned checkpoint, by (vertex, subtask).
    channels: HashMap<(usize, usize), Arc<ChannelState>>,
}

impl Restored {
    fn of_node(&self, node: usize) -> RestoredState {
        self.by_node.get(&node).cloned().unwrap_or(RestoredState {
            checkpoint_id: Some(self.id),
            by_subtask: Arc::from([]),
        })
    }
}

/// What stays the same over the attempts of one job.
struct JobSetup {
    jg: Arc<JobGraph>,
    eg: ExecutionGraph,
    /// I/O metrics per (vertex, subtask), kept across attempts.
    io: HashMap<(usize, usize), Arc<crate::network::IoMetrics>>,
    task_metrics: HashMap<(usize, usize), Arc<TaskMetrics>>,
    operators: Vec<OperatorCounters>,
    flush: crate::flush_timer::FlushClock,
    stop_requested: Arc<AtomicBool>,
    clock: Arc<dyn flink_core::clock::Clock>,
    spawner: Arc<TokioSpawner>,
    /// The connections to the other processes of a job spread over several.
    links: Option<Arc<ClusterLinks>>,
}

impl JobSetup {
    /// Whether subtask `subtask` (of any vertex) runs in this process.
    fn is_local(&self, subtask: usize) -> bool {
        self.links
            .as_ref()
            .is_none_or(|l| l.cluster().is_local(subtask))
    }
}

/// One run of the job's tasks; a restart starts another.
struct Attempt {
    cancel: JobCancel,
    messages: Receiver<TaskMessage>,
    threads: Vec<JoinHandle<()>>,
}

/// Starts `jg` and returns a handle on it.
pub fn submit(mut jg: JobGraph, name: &str) -> Result<JobClient, JobError> {
    // A launcher restarting a job spread over processes names the checkpoint every
    // process goes back to.
    if let Some(path) = jg
        .stream_graph
        .config
        .cluster
        .as_ref()
        .and_then(|c| c.restore_from.clone())
    {
        jg.stream_graph.config.restore = Some(flink_core::checkpoint::RestoreSettings::new(path));
    }
    // Read back and mapped whole before anything starts: a bad savepoint fails here.
    let initial = match &jg.stream_graph.config.restore {
        Some(settings) => {
            let loaded = crate::checkpoint::restore::load(settings)?;
            let by_node = restored_states(
                &loaded,
                &jg.stream_graph,
                &settings.path,
                settings.allow_non_restored_state,
            )?;
            let channels = restored_channel_states(&loaded, &jg, &settings.path)?;
            tracing::info!(job = %name, path = %settings.path, checkpoint = loaded.id, "restoring");
            Some(Arc::new(Restored {
                id: loaded.id,
                by_node,
                channels,
            }))
        }
        None => None,
    };
    let eg = ExecutionGraph::from_job_graph(&jg);
    // Before anything starts, so a missing peer or another job graph fails the
    // submission with nothing running.
    let links = match &jg.stream_graph.config.cluster {
        Some(cluster) => Some(Arc::new(crate::cluster::join(&jg, cluster, name)?)),
        None => None,
    };
    let is_local = |s: usize| {
        links
            .as_ref()
            .is_none_or(|l: &Arc<ClusterLinks>| l.cluster().is_local(s))
    };
    let cancel = CancelToken::new();
    let clock = jg
        .stream_graph
        .clock
        .clone()
        .unwrap_or_else(|| Arc::new(SystemClock::new()));
    let spawner = Arc::new(TokioSpawner::new(1));
    let services = RuntimeServices::new(clock.clone(), spawner.clone());
    let stop_requested = Arc::new(AtomicBool::new(false));
    let cancelled_by_user = Arc::new(AtomicBool::new(false));
    // Bound before any task starts, so a taken port fails the submission cleanly.
    let listener = match &jg.stream_graph.config.web_ui {
        Some(web_ui) => Some(crate::rest::bind(web_ui).map_err(|e| {
            JobError::Runtime(format!("web UI cannot listen on {}: {e}", web_ui.address))
        })?),
        None => None,
    };
    let mut checkpoints = match &jg.stream_graph.config.checkpointing {
        Some(config) => {
            let mut coordinator = CheckpointStore::open(&config.storage, name)
                .and_then(|store| {
                    CheckpointCoordinator::for_process(
                        config.clone(),
                        store,
                        clock.clone(),
                        links.clone(),
                    )
                })
                .map_err(|e| JobError::Runtime(e.to_string()))?
                .with_job(name, operator_entries(&jg));
            if let Some(initial) = &initial {
                coordinator.ids_after(initial.id);
            }
            Some(coordinator)
        }
        None => None,
    };
    let checkpoint_stats = checkpoints.as_ref().map(CheckpointCoordinator::stats);
    if let (Some(stats), Some(initial), Some(settings)) =
        (&checkpoint_stats, &initial, &jg.stream_graph.config.restore)
    {
        stats.restored(initial.id, Some(settings.path.to_string()));
    }
    // Across processes the launcher restarts every process of the job (see
    // cluster::supervision): a process whose job fails exits.
    let restart = RestartTracker::new(match &links {
        Some(_) => RestartStrategy::None,
        None => jg.stream_graph.config.effective_restart_strategy(),
    });
    let timer = FlushTimer::start(flush_interval(&jg)).map_err(runtime_error)?;
    let operators = operator_counters(&jg);
    let flows = record_flows(&jg);
    let mut io = HashMap::new();
    let mut task_metrics = HashMap::new();
    let mut tasks = Vec::new();
    for v in &jg.vertices {
        for s in (0..v.parallelism).filter(|&s| is_local(s)) {
            let metrics_io = crate::network::IoMetrics::new();
            io.insert((v.id, s), metrics_io.clone());
            let metrics = Arc::new(TaskMetrics::new(
                v.name.clone(),
                s,
                v.parallelism,
                metrics_io,
            ));
            tasks.push(metrics.clone());
            task_metrics.insert((v.id, s), metrics);
        }
    }
    let setup = JobSetup {
        jg: Arc::new(jg),
        eg,
        io,
        task_metrics,
        operators: operators.clone(),
        flush: timer.clock(),
        stop_requested: stop_requested.clone(),
        clock,
        spawner,
        links,
    };
    let job_cancel = JobCancel {
        token: cancel.clone(),
        services: services.clone(),
    };
    let attempt = start_attempt(
        &setup,
        job_cancel.clone(),
        initial.clone(),
        checkpoints.as_mut(),
    )?;
    let jg = setup.jg.clone();
    let status = JobStatusCell::new(cancelled_by_user.clone());
    let bottleneck = Arc::new(BottleneckWatch::new(
        jg.clone(),
        tasks.clone(),
        operators.clone(),
        status.clone(),
    ));
    // Process 0 of a job spread over processes shows every process's subtasks.
    let remote_subtasks = setup
        .links
        .as_ref()
        .filter(|l| l.cluster().index == 0)
        .map(|_| Arc::new(crate::cluster::RemoteSubtasks::default()));
    let observables = JobObservables {
        tasks,
        operators: operators.clone(),
        status,
        bottleneck,
        checkpoints: checkpoint_stats.clone(),
        remote_subtasks: remote_subtasks.clone(),
    };
    let (savepoints, savepoint_requests) = sync_channel(MAX_WAITING_SAVEPOINTS);
    let control = JobControl {
        cancel: job_cancel,
        cancelled_by_user,
        stop_requested,
        savepoints,
    };
    let (result_tx, result_rx) = sync_channel(1);
    // The launcher's restarts of a job spread over processes, before this start.
    let earlier_restarts = setup
        .links
        .as_ref()
        .map(|l| {
            l.cluster()
                .earlier_restarts
                .iter()
                .map(|r| JobRestart {
                    cause: r.cause.clone(),
                    restored_checkpoint: r.restored_checkpoint,
                    lost_in_flight: 0,
                })
                .collect()
        })
        .unwrap_or_default();
    let pipeline_sync = setup
        .links
        .as_ref()
        .and_then(|l| crate::cluster::PipelineSync::new(&jg.stream_graph.pipelines, l));
    let subtask_sync = setup.links.as_ref().map(|l| {
        crate::cluster::SubtaskSync::new(
            jg.clone(),
            l.clone(),
            &setup.task_metrics,
            operators,
            remote_subtasks,
        )
    });
    let coordinator = Coordinator {
        pipeline_sync,
        subtask_sync,
        job_name: name.to_string(),
        control: control.clone(),
        flows,
        setup,
        attempt,
        checkpoints,
        restart,
        restarts: earlier_restarts,
        initial,
        savepoint_requests,
        lost_before: 0,
        timer,
        observables: observables.clone(),
        started: Instant::now(),
    };
    std::thread::Builder::new()
        .name(format!("job-{name}"))
        .spawn(move || {
            let status = coordinator.observables.status.clone();
            let result = coordinator.run();
            status.finish(&result);
            let _ = result_tx.send(result);
        })
        .map_err(runtime_error)?;
    let rest = match (listener, &jg.stream_graph.config.web_ui) {
        (Some(listener), Some(web_ui)) => {
            let view = crate::rest::JobView::new(
                name,
                jg.clone(),
                observables.clone(),
                control.clone(),
                checkpoint_stats.clone(),
            );
            match crate::rest::RestServer::start(listener, view, web_ui.token.clone()) {
                Ok(server) => Some(server),
                Err(e) => {
                    control.cancel();
                    return Err(runtime_error(e));
                }
            }
        }
        _ => None,
    };
    Ok(JobClient {
        name: name.to_string(),
        control,
        result: result_rx,
        observables,
        rest,
    })
}

/// Builds the network and starts every subtask, from `restored` if given.
fn start_attempt(
    setup: &JobSetup,
    cancel: JobCancel,
    restored: Option<Arc<Restored>>,
    checkpoints: Option<&mut CheckpointCoordinator>,
) -> Result<Attempt, JobError> {
    let jg = &setup.jg;
    let mut network = Network::build(
        jg,
        &setup.eg,
        &cancel.token,
        &setup.io,
        setup.links.as_deref(),
    )?;
    for (_, connection) in setup.links.iter().flat_map(|l| l.iter()) {
        // A failed connection wakes the tasks blocked on its channels.
        connection.cancel_on_failure(cancel.token.clone());
    }
    // Acknowledgements and outcomes share one bounded channel: a task waits for room
    // only while the coordinator is storing a checkpoint.
    let (messages_tx, messages_rx) = sync_channel(network.subtask_count() * 4);
    // Process 0 of a job spread over processes coordinates every process's tasks.
    let coordinates_all = setup.links.as_ref().is_some_and(|l| l.cluster().index == 0);
    let all_tasks: Vec<(usize, usize)> = jg
        .vertices
        .iter()
        .flat_map(|v| (0..v.parallelism).map(move |s| (v.id, s)))
        .filter(|&(_, s)| coordinates_all || setup.is_local(s))
        .collect();
    let checkpointing =
        checkpoints.map(|c| (Arc::new(c.config().clone()), c.start_attempt(all_tasks)));
    // What a failed attempt had inside its pipelines is gone with it (re-issued from
    // the snapshot or read again, and counted again then).
    for p in &jg.stream_graph.pipelines {
        p.state.new_attempt();
    }
    let mut threads = Vec::new();
    for v in &jg.vertices {
        for s in (0..v.parallelism).filter(|&s| setup.is_local(s)) {
            let metrics = setup.task_metrics[&(v.id, s)].clone();
            metrics.restart();
            let task_checkpointing =
                checkpointing
                    .as_ref()
                    .map(|(config, signals)| TaskCheckpointing {
                        mode: config.mode,
                        signals: signals.clone(),
                        messages: messages_tx.clone(),
                        vertex: v.id,
                        subtask: s,
                        seen_trigger: 0,
                        notified: 0,
                        config: config.clone(),
                        clock: setup.clock.clone(),
                        output_state: Arc::new(OutputChannelState::new(
                            config.clone(),
                            setup.clock.clone(),
                        )),
                        restored_channels: restored
                            .as_ref()
                            .and_then(|r| r.channels.get(&(v.id, s)).cloned()),
                    });
            let subtask = SubtaskSetup {
                vertex: v.id,
                subtask: s,
                gate: network.take_gate(v.id, s),
                partitions: network.partitions_of(v.id, s),
                metrics,
                restored: restored.clone(),
                checkpointing: task_checkpointing,
            };
            let spawned = spawn_subtask(
                jg.clone(),
                subtask,
                &setup.operators,
                setup.flush.clone(),
                cancel.clone(),
                setup.stop_requested.clone(),
                messages_tx.clone(),
            );
            match spawned {
                Ok(handle) => threads.push(handle),
                Err(e) => {
                    cancel.cancel();
                    return Err(runtime_error(e));
                }
            }
        }
    }
    Ok(Attempt {
        cancel,
        messages: messages_rx,
        threads,
    })
}

/// What each operator's state is stored under, for checkpoint metadata.
fn operator_entries(jg: &JobGraph) -> Vec<OperatorEntry> {
    jg.stream_graph
        .nodes
        .iter()
        .map(|n| OperatorEntry {
            node: n.id,
            uid: n.operator_id(),
            name: n.name.clone(),
            parallelism: n.parallelism,
        })
        .collect()
}

fn runtime_error(e: std::io::Error) -> JobError {
    JobError::Runtime(e.to_string())
}

fn flush_interval(jg: &JobGraph) -> Option<std::time::Duration> {
    match jg.stream_graph.config.buffer_timeout {
        BufferTimeout::Interval(d) => Some(d),
        BufferTimeout::EveryRecord | BufferTimeout::OnlyWhenFull => None,
    }
}

fn operator_counters(jg: &JobGraph) -> Vec<OperatorCounters> {
    jg.stream_graph
        .nodes
        .iter()
        .map(|n| OperatorCounters {
            id: n.id,
            name: n.name.clone(),
            role: match n.kind {
                NodeKind::Source(_) => OperatorRole::Source,
                NodeKind::Operator(_) if n.is_sink => OperatorRole::Sink,
                NodeKind::Operator(_) => OperatorRole::Transform,
            },
            instances: (0..n.parallelism)
                .map(|_| Arc::new(OperatorMetrics::default()))
                .collect(),
        })
        .collect()
}

fn spawn_subtask(
    jg: Arc<JobGraph>,
    setup: SubtaskSetup,
    operators: &[OperatorCounters],
    flush: crate::flush_timer::FlushClock,
    cancel: JobCancel,
    stop: Arc<AtomicBool>,
    outcomes: SyncSender<TaskMessage>,
) -> std::io::Result<JoinHandle<()>> {
    let v = &jg.vertices[setup.vertex];
    let thread_name = crate::task_metrics::subtask_label(&v.name, setup.subtask, v.parallelism);
    let counters: Vec<Arc<OperatorMetrics>> = v
        .nodes
        .iter()
        .map(|&n| operators[n].instances[setup.subtask].clone())
        .collect();
    std::thread::Builder::new()
        .name(thread_name)
        .spawn(move || {
            // A task waiting on its own timers parks until their deadlines.
            crate::precise_timer::minimize_timer_slack();
            let (vertex, subtask) = (setup.vertex, setup.subtask);
            let parallelism = jg.vertices[vertex].parallelism;
            let task_name = jg.vertices[setup.vertex].name.clone();
            let metrics = setup.metrics.clone();
            let outcome = Task::run_guarded(&task_name, || {
                build_task(&jg, setup, &counters, flush, cancel, stop)
            });
            metrics.end();
            let _ = outcomes.send(TaskMessage::Outcome(vertex, subtask, parallelism, outcome));
        })
}

/// Builds the operator chain of one subtask back to front, so each operator is created
/// with its (already built) downstream.
fn build_task(
    jg: &JobGraph,
    mut setup: SubtaskSetup,
    counters: &[Arc<OperatorMetrics>],
    flush: crate::flush_timer::FlushClock,
    cancel: JobCancel,
    stop: Arc<AtomicBool>,
) -> Task {
    let sg = &jg.stream_graph;
    let vertex = &jg.vertices[setup.vertex];
    let config = &sg.config;
    let mut heads: HashMap<usize, AnyOutput> = HashMap::new();
    let mut source = None;
    for (pos, &node_id) in vertex.nodes.iter().enumerate().rev() {
        let node = &sg.nodes[node_id];
        // Outputs grouped by side-output tag (None = the main output).
        let mut groups: Vec<(Option<String>, Vec<AnyOutput>)> = vec![(None, Vec::new())];
        for (edge_id, edge) in sg
            .edges
            .iter()
            .enumerate()
            .filter(|(_, e)| e.source == node_id)
        {
            let output = if jg.is_chained(node_id, edge.target) {
                heads
                    .remove(&edge.target)
                    .expect("chained successor built first")
            } else {
                network_output(jg, edge_id, &mut setup, config)
            };
            match groups.iter_mut().find(|(tag, _)| *tag == edge.tag) {
                Some((_, outputs)) => outputs.push(output),
                None => groups.push((edge.tag.clone(), vec![output])),
            }
        }
        let metrics = counters[pos].clone();
        let unread_dead_letters = if node.discard_dead_letters {
            UnreadDeadLetters::Discard(metrics.dead_letters_discarded.clone())
        } else {
            UnreadDeadLetters::Fail
        };
        let side_outputs = SideOutputs::new(metrics.side_output_unconsumed.clone())
            .with_dead_letters(&node.name, unread_dead_letters);
        let mut main = None;
        for (tag, outputs) in groups {
            match tag {
                None => main = Some(node.output_type.fan_out(outputs)),
                Some(tag) => {
                    let edge_type = sg
                        .edges
                        .iter()
                        .find(|e| e.source == node_id && e.tag.as_deref() == Some(tag.as_str()))
                        .map(|e| sg.edge_type(e))
                        .expect("a tag group has an edge");
                    side_outputs.insert(&tag, edge_type.side_slot(edge_type.fan_out(outputs)));
                }
            }
        }
        let out = main.expect("the main group always exists");
        let ctx = RuntimeContext {
            operator_name: node.name.as_str().into(),
            subtask_index: setup.subtask,
            parallelism: node.parallelism,
            max_parallelism: config.max_parallelism,
            metrics,
            side_outputs,
            services: cancel.services.clone(),
            node_id,
            restored: setup
                .restored
                .as_ref()
                .map_or_else(RestoredState::none, |r| r.of_node(node_id)),
        };
        match &node.kind {
            NodeKind::Source(factory) => source = Some(factory.create(&ctx, out)),
            NodeKind::Operator(factory) => {
                heads.insert(node_id, factory.create(&ctx, out));
            }
        }
    }
    let input = match source {
        Some(driver) => TaskInput::Source(driver),
        None => {
            let head = vertex.head();
            let upstream = sg
                .inputs_of(head)
                .next()
                .expect("a non-source head has an input");
            let decoder = sg.edge_type(upstream).decoder(
                heads.remove(&head).expect("head built"),
                sg.nodes[head].name.as_str().into(),
            );
            let gate = setup
                .gate
                .take()
                .expect("a non-source task has an input gate");
            TaskInput::Network { gate, decoder }
        }
    };
    Task {
        input,
        flush,
        cancel: cancel.token,
        stop,
        metrics: setup.metrics,
        checkpointing: setup.checkpointing,
    }
}

/// The typed network output of the cross-task stream edge `edge_id`.
fn network_output(
    jg: &JobGraph,
    edge_id: usize,
    setup: &mut SubtaskSetup,
    config: &flink_core::config::ExecutionConfig,
) -> AnyOutput {
    let sg = &jg.stream_graph;
    let edge = &sg.edges[edge_id];
    let operator = &sg.nodes[edge.source].name;
    let job_edge = jg
        .edges
        .iter()
        .position(|je| je.stream_edge == edge_id)
        .expect("every cross-task stream edge is a job edge");
    let partition = setup
        .partitions
        .remove(&job_edge)
        .expect("partition per job edge");
    let channels = partition.num_subpartitions();
    let partition_writer = PartitionWriter::new(partition)
        .unwrap_or_else(|e| panic!("result partition of '{operator}': {e}"));
    let mut writer = RecordWriter::new(
        partition_writer,
        config.buffer_timeout == BufferTimeout::EveryRecord,
        operator.clone(),
    );
    if let Some(ck) = &setup.checkpointing {
        let restored = ck.restored_channels.as_deref();
        writer = writer.with_channel_state(ck.output_state.clone(), job_edge, restored);
    }
    sg.edge_type(edge).network_output(
        &*edge.partitioner.typed,
        Box::new(writer),
        NetworkOutputSetup {
            channels,
            max_parallelism: config.max_parallelism,
            subtask_index: setup.subtask,
        },
    )
}

/// Everything that cancels a job: the network's token (wakes blocked buffer waits)
/// and the services' flag (wakes operators waiting on async calls).
#[derive(Clone)]
pub(crate) struct JobCancel {
    token: CancelToken,
    services: RuntimeServices,
}

impl JobCancel {
    pub(crate) fn cancel(&self) {
        self.services.cancelled.cancel();
        self.token.cancel();
    }
}

/// How one attempt ended.
enum AttemptEnd {
    /// Every task finished.
    Finished,
    /// The user cancelled the job.
    Cancelled,
    /// A task failed (or checkpointing failed too often): the cause.
    Failed(JobError),
    /// A task thread vanished without reporting.
    Lost,
}

/// Watches the tasks of one job: coordinates its checkpoints, cancels the rest of
/// the tasks on the first failure and restarts them from the latest completed
/// checkpoint as the restart strategy allows, then reports; after a successful end
/// it runs the job's end-of-job actions.
struct Coordinator {
    /// Across processes, with five-stage pipelines: their counts to and from the
    /// other processes.
    pipeline_sync: Option<crate::cluster::PipelineSync>,
    /// Across processes: every process's subtask views to process 0.
    subtask_sync: Option<crate::cluster::SubtaskSync>,
    job_name: String,
    control: JobControl,
    flows: Vec<RecordFlow>,
    setup: JobSetup,
    attempt: Attempt,
    checkpoints: Option<CheckpointCoordinator>,
    restart: RestartTracker,
    restarts: Vec<JobRestart>,
    /// The savepoint or checkpoint the job was started from (`restore_from`), which
    /// a restart goes back to while no checkpoint of this run completed.
    initial: Option<Arc<Restored>>,
    savepoint_requests: Receiver<SavepointRequest>,
    /// Records lost in flight by earlier failures (replayed after their restart),
    /// which the live counters still show as sent but not received.
    lost_before: u64,
    timer: FlushTimer,
    observables: JobObservables,
    started: Instant,
}

/// The longest the coordinator waits for a message before looking at the clock.
const COORDINATOR_TICK: Duration = Duration::from_millis(10);

impl Coordinator {
    fn run(mut self) -> Result<JobExecutionResult, JobError> {
        let end = loop {
            let end = self.run_attempt();
            let AttemptEnd::Failed(cause) = end else {
                break end;
            };
            if self.control.cancelled_by_user.load(Ordering::SeqCst) {
                break AttemptEnd::Cancelled;
            }
            match self.restart.on_failure(self.setup.clock.now()) {
                Some(delay) => {
                    if let Err(e) = self.restart_after(cause, delay) {
                        break AttemptEnd::Failed(e);
                    }
                }
                None => break AttemptEnd::Failed(cause),
            }
        };
        let duration = self.started.elapsed();
        drop(self.timer);
        let hooks = &self.attempt.cancel.services.on_job_finished;
        let outcome = match end {
            AttemptEnd::Finished => Ok(()),
            AttemptEnd::Failed(e) => Err(e),
            AttemptEnd::Cancelled => {
                let operators = self.observables.operator_summaries();
                let mut abandoned = abandoned(&operators, &self.flows);
                abandoned.between_operators =
                    abandoned.between_operators.saturating_sub(self.lost_before);
                Err(JobError::Cancelled { abandoned })
            }
            AttemptEnd::Lost => Err(JobError::Runtime(
                "a task thread ended without reporting".into(),
            )),
        };
        if let Err(e) = outcome {
            hooks.discard();
            return Err(e);
        }
        // Every task finished: all records the sources read are at the sinks, which
        // flushed and committed them. Now sources may tell the outside world.
        if catch_unwind(AssertUnwindSafe(|| hooks.run_all())).is_err() {
            tracing::error!(job = %self.job_name, "an end-of-job action panicked");
        }
        let savepoint = self
            .checkpoints
            .as_ref()
            .and_then(|c| c.stopped_with().cloned());
        let operators = crate::cluster::whole_job_operators(
            self.observables.operator_summaries(),
            self.setup.links.as_deref(),
        );
        Ok(JobExecutionResult {
            job_name: self.job_name,
            stopped: self.control.stop_requested.load(Ordering::SeqCst) || savepoint.is_some(),
            savepoint,
            duration,
            operators,
            tasks: self.observables.task_snapshots(),
            restarts: self.restarts,
            checkpoints: self.checkpoints.as_ref().map(|c| c.counts()),
            cluster: self
                .setup
                .links
                .as_ref()
                .map(|l| crate::cluster::ClusterShare {
                    process: l.cluster().index,
                    processes: l.cluster().processes,
                    whole_job: l.cluster().index == 0,
                    wire: l.stats(),
                }),
        })
    }

    /// Runs the current attempt until every task reported, coordinating checkpoints.
    fn run_attempt(&mut self) -> AttemptEnd {
        let mut first_failure: Option<JobError> = None;
        let mut remaining = self.attempt.threads.len();
        let mut lost = false;
        while remaining > 0 || self.coordinates_other_processes(first_failure.is_some()) {
            if self.control.cancelled_by_user.load(Ordering::SeqCst)
                && !self.attempt.cancel.token.is_cancelled()
            {
                // The user cancelled a restarted attempt (it has its own token).
                self.attempt.cancel.cancel();
            }
            self.take_savepoint_requests();
            let wait = self
                .checkpoints
                .as_ref()
                .map_or(COORDINATOR_TICK, |c| c.next_wakeup().min(COORDINATOR_TICK));
            let message = if remaining == 0 {
                // Only coordinating other processes' tasks now.
                std::thread::sleep(wait);
                None
            } else {
                match self.attempt.messages.recv_timeout(wait) {
                    Ok(message) => Some(message),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => {
                        lost = true;
                        break;
                    }
                }
            };
            let checkpoint_result = match message {
                Some(TaskMessage::Outcome(vertex, subtask, parallelism, outcome)) => {
                    remaining -= 1;
                    if let TaskOutcome::Failed { operator, message } = outcome
                        && first_failure.is_none()
                    {
                        let label = format!("{}/{parallelism}", subtask + 1);
                        tracing::error!(job = %self.job_name, %operator, subtask = %label, %message, vertex, "operator failed; cancelling the job's tasks");
                        first_failure = Some(JobError::OperatorFailed {
                            operator,
                            subtask: subtask + 1,
                            parallelism,
                            message,
                        });
                        self.attempt.cancel.cancel();
                    }
                    Ok(())
                }
                Some(TaskMessage::Ack {
                    checkpoint,
                    vertex,
                    subtask,
                    snapshot,
                    timing,
                }) => self
                    .with_checkpoints(|c| c.on_ack(checkpoint, vertex, subtask, snapshot, timing)),
                Some(TaskMessage::Finished {
                    vertex,
                    subtask,
                    snapshot,
                }) => self.with_checkpoints(|c| c.on_finished(vertex, subtask, snapshot)),
                None => Ok(()),
            };
            let ticked = if first_failure.is_none() && !self.attempt.cancel.token.is_cancelled() {
                checkpoint_result.and_then(|()| self.with_checkpoints(CheckpointCoordinator::tick))
            } else {
                checkpoint_result
            };
            if let Err(reason) = ticked
                && first_failure.is_none()
            {
                tracing::error!(job = %self.job_name, %reason, "checkpointing failed; cancelling the job's tasks");
                first_failure = Some(JobError::Runtime(reason));
                self.attempt.cancel.cancel();
            }
            if first_failure.is_none()
                && let Some(lost) = self.setup.links.as_ref().and_then(|l| l.failure())
            {
                tracing::error!(job = %self.job_name, %lost, "cancelling the job's tasks");
                first_failure = Some(lost.into());
                self.attempt.cancel.cancel();
            }
            if self.checkpoints.as_ref().is_some_and(|c| c.wants_drain()) {
                // A savepoint with a drain: the job drains first, as on `stop()`.
                self.control.stop_requested.store(true, Ordering::SeqCst);
            }
            self.spread_stop();
            if first_failure.is_none()
                && let Err(e) = self
                    .sync_pipelines(false)
                    .and_then(|()| self.sync_subtasks(false))
            {
                tracing::error!(job = %self.job_name, %e, "cancelling the job's tasks");
                first_failure = Some(e);
                self.attempt.cancel.cancel();
            }
        }
        for t in self.attempt.threads.drain(..) {
            let _ = t.join();
        }
        if first_failure.is_none()
            && !lost
            && !self.control.cancelled_by_user.load(Ordering::SeqCst)
            && let Err(e) = self
                .sync_pipelines(true)
                // The final views of this process's subtasks, before its Close.
                .and_then(|()| self.sync_subtasks(true))
                .and_then(|()| self.close_links())
                // The peers' last counts, sent before their Close: every record
                // ended is known to its gateway's process (its count ends at 0).
                .and_then(|()| self.sync_pipelines(false))
                .and_then(|()| self.sync_subtasks(false))
        {
            first_failure = Some(e);
        }
        if let Some(e) = first_failure {
            AttemptEnd::Failed(e)
        } else if self.control.cancelled_by_user.load(Ordering::SeqCst) {
            AttemptEnd::Cancelled
        } else if lost {
            AttemptEnd::Lost
        } else {
            AttemptEnd::Finished
        }
    }

    /// Whether process 0, its own tasks ended, still coordinates the checkpoints of
    /// other processes' tasks: until every task of the job finished and the checkpoint
    /// with their final states completed (their sinks commit on it), unless the job
    /// failed or was cancelled.
    fn coordinates_other_processes(&self, failed: bool) -> bool {
        let leader = self
            .setup
            .links
            .as_ref()
            .is_some_and(|l| l.cluster().index == 0);
        leader
            && !failed
            && !self.attempt.cancel.token.is_cancelled()
            && !self.control.cancelled_by_user.load(Ordering::SeqCst)
            && self.checkpoints.as_ref().is_some_and(|c| !c.all_done())
    }

    /// After this process's tasks ended: tells every peer this side is done once its
    /// outgoing channels drained, and waits until every peer said so too (a peer still
    /// running may need credit from here, or this process's acknowledgement of a
    /// checkpoint). A connection failing meanwhile fails the job; a user's cancel
    /// ends the wait.
    fn close_links(&mut self) -> Result<(), JobError> {
        let Some(links) = self.setup.links.clone() else {
            return Ok(());
        };
        let counts = crate::cluster::final_counts(&self.observables.operator_summaries());
        loop {
            if let Some(lost) = links.failure() {
                return Err(lost.into());
            }
            // A process whose tasks ended still answers process 0's checkpoints (with
            // its tasks' final states) until process 0 closes: the other processes'
            // tasks may wait for one more checkpoint.
            self.with_checkpoints(CheckpointCoordinator::tick)
                .map_err(JobError::Runtime)?;
            // Process 0 goes on showing the subtasks of processes still running.
            self.sync_subtasks(false)?;
            if links.close_when_drained(&counts)
                || self.control.cancelled_by_user.load(Ordering::SeqCst)
            {
                return Ok(());
            }
            std::thread::sleep(COORDINATOR_TICK);
        }
    }

    /// Across processes, a stop (drain) asked in any process stops every process's
    /// sources: the process where it was asked tells the others.
    fn spread_stop(&mut self) {
        let Some(links) = &self.setup.links else {
            return;
        };
        if self.control.stop_requested.load(Ordering::SeqCst) {
            links.broadcast_stop();
        } else if links.stop_heard() {
            tracing::info!(job = %self.job_name, "another process stopped the job: draining");
            self.control.stop_requested.store(true, Ordering::SeqCst);
        }
    }

    /// Exchanges the five-stage pipelines' counts with the other processes (at most
    /// every few ms, unless `force`d: the last report before this side closes).
    fn sync_pipelines(&mut self, force: bool) -> Result<(), JobError> {
        match &mut self.pipeline_sync {
            Some(sync) => sync.tick(force).map_err(JobError::from),
            None => Ok(()),
        }
    }

    /// Exchanges the subtask views for process 0's REST API (at most every period,
    /// unless `force`d: the final views before this side closes).
    fn sync_subtasks(&mut self, force: bool) -> Result<(), JobError> {
        let job = self.observables.status.state();
        match &mut self.subtask_sync {
            Some(sync) => sync.tick(force, job).map_err(JobError::from),
            None => Ok(()),
        }
    }

    /// Hands savepoint requests to the checkpoint coordinator.
    fn take_savepoint_requests(&mut self) {
        while let Ok(request) = self.savepoint_requests.try_recv() {
            match &mut self.checkpoints {
                // Across processes, process 0's coordinator takes every process's.
                Some(c) => c.request_savepoint(request),
                None => request
                    .reply
                    .send(Err(SavepointError::CheckpointingDisabled)),
            }
        }
    }

    fn with_checkpoints(
        &mut self,
        f: impl FnOnce(&mut CheckpointCoordinator) -> Result<(), String>,
    ) -> Result<(), String> {
        self.checkpoints.as_mut().map_or(Ok(()), f)
    }

    /// Records why the job restarts, waits `delay`, and starts a new attempt from the
    /// latest completed checkpoint (from scratch without one).
    fn restart_after(&mut self, cause: JobError, delay: Duration) -> Result<(), JobError> {
        let operators = self.observables.operator_summaries();
        let lost_now = abandoned(&operators, &self.flows).between_operators;
        let lost_in_flight = lost_now.saturating_sub(self.lost_before);
        self.lost_before = lost_now;
        let loaded = match &self.checkpoints {
            Some(c) => c.load_latest().map_err(|e| {
                JobError::Runtime(format!("cannot restore the latest checkpoint: {e}"))
            })?,
            None => None,
        };
        let restored_checkpoint = loaded
            .as_ref()
            .map(|l| l.id)
            .or(self.initial.as_ref().map(|i| i.id));
        tracing::warn!(job = %self.job_name, cause = %cause, ?restored_checkpoint, ?delay, "restarting the job");
        self.restarts.push(JobRestart {
            cause: cause.to_string(),
            restored_checkpoint,
            lost_in_flight,
        });
        if !self.sleep_unless_cancelled(delay) {
            return Err(cause);
        }
        let restored = match loaded {
            Some(loaded) => Some(self.restored_from(&loaded)?),
            None => self.initial.clone(),
        };
        if let (Some(c), Some(r)) = (&self.checkpoints, &restored) {
            c.stats().restored(r.id, None);
        }
        let cancel = JobCancel {
            token: CancelToken::new(),
            services: RuntimeServices::new(self.setup.clock.clone(), self.setup.spawner.clone()),
        };
        self.attempt = start_attempt(&self.setup, cancel, restored, self.checkpoints.as_mut())?;
        Ok(())
    }

    /// Every node's state in `loaded`, a checkpoint of this job (same operators).
    fn restored_from(&self, loaded: &LoadedCheckpoint) -> Result<Arc<Restored>, JobError> {
        let path = &flink_core::checkpoint::CheckpointLocation::from("the latest checkpoint");
        let graph = &self.setup.jg.stream_graph;
        let by_node = restored_states(loaded, graph, path, false)?;
        let channels = restored_channel_states(loaded, &self.setup.jg, path)?;
        Ok(Arc::new(Restored {
            id: loaded.id,
            by_node,
            channels,
        }))
    }

    /// Waits `delay` (real time); false if the user cancelled meanwhile.
    fn sleep_unless_cancelled(&self, delay: Duration) -> bool {
        let deadline = Instant::now() + delay;
        loop {
            if self.control.cancelled_by_user.load(Ordering::SeqCst) {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            std::thread::sleep((deadline - now).min(COORDINATOR_TICK));
        }
    }
}
