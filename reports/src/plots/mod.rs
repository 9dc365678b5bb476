//! Shared plotting helpers, one file per chart kind: [`heatmap`] (confusion / preference matrices),
//! [`bars`] (grouped bar charts with error bars) and [`lines`] (series against x), each written as
//! PNG and SVG from one output stem through [`render`]; colours and fonts in [`style`].
//!
//! Text uses DejaVu Sans embedded in the binary (the `dejavu` crate) and registered with plotters'
//! `ab_glyph` font table, so nothing from the system (fontconfig, freetype) is needed and figures
//! look the same on every machine. Files are written atomically (temporary file, then rename).
//!
//! ```no_run
//! use reports::plots::{heatmap, HeatmapSpec};
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
use std::path::PathBuf;

pub mod bars;
pub mod heatmap;
pub mod lines;
pub mod render;
pub mod style;

pub use bars::{bar_chart, bar_grid, BarChartSpec, BarSeries};
pub use heatmap::{heatmap, heatmap_grid, HeatmapSpec};
pub use lines::{line_chart, line_grid, LineChartSpec, LineSeries};
pub use render::{render_both, Figure};
pub use style::{color_for, register_fonts, series_color, ColorMap, FONT};

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
