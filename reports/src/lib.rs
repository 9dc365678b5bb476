//! What renders emobench's results for people, and the files a scoring run writes: per-image CSV,
//! Table 1 in four formats ([`table1`] aggregates, [`export`] renders), 8x8 confusion matrices
//! ([`confusion`]: CSV, PNG, SVG), the missing-output list and the run metadata; the shared
//! [`plots`] and Grad-CAM [`overlay`]s. Computation lives in `emobench_core`; this crate only
//! turns its values into files.

pub mod confusion;
pub mod export;
pub mod iterations;
pub mod overlay;
pub mod plots;
pub mod site;

use std::path::{Path, PathBuf};

use serde::Serialize;

use emobench_core::emotion::Emotion;
use emobench_core::image_io::write_atomic;
use emobench_core::number::shortest;
use emobench_core::score::ScoreResult;
use emobench_core::table1::{summarise, Subset};
use export::{exporters, Table1Report};

/// Errors writing a report; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The file could not be written.
    #[error("{path}")]
    Write {
        /// File being written.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A value could not be serialised.
    #[error("{path}")]
    Json {
        /// File being written.
        path: PathBuf,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// A figure could not be drawn.
    #[error(transparent)]
    Plot(#[from] plots::PlotError),
}

pub(crate) fn write_bytes(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    write_atomic(path, bytes).map_err(|source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn write_text(path: &Path, text: &str) -> Result<(), ReportError> {
    write_bytes(path, text.as_bytes())
}

/// Serialises `value` as pretty JSON (with a final newline) into `path` atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), ReportError> {
    let mut s = serde_json::to_string_pretty(value).map_err(|source| ReportError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    s.push('\n');
    write_text(path, &s)
}

/// `field` as one CSV field (RFC 4180): quoted when it holds a comma, quote or line break.
/// Method names and source ids are restricted to safe characters; paths are not.
pub fn csv_field(field: &str) -> std::borrow::Cow<'_, str> {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\"")).into()
    } else {
        field.into()
    }
}

/// What produced a score report: the lines shown at the top of its human-readable files (the
/// stand-in notice first when there is one) and the `predictor` column of its CSVs.
#[derive(Debug, Clone)]
pub struct ReportNotes {
    /// Lines for Markdown, LaTeX and figure subtitles (CSV files carry none: they start with
    /// their header).
    pub lines: Vec<String>,
    /// `PredictorSource::label`: `stand-in` or the checkpoint's file name.
    pub predictor: String,
}

/// The per-image CSV of DESIGN.md's data contract, with a last `predictor` column.
pub fn scores_csv(result: &ScoreResult, predictor: &str) -> String {
    let mut s = String::from("method,source_id,source_emotion,target,p_src_target,p_gen_target,argmax_src,argmax_gen,emr,esr,kl_src,kl_gen,enrd,ess,ssim,l1");
    for prefix in ["p_src_", "p_gen_"] {
        for e in Emotion::ALL {
            s.push_str(&format!(",{prefix}{e}"));
        }
    }
    s.push_str(",predictor\n");
    for r in &result.rows {
        let t = r.target.emoset_index();
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.method,
            r.source_id,
            r.source_emotion.map(|e| e.name()).unwrap_or(""),
            r.target,
            shortest(r.p_src[t]),
            shortest(r.p_gen[t]),
            r.argmax_src,
            r.argmax_gen,
            u8::from(r.m.emr),
            u8::from(r.m.esr),
            shortest(r.m.kl_src),
            shortest(r.m.kl_gen),
            shortest(r.m.enrd),
            shortest(r.m.ess),
            shortest(r.m.ssim),
            shortest(r.m.l1)
        ));
        for p in r.p_src.iter().chain(r.p_gen.iter()) {
            s.push(',');
            s.push_str(&shortest(*p));
        }
        s.push(',');
        s.push_str(predictor);
        s.push('\n');
    }
    s
}

/// Writes every report file into `out`; returns the paths written.
pub fn write_score_report<M: Serialize>(
    out: &Path,
    result: &ScoreResult,
    notes: &ReportNotes,
    metadata: &M,
) -> Result<Vec<PathBuf>, ReportError> {
    let mut written = Vec::new();
    let mut put = |name: &str, text: String| -> Result<(), ReportError> {
        let p = out.join(name);
        write_text(&p, &text)?;
        written.push(p);
        Ok(())
    };
    put("scores.csv", scores_csv(result, &notes.predictor))?;
    let mut missing = String::from("method,source_id,target,path\n");
    for m in &result.missing {
        missing.push_str(&format!(
            "{},{},{},{}\n",
            m.method,
            m.source_id,
            m.target,
            csv_field(&m.path)
        ));
    }
    put("missing.csv", missing)?;
    let report = Table1Report {
        notes: notes.lines.clone(),
        predictor: notes.predictor.clone(),
        subsets: Subset::ALL
            .iter()
            .map(|s| (*s, summarise(&result.rows, &result.methods, *s)))
            .collect(),
    };
    for e in exporters() {
        put(&format!("table1.{}", e.extension()), e.render(&report))?;
    }
    written.extend(confusion::write_confusion(
        &out.join("confusion"),
        result,
        notes,
    )?);
    let meta = out.join("report.json");
    write_json(&meta, metadata)?;
    written.push(meta);
    Ok(written)
}
