//! The tidy `responses.csv` format (DESIGN.md's columns; also what the web page downloads).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{lossy, reason, FileLog, IngestLog, Kind, Parsed, RawTrial, Response, Rows, Trial};
use crate::{write_csv, Result, StudyError};

/// The tidy CSV row (DESIGN.md's `responses.csv`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TidyRow {
    /// See [`Response`].
    pub participant: String,
    /// Venue.
    pub venue: String,
    /// Trial number.
    pub trial: u32,
    /// `real` or `check`.
    pub kind: String,
    /// Source id.
    pub source_id: String,
    /// Source emotion or empty.
    pub source_emotion: String,
    /// Target emotion.
    pub target: String,
    /// Left method.
    pub left_method: String,
    /// Right method.
    pub right_method: String,
    /// `left`/`right` or empty.
    pub choice: String,
    /// `left`/`right` for checks, empty otherwise.
    pub correct_side: String,
    /// Milliseconds or empty.
    pub rt_ms: String,
}

impl From<&Response> for TidyRow {
    fn from(r: &Response) -> Self {
        TidyRow {
            participant: r.participant.clone(),
            venue: r.venue.clone(),
            trial: r.trial,
            kind: match r.kind {
                Kind::Real => "real",
                Kind::Check => "check",
            }
            .into(),
            source_id: r.source_id.clone(),
            source_emotion: r.source_emotion.map(|e| e.to_string()).unwrap_or_default(),
            target: r.target.to_string(),
            left_method: r.left_method.clone(),
            right_method: r.right_method.clone(),
            choice: r.choice.map(|s| s.name().to_string()).unwrap_or_default(),
            correct_side: r
                .correct_side
                .map(|s| s.name().to_string())
                .unwrap_or_default(),
            rt_ms: r.rt_ms.map(|v| format!("{v:.0}")).unwrap_or_default(),
        }
    }
}

/// Writes tidy responses.
pub fn write_tidy(path: &Path, responses: &[Response]) -> Result<()> {
    let rows: Vec<TidyRow> = responses.iter().map(TidyRow::from).collect();
    write_csv(path, &rows)
}

pub(super) fn read_tidy(
    path: &Path,
    rows: &mut Rows<'_>,
    headers: &[String],
    log: &mut IngestLog,
    out: &mut Vec<Trial>,
) -> Result<()> {
    let required = [
        "participant",
        "trial",
        "kind",
        "target",
        "left_method",
        "right_method",
        "choice",
    ];
    let col = |name: &str| headers.iter().position(|h| h == name);
    for r in required {
        if col(r).is_none() {
            return Err(StudyError::Csv {
                path: path.to_path_buf(),
                line: 1,
                message: format!("tidy responses need column '{r}'"),
            });
        }
    }
    let format = if col("set").is_some() { "web" } else { "tidy" };
    let mut flog = FileLog {
        path: path.display().to_string(),
        format: format.into(),
        rows_read: 0,
        trials_read: 0,
        date_order: None,
    };
    while let Some(next) = rows.next_row() {
        flog.rows_read += 1;
        let line = match next {
            Ok(line) => line,
            Err((line, e)) => {
                log.drop(
                    reason::INVALID,
                    1,
                    1,
                    format!("{}:{} {}", path.display(), line, e),
                );
                continue;
            }
        };
        flog.trials_read += 1;
        let rec = &rows.rec;
        let get = |name: &str| {
            col(name)
                .and_then(|i| rec.get(i))
                .map(lossy)
                .unwrap_or_default()
        };
        let at = format!("{}:{}", path.display(), line);
        let participant = get("participant");
        if participant.is_empty() {
            log.drop(reason::NO_PARTICIPANT, 1, 1, at);
            continue;
        }
        let fields = RawTrial {
            trial: get("trial"),
            kind: get("kind"),
            source_id: get("source_id"),
            source_emotion: get("source_emotion"),
            target: get("target"),
            left_method: get("left_method"),
            right_method: get("right_method"),
            correct_side: get("correct_side"),
        };
        let venue = get("venue");
        match fields.to_response(
            participant,
            if venue.is_empty() {
                "unknown".into()
            } else {
                venue
            },
            &get("choice"),
            &get("rt_ms"),
            &at,
        ) {
            Ok(Parsed::Kept(t)) => out.push(t),
            Ok(Parsed::Missing) => log.drop(reason::MISSING, 1, 1, at),
            Err(what) => log.drop(reason::INVALID, 1, 1, format!("{at} {what}")),
        }
    }
    log.files.push(flog);
    Ok(())
}
