//! `emobench edit`: run one edit method over a sources table into a run folder, resumably,
//! atomically and shardably; and the [`method::EditMethod`] trait every method implements, with
//! the [`registry::Registry`] the loop builds its method from.

pub mod method;
pub mod registry;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::edit::method::{EditError, EditMethod, EditRequest};
use crate::edit::registry::Registry;
use image::RgbImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::emotion::{Conditions, Emotion};
use crate::image_io::{is_valid_image, load_rgb, save_png_atomic, write_atomic, ImageError};
use crate::provenance::sha256_file;
use crate::provenance::{Provenance, WeightFile};
use crate::runs::{job_seed, jobs, Shard};
use crate::sources::{read_sources, SourceImage, SourcesError};

/// Default seed of edit runs (the authors' inference seed).
pub const DEFAULT_SEED: u64 = 75863;

/// Errors of an edit run; finished outputs are kept whatever happens.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A table could not be read.
    #[error(transparent)]
    Sources(#[from] SourcesError),
    /// An image could not be read or written.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The method failed or could not be built.
    #[error("{context}")]
    Method {
        /// Which job or step.
        context: String,
        /// The method's error.
        source: EditError,
    },
    /// The method needs reference images and none were given, or none fit.
    #[error("{0}")]
    References(String),
    /// An input table could not be read to record its SHA-256.
    #[error("{path}: cannot read")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Metadata could not be serialised.
    #[error("{path}: cannot serialise")]
    Json {
        /// File being written.
        path: PathBuf,
        /// serde's error.
        source: serde_json::Error,
    },
    /// Writing metadata failed.
    #[error("{path}: cannot write")]
    Write {
        /// File being written.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// What to run.
#[derive(Debug, Clone)]
pub struct EditConfig {
    /// Registry name of the method.
    pub method: String,
    /// Method options (JSON object, `null` for defaults).
    pub options: serde_json::Value,
    /// `sources.csv`.
    pub sources: PathBuf,
    /// `references.csv` (id,path,emotion) for methods that need reference images.
    pub references: Option<PathBuf>,
    /// Which targets.
    pub conditions: Conditions,
    /// The runs folder; outputs go to `<out>/<method>/`.
    pub out: PathBuf,
    /// This process's shard.
    pub shard: Shard,
    /// Run seed.
    pub seed: u64,
}

/// Counts of an edit run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EditSummary {
    /// Jobs in this shard.
    pub jobs: usize,
    /// Newly written outputs.
    pub written: usize,
    /// Outputs that already existed and decoded.
    pub skipped: usize,
    /// Jobs only prepared, with no image written (LMS's `stage: instructions`).
    pub prepared: usize,
    /// Weight files that are seeded stand-ins (named so the caller can say so).
    pub stand_ins: Vec<String>,
}

#[derive(Serialize)]
struct RunJson<'a> {
    #[serde(flatten)]
    provenance: Provenance,
    method: &'a str,
    parameters: serde_json::Value,
    seed: u64,
    conditions: String,
    sources: WeightFile,
    references: Option<WeightFile>,
    weights: Vec<WeightFile>,
    reference_choice: &'static str,
}

fn input_file(role: &str, path: &Path) -> Result<WeightFile, RunError> {
    let sha256 = sha256_file(path).map_err(|source| RunError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(WeightFile {
        role: role.into(),
        path: path.display().to_string(),
        sha256,
        stand_in: false,
    })
}

/// Picks the reference image for one job: uniformly among references of the target emotion other
/// than the source itself, with a generator seeded by the job seed.
pub fn choose_reference<'a>(
    refs: &'a [SourceImage],
    source_id: &str,
    target: Emotion,
    seed: u64,
) -> Option<&'a SourceImage> {
    let pool: Vec<&SourceImage> = refs
        .iter()
        .filter(|r| r.emotion == Some(target) && r.id != source_id)
        .collect();
    if pool.is_empty() {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Some(pool[rng.gen_range(0..pool.len())])
}

