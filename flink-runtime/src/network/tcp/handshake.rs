//! The versioned handshake every connection starts with (after TLS, when configured).
//!
//! Both sides send
//! `magic "FLRS" | version u16 | process u32 | job id length u16 | job id | nonce [16]`,
//! check the peer's magic, version and job id, then prove knowledge of the shared secret
//! without sending it: each sends `HMAC-SHA256(secret, role | peer nonce)` (role 0 for the
//! dialer, 1 for the acceptor, so a proof cannot be reflected) and checks the peer's.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::error::TcpError;
use super::frame::PROTOCOL_VERSION;
use super::tls::TlsSettings;

const MAGIC: &[u8; 4] = b"FLRS";
const NONCE_LEN: usize = 16;
const PROOF_LEN: usize = 32;
/// Longest job id accepted (keeps the handshake bounded).
pub const MAX_JOB_ID_LEN: usize = 256;

/// Which side of the connection this process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Opened the connection.
    Dialer,
    /// Accepted it.
    Acceptor,
}

/// What both peers must agree on, plus connection limits.
#[derive(Clone)]
pub struct TcpConfig {
    /// The job both processes run; a peer of another job is refused.
    pub job_id: String,
    /// This process's index in the job, told to the peer so an accepting process
    /// knows which process dialed it.
    pub process: u32,
    /// Shared secret; a peer that cannot prove it knows it is refused.
    pub secret: Vec<u8>,
    /// Deadline for the handshake (and for connecting).
    pub handshake_timeout: Duration,
    /// Largest buffer payload accepted in one frame (the receivers' segment size); a
    /// longer frame is corrupt. Bounds the memory one frame read takes.
    pub max_buffer_size: usize,
    /// Fail the connection when no frame arrived for this long, and send a heartbeat
    /// every fifth of it, so a peer that hangs (stopped, livelocked) is detected, not
    /// only one that crashed; `None`: no heartbeats.
    pub heartbeat_timeout: Option<Duration>,
    /// Mutual TLS for every connection, or `None` for plain TCP (the secret is then
    /// still never sent, but the data is in clear text).
    pub tls: Option<Arc<TlsSettings>>,
}

impl std::fmt::Debug for TcpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpConfig")
            .field("job_id", &self.job_id)
            .field("process", &self.process)
            .field("secret", &"<redacted>")
            .field("handshake_timeout", &self.handshake_timeout)
            .field("max_buffer_size", &self.max_buffer_size)
            .field("heartbeat_timeout", &self.heartbeat_timeout)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// Run the handshake on a freshly connected stream, within `handshake_timeout`;
/// returns the peer's process index. `connection` names it in errors.
pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    config: &TcpConfig,
    role: Role,
    connection: &str,
) -> Result<u32, TcpError> {
    let exchange = exchange(stream, config, role, connection);
    match tokio::time::timeout(config.handshake_timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(TcpError::HandshakeRefused {
            connection: connection.to_string(),
            reason: format!(
                "peer did not complete the handshake within {:?}",
                config.handshake_timeout
            ),
        }),
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    config: &TcpConfig,
    role: Role,
    connection: &str,
) -> Result<u32, TcpError> {
    let refused = |reason: String| TcpError::HandshakeRefused {
        connection: connection.to_string(),
        reason,
    };
    let io = |source: std::io::Error| TcpError::Io {
        connection: connection.to_string(),
        source,
    };
    if config.job_id.len() > MAX_JOB_ID_LEN {
        return Err(refused(format!(
            "job id of {} bytes exceeds {MAX_JOB_ID_LEN}",
            config.job_id.len()
        )));
    }
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce)
        .map_err(|e| refused(format!("no randomness for the nonce: {e}")))?;

    let mut hello = Vec::with_capacity(12 + config.job_id.len() + NONCE_LEN);
    hello.extend_from_slice(MAGIC);
    hello.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    hello.extend_from_slice(&config.process.to_be_bytes());
    hello.extend_from_slice(&(config.job_id.len() as u16).to_be_bytes());
    hello.extend_from_slice(config.job_id.as_bytes());
    hello.extend_from_slice(&nonce);
    stream.write_all(&hello).await.map_err(io)?;
    stream.flush().await.map_err(io)?;

    let closed = |what: &str, e: std::io::Error| {
        refused(format!("peer closed before sending its {what}: {e}"))
    };
    // Magic and version first: a peer of another version may lay out the rest
    // differently.
    let mut head = [0u8; 6];
    stream
        .read_exact(&mut head)
        .await
        .map_err(|e| closed("hello", e))?;
    if &head[..4] != MAGIC {
        return Err(refused("peer is not a flink-rs process (bad magic)".into()));
    }
    let version = u16::from_be_bytes([head[4], head[5]]);
    if version != PROTOCOL_VERSION {
        return Err(refused(format!(
            "peer speaks protocol version {version}, this process speaks {PROTOCOL_VERSION}"
        )));
    }
    let mut head = [0u8; 6];
    stream
        .read_exact(&mut head)
        .await
        .map_err(|e| closed("hello", e))?;
    let peer_process = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let job_len = u16::from_be_bytes([head[4], head[5]]) as usize;
    if job_len > MAX_JOB_ID_LEN {
        return Err(refused(format!(
            "peer job id of {job_len} bytes is too long"
        )));
    }
    let mut rest = vec![0u8; job_len + NONCE_LEN];
    stream
        .read_exact(&mut rest)
        .await
        .map_err(|e| closed("hello", e))?;
    let peer_job = String::from_utf8_lossy(&rest[..job_len]).into_owned();
    if peer_job != config.job_id {
        return Err(refused(format!(
            "peer runs job {peer_job:?}, this process runs job {:?}",
            config.job_id
        )));
    }
    let peer_nonce = &rest[job_len..];

    let (own_role, peer_role) = match role {
        Role::Dialer => (0u8, 1u8),
        Role::Acceptor => (1u8, 0u8),
    };
    stream
        .write_all(&proof(&config.secret, own_role, peer_nonce)?)
        .await
        .map_err(io)?;
    stream.flush().await.map_err(io)?;
    let mut peer_proof = [0u8; PROOF_LEN];
    stream
        .read_exact(&mut peer_proof)
        .await
        .map_err(|e| closed("secret proof", e))?;
    mac(&config.secret, peer_role, &nonce)?
        .verify_slice(&peer_proof)
        .map_err(|_| refused("peer does not know the shared secret".into()))?;
    Ok(peer_process)
}

fn mac(secret: &[u8], role: u8, nonce: &[u8]) -> Result<Hmac<Sha256>, TcpError> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).map_err(|e| {
        TcpError::HandshakeRefused {
            connection: String::new(),
            reason: format!("unusable secret: {e}"),
        }
    })?;
    mac.update(&[role]);
    mac.update(nonce);
    Ok(mac)
}

fn proof(secret: &[u8], role: u8, nonce: &[u8]) -> Result<Vec<u8>, TcpError> {
    Ok(mac(secret, role, nonce)?.finalize().into_bytes().to_vec())
}
