//! The report's plots, drawn with `plotters` into SVG strings: throughput and
//! records in flight over time, latency quantiles, and pressure over time.
//!
//! Every plot has the same layout: the chart on the left, its legend on a panel of
//! its own on the right (so a legend never hides a line), axis descriptions with
//! units, and a short message in the middle when there is nothing to draw.

use std::io;
use std::time::Duration;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::VariantSeries;

/// Size of every plot, in SVG pixels (scaled down by the page's CSS on narrow screens).
const SIZE: (u32, u32) = (760, 320);
/// Width of the legend panel on the right of each plot.
const LEGEND_WIDTH: u32 = 210;
/// Legend names are wrapped to lines of this many characters, to fit the panel...
const LEGEND_CHARS: usize = 24;
/// ... and cut after this many lines.
const LEGEND_LINES: usize = 3;
const FONT: &str = "sans-serif";
const LIGHT_GRID: RGBColor = RGBColor(238, 238, 238);

/// Distinct, colour-blind-friendly colours (Tableau 10), one per variant or series,
/// reused in order when there are more.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The colour of the `i`-th variant or series, the same in every plot.
pub(super) fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// One named line of a time plot: (seconds since job start, value).
struct Line {
    name: String,
    points: Vec<(f64, f64)>,
}

/// What a time plot shows: its caption, the axes, and the lines.
struct TimePlot<'a> {
    caption: &'a str,
    /// The end of the time axis, in seconds: the same for every plot of a scenario,
    /// so that plots of one scenario line up.
    x_max: f64,
    y_desc: &'a str,
    /// A fixed y range (pressure), or `None` to fit the data.
    y_max: Option<f64>,
    lines: Vec<Line>,
    /// Shown in the middle when no line has a point.
    empty: &'a str,
}

/// The time all plots of a scenario cover, in seconds: up to the last sample or
/// pressure point of any variant.
pub(super) fn time_span(variants: &[VariantSeries]) -> f64 {
    let samples = variants.iter().flat_map(|v| v.samples.iter().map(|s| s.at));
    let pressure = variants
        .iter()
        .flat_map(|v| v.pressure.iter().flat_map(|p| p.points.iter().map(|p| p.0)));
    samples
        .chain(pressure)
        .max()
        .unwrap_or_default()
        .as_secs_f64()
}

/// Records/s over time, one line per variant.
pub(super) fn throughput(variants: &[VariantSeries], x_max: f64) -> io::Result<String> {
    time_plot(TimePlot {
        caption: "Throughput",
        x_max,
        y_desc: "throughput (records/s)",
        y_max: None,
        lines: variants
            .iter()
            .map(|v| Line {
                name: v.name.clone(),
                points: seconds(v.throughput()),
            })
            .collect(),
        empty: "fewer than two samples: no throughput to show",
    })
}

/// Records in flight over time, one line per variant.
pub(super) fn in_flight(variants: &[VariantSeries], x_max: f64) -> io::Result<String> {
    time_plot(TimePlot {
        caption: "Records in flight",
        x_max,
        y_desc: "records in flight",
        y_max: None,
        lines: variants
            .iter()
            .map(|v| Line {
                name: v.name.clone(),
                points: v
                    .samples
                    .iter()
                    .map(|s| (s.at.as_secs_f64(), s.in_flight as f64))
                    .collect(),
            })
            .collect(),
        empty: "no samples",
    })
}

/// One variant's pressure over time, one line per stage or task, on 0..=1.
pub(super) fn pressure(variant: &VariantSeries, x_max: f64) -> io::Result<String> {
    let caption = format!("Pressure: {}", variant.name);
    time_plot(TimePlot {
        caption: &caption,
        x_max,
        y_desc: "pressure (0 = none, 1 = always waiting)",
        y_max: Some(1.0),
        lines: variant
            .pressure
            .iter()
            .map(|p| Line {
                name: p.name.clone(),
                // Out-of-range values are clamped so they stay visible on the axis.
                points: seconds(p.points.clone())
                    .into_iter()
                    .map(|(t, v)| (t, v.clamp(0.0, 1.0)))
                    .collect(),
            })
            .collect(),
        empty: "no pressure reported",
    })
}

