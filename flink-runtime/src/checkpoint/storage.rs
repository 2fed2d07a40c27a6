//! Where checkpoints live: `<location>/<job name>/chk-<id>/` holds one state file per
//! task and a `_metadata` file, written last, that lists them with their lengths and
//! checksums. A checkpoint directory without `_metadata` is incomplete. Everything
//! goes through the `object_store` crate, so a local directory and an object store
//! URL work alike.

use std::sync::Arc;

use flink_core::checkpoint::{
    CheckpointLocation, CheckpointStorage, StateError, decode_state, encode_state,
};
use flink_core::key_group::murmur3_32;
use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The metadata format this release writes and reads.
pub(crate) const METADATA_VERSION: u32 = 1;
/// Name of the file that completes a checkpoint.
pub(crate) const METADATA_FILE: &str = "_metadata";

/// A checkpoint that cannot be written or read.
#[derive(Debug, Error)]
pub(crate) enum StorageError {
    /// The store failed.
    #[error("checkpoint storage: {0}")]
    Store(#[from] object_store::Error),
    /// The location is not usable.
    #[error("checkpoint storage location {location}: {reason}")]
    Location {
        /// The configured location.
        location: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A file of a checkpoint was written by a newer format.
    #[error("checkpoint {checkpoint}: {file} has format version {found}, newer than {supported}")]
    UnsupportedVersion {
        /// The checkpoint.
        checkpoint: u64,
        /// The file.
        file: String,
        /// Its version.
        found: u32,
        /// The newest this release reads.
        supported: u32,
    },
    /// A file of a checkpoint is damaged.
    #[error("checkpoint {checkpoint} is corrupt: {file}: {reason}")]
    Corrupt {
        /// The checkpoint.
        checkpoint: u64,
        /// The damaged file.
        file: String,
        /// What is wrong.
        reason: String,
    },
}

/// The state one task acknowledged for one checkpoint, by graph node.
pub(crate) type TaskState = Vec<(usize, Vec<u8>)>;

/// One task's file in a checkpoint's metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TaskEntry {
    /// Job vertex.
    pub(crate) vertex: usize,
    /// Subtask index.
    pub(crate) subtask: usize,
    /// File name within the checkpoint directory.
    pub(crate) file: String,
    /// Its length in bytes.
    pub(crate) len: u64,
    /// MurmurHash3 of its bytes.
    pub(crate) checksum: u32,
}

/// One operator of the job that wrote a checkpoint: what its state is stored under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OperatorEntry {
    /// Its node id in the job that wrote the checkpoint (task files use it).
    pub(crate) node: usize,
    /// Its uid, or the id generated from its graph position
    /// (`StreamNode::operator_id`): state is restored to the operator with this id.
    pub(crate) uid: String,
    /// Its name, for error messages.
    pub(crate) name: String,
    /// Its parallelism when the checkpoint was taken.
    pub(crate) parallelism: usize,
}

/// The `_metadata` of a completed checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CheckpointMetadata {
    /// Format version.
    pub(crate) version: u32,
    /// The checkpoint.
    pub(crate) checkpoint_id: u64,
    /// When it was triggered (ms on the job's clock).
    pub(crate) timestamp: i64,
    /// Every task's file.
    pub(crate) tasks: Vec<TaskEntry>,
    /// The job's operators (absent in checkpoints of phase 1, whose node ids
    /// stand for the generated ids `auto-<node>`).
    #[serde(default)]
    pub(crate) operators: Vec<OperatorEntry>,
}

/// A checkpoint read back: every task's state, checked and decoded.
#[derive(Debug, Clone)]
pub(crate) struct LoadedCheckpoint {
    /// The checkpoint.
    pub(crate) id: u64,
    /// (vertex, subtask, state) of every task.
    pub(crate) tasks: Vec<(usize, usize, TaskState)>,
    /// The operators of the job that wrote it.
    pub(crate) operators: Vec<OperatorEntry>,
}

/// The cloud settings of the environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`: endpoint,
/// region, credentials), as the object stores' `from_env` builders read them:
/// `object_store::parse_url` alone reads none, so an `s3://` URL would look for
/// credentials only in instance metadata.
fn cloud_env() -> impl Iterator<Item = (String, String)> {
    std::env::vars()
        .filter(|(key, _)| {
            ["AWS_", "GOOGLE_", "AZURE_"]
                .iter()
                .any(|prefix| key.starts_with(prefix))
        })
        .map(|(key, value)| (key.to_ascii_lowercase(), value))
}

