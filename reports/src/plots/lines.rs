//! Line charts: one or more series of (x, y) points with markers, e.g. a metric against an
//! iteration cap.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::render::{render_both, render_grid, Figure};
use super::style::{bold, font, series_color};
use super::PlotError;

/// One line: points joined in the order given (sort them by x); NaN y values break the line.
#[derive(Debug, Clone, Default)]
pub struct LineSeries {
    /// Legend name (legend shown when there is more than one series).
    pub name: String,
    /// The points.
    pub points: Vec<(f64, f64)>,
}

/// A line chart.
#[derive(Debug, Clone)]
pub struct LineChartSpec {
    /// Title.
    pub title: String,
    /// The lines, coloured in order.
    pub series: Vec<LineSeries>,
    /// X axis title.
    pub x_label: String,
    /// Y axis title.
    pub y_label: String,
    /// X range.
    pub x_range: (f64, f64),
    /// Y range.
    pub y_range: (f64, f64),
    /// Label the x axis with integers only (caps, counts).
    pub integer_x: bool,
    /// Figure size in pixels for a single chart.
    pub size: (u32, u32),
}

impl Default for LineChartSpec {
    fn default() -> Self {
        Self {
            title: String::new(),
            series: Vec::new(),
            x_label: String::new(),
            y_label: String::new(),
            x_range: (0.0, 1.0),
            y_range: (0.0, 100.0),
            integer_x: false,
            size: (900, 560),
        }
    }
}

impl Figure for LineChartSpec {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), String> {
        draw_lines(area, self)
    }
}

/// `x` as an axis label: integers only when asked, else plotters' usual short form.
fn x_tick(x: f64, integer: bool) -> String {
    if !integer {
        return format!("{x}");
    }
    let r = x.round();
    if (x - r).abs() < 1e-6 {
        format!("{r}")
    } else {
        String::new()
    }
}

fn draw_lines<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    spec: &LineChartSpec,
) -> Result<(), String> {
    let mut chart = ChartBuilder::on(area)
        .caption(spec.title.clone(), bold(17.0))
        .margin(12)
        .x_label_area_size(52)
        .y_label_area_size(62)
        .build_cartesian_2d(
            spec.x_range.0..spec.x_range.1,
            spec.y_range.0..spec.y_range.1,
        )
        .map_err(|e| e.to_string())?;
    let integer = spec.integer_x;
    chart
        .configure_mesh()
        .light_line_style(RGBColor(238, 238, 238))
        .y_labels(11)
        .x_labels(12)
        .x_label_formatter(&|x| x_tick(*x, integer))
        .x_desc(spec.x_label.clone())
        .y_desc(spec.y_label.clone())
        .label_style(font(13.0))
        .axis_desc_style(font(15.0))
        .draw()
        .map_err(|e| e.to_string())?;
    for (si, s) in spec.series.iter().enumerate() {
        let colour = series_color(si);
        // Consecutive finite points form one segment; a NaN ends it.
        let mut segments: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        for &(x, y) in &s.points {
            if x.is_finite() && y.is_finite() {
                if let Some(seg) = segments.last_mut() {
                    seg.push((x, y));
                }
            } else if segments.last().is_some_and(|seg| !seg.is_empty()) {
                segments.push(Vec::new());
            }
        }
        let mut first = true;
        for seg in segments.into_iter().filter(|seg| !seg.is_empty()) {
            let line = chart
                .draw_series(plotters::series::LineSeries::new(
                    seg.clone(),
                    colour.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?;
            if first && spec.series.len() > 1 {
                line.label(s.name.clone()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 14, y)], colour.stroke_width(2))
                });
            }
            first = false;
            chart
                .draw_series(seg.into_iter().map(|p| Circle::new(p, 3, colour.filled())))
                .map_err(|e| e.to_string())?;
        }
    }
    if spec.series.len() > 1 {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .label_font(font(13.0))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn check_lines(spec: &LineChartSpec) -> Result<(), PlotError> {
    if spec.series.is_empty() {
        return Err(PlotError::Spec("a line chart needs series".into()));
    }
    let increasing =
        |(lo, hi): (f64, f64)| hi.partial_cmp(&lo) == Some(std::cmp::Ordering::Greater);
    if !increasing(spec.x_range) || !increasing(spec.y_range) {
        return Err(PlotError::Spec(format!(
            "'{}': x_range and y_range must be increasing, got {:?} and {:?}",
            spec.title, spec.x_range, spec.y_range
        )));
    }
    Ok(())
}

/// Draws a line chart to `<stem>.png` and `<stem>.svg`.
pub fn line_chart(spec: &LineChartSpec, stem: &Path) -> Result<Vec<PathBuf>, PlotError> {
    check_lines(spec)?;
    render_both(stem, spec.size, spec)
}

/// Draws a grid of line charts (row-major, `cols` per row) under one title, each panel
/// `panel_size` pixels; e.g. one panel per metric.
pub fn line_grid(
    panels: &[LineChartSpec],
    cols: usize,
    title: &str,
    panel_size: (u32, u32),
    stem: &Path,
) -> Result<Vec<PathBuf>, PlotError> {
    render_grid(panels, check_lines, cols, title, panel_size, stem)
}

/// A y range that shows every finite value in `values` with a margin, starting at 0 for
/// non-negative data; `(0, 1)` when there is nothing to show.
pub fn padded_range(values: impl IntoIterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.into_iter().filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let lo = lo.min(0.0);
    let span = hi - lo;
    if span > 0.0 {
        (lo, hi + 0.1 * span)
    } else {
        (lo - 0.5, hi + 0.5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_ticks() {
        let (lo, hi) = padded_range([2.0, 12.0, f64::NAN]);
        assert!(lo == 0.0 && (hi - 13.2).abs() < 1e-12, "{hi}");
        let (lo, hi) = padded_range([-10.0, 10.0]);
        assert!(lo == -10.0 && (hi - 12.0).abs() < 1e-12, "{hi}");
        assert_eq!(padded_range([]), (0.0, 1.0));
        assert_eq!(padded_range([0.0]), (-0.5, 0.5));
        assert_eq!(x_tick(3.0, true), "3");
        assert_eq!(x_tick(3.5, true), "");
        assert_eq!(x_tick(3.5, false), "3.5");
    }
}
