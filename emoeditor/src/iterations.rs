//! The iteration ablation (the paper's Fig. S11: EMR, ESR, ENRD and ESS against the maximum number
//! of critic iterations, 1 to 30), derived from ONE run instead of thirty.
//!
//! The cap is the authors' `num_loop` (their `test.py`'s loop limit, the paper's "predefined limit
//! of 30"); `max_passes`, the harness's guard for the authors' unbounded loop, stays the run's.
//! Passes are sequential: pass k's input, emotion direction and noise draws depend only on the
//! passes before it, and a smaller `num_loop` can only stop the loop sooner. So the passes of a
//! run capped at k are the first passes of the run capped at N >= k, and replaying the recorded
//! outcomes through the same critic ([`replay_critic`]) with `num_loop = k` gives that run's
//! trace and kept image exactly. With `keep_passes` the run folder holds every pass's image, so
//! the cap-k output is a file already there.
//!
//! Exactness holds pass for pass; with `batch > 1` a real cap-k run groups its lockstep batches
//! differently, and its images may differ from the derived ones by floating-point rounding.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use emobench_core::edit::{write_trace, RunError};
use emobench_core::emotion::Emotion;
use emobench_core::image_io::write_atomic;
use emobench_core::predictor::Predictor;
use emobench_core::provenance::{sha256_file, Provenance, WeightFile};
use emobench_core::runs::output_path;
use emobench_core::score::{
    prepare_sources, score_outputs, Expected, MissingOutput, ScoreConfig, ScoreError,
    ScoreMetadata, ScoreResult,
};
use emobench_core::sources::read_sources;
use emobench_core::table1::{summarise, Subset, Summary};

use crate::critic::{replay_critic, CriticOptions, ReplayError};
use crate::trace::{pass_image, trace_path, Trace, TraceError};

/// The option the ablation varies.
pub const CAP_OPTION: &str = "num_loop";

/// How the caps' outputs are obtained, for the provenance record.
pub const DERIVATION: &str = "one run with keep_passes; for each cap k the recorded passes are \
    replayed through the run's own critic (same profile and max_passes, num_loop = k), which \
    stops at or before the recorded run; the cap-k output is the pass image the replay keeps";

/// Why a trace cannot give the outputs of a smaller cap.
#[derive(Debug, thiserror::Error)]
pub enum DeriveError {
    /// The trace's classes cannot be read.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// The cap is 0 or above the recorded run's `num_loop`.
    #[error("cap {cap}: a run with num_loop {num_loop} gives caps 1..={num_loop} only")]
    Cap {
        /// The cap asked for.
        cap: usize,
        /// The recorded run's `num_loop`.
        num_loop: usize,
    },
    /// The rules asked for passes the trace does not hold.
    #[error("cap {cap}")]
    Replay {
        /// The cap.
        cap: usize,
        /// Why.
        #[source]
        source: ReplayError,
    },
    /// Replaying the recorded passes under the run's own options decides otherwise than the run
    /// did: the trace was not written by these rules.
    #[error("replaying its passes under its own options does not reproduce its {what}")]
    Inconsistent {
        /// What differs.
        what: &'static str,
    },
}

/// A recorded trace checked to replay to itself, ready to give any smaller cap's trace.
#[derive(Debug, Clone)]
pub struct Recorded {
    trace: Trace,
    target: usize,
    positive: [bool; 8],
}

impl Recorded {
    /// Checks that replaying `trace`'s passes under its own options reproduces its decisions.
    pub fn new(trace: Trace) -> Result<Self, DeriveError> {
        let (target, positive) = trace.critic_classes()?;
        let rec = Self {
            trace,
            target,
            positive,
        };
        let again = rec.replay(rec.trace.critic)?;
        let t = &rec.trace;
        if again.passes != t.passes {
            return Err(DeriveError::Inconsistent { what: "passes" });
        }
        if (again.kept, again.stopped) != (t.kept, t.stopped) {
            return Err(DeriveError::Inconsistent { what: "kept image" });
        }
        if t.train_steps_per_pass.len() != t.passes.len() {
            return Err(DeriveError::Inconsistent {
                what: "train_steps_per_pass",
            });
        }
        Ok(rec)
    }

