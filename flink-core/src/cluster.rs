//! Application mode: one job spread over several processes that each run the same
//! binary, build the same graph and learn their place from a [`ClusterConfig`].
//!
//! Placement is fixed and needs no coordination: subtask `s` of every vertex runs in
//! process `s % processes` (see [`ClusterConfig::process_of`]). Subtask `s` of a
//! forward edge's two ends thus share a process, and every process hosts the same
//! "slot" of every vertex, as Flink's default slot sharing puts one subtask of each
//! vertex in a slot.
//!
//! ```
//! use flink_core::cluster::ClusterConfig;
//!
//! let peers = vec!["127.0.0.1:7000".to_string(), "127.0.0.1:7001".to_string()];
//! let cluster = ClusterConfig::new(2, 1, peers, b"secret".to_vec());
//! assert!(cluster.validate().is_ok());
//! assert_eq!(cluster.process_of(3), 1);
//! assert!(cluster.is_local(1) && !cluster.is_local(0));
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Environment variable: how many processes run the job.
pub const ENV_PROCESSES: &str = "FLINK_RS_PROCESSES";
/// Environment variable: this process's index, `0..processes`.
pub const ENV_PROCESS_INDEX: &str = "FLINK_RS_PROCESS_INDEX";
/// Environment variable: every process's `host:port`, comma-separated, by index.
pub const ENV_PEERS: &str = "FLINK_RS_PEERS";
/// Environment variable: the secret every process shares.
pub const ENV_SECRET: &str = "FLINK_RS_SECRET";
/// Environment variable: how long to wait for the peers, in milliseconds.
pub const ENV_CONNECT_TIMEOUT_MS: &str = "FLINK_RS_CONNECT_TIMEOUT_MS";

/// Environment variable: how long a silent peer is tolerated, in milliseconds.
pub const ENV_HEARTBEAT_TIMEOUT_MS: &str = "FLINK_RS_HEARTBEAT_TIMEOUT_MS";
/// The default heartbeat timeout (Flink's `heartbeat.timeout` is 50 s).
pub const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(30);

/// Environment variable: PEM file of this process's certificate chain (TLS on).
pub const ENV_TLS_CERT: &str = "FLINK_RS_TLS_CERT";
/// Environment variable: PEM file of its private key.
pub const ENV_TLS_KEY: &str = "FLINK_RS_TLS_KEY";
/// Environment variable: PEM file of the CA every peer's certificate chains to.
pub const ENV_TLS_CA: &str = "FLINK_RS_TLS_CA";
/// Environment variable: the DNS name every peer's certificate carries (default
/// [`DEFAULT_TLS_SERVER_NAME`]).
pub const ENV_TLS_SERVER_NAME: &str = "FLINK_RS_TLS_SERVER_NAME";
/// Set by the launcher when it restarts a failed job: the completed checkpoint
/// (`chk-<n>` directory) every process restores from, instead of the job's own
/// `restore_from`.
pub const ENV_RESTORE_FROM: &str = "FLINK_RS_RESTORE_FROM";
/// Set by the launcher: the file process 0 writes the job's restart strategy and
/// checkpoint directory to, so the launcher can restart the job from its latest
/// completed checkpoint (see docs/deployment.md, "Failover").
pub const ENV_SUPERVISOR_FILE: &str = "FLINK_RS_SUPERVISOR_FILE";
/// Set by the launcher on a restart: the job's earlier restarts, a JSON array of
/// [`ClusterRestart`], which process 0's job result then lists.
pub const ENV_RESTARTS: &str = "FLINK_RS_RESTARTS";
/// The name peer certificates carry unless [`ENV_TLS_SERVER_NAME`] says otherwise.
pub const DEFAULT_TLS_SERVER_NAME: &str = "flink-rs";

