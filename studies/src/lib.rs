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
pub mod config;
pub mod design;
pub mod figures;
pub mod ingest;
pub mod manifests;
pub mod power;
pub mod publish;
pub mod report;
pub mod simulate;
pub mod stats;
pub mod web;

use std::path::{Path, PathBuf};

use emobench_core::image_io::write_atomic;
pub use emobench_core::provenance::sha256_hex;
use emobench_core::provenance::{self, Provenance};

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
    /// `sources.csv` could not be read (the core's reader names the file and row).
    #[error(transparent)]
    Sources(#[from] emobench_core::sources::SourcesError),
    /// The csv reader or writer failed at a given line (0 when unknown).
    #[error("{path}:{line}")]
    CsvFile {
        /// The file.
        path: PathBuf,
        /// 1-based line (header is line 1); 0 when unknown.
        line: u64,
        /// csv's error.
        #[source]
        source: csv::Error,
    },
    /// A JSON file does not parse.
    #[error("{path}: invalid JSON")]
    Json {
        /// The file.
        path: PathBuf,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// A value could not be serialised to JSON.
    #[error("cannot serialise the {what}")]
    Serialize {
        /// What was being serialised.
        what: &'static str,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// study.toml does not parse.
    #[error("{path}")]
    Toml {
        /// The study.toml.
        path: PathBuf,
        /// toml's error.
        #[source]
        source: toml::de::Error,
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

/// Writes `bytes` to `path` atomically (the core's [`write_atomic`]), naming the file on error.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, bytes).map_err(io_err(path))
}

/// Serialises rows with the csv crate and writes them atomically.
pub fn write_csv<S: serde::Serialize>(path: &Path, rows: &[S]) -> Result<()> {
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    for r in rows {
        w.serialize(r).map_err(|source| StudyError::CsvFile {
            path: path.to_path_buf(),
            line: 0,
            source,
        })?;
    }
    let bytes = w.into_inner().map_err(|e| StudyError::CsvFile {
        path: path.to_path_buf(),
        line: 0,
        source: e.into_error().into(),
    })?;
    atomic_write(path, &bytes)
}

/// Writes a header and string records atomically (for tables whose columns are only known at run
/// time).
pub fn write_records(path: &Path, header: &[String], rows: &[Vec<String>]) -> Result<()> {
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    let err = |source: csv::Error| StudyError::CsvFile {
        path: path.to_path_buf(),
        line: 0,
        source,
    };
    w.write_record(header).map_err(err)?;
    for r in rows {
        w.write_record(r).map_err(err)?;
    }
    let bytes = w.into_inner().map_err(|e| StudyError::CsvFile {
        path: path.to_path_buf(),
        line: 0,
        source: e.into_error().into(),
    })?;
    atomic_write(path, &bytes)
}

/// SHA-256 of a file (the core's [`provenance::sha256_file`]), naming the file on error.
pub fn sha256_file(path: &Path) -> Result<String> {
    provenance::sha256_file(path).map_err(io_err(path))
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
        "provenance": Provenance::current(),
        "command": command,
        "options": options,
        "seed": seed,
        "inputs": files,
    });
    let text = serde_json::to_string_pretty(&meta).map_err(|source| StudyError::Serialize {
        what: "metadata",
        source,
    })?;
    atomic_write(path, text.as_bytes())
}

/// A progress bar of `len` steps (the core's, hidden unless stderr is a terminal).
pub(crate) fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    emobench_core::progress::bar(len, what)
}
