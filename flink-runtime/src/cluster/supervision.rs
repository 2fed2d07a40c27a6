//! What a supervising launcher needs to restart a job spread over processes: process
//! 0 writes the job's restart strategy and checkpoint directory to the file the
//! launcher named ([`ENV_SUPERVISOR_FILE`](flink_core::cluster::ENV_SUPERVISOR_FILE))
//! when it joins; when a process dies or the job fails, the launcher stops every
//! process and, as the strategy allows, starts all of them again from the latest
//! completed checkpoint (Flink's full-restart failover).

use std::path::{Path, PathBuf};

use flink_core::checkpoint::{CheckpointStorage, RestartStrategy};
use flink_core::graph::JobGraph;
use serde::{Deserialize, Serialize};

/// How to restart one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestartPlan {
    /// The job's name (its checkpoints are under `<checkpoint_dir>/<job_name>`).
    pub job_name: String,
    /// The job's restart strategy.
    pub restart_strategy: RestartStrategy,
    /// The local directory the job's checkpoints go to; `None` without
    /// checkpointing (a restart then starts from the beginning, as in one process
    /// without a checkpoint) or with storage the launcher cannot list (a URL).
    pub checkpoint_dir: Option<PathBuf>,
    /// Whether the job takes checkpoints: with checkpoints the launcher cannot list,
    /// it does not restart (starting from the beginning would repeat committed
    /// output).
    #[serde(default)]
    pub checkpointing: bool,
}

impl RestartPlan {
    /// The plan of `jg`, run as `job_name`.
    pub fn of(jg: &JobGraph, job_name: &str) -> Self {
        let config = &jg.stream_graph.config;
        let checkpoint_dir = config
            .checkpointing
            .as_ref()
            .and_then(|c| match &c.storage {
                CheckpointStorage::Directory(dir) => Some(dir.clone()),
                CheckpointStorage::Url(url) => url::Url::parse(url)
                    .ok()
                    .filter(|u| u.scheme() == "file")
                    .and_then(|u| u.to_file_path().ok()),
            });
        Self {
            job_name: job_name.to_string(),
            restart_strategy: config.effective_restart_strategy(),
            checkpoint_dir,
            checkpointing: config.checkpointing.is_some(),
        }
    }

    /// Writes the plan to `path` atomically (the launcher reads all or nothing).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, json)?;
        std::fs::rename(tmp, path)
    }

    /// The plan written to `path`, if any was.
    pub fn read(path: &Path) -> std::io::Result<Option<Self>> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(std::io::Error::other),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The newest completed checkpoint to restart from, if any.
    pub fn latest_checkpoint(&self) -> std::io::Result<Option<PathBuf>> {
        match &self.checkpoint_dir {
            Some(dir) => crate::checkpoint::restore::latest_local_checkpoint(dir, &self.job_name),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flink_core::prelude::*;
    use std::time::Duration;

    #[test]
    fn a_plan_round_trips_and_finds_the_latest_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let env = StreamExecutionEnvironment::new();
        env.enable_checkpointing(Duration::from_millis(100))
            .set_storage_dir(dir.path());
        env.set_restart_strategy(RestartStrategy::FixedDelay {
            attempts: 3,
            delay: Duration::from_millis(5),
        });
        env.from_sequence(1, 3).collect_vec();
        let plan = RestartPlan::of(&env.job_graph().unwrap(), "job");
        assert_eq!(plan.checkpoint_dir.as_deref(), Some(dir.path()));
        let file = dir.path().join("plan.json");
        assert_eq!(RestartPlan::read(&file).unwrap(), None);
        plan.write(&file).unwrap();
        assert_eq!(RestartPlan::read(&file).unwrap(), Some(plan.clone()));
        assert_eq!(plan.latest_checkpoint().unwrap(), None);
        std::fs::create_dir_all(dir.path().join("job/chk-4")).unwrap();
        std::fs::write(dir.path().join("job/chk-4/_metadata"), "{}").unwrap();
        assert_eq!(
            plan.latest_checkpoint().unwrap(),
            Some(dir.path().join("job/chk-4"))
        );
    }
}
