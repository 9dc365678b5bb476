//! Writes the page and its files: index.html, the stylesheet and script, copies of the inputs it
//! links, and JPEG thumbnails for the gallery. Every file is written atomically.

use std::path::{Path, PathBuf};

use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;

use emobench_core::image_io::load_rgb;

use super::error::SiteError;
use super::model::Asset;

/// JPEG quality of the gallery thumbnails.
const THUMBNAIL_QUALITY: u8 = 88;

fn put(path: &Path, bytes: &[u8]) -> Result<(), SiteError> {
    Ok(crate::write_bytes(path, bytes)?)
}

/// A thumbnail of at most `side` pixels on its longer side (never enlarged), as JPEG bytes.
fn thumbnail(from: &Path, side: u32, to: &Path) -> Result<Vec<u8>, SiteError> {
    let img = load_rgb(from).map_err(|source| SiteError::Image {
        path: from.to_path_buf(),
        source,
    })?;
    let (w, h) = img.dimensions();
    let scale = f64::from(side) / f64::from(w.max(h));
    let img = if scale < 1.0 {
        let nw = ((f64::from(w) * scale).round() as u32).max(1);
        let nh = ((f64::from(h) * scale).round() as u32).max(1);
        image::imageops::resize(&img, nw, nh, FilterType::Triangle)
    } else {
        img
    };
    let mut bytes = Vec::new();
    JpegEncoder::new_with_quality(&mut bytes, THUMBNAIL_QUALITY)
        .encode_image(&img)
        .map_err(|source| SiteError::Encode {
            path: to.to_path_buf(),
            source,
        })?;
    Ok(bytes)
}

/// Writes `html` as `out/index.html` with its assets; returns the files written.
pub(crate) fn write_site(
    out: &Path,
    html: &str,
    assets: &[Asset],
    static_files: &[(&str, &str)],
) -> Result<Vec<PathBuf>, SiteError> {
    let mut written = Vec::with_capacity(assets.len() + 3);
    let pb = emobench_core::progress::bar(assets.len() as u64, "report files");
    for a in assets {
        let to = out.join(&a.to);
        let bytes = match a.thumbnail {
            Some(side) => thumbnail(&a.from, side, &to)?,
            None => std::fs::read(&a.from).map_err(|source| SiteError::Read {
                path: a.from.clone(),
                source,
            })?,
        };
        put(&to, &bytes)?;
        written.push(to);
        pb.inc(1);
    }
    pb.finish_and_clear();
    for (name, text) in static_files {
        let to = out.join(name);
        put(&to, text.as_bytes())?;
        written.push(to);
    }
    // The page last: a reader who sees index.html sees every file it links.
    let index = out.join("index.html");
    put(&index, html.as_bytes())?;
    written.push(index);
    Ok(written)
}
