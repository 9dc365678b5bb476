//! Participant filtering by the attention-check rule, and the data-cleaning report.
//!
//! The paper's rule: a participant with more than one wrong answer in the six checks is excluded.
//! Here: more than `max_check_errors` errors excludes; a check whose answer is missing or does not
//! parse (ingest keeps it without a choice) is an error; a participant with no check at all is
//! excluded (nothing shows they paid attention).

use std::collections::BTreeMap;

use serde::Serialize;

use super::ingest::{IngestLog, Kind, Response, Side};

/// Why a participant was kept or excluded, and their counts.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ParticipantStatus {
    /// Participant id.
    pub participant: String,
    /// Venue of their first response.
    pub venue: String,
    /// Real trials answered.
    pub real_trials: u64,
    /// Checks presented (answered or not).
    pub checks: u64,
    /// Wrong checks, and checks whose answer is missing or does not parse.
    pub check_errors: u64,
    /// Kept for the statistics.
    pub kept: bool,
    /// `kept`, `too many check errors` or `no attention checks`.
    pub reason: String,
}

/// The outcome of cleaning.
#[derive(Debug, Clone)]
pub struct Cleaned {
    /// Real trials of kept participants (checks removed).
    pub real: Vec<Response>,
    /// Every participant with their status, sorted by id.
    pub participants: Vec<ParticipantStatus>,
}

/// Applies the attention rule.
pub fn apply_attention_rule(responses: &[Response], max_check_errors: u32) -> Cleaned {
    let mut by: BTreeMap<&str, ParticipantStatus> = BTreeMap::new();
    for r in responses {
        let s = by
            .entry(r.participant.as_str())
            .or_insert_with(|| ParticipantStatus {
                participant: r.participant.clone(),
                venue: r.venue.clone(),
                real_trials: 0,
                checks: 0,
                check_errors: 0,
                kept: false,
                reason: String::new(),
            });
        match r.kind {
            Kind::Real => s.real_trials += 1,
            Kind::Check => {
                s.checks += 1;
                let ok = matches!((r.choice, r.correct_side), (Some(a), Some(b)) if a == b);
                if !ok {
                    s.check_errors += 1;
                }
            }
        }
    }
    for s in by.values_mut() {
        if s.checks == 0 {
            s.reason = "no attention checks".into();
        } else if s.check_errors > u64::from(max_check_errors) {
            s.reason = "too many check errors".into();
        } else {
            s.kept = true;
            s.reason = "kept".into();
        }
    }
    let real = responses
        .iter()
        .filter(|r| r.kind == Kind::Real && by.get(r.participant.as_str()).is_some_and(|s| s.kept))
        .cloned()
        .collect();
    Cleaned {
        real,
        participants: by.into_values().collect(),
    }
}

/// The data-cleaning report: every count from rows read to trials analysed.
#[derive(Debug, Clone, Serialize)]
pub struct CleaningReport {
    /// Ingest counts per file and drops per reason.
    pub ingest: IngestLog,
    /// The exclusion threshold used.
    pub max_check_errors: u32,
    /// Participants seen after ingest.
    pub participants_seen: u64,
    /// Participants kept.
    pub participants_kept: u64,
    /// Excluded participants per reason.
    pub participants_excluded: BTreeMap<String, u64>,
    /// Share kept.
    pub pass_rate: f64,
    /// Distribution of check errors: errors -> participants.
    pub check_error_histogram: BTreeMap<u64, u64>,
    /// Real trials of kept participants.
    pub real_trials_kept: u64,
    /// Real trials of excluded participants.
    pub real_trials_excluded: u64,
    /// Check trials (all removed from the statistics).
    pub check_trials: u64,
    /// Kept real trials per compared method.
    pub trials_per_baseline: BTreeMap<String, u64>,
    /// Kept real trials per direction.
    pub trials_per_direction: BTreeMap<String, u64>,
    /// Kept real trials per venue.
    pub trials_per_venue: BTreeMap<String, u64>,
    /// Kept real trials not involving the reference method (ignored by the statistics).
    pub trials_without_reference: u64,
}

