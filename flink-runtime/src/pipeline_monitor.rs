//! Watching a five-stage pipeline while it runs, and accounting for it when it ends.

use std::fmt;
use std::sync::Arc;

use flink_core::pipeline::{
    PipelineBackPressureController, PipelineConfig, PipelineState, PipelineStatus, STAGES, Stage,
    StageCounts,
};

use crate::job_client::JobObserver;
use crate::job_result::OperatorSummary;
use crate::job_sampler::JobSampler;
use crate::task_metrics::TaskMetricsSnapshot;

/// Each stage's counts, from the operators' own metrics.
pub fn stage_counts(operators: &[OperatorSummary]) -> [StageCounts; 5] {
    STAGES.map(|name| {
        operators
            .iter()
            .find(|o| o.name == name)
            .map(|o| StageCounts {
                received: o.records_in,
                emitted: o.records_out,
                dead_lettered: o.custom("dead_letters").unwrap_or(0),
                errors: o.custom("errors").unwrap_or(0),
                held: o.custom(flink_core::pipeline::HELD).unwrap_or(0),
            })
            .unwrap_or_default()
    })
}

/// Exact accounting of a finished pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineReport {
    /// Per stage, in order.
    pub stages: [StageCounts; 5],
}

impl PipelineReport {
    /// The report of a finished job's operators.
    pub fn new(operators: &[OperatorSummary]) -> Self {
        Self {
            stages: stage_counts(operators),
        }
    }

    /// Records that entered the pipeline.
    pub fn received(&self) -> u64 {
        self.stages[0].received
    }

    /// Records acknowledged by the destination.
    pub fn delivered(&self) -> u64 {
        self.stages[4].emitted
    }

    /// Dead letters of every stage.
    pub fn dead_lettered(&self) -> u64 {
        self.stages.iter().map(|s| s.dead_lettered).sum()
    }

    /// Counted errors of every stage.
    pub fn errors(&self) -> u64 {
        self.stages.iter().map(|s| s.errors).sum()
    }

    /// Records held in the savepoint of a stop without drain, over every stage
    /// (output by the job restored from it).
    pub fn held(&self) -> u64 {
        self.stages.iter().map(|s| s.held).sum()
    }

    /// Every stage balances and every record that entered ended as a delivery, a dead
    /// letter or a counted error, or is held in the savepoint of a stop without
    /// drain, exactly; each stage received what the previous one emitted.
    pub fn accounted(&self) -> bool {
        let chained = self
            .stages
            .windows(2)
            .all(|w| w[0].emitted == w[1].received);
        let ends = self.delivered() + self.dead_lettered() + self.errors() + self.held();
        chained && self.stages.iter().all(StageCounts::balanced) && ends == self.received()
    }
}

impl fmt::Display for PipelineReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  stage                   received   emitted  dead-lettered  errors"
        )?;
        for (name, s) in STAGES.iter().zip(&self.stages) {
            writeln!(
                f,
                "  {name:<22} {:>9} {:>9} {:>14} {:>7}",
                s.received, s.emitted, s.dead_lettered, s.errors
            )?;
        }
        write!(
            f,
            "  in {} = delivered {} + dead letters {} + errors {} + held {}: {}",
            self.received(),
            self.delivered(),
            self.dead_lettered(),
            self.errors(),
            self.held(),
            if self.accounted() {
                "exact"
            } else {
                "MISMATCH"
            }
        )
    }
}

/// Samples a running pipeline every monitoring interval: feeds the back-pressured
/// share of each stage's tasks into the pipeline state (so the gateway reacts to it)
/// and hands the controller's status to a callback. Stops when dropped.
pub struct PipelineMonitor {
    _sampler: JobSampler,
}

impl PipelineMonitor {
    /// Starts sampling `job` for the pipeline whose shared state is `state`.
    pub fn start(
        job: JobObserver,
        state: Arc<PipelineState>,
        config: &PipelineConfig,
        mut on_status: impl FnMut(&PipelineStatus) + Send + 'static,
    ) -> std::io::Result<Self> {
        let controller = PipelineBackPressureController::new(state.clone(), config);
        let sampler = JobSampler::start(
            "pipeline-monitor",
            job,
            config.monitoring_interval,
            move |job, before, now| {
                feed_task_pressure(&state, before, now);
                on_status(&controller.status(stage_counts(&job.operator_metrics())));
            },
        )?;
        Ok(Self { _sampler: sampler })
    }
}

/// For each stage, the highest back-pressured share over the window among the
/// subtasks of the task that runs it.
fn feed_task_pressure(
    state: &PipelineState,
    before: &[TaskMetricsSnapshot],
    after: &[TaskMetricsSnapshot],
) {
    let stages = [
        Stage::Gateway,
        Stage::KeyGen,
        Stage::Ingress,
        Stage::Egress,
        Stage::FinalSink,
    ];
    for (stage, name) in stages.into_iter().zip(STAGES) {
        let share = after
            .iter()
            .filter(|t| t.task.split(" -> ").any(|op| op == name))
            .filter_map(|t| {
                let earlier = before
                    .iter()
                    .find(|b| b.task == t.task && b.subtask == t.subtask)?;
                Some(t.shares_since(earlier).back_pressured_ms_per_s / 1000.0)
            })
            .fold(0.0, f64::max);
        state.set_task_pressure(stage, share);
    }
}
