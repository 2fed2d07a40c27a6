//! A job whose sink is slow on purpose, so its source is back-pressured: what the REST
//! API, the web UI and Prometheus are tested on.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use flink_core::operator::RuntimeContext;
use flink_runtime::prelude::*;

/// A sink that takes `pause` per record, so its producers are back-pressured.
pub struct PacedSink {
    pub pause: Duration,
    pub written: Arc<AtomicU64>,
}

struct PacedWriter {
    pause: Duration,
    written: Arc<AtomicU64>,
    /// The sink's own metric, as connectors keep theirs (retries, in flight, ...).
    paced_writes: Arc<AtomicU64>,
}

impl Sink<u64> for PacedSink {
    fn create_writer(&self, ctx: &RuntimeContext) -> Box<dyn SinkWriter<u64>> {
        Box::new(PacedWriter {
            pause: self.pause,
            written: self.written.clone(),
            paced_writes: ctx.metrics.custom("paced_writes"),
        })
    }
}

impl SinkWriter<u64> for PacedWriter {
    fn write(&mut self, _: u64) -> Result<(), SinkError> {
        std::thread::sleep(self.pause);
        self.written.fetch_add(1, Ordering::SeqCst);
        self.paced_writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// A job named `name` of `records` numbers (endless with `None`) from a source task
/// to a sink task taking 1 ms per record (a rebalance keeps them apart), with small
/// buffers so back pressure comes soon, serving its REST API as `web_ui` says.
/// Returns the client and the count of records written.
pub fn paced_job(
    name: &str,
    records: Option<u64>,
    web_ui: WebUiConfig,
) -> (JobClient, Arc<AtomicU64>) {
    let env = StreamExecutionEnvironment::new();
    env.set_buffer_size(64);
    env.enable_web_ui_with(web_ui);
    let written = Arc::new(AtomicU64::new(0));
    env.from_sequence(1, records.unwrap_or(u64::MAX))
        .rebalance()
        .sink_to(PacedSink {
            pause: Duration::from_millis(1),
            written: written.clone(),
        })
        .name("Paced Sink");
    (env.execute_async(name).unwrap(), written)
}
