//! The five-stage pipeline: exact accounting, rate control on a virtual clock, health
//! under a stalled destination, key affinity, typed config errors.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flink_core::async_io::AsyncFailure;
use flink_core::clock::{Clock, ManualClock};
use flink_core::pipeline::{
    FiveStagePipeline, Health, PipelineBackPressureController, PipelineConfig, Stage,
};
use flink_runtime::pipeline_monitor::{PipelineReport, stage_counts};
use flink_runtime::precise_timer::precise_sleep;
use flink_runtime::prelude::*;

mod common;
use common::{eventually, until};
use futures::future::BoxFuture;

/// Acknowledges every record, keeping them; can be stalled and released.
#[derive(Clone, Default)]
struct Destination {
    received: Arc<Mutex<Vec<u64>>>,
    stalled: Arc<AtomicBool>,
}

impl AckDestination<u64> for Destination {
    fn send(&self, record: u64) -> BoxFuture<'static, Result<(), DeliveryError>> {
        let (received, stalled) = (self.received.clone(), self.stalled.clone());
        Box::pin(async move {
            while stalled.load(Ordering::SeqCst) {
                precise_sleep(Duration::from_micros(200)).await;
            }
            received.lock().unwrap().push(record);
            Ok(())
        })
    }
}

/// Whether the gateway is parked on its short re-check sleep (calls in flight wait
/// on 1 s timeouts instead).
fn gateway_waiting(clock: &ManualClock) -> bool {
    clock
        .next_deadline()
        .is_some_and(|d| d <= clock.now() + Duration::from_millis(1))
}

fn fast_config() -> PipelineConfig {
    let mut c = PipelineConfig::default();
    c.gateway.max_requests_per_second = 1e9;
    c.egress.operation_timeout = Duration::from_millis(20);
    c.egress.max_retries = 2;
    c.egress.base_retry_delay = Duration::from_millis(1);
    c.egress.max_retry_delay = Duration::from_millis(2);
    c
}

#[test]
fn every_record_ends_delivered_or_dead_lettered_exactly() {
    for p in [1, 2] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        let destination = Destination::default();
        let attempts: Arc<Mutex<BTreeMap<u64, u32>>> = Arc::default();
        let a = attempts.clone();
        let pipeline = FiveStagePipeline::<u64, u64>::builder()
            .config(fast_config())
            .key(|x| format!("user-{}", x % 37))
            .validate(|x| {
                if x % 50 == 0 {
                    Err(format!("{x} is a multiple of 50"))
                } else {
                    Ok(())
                }
            })
            .preprocess(|x| {
                if x % 77 == 0 {
                    Err("cannot preprocess".into())
                } else {
                    Ok(*x)
                }
            })
            .call(move |x: u64| {
                let attempt = {
                    let mut seen = a.lock().unwrap();
                    let n = seen.entry(x).or_insert(0);
                    *n += 1;
                    *n
                };
                async move {
                    match x % 100 {
                        // 2 % never answer: they time out on every attempt.
                        1 | 2 => {
                            precise_sleep(Duration::from_secs(3600)).await;
                            Ok(x)
                        }
                        // 5 % fail their first attempt, then succeed on the retry.
                        3..=7 if attempt == 1 => Err(AsyncFailure::Retryable("flaky".into())),
                        // 1 % fail for good.
                        8 => Err(AsyncFailure::Permanent("rejected".into())),
                        _ => Ok(x * 10),
                    }
                }
            })
            .destination(destination.clone())
            .build()
            .unwrap();
        let out = env.from_sequence(1, 3_000).apply_pipeline(&pipeline);
        let delivered = out.delivered.collect_vec();
        let dead = out.dead_letters.collect_vec();
        let undelivered = out.undelivered.collect_vec();
        let result = env.execute("five stages").unwrap();
        let report = PipelineReport::new(&result.operators);
        assert!(report.accounted(), "{report}");
        let (delivered, dead) = (delivered.take(), dead.take());
        assert_eq!(report.received(), 3_000);
        assert_eq!(delivered.len() as u64, report.delivered());
        assert_eq!(dead.len() as u64, report.dead_lettered());
        assert!(undelivered.is_empty());
        assert_eq!(delivered.len() + dead.len(), 3_000, "parallelism {p}");
        assert_eq!(destination.received.lock().unwrap().len(), delivered.len());
        // Exactly these are dead: multiples of 50, of 77, and x % 100 in {1, 2, 8}.
        let expected_dead: BTreeSet<u64> = (1..=3_000u64)
            .filter(|x| x % 50 == 0 || x % 77 == 0 || [1, 2, 8].contains(&(x % 100)))
            .collect();
        let dead_records: BTreeSet<u64> = dead.iter().map(|d| d.record.payload).collect();
        assert_eq!(dead_records, expected_dead);
        let timeouts = dead
            .iter()
            .filter(|d| d.last_error.as_deref() == Some("timed out after 20ms"));
        assert!(
            timeouts
                .clone()
                .all(|d| d.attempts == 3 && d.operator == "AsyncEgressProcessing")
        );
        let never_answered = (1..=3_000u64)
            .filter(|x| [1, 2].contains(&(x % 100)) && x % 50 != 0 && x % 77 != 0)
            .count();
        assert_eq!(timeouts.count(), never_answered);
        assert!(dead.iter().any(|d| {
            d.reason
                .starts_with("validation failed: 50 is a multiple of 50")
        }));
    }
}

