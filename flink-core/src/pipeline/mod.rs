//! The prebuilt five-stage pipeline `Gateway -> KeyGen -> IngressProcessing ->
//! AsyncEgressProcessing -> FinalSink`, as a composite that expands into five named
//! operators on the ordinary runtime, so credit-based back pressure reaches from the
//! destination to the gateway by itself. See `docs/backpressure.md`.

mod builder;
mod config;
mod controller;
mod egress;
mod envelope;
mod gateway;
mod ingress;
mod key_gen;
mod latency;
mod ledger;
mod signals;
mod state;

pub use builder::{FiveStagePipeline, FiveStagePipelineBuilder, PipelineHandle, PipelineStreams};
pub use config::{
    AsyncEgressConfig, FinalSinkConfig, GatewayConfig, IngressConfig, KeyGenConfig, PipelineConfig,
    PipelineConfigError, PressureThresholds,
};
pub use controller::{
    HELD, Health, PipelineBackPressureController, PipelineStatus, PressureLevel, StageCounts,
    StageStatus,
};
pub use envelope::Envelope;
pub use key_gen::partition_of;
pub use latency::LatencyHistogram;
pub use ledger::RESTORED_ORIGIN;
pub use signals::{Shares, StageMeters, WindowSignals};
pub use state::{PipelineState, STAGES, Stage};

/// Locks `m`, going on past a panic of another holder (the counts stay usable; the
/// panic fails the job on its own).
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
