//! Setting up the connections of one process to all others: one TCP connection per
//! pair, multiplexing every logical channel between them.
//!
//! The higher index dials the lower one (process 0, which reports the job, only
//! accepts). Every process listens on its own address first, then dials and accepts
//! concurrently, retrying a refused dial until the connect timeout, so the processes
//! may start in any order.

use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use flink_core::cluster::{ClusterConfig, ClusterTls};

use super::error::ClusterRunError;
use crate::network::tcp::{OperatorCounts, TcpConfig, TcpConnection, TcpError, TlsSettings};

/// How often a refused dial or an idle listener is tried again.
const RETRY: Duration = Duration::from_millis(20);

/// The connections of this process, by peer process index (`None` for itself).
pub struct ClusterLinks {
    cluster: ClusterConfig,
    connections: Vec<Option<TcpConnection>>,
    /// Checkpoint messages taken off the connections and not handed out yet.
    pending: parking_lot::Mutex<Vec<(usize, Vec<u8>)>>,
    /// A peer asked the job to stop (drain).
    stop_heard: AtomicBool,
    /// This process told its peers to stop.
    stop_sent: AtomicBool,
}

/// The control message that stops (drains) the job in every process: not JSON, so it
/// never reads as a checkpoint message.
const STOP_MESSAGE: &[u8] = b"stop";

impl std::fmt::Debug for ClusterLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterLinks")
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

