//! The human study: two-alternative forced-choice (2AFC) trial design, the web experiment page,
//! crowd-platform manifests, response ingest, participant filtering, statistics, figures,
//! simulated participants and power analysis.
//!
//! The flow is `config` (study.toml) -> `design` (trial table, image manifest, web page, crowd
//! manifests) -> responses from people or `simulate` -> `ingest` (every format to tidy rows) ->
//! `cleaning` (deduplication, attention-check exclusion) -> `analysis` (statistics, tables,
//! figures). Every output folder carries a `metadata.json` naming the emobench version, the options,
//! the seed and the SHA-256 of each input file, so each number can be traced to counted rows.

pub mod analysis;
pub mod bootstrap;
pub mod bradley_terry;
pub mod cleaning;
pub mod cli;
pub mod config;
pub mod design;
pub mod figures;
pub mod ingest;
pub mod manifests;
pub mod power;
pub mod simulate;
pub mod stats;
pub mod web;

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Everything that can go wrong in the study pipeline. Messages name the file, the row (1-based
/// line of the CSV, header = line 1) and the offending value where there is one.
#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A CSV file is malformed at a given line.
    #[error("{path}:{line}: {message}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// 1-based line (header is line 1); 0 when unknown.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// A field holds a value that cannot be used.
    #[error("{path}:{line}: column '{column}' has invalid value '{value}': {message}")]
    Value {
        /// The file.
        path: PathBuf,
        /// 1-based line (header is line 1).
        line: u64,
        /// The column name.
        column: String,
        /// The offending value.
        value: String,
        /// Why it cannot be used.
        message: String,
    },
    /// The study definition is invalid.
    #[error("{path}: {message}")]
    Config {
        /// The study.toml (or a file it names).
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The run folders or the study cannot produce a design.
    #[error("design: {0}")]
    Design(String),
    /// The responses leave nothing to analyse, or an argument is out of range.
    #[error("{0}")]
    Invalid(String),
    /// A figure could not be drawn.
    #[error("{path}: plotting failed: {message}")]
    Plot {
        /// The output file.
        path: PathBuf,
        /// The backend's message.
        message: String,
    },
}

/// Result alias for the study module.
pub type Result<T> = std::result::Result<T, StudyError>;

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StudyError + '_ {
    move |source| StudyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, then a rename, so a
/// reader never sees a half-written file and an interrupted run leaves the old file intact.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(bytes).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

/// Serialises rows with the csv crate and writes them atomically.
pub fn write_csv<S: serde::Serialize>(path: &Path, rows: &[S]) -> Result<()> {
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    for r in rows {
        w.serialize(r).map_err(|e| StudyError::Csv {
            path: path.to_path_buf(),
            line: 0,
            message: e.to_string(),
        })?;
    }
    let bytes = w.into_inner().map_err(|e| StudyError::Csv {
        path: path.to_path_buf(),
        line: 0,
        message: e.to_string(),
    })?;
    atomic_write(path, &bytes)
}

/// Writes a header and string records atomically (for tables whose columns are only known at run
/// time).
pub fn write_records(path: &Path, header: &[String], rows: &[Vec<String>]) -> Result<()> {
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    let err = |e: csv::Error| StudyError::Csv {
        path: path.to_path_buf(),
        line: 0,
        message: e.to_string(),
    };
    w.write_record(header).map_err(err)?;
    for r in rows {
        w.write_record(r).map_err(err)?;
    }
    let bytes = w.into_inner().map_err(|e| StudyError::Csv {
        path: path.to_path_buf(),
        line: 0,
        message: e.to_string(),
    })?;
    atomic_write(path, &bytes)
}

/// SHA-256 of a file's bytes as lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    Ok(sha256_hex(&bytes))
}

/// SHA-256 of bytes as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// One input file recorded in `metadata.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct InputFile {
    /// The path as given.
    pub path: String,
    /// SHA-256 of its bytes.
    pub sha256: String,
}

/// Writes `metadata.json` into `dir`: emobench version, command, options, seed and the inputs with
/// their SHA-256, so an output folder documents how it was made.
pub fn write_metadata(
    dir: &Path,
    command: &str,
    options: serde_json::Value,
    seed: Option<u64>,
    inputs: &[PathBuf],
) -> Result<()> {
    write_metadata_file(&dir.join("metadata.json"), command, options, seed, inputs)
}

/// Like [`write_metadata`], to a given file (used beside single output files such as simulated
/// responses: `<name>.metadata.json`).
pub fn write_metadata_file(
    path: &Path,
    command: &str,
    options: serde_json::Value,
    seed: Option<u64>,
    inputs: &[PathBuf],
) -> Result<()> {
    let mut files = Vec::new();
    for p in inputs {
        files.push(InputFile {
            path: p.display().to_string(),
            sha256: sha256_file(p)?,
        });
    }
    let meta = serde_json::json!({
        "emobench_version": env!("CARGO_PKG_VERSION"),
        "command": command,
        "options": options,
        "seed": seed,
        "inputs": files,
    });
    let text =
        serde_json::to_string_pretty(&meta).map_err(|e| StudyError::Invalid(e.to_string()))?;
    atomic_write(path, text.as_bytes())
}

/// A progress bar that draws only when stderr is a terminal, so logs and CI output stay clean.
pub(crate) fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(len);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({eta})")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_string());
    pb
}
