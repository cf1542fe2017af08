//! The pictures of a run, as SVG (no system fonts needed; text is left to the viewer).
//!
//! Comes last, with [`report`](super::report), and draws only from a finished report of the
//! leaf report types, so the same JSON always gives the same picture.
//! - reference run: latency p50/p99 per second (log scale), and requests/s over time with the
//!   backlog (accepted - processed) on a second axis, the six stages shaded and labelled and
//!   every check marked;
//! - throughput run: accepted req/s and p99 per step, and processed payments/s over time;
//! - drain run: accepted, processed and backlog since the outage began (outage shaded), and a
//!   close-up of the drain after the recovery with the 50/90/99/100 % marks;
//! - soak run: RSS per process group, Redis' memory (with and without the summary's kept
//!   series) and keys, the backlog with accepted and processed per second and every check
//!   marked, and CPU per payment per group, over time, the steady window shaded.

use std::path::Path;

use anyhow::Context as _;
use plotters::chart::DualCoordChartContext;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::drain_report::{DrainReport, DrainSample};
use super::rinha_report::{RinhaReport, TimelinePoint};
use super::soak_report::{bytes_to_mb, kib_to_mb, ProcPoint, RedisSample, SoakReport, SoakSample};
use super::throughput_report::{StepReport, ThroughputReport};

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

/// A white picture at `path` (its directory created) with `title` above what is drawn on it.
fn titled_root<'a>(path: &'a Path, title: &str) -> anyhow::Result<Area<'a>> {
    sized_root(path, title, SIZE)
}

/// [`titled_root`] of another size (pixels).
fn sized_root<'a>(path: &'a Path, title: &str, size: (u32, u32)) -> anyhow::Result<Area<'a>> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)?;
    Ok(root.titled(title, (FONT, 22))?)
}

/// A panel's chart with its caption and the label areas every panel shares.
fn chart_builder<'a, 'b>(
    area: &'a Area<'b>,
    caption: &str,
    y_label_area: u32,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(caption, (FONT, 16))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(y_label_area);
    builder
}

type Chart<'a, 'b, Y> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, Y>>;

type Linear = Cartesian2d<RangedCoordf64, RangedCoordf64>;
type DualChart<'a, 'b> = DualCoordChartContext<'a, SVGBackend<'b>, Linear, Linear>;

/// What a panel with a second y axis on the right shows, and how its axes are described.
struct DualAxes<'s> {
    x_max: f64,
    y_max: f64,
    right_max: f64,
    x_desc: &'s str,
    y_desc: &'s str,
    right_desc: &'s str,
}

/// A panel from 0 to `x_max` with a left axis to `y_max` and a right one to `right_max`;
/// `(left, right)` label areas wide enough for the figures on each side.
fn dual_chart<'a, 'b>(
    area: &'a Area<'b>,
    caption: &str,
    (left, right): (u32, u32),
    axes: DualAxes<'_>,
) -> anyhow::Result<DualChart<'a, 'b>> {
    let mut chart = chart_builder(area, caption, left)
        .right_y_label_area_size(right)
        .build_cartesian_2d(0f64..axes.x_max, 0f64..axes.y_max)?
        .set_secondary_coord(0f64..axes.x_max, 0f64..axes.right_max);
    draw_mesh(&mut chart, axes.x_desc, axes.y_desc)?;
    chart
        .configure_secondary_axes()
        .y_desc(axes.right_desc)
        .draw()?;
    Ok(chart)
}

/// The axes with their descriptions, without the light grid lines.
fn draw_mesh<Y>(chart: &mut Chart<'_, '_, Y>, x_desc: &str, y_desc: &str) -> anyhow::Result<()>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    Ok(())
}

/// The legend box of the labelled series, at `position`.
fn draw_legend<'a, 'b: 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, CT>,
    position: SeriesLabelPosition,
) -> anyhow::Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// A legend entry drawn as a short line.
fn line_key(style: ShapeStyle) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style)
}

/// A legend entry drawn as a small filled box.
fn box_key(color: RGBAColor) -> impl Fn((i32, i32)) -> Rectangle<(i32, i32)> {
    move |(x, y)| Rectangle::new([(x, y - 6), (x + 20, y + 6)], color.filled())
}

