//! `compare`: the five-stage pipeline and the same logic as an operator chain, run on
//! one workload under several scenarios with the same resources, side by side. Each
//! scenario gives a table (printed, and in the HTML report with plots over time).

pub mod machine;
mod run;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::report::{ScenarioReport, Table};
use crate::variants::{Scenario, knobs, scenarios};

pub use run::{Outcome, SAMPLE_EVERY, Variant, run_variant};

/// Lines of user code between the markers `// <name>: begin` and `// <name>: end` of
/// the variants' source, blank lines excluded.
pub fn user_code_lines(name: &str) -> usize {
    let source = include_str!("../variants.rs");
    let (begin, end) = (format!("// {name}: begin"), format!("// {name}: end"));
    source
        .lines()
        .skip_while(|l| l.trim() != begin)
        .skip(1)
        .take_while(|l| l.trim() != end)
        .filter(|l| !l.trim().is_empty())
        .count()
}

/// The scenarios named in `wanted` (all when empty), in run order.
pub fn chosen(wanted: &[String]) -> Vec<Scenario> {
    scenarios()
        .into_iter()
        .filter(|s| wanted.is_empty() || wanted.iter().any(|w| w == s.name))
        .collect()
}

fn ms(d: Option<std::time::Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.1}", d.as_secs_f64() * 1e3))
}

fn quantile(o: &Outcome, q: f64) -> Option<std::time::Duration> {
    o.series
        .latency_quantiles
        .iter()
        .find(|(x, _)| *x == q)
        .map(|(_, d)| *d)
}

/// The comparison table of one scenario: the same rows for both variants, then the
/// accounting, the dead letters by cause and the knobs each side has.
pub fn table(five: &Outcome, chain: &Outcome, s: &Scenario) -> Table {
    let mut t = Table::new([Variant::FiveStage.name(), Variant::OperatorChain.name()]);
    let both = [five, chain];
    let mut row = |label: &str, f: &dyn Fn(&Outcome) -> String| {
        t.row(label, both.map(f));
    };
    row("records", &|o| o.records.to_string());
    row("throughput (records/s)", &|o| {
        format!("{:.0}", o.records as f64 / o.seconds)
    });
    row("delivered", &|o| o.delivered.to_string());
    row("dead letters", &|o| o.dead_letters.to_string());
    row("latency p50 / p99 (ms)", &|o| {
        format!("{} / {}", ms(quantile(o, 0.5)), ms(quantile(o, 0.99)))
    });
    row("records in flight at peak", &|o| {
        o.series.peak_in_flight().to_string()
    });
    row("peak RSS, process (MB)", &|o| {
        format!("{:.1}", o.peak_rss_mb)
    });
    row("service calls", &|o| o.service_calls.to_string());
    row("retries / timeouts", &|o| {
        format!("{} / {}", o.retries, o.timeouts)
    });
    t.row(
        "lines of user code",
        [user_code_lines("five-stage"), user_code_lines("chain")].map(|n| n.to_string()),
    );
    for (o, name) in both
        .iter()
        .zip([Variant::FiveStage, Variant::OperatorChain])
    {
        t.note(format!("accounting, {}: {}", name.name(), o.accounting));
    }
    for (o, name) in both
        .iter()
        .zip([Variant::FiveStage, Variant::OperatorChain])
    {
        let causes: Vec<String> = o
            .causes
            .iter()
            .map(|(cause, n)| format!("{n} {cause}"))
            .collect();
        if !causes.is_empty() {
            t.note(format!(
                "dead letters, {}: {}",
                name.name(),
                causes.join("; ")
            ));
        }
    }
    for (side, what) in knobs(s) {
        t.note(format!("configured, {side}: {what}"));
    }
    t.note(format!(
        "in flight = generated - delivered - dead letters, sampled every {} ms",
        SAMPLE_EVERY.as_millis()
    ));
    t
}

/// A progress bar for one run (drawn on standard error when it is a terminal).
fn bar(s: &Scenario, variant: Variant, records: u64, visible: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(records),
        if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    let style = ProgressStyle::with_template(
        "{prefix:<28} [{bar:30}] {pos:>7}/{len:<7} {per_sec:>14} {elapsed:>4} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(format!("{} / {}", s.name, variant.name()));
    bar
}

/// Runs one variant of `s` over `records` orders without a progress bar (for
/// benchmarks).
pub fn run_quiet(variant: Variant, s: &Scenario, records: u64) -> anyhow::Result<Outcome> {
    run_variant(variant, s, records, &ProgressBar::hidden(), None)
}

/// How a comparison is shown while it runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Display {
    /// Progress bars on standard error.
    pub progress: bool,
    /// Where each job serves its REST API and metrics while it runs.
    pub web_ui: Option<std::net::SocketAddr>,
}

/// Runs both variants of `s` over its share of `base` records.
pub fn run_scenario(s: &Scenario, base: u64, display: Display) -> anyhow::Result<ScenarioReport> {
    let records = s.records(base);
    let mut outcomes = Vec::new();
    for variant in [Variant::FiveStage, Variant::OperatorChain] {
        let bar = bar(s, variant, records, display.progress);
        let outcome = run_variant(variant, s, records, &bar, display.web_ui)?;
        bar.finish();
        outcomes.push(outcome);
    }
    let table = table(&outcomes[0], &outcomes[1], s);
    Ok(ScenarioReport {
        name: s.name.to_string(),
        title: s.title.to_string(),
        table,
        variants: outcomes.into_iter().map(|o| o.series).collect(),
    })
}
