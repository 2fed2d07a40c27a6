//! The two variants `compare` runs: the five-stage pipeline, and the same business
//! logic as an ordinary operator chain, with the same resources: the same service and
//! destination, timeouts, retries, 100 calls and 100 acknowledgments in flight, and
//! the same admission rate (the gateway's rate limit, a rate-limited source). The user
//! code of each lies between markers, so `compare` can count its lines.

use std::time::Duration;

use flink_core::async_io::{AsyncOptions, RetryStrategy};
use flink_core::async_sink::{AsyncSink, AsyncSinkOptions};
use flink_core::dead_letter::{DeadLetter, dead_letter_tag};
use flink_core::pipeline::{FiveStagePipeline, PipelineConfig, PipelineStreams};
use flink_core::sources::{GeneratorSource, InvalidRate, RateLimiterStrategy};
use flink_runtime::prelude::*;

use crate::workload::{
    CountingSink, Customers, DeadLetterLog, Order, OrderStore, Origin, PricedOrder, PricingService,
    ServiceProfile, normalize, order, validate,
};

/// One workload condition.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// Short name.
    pub name: &'static str,
    /// What it shows.
    pub title: &'static str,
    /// The simulated service.
    pub service: ServiceProfile,
    /// The simulated destination's ack latency.
    pub ack_latency: Duration,
    /// Records admitted per second at most (the gateway's rate, the source's limit).
    pub rate: f64,
    /// Records, as a share of the run's base count.
    pub records_share: f64,
    /// How orders spread over customers.
    pub customers: Customers,
    /// Parallelism of both variants.
    pub parallelism: usize,
}

impl Scenario {
    /// Records this scenario runs, from the base count (at least one).
    pub fn records(&self, base: u64) -> u64 {
        ((base as f64 * self.records_share) as u64).max(1)
    }
}

/// Names of every scenario, in run order.
pub const SCENARIOS: [&str; 6] = [
    "healthy",
    "slow-sink",
    "flaky",
    "burst",
    "outage",
    "hot-key",
];

/// healthy, slow-sink, flaky, burst, outage, hot-key.
pub fn scenarios() -> Vec<Scenario> {
    let service = ServiceProfile {
        seed: 42,
        base_latency: Duration::from_micros(500),
        error_rate: 0.0,
        timeout_rate: 0.0,
        outage: None,
    };
    let healthy = Scenario {
        name: "healthy",
        title: "healthy: 0.5-1.5 ms service, 0.1 ms acks, 100,000 records/s admitted at most",
        service,
        ack_latency: Duration::from_micros(100),
        rate: 100_000.0,
        // Five times the base, so that the run lasts about a second.
        records_share: 5.0,
        customers: Customers::Spread,
        parallelism: 1,
    };
    vec![
        healthy,
        Scenario {
            name: "slow-sink",
            title: "slow sink: acks take 5 ms (100 in flight bound the rate to 20,000/s)",
            ack_latency: Duration::from_millis(5),
            records_share: 1.0,
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
            records_share: 1.0,
            ..healthy
        },
        Scenario {
            name: "burst",
            title: "burst: the source offers records far above the 5,000/s admitted",
            rate: 5_000.0,
            records_share: 0.25,
            ..healthy
        },
        Scenario {
            name: "outage",
            title: "outage: the service answers nothing from 1 s to 3 s, then recovers (10,000/s admitted)",
            service: ServiceProfile {
                outage: Some((Duration::from_secs(1), Duration::from_secs(2))),
                ..service
            },
            rate: 10_000.0,
            records_share: 2.0,
            ..healthy
        },
        Scenario {
            name: "hot-key",
            title: "hot key: 80 % of orders from one customer, parallelism 2, 5-15 ms service",
            service: ServiceProfile {
                base_latency: Duration::from_millis(5),
                ..service
            },
            customers: Customers::HotKey,
            parallelism: 2,
            records_share: 1.0,
            ..healthy
        },
    ]
}

/// Per-attempt timeout of the pricing call in both variants.
pub const OPERATION_TIMEOUT: Duration = Duration::from_millis(50);
/// Attempts of a pricing call in both variants.
pub const CALL_ATTEMPTS: u32 = 3;
/// Calls, and acknowledgments, in flight per parallel instance in both variants.
pub const CONCURRENCY: usize = 100;
/// How long both variants wait for one acknowledgment.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(1);
/// Attempts of a send in both variants.
pub const ACK_ATTEMPTS: u32 = 3;

/// The backoff of the pricing call in both variants.
pub fn call_backoff() -> RetryStrategy {
    RetryStrategy::ExponentialBackoff {
        initial: Duration::from_millis(10),
        multiplier: 2.0,
        max_delay: Duration::from_millis(500),
        max_attempts: CALL_ATTEMPTS,
        jitter: 0.2,
    }
}

/// What one variant's run needs besides the job: where its results and dead letters
/// are counted.
#[derive(Clone)]
pub struct Ends {
    /// The destination (acknowledges and counts).
    pub store: OrderStore,
    /// Every dead letter of the variant.
    pub dead_letters: DeadLetterLog,
    /// The five-stage pipeline's receipts (one per acknowledged record).
    pub receipts: CountingSink,
}