/// A line through `points`, labelled in the legend with the same line.
fn draw_line<'a, 'b: 'a, CT: CoordTranslate<From = (f64, f64)>>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, CT>,
    points: Vec<(f64, f64)>,
    style: ShapeStyle,
    label: impl Into<String>,
) -> anyhow::Result<()> {
    chart
        .draw_series(LineSeries::new(points, style))?
        .label(label)
        .legend(line_key(style));
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
    let root = titled_root(path, &title)?;
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

/// The stages shaded from `y_from` to `y_to`, each named `S<index>` at the height `label_y`.
fn draw_bands<'a, 'b: 'a, CT: CoordTranslate<From = (f64, f64)>>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, CT>,
    bands: &[Band],
    (y_from, y_to): (f64, f64),
    label_y: f64,
    x_max: f64,
) -> anyhow::Result<()> {
    chart.draw_series(
        bands
            .iter()
            .map(|b| Rectangle::new([(b.from, y_from), (b.to, y_to)], b.color.mix(0.45).filled())),
    )?;
    chart.draw_series(bands.iter().map(|b| {
        Text::new(
            format!("S{}", b.index),
            (b.from + x_max * 0.005, label_y),
            (FONT, 12).into_font(),
        )
    }))?;
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
    let mut chart = chart_builder(area, "latency per second (ms, log scale)", 60)
        // As wide as the backlog axis below, so both panels share their time axis.
        .right_y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, (y_min..y_max).log_scale())?;
    draw_mesh(&mut chart, "seconds since start", "ms")?;
    draw_bands(&mut chart, bands, (y_min, y_max), y_max / 1.15, x_max)?;
    let points = |f: fn(&TimelinePoint) -> f64| -> Vec<(f64, f64)> {
        r.timeline
            .iter()
            .filter(|p| p.requests > 0)
            .map(|p| (p.second as f64 + 0.5, f(p).clamp(y_min, y_max)))
            .collect()
    };
    draw_line(&mut chart, points(|p| p.p50_ms), P50.stroke_width(2), "p50")?;
    draw_line(&mut chart, points(|p| p.p99_ms), P99.stroke_width(2), "p99")?;
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
    draw_legend(&mut chart, SeriesLabelPosition::MiddleRight)
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
    let mut chart = dual_chart(
        area,
        "throughput (requests started per second) and backlog (accepted - processed)",
        (60, 70),
        DualAxes {
            x_max,
            y_max,
            right_max: b_max,
            x_desc: "seconds since start",
            y_desc: "req/s",
            right_desc: "backlog (payments)",
        },
    )?;
    draw_bands(&mut chart, bands, (0.0, y_max), y_max * 0.97, x_max)?;
    let series = |f: fn(&TimelinePoint) -> u64| -> Vec<(f64, f64)> {
        r.timeline
            .iter()
            .map(|p| (p.second as f64 + 0.5, f(p) as f64))
            .collect()
    };
    draw_line(
        &mut chart,
        series(|p| p.requests),
        REQUESTS.stroke_width(2),
        "requests",
    )?;
    draw_line(
        &mut chart,
        series(|p| p.accepted),
        ACCEPTED.stroke_width(2),
        "accepted (2xx)",
    )?;
    draw_line(
        &mut chart,
        series(|p| p.timeouts + p.errors + p.rejected),
        P99.stroke_width(2),
        "rejected / timeouts / errors",
    )?;
    // Sampled at the end of each second, hence plotted at its right edge.
    chart
        .draw_secondary_series(AreaSeries::new(backlog.clone(), 0.0, BACKLOG.mix(0.2)))?
        .label("backlog (right axis)")
        .legend(box_key(BACKLOG.mix(0.4)));
    chart.draw_secondary_series(LineSeries::new(backlog, BACKLOG.stroke_width(2)))?;
    draw_legend(&mut chart, SeriesLabelPosition::MiddleLeft)
}

