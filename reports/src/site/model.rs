//! What the report page shows, read from the files other commands wrote: the inputs a user names,
//! and the page's content before it becomes HTML.

use std::path::PathBuf;

/// What `emobench report` reads. Every part is optional; the page shows what it is given.
#[derive(Debug, Clone, Default)]
pub struct SiteInputs {
    /// Folders written by `emobench score` (`scores.csv`, `table1.json`, `report.json`,
    /// `confusion/`), one Table-1 section each.
    pub scores: Vec<PathBuf>,
    /// A runs folder (`<method>/<source_id>/<target>.png`, `run.json`, traces), for the gallery,
    /// the critic traces and the run records.
    pub runs: Option<PathBuf>,
    /// The `sources.csv` of the runs; by default the one the first score report names.
    pub sources: Option<PathBuf>,
    /// A folder written by `emobench trials analyse`.
    pub study: Option<PathBuf>,
    /// Folders written by `emobench iterations` (Fig. S11).
    pub iterations: Vec<PathBuf>,
    /// Longest side of the gallery's thumbnails, in pixels.
    pub thumbnail: u32,
}

/// A file the page needs beside it: copied as is, or as a JPEG thumbnail.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Asset {
    /// The input file.
    pub from: PathBuf,
    /// Path inside the site folder, `/`-separated.
    pub to: String,
    /// Longest side of a thumbnail; `None` copies the bytes.
    pub thumbnail: Option<u32>,
}

/// One `emobench score` folder.
#[derive(Debug, Clone)]
pub(crate) struct ScoreSection {
    /// Shown name (the folder's name) and the anchor prefix of its rows.
    pub label: String,
    /// Slug for element ids.
    pub slug: String,
    /// The lines that say what produced the numbers (stand-in notice first).
    pub notes: Vec<String>,
    /// Whether the predictor was the stand-in.
    pub stand_in: bool,
    /// `report.json`, pretty-printed.
    pub report_json: String,
    /// Site path of the copied `report.json` and `scores.csv`.
    pub files: Vec<(String, String)>,
    /// Measured Table-1 rows, subset by subset.
    pub table: Vec<TableRow>,
    /// The paper's Table 1.
    pub paper: Vec<TableRow>,
    /// (method, metric label, site path of the PNG).
    pub confusion: Vec<(String, String, String)>,
    /// Per-image rows.
    pub rows: Vec<ScoreLine>,
}

/// One row of Table 1.
#[derive(Debug, Clone)]
pub(crate) struct TableRow {
    pub subset: String,
    pub method: String,
    pub n: Option<u64>,
    pub emr: f64,
    pub esr: f64,
    pub enrd: f64,
    pub ess: f64,
    pub ssim: Option<f64>,
    pub l1: Option<f64>,
}

/// One row of `scores.csv`, as the page shows it.
#[derive(Debug, Clone)]
pub(crate) struct ScoreLine {
    pub method: String,
    pub source_id: String,
    pub source_emotion: String,
    pub target: String,
    pub p_gen_target: String,
    pub argmax_gen: String,
    pub emr: String,
    pub esr: String,
    pub enrd: String,
    pub ess: String,
    pub ssim: String,
    pub l1: String,
}

/// The gallery in the layout of Fig. 6: a row per (source, target), a column per method.
#[derive(Debug, Clone)]
pub(crate) struct Gallery {
    pub methods: Vec<String>,
    pub rows: Vec<GalleryRow>,
}

/// One (source, target) of the gallery.
#[derive(Debug, Clone)]
pub(crate) struct GalleryRow {
    pub source_id: String,
    /// Empty for a neutral source.
    pub source_emotion: String,
    pub target: String,
    /// Site path of the source's thumbnail.
    pub source_image: Option<String>,
    /// Per method: the thumbnail and the id of its scores row, when scored.
    pub cells: Vec<Option<GalleryCell>>,
}

/// One edited image of the gallery.
#[derive(Debug, Clone)]
pub(crate) struct GalleryCell {
    pub image: String,
    pub score_anchor: Option<String>,
    /// The id of its critic trace on the page, when it has one.
    pub trace_anchor: Option<String>,
}

/// One image's critic trace (`<target>.trace.json`).
#[derive(Debug, Clone)]
pub(crate) struct Trace {
    pub anchor: String,
    pub method: String,
    pub source_id: String,
    pub target: String,
    pub profile: String,
    pub stopped: String,
    /// Index of the kept image (0 is the source).
    pub kept: u64,
    pub passes: Vec<TracePass>,
}

/// One pass of a critic trace.
#[derive(Debug, Clone)]
pub(crate) struct TracePass {
    pub pass: u64,
    pub t: Option<i64>,
    pub ssim: f64,
    pub predicted: String,
    pub target_prob: f64,
    pub accepted: bool,
    pub kept: bool,
}

/// One method's `run.json`.
#[derive(Debug, Clone)]
pub(crate) struct RunRecord {
    pub method: String,
    pub version: String,
    pub commit: String,
    pub seed: String,
    pub parameters: String,
    /// (role, path, SHA-256, stand-in).
    pub weights: Vec<(String, String, String, bool)>,
    /// Site path of the copied file.
    pub file: String,
    pub json: String,
}

/// A CSV shown as a table.
#[derive(Debug, Clone, Default)]
pub(crate) struct CsvTable {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// The human study (`trials analyse` output).
#[derive(Debug, Clone)]
pub(crate) struct StudySection {
    /// (caption, site path) of each figure present.
    pub figures: Vec<(String, String)>,
    /// `cleaning.md`, shown as preformatted text.
    pub cleaning: String,
    pub preferences: CsvTable,
    /// Site paths of the copied CSV and JSON files.
    pub files: Vec<(String, String)>,
}

/// One iteration study (Fig. S11).
#[derive(Debug, Clone)]
pub(crate) struct IterationsSection {
    pub label: String,
    pub figures: Vec<String>,
    pub table: CsvTable,
    pub files: Vec<(String, String)>,
}

/// Everything on the page.
#[derive(Debug, Clone, Default)]
pub(crate) struct Site {
    /// What produced the page (tool, version, commit, command).
    pub provenance: String,
    /// Stand-ins, named at the top.
    pub stand_ins: Vec<String>,
    pub scores: Vec<ScoreSection>,
    pub gallery: Option<Gallery>,
    pub traces: Vec<Trace>,
    pub runs: Vec<RunRecord>,
    pub study: Option<StudySection>,
    pub iterations: Vec<IterationsSection>,
    pub assets: Vec<Asset>,
}