    /// The recorded trace.
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// The trace a run with `num_loop = cap` (everything else the run's) would have written.
    pub fn at_cap(&self, cap: usize) -> Result<Trace, DeriveError> {
        let num_loop = self.trace.critic.num_loop;
        if cap == 0 || cap > num_loop {
            return Err(DeriveError::Cap { cap, num_loop });
        }
        self.replay(CriticOptions {
            num_loop: cap,
            ..self.trace.critic
        })
    }

    fn replay(&self, critic: CriticOptions) -> Result<Trace, DeriveError> {
        let t = &self.trace;
        let result =
            replay_critic(&critic, self.target, &self.positive, &t.passes).map_err(|source| {
                DeriveError::Replay {
                    cap: critic.num_loop,
                    source,
                }
            })?;
        let n = result.trace.len();
        Ok(Trace {
            critic,
            train_steps_per_pass: t.train_steps_per_pass.iter().take(n).copied().collect(),
            passes: result.trace,
            kept: result.kept,
            kept_is_source: result.kept == 0,
            stopped: result.stopped,
            ..t.clone()
        })
    }
}

/// A malformed `--caps` value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("--caps '{0}': expected caps of at least 1 as A..B (inclusive, e.g. 1..30) or a list (1,2,5,10,30)")]
pub struct CapsError(pub String);

/// Parses `--caps`: `A..B` or `A..=B` (both inclusive) or a comma-separated list; sorted, without
/// repeats.
pub fn parse_caps(s: &str) -> Result<Vec<usize>, CapsError> {
    let err = || CapsError(s.to_string());
    let num = |t: &str| t.trim().parse::<usize>().map_err(|_| err());
    let mut caps: Vec<usize> = if let Some((a, b)) = s.split_once("..") {
        let (a, b) = (num(a)?, num(b.strip_prefix('=').unwrap_or(b))?);
        if a > b {
            return Err(err());
        }
        (a..=b).collect()
    } else {
        s.split(',').map(num).collect::<Result<_, _>>()?
    };
    caps.sort_unstable();
    caps.dedup();
    if caps.is_empty() || caps[0] == 0 {
        return Err(err());
    }
    Ok(caps)
}

