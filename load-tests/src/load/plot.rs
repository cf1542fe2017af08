//! The pictures of a run, as SVG (no system fonts needed; text is left to the viewer).
//!
//! Comes last, with [`report`](super::report), and draws only from a finished report, so the
//! same JSON always gives the same picture.
//! - reference run: latency p50/p99 per second (log scale), and requests/s over time with the
//!   backlog (accepted - processed) on a second axis, the six stages shaded and labelled and
//!   every check marked;
//! - throughput run: accepted req/s and p99 per step, and processed payments/s over time;
//! - drain run: accepted, processed and backlog since the outage began (outage shaded), and a
//!   close-up of the drain after the recovery with the 50/90/99/100 % marks.

use std::path::Path;

use anyhow::Context as _;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::drain::DrainReport;
use super::rinha::RinhaReport;
use super::throughput::ThroughputReport;

const SIZE: (u32, u32) = (1200, 900);
const FONT: &str = "sans-serif";
const STAGE_COLORS: [RGBColor; 6] = [
    RGBColor(200, 230, 201),
    RGBColor(255, 243, 191),
    RGBColor(255, 214, 170),
    RGBColor(255, 183, 178),
    RGBColor(207, 226, 255),
    RGBColor(225, 210, 240),
];
const P50: RGBColor = RGBColor(31, 119, 180);
const P99: RGBColor = RGBColor(214, 39, 40);
const ACCEPTED: RGBColor = RGBColor(44, 160, 44);
const REQUESTS: RGBColor = RGBColor(90, 90, 90);
const BACKLOG: RGBColor = RGBColor(148, 103, 189);
const OUTAGE: RGBColor = RGBColor(255, 183, 178);

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

fn prepare(path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(())
}

/// A stage's span on the time axis and its label.
struct Band {
    index: usize,
    from: f64,
    to: f64,
    label: String,
    color: RGBColor,
}

fn stage_bands(r: &RinhaReport, x_max: f64) -> Vec<Band> {
    r.stages
        .iter()
        .enumerate()
        .map(|(i, s)| Band {
            index: s.index,
            from: s.planned_s,
            to: r
                .stages
                .get(i + 1)
                .map_or(r.settings.duration_s.max(s.planned_s), |n| n.planned_s)
                .min(x_max),
            label: format!("S{} {}", s.index, s.label),
            color: STAGE_COLORS[s.index % STAGE_COLORS.len()],
        })
        .collect()
}

/// The reference run: `<out>/<name>.svg`.
pub fn rinha_svg(path: &Path, r: &RinhaReport) -> anyhow::Result<()> {
    prepare(path)?;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!(
        "{}: score {}{}, p99 {} ms, {} inconsistencies",
        r.name,
        r.score.score,
        if r.score.disqualified {
            " (DISQUALIFIED)"
        } else {
            ""
        },
        r.score.p99_ms,
        r.inconsistencies
    );
    let root = root.titled(&title, (FONT, 22))?;
    let (key, body) = root.split_vertically(44);
    let panels = body.split_evenly((2, 1));
    let x_max = (r.timeline.len() as f64)
        .max(r.settings.duration_s)
        .max(1.0);
    let bands = stage_bands(r, x_max);
    stage_key(&key, &bands)?;
    rinha_latency(&panels[0], r, &bands, x_max)?;
    rinha_rate(&panels[1], r, &bands, x_max)?;
    root.present()?;
    Ok(())
}

/// The stages' colours and conditions, three to a row above the charts.
fn stage_key(area: &Area<'_>, bands: &[Band]) -> anyhow::Result<()> {
    let style = TextStyle::from((FONT, 12).into_font());
    let (width, _) = area.dim_in_pixel();
    let column = i32::try_from(width / 3).unwrap_or(400);
    for (i, b) in bands.iter().enumerate() {
        let i = i32::try_from(i).unwrap_or(0);
        let (x, y) = (70 + (i % 3) * column, 4 + (i / 3) * 20);
        area.draw(&Rectangle::new(
            [(x, y), (x + 14, y + 14)],
            b.color.filled(),
        ))?;
        area.draw(&Rectangle::new([(x, y), (x + 14, y + 14)], BLACK.mix(0.4)))?;
        area.draw_text(&b.label, &style, (x + 20, y + 1))?;
    }
    Ok(())
}

