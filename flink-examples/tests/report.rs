//! The report `compare` writes: the table in the page is the printed table, one plot
//! per expected chart, caller text escaped, and odd data (empty, single, zero) still
//! gives a valid page.

use std::time::Duration;

use flink_examples::report::{
    PressureSeries, Report, Sample, ScenarioReport, Table, VariantSeries, render_html, write_report,
};

const FIVE_STAGES: [&str; 5] = ["Gateway", "KeyGen", "Ingress", "Egress", "FinalSink"];

/// A run that looks like a real one: a ramp-up, a steady rate with some noise, a
/// tail; `rate` records/s for `seconds`, sampled every 200 ms.
fn series(name: &str, rate: f64, seconds: f64, peak: u64, stages: &[&str]) -> VariantSeries {
    let steps = (seconds / 0.2) as u64;
    let mut delivered = 0.0;
    let samples: Vec<Sample> = (0..=steps)
        .map(|i| {
            let ramp = (i as f64 / 3.0).min(1.0);
            let wobble = 1.0 + 0.08 * ((i as f64) * 1.7).sin();
            if i > 0 {
                delivered += rate * 0.2 * ramp * wobble;
            }
            Sample {
                at: Duration::from_millis(200 * i),
                delivered: delivered as u64,
                in_flight: (peak as f64 * ramp * (0.8 + 0.2 * wobble)) as u64,
            }
        })
        .collect();
    let pressure = stages
        .iter()
        .enumerate()
        .map(|(s, stage)| PressureSeries {
            name: stage.to_string(),
            points: (0..=steps)
                .map(|i| {
                    let level = 0.05 + 0.15 * s as f64 + 0.1 * ((i + s as u64) as f64).sin();
                    (Duration::from_millis(200 * i), level.clamp(0.0, 1.0))
                })
                .collect(),
        })
        .collect();
    VariantSeries {
        name: name.into(),
        samples,
        latency_quantiles: vec![
            (0.5, Duration::from_micros(1_400)),
            (0.9, Duration::from_micros(2_900)),
            (0.99, Duration::from_micros(6_300)),
            (0.999, Duration::from_micros(18_700)),
        ]
        .into_iter()
        .map(|(q, d)| (q, d * (1 + name.len() as u32 % 3)))
        .collect(),
        pressure,
    }
}

fn scenario(name: &str, title: &str, rates: (f64, f64)) -> ScenarioReport {
    let mut table = Table::new(["five-stage", "operator chain"]);
    table
        .row(
            "records/s",
            [format!("{:.0}", rates.0), format!("{:.0}", rates.1)],
        )
        .row("p50 latency (ms)", ["1.40", "2.80"])
        .row("p99 latency (ms)", ["6.30", "12.60"])
        .row("in flight at peak", ["412", "398"])
        .row("retries", ["0", "0"])
        .row(
            "configured",
            ["rate limit, 100 calls, 100 acks", "100 calls, 100 acks"],
        )
        .note("five-stage: exact: 100000 = 100000 + 0 dead + 0 errors")
        .note("operator chain: exact: 100000 = 100000 + 0 dead + 0 errors")
        .note("gateway rate limit: five-stage only");
    ScenarioReport {
        name: name.into(),
        title: title.into(),
        table,
        variants: vec![
            series("five-stage", rates.0, 3.0, 412, &FIVE_STAGES),
            series(
                "operator chain",
                rates.1,
                3.2,
                398,
                &["Source: orders -> Filter -> Async Function -> Sink (1/1)"],
            ),
        ],
    }
}

