//! Simulated participants for a design: attentive ones with planted per-method preferences,
//! random clickers and side-biased ones in chosen proportions, written in any response format.
//! Used by the tests (planted effects must be recovered) and by `trials power`.

use std::collections::BTreeMap;
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::design::{by_participant, TrialRow};
use super::ingest::{Kind, Response, Side};
use super::web::encode_trials;
use super::{write_records, Result, StudyError};

/// Output format of simulated responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
pub enum ResponseFormat {
    /// DESIGN.md's tidy `responses.csv`.
    Tidy,
    /// What the web page downloads (tidy plus page columns).
    Web,
    /// MTurk batch results (one row per assignment).
    Mturk,
}

/// Participant behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Behaviour {
    /// Answers checks correctly (but for lapses) and prefers the reference with the planted
    /// probability.
    Attentive,
    /// Clicks at random.
    Random,
    /// Clicks `left` with probability `side_bias`, whatever is shown.
    SideBiased,
}

/// Simulation settings.
#[derive(Debug, Clone, Serialize)]
pub struct SimulateOptions {
    /// Participants to simulate (default: one per trial set; more cycle through the sets).
    pub participants: Option<u32>,
    /// Proportions of attentive, random and side-biased participants (normalised).
    pub mix: (f64, f64, f64),
    /// Planted probability of choosing the reference, per baseline; `*` is the default.
    pub preference: BTreeMap<String, f64>,
    /// SD of participants' preferences on the logit scale (0 = everyone identical).
    pub heterogeneity_sd: f64,
    /// Probability that an attentive participant gets a check wrong.
    pub lapse: f64,
    /// Probability that a side-biased participant answers `left`.
    pub side_bias: f64,
    /// Probability that an answer is missing (for exercising ingest).
    pub missing: f64,
    /// Venue label.
    pub venue: String,
    /// Seed.
    pub seed: u64,
    /// Reference method.
    pub reference: String,
}

impl Default for SimulateOptions {
    fn default() -> Self {
        let mut preference = BTreeMap::new();
        preference.insert("*".to_string(), 0.56);
        Self {
            participants: None,
            mix: (1.0, 0.0, 0.0),
            preference,
            heterogeneity_sd: 0.0,
            lapse: 0.02,
            side_bias: 0.9,
            missing: 0.0,
            venue: "online".into(),
            seed: 1,
            reference: "emoeditor".into(),
        }
    }
}

/// One simulated participant.
#[derive(Debug, Clone)]
pub struct SimParticipant {
    /// Participant id.
    pub id: String,
    /// The trial set answered.
    pub set: String,
    /// Behaviour drawn.
    pub behaviour: Behaviour,
    /// Responses, in trial order; `choice` is `None` for a missing answer.
    pub responses: Vec<Response>,
    /// The set's trials (for writing MTurk rows).
    pub trials: Vec<TrialRow>,
}

/// Parses `0.56` or `ct=0.6,nst=0.55,*=0.56` into a preference map.
pub fn parse_preferences(s: &str) -> std::result::Result<BTreeMap<String, f64>, String> {
    let mut m = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = match part.split_once('=') {
            Some((k, v)) => (k.trim().to_string(), v.trim()),
            None => ("*".to_string(), part),
        };
        let p: f64 = v
            .parse()
            .map_err(|_| format!("preference '{part}': '{v}' is not a number"))?;
        if !(0.0..=1.0).contains(&p) {
            return Err(format!("preference '{part}' must be within [0, 1]"));
        }
        m.insert(k, p);
    }
    if m.is_empty() {
        return Err("empty preference list".into());
    }
    Ok(m)
}

fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Standard normal draw (Box-Muller), so no extra distribution crate is needed.
pub fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Simulates participants answering the design's trial sets.
pub fn simulate(trials: &[TrialRow], opts: &SimulateOptions) -> Result<Vec<SimParticipant>> {
    let sets = by_participant(trials);
    if sets.is_empty() {
        return Err(StudyError::Invalid("the design has no trials".into()));
    }
    let (a, r, s) = opts.mix;
    let total = a + r + s;
    if total.is_nan() || total <= 0.0 || a < 0.0 || r < 0.0 || s < 0.0 {
        return Err(StudyError::Invalid(format!(
            "participant mix {:?} must be non-negative with a positive sum",
            opts.mix
        )));
    }
    let default_p = opts.preference.get("*").copied().unwrap_or(0.5);
    let n = opts.participants.unwrap_or(sets.len() as u32) as usize;
    let set_list: Vec<(&String, &Vec<&TrialRow>)> = sets.iter().collect();
    let width = n.to_string().len().max(3);
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let (set, rows) = set_list[i % set_list.len()];
        let u: f64 = rng.gen::<f64>() * total;
        let behaviour = if u < a {
            Behaviour::Attentive
        } else if u < a + r {
            Behaviour::Random
        } else {
            Behaviour::SideBiased
        };
        let shift = opts.heterogeneity_sd * normal(&mut rng);
        // The seed is part of the id so files simulated with different seeds can be pooled.
        let pid = format!("sim{}-{:0width$}", opts.seed, i + 1);
        let mut responses = Vec::with_capacity(rows.len());
        for t in rows {
            let kind = t.kind;
            let correct = t.correct_side;
            let p_left = match behaviour {
                Behaviour::Random => 0.5,
                Behaviour::SideBiased => opts.side_bias,
                Behaviour::Attentive => match kind {
                    Kind::Check => {
                        if correct == Some(Side::Left) {
                            1.0 - opts.lapse
                        } else {
                            opts.lapse
                        }
                    }
                    Kind::Real => {
                        let p = opts
                            .preference
                            .get(&t.compared_method)
                            .copied()
                            .unwrap_or(default_p);
                        let p = if p > 0.0 && p < 1.0 {
                            sigmoid(logit(p) + shift)
                        } else {
                            p
                        };
                        if t.left_method == opts.reference {
                            p
                        } else {
                            1.0 - p
                        }
                    }
                },
            };
            let side = if rng.gen::<f64>() < p_left {
                Side::Left
            } else {
                Side::Right
            };
            let missing = opts.missing > 0.0 && rng.gen::<f64>() < opts.missing;
            let rt = (6.8 + 0.5 * normal(&mut rng)).exp().round();
            let target = t.target;
            responses.push(Response {
                participant: pid.clone(),
                venue: opts.venue.clone(),
                trial: t.trial,
                kind,
                source_id: t.source_id.clone(),
                source_emotion: t.source_emotion,
                target,
                left_method: t.left_method.clone(),
                right_method: t.right_method.clone(),
                choice: if missing { None } else { Some(side) },
                correct_side: correct,
                rt_ms: Some(rt),
            });
        }
        out.push(SimParticipant {
            id: pid,
            set: set.clone(),
            behaviour,
            responses,
            trials: rows.iter().map(|t| (*t).clone()).collect(),
        });
    }
    Ok(out)
}

