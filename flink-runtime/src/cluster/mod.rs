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

mod error;
mod fingerprint;
pub mod launcher;
mod links;
mod share;

pub use error::ClusterRunError;
pub use fingerprint::job_fingerprint;
pub use links::ClusterLinks;
pub use share::ClusterShare;
