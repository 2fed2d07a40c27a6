//! The knobs of each stage, validated when the pipeline is built.

use std::time::Duration;

use thiserror::Error;

/// Rate control at the entrance.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayConfig {
    /// Records admitted per second at most (token bucket).
    pub max_requests_per_second: f64,
    /// Records admitted but not yet finished (acknowledged, dead-lettered or counted
    /// as errors) at most, shared out evenly among the gateway's parallel instances
    /// (each keeps the records it admitted under its share, wherever they are).
    pub max_concurrent: usize,
    /// Records the gateway holds while they wait for admission; when full, it stops
    /// reading its input (back pressure).
    pub queue_size: usize,
    /// End-to-end latency above which a record counts as slow (and adds pressure).
    pub slow_processing_threshold: Duration,
}

/// Deterministic partitioning.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyGenConfig {
    /// Number of logical partitions keys map to.
    pub partitions: u32,
    /// Watch per-partition load.
    pub load_awareness: bool,
    /// Max/mean load ratio above which partitions count as imbalanced.
    pub imbalance_threshold: f64,
    /// Allow a hot key to leave its partition when imbalanced (breaks key affinity:
    /// only for stateless downstream logic).
    pub allow_hot_key_spreading: bool,
}

/// Validation and preprocessing with a bounded buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct IngressConfig {
    /// Records buffered before they are passed on at most.
    pub buffer_size: usize,
    /// Longest a record waits in the buffer.
    pub buffer_timeout: Duration,
    /// Run the validation function.
    pub validation_enabled: bool,
    /// Run the preprocessing function.
    pub preprocessing_enabled: bool,
}

/// The external call.
#[derive(Debug, Clone, PartialEq)]
pub struct AsyncEgressConfig {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Limit of one attempt.
    pub operation_timeout: Duration,
    /// First retry delay (exponential backoff with jitter from there).
    pub base_retry_delay: Duration,
    /// Longest retry delay.
    pub max_retry_delay: Duration,
    /// Calls in flight at most per parallel instance.
    pub max_concurrent_operations: usize,
    /// Final failures become dead letters (otherwise they fail the job).
    pub dead_letters_enabled: bool,
}

/// The acknowledged destination.
#[derive(Debug, Clone, PartialEq)]
pub struct FinalSinkConfig {
    /// A name for the destination, shown in status and dead letters.
    pub destination: String,
    /// Wait for acknowledgments (retry and dead-letter on timeout); otherwise failed
    /// sends are only counted as errors.
    pub require_acknowledgment: bool,
    /// Sends awaiting acknowledgment at most per parallel instance.
    pub max_pending_acknowledgments: usize,
    /// Longest wait for one acknowledgment.
    pub acknowledgment_timeout: Duration,
    /// Retries of a timed-out or failed send before it is dead-lettered.
    pub acknowledgment_retries: u32,
}

/// Pressure levels shared by all stages (fractions of capacity).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PressureThresholds {
    /// From here the gateway halves its rate.
    pub moderate: f64,
    /// From here it quarters it.
    pub high: f64,
    /// From here it admits nothing until pressure falls.
    pub critical: f64,
}