const WEB_EXTRA: [&str; 10] = [
    "set",
    "platform",
    "assignment_id",
    "hit_id",
    "study_id",
    "session_id",
    "left_image",
    "right_image",
    "shown_at",
    "user_agent",
];

/// Writes simulated responses in the chosen format.
pub fn write(participants: &[SimParticipant], format: ResponseFormat, path: &Path) -> Result<()> {
    let tidy_cols = [
        "participant",
        "venue",
        "trial",
        "kind",
        "source_id",
        "source_emotion",
        "target",
        "left_method",
        "right_method",
        "choice",
        "correct_side",
        "rt_ms",
    ];
    match format {
        ResponseFormat::Tidy | ResponseFormat::Web => {
            let mut header: Vec<String> = tidy_cols.iter().map(|s| s.to_string()).collect();
            if format == ResponseFormat::Web {
                header.extend(WEB_EXTRA.iter().map(|s| s.to_string()));
            }
            let mut rows = Vec::new();
            for p in participants {
                for (r, t) in p.responses.iter().zip(&p.trials) {
                    let tr = super::ingest::TidyRow::from(r);
                    let mut row = vec![
                        tr.participant,
                        tr.venue,
                        tr.trial.to_string(),
                        tr.kind,
                        tr.source_id,
                        tr.source_emotion,
                        tr.target,
                        tr.left_method,
                        tr.right_method,
                        tr.choice,
                        tr.correct_side,
                        tr.rt_ms,
                    ];
                    if format == ResponseFormat::Web {
                        row.extend([
                            p.set.clone(),
                            "simulated".into(),
                            String::new(),
                            String::new(),
                            String::new(),
                            String::new(),
                            t.left_image.clone(),
                            t.right_image.clone(),
                            String::new(),
                            "emobench simulate".into(),
                        ]);
                    }
                    rows.push(row);
                }
            }
            write_records(path, &header, &rows)
        }
        ResponseFormat::Mturk => {
            let n_max = participants
                .iter()
                .flat_map(|p| p.trials.iter().map(|t| t.trial))
                .max()
                .unwrap_or(0);
            let mut header: Vec<String> = [
                "HITId",
                "HITTypeId",
                "Title",
                "Reward",
                "AssignmentId",
                "WorkerId",
                "AssignmentStatus",
                "AcceptTime",
                "SubmitTime",
                "WorkTimeInSeconds",
                "Input.set",
                "Input.trials",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            for i in 1..=n_max {
                header.push(format!("Answer.choice_{i:03}"));
                header.push(format!("Answer.rt_{i:03}"));
            }
            header.push("Approve".into());
            header.push("Reject".into());
            let mut rows = Vec::new();
            for (k, p) in participants.iter().enumerate() {
                let refs: Vec<&TrialRow> = p.trials.iter().collect();
                let mut row = vec![
                    format!("HIT{:06}", k + 1),
                    "SIMTYPE".into(),
                    "Which image evokes the emotion more strongly?".into(),
                    "$0.00".into(),
                    format!("ASG{:06}", k + 1),
                    p.id.clone(),
                    "Submitted".into(),
                    "Mon Jan 01 10:00:00 PST 2024".into(),
                    format!(
                        "Mon Jan 01 {:02}:{:02}:00 PST 2024",
                        11 + (k / 60) % 12,
                        k % 60
                    ),
                    "900".into(),
                    p.set.clone(),
                    encode_trials(&refs)?,
                ];
                let by_trial: BTreeMap<u32, &Response> =
                    p.responses.iter().map(|r| (r.trial, r)).collect();
                for i in 1..=n_max {
                    match by_trial.get(&i) {
                        Some(r) => {
                            row.push(r.choice.map(|c| c.name().to_string()).unwrap_or_default());
                            row.push(r.rt_ms.map(|v| format!("{v:.0}")).unwrap_or_default());
                        }
                        None => {
                            row.push(String::new());
                            row.push(String::new());
                        }
                    }
                }
                row.push(String::new());
                row.push(String::new());
                rows.push(row);
            }
            write_records(path, &header, &rows)
        }
    }
}