/// The local directory `location` names: a path, or a `file://` URL.
///
/// # Errors
/// A URL that does not parse, or a `file` URL that is no local path.
pub(crate) fn local_dir(
    location: &CheckpointLocation,
) -> Result<Option<std::path::PathBuf>, StorageError> {
    match location {
        CheckpointLocation::Directory(dir) => Ok(Some(dir.clone())),
        CheckpointLocation::Url(url) => {
            let parsed =
                url::Url::parse(url).map_err(|e| location_error(location, e.to_string()))?;
            if parsed.scheme() != "file" {
                return Ok(None);
            }
            let dir = parsed
                .to_file_path()
                .map_err(|()| location_error(location, "not a local path".into()))?;
            Ok(Some(dir))
        }
    }
}

/// The store `location` lives in and its path there: a local directory (created if
/// `create`, else it must exist) or the object store its URL names.
fn object_store_at(
    location: &CheckpointLocation,
    create: bool,
) -> Result<(Arc<dyn ObjectStore>, Path), StorageError> {
    if let Some(dir) = local_dir(location)? {
        return local_store(location, &dir, create);
    }
    let url = location.to_string();
    let parsed = url::Url::parse(&url).map_err(|e| location_error(location, e.to_string()))?;
    let (store, path) = object_store::parse_url_opts(&parsed, cloud_env())
        .map_err(|e| location_error(location, e.to_string()))?;
    Ok((Arc::from(store), path))
}

/// The local directory `dir` as a store (created if `create`, else it must exist).
fn local_store(
    location: &CheckpointLocation,
    dir: &std::path::Path,
    create: bool,
) -> Result<(Arc<dyn ObjectStore>, Path), StorageError> {
    if create {
        std::fs::create_dir_all(dir).map_err(|e| location_error(location, e.to_string()))?;
    } else if !dir.is_dir() {
        return Err(location_error(location, "no such directory".into()));
    }
    // Deleting a checkpoint's last file removes its directory too.
    let fs =
        object_store::local::LocalFileSystem::new_with_prefix(dir)?.with_automatic_cleanup(true);
    Ok((Arc::new(fs), Path::default()))
}

fn location_error(location: &CheckpointLocation, reason: String) -> StorageError {
    StorageError::Location {
        location: location.to_string(),
        reason,
    }
}

/// The runtime a store's calls are driven on (one thread: the caller's).
fn runtime(location: &CheckpointLocation) -> Result<tokio::runtime::Runtime, StorageError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| location_error(location, format!("no runtime for its I/O: {e}")))
}

/// The checkpoints of one job in one store.
pub(crate) struct CheckpointStore {
    store: Arc<dyn ObjectStore>,
    /// `<location>/<job name>`, or a savepoint's own directory.
    root: Path,
    /// Whether `root` holds one checkpoint's files itself (a savepoint, or a
    /// `chk-<n>` directory opened to restore from) instead of `chk-<n>` directories.
    single: bool,
    /// The configured location, for messages and the REST API.
    location: String,
    runtime: tokio::runtime::Runtime,
}

impl CheckpointStore {
    /// Opens `storage` for the job `job_name` (creating a local directory if needed).
    pub(crate) fn open(storage: &CheckpointStorage, job_name: &str) -> Result<Self, StorageError> {
        let location = match storage {
            CheckpointStorage::Directory(dir) => CheckpointLocation::Directory(dir.clone()),
            CheckpointStorage::Url(url) => CheckpointLocation::Url(url.clone()),
        };
        let (store, base) = object_store_at(&location, true)?;
        Ok(Self {
            store,
            root: base.child(job_name),
            single: false,
            location: location.to_string().trim_end_matches('/').to_string(),
            runtime: runtime(&location)?,
        })
    }

    /// Opens `location` (a local directory or an object-store URL) as the home of
    /// one checkpoint (a savepoint, or a retained checkpoint to restore from),
    /// creating a local directory if `create`.
    pub(crate) fn open_single(
        location: &CheckpointLocation,
        create: bool,
    ) -> Result<Self, StorageError> {
        let (store, root) = object_store_at(location, create)?;
        Ok(Self {
            store,
            root,
            single: true,
            location: location.to_string(),
            runtime: runtime(location)?,
        })
    }

    fn dir(&self, checkpoint: u64) -> Path {
        if self.single {
            self.root.clone()
        } else {
            self.root.child(format!("chk-{checkpoint}"))
        }
    }

    /// Where checkpoint `checkpoint` is stored, as a user would name it.
    pub(crate) fn describe(&self, checkpoint: u64) -> String {
        if self.single {
            self.location.clone()
        } else {
            format!("{}/{}", self.location, self.dir(checkpoint))
        }
    }

