use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use super::config::{PipelineConfig, PressureThresholds};
use super::state::{PipelineState, STAGES, Stage};

/// Records through one stage, from the operator's own metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StageCounts {
    /// Records that entered the stage.
    pub received: u64,
    /// Records it passed on (for FinalSink: acknowledged).
    pub emitted: u64,
    /// Records it turned into dead letters.
    pub dead_lettered: u64,
    /// Records it counted as errors (neither passed on nor dead-lettered).
    pub errors: u64,
    /// Records it held when the job stopped with a savepoint without drain (its
    /// queue, its calls in flight): in the savepoint's state, output by the job
    /// restored from it. 0 for a job that ran to its end or drained.
    pub held: u64,
}

/// The operator metric a stage stopped without drain reports its
/// [`StageCounts::held`] records in.
pub const HELD: &str = "held";

impl StageCounts {
    /// Whether every record that entered is accounted for.
    pub fn balanced(&self) -> bool {
        self.received == self.emitted + self.dead_lettered + self.errors + self.held
    }
}

/// Health from overall pressure: HEALTHY < 0.3 <= MODERATE < 0.6 <= HIGH < 0.8 <= CRITICAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Health {
    /// Pressure below 0.3.
    Healthy,
    /// 0.3 to 0.6.
    Moderate,
    /// 0.6 to 0.8.
    High,
    /// 0.8 and above.
    Critical,
}

impl Health {
    /// The health of a pressure in `0.0..=1.0`.
    pub fn of(pressure: f64) -> Self {
        if pressure < 0.3 {
            Self::Healthy
        } else if pressure < 0.6 {
            Self::Moderate
        } else if pressure < 0.8 {
            Self::High
        } else {
            Self::Critical
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Self::Healthy => "HEALTHY",
            Self::Moderate => "MODERATE",
            Self::High => "HIGH",
            Self::Critical => "CRITICAL",
        };
        f.write_str(s)
    }
}

/// Back-pressure level from the configured thresholds (what the gateway acts on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum PressureLevel {
    /// Below `moderate`.
    Normal,
    /// From `moderate`: the gateway halves its rate.
    Moderate,
    /// From `high`: a quarter.
    High,
    /// From `critical`: it admits nothing.
    Critical,
}

impl PressureLevel {
    /// The level of `pressure` under `t`.
    pub fn of(pressure: f64, t: &PressureThresholds) -> Self {
        if pressure >= t.critical {
            Self::Critical
        } else if pressure >= t.high {
            Self::High
        } else if pressure >= t.moderate {
            Self::Moderate
        } else {
            Self::Normal
        }
    }
}

/// One stage's live status.
#[derive(Debug, Clone, Serialize)]
pub struct StageStatus {
    /// Stage name.
    pub name: &'static str,
    /// Pressure in `0.0..=1.0`: the largest of queue utilization, measured back
    /// pressure of its tasks, and error rate.
    pub pressure: f64,
    /// Level under the thresholds.
    pub level: PressureLevel,
    /// Health of this stage alone.
    pub health: Health,
    /// Fill of its bounded queue (the gateway's queue), or for the async stages the
    /// calls or acks in flight of their capacity (shown, not pressure).
    pub queue_utilization: f64,
    /// Share of time it waited for a free slot over the last window.
    pub waiting: f64,
    /// Back-pressured share of its tasks (0 when no monitor feeds it).
    pub task_back_pressure: f64,
    /// Dead letters and errors per record received since the previous status.
    pub error_rate: f64,
    /// Counts so far.
    pub counts: StageCounts,
}

/// The whole pipeline's live status.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineStatus {
    /// The largest stage pressure.
    pub overall_pressure: f64,
    /// Level of the overall pressure.
    pub level: PressureLevel,
    /// Health of the overall pressure.
    pub health: Health,
    /// Per stage.
    pub stages: Vec<StageStatus>,
    /// Records admitted and not yet finished.
    pub in_pipeline: u64,
    /// Median end-to-end latency of acknowledged records so far.
    pub latency_p50: Option<Duration>,
    /// 99th percentile.
    pub latency_p99: Option<Duration>,
    /// Records slower than the slow-processing threshold.
    pub slow_records: u64,
}

