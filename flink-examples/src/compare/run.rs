//! One run of one variant in one scenario: build the job, run it with a progress bar,
//! sample it every [`SAMPLE_EVERY`], and account for every record at the end.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use flink_core::pipeline::{PipelineBackPressureController, STAGES};
use flink_runtime::job_sampler::JobSampler;
use flink_runtime::pipeline_monitor::{PipelineMonitor, PipelineReport, stage_counts};
use flink_runtime::prelude::*;
use indicatif::ProgressBar;

use super::machine::{peak_rss_mb, reset_peak_rss};
use crate::report::{PressureSeries, Sample, VariantSeries};
use crate::variants::{Ends, Scenario, five_stage, operator_chain};
use crate::workload::{CountingSink, DeadLetterLog, OrderStore, Origin, PricingService};

/// How often a running job is sampled for the plots and the peak in flight.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Latency quantiles shown in the report.
const QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];

/// The two designs compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The five-stage pipeline.
    FiveStage,
    /// The same logic as an operator chain.
    OperatorChain,
}

impl Variant {
    /// As shown in the table.
    pub fn name(self) -> &'static str {
        match self {
            Self::FiveStage => "five-stage",
            Self::OperatorChain => "operator chain",
        }
    }
}

/// What one variant did in one scenario.
pub struct Outcome {
    /// Records the source generated.
    pub records: u64,
    /// Wall time of the job.
    pub seconds: f64,
    /// Records the destination acknowledged.
    pub delivered: u64,
    /// Dead letters of every stage.
    pub dead_letters: u64,
    /// Dead letters by cause, most frequent first.
    pub causes: Vec<(String, u64)>,
    /// Calls made to the service (retries included).
    pub service_calls: u64,
    /// Retries of calls and of sends.
    pub retries: u64,
    /// Attempts that timed out.
    pub timeouts: u64,
    /// Peak RSS of the process during the run, MB.
    pub peak_rss_mb: f64,
    /// The accounting line: "exact: ..." or "MISMATCH: ...".
    pub accounting: String,
    /// What was sampled while it ran.
    pub series: VariantSeries,
}

/// Samples gathered while a job runs.
#[derive(Default)]
struct Gathered {
    samples: Vec<Sample>,
    pressure: Vec<PressureSeries>,
}

impl Gathered {
    fn push_pressure(&mut self, name: &str, at: Duration, value: f64) {
        match self.pressure.iter_mut().find(|p| p.name == name) {
            Some(p) => p.points.push((at, value)),
            None => self.pressure.push(PressureSeries {
                name: name.to_string(),
                points: vec![(at, value)],
            }),
        }
    }
}

fn sum_custom(operators: &[OperatorSummary], name: &str) -> u64 {
    operators.iter().filter_map(|o| o.custom(name)).sum()
}