#[test]
fn the_gateway_rate_holds_against_a_virtual_clock() {
    let clock = ManualClock::new();
    let env = StreamExecutionEnvironment::new();
    env.set_clock(Arc::new(clock.clone()));
    let mut config = PipelineConfig::default();
    config.gateway.max_requests_per_second = 100.0; // burst: 10 records
    // Hand records on at once, so the ingress buffer adds no pressure.
    config.ingress.buffer_timeout = Duration::ZERO;
    let pipeline = FiveStagePipeline::<u64, u64>::builder()
        .config(config)
        .key(|x| x.to_string())
        .call(|x: u64| async move { Ok::<u64, String>(x) })
        .destination(Destination::default())
        .build()
        .unwrap();
    let out = env.from_sequence(1, 200).apply_pipeline(&pipeline);
    out.delivered.collect_vec();
    let client = env.execute_async("rate").unwrap();
    let admitted = || {
        client
            .operator_metrics()
            .iter()
            .find(|o| o.name == "Gateway")
            .and_then(|o| o.custom("admitted"))
            .unwrap_or(0)
    };
    // The bucket starts full (10 tokens) and refills 100/s: at most 10 more per
    // 100 ms. At every step the admissions never exceed that bound; they may fall
    // short of it when the gateway sees downstream pressure (it then slows down).
    let mut step = 0u64;
    while admitted() < 200 {
        let bound = 10 + 10 * step;
        // Let the gateway use what it may, then check it took no more.
        eventually(|| admitted() >= bound.min(200) || gateway_waiting(&clock));
        assert!(
            admitted() <= bound,
            "t = {} ms: admitted {} > bound {bound}",
            step * 100,
            admitted()
        );
        until("the gateway to wait on the clock", || {
            admitted() >= 200 || gateway_waiting(&clock)
        });
        assert!(
            admitted() <= bound,
            "t = {} ms: admitted {} > bound {bound}",
            step * 100,
            admitted()
        );
        clock.advance(Duration::from_millis(100));
        step += 1;
        assert!(
            step <= 40,
            "200 records need 1.9 s of virtual time at 100/s; still {} after 4 s",
            admitted()
        );
    }
    let result = client.wait().unwrap();
    let report = PipelineReport::new(&result.operators);
    assert!(report.accounted());
    assert_eq!(report.delivered(), 200);
}

#[test]
fn health_goes_critical_under_a_stalled_sink_and_healthy_after_recovery() {
    let env = StreamExecutionEnvironment::new();
    let destination = Destination::default();
    destination.stalled.store(true, Ordering::SeqCst);
    let mut config = fast_config();
    config.gateway.max_concurrent = 500;
    config.final_sink.max_pending_acknowledgments = 50;
    config.final_sink.acknowledgment_timeout = Duration::from_secs(3600);
    let pipeline = FiveStagePipeline::<u64, u64>::builder()
        .config(config.clone())
        .key(|x| x.to_string())
        .call(|x: u64| async move { Ok::<u64, String>(x) })
        .destination(destination.clone())
        .build()
        .unwrap();
    let out = env.from_sequence(1, 5_000).apply_pipeline(&pipeline);
    out.delivered.collect_vec();
    let controller = PipelineBackPressureController::new(out.state.clone(), &config);
    let client = env.execute_async("stalled").unwrap();
    let status = || controller.status(stage_counts(&client.operator_metrics()));

    until("the sink's pending acks to fill", || {
        out.state.occupancy(Stage::FinalSink) >= 1.0
    });
    // A full set of acks in flight is not pressure by itself; waiting for a free
    // slot is: the stalled sink waits for good, so its health goes critical.
    until("the stalled sink to read as critical", || {
        status().stages[4].health == Health::Critical
    });
    let stalled = status();
    assert_eq!(stalled.health, Health::Critical, "{}", stalled.table());
    assert!(stalled.stages[4].waiting > 0.8, "{}", stalled.table());
    // The gateway holds the concurrency limit while the sink is stalled.
    until("the gateway to reach its limit", || {
        out.state.in_pipeline() >= 500
    });
    assert_eq!(out.state.in_pipeline(), 500);

    destination.stalled.store(false, Ordering::SeqCst);
    let result = client.wait().unwrap();
    let recovered = controller.status(stage_counts(&result.operators));
    assert_eq!(recovered.health, Health::Healthy, "{}", recovered.table());
    assert!(PipelineReport::new(&result.operators).accounted());
    assert_eq!(destination.received.lock().unwrap().len(), 5_000);
}