/// The throughput benchmark: `<out>/<name>.svg`.
pub fn throughput_svg(path: &Path, r: &ThroughputReport) -> anyhow::Result<()> {
    let title = format!(
        "{}: highest passing rate {}",
        r.name,
        r.max_passing_rate
            .map_or_else(|| "none".to_owned(), |m| format!("{m} req/s"))
    );
    let root = titled_root(path, &title)?;
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
    let mut chart = chart_builder(area, "accepted req/s per step", 70)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
    draw_mesh(&mut chart, "target rate (req/s)", "accepted/s")?;
    chart
        .draw_series(LineSeries::new(
            vec![(0.0, 0.0), (x_max, x_max)],
            REQUESTS.mix(0.5),
        ))?
        .label("target")
        .legend(line_key(REQUESTS.into()));
    let points: Vec<(f64, f64)> = r
        .steps
        .iter()
        .map(|s| (s.target_rate as f64, s.accepted_per_sec))
        .collect();
    draw_line(&mut chart, points, ACCEPTED.stroke_width(2), "accepted")?;
    chart.draw_series(r.steps.iter().map(|s| {
        let color = if s.passed { ACCEPTED } else { P99 };
        Circle::new(
            (s.target_rate as f64, s.accepted_per_sec),
            5,
            color.filled(),
        )
    }))?;
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
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
    let mut chart = chart_builder(
        area,
        "p99 latency per step (ms, log scale, from due time)",
        70,
    )
    .build_cartesian_2d(0f64..x_max, (y_min..y_max).log_scale())?;
    draw_mesh(&mut chart, "target rate (req/s)", "ms")?;
    draw_line(
        &mut chart,
        vec![(0.0, limit), (x_max, limit)],
        P99.mix(0.6).stroke_width(1),
        format!("limit {limit} ms"),
    )?;
    let line = |f: fn(&StepReport) -> f64| -> Vec<(f64, f64)> {
        r.steps
            .iter()
            .map(|s| (s.target_rate as f64, f(s).clamp(y_min, y_max)))
            .collect()
    };
    draw_line(
        &mut chart,
        line(|s| s.latency.p99_ms),
        P99.stroke_width(2),
        "p99",
    )?;
    draw_line(
        &mut chart,
        line(|s| s.latency.p50_ms),
        P50.stroke_width(2),
        "p50",
    )?;
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
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
    let mut chart = chart_builder(
        area,
        "payments accepted and processed (end to end) per second, steps shaded",
        70,
    )
    .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
    draw_mesh(&mut chart, "seconds since start", "processed/s")?;
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
    draw_line(
        &mut chart,
        accepted,
        REQUESTS.mix(0.7).stroke_width(1),
        "accepted/s",
    )?;
    draw_line(&mut chart, points, ACCEPTED.stroke_width(2), "processed/s")?;
    draw_legend(&mut chart, SeriesLabelPosition::UpperRight)
}

/// The drain benchmark: `<out>/<name>.svg`.
pub fn drain_svg(path: &Path, r: &DrainReport) -> anyhow::Result<()> {
    let drain = r.drain_ms.map_or_else(
        || format!("not drained within {} s", r.settings.timeout_s),
        |ms| format!("drained in {:.0} ms", ms),
    );
    let title = format!(
        "{}: backlog {} after a {} s outage at {}/s, {drain}, {} on fallback",
        r.name, r.backlog_at_t0, r.settings.outage_s, r.settings.rate, r.fallback
    );
    let root = titled_root(path, &title)?;
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
    let mut chart = chart_builder(
        area,
        "payments since the outage began (both processors failing, shaded)",
        70,
    )
    .build_cartesian_2d(0f64..x_max.max(0.1), 0f64..y_max)?;
    draw_mesh(&mut chart, "seconds since the outage began", "payments")?;
    chart
        .draw_series(std::iter::once(Rectangle::new(
            [(0.0, 0.0), (r.outage_s, y_max)],
            OUTAGE.mix(0.35).filled(),
        )))?
        .label("outage")
        .legend(box_key(OUTAGE.mix(0.35)));
    // Right-aligned against the recovery, inside the chart however long the drain was.
    let right = TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Right, VPos::Top));
    chart.draw_series(std::iter::once(Text::new(
        format!("default recovers ({} ms) ", r.settings.recovery_delay_ms),
        (r.outage_s, y_max * 0.99),
        right,
    )))?;
    drain_lines(&mut chart, r, |s| s.since_start_ms / 1000.0)?;
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