fn rinha_latency(
    area: &Area<'_>,
    r: &RinhaReport,
    bands: &[Band],
    x_max: f64,
) -> anyhow::Result<()> {
    let worst = r.timeline.iter().map(|p| p.p99_ms).fold(1.0f64, f64::max);
    let (y_min, y_max) = (0.05f64, (worst * 2.0).max(20.0));
    let mut chart = ChartBuilder::on(area)
        .caption("latency per second (ms, log scale)", (FONT, 16))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(60)
        // As wide as the backlog axis below, so both panels share their time axis.
        .right_y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, (y_min..y_max).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc("ms")
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    chart.draw_series(
        bands
            .iter()
            .map(|b| Rectangle::new([(b.from, y_min), (b.to, y_max)], b.color.mix(0.45).filled())),
    )?;
    chart.draw_series(bands.iter().map(|b| {
        Text::new(
            format!("S{}", b.index),
            (b.from + x_max * 0.005, y_max / 1.15),
            (FONT, 12).into_font(),
        )
    }))?;
    let points = |f: fn(&super::rinha::TimelinePoint) -> f64| -> Vec<(f64, f64)> {
        r.timeline
            .iter()
            .filter(|p| p.requests > 0)
            .map(|p| (p.second as f64 + 0.5, f(p).clamp(y_min, y_max)))
            .collect()
    };
    chart
        .draw_series(LineSeries::new(points(|p| p.p50_ms), P50.stroke_width(2)))?
        .label("p50")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], P50.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(points(|p| p.p99_ms), P99.stroke_width(2)))?
        .label("p99")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], P99.stroke_width(2)));
    // Checks: a green dot when consistent, red when not, grey when unreadable.
    chart
        .draw_series(r.checks.iter().map(|c| {
            let color = match c.consistent {
                Some(true) => ACCEPTED,
                Some(false) => P99,
                None => REQUESTS,
            };
            Circle::new((c.at_s, y_min * 1.6), 5, color.filled())
        }))?
        .label("check (green ok, red inconsistent)")
        .legend(|(x, y)| Circle::new((x + 10, y), 5, ACCEPTED.filled()));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::MiddleRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

fn rinha_rate(area: &Area<'_>, r: &RinhaReport, bands: &[Band], x_max: f64) -> anyhow::Result<()> {
    let peak = r.timeline.iter().map(|p| p.requests).max().unwrap_or(0) as f64;
    let y_max = (peak * 1.15).max(10.0);
    // The backlog gets its own axis on the right: thousands of queued payments would flatten
    // the req/s lines.
    let backlog: Vec<(f64, f64)> = r
        .timeline
        .iter()
        .filter_map(|p| p.backlog.map(|b| (p.second as f64 + 1.0, b.max(0) as f64)))
        .collect();
    let b_max = (backlog.iter().map(|b| b.1).fold(0.0f64, f64::max) * 1.15).max(10.0);
    let mut chart = ChartBuilder::on(area)
        .caption(
            "throughput (requests started per second) and backlog (accepted - processed)",
            (FONT, 16),
        )
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(60)
        .right_y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)?
        .set_secondary_coord(0f64..x_max, 0f64..b_max);
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc("req/s")
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    chart
        .configure_secondary_axes()
        .y_desc("backlog (payments)")
        .draw()?;
    chart.draw_series(
        bands
            .iter()
            .map(|b| Rectangle::new([(b.from, 0.0), (b.to, y_max)], b.color.mix(0.45).filled())),
    )?;
    chart.draw_series(bands.iter().map(|b| {
        Text::new(
            format!("S{}", b.index),
            (b.from + x_max * 0.005, y_max * 0.97),
            (FONT, 12).into_font(),
        )
    }))?;
    let series = |f: fn(&super::rinha::TimelinePoint) -> u64| -> Vec<(f64, f64)> {
        r.timeline
            .iter()
            .map(|p| (p.second as f64 + 0.5, f(p) as f64))
            .collect()
    };
    chart
        .draw_series(LineSeries::new(
            series(|p| p.requests),
            REQUESTS.stroke_width(2),
        ))?
        .label("requests")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], REQUESTS.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(
            series(|p| p.accepted),
            ACCEPTED.stroke_width(2),
        ))?
        .label("accepted (2xx)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], ACCEPTED.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(
            series(|p| p.timeouts + p.errors + p.rejected),
            P99.stroke_width(2),
        ))?
        .label("rejected / timeouts / errors")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], P99.stroke_width(2)));
    // Sampled at the end of each second, hence plotted at its right edge.
    chart
        .draw_secondary_series(AreaSeries::new(backlog.clone(), 0.0, BACKLOG.mix(0.2)))?
        .label("backlog (right axis)")
        .legend(|(x, y)| Rectangle::new([(x, y - 6), (x + 20, y + 6)], BACKLOG.mix(0.4).filled()));
    chart.draw_secondary_series(LineSeries::new(backlog, BACKLOG.stroke_width(2)))?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::MiddleLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// The throughput benchmark: `<out>/<name>.svg`.