/// The default time to wait for every peer to come up and answer the handshake.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A cluster setting that can never work.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClusterError {
    /// A job needs at least one process.
    #[error("cluster: the number of processes must be at least 1")]
    NoProcesses,
    /// This process's index is not one of the processes.
    #[error("cluster: process index {index} is not below the number of processes {processes}")]
    IndexOutOfRange {
        /// The index given.
        index: usize,
        /// The number of processes.
        processes: usize,
    },
    /// One `host:port` per process is needed.
    #[error("cluster: {peers} peer address(es) given for {processes} processes")]
    PeerCount {
        /// Addresses given.
        peers: usize,
        /// The number of processes.
        processes: usize,
    },
    /// A peer address is not `host:port`.
    #[error("cluster: peer address {address:?} of process {process} is not host:port")]
    BadAddress {
        /// Which process.
        process: usize,
        /// What was given.
        address: String,
    },
    /// Two processes were given the same address.
    #[error("cluster: processes {first} and {second} share the address {address}")]
    DuplicateAddress {
        /// The first process with it.
        first: usize,
        /// The second.
        second: usize,
        /// The address.
        address: String,
    },
    /// The shared secret is empty.
    #[error("cluster: the shared secret is empty")]
    EmptySecret,
    /// The connect timeout is zero.
    #[error("cluster: the connect and heartbeat timeouts must be above zero")]
    ZeroTimeout,
    /// An environment variable could not be read as what it should hold.
    #[error("cluster: environment variable {name}={value:?}: {reason}")]
    BadVariable {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// Some of the TLS variables are set but not this one.
    #[error(
        "cluster: TLS needs {ENV_TLS_CERT}, {ENV_TLS_KEY} and {ENV_TLS_CA}; {missing} is not set"
    )]
    IncompleteTls {
        /// The missing variable.
        missing: &'static str,
    },
    /// Some of the cluster's environment variables are set but not this one.
    #[error("cluster: {ENV_PROCESSES} is set but {name} is not")]
    MissingVariable {
        /// The missing variable.
        name: &'static str,
    },
}

/// Where this process stands in a job run by several processes (application mode).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterConfig {
    /// How many processes run the job.
    pub processes: usize,
    /// This process's index, `0..processes`.
    pub index: usize,
    /// Every process's `host:port` by index; this process listens on its own entry.
    pub peers: Vec<String>,
    /// The secret every process proves it knows in the handshake (never sent).
    /// Never serialized either (a config written out, say to a log, keeps it out).
    #[serde(skip_serializing, default)]
    pub secret: Vec<u8>,
    /// How long to wait for every peer to come up and complete the handshake.
    pub connect_timeout: Duration,
    /// A peer from which nothing (not even a heartbeat, sent every fifth of this)
    /// arrived for this long fails the job: it hangs, or the network does.
    #[serde(default = "default_heartbeat_timeout")]
    pub heartbeat_timeout: Duration,
    /// Mutual TLS between the processes, or `None` for plain TCP (the secret is still
    /// never sent, but records travel in clear text).
    #[serde(default)]
    pub tls: Option<ClusterTls>,
    /// The checkpoint to restore from when the launcher restarted the job
    /// ([`ENV_RESTORE_FROM`]); it takes precedence over the job's `restore_from`.
    #[serde(default)]
    pub restore_from: Option<std::path::PathBuf>,
    /// Where process 0 tells a supervising launcher how to restart the job
    /// ([`ENV_SUPERVISOR_FILE`]); `None` without one.
    #[serde(default)]
    pub supervisor_file: Option<std::path::PathBuf>,
    /// The restarts of this job before this start ([`ENV_RESTARTS`]), oldest first.
    #[serde(default)]
    pub earlier_restarts: Vec<ClusterRestart>,
}

/// One restart of a job spread over processes, as its launcher did it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRestart {
    /// Why: which process ended, and how.
    pub cause: String,
    /// The checkpoint every process restored from; `None`: from the beginning.
    pub restored_checkpoint: Option<u64>,
}

