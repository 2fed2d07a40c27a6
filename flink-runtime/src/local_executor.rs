//! The local executor: runs a [`JobGraph`] in this process, one thread per subtask,
//! with every exchange going through credit-based channels.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::Instant;

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
use crate::flush_timer::FlushTimer;
use crate::job_client::{JobClient, JobControl, JobObservables, OperatorCounters};
use crate::job_network::JobNetwork as Network;
use crate::job_result::{JobError, JobExecutionResult, OperatorRole};
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
}

/// Starts `jg` and returns a handle on it.
pub fn submit(jg: JobGraph, name: &str) -> Result<JobClient, JobError> {
    let eg = ExecutionGraph::from_job_graph(&jg);
    let cancel = CancelToken::new();
    let services = RuntimeServices::new(
        jg.stream_graph
            .clock
            .clone()
            .unwrap_or_else(|| Arc::new(SystemClock::new())),
        Arc::new(TokioSpawner::new(1)),
    );
    let stop_requested = Arc::new(AtomicBool::new(false));
    let cancelled_by_user = Arc::new(AtomicBool::new(false));
    // Bound before any task starts, so a taken port fails the submission cleanly.
    let listener = match &jg.stream_graph.config.web_ui {
        Some(web_ui) => Some(crate::rest::bind(web_ui).map_err(|e| {
            JobError::Runtime(format!("web UI cannot listen on {}: {e}", web_ui.address))
        })?),
        None => None,
    };
    let timer = FlushTimer::start(flush_interval(&jg)).map_err(runtime_error)?;
    let operators = operator_counters(&jg);
    let flows = record_flows(&jg);
    let mut network =
        Network::build(&jg, &eg, &cancel).map_err(|e| JobError::Runtime(e.to_string()))?;
    let jg = Arc::new(jg);
    let (outcomes_tx, outcomes_rx) = sync_channel(network.subtask_count());
    let mut threads = Vec::new();
    let mut tasks = Vec::new();
    for v in &jg.vertices {
        for s in 0..v.parallelism {
            let io = network.io_metrics(v.id, s);
            let metrics = Arc::new(TaskMetrics::new(v.name.clone(), s, v.parallelism, io));
            tasks.push(metrics.clone());
            let setup = SubtaskSetup {
                vertex: v.id,
                subtask: s,
                gate: network.take_gate(v.id, s),
                partitions: network.partitions_of(v.id, s),
                metrics,
            };
            let spawned = spawn_subtask(
                jg.clone(),
                setup,
                &operators,
                timer.clock(),
                JobCancel {
                    token: cancel.clone(),
                    services: services.clone(),
                },
                stop_requested.clone(),
                outcomes_tx.clone(),
            );
            match spawned {
                Ok(handle) => threads.push(handle),
                Err(e) => {
                    cancel.cancel();
                    services.cancelled.cancel();
                    return Err(runtime_error(e));
                }
            }
        }
    }
    drop(outcomes_tx);
    let status = JobStatusCell::new(cancelled_by_user.clone());
    let bottleneck = Arc::new(BottleneckWatch::new(
        jg.clone(),
        tasks.clone(),
        operators.clone(),
        status.clone(),
    ));
    let observables = JobObservables {
        tasks,
        operators,
        status,
        bottleneck,
    };
    let control = JobControl {
        cancel: JobCancel {
            token: cancel,
            services,
        },
        cancelled_by_user,
        stop_requested,
    };
    let (result_tx, result_rx) = sync_channel(1);
    let coordinator = Coordinator {
        job_name: name.to_string(),
        control: control.clone(),
        flows,
        outcomes: outcomes_rx,
        threads,
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
            let view =
                crate::rest::JobView::new(name, jg.clone(), observables.clone(), control.clone());
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

/// (0-based subtask, parallelism, outcome) of one finished subtask.
type Outcome = (usize, usize, TaskOutcome);

fn spawn_subtask(
    jg: Arc<JobGraph>,
    setup: SubtaskSetup,
    operators: &[OperatorCounters],
    flush: crate::flush_timer::FlushClock,
    cancel: JobCancel,
    stop: Arc<AtomicBool>,
    outcomes: SyncSender<Outcome>,
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
            let (subtask, parallelism) = (setup.subtask, jg.vertices[setup.vertex].parallelism);
            let task_name = jg.vertices[setup.vertex].name.clone();
            let metrics = setup.metrics.clone();
            let outcome = Task::run_guarded(&task_name, || {
                build_task(&jg, setup, &counters, flush, cancel, stop)
            });
            metrics.end();
            let _ = outcomes.send((subtask, parallelism, outcome));
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
    let writer = RecordWriter::new(
        partition_writer,
        config.buffer_timeout == BufferTimeout::EveryRecord,
        operator.clone(),
    );
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

/// Watches the tasks of one job: cancels the rest on the first failure, then reports;
/// after a successful end it runs the job's end-of-job actions.
struct Coordinator {
    job_name: String,
    control: JobControl,
    flows: Vec<RecordFlow>,
    outcomes: Receiver<Outcome>,
    threads: Vec<JoinHandle<()>>,
    timer: FlushTimer,
    observables: JobObservables,
    started: Instant,
}

impl Coordinator {
    fn run(self) -> Result<JobExecutionResult, JobError> {
        let mut first_failure = None;
        let mut lost = false;
        for _ in 0..self.threads.len() {
            match self.outcomes.recv() {
                Ok((subtask, parallelism, TaskOutcome::Failed { operator, message })) => {
                    if first_failure.is_none() {
                        let label = format!("{}/{parallelism}", subtask + 1);
                        tracing::error!(job = %self.job_name, %operator, subtask = %label, %message, "operator failed; cancelling the job");
                        first_failure = Some(JobError::OperatorFailed {
                            operator,
                            subtask: subtask + 1,
                            parallelism,
                            message,
                        });
                        self.control.cancel.cancel();
                    }
                }
                Ok(_) => {}
                Err(_) => {
                    lost = true;
                    break;
                }
            }
        }
        let duration = self.started.elapsed();
        for t in self.threads {
            let _ = t.join();
        }
        drop(self.timer);
        let hooks = &self.control.cancel.services.on_job_finished;
        let outcome = if let Some(e) = first_failure {
            Err(e)
        } else if self.control.cancelled_by_user.load(Ordering::SeqCst) {
            let operators = self.observables.operator_summaries();
            Err(JobError::Cancelled {
                abandoned: abandoned(&operators, &self.flows),
            })
        } else if lost {
            Err(JobError::Runtime(
                "a task thread ended without reporting".into(),
            ))
        } else {
            Ok(())
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
        Ok(JobExecutionResult {
            job_name: self.job_name,
            stopped: self.control.stop_requested.load(Ordering::SeqCst),
            duration,
            operators: self.observables.operator_summaries(),
            tasks: self.observables.task_snapshots(),
        })
    }
}
