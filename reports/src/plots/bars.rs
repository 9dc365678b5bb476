//! Grouped bar charts with error bars and an optional reference line.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::render::{render_both, render_grid, Figure};
use super::style::{bold, font, series_color};
use super::PlotError;

/// One series of a bar chart: one bar per group.
#[derive(Debug, Clone, Default)]
pub struct BarSeries {
    /// Legend name (legend shown when there is more than one series).
    pub name: String,
    /// Bar heights, one per group; NaN = no bar.
    pub values: Vec<f64>,
    /// Half-lengths of the error bars (e.g. 1 SE), one per group; empty or NaN = none.
    pub errors: Vec<f64>,
}

/// A grouped bar chart.
#[derive(Debug, Clone)]
pub struct BarChartSpec {
    /// Title.
    pub title: String,
    /// Group labels along the x axis.
    pub groups: Vec<String>,
    /// Series; within a group bars are side by side in series order.
    pub series: Vec<BarSeries>,
    /// X axis title.
    pub x_label: String,
    /// Y axis title.
    pub y_label: String,
    /// Y range.
    pub y_range: (f64, f64),
    /// Optional horizontal reference line (value, legend text), e.g. `(50.0, "chance")`.
    pub reference_line: Option<(f64, String)>,
    /// Print each bar's value above it with this many decimals (None = no labels).
    pub value_labels: Option<usize>,
    /// Figure size in pixels for a single chart.
    pub size: (u32, u32),
}

impl Default for BarChartSpec {
    fn default() -> Self {
        Self {
            title: String::new(),
            groups: Vec::new(),
            series: Vec::new(),
            x_label: String::new(),
            y_label: String::new(),
            y_range: (0.0, 100.0),
            reference_line: None,
            value_labels: Some(1),
            size: (900, 560),
        }
    }
}
impl Figure for BarChartSpec {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), String> {
        draw_bars(area, self)
    }
}
fn draw_bars<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    spec: &BarChartSpec,
) -> Result<(), String> {
    let ng = spec.groups.len().max(1);
    let ns = spec.series.len().max(1);
    let mut chart = ChartBuilder::on(area)
        .caption(spec.title.clone(), bold(17.0))
        .margin(12)
        .x_label_area_size(52)
        .y_label_area_size(62)
        .build_cartesian_2d(-0.5f64..(ng as f64 - 0.5), spec.y_range.0..spec.y_range.1)
        .map_err(|e| e.to_string())?;
    let groups = spec.groups.clone();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(RGBColor(238, 238, 238))
        .y_labels(11)
        .x_labels(ng * 2 + 1)
        .x_label_formatter(&|x| {
            let r = x.round();
            if (x - r).abs() < 1e-6 && r >= 0.0 && (r as usize) < groups.len() {
                groups[r as usize].clone()
            } else {
                String::new()
            }
        })
        .x_desc(spec.x_label.clone())
        .y_desc(spec.y_label.clone())
        .label_style(font(13.0))
        .axis_desc_style(font(15.0))
        .draw()
        .map_err(|e| e.to_string())?;
    let group_w = 0.8;
    let bar_w = group_w / ns as f64;
    for (si, s) in spec.series.iter().enumerate() {
        let colour = series_color(si);
        let mut rects = Vec::new();
        let mut whiskers = Vec::new();
        let mut labels = Vec::new();
        for (gi, &v) in s.values.iter().enumerate().take(ng) {
            if v.is_nan() {
                continue;
            }
            let x0 = gi as f64 - group_w / 2.0 + si as f64 * bar_w;
            let x1 = x0 + bar_w * 0.92;
            let base = spec.y_range.0.max(0.0f64.min(spec.y_range.1));
            rects.push(Rectangle::new([(x0, base), (x1, v)], colour.filled()));
            let xm = 0.5 * (x0 + x1);
            let err = s.errors.get(gi).copied().unwrap_or(f64::NAN);
            let top = if err.is_nan() { v } else { v + err };
            if !err.is_nan() {
                let cap = bar_w * 0.2;
                whiskers.push(PathElement::new(
                    vec![(xm, v - err), (xm, v + err)],
                    BLACK.stroke_width(2),
                ));
                whiskers.push(PathElement::new(
                    vec![(xm - cap, v - err), (xm + cap, v - err)],
                    BLACK.stroke_width(2),
                ));
                whiskers.push(PathElement::new(
                    vec![(xm - cap, v + err), (xm + cap, v + err)],
                    BLACK.stroke_width(2),
                ));
            }
            if let Some(d) = spec.value_labels {
                labels.push(Text::new(
                    format!("{v:.d$}"),
                    (xm, top + (spec.y_range.1 - spec.y_range.0) * 0.015),
                    font(12.0).pos(Pos::new(HPos::Center, VPos::Bottom)),
                ));
            }
        }
        let series = chart.draw_series(rects).map_err(|e| e.to_string())?;
        if spec.series.len() > 1 {
            series.label(s.name.clone()).legend(move |(x, y)| {
                Rectangle::new([(x, y - 6), (x + 12, y + 6)], colour.filled())
            });
        }
        chart.draw_series(whiskers).map_err(|e| e.to_string())?;
        chart.draw_series(labels).map_err(|e| e.to_string())?;
    }
    if let Some((y, name)) = &spec.reference_line {
        let line_colour = RGBColor(90, 90, 90);
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(-0.5, *y), (ng as f64 - 0.5, *y)],
                line_colour.stroke_width(2),
            )))
            .map_err(|e| e.to_string())?
            .label(name.clone())
            .legend(move |(x, yy)| {
                PathElement::new(vec![(x, yy), (x + 14, yy)], line_colour.stroke_width(2))
            });
    }
    if spec.series.len() > 1 || spec.reference_line.is_some() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(font(13.0))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn check_bars(spec: &BarChartSpec) -> Result<(), PlotError> {
    if spec.groups.is_empty() || spec.series.is_empty() {
        return Err(PlotError::Spec(
            "a bar chart needs groups and series".into(),
        ));
    }
    for s in &spec.series {
        if s.values.len() != spec.groups.len() {
            return Err(PlotError::Spec(format!(
                "series '{}' has {} values for {} groups",
                s.name,
                s.values.len(),
                spec.groups.len()
            )));
        }
    }
    if spec.y_range.1 <= spec.y_range.0 {
        return Err(PlotError::Spec("y_range must be increasing".into()));
    }
    Ok(())
}

/// Draws a grouped bar chart with error bars to `<stem>.png` and `<stem>.svg`.
pub fn bar_chart(spec: &BarChartSpec, stem: &Path) -> Result<Vec<PathBuf>, PlotError> {
    check_bars(spec)?;
    render_both(stem, spec.size, spec)
}

/// Draws a grid of bar charts (row-major, `cols` per row) under one title, each panel
/// `panel_size` pixels; e.g. rows = subsets, columns = venues.
pub fn bar_grid(
    panels: &[BarChartSpec],
    cols: usize,
    title: &str,
    panel_size: (u32, u32),
    stem: &Path,
) -> Result<Vec<PathBuf>, PlotError> {
    render_grid(panels, check_bars, cols, title, panel_size, stem)
}