pub fn throughput_svg(path: &Path, r: &ThroughputReport) -> anyhow::Result<()> {
    prepare(path)?;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!(
        "{}: highest passing rate {}",
        r.name,
        r.max_passing_rate
            .map_or_else(|| "none".to_owned(), |m| format!("{m} req/s"))
    );
    let root = root.titled(&title, (FONT, 22))?;
    let panels = root.split_evenly((3, 1));
    throughput_steps(&panels[0], r)?;
    throughput_p99(&panels[1], r)?;
    throughput_processed(&panels[2], r)?;
    root.present()?;
    Ok(())
}

fn rate_axis(r: &ThroughputReport) -> f64 {
    let top = r.steps.iter().map(|s| s.target_rate).max().unwrap_or(1) as f64;
    top * 1.1
}

fn throughput_steps(area: &Area<'_>, r: &ThroughputReport) -> anyhow::Result<()> {
    let x_max = rate_axis(r);
    let y_max = r
        .steps
        .iter()
        .map(|s| s.accepted_per_sec)
        .fold(x_max, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption("accepted req/s per step", (FONT, 16))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc("target rate (req/s)")
        .y_desc("accepted/s")
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    chart
        .draw_series(LineSeries::new(
            vec![(0.0, 0.0), (x_max, x_max)],
            REQUESTS.mix(0.5),
        ))?
        .label("target")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], REQUESTS));
    let points: Vec<(f64, f64)> = r
        .steps
        .iter()
        .map(|s| (s.target_rate as f64, s.accepted_per_sec))
        .collect();
    chart
        .draw_series(LineSeries::new(points.clone(), ACCEPTED.stroke_width(2)))?
        .label("accepted")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], ACCEPTED.stroke_width(2)));
    chart.draw_series(r.steps.iter().map(|s| {
        let color = if s.passed { ACCEPTED } else { P99 };
        Circle::new(
            (s.target_rate as f64, s.accepted_per_sec),
            5,
            color.filled(),
        )
    }))?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

fn throughput_p99(area: &Area<'_>, r: &ThroughputReport) -> anyhow::Result<()> {
    let x_max = rate_axis(r);
    let limit = r.settings.p99_limit_ms;
    let worst = r
        .steps
        .iter()
        .map(|s| s.latency.p99_ms)
        .fold(limit, f64::max);
    let (y_min, y_max) = (0.05f64, (worst * 2.0).max(1.0));
    let mut chart = ChartBuilder::on(area)
        .caption(
            "p99 latency per step (ms, log scale, from due time)",
            (FONT, 16),
        )
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, (y_min..y_max).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("target rate (req/s)")
        .y_desc("ms")
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    chart
        .draw_series(LineSeries::new(
            vec![(0.0, limit), (x_max, limit)],
            P99.mix(0.6).stroke_width(1),
        ))?
        .label(format!("limit {limit} ms"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], P99.mix(0.6)));
    let line = |f: fn(&super::throughput::StepReport) -> f64| -> Vec<(f64, f64)> {
        r.steps
            .iter()
            .map(|s| (s.target_rate as f64, f(s).clamp(y_min, y_max)))
            .collect()
    };
    chart
        .draw_series(LineSeries::new(
            line(|s| s.latency.p99_ms),
            P99.stroke_width(2),
        ))?
        .label("p99")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], P99.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(
            line(|s| s.latency.p50_ms),
            P50.stroke_width(2),
        ))?
        .label("p50")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], P50.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