/// PEM files for mutual TLS between the processes (read when the job starts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterTls {
    /// This process's certificate chain, its own certificate first.
    pub cert: std::path::PathBuf,
    /// Its private key.
    pub key: std::path::PathBuf,
    /// The CA every peer's certificate must chain to.
    pub ca: std::path::PathBuf,
    /// The DNS name every peer's certificate carries.
    pub server_name: String,
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("processes", &self.processes)
            .field("index", &self.index)
            .field("peers", &self.peers)
            .field("secret", &"<redacted>")
            .field("connect_timeout", &self.connect_timeout)
            .field("heartbeat_timeout", &self.heartbeat_timeout)
            .field("tls", &self.tls)
            .field("restore_from", &self.restore_from)
            .field("supervisor_file", &self.supervisor_file)
            .field("earlier_restarts", &self.earlier_restarts)
            .finish()
    }
}

impl ClusterConfig {
    /// Process `index` of `processes`, peers by index, with the default timeout.
    pub fn new(processes: usize, index: usize, peers: Vec<String>, secret: Vec<u8>) -> Self {
        Self {
            processes,
            index,
            peers,
            secret,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            heartbeat_timeout: DEFAULT_HEARTBEAT_TIMEOUT,
            tls: None,
            restore_from: None,
            supervisor_file: None,
            earlier_restarts: Vec::new(),
        }
    }

    /// Sets how long a silent peer is tolerated.
    pub fn with_heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.heartbeat_timeout = timeout;
        self
    }

    /// Turns mutual TLS on between the processes.
    pub fn with_tls(mut self, tls: ClusterTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Sets how long to wait for the peers.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The process subtask `subtask` of any vertex runs in.
    pub fn process_of(&self, subtask: usize) -> usize {
        subtask % self.processes.max(1)
    }

    /// Whether subtask `subtask` of any vertex runs in this process.
    pub fn is_local(&self, subtask: usize) -> bool {
        self.process_of(subtask) == self.index
    }

    /// Checks every value; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ClusterError> {
        if self.processes == 0 {
            return Err(ClusterError::NoProcesses);
        }
        if self.index >= self.processes {
            return Err(ClusterError::IndexOutOfRange {
                index: self.index,
                processes: self.processes,
            });
        }
        if self.peers.len() != self.processes {
            return Err(ClusterError::PeerCount {
                peers: self.peers.len(),
                processes: self.processes,
            });
        }
        for (process, address) in self.peers.iter().enumerate() {
            if !is_host_port(address) {
                return Err(ClusterError::BadAddress {
                    process,
                    address: address.clone(),
                });
            }
            if let Some(first) = self.peers[..process].iter().position(|a| a == address) {
                return Err(ClusterError::DuplicateAddress {
                    first,
                    second: process,
                    address: address.clone(),
                });
            }
        }
        if self.secret.is_empty() {
            return Err(ClusterError::EmptySecret);
        }
        if self.connect_timeout.is_zero() || self.heartbeat_timeout.is_zero() {
            return Err(ClusterError::ZeroTimeout);
        }
        Ok(())
    }

    /// The cluster the process environment describes ([`ENV_PROCESSES`],
    /// [`ENV_PROCESS_INDEX`], [`ENV_PEERS`], [`ENV_SECRET`] and optionally
    /// [`ENV_CONNECT_TIMEOUT_MS`], as the `flink-rs run` launcher sets them), or `None`
    /// when [`ENV_PROCESSES`] is unset: the job then runs in this process alone.
    pub fn from_env() -> Result<Option<Self>, ClusterError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// As [`from_env`](Self::from_env), reading variables through `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, ClusterError> {
        let Some(processes) = var(ENV_PROCESSES) else {
            return Ok(None);
        };
        let required = |name: &'static str| var(name).ok_or(ClusterError::MissingVariable { name });
        let number = |name: &'static str, value: String| {
            value
                .trim()
                .parse::<u64>()
                .map_err(|e| ClusterError::BadVariable {
                    name,
                    value,
                    reason: e.to_string(),
                })
        };
        let processes = number(ENV_PROCESSES, processes)? as usize;
        let index = number(ENV_PROCESS_INDEX, required(ENV_PROCESS_INDEX)?)? as usize;
        let peers = required(ENV_PEERS)?
            .split(',')
            .map(|p| p.trim().to_string())
            .collect();
        let secret = required(ENV_SECRET)?.into_bytes();
        let mut config = Self::new(processes, index, peers, secret);
        if let Some(ms) = var(ENV_CONNECT_TIMEOUT_MS) {
            config.connect_timeout = Duration::from_millis(number(ENV_CONNECT_TIMEOUT_MS, ms)?);
        }
        if let Some(ms) = var(ENV_HEARTBEAT_TIMEOUT_MS) {
            config.heartbeat_timeout = Duration::from_millis(number(ENV_HEARTBEAT_TIMEOUT_MS, ms)?);
        }
        config.tls = tls_from_vars(&var)?;
        config.restore_from = var(ENV_RESTORE_FROM)
            .filter(|p| !p.is_empty())
            .map(Into::into);
        config.supervisor_file = var(ENV_SUPERVISOR_FILE)
            .filter(|p| !p.is_empty())
            .map(Into::into);
        if let Some(json) = var(ENV_RESTARTS).filter(|j| !j.is_empty()) {
            config.earlier_restarts =
                serde_json::from_str(&json).map_err(|e| ClusterError::BadVariable {
                    name: ENV_RESTARTS,
                    reason: e.to_string(),
                    value: json,
                })?;
        }
        config.validate()?;
        Ok(Some(config))
    }
}