/// Latency per quantile: one group of bars per quantile, one bar per variant, each
/// bar labelled with its value in ms.
pub(super) fn latency(variants: &[VariantSeries]) -> io::Result<String> {
    let quantiles = quantiles(variants);
    let bars = bars(variants, &quantiles);
    let y_max = bars.iter().map(|b| b.2).fold(0.0, f64::max);
    let names: Vec<String> = variants.iter().map(|v| v.name.clone()).collect();
    render(|root| {
        let (plot, legend_area) = root.split_horizontally(SIZE.0 - LEGEND_WIDTH);
        legend(&legend_area, &names)?;
        let mut chart = ChartBuilder::on(&plot)
            .caption("Latency quantiles", (FONT, 18))
            .margin(10)
            .x_label_area_size(45)
            .y_label_area_size(65)
            .build_cartesian_2d(0.0..quantiles.len().max(1) as f64, 0.0..headroom(y_max))
            .map_err(failed)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .x_desc("quantile")
            .y_desc("latency (ms)")
            .y_label_formatter(&|v| compact(*v))
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 15))
            .light_line_style(LIGHT_GRID)
            .max_light_lines(1)
            .draw()
            .map_err(failed)?;
        let width = 0.7 / variants.len().max(1) as f64;
        let left = |group: usize, v: usize| group as f64 + 0.15 + v as f64 * width;
        chart
            .draw_series(bars.iter().map(|&(group, v, ms)| {
                let x = left(group, v);
                Rectangle::new([(x, 0.0), (x + width, ms)], color(v).filled())
            }))
            .map_err(failed)?;
        let above = TextStyle::from((FONT, 13)).pos(Pos::new(HPos::Center, VPos::Bottom));
        chart
            .draw_series(bars.iter().map(|&(group, v, ms)| {
                let x = left(group, v) + width / 2.0;
                Text::new(milliseconds(ms), (x, ms), above.clone())
            }))
            .map_err(failed)?;
        // Quantile names under their groups, placed by hand: the x axis is numeric.
        let below = TextStyle::from((FONT, 15)).pos(Pos::new(HPos::Center, VPos::Top));
        for (group, q) in quantiles.iter().enumerate() {
            let at = chart.backend_coord(&(group as f64 + 0.5, 0.0));
            root.draw_text(&quantile_name(*q), &below, (at.0, at.1 + 6))
                .map_err(failed)?;
        }
        if bars.is_empty() {
            empty_message(root, "no latency measured")?;
        }
        Ok(())
    })
}

/// The latency bars: (quantile's group, variant, latency in ms).
fn bars(variants: &[VariantSeries], quantiles: &[f64]) -> Vec<(usize, usize, f64)> {
    variants
        .iter()
        .enumerate()
        .flat_map(|(v, series)| {
            series.latency_quantiles.iter().filter_map(move |(q, d)| {
                let group = quantiles.iter().position(|k| k == q)?;
                Some((group, v, d.as_secs_f64() * 1e3))
            })
        })
        .collect()
}