/// Turns the pipeline's real signals into per-stage pressure and health.
pub struct PipelineBackPressureController {
    state: Arc<PipelineState>,
    thresholds: PressureThresholds,
    previous: Mutex<[StageCounts; 5]>,
}

impl PipelineBackPressureController {
    /// A controller over `state`.
    pub fn new(state: Arc<PipelineState>, config: &PipelineConfig) -> Self {
        Self {
            state,
            thresholds: config.thresholds,
            previous: Mutex::new([StageCounts::default(); 5]),
        }
    }

    /// The status now, given each stage's counts (from the operators' metrics).
    pub fn status(&self, counts: [StageCounts; 5]) -> PipelineStatus {
        let mut previous = self.previous.lock().unwrap_or_else(|p| p.into_inner());
        let signals = self.state.signals();
        let stages: Vec<StageStatus> = (0..5)
            .map(|i| {
                let stage = [
                    Stage::Gateway,
                    Stage::KeyGen,
                    Stage::Ingress,
                    Stage::Egress,
                    Stage::FinalSink,
                ][i];
                let (now, before) = (counts[i], previous[i]);
                let received = now.received.saturating_sub(before.received);
                let failed = (now.dead_lettered + now.errors)
                    .saturating_sub(before.dead_lettered + before.errors);
                let error_rate = if received == 0 {
                    0.0
                } else {
                    (failed as f64 / received as f64).min(1.0)
                };
                let queue = self
                    .state
                    .queue_utilization(stage)
                    .max(self.state.occupancy(stage));
                let task = self.state.task_pressure(stage);
                let pressure = self.state.stage_pressure(stage, &signals).max(error_rate);
                StageStatus {
                    name: STAGES[i],
                    pressure,
                    level: PressureLevel::of(pressure, &self.thresholds),
                    health: Health::of(pressure),
                    queue_utilization: queue,
                    waiting: signals.stages[i].waiting,
                    task_back_pressure: task,
                    error_rate,
                    counts: now,
                }
            })
            .collect();
        *previous = counts;
        let overall = stages.iter().map(|s| s.pressure).fold(0.0, f64::max);
        PipelineStatus {
            overall_pressure: overall,
            level: PressureLevel::of(overall, &self.thresholds),
            health: Health::of(overall),
            stages,
            in_pipeline: self.state.in_pipeline(),
            latency_p50: self.state.latency().quantile(0.5),
            latency_p99: self.state.latency().quantile(0.99),
            slow_records: self.state.slow_records(),
        }
    }
}

impl PipelineStatus {
    /// A fixed-width table, one row per stage.
    pub fn table(&self) -> String {
        let mut s = format!(
            "pipeline {} (pressure {:.2}, level {:?}), in pipeline {}, latency p50 {} p99 {}\n",
            self.health,
            self.overall_pressure,
            self.level,
            self.in_pipeline,
            fmt_latency(self.latency_p50),
            fmt_latency(self.latency_p99)
        );
        s.push_str("  stage                  pressure health    queue  wait  bp    errors  received   emitted    dead    errs\n");
        for st in &self.stages {
            s.push_str(&format!(
                "  {:<22} {:>8.2} {:<9} {:>5.2} {:>5.2} {:>5.2} {:>6.3} {:>9} {:>9} {:>7} {:>7}\n",
                st.name,
                st.pressure,
                st.health.to_string(),
                st.queue_utilization,
                st.waiting,
                st.task_back_pressure,
                st.error_rate,
                st.counts.received,
                st.counts.emitted,
                st.counts.dead_lettered,
                st.counts.errors
            ));
        }
        s
    }
}

fn fmt_latency(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.1}ms", d.as_secs_f64() * 1e3))
}
