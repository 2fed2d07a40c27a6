//! Shared helpers of the connector integration tests: where the test services are,
//! and what to do when one is missing.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The Kafka-protocol broker the main suite runs against (noida-db).
pub const KAFKA: &str = "FLINK_RS_KAFKA_BOOTSTRAP";
/// The second Kafka-protocol broker, for the smoke subset (tansu).
pub const TANSU: &str = "FLINK_RS_TANSU_BOOTSTRAP";
/// PostgreSQL.
pub const POSTGRES: &str = "FLINK_RS_POSTGRES_URL";
/// An S3-compatible object store (moto): the `s3://` URL of a bucket; the AWS_*
/// variables of the same state file tell object_store where it is.
pub const S3: &str = "FLINK_RS_S3_URL";

/// The value of the service variable `var`, or `None` after printing a loud skip line
/// naming `test` and the service. Under `FLINK_RS_REQUIRE_SERVICES=1` (set by
/// `scripts/test.sh`) a missing service panics instead: a failure, never a skip.
pub fn service(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            let what = match var {
                KAFKA => "Kafka broker (noida-db)",
                TANSU => "Kafka broker (tansu)",
                POSTGRES => "PostgreSQL",
                S3 => "S3-compatible object store (moto)",
                _ => "service",
            };
            let required = std::env::var("FLINK_RS_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
            if required {
                panic!(
                    "{test}: {var} is not set but FLINK_RS_REQUIRE_SERVICES=1: the {what} is missing"
                );
            }
            // Written to stderr directly, not through `eprintln!`, which the test harness
            // captures and hides for passing tests: a skip must be seen.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr().lock(),
                "!!!!! SKIPPED {test}: {var} is not set, so no {what} to test against. \
                 Run `scripts/services.sh start{}` and source the state file it prints. !!!!!",
                if var == TANSU { " --tansu" } else { "" }
            );
            None
        }
    }
}

/// The name of the enclosing test function.
macro_rules! test_name {
    () => {{
        fn here() {}
        let path = std::any::type_name_of_val(&here).trim_end_matches("::here");
        path.rsplit("::").next().unwrap_or(path)
    }};
}

/// The value of each service variable given, or returns from the calling test after
/// [`service`]'s loud skip line (one per missing service), naming the test.
macro_rules! require_service {
    ($var:expr) => {
        match $crate::common::service($var, test_name!()) {
            Some(value) => value,
            None => return,
        }
    };
    ($a:expr, $b:expr) => {
        match (
            $crate::common::service($a, test_name!()),
            $crate::common::service($b, test_name!()),
        ) {
            (Some(a), Some(b)) => (a, b),
            _ => return,
        }
    };
}

/// A name unique to this process and call, for topics, tables and directories.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}_{}_{nanos}_{n}", std::process::id())
}

pub mod async_sink;
pub mod cancel;
pub mod http;
pub mod kafka;
pub mod orders;
pub mod pg;
pub mod rescale;

/// A sink appending every record to a shared vector at once (readable while the job
/// runs and after it was cancelled, unlike `collect_vec`).
pub struct SharedVecSink<T>(pub std::sync::Arc<std::sync::Mutex<Vec<T>>>);

impl<T: Send + 'static> flink_core::sink::Sink<T> for SharedVecSink<T> {
    fn create_writer(
        &self,
        _: &flink_core::operator::RuntimeContext,
    ) -> Box<dyn flink_core::sink::SinkWriter<T>> {
        Box::new(SharedVecSink(self.0.clone()))
    }
}

impl<T: Send> flink_core::sink::SinkWriter<T> for SharedVecSink<T> {
    fn write(&mut self, record: T) -> Result<(), flink_core::sink::SinkError> {
        self.0.lock().unwrap().push(record);
        Ok(())
    }
}

/// A runtime context for driving a sink writer by hand (subtask `subtask` of 1),
/// as a task would: for tests of what a writer does across a restore.
pub fn sink_context(subtask: usize) -> flink_core::operator::RuntimeContext {
    flink_core::operator::RuntimeContext::standalone(
        "Sink",
        subtask,
        subtask + 1,
        std::sync::Arc::new(flink_core::clock::ManualClock::new()),
    )
}

/// Waits (up to a guard of 60 s, against a hang only) until `done`.
pub fn wait_until(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what} never happened"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}
