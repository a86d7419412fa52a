//! `--html FILE`: one self-contained page of plots (inline SVG drawn with
//! `plotters`; no script, style sheet or font from anywhere else), with
//! the summary table above them.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use plotters::prelude::*;

use crate::report::Second;
use crate::viewers::ViewersReport;
use crate::Report;

const SIZE: (u32, u32) = (760, 300);

type Drawn = Result<(), Box<dyn std::error::Error>>;

/// A named line of (x, y) points in a colour.
type Line<'a> = (&'a str, Vec<(f64, f64)>, RGBColor);

/// One SVG drawn by `draw` (a plot that fails to draw stays blank).
fn svg(draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> Drawn) -> String {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        let drawn = root
            .fill(&WHITE)
            .map_err(Into::into)
            .and_then(|_| draw(&root))
            .and_then(|_| root.present().map_err(Into::into));
        if let Err(e) = drawn {
            tracing::debug!(error = %e, "loadtest: a plot did not draw");
        }
    }
    out
}

/// The page for a `run` report.
pub fn run_page(report: &Report, title: &str) -> String {
    let t = report.tally();
    let mut plots = vec![latency_curve(&[
        ("from intended send (corrected)", t.latency(true), &RED),
        ("from actual send", t.latency(false), &BLUE),
    ])];
    plots.extend(per_second(t.timeline()));
    page(title, &report.to_table(true), &plots)
}

/// The page for a `viewers` report.
pub fn viewers_page(report: &ViewersReport, title: &str) -> String {
    let t = &report.tally;
    let mut plots = vec![states(report)];
    plots.push(shares(report));
    plots.push(
        latency_curve(&[("segment download", &t.segment, &BLUE)])
            .replace("latency (ms)", "download (ms)"),
    );
    plots.extend(per_second(t.requests.timeline()));
    page(title, &report.to_table(), &plots)
}