/// Runs the method over every job of this shard, skipping outputs that exist and decode.
pub fn run_edit(cfg: &EditConfig, registry: &Registry) -> Result<EditSummary, RunError> {
    let mut method = registry
        .build(&cfg.method, &cfg.options)
        .map_err(|source| RunError::Method {
            context: format!("--method {}", cfg.method),
            source,
        })?;
    let sources = read_sources(&cfg.sources)?;
    let refs = match &cfg.references {
        Some(p) => read_sources(p)?,
        None if method.needs_references() => {
            return Err(RunError::References(format!(
                "--method {} needs --references references.csv (id,path,emotion): images of each target emotion",
                cfg.method
            )))
        }
        None => Vec::new(),
    };
    let method_dir = cfg.out.join(method.name());
    method
        .attach_run_folder(&method_dir)
        .map_err(|source| RunError::Method {
            context: format!("--method {}", cfg.method),
            source,
        })?;
    write_run_json(cfg, method.as_ref(), &method_dir)?;

    let all = jobs(&sources, &cfg.conditions, &method_dir);
    let mine: Vec<_> = all
        .into_iter()
        .enumerate()
        .filter(|(i, _)| cfg.shard.owns(*i))
        .map(|(_, j)| j)
        .collect();
    let mut summary = EditSummary {
        jobs: mine.len(),
        stand_ins: method
            .weights()
            .into_iter()
            .filter(|w| w.stand_in)
            .map(|w| format!("{}: {}", w.role, w.path))
            .collect(),
        ..Default::default()
    };
    let pb = crate::progress::bar(mine.len() as u64, method.name());
    let mut cache: BTreeMap<PathBuf, RgbImage> = BTreeMap::new();
    let mut pending = Vec::new();
    for job in &mine {
        if is_valid_image(&job.output) {
            summary.skipped += 1;
            pb.inc(1);
        } else {
            pending.push(job);
        }
    }
    // Jobs go to the method in groups of its batch size (consecutive jobs share a source, so a
    // group is several targets of one image); each group's outputs are written as soon as it
    // returns, so an interruption loses at most the group in flight.
    for group in pending.chunks(method.batch_size().max(1)) {
        let mut inputs = Vec::with_capacity(group.len());
        for job in group {
            let seed = job_seed(cfg.seed, &job.source.id, job.target);
            let source = load_rgb(&job.source.path)?;
            let mut references = Vec::new();
            if method.needs_references() {
                let r =
                    choose_reference(&refs, &job.source.id, job.target, seed).ok_or_else(|| {
                        RunError::References(format!(
                            "{}: no reference image labelled '{}' (other than source '{}')",
                            cfg.references
                                .as_deref()
                                .map(|p| p.display().to_string())
                                .unwrap_or_default(),
                            job.target,
                            job.source.id
                        ))
                    })?;
                if !cache.contains_key(&r.path) {
                    cache.insert(r.path.clone(), load_rgb(&r.path)?);
                }
                if let Some(img) = cache.get(&r.path) {
                    references.push(img.clone());
                }
            }
            inputs.push((source, references, seed));
        }
        let reqs: Vec<EditRequest<'_>> = group
            .iter()
            .zip(&inputs)
            .map(|(job, (source, references, seed))| {
                EditRequest::new(source, job.target.name(), *seed)
                    .with_references(references)
                    .with_source_id(&job.source.id)
            })
            .collect();
        if method.prepares_only() {
            for (job, req) in group.iter().zip(&reqs) {
                method.prepare(req).map_err(|source| RunError::Method {
                    context: format!("{} -> {}", job.source.id, job.target.name()),
                    source,
                })?;
                summary.prepared += 1;
                pb.inc(1);
            }
            continue;
        }
        let outputs = method
            .edit_batch(&reqs)
            .map_err(|source| RunError::Method {
                context: group
                    .iter()
                    .map(|job| format!("{} -> {}", job.source.id, job.target.name()))
                    .collect::<Vec<_>>()
                    .join(", "),
                source,
            })?;
        if outputs.len() != group.len() {
            return Err(RunError::Method {
                context: format!("--method {}", cfg.method),
                source: EditError::Failed {
                    method: method.name().into(),
                    reason: format!("{} outputs for {} requests", outputs.len(), group.len()),
                },
            });
        }
        for (job, (out, trace)) in group.iter().zip(outputs) {
            // The trace goes first: a finished image always has its trace beside it.
            if let Some(trace) = trace {
                write_trace(&job.output, &trace)?;
            }
            save_png_atomic(&job.output, &out)?;
            summary.written += 1;
            pb.inc(1);
        }
    }
    pb.finish_and_clear();
    // Again at the end: weights a method loads on first use (LMS's BLIP) are listed now.
    write_run_json(cfg, method.as_ref(), &method_dir)?;
    Ok(summary)
}

