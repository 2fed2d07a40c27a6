//! A small tokio runtime owned by a connector (PostgreSQL, HTTP), which is shut down
//! in the background when dropped, so dropping it inside another runtime is safe.

use tokio::runtime::{Builder, Handle, Runtime};

/// A connector's own runtime.
pub(crate) struct OwnedRuntime {
    runtime: Option<Runtime>,
}

impl OwnedRuntime {
    /// A multi-thread runtime of `threads` workers named `name`.
    pub(crate) fn new(name: &str, threads: usize) -> std::io::Result<Self> {
        let runtime = Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name(name)
            .enable_all()
            .build()?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    pub(crate) fn handle(&self) -> &Handle {
        self.runtime
            .as_ref()
            .expect("present until dropped")
            .handle()
    }
}

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
