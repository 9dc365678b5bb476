//! MTurk batch results: one row per assignment, the trials encoded in `Input.trials`, answers in
//! `Answer.choice_NNN` / `Answer.rt_NNN`; and the cross-file rules (rejected, repeated assignments,
//! repeat workers).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use super::time::{is_slash_date, parse_time, slash_date_order, DateOrder, TimeSpan};
use super::{lossy, reason, FileLog, IngestLog, Parsed, RawTrial, Rows, Trial};
use crate::{Result, StudyError};

/// One MTurk assignment before the cross-file rules are applied.
#[derive(Debug, Clone)]
pub(super) struct Assignment {
    assignment_id: String,
    worker: String,
    status: String,
    submit_text: String,
    accept_text: Option<String>,
    /// `None` until the whole file has been read (slash dates need all of its values).
    submit: Option<TimeSpan>,
    order: (usize, u64),
    where_: String,
    trials: Vec<Trial>,
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
    rows: &mut Rows<'_>,
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
    let has_accept = col("AcceptTime").is_some();
    let mut flog = FileLog {
        path: path.display().to_string(),
        format: "mturk".into(),
        rows_read: 0,
        trials_read: 0,
        date_order: None,
    };
    let first = out.len();
    while let Some(next) = rows.next_row() {
        flog.rows_read += 1;
        let line = match next {
            Ok(line) => line,
            Err((line, e)) => {
                log.drop(
                    reason::INVALID,
                    1,
                    0,
                    format!("{}:{} {}", path.display(), line, e),
                );
                continue;
            }
        };
        let rec = &rows.rec;
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
            submit_text: get("SubmitTime"),
            accept_text: has_accept.then(|| get("AcceptTime")),
            submit: None,
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
            match t.to_response(worker.clone(), venue.to_string(), &choice, &rt, &at) {
                Ok(Parsed::Kept(r)) => a.trials.push(r),
                Ok(Parsed::Missing) => missing += 1,
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
    read_times(&mut out[first..], &mut flog, log);
    log.files.push(flog);
    Ok(())
}

/// Parses the times of one file's assignments once all are known: a slash date's order is the
/// file's, from all its values (see [`slash_date_order`]). Every value that does not parse is
/// noted with its `file:line`.
fn read_times(file: &mut [Assignment], flog: &mut FileLog, log: &mut IngestLog) {
    let texts = file
        .iter()
        .flat_map(|a| std::iter::once(&a.submit_text).chain(a.accept_text.as_ref()));
    let order = slash_date_order(texts.clone().map(String::as_str));
    if texts.clone().any(|t| is_slash_date(t)) {
        flog.date_order = Some(order.map_or("mixed (unreadable)", DateOrder::name).into());
    }
    let parse = |text: &str| match (is_slash_date(text), order) {
        (true, None) => None,
        (true, Some(o)) => parse_time(text, o),
        // Only slash dates depend on the order.
        (false, _) => parse_time(text, DateOrder::MonthFirst),
    };
    for a in file {
        a.submit = parse(&a.submit_text);
        if a.submit.is_none() {
            log.unreadable_times
                .note(format!("{} SubmitTime='{}'", a.where_, a.submit_text));
        }
        if let Some(text) = &a.accept_text {
            if parse(text).is_none() {
                log.unreadable_times
                    .note(format!("{} AcceptTime='{}'", a.where_, text));
            }
        }
    }
}

/// Applies the cross-file MTurk rules and flattens the surviving assignments.
pub(super) fn resolve_assignments(mut all: Vec<Assignment>, log: &mut IngestLog) -> Vec<Trial> {
    all.sort_by_key(|a| a.order);
    let mut kept: Vec<Assignment> = Vec::new();
    let mut ids: HashSet<String> = HashSet::new();
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
        if !a.assignment_id.is_empty() && !ids.insert(a.assignment_id.clone()) {
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
    // A repeat worker keeps the assignment submitted certainly before all their others; when no
    // assignment is (a time that does not parse, or overlapping times), none is kept.
    let mut by_worker: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, a) in kept.iter().enumerate() {
        by_worker.entry(a.worker.as_str()).or_default().push(i);
    }
    let mut drop_as: Vec<Option<&'static str>> = vec![None; kept.len()];
    for ids in by_worker.values().filter(|ids| ids.len() > 1) {
        let earliest = ids.iter().copied().find(|&i| {
            ids.iter().all(|&j| {
                i == j
                    || matches!((kept[i].submit, kept[j].submit), (Some(a), Some(b)) if a.before(&b))
            })
        });
        for &j in ids {
            drop_as[j] = match earliest {
                Some(e) if e == j => None,
                Some(_) => Some(reason::DUP_WORKER),
                None => Some(reason::UNORDERED_WORKER),
            };
        }
    }
    let mut out = Vec::new();
    for (a, why) in kept.into_iter().zip(drop_as) {
        match why {
            Some(why) => log.drop(
                why,
                1,
                a.trials.len() as u64,
                format!("{} {} SubmitTime='{}'", a.where_, a.worker, a.submit_text),
            ),
            None => out.extend(a.trials),
        }
    }
    out
}
