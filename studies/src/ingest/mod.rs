//! Reading response files into tidy responses, one per answered trial.
//!
//! Three formats are recognised from the header:
//! - tidy `responses.csv` (DESIGN.md columns), which is also what the web page downloads (it adds
//!   columns such as `set`, `platform`, `assignment_id`, which are ignored here);
//! - MTurk batch results (`AssignmentId`, `WorkerId`, `AssignmentStatus`, `SubmitTime`,
//!   `Input.trials`, `Answer.choice_NNN`, `Answer.rt_NNN`), one row per assignment.
//!
//! Rules (each drop is counted under its reason in [`IngestLog`]): a UTF-8 BOM and CRLF line ends
//! are accepted, quoted fields may hold commas and newlines, invalid UTF-8 is replaced rather than
//! fatal; rejected assignments are dropped; a repeated assignment id keeps its first occurrence; a
//! worker seen in several assignments (e.g. two batches) keeps the earliest by `SubmitTime`; a real
//! trial without an answer is dropped; a check without an answer is kept and later counts as an
//! error; a repeated (participant, trial) keeps its first occurrence.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{io_err, Result, StudyError};

mod mturk;
mod tidy;
mod time;

use emobench_core::emotion::Emotion;
use mturk::{read_mturk, resolve_assignments, Assignment};
pub use mturk::{FIELD_SEP, TRIAL_SEP};
use tidy::read_tidy;
pub use tidy::{write_tidy, TidyRow};
pub use time::parse_mturk_time;

/// A screen side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// Left image.
    Left,
    /// Right image.
    Right,
}

impl Side {
    /// `left` or `right`.
    pub fn name(self) -> &'static str {
        match self {
            Side::Left => "left",
            Side::Right => "right",
        }
    }
    /// Parses `left`/`right` (also `l`/`r`, `0`/`1`), case-insensitive.
    pub fn parse(s: &str) -> Option<Side> {
        match s.trim().to_ascii_lowercase().as_str() {
            "left" | "l" | "0" => Some(Side::Left),
            "right" | "r" | "1" => Some(Side::Right),
            _ => None,
        }
    }
}

/// Real comparison or attention check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Reference method against a baseline.
    Real,
    /// Attention check with a known correct side.
    Check,
}

impl Kind {
    /// `real` or `check`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Real => "real",
            Kind::Check => "check",
        }
    }
}

/// One answered (or, for checks, possibly unanswered) trial.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// Who answered (worker id, PROLIFIC_PID, lab id).
    pub participant: String,
    /// Venue label (`online`, `in-lab`, ...).
    pub venue: String,
    /// Position in the participant's sequence.
    pub trial: u32,
    /// Real or check.
    pub kind: Kind,
    /// Source id (check id for checks).
    pub source_id: String,
    /// Source emotion if known.
    pub source_emotion: Option<Emotion>,
    /// Target emotion.
    pub target: Emotion,
    /// Method on the left.
    pub left_method: String,
    /// Method on the right.
    pub right_method: String,
    /// The answer; `None` only for an unanswered check.
    pub choice: Option<Side>,
    /// Correct side of a check.
    pub correct_side: Option<Side>,
    /// Response time in milliseconds.
    pub rt_ms: Option<f64>,
}

/// Rows and trials dropped for one reason.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct DropCount {
    /// CSV rows (assignments for MTurk, trials for tidy files).
    pub rows: u64,
    /// Trials inside those rows.
    pub trials: u64,
    /// Up to five examples, `file:line value`.
    pub examples: Vec<String>,
}

/// Per-file ingest counts.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FileLog {
    /// The file.
    pub path: String,
    /// `tidy`, `web` or `mturk`.
    pub format: String,
    /// Data rows read (after the header).
    pub rows_read: u64,
    /// Trials found in those rows (answered or not).
    pub trials_read: u64,
}

/// What ingest read and dropped.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct IngestLog {
    /// One entry per input file.
    pub files: Vec<FileLog>,
    /// Drops by reason.
    pub dropped: BTreeMap<String, DropCount>,
    /// Checks kept without an answer (they count as errors).
    pub unanswered_checks: u64,
    /// Responses passed on to cleaning.
    pub responses_kept: u64,
}

impl IngestLog {
    fn drop(&mut self, reason: &str, rows: u64, trials: u64, example: String) {
        let d = self.dropped.entry(reason.to_string()).or_default();
        d.rows += rows;
        d.trials += trials;
        if d.examples.len() < 5 && !example.is_empty() {
            d.examples.push(example);
        }
    }
}

/// Drop reasons, as they appear in the cleaning report.
pub mod reason {
    /// MTurk AssignmentStatus = Rejected.
    pub const REJECTED: &str = "rejected assignment";
    /// Same AssignmentId seen before.
    pub const DUP_ASSIGNMENT: &str = "duplicate assignment id";
    /// Same worker in an earlier-submitted assignment.
    pub const DUP_WORKER: &str = "worker already seen (later submission)";
    /// A real trial without an answer.
    pub const MISSING: &str = "missing answer (real trial)";
    /// A field that does not parse.
    pub const INVALID: &str = "invalid value";
    /// Same (participant, trial) seen before.
    pub const DUP_TRIAL: &str = "duplicate (participant, trial)";
    /// Row without a participant id.
    pub const NO_PARTICIPANT: &str = "no participant id";
}

/// Strips a leading UTF-8 byte-order mark.
pub fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

fn reader(bytes: &[u8]) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(true)
        .from_reader(strip_bom(bytes))
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim().to_string()
}

