//! MTurk batch results: one row per assignment, the trials encoded in `Input.trials`, answers in
//! `Answer.choice_NNN` / `Answer.rt_NNN`; and the cross-file rules (rejected, repeated assignments,
//! repeat workers).

use std::collections::HashMap;
use std::path::Path;

use super::time::parse_mturk_time;
use super::{lossy, reason, FileLog, IngestLog, RawTrial, Response};
use crate::{Result, StudyError};

/// One MTurk assignment before the cross-file rules are applied.
#[derive(Debug, Clone)]
pub(super) struct Assignment {
    assignment_id: String,
    worker: String,
    status: String,
    submit: Option<i64>,
    order: (usize, u64),
    where_: String,
    trials: Vec<Response>,
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

pub(super) fn read_mturk(
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
pub(super) fn resolve_assignments(mut all: Vec<Assignment>, log: &mut IngestLog) -> Vec<Response> {
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
