//! A test-only hook that stops the exactly-once sink at the worst moment for a
//! process death: after a checkpoint completed, before its transaction is committed.
//!
//! With `FLINK_RS_TEST_KAFKA_HALT_BEFORE_COMMIT=<n>:<path>` in the environment, the
//! `n`-th commit of a transaction by this process (over all writers) creates the
//! file `path` holding the transaction's id and blocks its thread forever instead of committing, so a test can
//! `kill -9` the process at that point deterministically (no timing decides it).
//! Without the variable nothing happens.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The environment variable.
const VARIABLE: &str = "FLINK_RS_TEST_KAFKA_HALT_BEFORE_COMMIT";

/// Parsed once: the commit to halt at and the marker file.
fn hook() -> Option<&'static (usize, PathBuf)> {
    static HOOK: OnceLock<Option<(usize, PathBuf)>> = OnceLock::new();
    HOOK.get_or_init(|| {
        let value = std::env::var(VARIABLE).ok()?;
        let (n, path) = value.split_once(':')?;
        Some((n.parse().ok()?, PathBuf::from(path)))
    })
    .as_ref()
}

/// Called before each commit of a transaction this process opened.
pub(super) fn before_commit(transactional_id: &str) {
    static COMMITS: AtomicUsize = AtomicUsize::new(0);
    let Some((n, path)) = hook() else {
        return;
    };
    if COMMITS.fetch_add(1, Ordering::AcqRel) + 1 != *n {
        return;
    }
    tracing::warn!(
        transactional_id,
        "kafka sink: test hook: halting before the commit"
    );
    // Written aside and renamed, so the marker appears with its content.
    let aside = path.with_extension("writing");
    let written =
        std::fs::write(&aside, transactional_id).and_then(|()| std::fs::rename(&aside, path));
    if let Err(e) = written {
        tracing::error!(error = %e, "kafka sink: test hook: cannot write the marker");
    }
    loop {
        std::thread::park();
    }
}