fn default_heartbeat_timeout() -> Duration {
    DEFAULT_HEARTBEAT_TIMEOUT
}

/// TLS from [`ENV_TLS_CERT`], [`ENV_TLS_KEY`] and [`ENV_TLS_CA`] (all or none).
fn tls_from_vars(
    var: &impl Fn(&str) -> Option<String>,
) -> Result<Option<ClusterTls>, ClusterError> {
    let files = [ENV_TLS_CERT, ENV_TLS_KEY, ENV_TLS_CA].map(|name| (name, var(name)));
    if files.iter().all(|(_, v)| v.is_none()) {
        return Ok(None);
    }
    let [cert, key, ca] =
        files.map(|(name, v)| v.ok_or(ClusterError::IncompleteTls { missing: name }));
    Ok(Some(ClusterTls {
        cert: cert?.into(),
        key: key?.into(),
        ca: ca?.into(),
        server_name: var(ENV_TLS_SERVER_NAME).unwrap_or_else(|| DEFAULT_TLS_SERVER_NAME.into()),
    }))
}

/// `host:port` with a non-empty host and a port number (names are resolved only when
/// connecting: a Kubernetes pod's name may not resolve before the pod runs).
fn is_host_port(address: &str) -> bool {
    match address.rsplit_once(':') {
        Some((host, port)) => {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            !host.is_empty() && !host.contains(char::is_whitespace) && port.parse::<u16>().is_ok()
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("127.0.0.1:{}", 7000 + i)).collect()
    }

    #[test]
    fn invalid_settings_are_typed_errors() {
        let ok = ClusterConfig::new(3, 2, peers(3), b"s".to_vec());
        assert_eq!(ok.validate(), Ok(()));
        let bad = |c: ClusterConfig| c.validate().unwrap_err();
        assert_eq!(
            bad(ClusterConfig::new(3, 3, peers(3), b"s".to_vec())),
            ClusterError::IndexOutOfRange {
                index: 3,
                processes: 3
            }
        );
        assert_eq!(
            bad(ClusterConfig::new(3, 0, peers(2), b"s".to_vec())),
            ClusterError::PeerCount {
                peers: 2,
                processes: 3
            }
        );
        let mut unparsable = peers(2);
        unparsable[1] = "localhost".into();
        assert_eq!(
            bad(ClusterConfig::new(2, 0, unparsable, b"s".to_vec())),
            ClusterError::BadAddress {
                process: 1,
                address: "localhost".into()
            }
        );
        let same = vec!["a:1".to_string(), "a:1".to_string()];
        assert!(matches!(
            bad(ClusterConfig::new(2, 0, same, b"s".to_vec())),
            ClusterError::DuplicateAddress { .. }
        ));
        assert_eq!(
            bad(ClusterConfig::new(2, 0, peers(2), Vec::new())),
            ClusterError::EmptySecret
        );
        assert_eq!(
            bad(ClusterConfig::new(0, 0, Vec::new(), b"s".to_vec())),
            ClusterError::NoProcesses
        );
    }

    #[test]
    fn the_launchers_restart_variables_are_read() {
        let base = [
            (ENV_PROCESSES, "1"),
            (ENV_PROCESS_INDEX, "0"),
            (ENV_PEERS, "a:1"),
            (ENV_SECRET, "s"),
        ];
        let with = |extra: [(&'static str, &'static str); 3]| {
            move |name: &str| {
                base.iter()
                    .chain(&extra)
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let config = ClusterConfig::from_vars(with([
            (ENV_RESTORE_FROM, "/ck/job/chk-3"),
            (ENV_SUPERVISOR_FILE, "/tmp/plan.json"),
            (
                ENV_RESTARTS,
                r#"[{"cause":"process 1 ended (signal: 9)","restored_checkpoint":3}]"#,
            ),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            config.restore_from.as_deref(),
            Some(std::path::Path::new("/ck/job/chk-3"))
        );
        assert_eq!(
            config.supervisor_file.as_deref(),
            Some(std::path::Path::new("/tmp/plan.json"))
        );
        assert_eq!(
            config.earlier_restarts,
            [ClusterRestart {
                cause: "process 1 ended (signal: 9)".into(),
                restored_checkpoint: Some(3),
            }]
        );
        let bad = ClusterConfig::from_vars(with([
            (ENV_RESTARTS, "[{"),
            (ENV_RESTORE_FROM, ""),
            (ENV_SUPERVISOR_FILE, ""),
        ]));
        assert!(
            matches!(bad, Err(ClusterError::BadVariable { name, .. }) if name == ENV_RESTARTS),
            "{bad:?}"
        );
    }

    #[test]
    fn environment_variables_describe_the_cluster() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(ClusterConfig::from_vars(vars(&[])), Ok(None));
        let config = ClusterConfig::from_vars(vars(&[
            (ENV_PROCESSES, "2"),
            (ENV_PROCESS_INDEX, "1"),
            (ENV_PEERS, "pod-0.flink:6121, pod-1.flink:6121"),
            (ENV_SECRET, "s3cret"),
            (ENV_CONNECT_TIMEOUT_MS, "1500"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(config.peers[1], "pod-1.flink:6121");
        assert_eq!(config.connect_timeout, Duration::from_millis(1500));
        assert_eq!(
            ClusterConfig::from_vars(vars(&[(ENV_PROCESSES, "2")])),
            Err(ClusterError::MissingVariable {
                name: ENV_PROCESS_INDEX
            })
        );
        assert!(matches!(
            ClusterConfig::from_vars(vars(&[(ENV_PROCESSES, "two")])),
            Err(ClusterError::BadVariable { .. })
        ));
        assert_eq!(config.tls, None);
        let tls = ClusterConfig::from_vars(vars(&[
            (ENV_PROCESSES, "1"),
            (ENV_PROCESS_INDEX, "0"),
            (ENV_PEERS, "a:1"),
            (ENV_SECRET, "s"),
            (ENV_TLS_CERT, "node.pem"),
            (ENV_TLS_KEY, "node.key"),
            (ENV_TLS_CA, "ca.pem"),
        ]))
        .unwrap()
        .unwrap()
        .tls
        .unwrap();
        assert_eq!(tls.server_name, DEFAULT_TLS_SERVER_NAME);
        assert_eq!(
            ClusterConfig::from_vars(vars(&[
                (ENV_PROCESSES, "1"),
                (ENV_PROCESS_INDEX, "0"),
                (ENV_PEERS, "a:1"),
                (ENV_SECRET, "s"),
                (ENV_TLS_CERT, "node.pem"),
            ])),
            Err(ClusterError::IncompleteTls {
                missing: ENV_TLS_KEY
            })
        );
        let debug = format!("{config:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        let json = serde_json::to_string(&config).unwrap();
        assert!(!json.contains("s3cret"), "{json}");
    }
}
