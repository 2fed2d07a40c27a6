//! [`WebUiConfig`]: where a job serves its REST API and Prometheus metrics. Only the
//! setting lives here (`flink-core` does no I/O); `flink-runtime` starts the server
//! when the job is submitted.

use std::net::{Ipv4Addr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// The address and guard of a job's embedded HTTP server (REST API and `/metrics`),
/// Flink's `rest.address` / `rest.port`. Loopback by default: serving on another
/// interface must be asked for with [`WebUiConfig::exposed`], and may then require a
/// bearer token on every request that changes the job (cancel, stop).
///
/// ```
/// use flink_core::web_ui::WebUiConfig;
///
/// let local = WebUiConfig::loopback(0); // 127.0.0.1, any free port
/// assert_eq!(local.validate(), Ok(()));
///
/// // Another interface is refused unless it is explicit.
/// let sneaky = WebUiConfig::new("0.0.0.0:8081".parse().unwrap());
/// assert!(sneaky.validate().is_err());
/// let exposed = WebUiConfig::exposed("0.0.0.0:8081".parse().unwrap(), Some("s3cret".into()));
/// assert_eq!(exposed.validate(), Ok(()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebUiConfig {
    /// Where to listen; port 0 picks a free port (read the bound address from the
    /// job's client).
    pub address: SocketAddr,
    /// Whether a non-loopback `address` was asked for on purpose.
    pub allow_non_loopback: bool,
    /// When set, requests that change the job (cancel, stop) must carry
    /// `Authorization: Bearer <token>`.
    pub token: Option<String>,
}

impl WebUiConfig {
    /// Serves on `address`, which must be a loopback address (see [`Self::exposed`]).
    pub fn new(address: SocketAddr) -> Self {
        Self {
            address,
            allow_non_loopback: false,
            token: None,
        }
    }

    /// Serves on `127.0.0.1:port` (0: any free port).
    pub fn loopback(port: u16) -> Self {
        Self::new(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
    }

    /// Serves on any `address`, also one other hosts reach, guarding cancel and stop
    /// with `token` when one is given.
    pub fn exposed(address: SocketAddr, token: Option<String>) -> Self {
        Self {
            address,
            allow_non_loopback: true,
            token,
        }
    }

    /// Requires `Authorization: Bearer <token>` on requests that change the job.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Checks that a non-loopback address was asked for with [`Self::exposed`] and that
    /// a token, when set, is not empty.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.address.ip().is_loopback() && !self.allow_non_loopback {
            return Err(ConfigError::WebUiNotLoopback(self.address));
        }
        match &self.token {
            Some(t) if t.trim().is_empty() => Err(ConfigError::EmptyWebUiToken),
            _ => Ok(()),
        }
    }
}
