//! Submitting a job in cluster mode from one process: what is refused up front, and
//! a cluster of one process running like a local job.

use std::time::Duration;

use flink_core::cluster::ClusterConfig;
use flink_runtime::cluster::ClusterRunError;
use flink_runtime::cluster::launcher::free_loopback_ports;
use flink_runtime::prelude::*;

fn alone() -> ClusterConfig {
    let port = free_loopback_ports(1).unwrap()[0];
    ClusterConfig::new(1, 0, vec![format!("127.0.0.1:{port}")], b"s".to_vec())
        .with_connect_timeout(Duration::from_secs(10))
}

#[test]
fn a_cluster_of_one_process_runs_the_whole_job() {
    let env = StreamExecutionEnvironment::new();
    env.set_cluster(alone());
    env.set_parallelism(2);
    let out = env.from_sequence(1, 1000).map(|x| x * 2).collect_vec();
    let result = env.execute("alone").unwrap();
    assert_eq!(out.take().len(), 1000);
    let share = result.cluster.unwrap();
    assert_eq!(
        (share.process, share.processes, share.whole_job),
        (0, 1, true)
    );
    assert_eq!(share.wire.bytes_sent, 0);
}

#[test]
fn a_cluster_job_takes_unaligned_checkpoints() {
    let env = StreamExecutionEnvironment::new();
    env.set_cluster(alone());
    env.set_parallelism(2);
    let dir = tempfile::tempdir().unwrap();
    env.enable_checkpointing(Duration::from_millis(10))
        .set_storage_dir(dir.path())
        .enable_unaligned_checkpoints(true);
    let out = env.from_sequence(1, 1000).rebalance().collect_vec();
    let result = env.execute("unaligned").unwrap();
    assert_eq!(out.take().len(), 1000);
    let counts = result.checkpoints.expect("checkpointing on");
    assert!(counts.completed >= 1, "{counts:?}");
    assert_eq!(counts.failed, 0);
}

#[test]
fn five_stage_pipeline_counts_too_large_for_a_buffer_are_refused_before_anything_starts() {
    let ports = free_loopback_ports(2).unwrap();
    let peers = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let env = StreamExecutionEnvironment::new();
    env.set_cluster(ClusterConfig::new(2, 0, peers, b"s".to_vec()));
    // The counts of 8 gateway subtasks (12 + 8 x 8 bytes) do not fit 64-byte buffers.
    env.set_buffer_size(64);
    env.set_parallelism(8);
    let pipeline = flink_core::pipeline::FiveStagePipeline::<u64, u64>::builder()
        .key(|x| format!("k{x}"))
        .call(|x: u64| async move { Ok::<u64, flink_core::async_io::AsyncFailure>(x) })
        .destination(flink_core::destinations::CollectingDestination::new())
        .build()
        .unwrap();
    let out = env.from_sequence(1, 10).apply_pipeline(&pipeline);
    out.delivered.collect_vec();
    let err = env.execute("pipeline").unwrap_err();
    assert!(
        matches!(&err, JobError::Cluster(ClusterRunError::Unsupported(what)) if what.contains("five-stage pipelines")),
        "{err}"
    );
}

#[test]
fn a_cluster_job_takes_checkpoints_coordinated_by_process_0() {
    let dir = tempfile::tempdir().unwrap();
    let env = StreamExecutionEnvironment::new();
    env.set_cluster(alone());
    env.set_parallelism(2);
    env.enable_checkpointing(Duration::from_millis(10))
        .set_storage_dir(dir.path());
    let out = env.from_sequence(1, 1000).map(|x| x * 2).collect_vec();
    let result = env.execute("checkpointed").unwrap();
    assert_eq!(out.take().len(), 1000);
    let counts = result.checkpoints.expect("checkpointing on");
    // At least the checkpoint with every task's final state.
    assert!(counts.completed >= 1, "{counts:?}");
    assert_eq!(counts.failed, 0);
    assert!(result.restarts.is_empty());
    let latest = flink_runtime::checkpoint::latest_checkpoint(dir.path(), "checkpointed")
        .unwrap()
        .expect("a completed checkpoint");
    let latest = latest.as_directory().expect("a local checkpoint");
    assert!(latest.join("_metadata").is_file());
}

#[test]
fn the_launchers_earlier_restarts_are_in_the_job_result() {
    let env = StreamExecutionEnvironment::new();
    let mut cluster = alone();
    cluster.earlier_restarts = vec![flink_core::cluster::ClusterRestart {
        cause: "process 1 ended (signal: 9 (SIGKILL))".into(),
        restored_checkpoint: Some(4),
    }];
    env.set_cluster(cluster);
    env.from_sequence(1, 10).collect_vec();
    let result = env.execute("restarted").unwrap();
    assert_eq!(result.restarts.len(), 1);
    assert_eq!(result.restarts[0].restored_checkpoint, Some(4));
    assert!(result.restarts[0].cause.contains("SIGKILL"));
}

#[test]
fn a_cluster_job_takes_savepoints_and_stops_with_one() {
    let (dir, savepoints) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let env = StreamExecutionEnvironment::new();
    env.set_cluster(alone());
    env.enable_checkpointing(Duration::from_millis(50))
        .set_storage_dir(dir.path());
    let source = flink_core::sources::SequenceSource::range(0, u64::MAX / 2)
        .rate_limited(flink_core::sources::RateLimiterStrategy::per_second(1000.0).unwrap());
    env.from_source(source, "Sequence").collect_vec();
    let client = env.execute_async("savepointed").unwrap();
    let taken = client.trigger_savepoint(savepoints.path()).unwrap();
    let taken = taken.as_directory().expect("a local savepoint");
    assert!(taken.starts_with(savepoints.path()), "{taken:?}");
    assert!(taken.join("_metadata").is_file());
    let stopped = client.stop_with_savepoint(savepoints.path()).unwrap();
    let result = client.wait().unwrap();
    assert!(result.stopped);
    assert_eq!(result.savepoint, Some(stopped));
}

#[test]
fn a_bad_cluster_setting_is_an_error_when_the_job_is_built() {
    let env = StreamExecutionEnvironment::new();
    let mut cluster = alone();
    cluster.index = 1;
    env.set_cluster(cluster);
    env.from_sequence(1, 10).collect_vec();
    let err = env.execute("misplaced").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid job: cluster: process index 1 is not below the number of processes 1"
    );
}
