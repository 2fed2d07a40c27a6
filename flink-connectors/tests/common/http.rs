//! Local servers for the HTTP tests, and the record they send. Each server listens on
//! a free port of 127.0.0.1 and runs on a thread of its own, with its own runtime, so
//! the job under test shares nothing with it.

use std::future::Future;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

/// The record the HTTP tests send, as JSON `{"id": ..}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: u64,
}

/// Binds a free port and runs `serve` with its listener on a thread of its own;
/// returns the address once it listens.
pub fn listen<F, Fut>(serve: F) -> SocketAddr
where
    F: FnOnce(TcpListener) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            serve(listener).await;
        });
    });
    rx.recv().unwrap()
}

/// Serves `app` (axum) on a free port on a thread of its own; returns its address.
pub fn serve(app: axum::Router) -> SocketAddr {
    listen(|listener| async move { axum::serve(listener, app).await.unwrap() })
}