impl ClusterLinks {
    /// Listens on this process's address and connects to every other process,
    /// within `cluster.connect_timeout`. `job_id` (the job's name and graph
    /// fingerprint) must be the same in every process; `max_buffer_size` is the
    /// job's buffer size.
    pub fn establish(
        cluster: &ClusterConfig,
        job_id: &str,
        max_buffer_size: usize,
    ) -> Result<Self, ClusterRunError> {
        let me = cluster.index;
        let config = TcpConfig {
            job_id: job_id.to_string(),
            process: me as u32,
            secret: cluster.secret.clone(),
            handshake_timeout: cluster.connect_timeout,
            max_buffer_size,
            heartbeat_timeout: Some(cluster.heartbeat_timeout),
            tls: match &cluster.tls {
                Some(tls) => Some(Arc::new(tls_settings(tls)?)),
                None => None,
            },
        };
        let deadline = Instant::now() + cluster.connect_timeout;
        let listener = listen(cluster)?;
        // Set when accepting failed: the dialers stop retrying instead of waiting out
        // the timeout for a job that failed already.
        let give_up = Arc::new(AtomicBool::new(false));
        let dialers: Vec<_> = (0..me)
            .map(|peer| {
                let (cluster, config) = (cluster.clone(), config.clone());
                let give_up = Arc::clone(&give_up);
                std::thread::Builder::new()
                    .name(format!("dial process {peer}"))
                    .spawn(move || dial(&cluster, peer, &config, deadline, &give_up))
            })
            .collect::<Result<_, _>>()
            .map_err(|e| ClusterRunError::Listen {
                process: me,
                address: cluster.peers[me].clone(),
                reason: format!("cannot start a dialing thread: {e}"),
            })?;
        let accepted = accept_all(cluster, &listener, &config, deadline);
        if accepted.is_err() {
            give_up.store(true, Ordering::Release);
        }
        let mut connections: Vec<Option<TcpConnection>> =
            (0..cluster.processes).map(|_| None).collect();
        let mut first_error = accepted.as_ref().err().cloned();
        for (peer, dialer) in dialers.into_iter().enumerate() {
            match dialer.join() {
                Ok(Ok(c)) => connections[peer] = Some(c),
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(_) => {
                    first_error.get_or_insert(ClusterRunError::Refused {
                        process: peer,
                        address: cluster.peers[peer].clone(),
                        reason: "the dialing thread panicked".into(),
                    });
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        for (peer, c) in accepted.expect("no error") {
            connections[peer] = Some(c);
        }
        tracing::info!(process = me, processes = cluster.processes, job = %job_id, "connected to every peer");
        Ok(Self {
            cluster: cluster.clone(),
            connections,
            pending: parking_lot::Mutex::new(Vec::new()),
            stop_heard: AtomicBool::new(false),
            stop_sent: AtomicBool::new(false),
        })
    }

    /// The cluster these links belong to.
    pub fn cluster(&self) -> &ClusterConfig {
        &self.cluster
    }

    /// The connection to process `peer` (`None` for this process itself).
    pub fn to(&self, peer: usize) -> Option<&TcpConnection> {
        self.connections.get(peer).and_then(Option::as_ref)
    }

    /// Every connection with its peer's index.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &TcpConnection)> {
        self.connections
            .iter()
            .enumerate()
            .filter_map(|(p, c)| c.as_ref().map(|c| (p, c)))
    }

    /// The first failed connection, as an error naming its peer.
    pub fn failure(&self) -> Option<ClusterRunError> {
        self.iter().find_map(|(peer, c)| {
            c.failure().map(|e| ClusterRunError::ConnectionLost {
                process: peer,
                address: self.cluster.peers[peer].clone(),
                reason: e.to_string(),
            })
        })
    }

    /// Sends Close on every connection whose sending channels drained, preceded on
    /// the connection to process 0 (which reports the whole job) by `counts`, this
    /// process's final operator counts; true once every peer closed its side too.
    /// Call it once this process's tasks ended.
    pub fn close_when_drained(&self, counts: &[OperatorCounts]) -> bool {
        let mut all = true;
        for (peer, c) in self.iter() {
            if c.senders_drained() {
                c.close(if peer == 0 { counts } else { &[] });
            } else {
                all = false;
            }
            all &= c.closed_by_peer();
        }
        all
    }

    /// The operator counts every peer sent (to process 0; empty elsewhere), complete
    /// once [`close_when_drained`](Self::close_when_drained) returned true.
    pub fn peer_counts(&self) -> Vec<OperatorCounts> {
        self.iter().flat_map(|(_, c)| c.peer_counts()).collect()
    }

    /// Sends checkpoint message `message` to process `peer` (after everything already
    /// queued for it); a connection already gone shows as [`failure`](Self::failure).
    pub(crate) fn send_checkpoint(&self, peer: usize, message: &super::CheckpointControl) {
        if let Some(c) = self.to(peer) {
            c.send_control(&message.encode());
        }
    }

    /// Sends `message` to every other process.
    pub(crate) fn broadcast_checkpoint(&self, message: &super::CheckpointControl) {
        let bytes = message.encode();
        for (_, c) in self.iter() {
            c.send_control(&bytes);
        }
    }

    /// Tells every other process to stop the job (drain its sources), once.
    pub(crate) fn broadcast_stop(&self) {
        if !self.stop_sent.swap(true, Ordering::AcqRel) {
            for (_, c) in self.iter() {
                c.send_control(STOP_MESSAGE);
            }
        }
    }

    /// Whether another process asked the job to stop.
    pub(crate) fn stop_heard(&self) -> bool {
        self.take_control();
        self.stop_heard.load(Ordering::Acquire)
    }

    /// Takes the control messages off the connections: a stop is noted, the rest
    /// wait for [`take_checkpoint_messages`](Self::take_checkpoint_messages) (a job
    /// without checkpoints gets none).
    fn take_control(&self) {
        let mut pending = self.pending.lock();
        for (peer, c) in self.iter() {
            for bytes in c.take_control() {
                if bytes == STOP_MESSAGE {
                    self.stop_heard.store(true, Ordering::Release);
                } else {
                    pending.push((peer, bytes));
                }
            }
        }
    }

    /// The checkpoint messages received since the last call, with their sender; an
    /// unreadable one is an error naming its sender.
    pub(crate) fn take_checkpoint_messages(
        &self,
    ) -> Result<Vec<(usize, super::CheckpointControl)>, ClusterRunError> {
        self.take_control();
        let pending = std::mem::take(&mut *self.pending.lock());
        let mut all = Vec::with_capacity(pending.len());
        for (peer, bytes) in pending {
            let message = super::CheckpointControl::decode(&bytes).map_err(|reason| {
                ClusterRunError::ConnectionLost {
                    process: peer,
                    address: self.cluster.peers[peer].clone(),
                    reason,
                }
            })?;
            all.push((peer, message));
        }
        Ok(all)
    }

    /// Sum of the frame and byte counters of every connection.
    pub fn stats(&self) -> crate::network::tcp::TcpConnectionStats {
        let mut total = crate::network::tcp::TcpConnectionStats::default();
        for (_, c) in self.iter() {
            let s = c.stats();
            total.frames_sent += s.frames_sent;
            total.bytes_sent += s.bytes_sent;
            total.frames_received += s.frames_received;
            total.bytes_received += s.bytes_received;
        }
        total
    }
}

/// Reads the PEM files of `tls`.
fn tls_settings(tls: &ClusterTls) -> Result<TlsSettings, ClusterRunError> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| ClusterRunError::Tls(format!("{}: {e}", path.display())))
    };
    TlsSettings::from_pem(
        &read(&tls.cert)?,
        &read(&tls.key)?,
        &read(&tls.ca)?,
        &tls.server_name,
    )
    .map_err(|e| ClusterRunError::Tls(e.to_string()))
}

