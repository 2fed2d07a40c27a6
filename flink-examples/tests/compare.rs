//! `compare` on a small workload: both variants account for every record exactly, and
//! the HTML report shows the very figures the printed table shows.

use flink_examples::compare::{Display, chosen, run_scenario};
use flink_examples::report::{Report, render_html};

#[test]
fn both_variants_account_for_every_record_and_the_report_equals_the_table() {
    let scenarios = chosen(&["healthy".to_string(), "flaky".to_string()]);
    assert_eq!(scenarios.len(), 2);
    let mut report = Report {
        title: "test".into(),
        command: "compare healthy flaky --records 600".into(),
        generated: "now".into(),
        machine: "here".into(),
        scenarios: Vec::new(),
    };
    for s in &scenarios {
        let records = s.records(600);
        let scenario = run_scenario(s, 600, Display::default()).unwrap();
        let text = scenario.table.to_text();
        let accounting: Vec<&String> = scenario
            .table
            .notes
            .iter()
            .filter(|n| n.starts_with("accounting"))
            .collect();
        assert_eq!(accounting.len(), 2, "{text}");
        for line in accounting {
            assert!(line.contains(&format!(": exact: {records} = ")), "{line}");
        }
        let delivered = &scenario
            .table
            .rows
            .iter()
            .find(|r| r.label == "delivered")
            .unwrap()
            .values;
        let dead = &scenario
            .table
            .rows
            .iter()
            .find(|r| r.label == "dead letters")
            .unwrap()
            .values;
        for i in 0..2 {
            let (d, x): (u64, u64) = (delivered[i].parse().unwrap(), dead[i].parse().unwrap());
            assert_eq!(d + x, records, "{text}");
        }
        // Invalid orders (1 in 97) are dead letters in both variants.
        assert!(
            dead.iter()
                .all(|x| x.parse::<u64>().unwrap() >= records / 97)
        );
        report.scenarios.push(scenario);
    }
    let html = render_html(&report).unwrap();
    for s in &report.scenarios {
        for row in &s.table.rows {
            for value in &row.values {
                let cell = format!("<td>{}</td>", html_escape::encode_text(value));
                assert!(html.contains(&cell), "{cell} missing from the report");
            }
            let text = s.table.to_text();
            assert!(text.contains(&row.label));
        }
        assert_eq!(s.variants.len(), 2);
    }
}