/// Errors of the ablation; each names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum IterationsError {
    /// Reading sources or scoring failed.
    #[error(transparent)]
    Score(#[from] ScoreError),
    /// Writing a derived run failed.
    #[error(transparent)]
    Write(#[from] RunError),
    /// A file could not be read.
    #[error("{path}: cannot read")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file could not be parsed.
    #[error("{path}: not a valid record")]
    Json {
        /// The file.
        path: PathBuf,
        /// serde's error.
        #[source]
        source: serde_json::Error,
    },
    /// A run folder cannot be used.
    #[error("{path}: {message}")]
    Run {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// A trace cannot give a cap's output.
    #[error("{path}")]
    Derive {
        /// The trace.
        path: PathBuf,
        /// Why.
        #[source]
        source: DeriveError,
    },
}

/// What to score: the score options (sources, runs folder, methods, targets, metric options) and
/// the caps.
#[derive(Debug, Clone)]
pub struct IterationsConfig {
    /// As for `emobench score`; `methods: None` means `["emoeditor"]`.
    pub score: ScoreConfig,
    /// Caps to derive, ascending.
    pub caps: Vec<usize>,
}

/// The run a method folder holds, as its `run.json` says.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    /// The method folder's name.
    pub method: String,
    /// `run.json` with its SHA-256.
    pub run_json: WeightFile,
    /// The run's method parameters (the cap is its `num_loop`).
    pub parameters: serde_json::Value,
    /// The run seed.
    pub seed: serde_json::Value,
    /// The run's weight files.
    pub weights: serde_json::Value,
    /// Whether the derived outputs are byte-exact for real capped runs (batch 1), or exact up to
    /// the rounding of differently grouped lockstep batches.
    pub exactness: String,
    #[serde(skip)]
    record: serde_json::Value,
}

/// One recorded (source, target) of a run and the image each cap keeps.
#[derive(Debug, Clone)]
pub struct JobRecord {
    /// Method folder.
    pub method: String,
    /// Index of the source in sources.csv.
    pub source: usize,
    /// Source id.
    pub source_id: String,
    /// Target.
    pub target: Emotion,
    /// The run's output `<target>.png`.
    pub output: PathBuf,
    /// Its trace.
    pub recorded: Recorded,
    /// The kept image (0 = source, k = pass k) for each of the config's caps.
    pub kept: Vec<usize>,
}

/// The ablation's result.
#[derive(Debug, Clone)]
pub struct IterationsResult {
    /// The caps.
    pub caps: Vec<usize>,
    /// For each cap, the Table-1 summaries of every method and subset with rows.
    pub by_cap: Vec<(usize, Vec<Summary>)>,
    /// The distinct pass images scored (one row each) and the outputs missing from the runs.
    pub scored: ScoreResult,
    /// Every recorded job.
    pub jobs: Vec<JobRecord>,
    /// The runs.
    pub runs: Vec<RunInfo>,
}

fn read_json(path: &Path) -> Result<serde_json::Value, IterationsError> {
    let text = std::fs::read_to_string(path).map_err(|source| IterationsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| IterationsError::Json {
        path: path.to_path_buf(),
        source,
    })
}

fn run_info(method: &str, dir: &Path) -> Result<RunInfo, IterationsError> {
    let path = dir.join("run.json");
    if !path.is_file() {
        return Err(IterationsError::Run {
            path,
            message: "missing: derive caps from a folder written by emobench edit --method \
                emoeditor with keep_passes: true"
                .into(),
        });
    }
    let record = read_json(&path)?;
    let run_err = |message: String| IterationsError::Run {
        path: path.clone(),
        message,
    };
    if record["method"] != crate::NAME {
        return Err(run_err(format!(
            "method {}: the iteration ablation derives EmoEditor runs only",
            record["method"]
        )));
    }
    let parameters = record["parameters"].clone();
    if parameters["keep_passes"] != true {
        return Err(run_err(
            "keep_passes is not set: rerun emobench edit with --options '{..., \"keep_passes\": \
             true}' into an empty folder"
                .into(),
        ));
    }
    let exactness = match parameters["batch"].as_u64() {
        Some(1) | None => "byte-exact: batch 1, each pass computed alone as in a capped run".into(),
        Some(b) => format!(
            "batch {b}: the critic's decisions are exact for these passes; a real capped run \
             batches its passes differently and its images may differ by rounding"
        ),
    };
    let sha256 = sha256_file(&path).map_err(|source| IterationsError::Read {
        path: path.clone(),
        source,
    })?;
    Ok(RunInfo {
        method: method.into(),
        run_json: WeightFile {
            role: "run.json".into(),
            path: path.display().to_string(),
            sha256,
            stand_in: false,
        },
        parameters,
        seed: record["seed"].clone(),
        weights: record["weights"].clone(),
        exactness,
        record,
    })
}

/// Reads one job's trace, checks it replays to itself and that its passes are on disk and agree
/// with the output, and derives each cap's kept image.
fn record_job(output: &Path, caps: &[usize]) -> Result<(Recorded, Vec<usize>), IterationsError> {
    let tpath = trace_path(output);
    let trace: Trace =
        serde_json::from_value(read_json(&tpath)?).map_err(|source| IterationsError::Json {
            path: tpath.clone(),
            source,
        })?;
    let derive = |source| IterationsError::Derive {
        path: tpath.clone(),
        source,
    };
    let recorded = Recorded::new(trace).map_err(derive)?;
    let kept = caps
        .iter()
        .map(|&c| recorded.at_cap(c).map(|t| t.kept))
        .collect::<Result<Vec<_>, _>>()
        .map_err(derive)?;
    let own = pass_image(output, recorded.trace().kept);
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| IterationsError::Read {
            path: p.to_path_buf(),
            source,
        })
    };
    if !own.is_file() {
        return Err(IterationsError::Run {
            path: own,
            message: "missing: the run did not keep its passes for this output (delete the \
                output and rerun with keep_passes: true)"
                .into(),
        });
    }
    if read(&own)? != read(output)? {
        return Err(IterationsError::Run {
            path: own,
            message: format!(
                "differs from {}, the image its trace says was kept: the passes are not this \
                 output's",
                output.display()
            ),
        });
    }
    for &k in &kept {
        let p = pass_image(output, k);
        if !p.is_file() {
            return Err(IterationsError::Run {
                path: p,
                message: "missing: the run did not keep this pass".into(),
            });
        }
    }
    Ok((recorded, kept))
}

