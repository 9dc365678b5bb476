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
use crate::emotion::Emotion;

/// A screen side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Reference method against a baseline.
    Real,
    /// Attention check with a known correct side.
    Check,
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
    super::write_csv(path, &rows)
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
        ingest_bytes(
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

/// One MTurk assignment before the cross-file rules are applied.
#[derive(Debug, Clone)]
struct Assignment {
    assignment_id: String,
    worker: String,
    status: String,
    submit: Option<i64>,
    order: (usize, u64),
    where_: String,
    trials: Vec<Response>,
}

/// Parses one file's bytes. Public within the crate for the robustness property test.
pub fn ingest_bytes_for_test(path: &Path, bytes: &[u8]) -> Result<(Vec<Response>, IngestLog)> {
    let mut log = IngestLog::default();
    let mut tidy = Vec::new();
    let mut asg = Vec::new();
    ingest_bytes(path, 0, bytes, "online", &mut log, &mut tidy, &mut asg)?;
    let mut out = resolve_assignments(asg, &mut log);
    out.extend(tidy);
    Ok((out, log))
}

fn ingest_bytes(
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
        .map_err(|e| StudyError::Csv {
            path: path.to_path_buf(),
            line: 1,
            message: e.to_string(),
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

fn read_tidy(
    path: &Path,
    rdr: &mut csv::Reader<&[u8]>,
    headers: &[String],
    log: &mut IngestLog,
    out: &mut Vec<Response>,
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
    };
    let mut rec = csv::ByteRecord::new();
    loop {
        let line = rdr.position().line();
        match rdr.read_byte_record(&mut rec) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                flog.rows_read += 1;
                log.drop(
                    reason::INVALID,
                    1,
                    1,
                    format!("{}:{} {}", path.display(), line, e),
                );
                // A broken record may leave the reader unable to continue; stop this file.
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    break;
                }
                continue;
            }
        }
        flog.rows_read += 1;
        flog.trials_read += 1;
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
        ) {
            Ok(Some(r)) => out.push(r),
            Ok(None) => log.drop(reason::MISSING, 1, 1, at),
            Err(what) => log.drop(reason::INVALID, 1, 1, format!("{at} {what}")),
        }
    }
    log.files.push(flog);
    Ok(())
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

/// Separator between trials in the MTurk `trials` input field, and between fields of one trial.
/// Neither can occur in ids, emotion names, method names or image file names.
pub const TRIAL_SEP: char = ';';
/// See [`TRIAL_SEP`].
pub const FIELD_SEP: char = '|';

/// Decodes the `trials` field of the MTurk batch input: per trial
/// `trial|kind|source_id|source_emotion|target|left_method|right_method|left_image|right_image|correct_side`.
fn decode_trials(s: &str) -> std::result::Result<Vec<(RawTrial, String, String)>, String> {
    let mut out = Vec::new();
    for t in s.split(TRIAL_SEP).filter(|t| !t.trim().is_empty()) {
        let f: Vec<&str> = t.split(FIELD_SEP).collect();
        if f.len() != 10 {
            return Err(format!(
                "trial entry '{t}' has {} fields, expected 10",
                f.len()
            ));
        }
        out.push((
            RawTrial {
                trial: f[0].trim().into(),
                kind: f[1].trim().into(),
                source_id: f[2].trim().into(),
                source_emotion: f[3].trim().into(),
                target: f[4].trim().into(),
                left_method: f[5].trim().into(),
                right_method: f[6].trim().into(),
                correct_side: f[9].trim().into(),
            },
            f[7].trim().to_string(),
            f[8].trim().to_string(),
        ));
    }
    Ok(out)
}

fn read_mturk(
    path: &Path,
    fi: usize,
    rdr: &mut csv::Reader<&[u8]>,
    headers: &[String],
    venue: &str,
    log: &mut IngestLog,
    out: &mut Vec<Assignment>,
) -> Result<()> {
    let col = |name: &str| headers.iter().position(|h| h == name);
    let Some(c_trials) = col("Input.trials") else {
        return Err(StudyError::Csv {
            path: path.to_path_buf(),
            line: 1,
            message: "MTurk results without an 'Input.trials' column (was the batch made by `trials design`?)".into(),
        });
    };
    let mut flog = FileLog {
        path: path.display().to_string(),
        format: "mturk".into(),
        rows_read: 0,
        trials_read: 0,
    };
    let mut rec = csv::ByteRecord::new();
    loop {
        let line = rdr.position().line();
        match rdr.read_byte_record(&mut rec) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                flog.rows_read += 1;
                log.drop(
                    reason::INVALID,
                    1,
                    0,
                    format!("{}:{} {}", path.display(), line, e),
                );
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    break;
                }
                continue;
            }
        }
        flog.rows_read += 1;
        let get = |name: &str| {
            col(name)
                .and_then(|i| rec.get(i))
                .map(lossy)
                .unwrap_or_default()
        };
        let at = format!("{}:{}", path.display(), line);
        let raw = rec.get(c_trials).map(lossy).unwrap_or_default();
        let decoded = match decode_trials(&raw) {
            Ok(d) => d,
            Err(what) => {
                log.drop(reason::INVALID, 1, 0, format!("{at} Input.trials: {what}"));
                continue;
            }
        };
        flog.trials_read += decoded.len() as u64;
        let worker = get("WorkerId");
        let mut a = Assignment {
            assignment_id: get("AssignmentId"),
            worker: worker.clone(),
            status: get("AssignmentStatus"),
            submit: parse_mturk_time(&get("SubmitTime")),
            order: (fi, line),
            where_: at.clone(),
            trials: Vec::new(),
        };
        if worker.is_empty() {
            log.drop(reason::NO_PARTICIPANT, 1, decoded.len() as u64, at);
            continue;
        }
        let mut missing = 0u64;
        let mut invalid = 0u64;
        let mut first_invalid = String::new();
        for (t, _, _) in &decoded {
            let n: u32 = t.trial.parse().unwrap_or(0);
            let choice = get(&format!("Answer.choice_{n:03}"));
            let rt = get(&format!("Answer.rt_{n:03}"));
            match t.to_response(worker.clone(), venue.to_string(), &choice, &rt) {
                Ok(Some(r)) => a.trials.push(r),
                Ok(None) => missing += 1,
                Err(what) => {
                    invalid += 1;
                    if first_invalid.is_empty() {
                        first_invalid = format!("{at} trial {n}: {what}");
                    }
                }
            }
        }
        if missing > 0 {
            log.drop(
                reason::MISSING,
                0,
                missing,
                format!("{at} ({missing} trials)"),
            );
        }
        if invalid > 0 {
            log.drop(reason::INVALID, 0, invalid, first_invalid);
        }
        out.push(a);
    }
    log.files.push(flog);
    Ok(())
}