/// Builds the report.
pub fn report(
    log: &IngestLog,
    responses: &[Response],
    cleaned: &Cleaned,
    max_check_errors: u32,
    reference: &str,
) -> CleaningReport {
    let mut excluded: BTreeMap<String, u64> = BTreeMap::new();
    let mut hist: BTreeMap<u64, u64> = BTreeMap::new();
    let mut kept = 0u64;
    for p in &cleaned.participants {
        *hist.entry(p.check_errors).or_default() += 1;
        if p.kept {
            kept += 1;
        } else {
            *excluded.entry(p.reason.clone()).or_default() += 1;
        }
    }
    let real_all = responses.iter().filter(|r| r.kind == Kind::Real).count() as u64;
    let mut per_b: BTreeMap<String, u64> = BTreeMap::new();
    let mut per_d: BTreeMap<String, u64> = BTreeMap::new();
    let mut per_v: BTreeMap<String, u64> = BTreeMap::new();
    let mut without = 0;
    for r in &cleaned.real {
        match baseline_of(r, reference) {
            Some((b, _)) => {
                *per_b.entry(b.to_string()).or_default() += 1;
                *per_d
                    .entry(super::design::direction(r.target).name().to_string())
                    .or_default() += 1;
                *per_v.entry(r.venue.clone()).or_default() += 1;
            }
            None => without += 1,
        }
    }
    let seen = cleaned.participants.len() as u64;
    CleaningReport {
        ingest: log.clone(),
        max_check_errors,
        participants_seen: seen,
        participants_kept: kept,
        participants_excluded: excluded,
        pass_rate: if seen > 0 {
            kept as f64 / seen as f64
        } else {
            f64::NAN
        },
        check_error_histogram: hist,
        real_trials_kept: cleaned.real.len() as u64,
        real_trials_excluded: real_all - cleaned.real.len() as u64,
        check_trials: responses.iter().filter(|r| r.kind == Kind::Check).count() as u64,
        trials_per_baseline: per_b,
        trials_per_direction: per_d,
        trials_per_venue: per_v,
        trials_without_reference: without,
    }
}

/// For a real trial involving the reference: the baseline's name and whether the reference was
/// chosen. `None` when neither or both sides are the reference.
pub fn baseline_of<'a>(r: &'a Response, reference: &str) -> Option<(&'a str, bool)> {
    let choice = r.choice?;
    let left_ref = r.left_method == reference;
    let right_ref = r.right_method == reference;
    match (left_ref, right_ref) {
        (true, false) => Some((r.right_method.as_str(), choice == Side::Left)),
        (false, true) => Some((r.left_method.as_str(), choice == Side::Right)),
        _ => None,
    }
}

impl CleaningReport {
    /// The report as Markdown.
    pub fn to_markdown(&self) -> String {
        let mut s = String::from("# Data cleaning\n\n## Files\n\n| file | format | rows read | trials read | slash dates read as |\n|---|---|---:|---:|---|\n");
        for f in &self.ingest.files {
            s += &format!(
                "| {} | {} | {} | {} | {} |\n",
                f.path,
                f.format,
                f.rows_read,
                f.trials_read,
                f.date_order.as_deref().unwrap_or("")
            );
        }
        s += "\n## Dropped at ingest\n\n| reason | rows | trials | examples |\n|---|---:|---:|---|\n";
        if self.ingest.dropped.is_empty() {
            s += "| (none) | 0 | 0 | |\n";
        }
        for (k, d) in &self.ingest.dropped {
            s += &format!(
                "| {} | {} | {} | {} |\n",
                k,
                d.rows,
                d.trials,
                d.examples.join("; ").replace('|', "\\|")
            );
        }
        let flagged = |f: &super::ingest::Flagged| {
            if f.examples.is_empty() {
                f.count.to_string()
            } else {
                format!("{} (e.g. {})", f.count, f.examples.join("; "))
            }
        };
        s += &format!(
            "\nChecks kept without an answer (counted as errors): {}\n\nChecks kept whose answer does not parse (counted as errors): {}\n\nSubmitTime / AcceptTime values that do not parse (a repeat worker with one is dropped, since which submission came first is unknown): {}\n\nResponses after ingest: {}\n\n",
            self.ingest.unanswered_checks,
            flagged(&self.ingest.unparsed_check_answers),
            flagged(&self.ingest.unreadable_times),
            self.ingest.responses_kept
        );
        s += &format!(
            "## Attention rule\n\nExcluded when check errors > {} (or no checks).\n\n- participants seen: {}\n- kept: {} ({:.1}%)\n",
            self.max_check_errors,
            self.participants_seen,
            self.participants_kept,
            100.0 * self.pass_rate
        );
        for (k, v) in &self.participants_excluded {
            s += &format!("- excluded, {k}: {v}\n");
        }
        s += "\n| check errors | participants |\n|---:|---:|\n";
        for (k, v) in &self.check_error_histogram {
            s += &format!("| {k} | {v} |\n");
        }
        s += &format!(
            "\n## Trials\n\n- check trials removed: {}\n- real trials of excluded participants: {}\n- real trials kept: {}\n- kept trials not involving the reference (ignored): {}\n\n| baseline | trials |\n|---|---:|\n",
            self.check_trials, self.real_trials_excluded, self.real_trials_kept, self.trials_without_reference
        );
        for (k, v) in &self.trials_per_baseline {
            s += &format!("| {k} | {v} |\n");
        }
        s += "\n| direction | trials |\n|---|---:|\n";
        for (k, v) in &self.trials_per_direction {
            s += &format!("| {k} | {v} |\n");
        }
        s += "\n| venue | trials |\n|---|---:|\n";
        for (k, v) in &self.trials_per_venue {
            s += &format!("| {k} | {v} |\n");
        }
        s
    }
}