fn drain_closeup(area: &Area<'_>, r: &DrainReport) -> anyhow::Result<()> {
    let end_ms = r
        .drain_ms
        .or_else(|| r.samples.last().map(|s| s.t_ms))
        .unwrap_or(1000.0)
        .max(100.0);
    let (x_min, x_max) = (-end_ms * 0.05 / 1000.0, end_ms * 1.1 / 1000.0);
    let y_max = drain_y_max(r);
    let mut chart = chart_builder(
        area,
        "after the recovery: 50 / 90 / 99 / 100 % of the backlog processed",
        70,
    )
    .build_cartesian_2d(x_min..x_max, 0f64..y_max)?;
    draw_mesh(
        &mut chart,
        "seconds since the default processor recovered",
        "payments",
    )?;
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
    draw_legend(&mut chart, SeriesLabelPosition::UpperRight)
}

/// Accepted, processed and backlog against the time `x` gives for each sample.
fn drain_lines<'a, 'b: 'a>(
    chart: &mut Chart<'a, 'b, RangedCoordf64>,
    r: &DrainReport,
    x: fn(&DrainSample) -> f64,
) -> anyhow::Result<()> {
    let x_range = chart.x_range();
    let inside = |s: &&DrainSample| x_range.contains(&x(s));
    let series = |f: fn(&DrainSample) -> f64| -> Vec<(f64, f64)> {
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
        .legend(box_key(BACKLOG.mix(0.25)));
    draw_line(
        chart,
        series(|s| s.accepted as f64),
        REQUESTS.stroke_width(2),
        "accepted",
    )?;
    draw_line(
        chart,
        series(|s| s.processed as f64),
        ACCEPTED.stroke_width(2),
        "processed",
    )?;
    chart.draw_series(LineSeries::new(
        series(|s| s.backlog.max(0) as f64),
        BACKLOG.stroke_width(2),
    ))?;
    Ok(())
}

/// One colour per line of the soak's panels, in order.
const LINE_COLORS: [RGBColor; 8] = [
    P50,
    ACCEPTED,
    P99,
    BACKLOG,
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
    RGBColor(140, 86, 75),
    REQUESTS,
];
const STEADY: RGBColor = RGBColor(207, 226, 255);
/// Left and right label areas of every soak panel: the same, so they share the time axis.
const SOAK_LABEL_AREAS: (u32, u32) = (70, 80);
const SOAK_TIME: &str = "seconds since the load started";
/// How much higher than its lines a panel with a tall legend goes, so the legend sits above.
const LEGEND_HEADROOM: f64 = 1.7;

/// The soak: `<out>/<name>.svg`.
pub fn soak_svg(path: &Path, r: &SoakReport) -> anyhow::Result<()> {
    let v = &r.verdict;
    let verdict = match v.passed {
        Some(true) => "PASS".to_owned(),
        Some(false) => "FAIL".to_owned(),
        None => "memory not judged (shorter than retention)".to_owned(),
    };
    let title = format!(
        "{}: {}/s for {} s, {verdict}, {} + {} inconsistencies, lag at end {}",
        r.name,
        r.settings.rate,
        r.settings.duration_s,
        v.inconsistencies,
        v.old_window_inconsistencies,
        v.lag_at_end
            .map_or_else(|| "n/a".to_owned(), |l| l.to_string()),
    );
    // Four panels, two with a legend line per process group: taller than the other pictures.
    let root = sized_root(path, &title, (1400, 1700))?;
    let panels = root.split_evenly((4, 1));
    let x_max = r.samples.last().map_or(1.0, |s| s.t_s).max(1.0);
    soak_groups(
        &panels[0],
        r,
        x_max,
        ("resident memory per process group (MB)", "MB"),
        |g| Some(kib_to_mb(g.rss_kb)),
    )?;
    soak_redis(&panels[1], r, x_max)?;
    soak_backlog(&panels[2], r, x_max)?;
    soak_groups(
        &panels[3],
        r,
        x_max,
        (
            "CPU per payment accepted in each sampling interval (µs)",
            "µs",
        ),
        |g| g.cpu_us_per_payment,
    )?;
    root.present()?;
    Ok(())
}

/// The steady window (flatness judged over it) and the end of the load, behind the lines.
fn draw_soak_window<'a, 'b: 'a, CT: CoordTranslate<From = (f64, f64)>>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, CT>,
    r: &SoakReport,
    (x_max, y_max): (f64, f64),
) -> anyhow::Result<()> {
    let v = &r.verdict;
    let label = if v.steady {
        "steady window (judged)"
    } else {
        "last half (not judged)"
    };
    chart
        .draw_series(std::iter::once(Rectangle::new(
            [(v.window_from_s, 0.0), (v.window_to_s, y_max)],
            STEADY.mix(0.45).filled(),
        )))?
        .label(label)
        .legend(box_key(STEADY.mix(0.45)));
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(r.settings.duration_s, 0.0), (r.settings.duration_s, y_max)],
        REQUESTS.mix(0.6),
    )))?;
    // The first status hashes expire: from here on the key count should level off.
    if let Some(retention) = r.settings.payment_retention_s.filter(|t| *t <= x_max) {
        let style = P99.mix(0.6).stroke_width(1);
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(retention, 0.0), (retention, y_max)],
                style,
            )))?
            .label("PAYMENT_RETENTION passed")
            .legend(line_key(style));
    }
    Ok(())
}

