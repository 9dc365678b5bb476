//! The study definition, `studies/<name>/study.toml`.
//!
//! Relative paths inside it (the attention-check list, the sources CSV) are resolved against the
//! folder holding the study.toml, so a study folder can be moved as a whole.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{io_err, Result, StudyError};
use emobench_core::emotion::{Conditions, Emotion};

/// Where the study runs; decides how the page identifies participants and how it finishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// In-lab session: the experimenter types a participant id; results are downloaded.
    #[default]
    Lab,
    /// Self-hosted web page: results are downloaded and optionally POSTed.
    Web,
    /// Prolific: PROLIFIC_PID from the URL, completion-code redirect at the end.
    Prolific,
    /// Amazon Mechanical Turk: assignmentId from the URL, answers submitted to MTurk.
    Mturk,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Platform::Lab => "lab",
            Platform::Web => "web",
            Platform::Prolific => "prolific",
            Platform::Mturk => "mturk",
        })
    }
}

/// Prolific settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProlificConfig {
    /// Completion code shown and used in the redirect URL.
    #[serde(default)]
    pub completion_code: String,
    /// Estimated minutes, for the study description.
    #[serde(default)]
    pub estimated_minutes: Option<u32>,
    /// Reward in the platform currency's smallest unit description (free text, e.g. "GBP 2.50").
    #[serde(default)]
    pub reward: String,
}

/// MTurk settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MturkConfig {
    /// Where the HTMLQuestion form posts (`https://www.mturk.com/mturk/externalSubmit`, or the
    /// sandbox's `https://workersandbox.mturk.com/mturk/externalSubmit`).
    #[serde(default = "default_submit_url")]
    pub submit_url: String,
    /// Reward per assignment in USD (for the description written beside the batch CSV).
    #[serde(default)]
    pub reward_usd: Option<f64>,
}

fn default_submit_url() -> String {
    "https://www.mturk.com/mturk/externalSubmit".into()
}

impl Default for MturkConfig {
    fn default() -> Self {
        Self {
            submit_url: default_submit_url(),
            reward_usd: None,
        }
    }
}

/// The parsed `study.toml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StudyConfig {
    /// Study name (folder name by convention).
    pub name: String,
    /// The method every trial pits against a baseline (the paper: EmoEditor).
    #[serde(default = "default_reference")]
    pub reference: String,
    /// Baselines compared with the reference; each trial uses one of them.
    pub compared: Vec<String>,
    /// Target conditions: `cross`, `within`, `all` or a comma-separated list of emotions.
    #[serde(default = "default_conditions")]
    pub conditions: String,
    /// Number of participant trial sets to design.
    pub participants: u32,
    /// Real (non-check) trials per participant; the paper: 100.
    #[serde(default = "default_trials")]
    pub trials_per_participant: u32,
    /// Attention-check trials added per participant; the paper: 6.
    #[serde(default = "default_checks")]
    pub checks_per_participant: u32,
    /// A participant with MORE than this many check errors is excluded; the paper: 1.
    #[serde(default = "default_max_errors")]
    pub max_check_errors: u32,
    /// Attention-check pair list, `id,image_a,image_b,target,correct` (relative to study.toml).
    pub attention_checks: PathBuf,
    /// Seed for every random choice of the design.
    pub seed: u64,
    /// Where the study runs.
    #[serde(default)]
    pub platform: Platform,
    /// Venue label written into each response (e.g. `online`, `in-lab`).
    #[serde(default = "default_venue")]
    pub venue: String,
    /// Base URL under which the design's `images/` folder is served; empty = relative to the page.
    #[serde(default)]
    pub image_base_url: String,
    /// Optional URL the page POSTs its CSV to at the end (in addition to offering the download).
    #[serde(default)]
    pub post_url: String,
    /// Optional `sources.csv` (relative to study.toml); if absent, `<runs>/../sources.csv` or
    /// `<runs>/sources.csv` is used when present, otherwise sources are discovered from the runs.
    #[serde(default)]
    pub sources: Option<PathBuf>,
    /// Question shown above each trial; `{emotion}` is replaced by the target emotion.
    #[serde(default = "default_question")]
    pub question: String,
    /// Prolific settings.
    #[serde(default)]
    pub prolific: ProlificConfig,
    /// MTurk settings.
    #[serde(default)]
    pub mturk: MturkConfig,
}

fn default_reference() -> String {
    "emoeditor".into()
}
fn default_conditions() -> String {
    "cross".into()
}
fn default_trials() -> u32 {
    100
}
fn default_checks() -> u32 {
    6
}
fn default_max_errors() -> u32 {
    1
}
fn default_venue() -> String {
    "online".into()
}
fn default_question() -> String {
    "Which image more strongly evokes {emotion}?".into()
}