/// Derives every cap's outputs from the runs and scores them with `emobench score`'s code. Each
/// distinct kept image is scored once; missing outputs are listed as `score` lists them.
pub fn iterations(
    cfg: &IterationsConfig,
    predictor: &Predictor,
) -> Result<IterationsResult, IterationsError> {
    let sources = read_sources(&cfg.score.sources).map_err(ScoreError::from)?;
    let methods = cfg
        .score
        .methods
        .clone()
        .unwrap_or_else(|| vec![crate::NAME.to_string()]);
    let mut runs = Vec::new();
    let mut jobs = Vec::new();
    let mut missing = Vec::new();
    for m in &methods {
        let dir = cfg.score.runs.join(m);
        runs.push(run_info(m, &dir)?);
        for (si, s) in sources.iter().enumerate() {
            for t in cfg.score.conditions.targets(s.emotion) {
                let output = output_path(&dir, &s.id, t);
                if !output.is_file() {
                    missing.push(MissingOutput {
                        method: m.clone(),
                        source_id: s.id.clone(),
                        target: t,
                        path: output.display().to_string(),
                    });
                    continue;
                }
                let (recorded, kept) = record_job(&output, &cfg.caps)?;
                jobs.push(JobRecord {
                    method: m.clone(),
                    source: si,
                    source_id: s.id.clone(),
                    target: t,
                    output,
                    recorded,
                    kept,
                });
            }
        }
    }
    // Checked everything before the expensive part.
    let prepared = prepare_sources(&sources, predictor, &cfg.score)?;
    let mut index: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    let mut todo = Vec::new();
    for (ji, j) in jobs.iter().enumerate() {
        for &k in &j.kept {
            index.entry((ji, k)).or_insert_with(|| {
                todo.push(Expected {
                    method: j.method.clone(),
                    source: j.source,
                    target: j.target,
                    path: pass_image(&j.output, k),
                });
                todo.len() - 1
            });
        }
    }
    let rows = score_outputs(&prepared, &todo, predictor, &cfg.score)?;
    let mut by_cap = Vec::with_capacity(cfg.caps.len());
    for (ci, &cap) in cfg.caps.iter().enumerate() {
        let cap_rows: Vec<_> = jobs
            .iter()
            .enumerate()
            .filter_map(|(ji, j)| index.get(&(ji, j.kept[ci])).map(|&r| rows[r].clone()))
            .collect();
        let summaries = Subset::ALL
            .iter()
            .flat_map(|s| summarise(&cap_rows, &methods, *s))
            .collect();
        by_cap.push((cap, summaries));
    }
    Ok(IterationsResult {
        caps: cfg.caps.clone(),
        by_cap,
        scored: ScoreResult {
            rows,
            missing,
            methods,
        },
        jobs,
        runs,
    })
}

/// `iterations.json`: what produced the ablation.
#[derive(Debug, Serialize)]
pub struct IterationsMetadata {
    /// As `report.json` of `emobench score` (its `scored` counts distinct pass images).
    #[serde(flatten)]
    pub scoring: ScoreMetadata,
    /// The paper's figure this reproduces.
    pub figure: &'static str,
    /// The option varied.
    pub cap_option: &'static str,
    /// The caps.
    pub caps: Vec<usize>,
    /// How each cap's outputs were obtained.
    pub derivation: &'static str,
    /// Recorded (source, target) outputs per cap.
    pub jobs: usize,
    /// The runs derived from.
    pub runs: Vec<RunInfo>,
    /// Expected outputs absent from the runs (not in any cap's rows).
    pub missing_outputs: Vec<MissingOutput>,
    /// Folder of the derived run folders, when written.
    pub derived_runs: Option<String>,
}

