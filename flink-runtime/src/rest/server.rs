//! [`RestServer`]: the job's HTTP server, on a thread of its own with a one-thread
//! tokio runtime, so serving never competes with the job's async calls.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use flink_core::web_ui::WebUiConfig;
use tokio::sync::oneshot;

use super::job_view::JobView;
use super::routes;

/// Binds the address `config` names. Called before the job's tasks start, so a taken
/// port fails the submission rather than a running job.
pub(crate) fn bind(config: &WebUiConfig) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(config.address)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// A running REST API and metrics server of one job. Stops (closing its connections)
/// when dropped.
pub struct RestServer {
    address: SocketAddr,
    job_id: String,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl RestServer {
    /// Serves `view` on `listener`; requests that change the job need `token` when
    /// one is given.
    pub(crate) fn start(
        listener: TcpListener,
        view: Arc<JobView>,
        token: Option<String>,
    ) -> std::io::Result<Self> {
        let address = listener.local_addr()?;
        if !address.ip().is_loopback() {
            tracing::warn!(%address, guarded = token.is_some(), "the REST API listens on a non-loopback address");
        }
        let job_id = view.id.clone();
        let router = routes::router(view, token);
        let (shutdown, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("rest-server".into())
            .spawn(move || serve(listener, router, stopped))?;
        tracing::info!(url = %format!("http://{address}/"), job = %job_id, "REST API and /metrics serving");
        Ok(Self {
            address,
            job_id,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The address the server listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The id the REST API gives the job.
    pub fn job_id(&self) -> &str {
        &self.job_id
    }
}

/// Runs the server until `stopped` fires (or its sender is dropped).
fn serve(listener: TcpListener, router: axum::Router, stopped: oneshot::Receiver<()>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "the REST API cannot start its runtime");
            return;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "the REST API cannot use its socket");
                return;
            }
        };
        // Not a graceful shutdown: a client holding a connection open must not keep
        // the job's client from returning.
        tokio::select! {
            served = axum::serve(listener, router).into_future() => {
                if let Err(e) = served {
                    tracing::error!(error = %e, "the REST API stopped serving");
                }
            }
            _ = stopped => {}
        }
    });
    runtime.shutdown_timeout(Duration::from_millis(100));
}

impl Drop for RestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
