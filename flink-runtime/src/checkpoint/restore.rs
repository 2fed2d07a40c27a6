//! Starting a job from a savepoint or a retained checkpoint
//! (`StreamExecutionEnvironment::restore_from`): reading it back whole and checked
//! before any task starts, and mapping its state to the new job's operators by uid.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flink_core::checkpoint::{
    CheckpointLocation, CheckpointStorage, RestoreSettings, RestoredState,
};
use flink_core::graph::StreamGraph;
use thiserror::Error;

use super::storage::{CheckpointStore, LoadedCheckpoint, METADATA_FILE, StorageError, local_dir};

/// Why a job cannot start from the savepoint or checkpoint it was given. Nothing of
/// it is restored and no task starts.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RestoreError {
    /// The local directory does not exist.
    #[error("cannot restore from {path}: no such directory")]
    MissingDirectory {
        /// The location given.
        path: CheckpointLocation,
    },
    /// The location has no `_metadata` (in an object store: nothing is stored
    /// there): not a savepoint or completed checkpoint.
    #[error(
        "cannot restore from {path}: no {METADATA_FILE} file, so it is not a savepoint or a completed checkpoint"
    )]
    NotACheckpoint {
        /// The location given.
        path: CheckpointLocation,
    },
    /// A file is damaged: cut short, changed, or not decodable.
    #[error("cannot restore from {path}: {file} is corrupt: {reason}")]
    Corrupt {
        /// The location given.
        path: CheckpointLocation,
        /// The damaged file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// A file was written by a newer format than this release reads.
    #[error(
        "cannot restore from {path}: {file} has format version {found}; this release reads up to {supported}"
    )]
    UnsupportedVersion {
        /// The location given.
        path: CheckpointLocation,
        /// The file.
        file: String,
        /// Its version.
        found: u32,
        /// The newest this release reads.
        supported: u32,
    },
    /// State belongs to an operator uid that no operator of the job has (Flink:
    /// "Failed to rollback to checkpoint/savepoint ... Cannot map checkpoint/savepoint
    /// state for operator ... to the new program"); `allow_non_restored_state(true)`
    /// skips it instead.
    #[error(
        "cannot restore from {path}: it has state of operator '{name}' (uid '{uid}') but no operator of this job has that uid; set the uid on the operator it belongs to, or allow_non_restored_state(true) to skip it"
    )]
    UnknownOperator {
        /// The location given.
        path: CheckpointLocation,
        /// The uid the state is stored under.
        uid: String,
        /// The operator's name in the job that wrote it.
        name: String,
    },
    /// A source was saved at another parallelism than the job runs it with, and
    /// its positions cannot be redistributed (only sequence and generator sources
    /// can today).
    #[error(
        "cannot restore from {path}: source '{operator}' was saved at parallelism {saved} and runs at {now}, but its positions cannot be redistributed; run it at parallelism {saved}"
    )]
    SourceRescale {
        /// The location given.
        path: CheckpointLocation,
        /// The source.
        operator: String,
        /// Its parallelism in the savepoint.
        saved: usize,
        /// Its parallelism now.
        now: usize,
    },
    /// An unaligned checkpoint holding records in flight cannot be restored into
    /// this job: its operators differ from the saved ones, or records in flight
    /// cannot be placed at the new parallelism (re-partitioning them is done for
    /// every exchange; see docs/checkpoints.md).
    #[error(
        "cannot restore from {path}: it is an unaligned checkpoint with records in flight, which cannot be placed at operator '{operator}': {reason}; restore from an aligned checkpoint or savepoint instead"
    )]
    UnalignedRescale {
        /// The location given.
        path: CheckpointLocation,
        /// The operator whose records in flight (or whose place in the job) stand
        /// in the way.
        operator: String,
        /// Why.
        reason: String,
    },
    /// The storage could not be read.
    #[error("cannot restore from {path}: {reason}")]
    Storage {
        /// The location given.
        path: CheckpointLocation,
        /// What failed.
        reason: String,
    },
}