fn partitions_by_key(allow_spreading: bool) -> (BTreeMap<String, BTreeSet<u32>>, u64) {
    let env = StreamExecutionEnvironment::new();
    let mut config = fast_config();
    config.key_gen.load_awareness = true;
    config.key_gen.imbalance_threshold = 2.0;
    config.key_gen.allow_hot_key_spreading = allow_spreading;
    let pipeline = FiveStagePipeline::<u64, u64>::builder()
        .config(config)
        // 80 % of the records share the key "hot".
        .key(|x| {
            if x % 5 != 0 {
                "hot".into()
            } else {
                format!("k{}", x % 40)
            }
        })
        .call(|x: u64| async move { Ok::<u64, String>(x) })
        .destination(Destination::default())
        .build()
        .unwrap();
    let out = env.from_sequence(1, 20_000).apply_pipeline(&pipeline);
    let delivered = out.delivered.collect_vec();
    let result = env.execute("affinity").unwrap();
    let mut by_key: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    for e in delivered.take() {
        by_key.entry(e.key).or_default().insert(e.partition);
    }
    let spread = result
        .operator("KeyGen")
        .unwrap()
        .custom("hot_key_spread")
        .unwrap_or(0);
    (by_key, spread)
}

#[test]
fn load_awareness_keeps_key_affinity_unless_spreading_is_allowed() {
    let (kept, spread) = partitions_by_key(false);
    assert!(
        kept.values().all(|p| p.len() == 1),
        "a key changed partition"
    );
    assert_eq!(spread, 0);
    let (spread_map, spread) = partitions_by_key(true);
    assert!(spread_map["hot"].len() > 1);
    assert!(spread > 0);
}

#[test]
fn bad_pipeline_configs_are_typed_errors() {
    let build = |f: fn(&mut PipelineConfig)| {
        FiveStagePipeline::<u64, u64>::builder()
            .configure(f)
            .key(|x| x.to_string())
            .call(|x: u64| async move { Ok::<u64, String>(x) })
            .destination(Destination::default())
            .build()
            .err()
            .map(|e| e.field)
    };
    assert_eq!(
        build(|c| c.gateway.max_requests_per_second = 0.0),
        Some("gateway.max_requests_per_second")
    );
    assert_eq!(
        build(|c| c.gateway.queue_size = 0),
        Some("gateway.queue_size")
    );
    assert_eq!(
        build(|c| c.key_gen.partitions = 0),
        Some("key_gen.partitions")
    );
    assert_eq!(
        build(|c| c.ingress.buffer_size = 0),
        Some("ingress.buffer_size")
    );
    assert_eq!(
        build(|c| c.egress.max_concurrent_operations = 0),
        Some("egress.max_concurrent_operations")
    );
    assert_eq!(
        build(|c| c.egress.base_retry_delay = Duration::from_secs(10)),
        Some("egress.base_retry_delay")
    );
    assert_eq!(
        build(|c| c.final_sink.max_pending_acknowledgments = 0),
        Some("final_sink.max_pending_acknowledgments")
    );
    assert_eq!(build(|c| c.thresholds.high = 0.95), Some("thresholds"));
    assert_eq!(build(|_| {}), None);
    let missing = FiveStagePipeline::<u64, u64>::builder()
        .key(|x| x.to_string())
        .build();
    assert_eq!(missing.err().map(|e| e.field), Some("call"));
}

#[test]
fn a_limit_below_the_gateway_parallelism_is_a_typed_error() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(4);
    let pipeline = FiveStagePipeline::<u64, u64>::builder()
        .configure(|c| c.gateway.max_concurrent = 3)
        .key(|x| x.to_string())
        .call(|x: u64| async move { Ok::<u64, String>(x) })
        .destination(Destination::default())
        .build()
        .unwrap();
    env.from_sequence(1, 10)
        .apply_pipeline(&pipeline)
        .delivered
        .collect_vec();
    // Each gateway subtask keeps its records under its share of the limit: a share
    // of 0 would never admit.
    match env.execute("limit below parallelism") {
        Err(JobError::Graph(flink_core::error::GraphError::InvalidPipeline(e))) => {
            assert_eq!(e.field, "gateway.max_concurrent");
        }
        other => panic!("expected a typed error, got {other:?}"),
    }
}
