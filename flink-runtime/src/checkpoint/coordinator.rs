//! [`CheckpointCoordinator`]: triggers checkpoints at the sources on the job's clock,
//! collects every task's acknowledgement, stores the states and completes a
//! checkpoint by writing its metadata; retains the newest N and deletes the rest.
//! It lives as long as the job, across restarts, so checkpoint ids never repeat.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use flink_core::checkpoint::{
    ChainSnapshot, CheckpointBarrier, CheckpointConfig, CheckpointLocation, StopMode,
};
use flink_core::clock::Clock;

use super::savepoint::{
    MAX_FORWARDED_SAVEPOINTS, SavepointError, SavepointReply, SavepointRequest,
};
use super::stats::{BarrierArrival, CheckpointStats};
use super::storage::{
    CheckpointMetadata, CheckpointStore, LoadedCheckpoint, METADATA_VERSION, OperatorEntry,
    StorageError, TaskEntry,
};
use super::task_side::CheckpointSignals;
use crate::cluster::{CheckpointControl, ClusterLinks, SavepointOrder};

/// This process's part in the checkpoints of a job spread over several processes.
enum ClusterPart {
    /// Process 0, the job manager: triggers every process's sources, collects every
    /// task's acknowledgement, writes `_metadata`, tells every process of completions.
    Leader {
        links: Arc<ClusterLinks>,
        /// Tasks of other processes whose input ended (they acknowledge every later
        /// checkpoint with their final state).
        remote_finished: HashSet<(usize, usize)>,
    },
    /// Any other process: passes process 0's triggers and completions to its tasks,
    /// stores its own tasks' states and acknowledges them to process 0, forwards
    /// savepoint requests to process 0.
    Follower {
        links: Arc<ClusterLinks>,
        /// The newest checkpoint process 0's trigger announced.
        current: u64,
        /// This process's tasks that acknowledged `current`.
        acked: HashSet<(usize, usize)>,
        /// Whether process 0 aborted `current`: nothing more is stored for it.
        aborted: bool,
        /// Set when `current` is a savepoint.
        savepoint: Option<Box<FollowedSavepoint>>,
        /// Acknowledgements of a checkpoint whose trigger has not arrived yet (its
        /// barrier came through another process): where to store them is known
        /// only then (a savepoint's directory). At most one per task.
        early: Vec<EarlyAck>,
        /// Savepoint requests forwarded to process 0, by number, and their callers.
        forwarded: HashMap<u64, SavepointReply>,
        /// The number of the last forwarded request.
        last_request: u64,
    },
}

/// A savepoint process 0 triggered, as another process follows it.
struct FollowedSavepoint {
    id: u64,
    path: CheckpointLocation,
    stop: Option<StopMode>,
    /// The savepoint's directory, or why it cannot be opened here (its
    /// acknowledgements then decline).
    store: Result<CheckpointStore, String>,
    completed: bool,
}

/// A task's acknowledgement that came before its checkpoint's trigger.
struct EarlyAck {
    checkpoint: u64,
    task: (usize, usize),
    snapshot: ChainSnapshot,
    timing: BarrierArrival,
}

/// How often a follower looks for process 0's messages (at the latest).
const FOLLOWER_POLL: Duration = Duration::from_millis(5);

/// A checkpoint in progress.
struct Pending {
    barrier: CheckpointBarrier,
    started: Duration,
    /// Stored task files, by (vertex, subtask).
    acked: HashMap<(usize, usize), TaskEntry>,
    /// Set when this checkpoint is a savepoint.
    savepoint: Option<SavepointTarget>,
}

/// Where a savepoint in progress goes and who waits for it.
struct SavepointTarget {
    store: CheckpointStore,
    path: CheckpointLocation,
    /// Whether and how the job stops after it (its sources stopped after the
    /// barrier).
    stop: Option<StopMode>,
    reply: SavepointReply,
}

impl SavepointTarget {
    /// Deletes what was stored of savepoint `id` (nothing of a failed savepoint
    /// stays behind, locally or in a bucket), then tells the caller `error`.
    fn discard(self, id: u64, error: SavepointError) {
        delete_savepoint(id, &self.path, &self.store);
        self.reply.send(Err(error));
    }
}

/// Deletes savepoint `id`'s directory at `path` (stored through `store`).
fn delete_savepoint(id: u64, path: &CheckpointLocation, store: &CheckpointStore) {
    let deleted = match path.as_directory() {
        Some(dir) => match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
            _ => Ok(()),
        },
        None => store.delete(id).map_err(|e| e.to_string()),
    };
    if let Err(e) = deleted {
        tracing::warn!(%path, error = %e, "cannot delete a failed savepoint");
    }
}

/// What checkpointing did over the life of a job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CheckpointCounts {
    /// Checkpoints completed.
    pub completed: u64,
    /// Checkpoints that failed (timed out or could not be stored), or were given up
    /// because the job failed while they were in progress.
    pub failed: u64,
    /// The newest completed checkpoint.
    pub last_completed: Option<u64>,
}

/// A job name as a file name: anything but letters, digits, `-` and `_` becomes `_`.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The job-wide checkpoint coordinator.
pub(crate) struct CheckpointCoordinator {
    config: CheckpointConfig,
    store: CheckpointStore,
    clock: Arc<dyn Clock>,
    next_id: u64,
    /// Completed checkpoints still stored, oldest first.
    retained: VecDeque<u64>,
    counts: CheckpointCounts,
    failures_in_a_row: usize,
    // Per attempt:
    signals: Arc<CheckpointSignals>,
    tasks: Vec<(usize, usize)>,
    finished: HashMap<(usize, usize), ChainSnapshot>,
    pending: Option<Pending>,
    last_trigger: Option<Duration>,
    /// Whether the checkpoint after every task finished was triggered.
    final_triggered: bool,
    last_completion: Option<Duration>,
    /// The job's operators, written into every checkpoint's metadata.
    operators: Vec<OperatorEntry>,
    job_name: String,
    /// Savepoints asked for, taken when no checkpoint is in progress.
    savepoints: VecDeque<SavepointRequest>,
    /// A savepoint with a drain: the job drains first (its sources end their
    /// input), then this savepoint is the checkpoint of every task's final state.
    drain_savepoint: Option<SavepointRequest>,
    /// The savepoint the job stopped with, once complete.
    stopped_with: Option<CheckpointLocation>,
    /// What the REST API shows of each checkpoint.
    stats: Arc<CheckpointStats>,
    /// `Some` when the job runs across several processes.
    cluster: Option<ClusterPart>,
}