fn example() -> Report {
    Report {
        title: "flink-rs: five-stage pipeline vs operator chain".into(),
        command: "compare --records 100000 healthy slow-sink".into(),
        generated: "2026-11-30 18:40 UTC".into(),
        machine: "2 cores, 24 GiB, Linux 6.1".into(),
        scenarios: vec![
            scenario(
                "healthy",
                "healthy: 0.5-1.5 ms service, 0.1 ms acks",
                (74_120.0, 70_503.0),
            ),
            scenario(
                "slow-sink",
                "slow sink: 5 ms acks, 100 in flight",
                (19_480.0, 19_310.0),
            ),
        ],
    }
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// How plotters writes a text element's content into the SVG.
fn svg_text(content: &str) -> String {
    format!(">\n{content}\n</text>")
}

fn escaped(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[test]
fn every_table_cell_is_in_the_printed_text_and_in_the_html_table() {
    let report = example();
    let html = render_html(&report).unwrap();
    for scenario in &report.scenarios {
        let text = scenario.table.to_text();
        let table = &scenario.table;
        for column in &table.columns {
            assert!(text.contains(column.as_str()), "{column:?} not printed");
            let th = format!("<th scope=\"col\">{}</th>", escaped(column));
            assert!(html.contains(&th), "{th} not in the page");
        }
        for row in &table.rows {
            assert!(
                text.contains(row.label.as_str()),
                "{:?} not printed",
                row.label
            );
            let th = format!("<th scope=\"row\">{}</th>", escaped(&row.label));
            assert!(html.contains(&th), "{th} not in the page");
            // The row's cells, in order, exactly as printed.
            let cells: String = row
                .values
                .iter()
                .map(|v| format!("<td>{}</td>", escaped(v)))
                .collect();
            assert!(html.contains(&format!("{th}{cells}</tr>")), "row {th}");
            for value in &row.values {
                assert!(text.contains(value.as_str()), "{value:?} not printed");
            }
        }
        for note in &table.notes {
            assert!(text.contains(note.as_str()), "{note:?} not printed");
            assert!(html.contains(&format!("<li>{}</li>", escaped(note))));
        }
    }
}

#[test]
fn the_page_has_one_svg_per_expected_plot() {
    let report = example();
    let html = render_html(&report).unwrap();
    // Per scenario: throughput, in flight, latency, and one pressure plot per variant.
    let expected: usize = report.scenarios.iter().map(|s| 3 + s.variants.len()).sum();
    assert_eq!(expected, 10);
    assert_eq!(count(&html, "<svg "), expected);
    assert_eq!(count(&html, "</svg>"), expected);
    assert_eq!(count(&html, "data-plot=\"pressure\""), 4);
    for kind in ["throughput", "in flight", "latency"] {
        assert_eq!(count(&html, &format!("data-plot=\"{kind}\"")), 2, "{kind}");
    }
    // Axis descriptions with units and a legend naming each variant.
    for label in [
        "throughput (records/s)",
        "records in flight",
        "latency (ms)",
        "time since job start (s)",
        "p99.9",
    ] {
        assert!(html.contains(label), "{label} missing");
    }
    // Legends: each variant in the throughput, in-flight and latency plots of both
    // scenarios; each stage in the five-stage pressure plots.
    assert_eq!(count(&html, &svg_text("five-stage")), 6);
    assert_eq!(count(&html, &svg_text("operator chain")), 6);
    for stage in FIVE_STAGES {
        assert_eq!(count(&html, &svg_text(stage)), 2, "{stage} legend");
    }
}

#[test]
fn the_page_needs_nothing_from_outside() {
    let html = render_html(&example()).unwrap();
    assert!(!html.contains("<script"));
    assert!(!html.contains("<link"));
    assert!(!html.contains("src="));
    assert!(!html.contains("http://") || count(&html, "http://") == count(&html, "xmlns="));
    assert!(!html.contains("https://"));
}

#[test]
fn caller_text_is_escaped_everywhere() {
    let mut report = example();
    report.title = "a <b> & \"c\"".into();
    report.command = "compare <script>alert(1)</script>".into();
    report.machine = "</dd>".into();
    let scenario = &mut report.scenarios[0];
    scenario.name = "x\" onclick=\"y".into();
    scenario.title = "<i>slow</i>".into();
    scenario.table.columns[0] = "<five>".into();
    scenario.table.row("p99 < 5 ms", ["<1", "a & b"]);
    scenario.table.note("MISMATCH:\n<report>");
    scenario.variants[0].name = "<variant>".into();
    scenario.variants[0].pressure[0].name = "<stage>".into();
    let html = render_html(&report).unwrap();
    for raw in [
        "<b>",
        "<script>",
        "</dd></dd>",
        "onclick=\"",
        "<i>",
        "<five>",
        "<1",
        "<report>",
        "<variant>",
        "<stage>",
    ] {
        assert!(!html.contains(raw), "{raw} left unescaped");
    }
    assert!(html.contains("<title>a &lt;b&gt; &amp; \"c\"</title>"));
    assert!(html.contains("<td>&lt;1</td><td>a &amp; b</td>"));
    assert!(html.contains("&lt;variant&gt;"));
}

#[test]
fn empty_single_and_zero_series_give_a_valid_file() {
    let flat = |name: &str| VariantSeries {
        name: name.into(),
        samples: vec![
            Sample::default(),
            Sample::default(),
            Sample {
                at: Duration::from_millis(100),
                ..Sample::default()
            },
        ],
        latency_quantiles: vec![(0.5, Duration::ZERO), (0.99, Duration::ZERO)],
        pressure: vec![PressureSeries {
            name: "all zero".into(),
            points: vec![(Duration::ZERO, 0.0), (Duration::from_millis(100), 0.0)],
        }],
    };
    let single = VariantSeries {
        name: "one sample".into(),
        samples: vec![Sample {
            at: Duration::from_millis(5),
            delivered: 7,
            in_flight: 3,
        }],
        latency_quantiles: vec![(0.9, Duration::from_millis(3))],
        pressure: vec![PressureSeries {
            name: "odd values".into(),
            points: vec![(Duration::ZERO, f64::NAN), (Duration::ZERO, 7.0)],
        }],
    };
    let nothing = VariantSeries {
        name: "nothing".into(),
        ..VariantSeries::default()
    };
    let crowded = VariantSeries {
        name: "crowded".into(),
        pressure: (0..20)
            .map(|i| PressureSeries {
                name: format!("task {i}"),
                points: vec![(Duration::from_millis(i), 0.5)],
            })
            .collect(),
        ..VariantSeries::default()
    };
    let odd = ScenarioReport {
        name: "odd".into(),
        title: "odd data".into(),
        table: Table::new(["zero", "one sample", "nothing", "crowded"]),
        variants: vec![flat("zero"), single, nothing, crowded],
    };
    let no_variants = ScenarioReport {
        name: "none".into(),
        ..ScenarioReport::default()
    };
    let report = Report {
        title: "edge cases".into(),
        scenarios: vec![odd, no_variants],
        ..Report::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let path = write_report(&dir.path().join("nested/compare"), &report).unwrap();
    assert_eq!(path, dir.path().join("nested/compare/index.html"));
    let html = std::fs::read_to_string(&path).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.trim_end().ends_with("</html>"));
    assert_eq!(count(&html, "<svg "), (3 + 4) + 3);
    assert_eq!(count(&html, "<svg "), count(&html, "</svg>"));
    assert!(html.contains("no pressure reported"));
    assert!(html.contains("no latency measured"));
    // A scenario without a title is headed by its name.
    assert!(html.contains("<h2>none</h2>"));
    // A legend with more entries than fit says how many it left out.
    assert_eq!(count(&html, &svg_text("+10 more")), 1);
    assert!(!html.contains("NaN"), "a NaN reached the SVG");

    let empty = write_report(dir.path(), &Report::default()).unwrap();
    let html = std::fs::read_to_string(empty).unwrap();
    assert!(html.contains("No scenario was run."));
}

#[test]
fn throughput_and_peak_come_from_the_samples() {
    let at = Duration::from_millis;
    let series = VariantSeries {
        samples: vec![
            Sample {
                at: at(0),
                delivered: 0,
                in_flight: 10,
            },
            Sample {
                at: at(200),
                delivered: 1_000,
                in_flight: 90,
            },
            // Same time again: skipped, no division by zero.
            Sample {
                at: at(200),
                delivered: 1_000,
                in_flight: 50,
            },
            Sample {
                at: at(700),
                delivered: 2_000,
                in_flight: 0,
            },
        ],
        ..VariantSeries::default()
    };
    assert_eq!(
        series.throughput(),
        vec![(at(200), 5_000.0), (at(700), 2_000.0)]
    );
    assert_eq!(series.peak_in_flight(), 90);
    assert_eq!(VariantSeries::default().peak_in_flight(), 0);
    assert!(VariantSeries::default().throughput().is_empty());
}

/// Writes the example page where a person can open it (and convert a plot to PNG to
/// look at it): `FLINK_REPORT_EXAMPLE_DIR=/tmp/x cargo test -p flink-examples --test
/// report`. Without the variable it writes to a temporary directory and checks it.
#[test]
fn an_example_report_renders() {
    let temp = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("FLINK_REPORT_EXAMPLE_DIR")
        .map_or_else(|| temp.path().to_path_buf(), Into::into);
    let path = write_report(&dir, &example()).unwrap();
    let html = std::fs::read_to_string(path).unwrap();
    assert!(html.contains("flink-rs: five-stage pipeline vs operator chain"));
}
