//! The report page: one self-contained HTML document with an embedded style sheet
//! and the plots as inline SVG. Every text that comes from the caller is escaped.

use std::fmt::Write as _;
use std::io;

use html_escape::{encode_double_quoted_attribute as attribute, encode_text as text};

use super::table::cell;
use super::{Report, ScenarioReport, Table, charts};

/// Plain, readable, printable; no web fonts, nothing fetched.
const STYLE: &str = "
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1600px;
       padding: 0 1rem; color: #222; line-height: 1.4; }
h1 { font-size: 1.6rem; margin-bottom: .3rem; }
h2 { font-size: 1.25rem; margin-top: 2.5rem; border-bottom: 1px solid #ccc; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; }
dl.meta dt { font-weight: 600; }
dl.meta dd { margin: 0; }
code { font-family: ui-monospace, monospace; background: #f3f3f3; padding: 0 .25rem; }
table.comparison { border-collapse: collapse; font-variant-numeric: tabular-nums; }
table.comparison th, table.comparison td { border: 1px solid #ddd; padding: .25rem .7rem; }
table.comparison thead th { background: #f3f3f3; }
table.comparison td { text-align: right; }
table.comparison tbody th { text-align: left; font-weight: normal; }
ul.notes { list-style: none; padding: 0; font-family: ui-monospace, monospace;
           font-size: .9rem; }
ul.notes li { white-space: pre-wrap; }
div.plots { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { margin: 0; }
figure svg { max-width: 100%; height: auto; border: 1px solid #eee; }
";

/// The whole page as HTML text: the title, the command, date and machine, then per
/// scenario its title, its table (the strings of [`Table::to_text`]) and its plots.
///
/// # Errors
/// When a plot cannot be drawn (plotters reports it); never for odd data such as
/// empty series.
pub fn render_html(report: &Report) -> io::Result<String> {
    let mut page = String::new();
    let title = text(&report.title);
    // Writing to a String cannot fail: the fmt::Results below are always Ok.
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>{title}</h1>\n<dl class=\"meta\">\n\
         <dt>command</dt><dd><code>{}</code></dd>\n\
         <dt>generated</dt><dd>{}</dd>\n\
         <dt>machine</dt><dd>{}</dd>\n</dl>\n",
        text(&report.command),
        text(&report.generated),
        text(&report.machine),
    );
    if report.scenarios.is_empty() {
        page.push_str("<p>No scenario was run.</p>\n");
    } else {
        page.push_str(&contents(report));
    }
    for scenario in &report.scenarios {
        page.push_str(&section(scenario)?);
    }
    page.push_str("</body>\n</html>\n");
    Ok(page)
}

/// Links to each scenario's section.
fn contents(report: &Report) -> String {
    let mut nav = String::from("<nav><ul>\n");
    for s in &report.scenarios {
        let _ = writeln!(
            nav,
            "<li><a href=\"#{}\">{}</a></li>",
            attribute(&anchor(&s.name)),
            text(heading(s))
        );
    }
    nav.push_str("</ul></nav>\n");
    nav
}

fn section(scenario: &ScenarioReport) -> io::Result<String> {
    let mut html = String::new();
    let _ = writeln!(
        html,
        "<section id=\"{}\">\n<h2>{}</h2>",
        attribute(&anchor(&scenario.name)),
        text(heading(scenario))
    );
    html.push_str(&table(&scenario.table));
    html.push_str("<div class=\"plots\">\n");
    let variants = &scenario.variants;
    let span = charts::time_span(variants);
    let mut plots = vec![
        ("throughput", charts::throughput(variants, span)?),
        ("in flight", charts::in_flight(variants, span)?),
        ("latency", charts::latency(variants)?),
    ];
    for variant in variants {
        plots.push(("pressure", charts::pressure(variant, span)?));
    }
    for (kind, svg) in plots {
        let _ = writeln!(
            html,
            "<figure class=\"plot\" data-plot=\"{kind}\">\n{svg}</figure>"
        );
    }
    html.push_str("</div>\n</section>\n");
    Ok(html)
}

/// The table as HTML, cell for cell the strings of [`Table::to_text`].
fn table(table: &Table) -> String {
    let width = table.width();
    let mut html = String::from("<table class=\"comparison\">\n<thead><tr><th></th>");
    for c in 0..width {
        let _ = write!(
            html,
            "<th scope=\"col\">{}</th>",
            text(cell(&table.columns, c))
        );
    }
    html.push_str("</tr></thead>\n<tbody>\n");
    for row in &table.rows {
        let _ = write!(html, "<tr><th scope=\"row\">{}</th>", text(&row.label));
        for c in 0..width {
            let _ = write!(html, "<td>{}</td>", text(cell(&row.values, c)));
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</tbody>\n</table>\n");
    if !table.notes.is_empty() {
        html.push_str("<ul class=\"notes\">\n");
        for note in &table.notes {
            let _ = writeln!(html, "<li>{}</li>", text(note));
        }
        html.push_str("</ul>\n");
    }
    html
}

/// The scenario's title, else its name, so no section or link is left blank.
fn heading(scenario: &ScenarioReport) -> &str {
    [&scenario.title, &scenario.name]
        .into_iter()
        .find(|t| !t.trim().is_empty())
        .map_or("(unnamed scenario)", String::as_str)
}

/// A fragment identifier from a scenario name: letters, digits and '-' only.
fn anchor(name: &str) -> String {
    let id: String = name
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { '-' })
        .collect();
    format!("scenario-{id}")
}