    /// The id of the one checkpoint a [`open_single`](Self::open_single) store
    /// holds, from its metadata.
    pub(crate) fn single_id(&self) -> Result<u64, StorageError> {
        let bytes = self.read(&self.root.child(METADATA_FILE))?;
        #[derive(Deserialize)]
        struct Id {
            checkpoint_id: u64,
        }
        let id: Id = serde_json::from_slice(&bytes).map_err(|e| StorageError::Corrupt {
            checkpoint: 0,
            file: METADATA_FILE.into(),
            reason: e.to_string(),
        })?;
        Ok(id.checkpoint_id)
    }

    /// Writes one task's state for `checkpoint`; returns its metadata entry.
    pub(crate) fn write_task(
        &self,
        checkpoint: u64,
        vertex: usize,
        subtask: usize,
        state: &TaskState,
    ) -> Result<TaskEntry, StorageError> {
        let file = format!("task-{vertex}-{subtask}");
        let bytes = encode_state(state).map_err(|e| StorageError::Corrupt {
            checkpoint,
            file: file.clone(),
            reason: e.to_string(),
        })?;
        let entry = TaskEntry {
            vertex,
            subtask,
            len: bytes.len() as u64,
            checksum: murmur3_32(&bytes, 0),
            file,
        };
        let path = self.dir(checkpoint).child(entry.file.as_str());
        self.runtime.block_on(self.store.put(&path, bytes.into()))?;
        Ok(entry)
    }

    /// Completes `checkpoint` by writing its metadata (atomically: the local store
    /// writes a temporary file and renames it; object stores publish whole objects).
    pub(crate) fn write_metadata(&self, metadata: &CheckpointMetadata) -> Result<(), StorageError> {
        let bytes = serde_json::to_vec_pretty(metadata).map_err(|e| StorageError::Corrupt {
            checkpoint: metadata.checkpoint_id,
            file: METADATA_FILE.into(),
            reason: e.to_string(),
        })?;
        let path = self.dir(metadata.checkpoint_id).child(METADATA_FILE);
        self.runtime.block_on(self.store.put(&path, bytes.into()))?;
        Ok(())
    }

    /// Deletes everything of `checkpoint`.
    pub(crate) fn delete(&self, checkpoint: u64) -> Result<(), StorageError> {
        let prefix = self.dir(checkpoint);
        self.runtime.block_on(async {
            let files: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
            for file in files {
                self.store.delete(&file.location).await?;
            }
            Ok::<_, object_store::Error>(())
        })?;
        Ok(())
    }

    /// Reads `checkpoint` back: its metadata, then every task file, each checked
    /// against its length and checksum and decoded. Nothing is returned unless all
    /// of it is sound, so a damaged checkpoint restores nothing.
    pub(crate) fn load(&self, checkpoint: u64) -> Result<LoadedCheckpoint, StorageError> {
        let corrupt = |file: &str, reason: String| StorageError::Corrupt {
            checkpoint,
            file: file.to_string(),
            reason,
        };
        let dir = self.dir(checkpoint);
        let metadata = self.read(&dir.child(METADATA_FILE))?;
        let metadata: CheckpointMetadata =
            serde_json::from_slice(&metadata).map_err(|e| corrupt(METADATA_FILE, e.to_string()))?;
        if metadata.version > METADATA_VERSION {
            return Err(StorageError::UnsupportedVersion {
                checkpoint,
                file: METADATA_FILE.into(),
                found: metadata.version,
                supported: METADATA_VERSION,
            });
        }
        if !self.single && metadata.checkpoint_id != checkpoint {
            return Err(corrupt(
                METADATA_FILE,
                format!("names checkpoint {}", metadata.checkpoint_id),
            ));
        }
        let mut tasks = Vec::with_capacity(metadata.tasks.len());
        for entry in &metadata.tasks {
            let bytes = self.read(&dir.child(entry.file.as_str()))?;
            if bytes.len() as u64 != entry.len {
                return Err(corrupt(
                    &entry.file,
                    format!(
                        "{} bytes where {} were written (truncated?)",
                        bytes.len(),
                        entry.len
                    ),
                ));
            }
            if murmur3_32(&bytes, 0) != entry.checksum {
                return Err(corrupt(&entry.file, "checksum mismatch".into()));
            }
            let state: TaskState = decode_state(&bytes).map_err(|e: StateError| match e {
                StateError::UnsupportedVersion { found, supported } => {
                    StorageError::UnsupportedVersion {
                        checkpoint,
                        file: entry.file.clone(),
                        found,
                        supported,
                    }
                }
                e => corrupt(&entry.file, e.to_string()),
            })?;
            tasks.push((entry.vertex, entry.subtask, state));
        }
        Ok(LoadedCheckpoint {
            id: checkpoint,
            tasks,
            operators: metadata.operators,
        })
    }