fn time_plot(plot: TimePlot) -> io::Result<String> {
    let points = || plot.lines.iter().flat_map(|l| l.points.iter());
    let x_max = points().map(|p| p.0).fold(plot.x_max, f64::max);
    let y_max = plot
        .y_max
        .unwrap_or_else(|| headroom(points().map(|p| p.1).fold(0.0, f64::max)));
    let names: Vec<String> = plot.lines.iter().map(|l| l.name.clone()).collect();
    render(|root| {
        let (area, legend_area) = root.split_horizontally(SIZE.0 - LEGEND_WIDTH);
        legend(&legend_area, &names)?;
        let mut chart = ChartBuilder::on(&area)
            .caption(plot.caption, (FONT, 18))
            .margin(10)
            .x_label_area_size(45)
            .y_label_area_size(65)
            .build_cartesian_2d(0.0..positive(x_max), 0.0..positive(y_max))
            .map_err(failed)?;
        chart
            .configure_mesh()
            .x_desc("time since job start (s)")
            .y_desc(plot.y_desc)
            .y_label_formatter(&|v| compact(*v))
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 15))
            .light_line_style(LIGHT_GRID)
            .max_light_lines(1)
            .draw()
            .map_err(failed)?;
        for (i, line) in plot.lines.iter().enumerate() {
            let style = color(i).stroke_width(2);
            chart
                .draw_series(LineSeries::new(line.points.iter().copied(), style))
                .map_err(failed)?;
            // A single point draws no line: mark it so it is not lost.
            if let [only] = line.points[..] {
                chart
                    .draw_series([Circle::new(only, 4, color(i).filled())])
                    .map_err(failed)?;
            }
        }
        if points().next().is_none() {
            empty_message(root, plot.empty)?;
        }
        Ok(())
    })
}

/// Draws into a fresh white SVG of [`SIZE`] and returns its text.
fn render(
    draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> io::Result<()>,
) -> io::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(failed)?;
        draw(&root)?;
        root.present().map_err(failed)?;
    }
    Ok(svg)
}

/// The legend panel: a short line in each entry's colour beside its name, wrapped
/// to the panel's width. Entries that do not fit below each other are counted in a
/// last "+N more" line rather than drawn over the edge.
fn legend(area: &DrawingArea<SVGBackend, Shift>, names: &[String]) -> io::Result<()> {
    const LINE: i32 = 17;
    let style = TextStyle::from((FONT, 15)).pos(Pos::new(HPos::Left, VPos::Center));
    let mut y = 50;
    for (i, name) in names.iter().enumerate() {
        let lines = wrap(name);
        let height = LINE * lines.len().max(1) as i32;
        if y + height > SIZE.1 as i32 - 2 * LINE {
            let more = format!("+{} more", names.len() - i);
            return area.draw_text(&more, &style, (34, y)).map_err(failed);
        }
        area.draw(&PathElement::new(
            [(4, y), (28, y)],
            color(i).stroke_width(3),
        ))
        .map_err(failed)?;
        for (l, line) in lines.iter().enumerate() {
            area.draw_text(line, &style, (34, y + LINE * l as i32))
                .map_err(failed)?;
        }
        y += height + 7;
    }
    Ok(())
}

fn empty_message(root: &DrawingArea<SVGBackend, Shift>, text: &str) -> io::Result<()> {
    let style = TextStyle::from((FONT, 15))
        .color(&RGBColor(110, 110, 110))
        .pos(Pos::new(HPos::Center, VPos::Center));
    let centre = ((SIZE.0 - LEGEND_WIDTH) as i32 / 2, SIZE.1 as i32 / 2);
    root.draw_text(text, &style, centre).map_err(failed)
}

/// Every quantile any variant reports, in increasing order, each once.
fn quantiles(variants: &[VariantSeries]) -> Vec<f64> {
    let mut all: Vec<f64> = variants
        .iter()
        .flat_map(|v| v.latency_quantiles.iter().map(|(q, _)| *q))
        .filter(|q| q.is_finite())
        .collect();
    all.sort_by(f64::total_cmp);
    all.dedup();
    all
}

fn seconds(points: Vec<(Duration, f64)>) -> Vec<(f64, f64)> {
    points
        .into_iter()
        .filter(|(_, v)| v.is_finite())
        .map(|(t, v)| (t.as_secs_f64(), v))
        .collect()
}

/// Room above the highest value for the bar labels; a range of 1 when all is zero.
fn headroom(max: f64) -> f64 {
    positive(max * 1.12)
}

/// An axis end plotters can draw: a finite number above zero.
fn positive(max: f64) -> f64 {
    if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    }
}

/// "0.5" as "p50", "0.999" as "p99.9".
pub(super) fn quantile_name(q: f64) -> String {
    let percent = format!("{:.3}", q * 100.0);
    format!("p{}", percent.trim_end_matches('0').trim_end_matches('.'))
}

