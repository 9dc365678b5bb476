//! `emobench report`: one static page of everything a run made: Table 1 beside the paper, the
//! confusion heatmaps, a gallery in the layout of Fig. 6, EmoEditor's critic traces, the iteration
//! study (Fig. S11), the human study's figures and tables, and every run's `run.json`.
//!
//! The page reads from `file://` or any web server: relative links only, no network, no
//! framework. [`collect`] reads the inputs into a [`model::Site`], [`html`] renders it, [`write`]
//! writes it with its images.

mod collect;
mod error;
mod html;
mod model;
mod write;

use std::path::{Path, PathBuf};

pub use error::SiteError;
pub use model::SiteInputs;

/// Default longest side of the gallery's thumbnails.
pub const DEFAULT_THUMBNAIL: u32 = 320;

const CSS: &str = include_str!("assets/report.css");
const JS: &str = include_str!("assets/report.js");

/// What was written.
#[derive(Debug, Clone)]
pub struct SiteSummary {
    /// `out/index.html`.
    pub index: PathBuf,
    /// Every file written, the page last.
    pub files: Vec<PathBuf>,
    /// Gallery rows (source, target) and traces shown.
    pub gallery_rows: usize,
    /// Critic traces shown.
    pub traces: usize,
    /// Stand-ins named at the top of the page.
    pub stand_ins: Vec<String>,
}

/// Builds the page from `inputs` into `out`; `provenance` is the line saying what built it.
pub fn build_site(
    inputs: &SiteInputs,
    out: &Path,
    provenance: String,
) -> Result<SiteSummary, SiteError> {
    let site = collect::collect(inputs, provenance)?;
    let page = html::page(&site);
    let files = write::write_site(
        out,
        &page,
        &site.assets,
        &[("assets/report.css", CSS), ("assets/report.js", JS)],
    )?;
    Ok(SiteSummary {
        index: out.join("index.html"),
        files,
        gallery_rows: site.gallery.as_ref().map_or(0, |g| g.rows.len()),
        traces: site.traces.len(),
        stand_ins: site.stand_ins,
    })
}