/// `(t_s, f(sample))` for every sample where `f` has a value.
fn soak_points(r: &SoakReport, f: impl Fn(&SoakSample) -> Option<f64>) -> Vec<(f64, f64)> {
    r.samples
        .iter()
        .filter_map(|s| f(s).map(|v| (s.t_s, v)))
        .collect()
}

/// The top of a panel: a little above the highest value drawn.
fn soak_top(lines: &[&[(f64, f64)]]) -> f64 {
    let top = lines
        .iter()
        .flat_map(|l| l.iter())
        .map(|p| p.1)
        .fold(0.0f64, f64::max);
    (top * 1.15).max(1.0)
}

/// One line per process group of `value` over time; the legend above the lines.
fn soak_groups(
    area: &Area<'_>,
    r: &SoakReport,
    x_max: f64,
    (caption, unit): (&str, &str),
    value: fn(&ProcPoint) -> Option<f64>,
) -> anyhow::Result<()> {
    let lines: Vec<(&str, Vec<(f64, f64)>)> = r
        .processes
        .iter()
        .map(|p| {
            let points = soak_points(r, |s| s.procs.get(&p.name).and_then(value));
            (p.name.as_str(), points)
        })
        .collect();
    let slices: Vec<&[(f64, f64)]> = lines.iter().map(|l| l.1.as_slice()).collect();
    let y_max = soak_top(&slices) * LEGEND_HEADROOM;
    let mut chart = chart_builder(area, caption, SOAK_LABEL_AREAS.0)
        // As wide as the right axes of the other panels, so all share their time axis.
        .right_y_label_area_size(SOAK_LABEL_AREAS.1)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
    draw_mesh(&mut chart, SOAK_TIME, unit)?;
    draw_soak_window(&mut chart, r, (x_max, y_max))?;
    for (i, (name, points)) in lines.into_iter().enumerate() {
        let color = LINE_COLORS[i % LINE_COLORS.len()];
        draw_line(&mut chart, points, color.stroke_width(2), name)?;
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

fn soak_redis(area: &Area<'_>, r: &SoakReport, x_max: f64) -> anyhow::Result<()> {
    let redis = |f: fn(&RedisSample) -> f64| soak_points(r, move |s| s.redis.as_ref().map(f));
    let used = redis(|x| bytes_to_mb(x.used_memory));
    let without = redis(|x| bytes_to_mb(x.used_memory.saturating_sub(x.summary_kept_bytes)));
    let kept = redis(|x| bytes_to_mb(x.summary_kept_bytes));
    let keys = redis(|x| x.dbsize as f64);
    let y_max = soak_top(&[&used]) * LEGEND_HEADROOM;
    let k_max = soak_top(&[&keys]) * LEGEND_HEADROOM;
    let mut chart = dual_chart(
        area,
        "Redis: used_memory, without the summary's kept series, that series (MB); keys (right)",
        SOAK_LABEL_AREAS,
        DualAxes {
            x_max,
            y_max,
            right_max: k_max,
            x_desc: SOAK_TIME,
            y_desc: "MB",
            right_desc: "keys",
        },
    )?;
    draw_soak_window(&mut chart, r, (x_max, y_max))?;
    draw_line(&mut chart, used, P50.stroke_width(2), "used_memory")?;
    draw_line(
        &mut chart,
        without,
        ACCEPTED.stroke_width(2),
        "used_memory without the summary's kept series",
    )?;
    draw_line(
        &mut chart,
        kept,
        RGBColor(255, 127, 14).stroke_width(2),
        "summary's kept series",
    )?;
    let style = REQUESTS.mix(0.8).stroke_width(1);
    chart
        .draw_secondary_series(LineSeries::new(keys, style))?
        .label("keys (right axis)")
        .legend(line_key(style));
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

fn soak_backlog(area: &Area<'_>, r: &SoakReport, x_max: f64) -> anyhow::Result<()> {
    let backlog = soak_points(r, |s| s.backlog.map(|b| b.max(0) as f64));
    let pending = soak_points(r, |s| s.redis.as_ref().map(|x| x.pending as f64));
    let per_sec = |f: fn(&SoakSample) -> Option<u64>| -> Vec<(f64, f64)> {
        r.samples
            .windows(2)
            .filter(|w| w[1].t_s > w[0].t_s)
            .filter_map(|w| {
                let (a, b) = (f(&w[0])?, f(&w[1])?);
                Some((w[1].t_s, b.saturating_sub(a) as f64 / (w[1].t_s - w[0].t_s)))
            })
            .collect()
    };
    let accepted = per_sec(|s| Some(s.accepted));
    let processed = per_sec(|s| s.processed);
    let y_max = soak_top(&[&backlog, &pending]);
    let rate_max = soak_top(&[&accepted, &processed]);
    let mut chart = dual_chart(
        area,
        "backlog (accepted - processed) and pending (left); accepted and processed per second \
         (right); checks: green ok, red inconsistent, grey unread (old windows higher)",
        SOAK_LABEL_AREAS,
        DualAxes {
            x_max,
            y_max,
            right_max: rate_max,
            x_desc: SOAK_TIME,
            y_desc: "payments",
            right_desc: "per second",
        },
    )?;
    draw_soak_window(&mut chart, r, (x_max, y_max))?;
    chart
        .draw_series(AreaSeries::new(backlog.clone(), 0.0, BACKLOG.mix(0.2)))?
        .label("backlog")
        .legend(box_key(BACKLOG.mix(0.4)));
    chart.draw_series(LineSeries::new(backlog, BACKLOG.stroke_width(2)))?;
    draw_line(&mut chart, pending, P50.stroke_width(1), "pending")?;
    for (points, color, label) in [
        (accepted, REQUESTS.mix(0.7), "accepted/s (right)"),
        (processed, ACCEPTED.mix(0.9), "processed/s (right)"),
    ] {
        let style = color.stroke_width(1);
        chart
            .draw_secondary_series(LineSeries::new(points, style))?
            .label(label)
            .legend(line_key(style));
    }
    chart.draw_series(r.checks.iter().map(|c| {
        let color = match c.consistent {
            Some(true) => ACCEPTED,
            Some(false) => P99,
            None => REQUESTS,
        };
        let y = if c.old { y_max * 0.08 } else { y_max * 0.03 };
        Circle::new((c.at_s, y), 3, color.filled())
    }))?;
    draw_legend(&mut chart, SeriesLabelPosition::UpperRight)
}