/// The newest completed checkpoint of job `job_name` in the checkpoint storage
/// `dir` (the job's `set_storage_dir` or `set_storage_url`: a local path or an
/// object-store URL), for `env.restore_from(latest_checkpoint(dir, name)?...)`
/// after the whole process died: the `chk-<n>` directory with the highest `n` that
/// has its `_metadata`. `None` when there is none.
///
/// ```
/// use flink_runtime::checkpoint::latest_checkpoint;
///
/// let dir = tempfile::tempdir().unwrap();
/// std::fs::create_dir_all(dir.path().join("job/chk-3")).unwrap();
/// std::fs::write(dir.path().join("job/chk-3/_metadata"), "{}").unwrap();
/// std::fs::create_dir_all(dir.path().join("job/chk-4")).unwrap(); // incomplete
/// let latest = latest_checkpoint(dir.path(), "job").unwrap().unwrap();
/// assert_eq!(latest.as_directory(), Some(dir.path().join("job/chk-3").as_path()));
/// ```
///
/// # Errors
/// [`RestoreError::Storage`] when the job's checkpoints exist but cannot be listed,
/// or the URL names no store this build can open.
pub fn latest_checkpoint(
    dir: impl Into<CheckpointLocation>,
    job_name: &str,
) -> Result<Option<CheckpointLocation>, RestoreError> {
    let dir = dir.into();
    let storage_error = |reason: String| RestoreError::Storage {
        path: dir.clone(),
        reason,
    };
    if let CheckpointLocation::Directory(local) = &dir {
        let latest =
            latest_local_checkpoint(local, job_name).map_err(|e| storage_error(e.to_string()))?;
        return Ok(latest.map(CheckpointLocation::Directory));
    }
    let storage = CheckpointStorage::Url(dir.to_string());
    let store =
        CheckpointStore::open(&storage, job_name).map_err(|e| storage_error(e.to_string()))?;
    for id in store
        .checkpoint_ids()
        .map_err(|e| storage_error(e.to_string()))?
        .into_iter()
        .rev()
    {
        if store
            .is_complete(id)
            .map_err(|e| storage_error(e.to_string()))?
        {
            return Ok(Some(dir.join(job_name).join(&format!("chk-{id}"))));
        }
    }
    Ok(None)
}

