//! Heatmaps: confusion and preference matrices with a value in every cell.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::render::{render_both, render_grid, Figure};
use super::style::{bold, color_for, font, text_color_on, text_width, ColorMap};
use super::PlotError;

/// Everything a heatmap needs. `values[r][c]` is the cell in row r, column c; NaN cells are drawn
/// empty (light grey, no number).
#[derive(Debug, Clone)]
pub struct HeatmapSpec {
    /// Title at the top.
    pub title: String,
    /// Optional second line under the title (e.g. "average 56.2%").
    pub subtitle: String,
    /// The matrix, rows x columns.
    pub values: Vec<Vec<f64>>,
    /// One label per row (shown left).
    pub row_labels: Vec<String>,
    /// One label per column (shown below).
    pub col_labels: Vec<String>,
    /// Axis title for the rows (e.g. "source emotion").
    pub row_title: String,
    /// Axis title for the columns (e.g. "target emotion").
    pub col_title: String,
    /// Label of the colour bar (e.g. "EMR %").
    pub colorbar_label: String,
    /// Fixed value range mapped onto the colour scale; values outside are clamped.
    pub range: (f64, f64),
    /// Decimals of the numbers printed in the cells.
    pub decimals: usize,
    /// Colour scale.
    pub colormap: ColorMap,
    /// Cell width and height in pixels (columns widen to fit their labels).
    pub cell: (u32, u32),
}

impl Default for HeatmapSpec {
    fn default() -> Self {
        Self {
            title: String::new(),
            subtitle: String::new(),
            values: Vec::new(),
            row_labels: Vec::new(),
            col_labels: Vec::new(),
            row_title: String::new(),
            col_title: String::new(),
            colorbar_label: String::new(),
            range: (0.0, 100.0),
            decimals: 1,
            colormap: ColorMap::Viridis,
            cell: (84, 48),
        }
    }
}
impl Figure for HeatmapSpec {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), String> {
        draw_heatmap(area, self)
    }
}
struct HeatLayout {
    left: i32,
    top: i32,
    cw: i32,
    ch: i32,
    width: u32,
    height: u32,
}

fn heat_layout(spec: &HeatmapSpec) -> HeatLayout {
    let label_w = spec
        .row_labels
        .iter()
        .map(|l| text_width(l, 14.0))
        .max()
        .unwrap_or(0);
    let col_w = spec
        .col_labels
        .iter()
        .map(|l| text_width(l, 13.0) + 8)
        .max()
        .unwrap_or(0)
        .max(spec.cell.0);
    let nc = spec.col_labels.len().max(1) as u32;
    let nr = spec.row_labels.len().max(1) as u32;
    let left = 40 + label_w as i32 + 10;
    let top = if spec.subtitle.is_empty() { 50 } else { 72 };
    let width = left as u32 + nc * col_w + 130;
    let height = top as u32 + nr * spec.cell.1 + 80;
    HeatLayout {
        left,
        top,
        cw: col_w as i32,
        ch: spec.cell.1 as i32,
        width: width.max(420),
        height,
    }
}

