//! Helpers shared by the integration tests.

/// Whether `cond` becomes true within a bounded number of checks (yielding between
/// them). Bounded by count, never by time, so a broken job fails a test rather than
/// hanging it, and nothing asserts how fast the machine is.
pub fn eventually(cond: impl Fn() -> bool) -> bool {
    (0..20_000_000u64).any(|_| {
        cond() || {
            std::thread::yield_now();
            false
        }
    })
}

/// Waits until `cond` holds; fails the test naming `what` if it never does.
pub fn until(what: &str, cond: impl Fn() -> bool) {
    assert!(eventually(cond), "gave up waiting for: {what}");
}