/// [`latest_checkpoint`] in a local directory.
pub(crate) fn latest_local_checkpoint(
    dir: &Path,
    job_name: &str,
) -> std::io::Result<Option<PathBuf>> {
    let root = dir.join(job_name);
    let entries = match std::fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut best: Option<(u64, PathBuf)> = None;
    for entry in entries {
        let path = entry?.path();
        let Some(id) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("chk-"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if path.join(METADATA_FILE).is_file() && best.as_ref().is_none_or(|(b, _)| id > *b) {
            best = Some((id, path));
        }
    }
    Ok(best.map(|(_, path)| path))
}

/// Reads the checkpoint `settings` names, whole and checked.
pub(crate) fn load(settings: &RestoreSettings) -> Result<LoadedCheckpoint, RestoreError> {
    let path = settings.path.clone();
    if let Some(dir) = local_dir(&path).map_err(|e| error(&path, e))? {
        if !dir.is_dir() {
            return Err(RestoreError::MissingDirectory { path });
        }
        if !dir.join(METADATA_FILE).is_file() {
            return Err(RestoreError::NotACheckpoint { path });
        }
    }
    let store = CheckpointStore::open_single(&path, false).map_err(|e| error(&path, e))?;
    if !store.is_complete(0).map_err(|e| error(&path, e))? {
        return Err(RestoreError::NotACheckpoint { path });
    }
    let id = store.single_id().map_err(|e| error(&path, e))?;
    store.load(id).map_err(|e| error(&path, e))
}

fn error(path: &CheckpointLocation, e: StorageError) -> RestoreError {
    let path = path.clone();
    match e {
        StorageError::Corrupt { file, reason, .. } => RestoreError::Corrupt { path, file, reason },
        StorageError::UnsupportedVersion {
            file,
            found,
            supported,
            ..
        } => RestoreError::UnsupportedVersion {
            path,
            file,
            found,
            supported,
        },
        other => RestoreError::Storage {
            path,
            reason: other.to_string(),
        },
    }
}

/// The state every node of `graph` restores from `checkpoint`, by node id: the
/// state stored under an operator id goes to the node with that id (its uid, or
/// the generated `auto-<n>`), at whatever parallelism the node now runs (each
/// `RestoredState` holds every saved subtask's bytes). State whose id no node has
/// is an error unless `allow_non_restored_state`.
pub(crate) fn restored_states(
    checkpoint: &LoadedCheckpoint,
    graph: &StreamGraph,
    path: &CheckpointLocation,
    allow_non_restored_state: bool,
) -> Result<HashMap<usize, RestoredState>, RestoreError> {
    let new_node: HashMap<String, usize> = graph
        .nodes
        .iter()
        .map(|n| (n.operator_id(), n.id))
        .collect();
    // The saved operators: (uid, name, parallelism) by saved node id. Checkpoints
    // without the list (phase 1) used node ids, which stand for `auto-<node>`.
    let saved = |node: usize| -> (String, String, Option<usize>) {
        match checkpoint.operators.iter().find(|o| o.node == node) {
            Some(o) => (o.uid.clone(), o.name.clone(), Some(o.parallelism)),
            None => (format!("auto-{node}"), format!("node {node}"), None),
        }
    };
    let mut by_node: HashMap<usize, Vec<Option<Arc<[u8]>>>> = HashMap::new();
    for (_, subtask, states) in &checkpoint.tasks {
        for (node, bytes) in states {
            if *node == super::channel_state::CHANNEL_STATE_NODE {
                continue; // the task's channel state, restored by (vertex, subtask)
            }
            let (uid, name, parallelism) = saved(*node);
            let Some(&target) = new_node.get(&uid) else {
                if allow_non_restored_state {
                    tracing::warn!(%uid, operator = %name, "skipping state no operator owns");
                    continue;
                }
                return Err(RestoreError::UnknownOperator {
                    path: path.clone(),
                    uid,
                    name,
                });
            };
            let slots = by_node
                .entry(target)
                .or_insert_with(|| vec![None; parallelism.unwrap_or(0)]);
            if *subtask >= slots.len() {
                slots.resize(*subtask + 1, None);
            }
            slots[*subtask] = Some(Arc::from(bytes.as_slice()));
        }
    }
    for (&node, slots) in &by_node {
        let n = &graph.nodes[node];
        if let flink_core::node::NodeKind::Source(source) = &n.kind
            && slots.len() != n.parallelism
            && !source.can_restore_rescaled()
        {
            return Err(RestoreError::SourceRescale {
                path: path.clone(),
                operator: n.name.clone(),
                saved: slots.len(),
                now: n.parallelism,
            });
        }
    }
    Ok(by_node
        .into_iter()
        .map(|(node, slots)| {
            let state = RestoredState {
                checkpoint_id: Some(checkpoint.id),
                by_subtask: slots.into(),
            };
            (node, state)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use flink_core::environment::StreamExecutionEnvironment;

    use super::*;
    use crate::checkpoint::storage::OperatorEntry;

    fn graph(uid: Option<&str>) -> StreamGraph {
        let env = StreamExecutionEnvironment::new();
        env.enable_checkpointing(Duration::from_secs(1));
        let stream = env.from_sequence(1, 10).map(|x: u64| x);
        match uid {
            Some(uid) => stream.uid(uid).collect_vec(),
            None => stream.collect_vec(),
        };
        env.stream_graph().unwrap()
    }

    fn checkpoint(operators: Vec<OperatorEntry>) -> LoadedCheckpoint {
        LoadedCheckpoint {
            id: 7,
            tasks: vec![(0, 0, vec![(1, vec![1]), (0, vec![2])])],
            operators,
        }
    }

    #[test]
    fn phase_one_checkpoints_map_node_ids_as_generated_ids() {
        let restored = restored_states(
            &checkpoint(Vec::new()),
            &graph(None),
            &CheckpointLocation::from("x"),
            false,
        )
        .unwrap();
        assert_eq!(restored[&1].own(0), Some(&[1u8][..]));
        assert_eq!(restored[&0].own(0), Some(&[2u8][..]));
    }

    #[test]
    fn state_follows_the_uid_to_whichever_node_has_it() {
        let saved = vec![
            OperatorEntry {
                node: 0,
                uid: "auto-0".into(),
                name: "src".into(),
                parallelism: 1,
            },
            OperatorEntry {
                node: 1,
                uid: "doubler".into(),
                name: "Map".into(),
                parallelism: 1,
            },
        ];
        let restored = restored_states(
            &checkpoint(saved.clone()),
            &graph(Some("doubler")),
            &CheckpointLocation::from("x"),
            false,
        )
        .unwrap();
        assert_eq!(restored[&1].own(0), Some(&[1u8][..]));
        let err = restored_states(
            &checkpoint(saved.clone()),
            &graph(None),
            &CheckpointLocation::from("x"),
            false,
        )
        .unwrap_err();
        assert!(matches!(err, RestoreError::UnknownOperator { ref uid, .. } if uid == "doubler"));
        let skipped = restored_states(
            &checkpoint(saved),
            &graph(None),
            &CheckpointLocation::from("x"),
            true,
        )
        .unwrap();
        assert!(!skipped.contains_key(&1));
    }
}