    fn read(&self, path: &Path) -> Result<Vec<u8>, StorageError> {
        let bytes = self
            .runtime
            .block_on(async { self.store.get(path).await?.bytes().await })?;
        Ok(bytes.to_vec())
    }

    /// The ids of the checkpoint directories present, complete or not.
    pub(crate) fn checkpoint_ids(&self) -> Result<Vec<u64>, StorageError> {
        let listed = self
            .runtime
            .block_on(self.store.list_with_delimiter(Some(&self.root)))?;
        let mut ids: Vec<u64> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename()?.strip_prefix("chk-")?.parse().ok())
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// Whether `checkpoint` has its metadata (is complete).
    pub(crate) fn is_complete(&self, checkpoint: u64) -> Result<bool, StorageError> {
        let path = self.dir(checkpoint).child(METADATA_FILE);
        match self.runtime.block_on(self.store.head(&path)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(dir: &std::path::Path) -> CheckpointStore {
        let store =
            CheckpointStore::open(&CheckpointStorage::Directory(dir.into()), "job").unwrap();
        let state: TaskState = vec![(3, b"state of node 3".to_vec())];
        let entry = store.write_task(7, 0, 1, &state).unwrap();
        store
            .write_metadata(&CheckpointMetadata {
                version: METADATA_VERSION,
                checkpoint_id: 7,
                timestamp: 0,
                tasks: vec![entry],
                operators: Vec::new(),
            })
            .unwrap();
        store
    }

    #[test]
    fn a_checkpoint_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = stored(dir.path());
        assert_eq!(store.checkpoint_ids().unwrap(), vec![7]);
        assert!(store.is_complete(7).unwrap());
        let loaded = store.load(7).unwrap();
        assert_eq!(
            loaded.tasks,
            vec![(0, 1, vec![(3, b"state of node 3".to_vec())])]
        );
        store.delete(7).unwrap();
        assert!(store.checkpoint_ids().unwrap().is_empty());
    }

    #[test]
    fn damaged_files_are_named_and_nothing_is_returned() {
        let dir = tempfile::tempdir().unwrap();
        let store = stored(dir.path());
        let file = dir.path().join("job/chk-7/task-0-1");
        let mut bytes = std::fs::read(&file).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&file, &bytes).unwrap();
        let err = store.load(7).unwrap_err().to_string();
        assert!(
            err.contains("checkpoint 7 is corrupt: task-0-1: checksum mismatch"),
            "{err}"
        );
        std::fs::write(&file, &bytes[..3]).unwrap();
        let err = store.load(7).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
        std::fs::remove_file(dir.path().join("job/chk-7/_metadata")).unwrap();
        assert!(!store.is_complete(7).unwrap());
        assert!(store.load(7).is_err());
    }

    #[test]
    fn urls_open_object_stores() {
        let dir = tempfile::tempdir().unwrap();
        let file_url = format!("file://{}", dir.path().display());
        for url in ["memory:///checkpoints".to_string(), file_url] {
            let store = CheckpointStore::open(&CheckpointStorage::Url(url.clone()), "job").unwrap();
            let entry = store
                .write_task(1, 0, 0, &vec![(0, vec![1, 2, 3])])
                .unwrap();
            store
                .write_metadata(&CheckpointMetadata {
                    version: METADATA_VERSION,
                    checkpoint_id: 1,
                    timestamp: 0,
                    tasks: vec![entry],
                    operators: Vec::new(),
                })
                .unwrap();
            assert_eq!(
                store.load(1).unwrap().tasks,
                vec![(0, 0, vec![(0, vec![1, 2, 3])])],
                "{url}"
            );
        }
        // The `s3` feature is on when the workspace's tests build together (the
        // connectors' S3 checkpoint test enables it): a store is then built (nothing
        // is contacted before the first request); without it the URL is refused.
        let s3 = CheckpointStore::open(&CheckpointStorage::Url("s3://bucket/x".into()), "job");
        assert_eq!(
            s3.is_ok(),
            cfg!(feature = "s3"),
            "s3 URLs need object_store's aws feature (flink-runtime's `s3`)"
        );
    }
}