/// The whole pipeline's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineConfig {
    /// Stage 1.
    pub gateway: GatewayConfig,
    /// Stage 2.
    pub key_gen: KeyGenConfig,
    /// Stage 3.
    pub ingress: IngressConfig,
    /// Stage 4.
    pub egress: AsyncEgressConfig,
    /// Stage 5.
    pub final_sink: FinalSinkConfig,
    /// Pressure levels.
    pub thresholds: PressureThresholds,
    /// How often status is sampled and printed by monitors.
    pub monitoring_interval: Duration,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            gateway: GatewayConfig {
                max_requests_per_second: 10_000.0,
                max_concurrent: 1_000,
                queue_size: 1_000,
                slow_processing_threshold: Duration::from_secs(1),
            },
            key_gen: KeyGenConfig {
                partitions: 16,
                load_awareness: false,
                imbalance_threshold: 2.0,
                allow_hot_key_spreading: false,
            },
            ingress: IngressConfig {
                buffer_size: 100,
                buffer_timeout: Duration::from_millis(10),
                validation_enabled: true,
                preprocessing_enabled: true,
            },
            egress: AsyncEgressConfig {
                max_retries: 3,
                operation_timeout: Duration::from_secs(1),
                base_retry_delay: Duration::from_millis(10),
                max_retry_delay: Duration::from_millis(500),
                max_concurrent_operations: 100,
                dead_letters_enabled: true,
            },
            final_sink: FinalSinkConfig {
                destination: "destination".into(),
                require_acknowledgment: true,
                max_pending_acknowledgments: 100,
                acknowledgment_timeout: Duration::from_secs(1),
                acknowledgment_retries: 2,
            },
            thresholds: PressureThresholds {
                moderate: 0.6,
                high: 0.8,
                critical: 0.9,
            },
            monitoring_interval: Duration::from_secs(1),
        }
    }
}

/// A pipeline setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid five-stage pipeline config: {field} {problem}")]
pub struct PipelineConfigError {
    /// The setting, e.g. `gateway.max_requests_per_second`.
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

fn positive(
    field: &'static str,
    ok: bool,
    value: impl std::fmt::Debug,
) -> Result<(), PipelineConfigError> {
    if ok {
        Ok(())
    } else {
        Err(PipelineConfigError {
            field,
            problem: format!("must be positive, got {value:?}"),
        })
    }
}

impl PipelineConfig {
    /// Checks every setting; the first problem is returned.
    pub fn validate(&self) -> Result<(), PipelineConfigError> {
        let (g, k, i, e, f, t) = (
            &self.gateway,
            &self.key_gen,
            &self.ingress,
            &self.egress,
            &self.final_sink,
            &self.thresholds,
        );
        let rps = g.max_requests_per_second;
        positive(
            "gateway.max_requests_per_second",
            rps.is_finite() && rps > 0.0,
            rps,
        )?;
        positive(
            "gateway.max_concurrent",
            g.max_concurrent > 0,
            g.max_concurrent,
        )?;
        positive("gateway.queue_size", g.queue_size > 0, g.queue_size)?;
        positive("key_gen.partitions", k.partitions > 0, k.partitions)?;
        positive(
            "key_gen.imbalance_threshold",
            k.imbalance_threshold >= 1.0,
            k.imbalance_threshold,
        )?;
        positive("ingress.buffer_size", i.buffer_size > 0, i.buffer_size)?;
        positive(
            "egress.operation_timeout",
            !e.operation_timeout.is_zero(),
            e.operation_timeout,
        )?;
        positive(
            "egress.max_concurrent_operations",
            e.max_concurrent_operations > 0,
            e.max_concurrent_operations,
        )?;
        if e.base_retry_delay > e.max_retry_delay {
            return Err(PipelineConfigError {
                field: "egress.base_retry_delay",
                problem: format!(
                    "{:?} exceeds max_retry_delay {:?}",
                    e.base_retry_delay, e.max_retry_delay
                ),
            });
        }
        positive(
            "final_sink.max_pending_acknowledgments",
            f.max_pending_acknowledgments > 0,
            f.max_pending_acknowledgments,
        )?;
        positive(
            "final_sink.acknowledgment_timeout",
            !f.acknowledgment_timeout.is_zero(),
            f.acknowledgment_timeout,
        )?;
        positive(
            "monitoring_interval",
            !self.monitoring_interval.is_zero(),
            self.monitoring_interval,
        )?;
        let ordered =
            0.0 < t.moderate && t.moderate < t.high && t.high < t.critical && t.critical <= 1.0;
        if !ordered {
            return Err(PipelineConfigError {
                field: "thresholds",
                problem: format!("need 0 < moderate < high < critical <= 1, got {t:?}"),
            });
        }
        Ok(())
    }
}