/// `command` without its `--shard i/n` (or `--shard=i/n`) argument.
fn without_shard(command: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(command.len());
    let mut args = command.into_iter();
    while let Some(arg) = args.next() {
        if arg == "--shard" {
            args.next();
        } else if !arg.starts_with("--shard=") {
            out.push(arg);
        }
    }
    out
}

/// `<target>.trace.json` beside the output `<target>.png`.
pub fn trace_path(output: &Path) -> PathBuf {
    output.with_extension("trace.json")
}

/// Writes a method's per-image trace beside `output` ([`trace_path`]), pretty JSON with a final
/// newline, atomically.
pub fn write_trace(output: &Path, trace: &serde_json::Value) -> Result<(), RunError> {
    let path = trace_path(output);
    let mut text = serde_json::to_string_pretty(trace).map_err(|source| RunError::Json {
        path: path.clone(),
        source,
    })?;
    text.push('\n');
    write_atomic(&path, text.as_bytes()).map_err(|source| RunError::Write { path, source })
}

/// Writes `run.json`: what produced the run folder.
fn write_run_json(
    cfg: &EditConfig,
    method: &dyn EditMethod,
    method_dir: &Path,
) -> Result<(), RunError> {
    let mut provenance = Provenance::current();
    // Every shard writes this file into the shared folder, and outputs do not depend on the split
    // (per-job seeds), so the record leaves `--shard` out: the folder's bytes are then the same
    // whichever shard wrote last and whether or not the run was sharded.
    provenance.command = without_shard(provenance.command);
    let run_json = RunJson {
        provenance,
        method: method.name(),
        parameters: method.parameters(),
        seed: cfg.seed,
        conditions: cfg.conditions.to_string(),
        sources: input_file("sources", &cfg.sources)?,
        references: cfg
            .references
            .as_deref()
            .map(|p| input_file("references", p))
            .transpose()?,
        weights: method.weights(),
        reference_choice: "uniform among references of the target emotion (excluding the source), ChaCha8 seeded by sha256(seed, source id, target)",
    };
    let json_path = method_dir.join("run.json");
    let mut text = serde_json::to_string_pretty(&run_json).map_err(|source| RunError::Json {
        path: json_path.clone(),
        source,
    })?;
    text.push('\n');
    write_atomic(&json_path, text.as_bytes()).map_err(|source| RunError::Write {
        path: json_path.clone(),
        source,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::without_shard;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn run_json_command_leaves_the_shard_out() {
        let whole = args("edit --method ct --sources s.csv --out runs");
        assert_eq!(
            without_shard(args(
                "edit --method ct --shard 2/4 --sources s.csv --out runs"
            )),
            whole
        );
        assert_eq!(
            without_shard(args(
                "edit --shard=3/4 --method ct --sources s.csv --out runs"
            )),
            whole
        );
        assert_eq!(without_shard(whole.clone()), whole);
    }
}
