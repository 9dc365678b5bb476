//! `sources.csv` and `references.csv`: `id,path,emotion` tables, paths relative to the CSV.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::emotion::{Emotion, UnknownEmotion};
use models::error::Cause;

/// One row of a sources or references table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceImage {
    /// Unique, filesystem-safe identifier.
    pub id: String,
    /// Absolute or CSV-relative path resolved against the CSV's folder.
    pub path: PathBuf,
    /// Emotion label; `None` for neutral images.
    pub emotion: Option<Emotion>,
}

/// Errors reading a sources/references table; each names the file and, where it applies, the row.
#[derive(Debug, thiserror::Error)]
pub enum SourcesError {
    /// The file is not a table we can use (not UTF-8, a header without id,path,emotion).
    #[error("{path}: {message}")]
    Read {
        /// Offending file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The file could not be opened or read.
    #[error("{path}: cannot read")]
    Io {
        /// Offending file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The CSV reader rejected the file (its error names the record and line).
    #[error("{path}: not a valid CSV table")]
    Csv {
        /// Offending file.
        path: PathBuf,
        /// The CSV reader's error.
        source: Cause<csv::Error>,
    },
    /// A row is malformed.
    #[error("{path}:{line}: {message}")]
    Row {
        /// Offending file.
        path: PathBuf,
        /// 1-based line number (the header is line 1).
        line: u64,
        /// What is wrong with the row.
        message: String,
    },
    /// A row's emotion is not one of the eight.
    #[error("{path}:{line}: emotion column")]
    Emotion {
        /// Offending file.
        path: PathBuf,
        /// 1-based line number (the header is line 1).
        line: u64,
        /// The parse error, naming the value.
        source: UnknownEmotion,
    },
}

fn safe_id(id: &str) -> bool {
    !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Reads an `id,path,emotion` table. Ids must be unique and filesystem-safe; an empty emotion means
/// a neutral image; an unknown emotion is an error naming the row.
pub fn read_sources(csv_path: &Path) -> Result<Vec<SourceImage>, SourcesError> {
    let read_err = |message: String| SourcesError::Read {
        path: csv_path.to_path_buf(),
        message,
    };
    let csv_err = |e: csv::Error| SourcesError::Csv {
        path: csv_path.to_path_buf(),
        source: Cause::new(e),
    };
    let bytes = std::fs::read(csv_path).map_err(|source| SourcesError::Io {
        path: csv_path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|_| read_err("not UTF-8 text".into()))?;
    let text = text.trim_start_matches('\u{feff}');
    let base = csv_path.parent().unwrap_or(Path::new("."));
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = rdr.headers().map_err(csv_err)?.clone();
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(ci), Some(cp), Some(ce)) = (col("id"), col("path"), col("emotion")) else {
        return Err(read_err(format!(
            "header must contain id,path,emotion; found '{}'",
            headers.iter().collect::<Vec<_>>().join(",")
        )));
    };
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(csv_err)?;
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        let row = |message: String| SourcesError::Row {
            path: csv_path.to_path_buf(),
            line,
            message,
        };
        if rec.iter().all(str::is_empty) {
            continue;
        }
        if rec.len() != headers.len() {
            return Err(row(format!(
                "{} fields, header has {}",
                rec.len(),
                headers.len()
            )));
        }
        let id = rec.get(ci).unwrap_or_default().to_string();
        if !safe_id(&id) {
            return Err(row(format!(
                "id '{id}' must be non-empty and use only letters, digits, '-', '_', '.'"
            )));
        }
        if !seen.insert(id.clone()) {
            return Err(row(format!("duplicate id '{id}'")));
        }
        let p = rec.get(cp).unwrap_or_default();
        if p.is_empty() {
            return Err(row(format!("empty path for id '{id}'")));
        }
        let emotion = match rec.get(ce).unwrap_or_default() {
            "" => None,
            e => Some(
                e.parse::<Emotion>()
                    .map_err(|source| SourcesError::Emotion {
                        path: csv_path.to_path_buf(),
                        line,
                        source,
                    })?,
            ),
        };
        out.push(SourceImage {
            id,
            path: base.join(p),
            emotion,
        });
    }
    Ok(out)
}