fn draw_heatmap<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    spec: &HeatmapSpec,
) -> Result<(), String> {
    let l = heat_layout(spec);
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    let centre = Pos::new(HPos::Center, VPos::Center);
    root.draw(&Text::new(
        spec.title.clone(),
        (l.width as i32 / 2, 20),
        bold(18.0).pos(centre),
    ))
    .map_err(e)?;
    if !spec.subtitle.is_empty() {
        root.draw(&Text::new(
            spec.subtitle.clone(),
            (l.width as i32 / 2, 44),
            font(15.0).pos(centre),
        ))
        .map_err(e)?;
    }
    let nr = spec.values.len();
    for (r, row) in spec.values.iter().enumerate() {
        for (c, &v) in row.iter().enumerate() {
            let x0 = l.left + c as i32 * l.cw;
            let y0 = l.top + r as i32 * l.ch;
            let bg = if v.is_nan() {
                RGBColor(235, 235, 235)
            } else {
                color_for(spec.colormap, v, spec.range)
            };
            root.draw(&Rectangle::new(
                [(x0, y0), (x0 + l.cw, y0 + l.ch)],
                bg.filled(),
            ))
            .map_err(e)?;
            root.draw(&Rectangle::new(
                [(x0, y0), (x0 + l.cw, y0 + l.ch)],
                WHITE.stroke_width(1),
            ))
            .map_err(e)?;
            if !v.is_nan() {
                let txt = format!("{:.*}", spec.decimals, v);
                root.draw(&Text::new(
                    txt,
                    (x0 + l.cw / 2, y0 + l.ch / 2),
                    font(14.0).color(&text_color_on(bg)).pos(centre),
                ))
                .map_err(e)?;
            }
        }
    }
    let right_pos = Pos::new(HPos::Right, VPos::Center);
    for (r, lab) in spec.row_labels.iter().enumerate() {
        root.draw(&Text::new(
            lab.clone(),
            (l.left - 6, l.top + r as i32 * l.ch + l.ch / 2),
            font(14.0).pos(right_pos),
        ))
        .map_err(e)?;
    }
    let grid_bottom = l.top + nr as i32 * l.ch;
    let top_centre = Pos::new(HPos::Center, VPos::Top);
    for (c, lab) in spec.col_labels.iter().enumerate() {
        root.draw(&Text::new(
            lab.clone(),
            (l.left + c as i32 * l.cw + l.cw / 2, grid_bottom + 6),
            font(13.0).pos(top_centre),
        ))
        .map_err(e)?;
    }
    let grid_right = l.left + spec.col_labels.len() as i32 * l.cw;
    if !spec.col_title.is_empty() {
        root.draw(&Text::new(
            spec.col_title.clone(),
            ((l.left + grid_right) / 2, grid_bottom + 34),
            font(15.0).pos(top_centre),
        ))
        .map_err(e)?;
    }
    if !spec.row_title.is_empty() {
        root.draw(&Text::new(
            spec.row_title.clone(),
            (14, (l.top + grid_bottom) / 2),
            font(15.0)
                .transform(FontTransform::Rotate270)
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))
        .map_err(e)?;
    }
    // Colour bar: 100 slices from the top (high) to the bottom (low) of the grid height.
    let bx = grid_right + 24;
    let bh = (grid_bottom - l.top).max(60);
    let steps = 100;
    for i in 0..steps {
        let t = 1.0 - (i as f64 + 0.5) / steps as f64;
        let v = spec.range.0 + t * (spec.range.1 - spec.range.0);
        let y0 = l.top + i * bh / steps;
        let y1 = l.top + (i + 1) * bh / steps;
        root.draw(&Rectangle::new(
            [(bx, y0), (bx + 18, y1 + 1)],
            color_for(spec.colormap, v, spec.range).filled(),
        ))
        .map_err(e)?;
    }
    let left_mid = Pos::new(HPos::Left, VPos::Center);
    for (frac, v) in [
        (0.0, spec.range.1),
        (0.5, 0.5 * (spec.range.0 + spec.range.1)),
        (1.0, spec.range.0),
    ] {
        let y = l.top + (frac * bh as f64) as i32;
        root.draw(&Text::new(
            format!("{v:.0}"),
            (bx + 24, y),
            font(12.0).pos(left_mid),
        ))
        .map_err(e)?;
    }
    if !spec.colorbar_label.is_empty() {
        root.draw(&Text::new(
            spec.colorbar_label.clone(),
            (bx + 9, grid_bottom + 22),
            font(12.0).pos(top_centre),
        ))
        .map_err(e)?;
    }
    Ok(())
}

fn check_heatmap(spec: &HeatmapSpec) -> Result<(), PlotError> {
    if spec.values.len() != spec.row_labels.len() {
        return Err(PlotError::Spec(format!(
            "{} rows but {} row labels",
            spec.values.len(),
            spec.row_labels.len()
        )));
    }
    if let Some(r) = spec
        .values
        .iter()
        .find(|r| r.len() != spec.col_labels.len())
    {
        return Err(PlotError::Spec(format!(
            "a row has {} values but there are {} column labels",
            r.len(),
            spec.col_labels.len()
        )));
    }
    if spec.range.1 <= spec.range.0 || !spec.range.0.is_finite() || !spec.range.1.is_finite() {
        return Err(PlotError::Spec(format!(
            "range {:?} must be finite and increasing",
            spec.range
        )));
    }
    Ok(())
}

/// Draws one heatmap to `<stem>.png` and `<stem>.svg`; returns the two paths.
pub fn heatmap(spec: &HeatmapSpec, stem: &Path) -> Result<Vec<PathBuf>, PlotError> {
    check_heatmap(spec)?;
    let l = heat_layout(spec);
    render_both(stem, (l.width, l.height), spec)
}

/// Draws several heatmaps side by side in a grid with `cols` columns (e.g. one per baseline),
/// with an overall title; returns the two paths.
pub fn heatmap_grid(
    specs: &[HeatmapSpec],
    cols: usize,
    title: &str,
    stem: &Path,
) -> Result<Vec<PathBuf>, PlotError> {
    let cw = specs
        .iter()
        .map(|s| heat_layout(s).width)
        .max()
        .unwrap_or(400);
    let ch = specs
        .iter()
        .map(|s| heat_layout(s).height)
        .max()
        .unwrap_or(400);
    render_grid(specs, check_heatmap, cols, title, (cw, ch), stem)
}
