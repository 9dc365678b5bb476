//! Reading response files into tidy responses, one per answered trial.
//!
//! Three formats are recognised from the header:
//! - tidy `responses.csv` (DESIGN.md columns), which is also what the web page downloads (it adds
//!   columns such as `set`, `platform`, `assignment_id`, which are ignored here);
//! - MTurk batch results (`AssignmentId`, `WorkerId`, `AssignmentStatus`, `SubmitTime`,
//!   `Input.trials`, `Answer.choice_NNN`, `Answer.rt_NNN`), one row per assignment.
//!
//! Rules (each drop is counted under its reason in [`IngestLog`], with `file:line` examples
//! counted in physical lines, so a quoted field holding newlines moves the next row down): a
//! UTF-8 BOM and CRLF line ends are accepted, quoted fields may hold commas and newlines, invalid
//! UTF-8 is replaced rather than fatal; rejected assignments are dropped; a repeated assignment id
//! keeps its first occurrence; a worker seen in several assignments (e.g. two batches) keeps the
//! earliest by `SubmitTime` (read as [`time`] describes), and when which one is earliest cannot be
//! told (a time does not parse, or two times overlap: same second, or same minute after a
//! spreadsheet dropped the seconds) all of that worker's assignments are dropped, never ordered
//! by file position; every time that does not parse is counted and named; a real trial without
//! an answer is dropped; a check whose answer is missing or does not parse (choice or response
//! time) is kept as a check error; a repeated (participant, trial) keeps its first occurrence.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{io_err, Result, StudyError};

mod mturk;
mod tidy;
pub mod time;

use emobench_core::emotion::Emotion;
use mturk::{read_mturk, resolve_assignments, Assignment};
pub use mturk::{FIELD_SEP, TRIAL_SEP};
use tidy::read_tidy;
pub use tidy::{write_tidy, TidyRow};
pub use time::{parse_time, DateOrder, TimeSpan};

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
    /// How the file's slash dates (`3/10/2024`) were read, when it has any: `month/day/year`,
    /// `day/month/year`, or `mixed (unreadable)` when it holds both kinds of sign.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_order: Option<String>,
}

/// Values kept but flagged in the cleaning report.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Flagged {
    /// How many.
    pub count: u64,
    /// Up to five examples, `file:line what`.
    pub examples: Vec<String>,
}

impl Flagged {
    fn note(&mut self, example: String) {
        self.count += 1;
        if self.examples.len() < 5 {
            self.examples.push(example);
        }
    }
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
    /// Checks kept whose answer does not parse, e.g. `choice='on'` (they count as errors).
    pub unparsed_check_answers: Flagged,
    /// `SubmitTime` / `AcceptTime` values that do not parse (MTurk files); a repeat worker with
    /// one is dropped under [`reason::UNORDERED_WORKER`].
    pub unreadable_times: Flagged,
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
    /// Same worker in several assignments whose earliest cannot be told (all of them dropped).
    pub const UNORDERED_WORKER: &str = "repeat worker, order of submissions unknown";
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

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim().to_string()
}

/// The data records of one file with their physical line numbers. The csv reader's own line
/// count is one low after a CRLF (it ends a record at the CR and reads the LF with the next
/// record), so lines are counted here from the record's byte offset.
pub(super) struct Rows<'a> {
    rdr: csv::Reader<&'a [u8]>,
    data: &'a [u8],
    counted_to: usize,
    line: u64,
    /// The record last read.
    pub rec: csv::ByteRecord,
}

impl<'a> Rows<'a> {
    fn new(data: &'a [u8]) -> Self {
        Rows {
            rdr: csv::ReaderBuilder::new()
                .flexible(true)
                .has_headers(true)
                .from_reader(data),
            data,
            counted_to: 0,
            line: 1,
            rec: csv::ByteRecord::new(),
        }
    }

    /// The next record's line, or that line and why the csv reader rejected the record.
    pub fn next_row(&mut self) -> Option<std::result::Result<u64, (u64, csv::Error)>> {
        let before = self.rdr.position().byte();
        match self.rdr.read_byte_record(&mut self.rec) {
            Ok(false) => None,
            Ok(true) => {
                let at = self.rec.position().map_or(before, |p| p.byte());
                Some(Ok(self.line_at(at)))
            }
            Err(e) => {
                let at = e.position().map_or(before, |p| p.byte());
                Some(Err((self.line_at(at), e)))
            }
        }
    }

    /// Physical line of the record starting at byte `at` (offsets only grow).
    fn line_at(&mut self, at: u64) -> u64 {
        let data = self.data;
        // Skip what ends the previous line (the LF of a CRLF) and blank lines the reader skips.
        let mut start = usize::try_from(at).unwrap_or(usize::MAX).min(data.len());
        while start < data.len() && matches!(data[start], b'\r' | b'\n') {
            start += 1;
        }
        for i in self.counted_to..start.max(self.counted_to) {
            let lone_cr = data[i] == b'\r' && data.get(i + 1) != Some(&b'\n');
            if data[i] == b'\n' || lone_cr {
                self.line += 1;
            }
        }
        self.counted_to = self.counted_to.max(start);
        self.line
    }
}

/// One trial as read, before the cross-file rules; `bad_answer` names a check answer that did
/// not parse (the response then has no choice and counts as an error).
#[derive(Debug, Clone)]
pub(super) struct Trial {
    response: Response,
    bad_answer: Option<String>,
}