fn throughput_processed(area: &Area<'_>, r: &ThroughputReport) -> anyhow::Result<()> {
    let x_max = r.samples.last().map_or(1.0, |s| s.t_s).max(1.0);
    let accepted: Vec<(f64, f64)> = r
        .samples
        .windows(2)
        .filter(|w| w[1].t_s > w[0].t_s)
        .map(|w| {
            let rate = w[1].accepted.saturating_sub(w[0].accepted) as f64 / (w[1].t_s - w[0].t_s);
            (w[1].t_s, rate)
        })
        .collect();
    let peak = r
        .samples
        .iter()
        .filter_map(|s| s.processed_per_sec)
        .chain(accepted.iter().map(|a| a.1))
        .fold(0.0f64, f64::max);
    let y_max = (peak * 1.15).max(10.0);
    let mut chart = ChartBuilder::on(area)
        .caption(
            "payments accepted and processed (end to end) per second, steps shaded",
            (FONT, 16),
        )
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc("processed/s")
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    chart.draw_series(r.steps.iter().map(|s| {
        let color = STAGE_COLORS[s.index % STAGE_COLORS.len()];
        Rectangle::new(
            [
                (s.started_s, 0.0),
                ((s.started_s + s.elapsed_s).min(x_max), y_max),
            ],
            color.mix(0.45).filled(),
        )
    }))?;
    chart.draw_series(r.steps.iter().map(|s| {
        Text::new(
            format!("{}/s", s.target_rate),
            (s.started_s + 0.1, y_max * 0.97),
            (FONT, 11).into_font(),
        )
    }))?;
    let points: Vec<(f64, f64)> = r
        .samples
        .iter()
        .filter_map(|s| s.processed_per_sec.map(|v| (s.t_s, v)))
        .collect();
    chart
        .draw_series(LineSeries::new(accepted, REQUESTS.mix(0.7).stroke_width(1)))?
        .label("accepted/s")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], REQUESTS.mix(0.7)));
    chart
        .draw_series(LineSeries::new(points, ACCEPTED.stroke_width(2)))?
        .label("processed/s")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], ACCEPTED.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// The drain benchmark: `<out>/<name>.svg`.
pub fn drain_svg(path: &Path, r: &DrainReport) -> anyhow::Result<()> {
    prepare(path)?;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let drain = r.drain_ms.map_or_else(
        || format!("not drained within {} s", r.settings.timeout_s),
        |ms| format!("drained in {:.0} ms", ms),
    );
    let title = format!(
        "{}: backlog {} after a {} s outage at {}/s, {drain}, {} on fallback",
        r.name, r.backlog_at_t0, r.settings.outage_s, r.settings.rate, r.fallback
    );
    let root = root.titled(&title, (FONT, 22))?;
    let panels = root.split_evenly((2, 1));
    drain_overview(&panels[0], r)?;
    drain_closeup(&panels[1], r)?;
    root.present()?;
    Ok(())
}

/// The largest count of a drain run's samples, for the y axes.
fn drain_y_max(r: &DrainReport) -> f64 {
    let top = r
        .samples
        .iter()
        .map(|s| s.accepted.max(s.processed))
        .max()
        .unwrap_or(0)
        .max(r.accepted);
    (top as f64 * 1.1).max(10.0)
}

