//! Process 0 sees every process's subtasks: every other process sends it, at most
//! every [`PERIOD`] and only for a subtask whose view changed, a
//! [`SubtaskReport`] of each of its subtasks (state, times, bytes, its chain's
//! counts) as a [`Frame::SubtaskState`](crate::network::tcp::Frame::SubtaskState);
//! its last ones go before its Close, so process 0 ends with the final view.
//! Process 0 keeps the latest per subtask in [`RemoteSubtasks`], which its REST API
//! and `/metrics` read. Bounded everywhere: one report per subtask waits on the
//! connection and one is kept, each replacing the last.
//!
//! Freshness: a remote subtask's view on process 0 is at most one period old, plus
//! one tick of process 0's coordinator (10 ms) and the time on the wire.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flink_core::cluster::ClusterConfig;
use flink_core::graph::JobGraph;
use parking_lot::Mutex;

use super::error::ClusterRunError;
use super::links::ClusterLinks;
use super::subtask_report::{ChainedCounts, SubtaskReport, SubtaskState};
use crate::job_client::OperatorCounters;
use crate::job_status::JobState;
use crate::task_metrics::TaskMetrics;

/// The shortest time between two reports of one subtask.
pub(crate) const PERIOD: Duration = Duration::from_millis(200);

/// The latest report of every subtask of other processes, on process 0.
#[derive(Debug, Default)]
pub(crate) struct RemoteSubtasks {
    reports: Mutex<HashMap<(usize, usize), SubtaskReport>>,
}

impl RemoteSubtasks {
    /// The latest report of subtask `subtask` of vertex `vertex`, if one arrived.
    pub(crate) fn get(&self, vertex: usize, subtask: usize) -> Option<SubtaskReport> {
        self.reports.lock().get(&(vertex, subtask)).cloned()
    }

    fn set(&self, vertex: usize, subtask: usize, report: SubtaskReport) {
        self.reports.lock().insert((vertex, subtask), report);
    }
}

/// One subtask of this process, as reported.
struct LocalSubtask {
    vertex: usize,
    subtask: usize,
    metrics: Arc<TaskMetrics>,
    /// The report sent last, to send only changes.
    last_sent: Option<Vec<u8>>,
}

/// Sends this process's subtask views to process 0 (other processes) or takes the
/// others' (process 0).
pub(crate) struct SubtaskSync {
    jg: Arc<JobGraph>,
    links: Arc<ClusterLinks>,
    operators: Vec<OperatorCounters>,
    local: Vec<LocalSubtask>,
    /// Where process 0 keeps the others' reports; `None` elsewhere.
    remote: Option<Arc<RemoteSubtasks>>,
    last_round: Option<Instant>,
    /// Whether a report too big for one buffer was already logged.
    warned: bool,
}

impl SubtaskSync {
    /// For this process's `tasks` (by vertex and subtask) of `jg` over `links`;
    /// `remote` is where process 0 keeps the others' reports.
    pub(crate) fn new(
        jg: Arc<JobGraph>,
        links: Arc<ClusterLinks>,
        tasks: &HashMap<(usize, usize), Arc<TaskMetrics>>,
        operators: Vec<OperatorCounters>,
        remote: Option<Arc<RemoteSubtasks>>,
    ) -> Self {
        let mut local: Vec<LocalSubtask> = tasks
            .iter()
            .map(|(&(vertex, subtask), metrics)| LocalSubtask {
                vertex,
                subtask,
                metrics: metrics.clone(),
                last_sent: None,
            })
            .collect();
        local.sort_by_key(|l| (l.vertex, l.subtask));
        Self {
            jg,
            links,
            operators,
            local,
            remote,
            last_round: None,
            warned: false,
        }
    }

    /// Process 0 takes the reports received; another process sends its subtasks'
    /// changed views if a period passed or `force`d (its last ones, before its
    /// Close). `job` is this process's job state. An unreadable report, or one of a
    /// subtask its sender does not run, is an error naming the sender.
    pub(crate) fn tick(&mut self, force: bool, job: JobState) -> Result<(), ClusterRunError> {
        if self.links.cluster().index == 0 {
            return self.receive();
        }
        let due = self.last_round.is_none_or(|at| at.elapsed() >= PERIOD);
        if due || force {
            self.last_round = Some(Instant::now());
            self.send(job);
        }
        Ok(())
    }

