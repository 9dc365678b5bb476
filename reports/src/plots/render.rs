//! Drawing a [`Figure`] to PNG and SVG atomically, and grids of panels.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::style::{bold, register_fonts};
use super::PlotError;

/// Something that can draw itself on any plotters backend; implement it to render a custom figure
/// with [`render_both`] and get the same PNG + SVG, font and atomic-write conventions.
pub trait Figure {
    /// Draws onto `area` (already filled white).
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), String>;
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
/// Panels of one kind in a grid under a title.
pub(crate) struct Grid<'a, F> {
    pub(crate) title: &'a str,
    pub(crate) size: (u32, u32),
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) panels: &'a [F],
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
