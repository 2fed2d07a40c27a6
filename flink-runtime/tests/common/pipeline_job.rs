//! An endless five-stage pipeline job (every tenth record rejected by validation),
//! serving its REST API: what the pipeline endpoint and panel are tested on.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use flink_core::async_io::AsyncFailure;
use flink_core::pipeline::FiveStagePipeline;
use flink_core::sources::SequenceSource;
use flink_runtime::prelude::*;
use futures::future::BoxFuture;

use super::paced::PacedSink;

/// Acknowledges every record at once.
#[derive(Clone)]
struct Acknowledge;

impl AckDestination<u64> for Acknowledge {
    fn send(&self, _: u64) -> BoxFuture<'static, Result<(), DeliveryError>> {
        Box::pin(async { Ok(()) })
    }
}

/// The job named `name`, admitting 20,000 records per second, parallelism 1; returns
/// it and the count of records that ended (delivered, dead-lettered or undelivered).
pub fn pipeline_job(name: &str, web_ui: WebUiConfig) -> (JobClient, Arc<AtomicU64>) {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1);
    env.enable_web_ui_with(web_ui);
    let pipeline = FiveStagePipeline::<u64, u64>::builder()
        .configure(|c| c.gateway.max_requests_per_second = 20_000.0)
        .key(|x| format!("k{}", x % 7))
        .validate(|x| {
            if x % 10 == 0 {
                Err(format!("{x} rejected"))
            } else {
                Ok(())
            }
        })
        .call(|x: u64| async move { Ok::<u64, AsyncFailure>(x + 1) })
        .destination(Acknowledge)
        .build()
        .unwrap();
    let out = env
        .from_source(SequenceSource::unbounded(), "Orders")
        .apply_pipeline(&pipeline);
    let ends = Arc::new(AtomicU64::new(0));
    let counted = || PacedSink {
        pause: Duration::ZERO,
        written: ends.clone(),
    };
    out.delivered.map(|_| 1u64).sink_to(counted());
    out.dead_letters.map(|_| 1u64).sink_to(counted());
    out.undelivered.map(|_| 1u64).sink_to(counted());
    (env.execute_async(name).unwrap(), ends)
}