fn drain_overview(area: &Area<'_>, r: &DrainReport) -> anyhow::Result<()> {
    let x_max = r
        .samples
        .last()
        .map_or(r.outage_s, |s| s.since_start_ms / 1000.0)
        .max(r.outage_s)
        * 1.02;
    let y_max = drain_y_max(r);
    let mut chart = ChartBuilder::on(area)
        .caption(
            "payments since the outage began (both processors failing, shaded)",
            (FONT, 16),
        )
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max.max(0.1), 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the outage began")
        .y_desc("payments")
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    chart
        .draw_series(std::iter::once(Rectangle::new(
            [(0.0, 0.0), (r.outage_s, y_max)],
            OUTAGE.mix(0.35).filled(),
        )))?
        .label("outage")
        .legend(|(x, y)| Rectangle::new([(x, y - 6), (x + 20, y + 6)], OUTAGE.mix(0.35).filled()));
    // Right-aligned against the recovery, inside the chart however long the drain was.
    let right = TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Right, VPos::Top));
    chart.draw_series(std::iter::once(Text::new(
        format!("default recovers ({} ms) ", r.settings.recovery_delay_ms),
        (r.outage_s, y_max * 0.99),
        right,
    )))?;
    drain_lines(&mut chart, r, |s| s.since_start_ms / 1000.0)?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

fn drain_closeup(area: &Area<'_>, r: &DrainReport) -> anyhow::Result<()> {
    let end_ms = r
        .drain_ms
        .or_else(|| r.samples.last().map(|s| s.t_ms))
        .unwrap_or(1000.0)
        .max(100.0);
    let (x_min, x_max) = (-end_ms * 0.05 / 1000.0, end_ms * 1.1 / 1000.0);
    let y_max = drain_y_max(r);
    let mut chart = ChartBuilder::on(area)
        .caption(
            "after the recovery: 50 / 90 / 99 / 100 % of the backlog processed",
            (FONT, 16),
        )
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(70)
        .build_cartesian_2d(x_min..x_max, 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the default processor recovered")
        .y_desc("payments")
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    let marks = r
        .milestones
        .iter()
        .map(|m| (m.share, m.ms))
        .chain(std::iter::once((1.0, r.drain_ms)))
        .filter_map(|(share, ms)| ms.map(|ms| (share, ms / 1000.0)));
    // Labels stacked bottom up, so marks at the same reading stay legible.
    for (i, (share, t)) in marks.enumerate() {
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(t, 0.0), (t, y_max)],
            REQUESTS.mix(0.5),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            format!("{} % {:.0} ms", share * 100.0, t * 1000.0),
            (
                t + (x_max - x_min) * 0.004,
                y_max * (0.12 + 0.07 * i as f64),
            ),
            (FONT, 12).into_font(),
        )))?;
    }
    drain_lines(&mut chart, r, |s| s.t_ms / 1000.0)?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// Accepted, processed and backlog against the time `x` gives for each sample.
fn drain_lines(
    chart: &mut ChartContext<'_, SVGBackend<'_>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    r: &DrainReport,
    x: fn(&super::drain::DrainSample) -> f64,
) -> anyhow::Result<()> {
    let x_range = chart.x_range();
    let inside = |s: &&super::drain::DrainSample| x_range.contains(&x(s));
    let series = |f: fn(&super::drain::DrainSample) -> f64| -> Vec<(f64, f64)> {
        r.samples
            .iter()
            .filter(inside)
            .map(|s| (x(s), f(s)))
            .collect()
    };
    chart
        .draw_series(AreaSeries::new(
            series(|s| s.backlog.max(0) as f64),
            0.0,
            BACKLOG.mix(0.25),
        ))?
        .label("backlog (accepted - processed)")
        .legend(|(x, y)| Rectangle::new([(x, y - 6), (x + 20, y + 6)], BACKLOG.mix(0.25).filled()));
    chart
        .draw_series(LineSeries::new(
            series(|s| s.accepted as f64),
            REQUESTS.stroke_width(2),
        ))?
        .label("accepted")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], REQUESTS.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(
            series(|s| s.processed as f64),
            ACCEPTED.stroke_width(2),
        ))?
        .label("processed")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], ACCEPTED.stroke_width(2)));
    chart.draw_series(LineSeries::new(
        series(|s| s.backlog.max(0) as f64),
        BACKLOG.stroke_width(2),
    ))?;
    Ok(())
}