/// Latency in ms with three significant digits: "0.412", "4.12", "41.2", "412".
fn milliseconds(ms: f64) -> String {
    match ms {
        m if m < 1.0 => format!("{m:.3}"),
        m if m < 10.0 => format!("{m:.2}"),
        m if m < 100.0 => format!("{m:.1}"),
        m => format!("{m:.0}"),
    }
}

/// Axis labels: "950", "12.5k", "1.2M".
fn compact(v: f64) -> String {
    let trim = |s: String| s.trim_end_matches('0').trim_end_matches('.').to_string();
    match v.abs() {
        a if a >= 1e6 => format!("{}M", trim(format!("{:.2}", v / 1e6))),
        a if a >= 1e3 => format!("{}k", trim(format!("{:.1}", v / 1e3))),
        a if a >= 10.0 || a == 0.0 => format!("{v:.0}"),
        _ => trim(format!("{v:.2}")),
    }
}

/// A legend name as at most [`LEGEND_LINES`] lines of at most [`LEGEND_CHARS`]
/// characters, broken at spaces (a longer word is split); a name that needs more
/// lines ends in "…" on the last one.
fn wrap(name: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line: Vec<char> = Vec::new();
    for word in name.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        while !word.is_empty() {
            let space = usize::from(!line.is_empty());
            if line.len() + space + word.len() <= LEGEND_CHARS {
                line.extend(" ".chars().take(space).chain(word.drain(..)));
            } else if !line.is_empty() {
                lines.push(line.drain(..).collect());
            } else {
                lines.push(word.drain(..LEGEND_CHARS).collect());
            }
        }
    }
    if !line.is_empty() {
        lines.push(line.into_iter().collect());
    }
    if lines.len() > LEGEND_LINES {
        lines.truncate(LEGEND_LINES);
        let last = &mut lines[LEGEND_LINES - 1];
        *last = last.chars().take(LEGEND_CHARS - 1).chain(['…']).collect();
    }
    lines
}

fn failed(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("drawing a plot: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_named_as_percentiles() {
        let names: Vec<_> = [0.5, 0.9, 0.99, 0.999, 1.0]
            .into_iter()
            .map(quantile_name)
            .collect();
        assert_eq!(names, ["p50", "p90", "p99", "p99.9", "p100"]);
    }

    #[test]
    fn axis_labels_are_compact() {
        let labels: Vec<_> = [0.0, 0.25, 950.0, 12_500.0, 74_000.0, 1_200_000.0]
            .into_iter()
            .map(compact)
            .collect();
        assert_eq!(labels, ["0", "0.25", "950", "12.5k", "74k", "1.2M"]);
    }

    #[test]
    fn long_legend_names_are_wrapped_at_spaces_and_cut_after_the_last_line() {
        let task = "Source: orders -> Filter -> Async Function -> Sink: Store (1/2)";
        assert_eq!(
            wrap(task),
            [
                "Source: orders -> Filter",
                "-> Async Function ->",
                "Sink: Store (1/2)"
            ]
        );
        assert_eq!(wrap("FinalSink"), ["FinalSink"]);
        assert_eq!(
            wrap(&"x".repeat(30)),
            ["x".repeat(LEGEND_CHARS), "x".repeat(30 - LEGEND_CHARS)]
        );
        let endless = wrap(&"word ".repeat(40));
        assert_eq!(endless.len(), LEGEND_LINES);
        assert!(endless.iter().all(|l| l.chars().count() <= LEGEND_CHARS));
        assert!(endless[LEGEND_LINES - 1].ends_with('…'));
        assert!(wrap("  ").is_empty());
    }

    #[test]
    fn an_empty_or_flat_range_still_has_a_drawable_axis() {
        assert_eq!(positive(0.0), 1.0);
        assert_eq!(positive(f64::NAN), 1.0);
        assert!((headroom(100.0) - 112.0).abs() < 1e-9);
    }
}