/// Reads several response files (any mix of formats) into responses, applying the ingest rules
/// across all of them. `venue` is used where a file does not name one (MTurk results).
pub fn ingest_files(paths: &[PathBuf], venue: &str) -> Result<(Vec<Response>, IngestLog)> {
    let mut read = Read::default();
    for (fi, path) in paths.iter().enumerate() {
        let bytes = std::fs::read(path).map_err(io_err(path))?;
        ingest_one(path, fi, &bytes, venue, &mut read)?;
    }
    Ok(read.finish())
}

/// Parses one response file held in memory (read from stdin, an upload, an archive); `path` only
/// names it in messages and the log. The same rules as [`ingest_files`] apply.
pub fn ingest_bytes(path: &Path, bytes: &[u8], venue: &str) -> Result<(Vec<Response>, IngestLog)> {
    let mut read = Read::default();
    ingest_one(path, 0, bytes, venue, &mut read)?;
    Ok(read.finish())
}

/// Everything read so far, before the cross-file rules.
#[derive(Default)]
struct Read {
    log: IngestLog,
    tidy: Vec<Trial>,
    assignments: Vec<Assignment>,
}

impl Read {
    fn finish(mut self) -> (Vec<Response>, IngestLog) {
        let log = &mut self.log;
        let mut out = resolve_assignments(self.assignments, log);
        out.extend(self.tidy);
        // Repeated (participant, trial): the first occurrence in file order wins.
        let mut seen: HashSet<(String, u32)> = HashSet::new();
        let mut kept = Vec::with_capacity(out.len());
        for t in out {
            let r = t.response;
            if !seen.insert((r.participant.clone(), r.trial)) {
                log.drop(
                    reason::DUP_TRIAL,
                    1,
                    1,
                    format!("{} trial {}", r.participant, r.trial),
                );
                continue;
            }
            match t.bad_answer {
                Some(what) => log.unparsed_check_answers.note(what),
                None if r.choice.is_none() => log.unanswered_checks += 1,
                None => {}
            }
            kept.push(r);
        }
        log.responses_kept = kept.len() as u64;
        (kept, self.log)
    }
}

fn ingest_one(path: &Path, fi: usize, bytes: &[u8], venue: &str, read: &mut Read) -> Result<()> {
    let mut rows = Rows::new(strip_bom(bytes));
    let headers: Vec<String> = rows
        .rdr
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
        read_mturk(
            path,
            fi,
            &mut rows,
            &headers,
            venue,
            &mut read.log,
            &mut read.assignments,
        )
    } else if col("participant").is_some() && col("choice").is_some() {
        read_tidy(path, &mut rows, &headers, &mut read.log, &mut read.tidy)
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

/// What one trial's fields gave.
pub(super) enum Parsed {
    /// A response to keep.
    Kept(Trial),
    /// A real trial without an answer (dropped).
    Missing,
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
    /// `Err`: the offending column and value. A check's answer (choice and response time) that
    /// does not parse is no error here: the check is kept without a choice, as an error of the
    /// participant's, and `at` (`file:line`) names it.
    fn to_response(
        &self,
        participant: String,
        venue: String,
        choice: &str,
        rt: &str,
        at: &str,
    ) -> std::result::Result<Parsed, String> {
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
        let choice_read = if choice.is_empty() {
            Ok(None)
        } else {
            Side::parse(choice)
                .map(Some)
                .ok_or_else(|| format!("choice='{choice}'"))
        };
        let rt_read = if rt.is_empty() {
            Ok(None)
        } else {
            match rt.parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => Ok(Some(v)),
                _ => Err(format!("rt_ms='{rt}'")),
            }
        };
        let (choice, rt_ms, bad_answer) = match (kind, choice_read, rt_read) {
            (Kind::Real, Ok(None), _) => return Ok(Parsed::Missing),
            (Kind::Real, Err(what), _) | (Kind::Real, _, Err(what)) => return Err(what),
            (Kind::Real, Ok(c), Ok(rt)) => (c, rt, None),
            (Kind::Check, Ok(c), Ok(rt)) => (c, rt, None),
            (Kind::Check, Err(what), rt) => (None, rt.ok().flatten(), Some(what)),
            (Kind::Check, Ok(_), Err(what)) => (None, None, Some(what)),
        };
        Ok(Parsed::Kept(Trial {
            response: Response {
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
            },
            bad_answer: bad_answer.map(|what| format!("{at} trial {trial}: {what}")),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(data: &[u8]) -> Vec<u64> {
        let mut rows = Rows::new(data);
        let mut out = Vec::new();
        while let Some(r) = rows.next_row() {
            out.push(r.map_err(|(l, _)| l).unwrap_or_else(|l| l));
        }
        out
    }

    #[test]
    fn physical_lines_for_any_line_end() {
        // Records start on lines 2, 3 and 6 (a quoted field spans lines 3-4, line 5 is blank).
        // The csv reader's own record lines here are 2, 3, 5 (LF), 1, 2, 4 (CRLF), 1, 1, 1 (CR).
        let lf = b"h1,h2\na,b\n\"c\nd\",e\n\nf,g\n".to_vec();
        assert_eq!(lines(&lf), [2, 3, 6]);
        let crlf = String::from_utf8(lf.clone())
            .expect("utf8")
            .replace('\n', "\r\n");
        assert_eq!(lines(crlf.as_bytes()), [2, 3, 6]);
        let cr = String::from_utf8(lf).expect("utf8").replace('\n', "\r");
        assert_eq!(lines(cr.as_bytes()), [2, 3, 6]);
        assert_eq!(lines(b"h1,h2\r\na,b"), [2]);
        assert_eq!(lines(b"h1,h2"), Vec::<u64>::new());
    }
}
