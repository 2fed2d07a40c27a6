//! The five-stage pipeline and the same business logic as an operator chain, run on
//! the same deterministic workload under six scenarios with the same resources, side
//! by side; writes an HTML report with plots to `target/compare/index.html`.
//!
//! `cargo run --release -p flink-examples --bin compare -- [SCENARIO ...] [--records N] [--web-ui [ADDR]]`

use std::path::PathBuf;

use clap::Parser;
use clap::builder::PossibleValuesParser;
use flink_examples::compare::{Display, chosen, machine, run_scenario};
use flink_examples::report::{Report, write_report};
use flink_examples::variants::SCENARIOS;

/// Runs the five-stage pipeline and the equivalent operator chain on one workload,
/// scenario by scenario, prints a table per scenario and writes an HTML report.
#[derive(Parser)]
#[command(name = "compare")]
struct Args {
    /// Scenarios to run, in this order: healthy, slow-sink, flaky, burst, outage,
    /// hot-key (default: all).
    #[arg(value_parser = PossibleValuesParser::new(SCENARIOS))]
    scenarios: Vec<String>,
    /// Base number of records per scenario (healthy runs five times as many, burst a
    /// quarter, outage twice as many).
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    records: u64,
    /// Directory the HTML report is written to.
    #[arg(long, default_value = "target/compare")]
    out: PathBuf,
    /// Do not write the HTML report.
    #[arg(long)]
    no_report: bool,
    /// Serve each job's REST API and Prometheus metrics while it runs (on
    /// 127.0.0.1:8081 unless ADDR says otherwise; see docs/rest-api.md).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8081")]
    web_ui: Option<std::net::SocketAddr>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    flink_examples::init_logging();
    let display = Display {
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        web_ui: args.web_ui,
    };
    let mut report = Report {
        title: "flink-rs: the five-stage pipeline vs the same logic as an operator chain".into(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        generated: machine::now_utc(),
        machine: machine::describe(),
        scenarios: Vec::new(),
    };
    for s in chosen(&args.scenarios) {
        let scenario = run_scenario(&s, args.records, display)?;
        println!("\n## {}\n{}", scenario.title, scenario.table.to_text());
        report.scenarios.push(scenario);
    }
    if !args.no_report {
        let path = write_report(&args.out, &report)?;
        println!("\nreport: {} (open it in a browser)", path.display());
    }
    Ok(())
}