/// Applies the cross-file MTurk rules and flattens the surviving assignments.
fn resolve_assignments(mut all: Vec<Assignment>, log: &mut IngestLog) -> Vec<Response> {
    all.sort_by_key(|a| a.order);
    let mut kept: Vec<Assignment> = Vec::new();
    let mut ids: HashMap<String, ()> = HashMap::new();
    for a in all {
        let n = a.trials.len() as u64;
        if a.status.eq_ignore_ascii_case("rejected") {
            log.drop(
                reason::REJECTED,
                1,
                n,
                format!("{} {}", a.where_, a.assignment_id),
            );
            continue;
        }
        if !a.assignment_id.is_empty() && ids.insert(a.assignment_id.clone(), ()).is_some() {
            log.drop(
                reason::DUP_ASSIGNMENT,
                1,
                n,
                format!("{} {}", a.where_, a.assignment_id),
            );
            continue;
        }
        kept.push(a);
    }
    // Earliest submission per worker; unparsable times sort after parsable ones, then read order.
    kept.sort_by(|a, b| {
        (a.submit.is_none(), a.submit, a.order).cmp(&(b.submit.is_none(), b.submit, b.order))
    });
    let mut workers: HashMap<String, ()> = HashMap::new();
    let mut out = Vec::new();
    let mut flat: Vec<Assignment> = Vec::new();
    for a in kept {
        if workers.insert(a.worker.clone(), ()).is_some() {
            log.drop(
                reason::DUP_WORKER,
                1,
                a.trials.len() as u64,
                format!("{} {}", a.where_, a.worker),
            );
            continue;
        }
        flat.push(a);
    }
    flat.sort_by_key(|a| a.order);
    for a in flat {
        out.extend(a.trials);
    }
    out
}

/// Parses MTurk's `SubmitTime` (`Wed Mar 06 10:15:01 PST 2024`) to seconds since 1970 UTC.
/// Also accepts ISO 8601 `2024-03-06T10:15:01Z`. `None` when it cannot be read.
pub fn parse_mturk_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Some(v) = parse_iso(s) {
        return Some(v);
    }
    let parts: Vec<&str> = s.split_whitespace().collect();
    if parts.len() != 6 {
        return None;
    }
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = months.iter().position(|m| *m == parts[1])? as i64 + 1;
    let day: i64 = parts[2].parse().ok()?;
    let hms: Vec<i64> = parts[3]
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<Vec<_>>>()?;
    if hms.len() != 3 {
        return None;
    }
    let offset_h = match parts[4] {
        "UTC" | "GMT" => 0,
        "PST" => -8,
        "PDT" => -7,
        "EST" => -5,
        "EDT" => -4,
        "CST" => -6,
        "CDT" => -5,
        "MST" => -7,
        "MDT" => -6,
        _ => return None,
    };
    let year: i64 = parts[5].parse().ok()?;
    Some(
        days_from_civil(year, month, day) * 86400 + hms[0] * 3600 + hms[1] * 60 + hms[2]
            - offset_h * 3600,
    )
}

fn parse_iso(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z').unwrap_or(s);
    let (d, t) = s.split_once('T')?;
    let dp: Vec<i64> = d
        .split('-')
        .map(|x| x.parse().ok())
        .collect::<Option<Vec<_>>>()?;
    let tp: Vec<i64> = t
        .split(':')
        .map(|x| x.split('.').next().and_then(|y| y.parse().ok()))
        .collect::<Option<Vec<_>>>()?;
    if dp.len() != 3 || tp.len() != 3 {
        return None;
    }
    Some(days_from_civil(dp[0], dp[1], dp[2]) * 86400 + tp[0] * 3600 + tp[1] * 60 + tp[2])
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mturk_times_order_across_zones() {
        let a = parse_mturk_time("Wed Mar 06 10:15:01 PST 2024");
        let b = parse_mturk_time("Wed Mar 06 13:15:00 EST 2024");
        assert!(a.is_some() && b.is_some());
        assert!(b < a);
        assert_eq!(parse_mturk_time("1970-01-02T00:00:00Z"), Some(86400));
        assert_eq!(parse_mturk_time("garbage"), None);
    }
}