// five-stage: begin
/// The five-stage variant over `records` generated orders.
pub fn five_stage(
    env: &StreamExecutionEnvironment,
    s: &Scenario,
    records: u64,
    service: PricingService,
    ends: &Ends,
) -> Result<PipelineStreams<Order, PricedOrder>, flink_core::pipeline::PipelineConfigError> {
    let mut config = PipelineConfig::default();
    config.gateway.max_requests_per_second = s.rate;
    config.egress.operation_timeout = OPERATION_TIMEOUT;
    config.egress.max_retries = CALL_ATTEMPTS - 1;
    config.egress.max_concurrent_operations = CONCURRENCY;
    config.final_sink.max_pending_acknowledgments = CONCURRENCY;
    config.final_sink.acknowledgment_timeout = ACK_TIMEOUT;
    config.final_sink.acknowledgment_retries = ACK_ATTEMPTS - 1;
    // Pricing is stateless, so a hot customer may leave its partition.
    config.key_gen.load_awareness = s.customers == Customers::HotKey;
    config.key_gen.allow_hot_key_spreading = s.customers == Customers::HotKey;
    let pipeline = FiveStagePipeline::<Order, PricedOrder>::builder()
        .config(config)
        .key(|o| o.customer.clone())
        .validate(validate)
        .preprocess(|o| Ok(normalize(o)))
        .call(move |o| service.price(o))
        .destination(ends.store.clone())
        .build()?;
    let (origin, customers) = (Origin::new(), s.customers);
    let out = env
        .from_generator(Some(records), move |i| order(i, &origin, customers))
        .apply_pipeline(&pipeline);
    out.delivered.sink_to(ends.receipts.clone());
    out.dead_letters.sink_to(ends.dead_letters.clone());
    out.undelivered.sink_to(ends.dead_letters.clone());
    Ok(out)
}
// five-stage: end

// chain: begin
/// The operator-chain variant over `records` generated orders.
pub fn operator_chain(
    env: &StreamExecutionEnvironment,
    s: &Scenario,
    records: u64,
    service: PricingService,
    ends: &Ends,
) -> Result<(), InvalidRate> {
    let (origin, customers) = (Origin::new(), s.customers);
    let orders = GeneratorSource::bounded(0..records, move |i| order(i, &origin, customers))
        .rate_limited(RateLimiterStrategy::per_second(s.rate)?);
    let valid = env
        .from_source(orders, "Generator Source")
        .key_by(|o| o.customer.clone())
        .process_with_context(|_, o, _: &mut ValueState<()>, ctx| match validate(&o) {
            Ok(()) => ctx.collect(normalize(&o)),
            Err(why) => ctx.output(&dead_letter_tag(), DeadLetter::new(o, "Validate", why)),
        })
        .name("Validate");
    let priced = valid.async_function(
        move |o| service.price(o),
        AsyncOptions::new()
            .timeout(OPERATION_TIMEOUT)
            .capacity(CONCURRENCY)
            .retry(call_backoff())
            .dead_letters(),
    );
    let stored = priced.sink_to_async(
        AsyncSink::per_record(ends.store.clone()).options(
            AsyncSinkOptions::new()
                .max_batch_size(1)
                .max_in_flight_requests(CONCURRENCY)
                .max_buffered_records(CONCURRENCY)
                .request_timeout(ACK_TIMEOUT)
                .retry(RetryStrategy::FixedDelay {
                    delay: Duration::from_millis(100),
                    max_attempts: ACK_ATTEMPTS,
                })
                .dead_letters(),
        ),
    );
    valid
        .dead_letters::<Order>()
        .sink_to(ends.dead_letters.clone());
    priced
        .dead_letters::<Order>()
        .sink_to(ends.dead_letters.clone());
    stored
        .dead_letters::<PricedOrder>()
        .sink_to(ends.dead_letters.clone());
    Ok(())
}
// chain: end

/// What each variant is configured with, for the table: the knobs both share, and
/// those only one has.
pub fn knobs(s: &Scenario) -> [(&'static str, String); 3] {
    let rate = format!("{:.0}/s", s.rate);
    [
        (
            "both",
            format!(
                "admission {rate}; pricing: {} ms timeout, {CALL_ATTEMPTS} attempts (backoff 10 ms x2, jitter 0.2), {CONCURRENCY} in flight, unordered; \
                 store: {CONCURRENCY} acks in flight, {} s ack timeout, {ACK_ATTEMPTS} attempts 100 ms apart; parallelism {}",
                OPERATION_TIMEOUT.as_millis(),
                ACK_TIMEOUT.as_secs(),
                s.parallelism
            ),
        ),
        (
            "five-stage only",
            format!(
                "gateway: at most 1,000 records inside, rate cut to 1/2, 1/4, 0 at pressure 0.6/0.8/0.9, 1,000-record queue; ingress buffer 100 / 10 ms; 16 key partitions{}",
                if s.customers == Customers::HotKey {
                    ", hot-key spreading on"
                } else {
                    ""
                }
            ),
        ),
        (
            "operator chain only",
            "rate limit at the source (RateLimiterStrategy); the async sink buffers up to 100 records".into(),
        ),
    ]
}
