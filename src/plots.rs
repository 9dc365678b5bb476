//! Shared plotting helpers: heatmaps (confusion / preference matrices) and grouped bar charts with
//! error bars, each written as PNG and SVG from one output stem.
//!
//! Text uses DejaVu Sans embedded in the binary (the `dejavu` crate) and registered with plotters'
//! `ab_glyph` font table, so nothing from the system (fontconfig, freetype) is needed and figures
//! look the same on every machine. Files are written atomically (temporary file, then rename).
//!
//! ```no_run
//! use emobench::plots::{heatmap, HeatmapSpec};
//! let spec = HeatmapSpec {
//!     title: "EMR %".into(),
//!     values: vec![vec![50.0, f64::NAN], vec![12.5, 80.0]],
//!     row_labels: vec!["anger".into(), "fear".into()],
//!     col_labels: vec!["awe".into(), "amusement".into()],
//!     range: (0.0, 100.0),
//!     ..HeatmapSpec::default()
//! };
//! let files = heatmap(&spec, std::path::Path::new("reports/x/emr_matrix")).unwrap();
//! assert_eq!(files.len(), 2); // emr_matrix.png, emr_matrix.svg
//! ```

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontStyle;

/// Font family name under which the embedded DejaVu Sans is registered.
pub const FONT: &str = "sans-serif";

/// Errors from drawing or writing a figure.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The output file could not be written or renamed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Plotters failed while drawing.
    #[error("{path}: drawing failed: {message}")]
    Draw {
        /// The file being drawn.
        path: PathBuf,
        /// Plotters' message.
        message: String,
    },
    /// The spec is inconsistent (e.g. label count differs from the matrix shape).
    #[error("invalid figure spec: {0}")]
    Spec(String),
}

static FONTS: Once = Once::new();

/// Registers the embedded DejaVu Sans (regular and bold) as [`FONT`]. Called by every drawing
/// function here; call it yourself before drawing with plotters directly.
pub fn register_fonts() {
    FONTS.call_once(|| {
        // Both fonts are valid TrueType files shipped inside the dejavu crate, so registration
        // cannot fail in practice; if it ever did, text would be missing but nothing would panic.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
    });
}

/// Colour scale of a heatmap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorMap {
    /// Sequential, dark blue to yellow (viridis-like): rates, distances.
    #[default]
    Viridis,
    /// Diverging, blue - white - red around the middle of the range: preferences around 50%.
    Diverging,
}

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

const PALETTE: [RGBColor; 8] = [
    RGBColor(55, 126, 184),
    RGBColor(228, 26, 28),
    RGBColor(77, 175, 74),
    RGBColor(152, 78, 163),
    RGBColor(255, 127, 0),
    RGBColor(166, 86, 40),
    RGBColor(247, 129, 191),
    RGBColor(120, 120, 120),
];

/// Colour of series `i` in bar charts (a fixed qualitative palette, cycling).
pub fn series_color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

fn lerp(a: (f64, f64, f64), b: (f64, f64, f64), t: f64) -> (f64, f64, f64) {
    (
        a.0 + (b.0 - a.0) * t,
        a.1 + (b.1 - a.1) * t,
        a.2 + (b.2 - a.2) * t,
    )
}

fn ramp(stops: &[(f64, f64, f64)], t: f64) -> RGBColor {
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    let n = stops.len() - 1;
    let x = t * n as f64;
    let i = (x.floor() as usize).min(n - 1);
    let c = lerp(stops[i], stops[i + 1], x - i as f64);
    RGBColor(c.0 as u8, c.1 as u8, c.2 as u8)
}

/// Colour of value `v` on a colour map over `range`.
pub fn color_for(map: ColorMap, v: f64, range: (f64, f64)) -> RGBColor {
    let span = range.1 - range.0;
    let t = if span > 0.0 {
        (v - range.0) / span
    } else {
        0.5
    };
    match map {
        ColorMap::Viridis => ramp(
            &[
                (68.0, 1.0, 84.0),
                (59.0, 82.0, 139.0),
                (33.0, 145.0, 140.0),
                (94.0, 201.0, 98.0),
                (253.0, 231.0, 37.0),
            ],
            t,
        ),
        ColorMap::Diverging => ramp(
            &[
                (33.0, 102.0, 172.0),
                (146.0, 197.0, 222.0),
                (247.0, 247.0, 247.0),
                (244.0, 165.0, 130.0),
                (178.0, 24.0, 43.0),
            ],
            t,
        ),
    }
}

fn text_color_on(bg: RGBColor) -> RGBColor {
    let lum = 0.299 * bg.0 as f64 + 0.587 * bg.1 as f64 + 0.114 * bg.2 as f64;
    if lum < 128.0 {
        WHITE
    } else {
        BLACK
    }
}

