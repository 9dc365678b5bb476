//! Drawing a [`Figure`] to PNG and SVG atomically, and grids of panels.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use emobench_core::image_io::write_atomic;
use image::ImageEncoder;

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
    let (w, h) = size;
    let mut pixels = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        let err = |message: String| PlotError::Draw {
            path: png.clone(),
            message,
        };
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        fig.draw(&root).map_err(err)?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    let mut encoded = Vec::new();
    image::codecs::png::PngEncoder::new(&mut encoded)
        .write_image(&pixels, w, h, image::ExtendedColorType::Rgb8)
        .map_err(|e| PlotError::Draw {
            path: png.clone(),
            message: e.to_string(),
        })?;
    write_atomic(&png, &encoded).map_err(|source| PlotError::Io {
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
    write_atomic(&svg, text.as_bytes()).map_err(|source| PlotError::Io {
        path: svg.clone(),
        source,
    })?;
    Ok(vec![png, svg])
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

/// Draws `panels` (each checked by `check`) in a grid, row-major with `cols` per row, under one
/// title, each panel `panel_size` pixels, to `<stem>.png` and `<stem>.svg`.
pub(crate) fn render_grid<F: Figure>(
    panels: &[F],
    check: impl Fn(&F) -> Result<(), PlotError>,
    cols: usize,
    title: &str,
    panel_size: (u32, u32),
    stem: &Path,
) -> Result<Vec<PathBuf>, PlotError> {
    if panels.is_empty() || cols == 0 {
        return Err(PlotError::Spec("no panels to draw".into()));
    }
    for p in panels {
        check(p)?;
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