fn page(title: &str, table: &str, plots: &[String]) -> String {
    let mut out =
        String::from("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
    let _ = write!(
        out,
        "<title>{}</title>\n<style>body{{font-family:sans-serif;margin:2em;max-width:800px}}\
         pre{{background:#f4f4f4;padding:1em;overflow-x:auto}}figure{{margin:1.5em 0}}</style>\n\
         </head><body>\n<h1>{}</h1>\n<pre>{}</pre>\n",
        escape(title),
        escape(title),
        escape(table)
    );
    for svg in plots {
        // Inline SVG needs no namespace declaration in HTML, and leaving it
        // out keeps every URL out of the file.
        let svg = svg
            .replace(" xmlns=\"http://www.w3.org/2000/svg\"", "")
            .replace(" xmlns:xlink=\"http://www.w3.org/1999/xlink\"", "");
        let _ = writeln!(out, "<figure>{svg}</figure>");
    }
    out.push_str("</body></html>\n");
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Latency against percentile, the tail stretched (x = -log10(1 - q):
/// 1 is p90, 2 p99, 3 p99.9).
fn latency_curve(series: &[(&str, &Histogram<u64>, &RGBColor)]) -> String {
    let steps = 200;
    let curve = |h: &Histogram<u64>| -> Vec<(f64, f64)> {
        if h.is_empty() {
            return Vec::new();
        }
        // Microseconds (run) or milliseconds (segments) alike: scale by
        // the histogram's own unit below.
        (0..=steps)
            .map(|i| {
                let x = 4.0 * i as f64 / steps as f64;
                let q = 1.0 - 10f64.powf(-x);
                (x, h.value_at_quantile(q) as f64)
            })
            .collect()
    };
    let unit = |h: &Histogram<u64>| if h.high() > 3_600_000 { 1000.0 } else { 1.0 };
    let lines: Vec<Line> = series
        .iter()
        .map(|(name, h, c)| {
            let u = unit(h);
            (
                *name,
                curve(h).into_iter().map(|(x, y)| (x, y / u)).collect(),
                **c,
            )
        })
        .collect();
    let top = lines
        .iter()
        .flat_map(|(_, p, _)| p.iter().map(|(_, y)| *y))
        .fold(1.0f64, f64::max)
        * 1.1;
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .caption("Latency by percentile", ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..4f64, 0f64..top)?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("latency (ms)")
            .x_labels(5)
            .x_label_formatter(&|x| match x.round() as i64 {
                0 => "0".into(),
                1 => "90".into(),
                2 => "99".into(),
                3 => "99.9".into(),
                _ => "99.99".into(),
            })
            .draw()?;
        for (name, points, color) in lines {
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()?;
        Ok(())
    })
}

/// Requests and errors per second, and throughput, over the run.
fn per_second(timeline: &[Second]) -> Vec<String> {
    if timeline.is_empty() {
        return Vec::new();
    }
    let requests: Vec<(f64, f64)> = timeline
        .iter()
        .enumerate()
        .map(|(i, s)| (i as f64, s.requests as f64))
        .collect();
    let errors: Vec<(f64, f64)> = timeline
        .iter()
        .enumerate()
        .map(|(i, s)| (i as f64, s.errors as f64))
        .collect();
    let mbps: Vec<(f64, f64)> = timeline
        .iter()
        .enumerate()
        .map(|(i, s)| (i as f64, s.bytes as f64 * 8.0 / 1e6))
        .collect();
    vec![
        over_time(
            "Requests and errors per second",
            "per second",
            &[("requests", requests, BLUE), ("errors", errors, RED)],
        ),
        over_time("Throughput", "Mbit/s", &[("received", mbps, GREEN)]),
    ]
}

/// Viewers starting, playing and stalled over the run.
fn states(report: &ViewersReport) -> String {
    let t = &report.tally.timeline;
    let col = |f: fn(&crate::viewers::report::States) -> f64| -> Vec<(f64, f64)> {
        t.iter()
            .enumerate()
            .map(|(i, s)| (i as f64, f(s)))
            .collect()
    };
    over_time(
        "Viewers",
        "viewers",
        &[
            ("playing", col(|s| s.playing), GREEN),
            ("stalled", col(|s| s.stalled), RED),
            ("starting", col(|s| s.starting), BLUE),
        ],
    )
}

fn over_time(caption: &str, unit: &str, lines: &[Line]) -> String {
    let right = lines
        .iter()
        .flat_map(|(_, p, _)| p.iter().map(|(x, _)| *x))
        .fold(1.0f64, f64::max);
    let top = lines
        .iter()
        .flat_map(|(_, p, _)| p.iter().map(|(_, y)| *y))
        .fold(1.0f64, f64::max)
        * 1.1;
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .caption(caption, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..right, 0f64..top)?;
        chart
            .configure_mesh()
            .x_desc("seconds into the run")
            .y_desc(unit)
            .draw()?;
        for (name, points, color) in lines {
            let color = *color;
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
        Ok(())
    })
}

/// Each rendition's share of the media fetched, as bars.
fn shares(report: &ViewersReport) -> String {
    let shares: Vec<(String, f64)> = report.shares().into_iter().collect();
    svg(|root| {
        let n = shares.len().max(1);
        let mut chart = ChartBuilder::on(root)
            .caption("Rendition share of media fetched", ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..n as f64, 0f64..100f64)?;
        let names: Vec<String> = shares.iter().map(|(n, _)| n.clone()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n * 2 + 1)
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                if (x - i as f64 - 0.5).abs() < 0.26 {
                    names.get(i).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc("% of media seconds")
            .draw()?;
        chart.draw_series(shares.iter().enumerate().map(|(i, (_, s))| {
            Rectangle::new(
                [(i as f64 + 0.15, 0.0), (i as f64 + 0.85, s * 100.0)],
                BLUE.mix(0.6).filled(),
            )
        }))?;
        Ok(())
    })
}
