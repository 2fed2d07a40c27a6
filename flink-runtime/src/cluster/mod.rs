//! Running one job across several processes (application mode, issue 13 phase 2).
//!
//! Every process runs the same binary, builds the same graph and is given its place
//! by a [`ClusterConfig`](flink_core::cluster::ClusterConfig)
//! (`env.set_cluster(..)` or `env.set_cluster_from_env()`). Subtask `s` of every
//! vertex runs in process `s % processes`. Each process runs only its subtasks: a
//! channel inside a process stays in-process, a channel between processes becomes a
//! logical channel (its index in the execution graph, the same in every process) on
//! the one [`TcpConnection`](crate::network::tcp::TcpConnection) to that peer. The
//! handshake's job id carries the graph's [`job_fingerprint`], so a process of
//! another job graph is refused. Each process's job result covers its own subtasks;
//! a failed connection fails the job with an error naming the peer. See
//! docs/deployment.md.
//!
//! The executor sets up the [`ClusterLinks`] itself; here two threads stand in for
//! two processes:
//!
//! ```
//! use std::time::Duration;
//! use flink_core::cluster::ClusterConfig;
//! use flink_runtime::cluster::ClusterLinks;
//! use flink_runtime::cluster::launcher::free_loopback_ports;
//!
//! let peers: Vec<String> =
//!     free_loopback_ports(2).unwrap().iter().map(|p| format!("127.0.0.1:{p}")).collect();
//! let processes: Vec<_> = (0..2)
//!     .map(|i| {
//!         let config = ClusterConfig::new(2, i, peers.clone(), b"secret".to_vec())
//!             .with_connect_timeout(Duration::from_secs(20));
//!         std::thread::spawn(move || {
//!             let links = ClusterLinks::establish(&config, "job graph 0123", 4096).unwrap();
//!             let peer = 1 - i;
//!             assert_eq!(links.to(peer).unwrap().peer_process() as usize, peer);
//!             // Done (no channels): say so, and wait for the peer to say so too.
//!             while !links.close_when_drained(&[]) {
//!                 std::thread::sleep(Duration::from_millis(5));
//!             }
//!             assert!(links.failure().is_none());
//!         })
//!     })
//!     .collect();
//! for p in processes {
//!     p.join().unwrap();
//! }
//! ```

mod checkpoint_control;
mod error;
mod fingerprint;
mod job_counts;
mod join;
pub mod launcher;
mod links;
mod pipeline_sync;
mod share;
mod subtask_report;
mod subtask_sync;
mod supervision;

pub use error::ClusterRunError;
pub use fingerprint::job_fingerprint;
pub use links::ClusterLinks;
pub use share::ClusterShare;
pub use supervision::RestartPlan;

pub(crate) use checkpoint_control::{CheckpointControl, SavepointOrder};
pub(crate) use job_counts::{final_counts, whole_job_operators};
pub(crate) use join::join;
pub(crate) use pipeline_sync::PipelineSync;
pub(crate) use subtask_report::{ChainedCounts, SubtaskReport, SubtaskState};
pub(crate) use subtask_sync::{RemoteSubtasks, SubtaskSync};