fn font(size: f64) -> TextStyle<'static> {
    (FONT, size).into_font().color(&BLACK)
}

fn bold(size: f64) -> TextStyle<'static> {
    (FONT, size)
        .into_font()
        .style(FontStyle::Bold)
        .color(&BLACK)
}

fn text_width(s: &str, size: f64) -> u32 {
    // DejaVu Sans averages about 0.6 em per character; exact measurement is not worth a backend.
    (s.chars().count() as f64 * size * 0.6).ceil() as u32
}

/// Something that can draw itself on any plotters backend; implement it to render a custom figure
/// with [`render_both`] and get the same PNG + SVG, font and atomic-write conventions.
pub trait Figure {
    /// Draws onto `area` (already filled white).
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

impl Figure for HeatmapSpec {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), String> {
        draw_heatmap(area, self)
    }
}

impl Figure for BarChartSpec {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), String> {
        draw_bars(area, self)
    }
}

/// Draws a [`Figure`] into `<stem>.png` and `<stem>.svg` of `size` pixels and returns both paths.
pub fn render_both<F: Figure>(
    stem: &Path,
    size: (u32, u32),
    fig: &F,
) -> Result<Vec<PathBuf>, PlotError> {
    register_fonts();
    let png = stem.with_extension("png");
    let svg = stem.with_extension("svg");
    let dir = match png.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|source| PlotError::Io {
        path: dir.clone(),
        source,
    })?;
    let name = png
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "figure".into());
    // The bitmap backend picks the encoder from the extension, so the temporary name keeps `.png`.
    let tmp = dir.join(format!(".{name}.tmp{}.png", std::process::id()));
    {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        let err = |message: String| PlotError::Draw {
            path: png.clone(),
            message,
        };
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        fig.draw(&root).map_err(err)?;
        root.present().map_err(|e| PlotError::Draw {
            path: png.clone(),
            message: e.to_string(),
        })?;
    }
    std::fs::rename(&tmp, &png).map_err(|source| PlotError::Io {
        path: png.clone(),
        source,
    })?;
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        let err = |message: String| PlotError::Draw {
            path: svg.clone(),
            message,
        };
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        fig.draw(&root).map_err(err)?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    let tmp_svg = dir.join(format!(".{name}.tmp{}.svg", std::process::id()));
    std::fs::write(&tmp_svg, text.as_bytes()).map_err(|source| PlotError::Io {
        path: tmp_svg.clone(),
        source,
    })?;
    std::fs::rename(&tmp_svg, &svg).map_err(|source| PlotError::Io {
        path: svg.clone(),
        source,
    })?;
    Ok(vec![png, svg])
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
    if specs.is_empty() || cols == 0 {
        return Err(PlotError::Spec("no heatmaps to draw".into()));
    }
    for s in specs {
        check_heatmap(s)?;
    }
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
    let rows = specs.len().div_ceil(cols);
    let size = (cw * cols.min(specs.len()) as u32, ch * rows as u32 + 40);
    let grid = Grid {
        title,
        size,
        rows,
        cols: cols.min(specs.len()),
        panels: specs,
    };
    render_both(stem, size, &grid)
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
    if panels.is_empty() || cols == 0 {
        return Err(PlotError::Spec("no panels to draw".into()));
    }
    for p in panels {
        check_bars(p)?;
    }
    let cols = cols.min(panels.len());
    let rows = panels.len().div_ceil(cols);
    let size = (panel_size.0 * cols as u32, panel_size.1 * rows as u32 + 40);
    let grid = Grid {
        title,
        size,
        rows,
        cols,
        panels,
    };
    render_both(stem, size, &grid)
}

/// Panels of one kind in a grid under a title.
struct Grid<'a, F> {
    title: &'a str,
    size: (u32, u32),
    rows: usize,
    cols: usize,
    panels: &'a [F],
}

impl<F: Figure> Figure for Grid<'_, F> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.draw(&Text::new(
            self.title.to_string(),
            (self.size.0 as i32 / 2, 18),
            bold(20.0).pos(Pos::new(HPos::Center, VPos::Center)),
        ))
        .map_err(|e| e.to_string())?;
        let body = root.margin(40, 0, 0, 0);
        for (a, p) in body
            .split_evenly((self.rows, self.cols))
            .iter()
            .zip(self.panels)
        {
            p.draw(a)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_cover_the_range() {
        assert_eq!(
            color_for(ColorMap::Diverging, 50.0, (0.0, 100.0)),
            RGBColor(247, 247, 247)
        );
        assert_eq!(
            color_for(ColorMap::Viridis, -5.0, (0.0, 100.0)),
            RGBColor(68, 1, 84)
        );
        assert_eq!(
            color_for(ColorMap::Viridis, f64::NAN, (0.0, 100.0)),
            RGBColor(68, 1, 84)
        );
    }
}