/// One attention-check pair: two images with an obvious answer for the named emotion.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AttentionCheck {
    /// Unique id of the pair.
    pub id: String,
    /// First image (path relative to the list's folder).
    pub image_a: PathBuf,
    /// Second image.
    pub image_b: PathBuf,
    /// Target emotion named in the question.
    pub target: Emotion,
    /// Which image is the correct answer: `a` or `b`. The design randomises the screen side.
    pub correct: String,
}

/// A study definition with its file paths resolved.
#[derive(Debug, Clone)]
pub struct Study {
    /// The parsed file.
    pub config: StudyConfig,
    /// The study.toml path.
    pub path: PathBuf,
    /// Parsed conditions.
    pub conditions: Conditions,
    /// Attention-check pairs with absolute image paths.
    pub checks: Vec<AttentionCheck>,
    /// Resolved attention-check list path.
    pub checks_path: PathBuf,
}

impl Study {
    /// Reads and validates a study.toml and its attention-check list.
    pub fn load(path: &Path) -> Result<Study> {
        let text = std::fs::read_to_string(path).map_err(io_err(path))?;
        let config: StudyConfig = toml::from_str(&text).map_err(|source| StudyError::Toml {
            path: path.to_path_buf(),
            source,
        })?;
        let bad = |m: String| StudyError::Config {
            path: path.to_path_buf(),
            message: m,
        };
        let conditions: Conditions = config
            .conditions
            .parse()
            .map_err(|e: emobench_core::emotion::UnknownEmotion| bad(format!("conditions: {e}")))?;
        if config.compared.is_empty() {
            return Err(bad("compared: at least one method is needed".into()));
        }
        if config.compared.contains(&config.reference) {
            return Err(bad(format!(
                "compared: the reference method '{}' cannot be compared with itself",
                config.reference
            )));
        }
        for m in config.compared.iter().chain([&config.reference]) {
            if !is_safe_name(m) {
                return Err(bad(format!("method name '{m}' must be [A-Za-z0-9_.-]+")));
            }
        }
        if config.participants == 0 || config.trials_per_participant == 0 {
            return Err(bad(
                "participants and trials_per_participant must be > 0".into()
            ));
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let checks_path = dir.join(&config.attention_checks);
        let checks = load_checks(&checks_path)?;
        if (checks.len() as u32) < config.checks_per_participant {
            return Err(bad(format!(
                "checks_per_participant = {} but {} lists only {} pairs (each is used once per participant)",
                config.checks_per_participant,
                checks_path.display(),
                checks.len()
            )));
        }
        let total = config.trials_per_participant + config.checks_per_participant;
        if config.checks_per_participant > 0 && config.checks_per_participant * 2 > total + 1 {
            return Err(bad(
                "too many checks to place them without two in a row".into()
            ));
        }
        Ok(Study {
            config,
            path: path.to_path_buf(),
            conditions,
            checks,
            checks_path,
        })
    }

    /// The folder holding study.toml.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }
}

pub(crate) fn is_safe_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Reads an attention-check list; image paths become relative to the list's folder.
pub fn load_checks(path: &Path) -> Result<Vec<AttentionCheck>> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(super::ingest::strip_bom(&bytes));
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut out: Vec<AttentionCheck> = Vec::new();
    for (i, rec) in rdr.deserialize::<AttentionCheck>().enumerate() {
        let line = i as u64 + 2;
        let mut c = rec.map_err(|source| StudyError::CsvFile {
            path: path.to_path_buf(),
            line,
            source,
        })?;
        if c.correct != "a" && c.correct != "b" {
            return Err(StudyError::Value {
                path: path.to_path_buf(),
                line,
                column: "correct".into(),
                value: c.correct,
                message: "expected 'a' or 'b'".into(),
            });
        }
        if out.iter().any(|o| o.id == c.id) {
            return Err(StudyError::Value {
                path: path.to_path_buf(),
                line,
                column: "id".into(),
                value: c.id,
                message: "duplicate id".into(),
            });
        }
        c.image_a = dir.join(&c.image_a);
        c.image_b = dir.join(&c.image_b);
        for p in [&c.image_a, &c.image_b] {
            if !p.is_file() {
                return Err(StudyError::Value {
                    path: path.to_path_buf(),
                    line,
                    column: "image".into(),
                    value: p.display().to_string(),
                    message: "file not found".into(),
                });
            }
        }
        out.push(c);
    }
    Ok(out)
}
