//! The LMS run folder's two CSV files: `captions.csv` (one row per source) and
//! `instructions.csv` (one row per (source, target)). Plain CSV with a header first (pandas and
//! R read them with default options); every write replaces the whole file atomically (a
//! temporary file in the same folder, then a rename). Users may hand in either file instead of
//! running BLIP or the language model: only `source_id,caption` (captions) or
//! `source_id,target,instruction` (instructions) are required, other columns may be empty.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One caption of a source image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptionRow {
    /// The source's id (`sources.csv`).
    pub source_id: String,
    /// The caption.
    pub caption: String,
    /// What wrote it: a model name, or `user` / `hand-written`.
    #[serde(default)]
    pub captioner: String,
    /// SHA-256 of the captioning model's weights (empty when not a model).
    #[serde(default)]
    pub captioner_sha256: String,
}

/// One instruction for a (source, target) pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstructionRow {
    /// The source's id.
    pub source_id: String,
    /// The target emotion word.
    pub target: String,
    /// The caption the prompt was built from.
    #[serde(default)]
    pub caption: String,
    /// The user message sent to the language model (before the chat template).
    #[serde(default)]
    pub prompt: String,
    /// The model's whole answer.
    #[serde(default)]
    pub answer: String,
    /// The instruction given to InstructPix2Pix (the answer's first line, trimmed).
    pub instruction: String,
    /// The language model (GGUF file name), or `user`.
    #[serde(default)]
    pub llm: String,
    /// SHA-256 of the GGUF file (empty when not a model).
    #[serde(default)]
    pub llm_sha256: String,
}

/// Why a cache file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// I/O on the file.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A row could not be serialised.
    #[error("{path}: cannot write a row")]
    Csv {
        /// The file.
        path: PathBuf,
        /// csv's error.
        source: csv::Error,
    },
    /// A row does not parse (missing column, bad quoting).
    #[error("{path}: row {row}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based data row (the header is row 0).
        row: usize,
        /// The csv crate's message.
        reason: String,
    },
    /// The same key appears twice.
    #[error("{path}: row {row}: duplicate entry for {key}")]
    Duplicate {
        /// The file.
        path: PathBuf,
        /// 1-based data row.
        row: usize,
        /// The repeated key.
        key: String,
    },
}

/// A row with a key (source, or source and target).
pub trait Keyed {
    /// The row's key.
    fn key(&self) -> String;
}

impl Keyed for CaptionRow {
    fn key(&self) -> String {
        self.source_id.clone()
    }
}

impl Keyed for InstructionRow {
    fn key(&self) -> String {
        format!("{}/{}", self.source_id, self.target)
    }
}

/// Reads a cache file (rows in file order); a missing file reads as empty.
pub fn read_rows<R: Keyed + for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<R>, CacheError> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(path)
        .map_err(|e| CacheError::Parse {
            path: path.to_path_buf(),
            row: 0,
            reason: e.to_string(),
        })?;
    let mut rows: Vec<R> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, rec) in rdr.deserialize::<R>().enumerate() {
        let row = rec.map_err(|e| CacheError::Parse {
            path: path.to_path_buf(),
            row: i + 1,
            reason: e.to_string(),
        })?;
        if !seen.insert(row.key()) {
            return Err(CacheError::Duplicate {
                path: path.to_path_buf(),
                row: i + 1,
                key: row.key(),
            });
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Writes rows (header first) atomically, with the core's writer (temporary file, then rename).
pub fn write_rows<R: Serialize>(path: &Path, rows: &[R]) -> Result<(), CacheError> {
    let csv_err = |e: csv::Error| CacheError::Csv {
        path: path.to_path_buf(),
        source: e,
    };
    let mut wtr = csv::Writer::from_writer(Vec::new());
    for r in rows {
        wtr.serialize(r).map_err(csv_err)?;
    }
    let bytes = wtr
        .into_inner()
        .map_err(|e| csv_err(e.into_error().into()))?;
    emobench_core::image_io::write_atomic(path, &bytes).map_err(|source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Rows by key, keeping file order; `upsert` replaces a row with the same key or appends.
#[derive(Debug, Clone)]
pub struct Table<R> {
    rows: Vec<R>,
}

impl<R: Keyed + Clone> Table<R> {
    /// A table of the given rows.
    pub fn new(rows: Vec<R>) -> Self {
        Self { rows }
    }

    /// The row with this key.
    pub fn get(&self, key: &str) -> Option<&R> {
        self.rows.iter().find(|r| r.key() == key)
    }

    /// Inserts or replaces by key.
    pub fn upsert(&mut self, row: R) {
        let key = row.key();
        match self.rows.iter_mut().find(|r| r.key() == key) {
            Some(slot) => *slot = row,
            None => self.rows.push(row),
        }
    }

    /// The rows.
    pub fn rows(&self) -> &[R] {
        &self.rows
    }
}