/// Runs `variant` over `records` orders of scenario `s`, showing progress on `bar`;
/// with `web_ui`, the job serves its REST API and metrics there while it runs.
pub fn run_variant(
    variant: Variant,
    s: &Scenario,
    records: u64,
    bar: &ProgressBar,
    web_ui: Option<SocketAddr>,
) -> anyhow::Result<Outcome> {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(s.parallelism);
    crate::serve_web_ui(&env, web_ui);
    let ends = Ends {
        store: OrderStore::new(s.ack_latency, Origin::new()),
        dead_letters: DeadLetterLog::new(),
        receipts: CountingSink::default(),
    };
    let service = PricingService::new(s.service);
    let pipeline = match variant {
        Variant::FiveStage => Some(five_stage(&env, s, records, service.clone(), &ends)?),
        Variant::OperatorChain => {
            operator_chain(&env, s, records, service.clone(), &ends)?;
            None
        }
    };
    reset_peak_rss();
    let client = env.execute_async(&format!("{} {}", variant.name(), s.name))?;
    let started = Instant::now();
    if let (Some(address), Some(id)) = (client.web_ui_address(), client.job_id()) {
        let line = format!(
            "{} / {}: REST API http://{address}/jobs/{id}, metrics http://{address}/metrics",
            s.name,
            variant.name()
        );
        if bar.is_hidden() {
            eprintln!("{line}");
        } else {
            bar.println(line);
        }
    }
    let monitor = match &pipeline {
        Some(p) => Some(PipelineMonitor::start(
            client.observer(),
            p.state.clone(),
            &p.config,
            |_| {},
        )?),
        None => None,
    };
    let controller = pipeline
        .as_ref()
        .map(|p| PipelineBackPressureController::new(p.state.clone(), &p.config));
    let gathered = Arc::new(Mutex::new(Gathered {
        samples: vec![Sample {
            at: Duration::ZERO,
            delivered: 0,
            in_flight: 0,
        }],
        pressure: Vec::new(),
    }));
    let sample = {
        let (ends, gathered, bar) = (ends.clone(), gathered.clone(), bar.clone());
        move |job: &JobObserver, before: &[TaskMetricsSnapshot], now: &[TaskMetricsSnapshot]| {
            let at = started.elapsed();
            let operators = job.operator_metrics();
            let emitted = operators.first().map_or(0, |o| o.records_out);
            let finished = ends.store.stored() + ends.dead_letters.count();
            let mut g = gathered.lock().unwrap_or_else(|p| p.into_inner());
            g.samples.push(Sample {
                at,
                delivered: ends.store.stored(),
                in_flight: emitted.saturating_sub(finished),
            });
            match &controller {
                Some(c) => {
                    let status = c.status(stage_counts(&operators));
                    for stage in &status.stages {
                        g.push_pressure(stage.name, at, stage.pressure);
                    }
                }
                None => {
                    for (n, b) in now.iter().zip(before) {
                        let name = format!("{} ({}/{})", n.task, n.subtask + 1, n.parallelism);
                        let share = n.shares_since(b).back_pressured_ms_per_s / 1000.0;
                        g.push_pressure(&name, at, share);
                    }
                }
            }
            bar.set_position(finished);
            bar.set_message(format!("{} in flight", emitted.saturating_sub(finished)));
        }
    };
    let sampler = JobSampler::start("compare-sampler", client.observer(), SAMPLE_EVERY, sample)?;
    let result = client.wait()?;
    drop(sampler);
    drop(monitor);
    let finished = ends.store.stored() + ends.dead_letters.count();
    bar.set_position(finished);
    let mut gathered = std::mem::take(&mut *gathered.lock().unwrap_or_else(|p| p.into_inner()));
    gathered.samples.push(Sample {
        at: result.duration,
        delivered: ends.store.stored(),
        in_flight: records.saturating_sub(finished),
    });
    let ops = &result.operators;
    let accounting = match &pipeline {
        Some(_) => five_stage_accounting(&result, &ends, records)?,
        None => chain_accounting(&result, &ends, records)?,
    };
    Ok(Outcome {
        records,
        seconds: result.duration.as_secs_f64(),
        delivered: ends.store.stored(),
        dead_letters: ends.dead_letters.count(),
        causes: ends.dead_letters.causes(),
        service_calls: service.calls(),
        retries: sum_custom(ops, "retries"),
        timeouts: sum_custom(ops, "timeouts"),
        peak_rss_mb: peak_rss_mb(),
        accounting,
        series: VariantSeries {
            name: variant.name().to_string(),
            samples: gathered.samples,
            latency_quantiles: QUANTILES
                .iter()
                .filter_map(|&q| ends.store.latency().quantile(q).map(|d| (q, d)))
                .collect(),
            pressure: order_pressure(gathered.pressure),
        },
    })
}

/// Stages in pipeline order (tasks keep their order of first appearance).
fn order_pressure(mut series: Vec<PressureSeries>) -> Vec<PressureSeries> {
    series.sort_by_key(|p| STAGES.iter().position(|s| *s == p.name).unwrap_or(0));
    series
}

/// The five-stage pipeline's own report, checked against the ends both variants share.
fn five_stage_accounting(
    result: &JobExecutionResult,
    ends: &Ends,
    records: u64,
) -> anyhow::Result<String> {
    let report = PipelineReport::new(&result.operators);
    let (delivered, dead) = (ends.store.stored(), ends.dead_letters.count());
    ensure!(
        ends.receipts.count() == delivered,
        "receipts {} != stored {delivered}",
        ends.receipts.count()
    );
    let exact = report.accounted()
        && report.received() == records
        && report.delivered() == delivered
        && report.dead_lettered() == dead
        && delivered + dead + report.errors() == records;
    Ok(if exact {
        format!(
            "exact: {records} = {delivered} delivered + {dead} dead letters + {} errors",
            report.errors()
        )
    } else {
        format!("MISMATCH: {records} generated, {delivered} stored, {dead} dead letters\n{report}")
    })
}

/// Every generated record is a stored order or a dead letter, and the async sink's
/// count of deliveries agrees with the store.
fn chain_accounting(
    result: &JobExecutionResult,
    ends: &Ends,
    records: u64,
) -> anyhow::Result<String> {
    let source = result.operators.first().context("source metrics")?;
    let sink = result
        .operator("Async Sink")
        .context("async sink metrics")?;
    let (delivered, dead) = (ends.store.stored(), ends.dead_letters.count());
    let errors = sum_custom(&result.operators, "errors");
    let exact = source.records_out == records
        && sink.custom("delivered") == Some(delivered)
        && delivered + dead + errors == records;
    Ok(if exact {
        format!("exact: {records} = {delivered} delivered + {dead} dead letters + {errors} errors")
    } else {
        format!(
            "MISMATCH: {} generated, {delivered} stored ({:?} by the sink), {dead} dead letters, {errors} errors",
            source.records_out,
            sink.custom("delivered")
        )
    })
}