impl CheckpointCoordinator {
    /// A coordinator storing into `store`. Checkpoints a previous run of the job left
    /// there are kept when complete (ids go on after them) and deleted when not.
    #[cfg(test)]
    pub(crate) fn new(
        config: CheckpointConfig,
        store: CheckpointStore,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StorageError> {
        Self::for_process(config, store, clock, None)
    }

    /// A coordinator of a job in this process alone (`links` `None`) or this
    /// process's part of one spread over several: process 0 coordinates, the others
    /// follow it. Only a job running alone or process 0 cleans up the storage.
    pub(crate) fn for_process(
        config: CheckpointConfig,
        store: CheckpointStore,
        clock: Arc<dyn Clock>,
        links: Option<Arc<ClusterLinks>>,
    ) -> Result<Self, StorageError> {
        let cluster = links.map(|links| {
            if links.cluster().index == 0 {
                ClusterPart::Leader {
                    links,
                    remote_finished: HashSet::new(),
                }
            } else {
                ClusterPart::Follower {
                    links,
                    current: 0,
                    acked: HashSet::new(),
                    aborted: false,
                    savepoint: None,
                    early: Vec::new(),
                    forwarded: HashMap::new(),
                    last_request: 0,
                }
            }
        });
        let follower = matches!(cluster, Some(ClusterPart::Follower { .. }));
        let existing = store.checkpoint_ids()?;
        if !follower {
            for &id in &existing {
                if !store.is_complete(id)? {
                    store.delete(id)?;
                }
            }
        }
        let next_id = existing.last().map_or(1, |last| last + 1);
        Ok(Self {
            config,
            store,
            clock,
            next_id,
            retained: VecDeque::new(),
            counts: CheckpointCounts::default(),
            failures_in_a_row: 0,
            signals: Arc::default(),
            tasks: Vec::new(),
            finished: HashMap::new(),
            pending: None,
            last_trigger: None,
            final_triggered: false,
            last_completion: None,
            operators: Vec::new(),
            job_name: String::new(),
            savepoints: VecDeque::new(),
            drain_savepoint: None,
            stopped_with: None,
            stats: Arc::default(),
            cluster,
        })
    }

    /// Names the job and its operators, for the metadata of its checkpoints.
    pub(crate) fn with_job(mut self, job_name: &str, operators: Vec<OperatorEntry>) -> Self {
        self.job_name = job_name.to_string();
        self.operators = operators;
        self
    }

    /// The next checkpoint gets an id above `id` (that of a restored savepoint or
    /// checkpoint), so the ids of transactions a sink recovers are never reused.
    pub(crate) fn ids_after(&mut self, id: u64) {
        self.next_id = self.next_id.max(id + 1);
    }

    /// Queues a savepoint; it is taken as soon as no checkpoint is in progress. In
    /// a process other than 0 of a job spread over several, the request goes to
    /// process 0, whose answer [`tick`](Self::tick) hands to the caller.
    pub(crate) fn request_savepoint(&mut self, request: SavepointRequest) {
        let Some(ClusterPart::Follower {
            links,
            forwarded,
            last_request,
            ..
        }) = &mut self.cluster
        else {
            self.savepoints.push_back(request);
            return;
        };
        if forwarded.len() >= MAX_FORWARDED_SAVEPOINTS {
            request.reply.send(Err(SavepointError::TooManyRequests));
            return;
        }
        *last_request += 1;
        links.send_checkpoint(
            0,
            &CheckpointControl::SavepointRequest {
                request: *last_request,
                directory: request.directory,
                stop: request.stop,
            },
        );
        forwarded.insert(*last_request, request.reply);
    }

    /// Process 0: queues savepoint request `request` of process `peer`, unless too
    /// many forwarded ones wait already.
    fn queue_forwarded(
        &mut self,
        links: &Arc<ClusterLinks>,
        peer: usize,
        request: u64,
        directory: CheckpointLocation,
        stop: Option<StopMode>,
    ) {
        let reply = SavepointReply::Remote {
            links: links.clone(),
            peer,
            request,
        };
        let waiting = self
            .savepoints
            .iter()
            .filter(|r| matches!(r.reply, SavepointReply::Remote { .. }))
            .count();
        if waiting >= MAX_FORWARDED_SAVEPOINTS {
            reply.send(Err(SavepointError::TooManyRequests));
        } else {
            tracing::info!(process = peer, %directory, ?stop, "savepoint asked for by another process");
            self.savepoints.push_back(SavepointRequest {
                directory,
                stop,
                reply,
            });
        }
    }

    /// The checkpoint mode and signals for a new attempt running `tasks`
    /// ((vertex, subtask) pairs); a checkpoint of the previous attempt is given up.
    pub(crate) fn start_attempt(&mut self, tasks: Vec<(usize, usize)>) -> Arc<CheckpointSignals> {
        if let Some(p) = self.pending.take() {
            self.abort(p.barrier.id, "the job restarted");
            if let Some(target) = p.savepoint {
                target.discard(
                    p.barrier.id,
                    SavepointError::Failed(
                        "the job restarted while the savepoint was taken".into(),
                    ),
                );
            }
        }
        self.tasks = tasks;
        self.finished.clear();
        match &mut self.cluster {
            Some(ClusterPart::Leader {
                remote_finished, ..
            }) => remote_finished.clear(),
            Some(ClusterPart::Follower { acked, .. }) => acked.clear(),
            None => {}
        }
        self.final_triggered = false;
        self.signals = Arc::default();
        self.last_trigger = Some(self.clock.now());
        self.signals.clone()
    }

    /// What checkpointing did so far.
    pub(crate) fn counts(&self) -> CheckpointCounts {
        self.counts
    }

    /// The record of every checkpoint, shared with the REST API.
    pub(crate) fn stats(&self) -> Arc<CheckpointStats> {
        self.stats.clone()
    }

    /// The savepoint the job stopped with (`stop_with_savepoint`), once complete.
    pub(crate) fn stopped_with(&self) -> Option<&CheckpointLocation> {
        self.stopped_with.as_ref()
    }

    /// Whether a savepoint with a drain waits for the job to drain: the sources
    /// must end their input (as [`JobControl::stop`](crate::job_client::JobControl::stop)).
    pub(crate) fn wants_drain(&self) -> bool {
        self.drain_savepoint.is_some()
    }

    /// The configuration.
    pub(crate) fn config(&self) -> &CheckpointConfig {
        &self.config
    }

    /// The newest completed checkpoint, read back and checked.
    pub(crate) fn load_latest(&self) -> Result<Option<LoadedCheckpoint>, StorageError> {
        self.retained
            .back()
            .map(|&id| self.store.load(id))
            .transpose()
    }

    /// How long until [`tick`](Self::tick) has something to do.
    pub(crate) fn next_wakeup(&self) -> Duration {
        if self.cluster.is_some() {
            // Messages from other processes come at any time.
            return FOLLOWER_POLL;
        }
        let now = self.clock.now();
        match (&self.pending, self.last_trigger) {
            (Some(p), _) => (p.started + self.config.timeout).saturating_sub(now),
            (None, _) if !self.savepoints.is_empty() => Duration::ZERO,
            (None, Some(last)) => {
                // Both must have passed (see `tick`); waking at the interval alone
                // would spin through the rest of a longer pause.
                let interval_end = last + self.config.interval;
                let pause_end = self.last_completion.map_or(Duration::ZERO, |t| {
                    t + self.config.min_pause_between_checkpoints
                });
                interval_end.max(pause_end).saturating_sub(now)
            }
            (None, None) => Duration::ZERO,
        }
    }

    /// Triggers a checkpoint when one is due, fails one that timed out. Returns an
    /// error when the job must fail (too many checkpoint failures in a row).
    pub(crate) fn tick(&mut self) -> Result<(), String> {
        match &self.cluster {
            Some(ClusterPart::Follower { .. }) => return self.follow(),
            Some(ClusterPart::Leader { .. }) => self.hear_followers()?,
            None => {}
        }
        let now = self.clock.now();
        if let Some(p) = &self.pending {
            if now.saturating_sub(p.started) >= self.config.timeout {
                return self.fail_pending("timed out");
            }
            return Ok(());
        }
        let all_finished = self.finished.len() + self.remote_finished() == self.tasks.len();
        let interval_due = self
            .last_trigger
            .is_none_or(|t| now.saturating_sub(t) >= self.config.interval);
        let pause_done = self
            .last_completion
            .is_none_or(|t| now.saturating_sub(t) >= self.config.min_pause_between_checkpoints);
        if !all_finished && let Some(request) = self.savepoints.pop_front() {
            if request.stop == Some(StopMode::Drain) {
                self.wait_for_drain(request);
                return Ok(());
            }
            self.trigger_savepoint(now, request);
            return self.complete_if_acknowledged();
        }
        // Once every task finished, one more checkpoint covers their final states
        // (what they wait for to commit); after it, none is needed. A savepoint
        // with a drain is that checkpoint.
        let final_due = all_finished && !self.final_triggered;
        if final_due && let Some(request) = self.drain_savepoint.take() {
            self.trigger_savepoint(now, request);
            // Unless its directory could not be made: a plain final checkpoint then.
            if self.pending.is_some() {
                self.final_triggered = true;
                return self.complete_if_acknowledged();
            }
        }
        if final_due || (!all_finished && interval_due && pause_done) {
            self.final_triggered = all_finished;
            self.trigger(now, None);
            // Tasks that already finished are covered at once.
            return self.complete_if_acknowledged();
        }
        Ok(())
    }

    /// Keeps a savepoint with a drain until every task finished (the executor
    /// stops the sources meanwhile, [`wants_drain`](Self::wants_drain)); a second
    /// one while the job drains fails at once.
    fn wait_for_drain(&mut self, request: SavepointRequest) {
        if self.drain_savepoint.is_some() {
            request.reply.send(Err(SavepointError::Failed(
                "the job is already stopping with a drain and a savepoint".into(),
            )));
            return;
        }
        tracing::info!(directory = %request.directory, "stop with a drain, then a savepoint");
        self.drain_savepoint = Some(request);
    }

    /// Triggers a savepoint into a new directory under the requested one; a
    /// savepoint that stops without drain tells the sources to end after its
    /// barrier.
    fn trigger_savepoint(&mut self, now: Duration, request: SavepointRequest) {
        let id = self.next_id;
        let path = request
            .directory
            .join(&format!("savepoint-{}-{id}", sanitize(&self.job_name)));
        let store = match CheckpointStore::open_single(&path, true) {
            Ok(store) => store,
            Err(e) => {
                request
                    .reply
                    .send(Err(SavepointError::Failed(e.to_string())));
                return;
            }
        };
        // Before the trigger, so no source takes the barrier without stopping.
        if request.stop == Some(StopMode::NoDrain) {
            self.signals.stop_without_drain_after(id);
        }
        self.trigger(
            now,
            Some(SavepointOrder {
                path: path.clone(),
                stop: request.stop,
            }),
        );
        if let Some(p) = &mut self.pending {
            p.savepoint = Some(SavepointTarget {
                store,
                path,
                stop: request.stop,
                reply: request.reply,
            });
        }
    }

    /// Triggers checkpoint `next_id` (a savepoint if `savepoint` says where), here
    /// and, from process 0, in every process.
    fn trigger(&mut self, now: Duration, savepoint: Option<SavepointOrder>) {
        let is_savepoint = savepoint.is_some();
        let barrier = CheckpointBarrier {
            stop: savepoint.as_ref().and_then(|s| s.stop),
            ..CheckpointBarrier::new(
                self.next_id,
                i64::try_from(now.as_millis()).unwrap_or(i64::MAX),
            )
        };
        self.next_id += 1;
        self.last_trigger = Some(now);
        self.pending = Some(Pending {
            barrier,
            started: now,
            acked: HashMap::new(),
            savepoint: None,
        });
        tracing::debug!(checkpoint = barrier.id, "triggering checkpoint");
        self.stats
            .triggered(barrier.id, is_savepoint, self.tasks.len());
        if let Some(ClusterPart::Leader { links, .. }) = &self.cluster {
            links.broadcast_checkpoint(&CheckpointControl::Trigger {
                id: barrier.id,
                timestamp: barrier.timestamp,
                savepoint,
            });
        }
        self.signals.trigger(barrier, is_savepoint);
    }

    /// A task acknowledged `checkpoint`.
    pub(crate) fn on_ack(
        &mut self,
        checkpoint: u64,
        vertex: usize,
        subtask: usize,
        mut snapshot: ChainSnapshot,
        timing: BarrierArrival,
    ) -> Result<(), String> {
        if let Some(ClusterPart::Follower { .. }) = self.cluster {
            self.store_and_acknowledge(checkpoint, (vertex, subtask), snapshot, timing);
            return Ok(());
        }
        let Some(p) = &mut self.pending else {
            return Ok(());
        };
        if p.barrier.id != checkpoint {
            return Ok(());
        }
        // The snapshot's asynchronous phase: the task went on processing already.
        if let Err((node, e)) = snapshot.materialize() {
            return self.fail_pending(&format!("the state of node {node} did not encode: {e}"));
        }
        let Some(p) = &mut self.pending else {
            return Ok(());
        };
        let store = p.savepoint.as_ref().map_or(&self.store, |t| &t.store);
        match store.write_task(checkpoint, vertex, subtask, &snapshot.states) {
            Ok(entry) => {
                self.stats
                    .acknowledged(checkpoint, vertex, subtask, entry.len, timing);
                p.acked.insert((vertex, subtask), entry);
                self.complete_if_acknowledged()
            }
            Err(e) => self.fail_pending(&e.to_string()),
        }
    }

    /// A task's input ended with `snapshot` as its final state.
    pub(crate) fn on_finished(
        &mut self,
        vertex: usize,
        subtask: usize,
        mut snapshot: ChainSnapshot,
    ) -> Result<(), String> {
        if let Err((node, e)) = snapshot.materialize() {
            return Err(format!(
                "the final state of node {node} (vertex {vertex}, subtask {subtask}) did not encode: {e}"
            ));
        }
        self.finished.insert((vertex, subtask), snapshot);
        if let Some(ClusterPart::Follower { links, current, .. }) = &self.cluster {
            links.send_checkpoint(0, &CheckpointControl::Finished { vertex, subtask });
            // The checkpoint in progress takes the final state, as in one process.
            let current = *current;
            if current > self.counts.last_completed.unwrap_or(0) {
                self.acknowledge_final(current, (vertex, subtask));
            }
            return Ok(());
        }
        self.complete_if_acknowledged()
    }

    /// How many tasks of other processes finished (process 0 only).
    fn remote_finished(&self) -> usize {
        match &self.cluster {
            Some(ClusterPart::Leader {
                remote_finished, ..
            }) => remote_finished.len(),
            _ => 0,
        }
    }

    /// Whether every task of the job finished and the checkpoint holding their
    /// final states completed: process 0 then has nothing more to coordinate for
    /// the other processes, whose tasks end once they hear of that completion.
    pub(crate) fn all_done(&self) -> bool {
        self.finished.len() + self.remote_finished() == self.tasks.len()
            && self.final_triggered
            && self.pending.is_none()
    }

    /// Process 0: takes the other processes' acknowledgements, declines and
    /// finished tasks.
    fn hear_followers(&mut self) -> Result<(), String> {
        let Some(ClusterPart::Leader { links, .. }) = &self.cluster else {
            return Ok(());
        };
        let links = links.clone();
        let messages = links
            .take_checkpoint_messages()
            .map_err(|e| e.to_string())?;
        for (peer, message) in messages {
            match message {
                CheckpointControl::SavepointRequest {
                    request,
                    directory,
                    stop,
                } => self.queue_forwarded(&links, peer, request, directory, stop),
                CheckpointControl::Ack { id, entry, timing } => {
                    self.on_remote_ack(id, entry, timing)?;
                }
                CheckpointControl::Decline { id, reason } => {
                    if self.pending.as_ref().is_some_and(|p| p.barrier.id == id) {
                        self.fail_pending(&format!("process {peer}: {reason}"))?;
                    }
                }
                CheckpointControl::Finished { vertex, subtask } => {
                    if let Some(ClusterPart::Leader {
                        remote_finished, ..
                    }) = &mut self.cluster
                    {
                        remote_finished.insert((vertex, subtask));
                    }
                    self.complete_if_acknowledged()?;
                }
                CheckpointControl::Trigger { .. }
                | CheckpointControl::Complete { .. }
                | CheckpointControl::Abort { .. }
                | CheckpointControl::SavepointAnswer { .. } => {
                    return Err(format!(
                        "process {peer} sent a checkpoint message only process 0 sends"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Process 0: another process stored a task's state for `checkpoint`.
    fn on_remote_ack(
        &mut self,
        checkpoint: u64,
        entry: TaskEntry,
        timing: BarrierArrival,
    ) -> Result<(), String> {
        let Some(p) = &mut self.pending else {
            return Ok(());
        };
        if p.barrier.id != checkpoint {
            return Ok(());
        }
        self.stats
            .acknowledged(checkpoint, entry.vertex, entry.subtask, entry.len, timing);
        p.acked.insert((entry.vertex, entry.subtask), entry);
        self.complete_if_acknowledged()
    }

    /// Any process but 0: passes process 0's triggers, completions and aborts on
    /// to this process's tasks (a trigger is acknowledged at once for finished
    /// tasks), and process 0's answers to forwarded savepoint requests to their
    /// callers.
    fn follow(&mut self) -> Result<(), String> {
        let Some(ClusterPart::Follower { links, .. }) = &self.cluster else {
            return Ok(());
        };
        let messages = links
            .take_checkpoint_messages()
            .map_err(|e| e.to_string())?;
        for (peer, message) in messages {
            match message {
                CheckpointControl::Trigger {
                    id,
                    timestamp,
                    savepoint,
                } => self.hear_trigger(CheckpointBarrier::new(id, timestamp), savepoint),
                CheckpointControl::Complete { id } => self.hear_complete(id),
                CheckpointControl::Abort { id } => self.hear_abort(id),
                CheckpointControl::SavepointAnswer { request, outcome } => {
                    if let Some(ClusterPart::Follower { forwarded, .. }) = &mut self.cluster
                        && let Some(reply) = forwarded.remove(&request)
                    {
                        reply.send(outcome);
                    }
                }
                CheckpointControl::Ack { .. }
                | CheckpointControl::Decline { .. }
                | CheckpointControl::Finished { .. }
                | CheckpointControl::SavepointRequest { .. } => {
                    return Err(format!(
                        "process {peer} sent a checkpoint message only process 0 receives"
                    ));
                }
            }
        }
        Ok(())
    }

    /// A follower: process 0 triggered checkpoint `barrier` (a savepoint into
    /// `order`'s directory if set). The acknowledgements that came before the
    /// trigger are stored now; finished tasks acknowledge with their final state.
    fn hear_trigger(&mut self, barrier: CheckpointBarrier, order: Option<SavepointOrder>) {
        let id = barrier.id;
        let Some(ClusterPart::Follower {
            current,
            acked,
            aborted,
            savepoint,
            early,
            ..
        }) = &mut self.cluster
        else {
            return;
        };
        if id <= *current {
            return;
        }
        *current = id;
        acked.clear();
        *aborted = false;
        *savepoint = order.map(|order| {
            Box::new(FollowedSavepoint {
                id,
                store: CheckpointStore::open_single(&order.path, true).map_err(|e| e.to_string()),
                path: order.path,
                stop: order.stop,
                completed: false,
            })
        });
        let (is_savepoint, stop) = savepoint.as_ref().map_or((false, None), |s| (true, s.stop));
        let (now, later): (Vec<EarlyAck>, Vec<EarlyAck>) = std::mem::take(early)
            .into_iter()
            .filter(|a| a.checkpoint >= id)
            .partition(|a| a.checkpoint == id);
        *early = later;
        self.stats.triggered(id, is_savepoint, self.tasks.len());
        // Before the trigger, so no source takes the barrier without stopping.
        if stop == Some(StopMode::NoDrain) {
            self.signals.stop_without_drain_after(id);
        }
        self.signals.trigger(barrier, is_savepoint);
        for a in now {
            self.store_and_acknowledge(a.checkpoint, a.task, a.snapshot, a.timing);
        }
        let finished: Vec<(usize, usize)> = self.finished.keys().copied().collect();
        for key in finished {
            self.acknowledge_final(id, key);
        }
    }

    /// A follower: checkpoint `id` (and every older one) completed; the tasks
    /// commit, unless it is an intermediate savepoint (no side effects).
    fn hear_complete(&mut self, id: u64) {
        if let Some(ClusterPart::Follower {
            savepoint: Some(savepoint),
            ..
        }) = &mut self.cluster
            && savepoint.id == id
        {
            savepoint.completed = true;
            self.stats.completed(id, savepoint.path.to_string());
            if savepoint.stop.is_some() {
                self.stopped_with = Some(savepoint.path.clone());
                self.signals.complete(id);
            }
            return;
        }
        self.stats.completed(id, self.store.describe(id));
        self.counts.completed += 1;
        self.counts.last_completed = Some(id);
        self.signals.complete(id);
    }

    /// A follower: process 0 aborted checkpoint `id`. Nothing more is stored for
    /// it, and what this process stored is deleted (process 0 deleted the rest; a
    /// write of this process may have come after that).
    fn hear_abort(&mut self, id: u64) {
        let Some(ClusterPart::Follower {
            current,
            aborted,
            savepoint,
            early,
            ..
        }) = &mut self.cluster
        else {
            return;
        };
        early.retain(|a| a.checkpoint != id);
        if id != *current || *aborted {
            return;
        }
        *aborted = true;
        self.stats.failed(id, "aborted by process 0");
        match savepoint {
            Some(s) if s.id == id => {
                if let Ok(store) = &s.store {
                    delete_savepoint(id, &s.path, store);
                }
            }
            _ => {
                if let Err(e) = self.store.delete(id) {
                    tracing::warn!(checkpoint = id, error = %e, "cannot delete a failed checkpoint");
                }
            }
        }
    }

    /// A follower: acknowledges `checkpoint` for finished task `key` with its final
    /// state, unless it did already.
    fn acknowledge_final(&mut self, checkpoint: u64, key: (usize, usize)) {
        // A final state was encoded when the task finished (`on_finished`).
        if let Some(states) = self.finished.get(&key).map(|s| s.states.clone()) {
            let snapshot = ChainSnapshot {
                states,
                ..ChainSnapshot::default()
            };
            self.store_and_acknowledge(checkpoint, key, snapshot, BarrierArrival::default());
        }
    }

    /// A follower: stores task `key`'s state for `checkpoint` (the one in progress,
    /// into its savepoint's directory if it is one) and acknowledges it to process
    /// 0, or declines the checkpoint when storing failed. An acknowledgement of a
    /// checkpoint whose trigger has not arrived waits for it.
    fn store_and_acknowledge(
        &mut self,
        checkpoint: u64,
        (vertex, subtask): (usize, usize),
        mut snapshot: ChainSnapshot,
        timing: BarrierArrival,
    ) {
        let Some(ClusterPart::Follower {
            links,
            current,
            acked,
            aborted,
            savepoint,
            early,
            ..
        }) = &mut self.cluster
        else {
            return;
        };
        if checkpoint > *current {
            early.push(EarlyAck {
                checkpoint,
                task: (vertex, subtask),
                snapshot,
                timing,
            });
            return;
        }
        if checkpoint != *current || *aborted || !acked.insert((vertex, subtask)) {
            return;
        }
        let store = match savepoint {
            Some(s) if s.id == checkpoint => s.store.as_ref().map_err(Clone::clone),
            _ => Ok(&self.store),
        };
        // The snapshot's asynchronous phase, then the store.
        let stored = store.and_then(|store| {
            snapshot
                .materialize()
                .map_err(|(node, e)| format!("the state of node {node} did not encode: {e}"))?;
            store
                .write_task(checkpoint, vertex, subtask, &snapshot.states)
                .map_err(|e| e.to_string())
        });
        let message = match stored {
            Ok(entry) => {
                self.stats
                    .acknowledged(checkpoint, vertex, subtask, entry.len, timing);
                CheckpointControl::Ack {
                    id: checkpoint,
                    entry,
                    timing,
                }
            }
            Err(e) => {
                tracing::warn!(checkpoint, vertex, subtask, error = %e, "cannot store a task's checkpoint state");
                CheckpointControl::Decline {
                    id: checkpoint,
                    reason: format!("task {vertex}/{subtask}: {e}"),
                }
            }
        };
        links.send_checkpoint(0, &message);
    }

    fn complete_if_acknowledged(&mut self) -> Result<(), String> {
        let Some(p) = &mut self.pending else {
            return Ok(());
        };
        let id = p.barrier.id;
        let mut missing = Vec::new();
        for key in &self.tasks {
            if !p.acked.contains_key(key) {
                // A finished task of another process acknowledges from there.
                match self.finished.get(key) {
                    Some(snapshot) => missing.push((*key, snapshot)),
                    None => return Ok(()),
                }
            }
        }
        // Every task acknowledged or finished: store the finished ones' final state.
        let store = p.savepoint.as_ref().map_or(&self.store, |t| &t.store);
        for ((vertex, subtask), snapshot) in missing {
            match store.write_task(id, vertex, subtask, &snapshot.states) {
                Ok(entry) => {
                    // A finished task had no barrier to wait for.
                    self.stats.acknowledged(
                        id,
                        vertex,
                        subtask,
                        entry.len,
                        BarrierArrival::default(),
                    );
                    p.acked.insert((vertex, subtask), entry);
                }
                Err(e) => return self.fail_pending(&e.to_string()),
            }
        }
        let mut tasks: Vec<TaskEntry> = p.acked.values().cloned().collect();
        tasks.sort_by_key(|t| (t.vertex, t.subtask));
        let metadata = CheckpointMetadata {
            version: METADATA_VERSION,
            checkpoint_id: id,
            timestamp: p.barrier.timestamp,
            tasks,
            operators: self.operators.clone(),
        };
        if let Err(e) = store.write_metadata(&metadata) {
            return self.fail_pending(&e.to_string());
        }
        let savepoint = self.pending.take().and_then(|p| p.savepoint);
        if let Some(target) = savepoint {
            self.complete_savepoint(id, target);
            return Ok(());
        }
        self.stats.completed(id, self.store.describe(id));
        self.failures_in_a_row = 0;
        self.counts.completed += 1;
        self.counts.last_completed = Some(id);
        self.last_completion = Some(self.clock.now());
        self.retained.push_back(id);
        while self.retained.len() > self.config.retained_checkpoints {
            let old = self.retained.pop_front().expect("non-empty");
            if let Err(e) = self.store.delete(old) {
                tracing::warn!(checkpoint = old, error = %e, "cannot delete an old checkpoint");
            }
        }
        tracing::debug!(checkpoint = id, "checkpoint completed");
        self.signals.complete(id);
        if let Some(ClusterPart::Leader { links, .. }) = &self.cluster {
            links.broadcast_checkpoint(&CheckpointControl::Complete { id });
        }
        Ok(())
    }

    /// A savepoint is complete: it is not one of the retained checkpoints (retention
    /// never deletes it). Only a stopping savepoint commits the sinks' transactions
    /// (as Flink since 1.15: an intermediate savepoint has no side effects, so
    /// restoring an older checkpoint never finds output committed past it); the
    /// next checkpoint commits them otherwise.
    fn complete_savepoint(&mut self, id: u64, target: SavepointTarget) {
        self.failures_in_a_row = 0;
        self.last_completion = Some(self.clock.now());
        self.stats.completed(id, target.path.to_string());
        tracing::info!(checkpoint = id, path = %target.path, "savepoint completed");
        if target.stop.is_some() {
            self.stopped_with = Some(target.path.clone());
            self.signals.complete(id);
        }
        // The other processes' tasks commit on a stopping one; every process's
        // statistics show it completed.
        if let Some(ClusterPart::Leader { links, .. }) = &self.cluster {
            links.broadcast_checkpoint(&CheckpointControl::Complete { id });
        }
        target.reply.send(Ok(target.path));
    }

    fn fail_pending(&mut self, reason: &str) -> Result<(), String> {
        let Some(p) = self.pending.take() else {
            return Ok(());
        };
        self.abort(p.barrier.id, reason);
        if let Some(target) = p.savepoint {
            target.discard(p.barrier.id, SavepointError::Failed(reason.to_string()));
        }
        self.count_failure(p.barrier.id, reason)
    }

    /// Deletes the files of checkpoint `id`, which will never complete (from
    /// process 0, after telling every other process to store nothing more for it).
    fn abort(&mut self, id: u64, reason: &str) {
        tracing::warn!(checkpoint = id, %reason, "checkpoint failed");
        if let Some(ClusterPart::Leader { links, .. }) = &self.cluster {
            links.broadcast_checkpoint(&CheckpointControl::Abort { id });
        }
        self.stats.failed(id, reason);
        self.counts.failed += 1;
        // The finished tasks still wait for a completed checkpoint: trigger another.
        self.final_triggered = false;
        if let Err(e) = self.store.delete(id) {
            tracing::warn!(checkpoint = id, error = %e, "cannot delete a failed checkpoint");
        }
    }

    fn count_failure(&mut self, id: u64, reason: &str) -> Result<(), String> {
        self.failures_in_a_row += 1;
        if self.failures_in_a_row > self.config.tolerable_failed_checkpoints {
            Err(format!(
                "checkpoint {id} failed ({reason}) and the job tolerates {} checkpoint failure(s) in a row",
                self.config.tolerable_failed_checkpoints
            ))
        } else {
            Ok(())
        }
    }
}

impl Drop for CheckpointCoordinator {
    /// The job ended (failed or cancelled) with a savepoint half taken: its files
    /// are deleted and its caller told. Another process deletes what it stored of
    /// one only when process 0 is gone without having completed it (process 0
    /// deletes the whole savepoint otherwise).
    fn drop(&mut self) {
        if let Some(request) = self.drain_savepoint.take() {
            request.reply.send(Err(SavepointError::JobEnded));
        }
        if let Some(p) = self.pending.take()
            && let Some(target) = p.savepoint
        {
            tracing::warn!(checkpoint = p.barrier.id, path = %target.path, "the job ended during a savepoint");
            target.discard(p.barrier.id, SavepointError::JobEnded);
        }
        if let Some(ClusterPart::Follower {
            links,
            savepoint: Some(s),
            ..
        }) = &self.cluster
            && !s.completed
            && links.to(0).is_some_and(|c| c.failure().is_some())
            && let Ok(store) = &s.store
            && store.is_complete(s.id).is_ok_and(|complete| !complete)
        {
            delete_savepoint(s.id, &s.path, store);
        }
    }
}

#[cfg(test)]
#[path = "coordinator_pacing_tests.rs"]
mod pacing_tests;

#[cfg(test)]
mod tests {
    use flink_core::checkpoint::{CheckpointStorage, DeferredState, StateError};
    use flink_core::clock::ManualClock;

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn coordinator(
        dir: &std::path::Path,
        tolerable: usize,
    ) -> (CheckpointCoordinator, Arc<ManualClock>) {
        let mut config = CheckpointConfig::new(SECOND);
        config.timeout = 5 * SECOND;
        config.tolerable_failed_checkpoints = tolerable;
        config.retained_checkpoints = 2;
        let store =
            CheckpointStore::open(&CheckpointStorage::Directory(dir.into()), "job").unwrap();
        let clock = Arc::new(ManualClock::new());
        let c = CheckpointCoordinator::new(config, store, clock.clone()).unwrap();
        (c, clock)
    }

    fn state(bytes: &[u8]) -> ChainSnapshot {
        ChainSnapshot {
            states: vec![(0, bytes.to_vec())],
            ..ChainSnapshot::default()
        }
    }

    #[test]
    fn a_checkpoint_completes_when_every_task_acknowledged_and_old_ones_go() {
        let dir = tempfile::tempdir().unwrap();
        let (mut c, clock) = coordinator(dir.path(), 0);
        c.start_attempt(vec![(0, 0), (1, 0)]);
        for id in 1..=3 {
            clock.advance(SECOND);
            c.tick().unwrap();
            c.on_ack(id, 0, 0, state(b"a"), BarrierArrival::default())
                .unwrap();
            assert_eq!(
                c.counts().last_completed,
                id.checked_sub(1).filter(|&i| i > 0)
            );
            c.on_ack(id, 1, 0, state(b"b"), BarrierArrival::default())
                .unwrap();
            assert_eq!(c.counts().last_completed, Some(id));
        }
        assert_eq!(c.retained, [2, 3], "two retained, the oldest deleted");
        assert!(!dir.path().join("job/chk-1").exists());
        let latest = c.load_latest().unwrap().unwrap();
        assert_eq!(latest.id, 3);
        assert_eq!(latest.tasks.len(), 2);
    }

    #[test]
    fn a_deferred_state_is_encoded_before_it_is_stored_and_a_failed_one_fails_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let (mut c, clock) = coordinator(dir.path(), 1);
        c.start_attempt(vec![(0, 0)]);
        let deferred = |encoded: Result<Vec<u8>, StateError>| {
            let mut snapshot = ChainSnapshot::default();
            snapshot.add_deferred(0, DeferredState::later(move || encoded));
            snapshot
        };
        clock.advance(SECOND);
        c.tick().unwrap();
        c.on_ack(
            1,
            0,
            0,
            deferred(Ok(b"late".to_vec())),
            BarrierArrival::default(),
        )
        .unwrap();
        assert_eq!(c.counts().last_completed, Some(1));
        let latest = c.load_latest().unwrap().unwrap();
        assert_eq!(latest.tasks.len(), 1);
        clock.advance(SECOND);
        c.tick().unwrap();
        let failing = deferred(Err(StateError::Encode("no".into())));
        c.on_ack(2, 0, 0, failing, BarrierArrival::default())
            .unwrap();
        let counts = c.counts();
        assert_eq!((counts.failed, counts.last_completed), (1, Some(1)));
    }

    #[test]
    fn a_finished_task_counts_with_its_final_state() {
        let dir = tempfile::tempdir().unwrap();
        let (mut c, clock) = coordinator(dir.path(), 0);
        c.start_attempt(vec![(0, 0), (1, 0)]);
        c.on_finished(0, 0, state(b"final")).unwrap();
        clock.advance(SECOND);
        c.tick().unwrap();
        c.on_ack(1, 1, 0, state(b"b"), BarrierArrival::default())
            .unwrap();
        assert_eq!(c.counts().completed, 1);
        // Once every task finished, a checkpoint is triggered and completes at once,
        // and no other follows however long the job takes to wind down.
        c.on_finished(1, 0, state(b"final too")).unwrap();
        c.tick().unwrap();
        assert_eq!(c.counts().last_completed, Some(2));
        for _ in 0..3 {
            clock.advance(SECOND);
            c.tick().unwrap();
        }
        assert_eq!(c.counts().completed, 2);
    }

    #[test]
    fn a_savepoint_with_a_drain_waits_for_every_task_and_holds_their_final_states() {
        let dir = tempfile::tempdir().unwrap();
        let (mut c, _clock) = coordinator(dir.path(), 0);
        c.start_attempt(vec![(0, 0), (1, 0)]);
        let (request, outcome) = savepoint_request(&dir.path().join("sp"), Some(StopMode::Drain));
        c.request_savepoint(request);
        c.tick().unwrap();
        // No barrier: the job drains first.
        assert!(c.wants_drain());
        assert!(c.pending.is_none());
        c.on_finished(0, 0, state(b"final 0")).unwrap();
        c.tick().unwrap();
        assert!(
            outcome.try_recv().is_err(),
            "not before every task finished"
        );
        c.on_finished(1, 0, state(b"final 1")).unwrap();
        c.tick().unwrap();
        let path = outcome.try_recv().unwrap().unwrap();
        assert!(!c.wants_drain());
        assert_eq!(c.stopped_with(), Some(&path));
        let local = path.as_directory().unwrap();
        assert!(local.join("_metadata").is_file());
        // It was the final checkpoint: nothing else is triggered, every task's
        // final state is in it.
        assert!(c.all_done());
        assert_eq!(c.counts().completed, 0);
        let loaded = CheckpointStore::open_single(&path, false)
            .unwrap()
            .load(1)
            .unwrap();
        assert_eq!(loaded.tasks.len(), 2);
    }

    #[test]
    fn timed_out_checkpoints_count_against_the_tolerable_failures() {
        let dir = tempfile::tempdir().unwrap();
        let (mut c, clock) = coordinator(dir.path(), 1);
        c.start_attempt(vec![(0, 0), (1, 0)]);
        clock.advance(SECOND);
        c.tick().unwrap();
        c.on_ack(1, 0, 0, state(b"a"), BarrierArrival::default())
            .unwrap();
        assert!(dir.path().join("job/chk-1").exists());
        clock.advance(5 * SECOND);
        c.tick().expect("one failure is tolerated");
        assert!(
            !dir.path().join("job/chk-1").exists(),
            "its files are deleted"
        );
        c.tick().unwrap(); // triggers checkpoint 2
        clock.advance(5 * SECOND);
        let err = c.tick().unwrap_err();
        assert!(err.contains("checkpoint 2 failed (timed out)"), "{err}");
        assert_eq!(c.counts().failed, 2);
        // A late acknowledgement of a failed checkpoint changes nothing.
        c.on_ack(1, 1, 0, state(b"late"), BarrierArrival::default())
            .unwrap();
        assert_eq!(c.counts().completed, 0);
    }

    /// Process 0's and process 1's links of a two-process job, over loopback.
    fn two_process_links() -> (Arc<ClusterLinks>, Arc<ClusterLinks>) {
        use crate::cluster::launcher::free_loopback_ports;
        use flink_core::cluster::ClusterConfig;
        let peers: Vec<String> = free_loopback_ports(2)
            .unwrap()
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let config = |i| {
            ClusterConfig::new(2, i, peers.clone(), b"secret".to_vec())
                .with_connect_timeout(Duration::from_secs(20))
        };
        let follower = {
            let config = config(1);
            std::thread::spawn(move || ClusterLinks::establish(&config, "job graph 1", 4096))
        };
        let leader = ClusterLinks::establish(&config(0), "job graph 1", 4096).unwrap();
        let follower = follower.join().unwrap().unwrap();
        (Arc::new(leader), Arc::new(follower))
    }

    /// Calls `step` until `done` holds (messages cross a socket), within a guard.
    fn until(
        c: &mut CheckpointCoordinator,
        mut done: impl FnMut(&CheckpointCoordinator) -> bool,
    ) -> Result<(), String> {
        let guard = std::time::Instant::now();
        while !done(c) {
            assert!(guard.elapsed() < Duration::from_secs(20), "no message came");
            c.tick()?;
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    #[test]
    fn across_processes_process_0_completes_a_checkpoint_only_with_every_processs_ack() {
        let dir = tempfile::tempdir().unwrap();
        let (leader_links, follower_links) = two_process_links();
        let mut config = CheckpointConfig::new(SECOND);
        config.timeout = 5 * SECOND;
        config.tolerable_failed_checkpoints = 1;
        let store = || {
            CheckpointStore::open(&CheckpointStorage::Directory(dir.path().into()), "job").unwrap()
        };
        let clock = Arc::new(ManualClock::new());
        let mut leader = CheckpointCoordinator::for_process(
            config.clone(),
            store(),
            clock.clone(),
            Some(leader_links),
        )
        .unwrap();
        let mut follower = CheckpointCoordinator::for_process(
            config,
            store(),
            Arc::new(ManualClock::new()),
            Some(follower_links),
        )
        .unwrap();
        // Subtask 0 runs in process 0, subtask 1 in process 1.
        leader.start_attempt(vec![(0, 0), (0, 1)]);
        follower.start_attempt(vec![(0, 1)]);
        let current = |c: &CheckpointCoordinator| match &c.cluster {
            Some(ClusterPart::Follower { current, .. }) => *current,
            _ => 0,
        };

        clock.advance(SECOND);
        leader.tick().unwrap(); // triggers checkpoint 1 everywhere
        // Process 1's task acknowledges below before process 1 read the trigger (its
        // barrier came from process 0's source): its state is stored once process 1
        // read the trigger (which may name a savepoint's directory), and counts.
        leader
            .on_ack(1, 0, 0, state(b"zero"), BarrierArrival::default())
            .unwrap();
        leader.tick().unwrap();
        assert_eq!(leader.counts().completed, 0, "process 1 has not acked");
        follower
            .on_ack(1, 0, 1, state(b"one"), BarrierArrival::default())
            .unwrap();
        assert!(
            !dir.path().join("job/chk-1/task-0-1").exists(),
            "not stored before the trigger was read"
        );
        // Process 1 stores its task's state itself.
        until(&mut follower, |_| {
            dir.path().join("job/chk-1/task-0-1").is_file()
        })
        .unwrap();
        until(&mut leader, |l| l.counts().completed == 1).unwrap();
        let loaded = leader.load_latest().unwrap().unwrap();
        assert_eq!(loaded.tasks.len(), 2);
        until(&mut follower, |f| f.counts().last_completed == Some(1)).unwrap();

        // Process 1 never acknowledges checkpoint 2: it times out as in one process.
        clock.advance(SECOND);
        leader.tick().unwrap();
        until(&mut follower, |f| current(f) == 2).unwrap();
        leader
            .on_ack(2, 0, 0, state(b"zero"), BarrierArrival::default())
            .unwrap();
        clock.advance(5 * SECOND);
        leader.tick().expect("one failure is tolerated");
        assert_eq!(leader.counts().failed, 1);
        assert!(!dir.path().join("job/chk-2/_metadata").exists());

        // Process 1's task finishes: it acknowledges checkpoint 3 with its final state.
        follower.on_finished(0, 1, state(b"final")).unwrap();
        leader.tick().unwrap(); // triggers checkpoint 3
        until(&mut follower, |f| current(f) == 3).unwrap();
        leader
            .on_ack(3, 0, 0, state(b"zero"), BarrierArrival::default())
            .unwrap();
        until(&mut leader, |l| l.counts().last_completed == Some(3)).unwrap();
        assert!(!leader.all_done(), "process 0's own task still runs");
        leader.on_finished(0, 0, state(b"final")).unwrap();
        // Every task finished: the final checkpoint 4, which process 1 acknowledges
        // with its finished task's state as soon as it hears of it.
        leader.tick().unwrap();
        until(&mut follower, |f| current(f) == 4).unwrap();
        until(&mut leader, CheckpointCoordinator::all_done).unwrap();
        assert_eq!(leader.counts().last_completed, Some(4));
        until(&mut follower, |f| f.counts().last_completed == Some(4)).unwrap();
    }

    #[test]
    fn across_processes_a_process_that_cannot_store_its_state_fails_the_checkpoint() {
        let (dir, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (leader_links, follower_links) = two_process_links();
        let mut config = CheckpointConfig::new(SECOND);
        config.tolerable_failed_checkpoints = 0;
        let store = |d: &std::path::Path| {
            CheckpointStore::open(&CheckpointStorage::Directory(d.into()), "job").unwrap()
        };
        let clock = Arc::new(ManualClock::new());
        let mut leader = CheckpointCoordinator::for_process(
            config.clone(),
            store(dir.path()),
            clock.clone(),
            Some(leader_links),
        )
        .unwrap();
        // Process 1's storage: checkpoint 1's directory is taken by a file.
        std::fs::create_dir_all(other.path().join("job")).unwrap();
        std::fs::write(other.path().join("job/chk-1"), "in the way").unwrap();
        let mut follower = CheckpointCoordinator::for_process(
            config,
            store(other.path()),
            Arc::new(ManualClock::new()),
            Some(follower_links),
        )
        .unwrap();
        leader.start_attempt(vec![(0, 0), (0, 1)]);
        follower.start_attempt(vec![(0, 1)]);
        clock.advance(SECOND);
        leader.tick().unwrap();
        follower
            .on_ack(1, 0, 1, state(b"one"), BarrierArrival::default())
            .unwrap();
        // Process 1 reads the trigger, fails to store and declines.
        let guard = std::time::Instant::now();
        let err = loop {
            assert!(guard.elapsed() < Duration::from_secs(20), "no decline came");
            follower.tick().unwrap();
            if let Err(e) = leader.tick() {
                break e;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        assert!(
            err.contains("checkpoint 1 failed (process 1: task 0/1:"),
            "{err}"
        );
        assert_eq!(leader.counts().failed, 1);
        assert_eq!(leader.counts().completed, 0);
    }

    /// Process 0's and process 1's coordinators of a two-process job storing into
    /// `dir`, process 0's on `clock`.
    fn two_coordinators(
        dir: &std::path::Path,
        clock: &Arc<ManualClock>,
    ) -> (CheckpointCoordinator, CheckpointCoordinator) {
        let (leader_links, follower_links) = two_process_links();
        let mut config = CheckpointConfig::new(SECOND);
        config.timeout = 5 * SECOND;
        config.tolerable_failed_checkpoints = 1;
        let store =
            || CheckpointStore::open(&CheckpointStorage::Directory(dir.into()), "job").unwrap();
        let leader = CheckpointCoordinator::for_process(
            config.clone(),
            store(),
            clock.clone(),
            Some(leader_links),
        )
        .unwrap()
        .with_job("job", Vec::new());
        let follower = CheckpointCoordinator::for_process(
            config,
            store(),
            Arc::new(ManualClock::new()),
            Some(follower_links),
        )
        .unwrap()
        .with_job("job", Vec::new());
        (leader, follower)
    }

    /// A savepoint request into `directory`, and where its outcome arrives.
    fn savepoint_request(
        directory: &std::path::Path,
        stop: Option<StopMode>,
    ) -> (
        SavepointRequest,
        std::sync::mpsc::Receiver<super::super::savepoint::SavepointOutcome>,
    ) {
        let (reply, outcome) = std::sync::mpsc::sync_channel(1);
        let request = SavepointRequest {
            directory: directory.into(),
            stop,
            reply: SavepointReply::Local(reply),
        };
        (request, outcome)
    }

    /// The savepoint process 0 has in progress, once it started one.
    fn savepoint_in_progress(leader: &mut CheckpointCoordinator) -> u64 {
        until(leader, |l| {
            l.pending.as_ref().is_some_and(|p| p.savepoint.is_some())
        })
        .unwrap();
        leader.pending.as_ref().unwrap().barrier.id
    }

    /// Two processes' coordinators with a savepoint asked for in process 1 (`stop`ping
    /// or not) and started by process 0.
    struct ForwardedSavepoint {
        dir: tempfile::TempDir,
        /// Holds the savepoints' directory for the test's length.
        _savepoints: tempfile::TempDir,
        clock: Arc<ManualClock>,
        leader: CheckpointCoordinator,
        follower: CheckpointCoordinator,
        outcome: std::sync::mpsc::Receiver<super::super::savepoint::SavepointOutcome>,
        id: u64,
        /// Where the savepoint goes.
        path: std::path::PathBuf,
    }

    fn forwarded_savepoint(stop: Option<StopMode>) -> ForwardedSavepoint {
        let (dir, savepoints) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let clock = Arc::new(ManualClock::new());
        let (mut leader, mut follower) = two_coordinators(dir.path(), &clock);
        leader.start_attempt(vec![(0, 0), (0, 1)]);
        follower.start_attempt(vec![(0, 1)]);
        let (request, outcome) = savepoint_request(savepoints.path(), stop);
        follower.request_savepoint(request);
        let id = savepoint_in_progress(&mut leader);
        let path = savepoints.path().join(format!("savepoint-job-{id}"));
        ForwardedSavepoint {
            dir,
            _savepoints: savepoints,
            clock,
            leader,
            follower,
            outcome,
            id,
            path,
        }
    }

    #[test]
    fn across_processes_a_savepoint_asked_for_in_process_1_is_taken_by_process_0_everywhere() {
        let ForwardedSavepoint {
            dir,
            _savepoints,
            clock: _clock,
            mut leader,
            mut follower,
            outcome,
            id,
            path,
        } = forwarded_savepoint(Some(StopMode::NoDrain));
        // Process 1's task acknowledges before process 1 heard the trigger (the
        // barrier came through process 0): its state waits to learn where it goes.
        follower
            .on_ack(id, 0, 1, state(b"one"), BarrierArrival::default())
            .unwrap();
        until(&mut follower, |_| path.join("task-0-1").is_file()).unwrap();
        assert!(
            !dir.path().join(format!("job/chk-{id}")).exists(),
            "nothing of the savepoint among the checkpoints"
        );
        leader
            .on_ack(id, 0, 0, state(b"zero"), BarrierArrival::default())
            .unwrap();
        until(&mut leader, |l| l.stopped_with().is_some()).unwrap();
        let mut answer = None;
        until(&mut follower, |_| {
            answer = outcome.try_recv().ok();
            answer.is_some()
        })
        .unwrap();
        assert_eq!(answer, Some(Ok(CheckpointLocation::from(path.clone()))));
        assert_eq!(follower.stopped_with(), Some(&path.clone().into()));
        assert_eq!(leader.stopped_with(), Some(&path.clone().into()));
        let loaded = CheckpointStore::open_single(&path.into(), false)
            .unwrap()
            .load(id)
            .unwrap();
        assert_eq!(loaded.tasks.len(), 2, "both processes' tasks");
    }

    #[test]
    fn across_processes_a_savepoint_that_times_out_is_aborted_everywhere_and_its_caller_told() {
        let ForwardedSavepoint {
            dir: _dir,
            _savepoints,
            clock,
            mut leader,
            mut follower,
            outcome,
            id,
            path,
        } = forwarded_savepoint(None);
        leader
            .on_ack(id, 0, 0, state(b"zero"), BarrierArrival::default())
            .unwrap();
        assert!(path.join("task-0-0").is_file());
        // Process 1's task never acknowledges in time.
        clock.advance(5 * SECOND);
        leader.tick().expect("one failure is tolerated");
        assert!(!path.exists(), "process 0 deleted the savepoint");
        let mut answer = None;
        until(&mut follower, |_| {
            answer = outcome.try_recv().ok();
            answer.is_some()
        })
        .unwrap();
        assert_eq!(
            answer,
            Some(Err(SavepointError::Failed("timed out".into())))
        );
        // Process 1 heard the abort: a late acknowledgement stores nothing.
        follower
            .on_ack(id, 0, 1, state(b"late"), BarrierArrival::default())
            .unwrap();
        follower.tick().unwrap();
        assert!(!path.exists(), "no half-written savepoint left");
        assert_eq!(leader.counts().failed, 1);
    }

    #[test]
    fn a_process_other_than_0_forwards_a_bounded_number_of_savepoint_requests() {
        let (dir, savepoints) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let clock = Arc::new(ManualClock::new());
        let (_leader, mut follower) = two_coordinators(dir.path(), &clock);
        follower.start_attempt(vec![(0, 1)]);
        let mut waiting = Vec::new();
        for _ in 0..MAX_FORWARDED_SAVEPOINTS {
            let (request, outcome) = savepoint_request(savepoints.path(), None);
            follower.request_savepoint(request);
            waiting.push(outcome);
        }
        assert!(waiting.iter().all(|o| o.try_recv().is_err()), "all wait");
        let (request, outcome) = savepoint_request(savepoints.path(), None);
        follower.request_savepoint(request);
        assert_eq!(outcome.try_recv(), Ok(Err(SavepointError::TooManyRequests)));
    }

    #[test]
    fn ids_go_on_after_an_earlier_run_and_its_incomplete_checkpoints_go() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut c, clock) = coordinator(dir.path(), 0);
            c.start_attempt(vec![(0, 0)]);
            clock.advance(SECOND);
            c.tick().unwrap();
            c.on_ack(1, 0, 0, state(b"a"), BarrierArrival::default())
                .unwrap();
            clock.advance(SECOND);
            c.tick().unwrap(); // checkpoint 2 stays incomplete
            c.store
                .write_task(2, 0, 0, &vec![(0, b"x".to_vec())])
                .unwrap();
        }
        let (c, _) = coordinator(dir.path(), 0);
        assert_eq!(c.next_id, 3);
        assert!(dir.path().join("job/chk-1/_metadata").exists());
        assert!(!dir.path().join("job/chk-2").exists());
    }
}