    fn send(&mut self, job: JobState) {
        let Some(leader) = self.links.to(0) else {
            return;
        };
        let limit = self.jg.stream_graph.config.buffer_size;
        for i in 0..self.local.len() {
            let bytes = self.report(&self.local[i], job).encode();
            let l = &mut self.local[i];
            if l.last_sent.as_ref() == Some(&bytes) {
                continue;
            }
            if bytes.len() > limit {
                if !std::mem::replace(&mut self.warned, true) {
                    tracing::warn!(
                        vertex = l.vertex,
                        bytes = bytes.len(),
                        buffer_size = limit,
                        "a subtask's view does not fit one network buffer: process 0 does not show it"
                    );
                }
                continue;
            }
            leader.send_subtask_state(l.vertex as u32, l.subtask as u32, &bytes);
            l.last_sent = Some(bytes);
        }
    }

    /// The view of `l` now.
    fn report(&self, l: &LocalSubtask, job: JobState) -> SubtaskReport {
        let snapshot = l.metrics.snapshot();
        let operators = self.jg.vertices[l.vertex]
            .nodes
            .iter()
            .map(|&n| ChainedCounts::of(&self.operators[n].instances[l.subtask]))
            .collect();
        SubtaskReport {
            state: SubtaskState::of(job, snapshot.ended),
            elapsed: snapshot.elapsed,
            back_pressured: snapshot.back_pressured,
            idle: snapshot.idle,
            bytes_in: l.metrics.io.bytes_received(),
            bytes_out: l.metrics.io.bytes_shipped(),
            out_pool_usage: snapshot.out_pool_usage,
            in_pool_usage: snapshot.in_pool_usage,
            operators,
        }
    }

    fn receive(&self) -> Result<(), ClusterRunError> {
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        for (peer, connection) in self.links.iter() {
            for ((vertex, subtask), bytes) in connection.take_subtask_states() {
                let (vertex, subtask) = (vertex as usize, subtask as usize);
                let report = check(
                    &self.jg,
                    self.links.cluster(),
                    peer,
                    vertex,
                    subtask,
                    &bytes,
                )
                .map_err(|reason| ClusterRunError::ConnectionLost {
                    process: peer,
                    address: self.links.cluster().peers[peer].clone(),
                    reason: format!("unreadable subtask state: {reason}"),
                })?;
                remote.set(vertex, subtask, report);
            }
        }
        Ok(())
    }
}

/// The report in `bytes` of subtask `subtask` of vertex `vertex` of `jg`, sent by
/// process `peer` of `cluster`, if the job has that subtask, `peer` runs it and the
/// report has its chain's operators.
fn check(
    jg: &JobGraph,
    cluster: &ClusterConfig,
    peer: usize,
    vertex: usize,
    subtask: usize,
    bytes: &[u8],
) -> Result<SubtaskReport, String> {
    let v = jg
        .vertices
        .get(vertex)
        .ok_or_else(|| format!("the job has no vertex {vertex}"))?;
    if subtask >= v.parallelism || cluster.process_of(subtask) != peer {
        return Err(format!(
            "subtask {subtask} of vertex {vertex} does not run in process {peer}"
        ));
    }
    let report = SubtaskReport::decode(bytes)?;
    if report.operators.len() != v.nodes.len() {
        return Err(format!(
            "{} operators for a chain of {}",
            report.operators.len(),
            v.nodes.len()
        ));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use flink_core::prelude::*;

    use super::*;

    fn report(operators: usize) -> Vec<u8> {
        SubtaskReport {
            state: SubtaskState::Running,
            elapsed: Duration::from_secs(1),
            ..SubtaskReport::not_started(operators)
        }
        .encode()
    }

    #[test]
    fn only_a_report_of_a_subtask_the_sender_runs_with_its_chain_is_taken() {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(4);
        let _out = env.from_sequence(1, 10).map(|x: u64| x + 1).collect_vec();
        let jg = env.job_graph().unwrap();
        let peers = (0..2).map(|i| format!("127.0.0.1:{}", 7000 + i)).collect();
        let cluster = ClusterConfig::new(2, 0, peers, b"s".to_vec());
        let chain = jg.vertices[0].nodes.len();
        // Subtask 3 runs in process 1 (3 % 2).
        assert!(check(&jg, &cluster, 1, 0, 3, &report(chain)).is_ok());
        let refused = [
            (0, 3, report(chain)),             // not the sender's subtask
            (1, 2, report(chain)),             // process 0's subtask
            (1, 5, report(chain)),             // beyond the parallelism
            (1, 3, report(chain + 1)),         // another chain
            (1, 3, report(chain)[1..].into()), // truncated
        ];
        for (peer, subtask, bytes) in refused {
            assert!(check(&jg, &cluster, peer, 0, subtask, &bytes).is_err());
        }
        let vertex = jg.vertices.len();
        assert!(check(&jg, &cluster, 1, vertex, 1, &report(chain)).is_err());
    }
}