fn listen(cluster: &ClusterConfig) -> Result<TcpListener, ClusterRunError> {
    let me = cluster.index;
    let address = &cluster.peers[me];
    let err = |reason: String| ClusterRunError::Listen {
        process: me,
        address: address.clone(),
        reason,
    };
    let listener = TcpListener::bind(address.as_str()).map_err(|e| err(e.to_string()))?;
    // Polled against the deadline rather than blocking forever on a missing peer.
    listener
        .set_nonblocking(true)
        .map_err(|e| err(e.to_string()))?;
    Ok(listener)
}

/// Dials `peer` until it answers or the deadline passes.
fn dial(
    cluster: &ClusterConfig,
    peer: usize,
    config: &TcpConfig,
    deadline: Instant,
    give_up: &AtomicBool,
) -> Result<TcpConnection, ClusterRunError> {
    let address = cluster.peers[peer].clone();
    let timeout = |last: String| ClusterRunError::PeerTimeout {
        process: peer,
        address: address.clone(),
        timeout_ms: cluster.connect_timeout.as_millis(),
        last,
    };
    let mut last = String::from("nothing tried");
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || give_up.load(Ordering::Acquire) {
            return Err(timeout(last));
        }
        match connect_once(&address, left) {
            Ok(stream) => {
                let connection =
                    TcpConnection::connect_stream(stream, &remaining(config, deadline))
                        .map_err(|e| refused(cluster, peer, e))?;
                if connection.peer_process() as usize != peer {
                    return Err(ClusterRunError::Refused {
                        process: peer,
                        address,
                        reason: format!(
                            "the process there says it is process {}",
                            connection.peer_process()
                        ),
                    });
                }
                return Ok(connection);
            }
            Err(e) => {
                last = e;
                std::thread::sleep(RETRY.min(left));
            }
        }
    }
}

/// One TCP connect to `address` (resolved again each time: a pod's name appears in
/// DNS only once it runs).
fn connect_once(address: &str, timeout: Duration) -> Result<TcpStream, String> {
    let target = address
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve: {e}"))?
        .next()
        .ok_or_else(|| "resolves to nothing".to_string())?;
    TcpStream::connect_timeout(&target, timeout).map_err(|e| e.to_string())
}

/// The handshake gets what is left of the connect timeout.
fn remaining(config: &TcpConfig, deadline: Instant) -> TcpConfig {
    let left = deadline.saturating_duration_since(Instant::now());
    TcpConfig {
        handshake_timeout: left.max(Duration::from_millis(100)),
        ..config.clone()
    }
}

fn refused(cluster: &ClusterConfig, peer: usize, e: TcpError) -> ClusterRunError {
    let reason = match &e {
        TcpError::HandshakeRefused { reason, .. } if reason.contains("runs job") => {
            format!("{e} (the job graph fingerprints differ: another binary, or other arguments?)")
        }
        _ => e.to_string(),
    };
    ClusterRunError::Refused {
        process: peer,
        address: cluster.peers[peer].clone(),
        reason,
    }
}

/// Accepts one connection from every higher process, before the deadline.
fn accept_all(
    cluster: &ClusterConfig,
    listener: &TcpListener,
    config: &TcpConfig,
    deadline: Instant,
) -> Result<Vec<(usize, TcpConnection)>, ClusterRunError> {
    let me = cluster.index;
    let mut missing: Vec<usize> = (me + 1..cluster.processes).collect();
    let mut accepted = Vec::new();
    while let Some(&first_missing) = missing.first() {
        if Instant::now() >= deadline {
            return Err(ClusterRunError::PeerTimeout {
                process: first_missing,
                address: cluster.peers[first_missing].clone(),
                timeout_ms: cluster.connect_timeout.as_millis(),
                last: "it never connected to this process".into(),
            });
        }
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(RETRY);
                continue;
            }
            Err(e) => {
                return Err(ClusterRunError::Listen {
                    process: me,
                    address: cluster.peers[me].clone(),
                    reason: e.to_string(),
                });
            }
        };
        let from = stream
            .peer_addr()
            .map_or_else(|_| "?".to_string(), |a| a.to_string());
        let connection = TcpConnection::accept_stream(stream, &remaining(config, deadline))
            .map_err(|e| {
                // Which process it was is unknown when the handshake failed.
                let reason = match refused(cluster, first_missing, e) {
                    ClusterRunError::Refused { reason, .. } => reason,
                    other => other.to_string(),
                };
                ClusterRunError::RefusedIncoming {
                    from: from.clone(),
                    reason,
                }
            })?;
        let peer = connection.peer_process() as usize;
        match missing.iter().position(|&p| p == peer) {
            Some(i) => {
                missing.remove(i);
                accepted.push((peer, connection));
            }
            None => {
                return Err(ClusterRunError::UnexpectedPeer {
                    process: peer as u32,
                    from,
                });
            }
        }
    }
    Ok(accepted)
}
