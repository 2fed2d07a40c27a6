//! Where async operators' futures run: a small tokio runtime per job, started only
//! when an operator first spawns (so reqwest, tokio-postgres and other tokio-based
//! clients work inside async functions).

use std::sync::OnceLock;

use flink_core::services::Spawner;
use futures::future::BoxFuture;

/// Spawns futures on a lazily started multi-threaded tokio runtime.
pub struct TokioSpawner {
    runtime: OnceLock<tokio::runtime::Runtime>,
    worker_threads: usize,
}

impl TokioSpawner {
    /// A spawner whose runtime will have `worker_threads` workers.
    pub fn new(worker_threads: usize) -> Self {
        Self {
            runtime: OnceLock::new(),
            worker_threads: worker_threads.max(1),
        }
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(self.worker_threads)
                .thread_name("flink-async-io")
                .enable_all()
                .build()
                .expect("start the async I/O runtime")
        })
    }
}

impl Spawner for TokioSpawner {
    fn spawn(&self, future: BoxFuture<'static, ()>) {
        self.runtime().spawn(future);
    }

    fn in_context(&self, f: &mut dyn FnMut()) {
        let _context = self.runtime().enter();
        f()
    }
}

impl Drop for TokioSpawner {
    fn drop(&mut self) {
        // Dropping a runtime waits for its workers; never block the caller on calls
        // that a cancelled job left behind.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