/// Reads several response files (any mix of formats) into responses, applying the ingest rules
/// across all of them. `venue` is used where a file does not name one (MTurk results).
pub fn ingest_files(paths: &[PathBuf], venue: &str) -> Result<(Vec<Response>, IngestLog)> {
    let mut log = IngestLog::default();
    let mut tidy: Vec<Response> = Vec::new();
    let mut assignments: Vec<Assignment> = Vec::new();
    for (fi, path) in paths.iter().enumerate() {
        let bytes = std::fs::read(path).map_err(io_err(path))?;
        ingest_one(
            path,
            fi,
            &bytes,
            venue,
            &mut log,
            &mut tidy,
            &mut assignments,
        )?;
    }
    let mut out = resolve_assignments(assignments, &mut log);
    out.extend(tidy);
    // Repeated (participant, trial): the first occurrence in file order wins.
    let mut seen: HashMap<(String, u32), ()> = HashMap::new();
    let mut kept = Vec::with_capacity(out.len());
    for r in out {
        if seen.insert((r.participant.clone(), r.trial), ()).is_some() {
            log.drop(
                reason::DUP_TRIAL,
                1,
                1,
                format!("{} trial {}", r.participant, r.trial),
            );
            continue;
        }
        kept.push(r);
    }
    log.unanswered_checks = kept.iter().filter(|r| r.choice.is_none()).count() as u64;
    log.responses_kept = kept.len() as u64;
    Ok((kept, log))
}

/// Parses one response file held in memory (read from stdin, an upload, an archive); `path` only
/// names it in messages and the log. The same rules as [`ingest_files`] apply.
pub fn ingest_bytes(path: &Path, bytes: &[u8], venue: &str) -> Result<(Vec<Response>, IngestLog)> {
    let mut log = IngestLog::default();
    let mut tidy = Vec::new();
    let mut asg = Vec::new();
    ingest_one(path, 0, bytes, venue, &mut log, &mut tidy, &mut asg)?;
    let mut out = resolve_assignments(asg, &mut log);
    out.extend(tidy);
    Ok((out, log))
}

fn ingest_one(
    path: &Path,
    fi: usize,
    bytes: &[u8],
    venue: &str,
    log: &mut IngestLog,
    tidy: &mut Vec<Response>,
    assignments: &mut Vec<Assignment>,
) -> Result<()> {
    let mut rdr = reader(bytes);
    let headers: Vec<String> = rdr
        .byte_headers()
        .map_err(|source| StudyError::CsvFile {
            path: path.to_path_buf(),
            line: 1,
            source,
        })?
        .iter()
        .map(lossy)
        .collect();
    let col = |name: &str| headers.iter().position(|h| h == name);
    if col("AssignmentId").is_some() && col("WorkerId").is_some() {
        read_mturk(path, fi, &mut rdr, &headers, venue, log, assignments)
    } else if col("participant").is_some() && col("choice").is_some() {
        read_tidy(path, &mut rdr, &headers, log, tidy)
    } else {
        Err(StudyError::Csv {
            path: path.to_path_buf(),
            line: 1,
            message: format!(
                "unrecognised response file: expected a tidy header (participant,...,choice,...) or MTurk batch results (AssignmentId, WorkerId, ...); got {} columns starting with {:?}",
                headers.len(),
                headers.iter().take(3).collect::<Vec<_>>()
            ),
        })
    }
}

struct RawTrial {
    trial: String,
    kind: String,
    source_id: String,
    source_emotion: String,
    target: String,
    left_method: String,
    right_method: String,
    correct_side: String,
}

impl RawTrial {
    /// `Ok(None)`: a real trial without an answer. `Err`: the offending column and value.
    fn to_response(
        &self,
        participant: String,
        venue: String,
        choice: &str,
        rt: &str,
    ) -> std::result::Result<Option<Response>, String> {
        let trial: u32 = self
            .trial
            .parse()
            .map_err(|_| format!("trial='{}'", self.trial))?;
        let kind = match self.kind.as_str() {
            "real" => Kind::Real,
            "check" => Kind::Check,
            k => return Err(format!("kind='{k}'")),
        };
        let target: Emotion = self
            .target
            .parse()
            .map_err(|_| format!("target='{}'", self.target))?;
        let source_emotion = if self.source_emotion.is_empty() {
            None
        } else {
            Some(
                self.source_emotion
                    .parse::<Emotion>()
                    .map_err(|_| format!("source_emotion='{}'", self.source_emotion))?,
            )
        };
        let choice = if choice.is_empty() {
            None
        } else {
            Some(Side::parse(choice).ok_or_else(|| format!("choice='{choice}'"))?)
        };
        let correct_side = if self.correct_side.is_empty() {
            None
        } else {
            Some(
                Side::parse(&self.correct_side)
                    .ok_or_else(|| format!("correct_side='{}'", self.correct_side))?,
            )
        };
        if kind == Kind::Check && correct_side.is_none() {
            return Err("check without correct_side".into());
        }
        if kind == Kind::Real && (self.left_method.is_empty() || self.right_method.is_empty()) {
            return Err("real trial without both methods".into());
        }
        if kind == Kind::Real && choice.is_none() {
            return Ok(None);
        }
        let rt_ms = if rt.is_empty() {
            None
        } else {
            match rt.parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => Some(v),
                _ => return Err(format!("rt_ms='{rt}'")),
            }
        };
        Ok(Some(Response {
            participant,
            venue,
            trial,
            kind,
            source_id: self.source_id.clone(),
            source_emotion,
            target,
            left_method: self.left_method.clone(),
            right_method: self.right_method.clone(),
            choice,
            correct_side,
            rt_ms,
        }))
    }
}
