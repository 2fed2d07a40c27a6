//! The report `compare` writes: what each variant did in each scenario, as one
//! self-contained HTML page (`index.html`) with the comparison table and inline SVG
//! plots, viewable without a network, a CDN or JavaScript.
//!
//! The data model is filled by the caller; this module only renders it. The table in
//! the page is built from the very strings [`Table::to_text`] prints, so the figures
//! in the page equal the figures printed in the terminal.

#![warn(missing_docs)]

mod charts;
mod html;
mod table;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use html::render_html;
pub use table::{Table, TableRow};

/// The whole run: what `compare` measured, for every scenario.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// The page's heading, e.g. "flink-rs: five-stage pipeline vs operator chain".
    pub title: String,
    /// The command line that produced the report.
    pub command: String,
    /// When the report was made, as text given by the caller.
    pub generated: String,
    /// The machine it ran on, e.g. "2 cores, 24 GiB, Linux ...", given by the caller.
    pub machine: String,
    /// One entry per scenario, in the order they ran.
    pub scenarios: Vec<ScenarioReport>,
}

/// What every variant did in one scenario.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScenarioReport {
    /// The scenario's short name, e.g. "healthy" (also the HTML anchor).
    pub name: String,
    /// A one-line description, e.g. "healthy: 0.5-1.5 ms service, 0.1 ms acks".
    pub title: String,
    /// The comparison table, printed and rendered from the same strings.
    pub table: Table,
    /// One entry per variant, in the same order as `table.columns`.
    pub variants: Vec<VariantSeries>,
}

/// What one variant did over time in one scenario.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VariantSeries {
    /// The variant's name, as in the table's column header.
    pub name: String,
    /// Samples taken every ~100-250 ms while the job ran, in time order.
    pub samples: Vec<Sample>,
    /// Latency quantiles: (quantile in 0.0..=1.0, latency), e.g. 0.5, 0.9, 0.99, 0.999.
    pub latency_quantiles: Vec<(f64, Duration)>,
    /// Pressure over time, one series per stage (five-stage) or per task (chain).
    pub pressure: Vec<PressureSeries>,
}

/// One look at a running job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    /// Time since the job started.
    pub at: Duration,
    /// Records delivered since the job started (cumulative).
    pub delivered: u64,
    /// Records read but not yet delivered or dead-lettered at that moment.
    pub in_flight: u64,
}

/// How much one stage or task waited, over time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PressureSeries {
    /// The stage or task, e.g. "AsyncEgressProcessing" or "Async Function (1/1)".
    pub name: String,
    /// (time since job start, pressure in 0.0..=1.0), in time order.
    pub points: Vec<(Duration, f64)>,
}

impl VariantSeries {
    /// Throughput over time in records/s: one point per pair of consecutive samples,
    /// at the later sample's time, from the change in `delivered` over the change in
    /// time. Pairs without elapsed time are skipped (no division by zero); a
    /// `delivered` that went backwards counts as zero.
    ///
    /// ```
    /// use std::time::Duration;
    /// use flink_examples::report::{Sample, VariantSeries};
    ///
    /// let at = |ms| Duration::from_millis(ms);
    /// let series = VariantSeries {
    ///     samples: vec![
    ///         Sample { at: at(0), delivered: 0, in_flight: 0 },
    ///         Sample { at: at(250), delivered: 500, in_flight: 40 },
    ///     ],
    ///     ..Default::default()
    /// };
    /// assert_eq!(series.throughput(), vec![(at(250), 2_000.0)]);
    /// ```
    pub fn throughput(&self) -> Vec<(Duration, f64)> {
        self.samples
            .windows(2)
            .filter_map(|pair| {
                let seconds = pair[1].at.checked_sub(pair[0].at)?.as_secs_f64();
                (seconds > 0.0).then(|| {
                    let records = pair[1].delivered.saturating_sub(pair[0].delivered);
                    (pair[1].at, records as f64 / seconds)
                })
            })
            .collect()
    }

    /// The most records in flight at any sample (0 without samples).
    pub fn peak_in_flight(&self) -> u64 {
        self.samples.iter().map(|s| s.in_flight).max().unwrap_or(0)
    }
}

/// Writes `dir/index.html`, creating `dir` (and its parents) if needed, and returns
/// the file's path. The page needs nothing else to be viewed: the plots are inline
/// SVG, the style is embedded, there are no scripts and no external links.
///
/// ```
/// use flink_examples::report::{Report, write_report};
///
/// let dir = std::env::temp_dir().join(format!("flink-report-doc-{}", std::process::id()));
/// let report = Report { title: "empty run".into(), ..Default::default() };
/// let path = write_report(&dir, &report).unwrap();
/// assert!(std::fs::read_to_string(&path).unwrap().contains("empty run"));
/// std::fs::remove_dir_all(dir).unwrap();
/// ```
pub fn write_report(dir: &Path, report: &Report) -> std::io::Result<PathBuf> {
    let page = render_html(report)?;
    std::fs::create_dir_all(dir)?;
    let path = dir.join("index.html");
    std::fs::write(&path, page)?;
    Ok(path)
}
