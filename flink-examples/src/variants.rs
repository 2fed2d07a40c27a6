//! The two variants `compare` runs: the five-stage pipeline, and the same business
//! logic as an ordinary operator chain. The user code of each lies between markers, so
//! `compare` can count its lines.

use std::time::Duration;

use flink_core::async_io::{AsyncOptions, RetryStrategy};
use flink_core::pipeline::{FiveStagePipeline, PipelineConfig, PipelineStreams};
use flink_core::sink::{Sink, SinkError, SinkWriter};
use flink_runtime::prelude::*;

use crate::workload::{
    Order, OrderStore, Origin, PricedOrder, PricingService, ServiceProfile, normalize, order,
    validate,
};

/// One workload condition.
#[derive(Clone, Copy)]
pub struct Scenario {
    /// Short name.
    pub name: &'static str,
    /// What it shows.
    pub title: &'static str,
    /// The simulated service.
    pub service: ServiceProfile,
    /// The simulated destination's ack latency.
    pub ack_latency: Duration,
    /// The gateway's rate limit.
    pub gateway_rate: f64,
}

/// healthy, slow-sink, flaky, burst.
pub fn scenarios() -> Vec<Scenario> {
    let service = ServiceProfile {
        seed: 42,
        base_latency: Duration::from_micros(500),
        error_rate: 0.0,
        timeout_rate: 0.0,
    };
    let healthy = Scenario {
        name: "healthy",
        title: "healthy: 0.5-1.5 ms service, 0.1 ms acks",
        service,
        ack_latency: Duration::from_micros(100),
        gateway_rate: 100_000.0,
    };
    vec![
        healthy,
        Scenario {
            name: "slow-sink",
            title: "slow sink: acks take 5 ms",
            ack_latency: Duration::from_millis(5),
            ..healthy
        },
        Scenario {
            name: "flaky",
            title: "flaky service: 5 % errors (retried), 2 % never answer (time out)",
            service: ServiceProfile {
                error_rate: 0.05,
                timeout_rate: 0.02,
                ..service
            },
            ..healthy
        },
        Scenario {
            name: "burst",
            title: "burst: the source offers records far above the gateway's 5,000/s",
            gateway_rate: 5_000.0,
            ..healthy
        },
    ]
}

/// Per-attempt timeout of the pricing call in both variants.
pub const OPERATION_TIMEOUT: Duration = Duration::from_millis(50);
/// Calls and acks in flight in both variants.
pub const CONCURRENCY: usize = 100;

// five-stage: begin
/// The five-stage variant over `records` generated orders.
pub fn five_stage(
    env: &StreamExecutionEnvironment,
    s: &Scenario,
    records: u64,
    service: PricingService,
    store: OrderStore,
) -> Result<PipelineStreams<Order, PricedOrder>, flink_core::pipeline::PipelineConfigError> {
    let mut config = PipelineConfig::default();
    config.gateway.max_requests_per_second = s.gateway_rate;
    config.egress.operation_timeout = OPERATION_TIMEOUT;
    config.egress.max_retries = 2;
    config.egress.max_concurrent_operations = CONCURRENCY;
    config.final_sink.max_pending_acknowledgments = CONCURRENCY;
    let pipeline = FiveStagePipeline::<Order, PricedOrder>::builder()
        .config(config)
        .key(|o| o.customer.clone())
        .validate(validate)
        .preprocess(|o| Ok(normalize(o)))
        .call(move |o: Order| service.price(o))
        .destination(store)
        .build()?;
    let origin = Origin::new();
    Ok(env
        .from_generator(Some(records), move |i| order(i, &origin))
        .apply_pipeline(&pipeline))
}
// five-stage: end

/// The operator chain's sink: writes each priced order to the store and waits for
/// its acknowledgment, as a plain `SinkWriter` does.
#[derive(Clone)]
pub struct StoreSink(pub OrderStore);

impl Sink<PricedOrder> for StoreSink {
    fn create_writer(
        &self,
        _: &flink_core::operator::RuntimeContext,
    ) -> Box<dyn SinkWriter<PricedOrder>> {
        Box::new(self.clone())
    }
}

impl SinkWriter<PricedOrder> for StoreSink {
    fn write(&mut self, record: PricedOrder) -> Result<(), SinkError> {
        use flink_core::destination::AckDestination;
        futures::executor::block_on(self.0.send(record))?;
        Ok(())
    }
}

// chain: begin
/// The operator-chain variant over `records` generated orders.
pub fn operator_chain(
    env: &StreamExecutionEnvironment,
    records: u64,
    service: PricingService,
    store: OrderStore,
) {
    let origin = Origin::new();
    let priced = env
        .from_generator(Some(records), move |i| order(i, &origin))
        .filter(|o: &Order| validate(o).is_ok())
        .key_by(|o: &Order| o.customer.clone())
        .map(|o: Order| normalize(&o))
        .async_function(
            move |o: Order| service.price(o),
            AsyncOptions::new()
                .timeout(OPERATION_TIMEOUT)
                .capacity(CONCURRENCY)
                .retry(RetryStrategy::ExponentialBackoff {
                    initial: Duration::from_millis(10),
                    multiplier: 2.0,
                    max_delay: Duration::from_millis(500),
                    max_attempts: 3,
                    jitter: 0.2,
                })
                .dead_letters(),
        );
    priced.dead_letters::<Order>().collect_vec();
    priced.sink_to(StoreSink(store));
}
// chain: end