impl IterationsMetadata {
    /// The record of `result`, scored under `cfg` with `predictor`.
    pub fn new(
        cfg: &IterationsConfig,
        predictor: &Predictor,
        result: &IterationsResult,
        derived_runs: Option<&Path>,
    ) -> std::io::Result<Self> {
        Ok(Self {
            scoring: ScoreMetadata::new(&cfg.score, predictor, &result.scored)?,
            figure: "Fig. S11 (Supp. S3.3): metrics against the maximum number of iterations",
            cap_option: CAP_OPTION,
            caps: result.caps.clone(),
            derivation: DERIVATION,
            jobs: result.jobs.len(),
            runs: result.runs.clone(),
            missing_outputs: result.scored.missing.clone(),
            derived_runs: derived_runs.map(|p| p.display().to_string()),
        })
    }
}

/// Folder of cap `cap`'s derived run folders under `out`: `<out>/cap-<cap>` (holding
/// `<method>/...` like a runs folder).
pub fn cap_runs_dir(out: &Path, cap: usize) -> PathBuf {
    out.join(format!("cap-{cap}"))
}

/// Writes each cap's outputs as a run folder `<out>/cap-<k>/<method>/` (`run.json`, and per job
/// `<source>/<target>.trace.json` then `<target>.png`, the kept pass image's bytes), so each cap
/// can be scored or inspected like a real run. Returns the folders written.
pub fn write_derived_runs(
    result: &IterationsResult,
    out: &Path,
) -> Result<Vec<PathBuf>, IterationsError> {
    let mut written = Vec::new();
    for &cap in &result.caps {
        for run in &result.runs {
            let dir = cap_runs_dir(out, cap).join(&run.method);
            let mut record = run.record.clone();
            if let Some(obj) = record.as_object_mut() {
                let p = serde_json::to_value(Provenance::current()).unwrap_or_default();
                if let Some(p) = p.as_object() {
                    obj.extend(p.clone());
                }
                obj.insert(
                    "derived_from".into(),
                    serde_json::to_value(&run.run_json).unwrap_or_default(),
                );
                obj.insert("derivation".into(), DERIVATION.into());
                obj.insert(CAP_OPTION.into(), cap.into());
            }
            if let Some(p) = record.get_mut("parameters").and_then(|p| p.as_object_mut()) {
                p.insert(CAP_OPTION.into(), cap.into());
                // The derived folders hold no passes.
                p.insert("keep_passes".into(), false.into());
                if let Some(c) = p.get_mut("critic").and_then(|c| c.as_object_mut()) {
                    c.insert(CAP_OPTION.into(), cap.into());
                }
            }
            let path = dir.join("run.json");
            let mut text =
                serde_json::to_string_pretty(&record).map_err(|source| IterationsError::Json {
                    path: path.clone(),
                    source,
                })?;
            text.push('\n');
            write_atomic(&path, text.as_bytes())
                .map_err(|source| RunError::Write { path, source })?;
            for j in result.jobs.iter().filter(|j| j.method == run.method) {
                let trace = j
                    .recorded
                    .at_cap(cap)
                    .map_err(|source| IterationsError::Derive {
                        path: trace_path(&j.output),
                        source,
                    })?;
                let src = pass_image(&j.output, trace.kept);
                let bytes = std::fs::read(&src).map_err(|source| IterationsError::Read {
                    path: src.clone(),
                    source,
                })?;
                let target = output_path(&dir, &j.source_id, j.target);
                let value =
                    serde_json::to_value(&trace).map_err(|source| IterationsError::Json {
                        path: trace_path(&target),
                        source,
                    })?;
                // As the run loop writes them: the trace first.
                write_trace(&target, &value)?;
                write_atomic(&target, &bytes).map_err(|source| RunError::Write {
                    path: target.clone(),
                    source,
                })?;
            }
            written.push(dir);
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_parse() {
        assert_eq!(parse_caps("1..3"), Ok(vec![1, 2, 3]));
        assert_eq!(parse_caps("2..=4"), Ok(vec![2, 3, 4]));
        assert_eq!(parse_caps("5,1, 2,5"), Ok(vec![1, 2, 5]));
        for bad in ["0..3", "3..1", "", "a", "1,,2", "0"] {
            assert!(parse_caps(bad).is_err(), "{bad}");
        }
    }
}
