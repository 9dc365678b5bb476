//! `emobench score`: the per-image metrics of every (method, source, target) found in a runs folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use image::{GrayImage, RgbImage};
use rayon::prelude::*;

use crate::emotion::{Conditions, Emotion};
use crate::image_io::{load_rgb, ImageError};
use crate::imgproc::resize::{resize_pil, ResizeFilter};
use crate::metrics::{self, kl_onehot, MetricOptions, PairMetrics};
use crate::predictor::{Prediction, Predictor, PredictorError};
use crate::runs::output_path;
use crate::sources::{read_sources, SourceImage, SourcesError};

/// Side of the square the metrics are computed at (the authors' 224x224).
pub const METRIC_SIZE: u32 = 224;

/// Errors of a scoring run; each names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    /// sources.csv problem.
    #[error(transparent)]
    Sources(#[from] SourcesError),
    /// Unreadable image.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// Predictor failure.
    #[error(transparent)]
    Predictor(#[from] PredictorError),
    /// Metric failure for one pair.
    #[error("{path}: cannot compute the metrics")]
    Metric {
        /// The generated image.
        path: PathBuf,
        /// What failed.
        source: metrics::MetricError,
    },
    /// The runs folder is unusable.
    #[error("{path}: {message}")]
    Runs {
        /// The folder.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The runs folder cannot be listed.
    #[error("{path}: cannot list the runs folder")]
    RunsIo {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// What to score and how.
#[derive(Debug, Clone)]
pub struct ScoreConfig {
    /// sources.csv.
    pub sources: PathBuf,
    /// Runs folder holding one subfolder per method.
    pub runs: PathBuf,
    /// Methods to score (default: every subfolder).
    pub methods: Option<Vec<String>>,
    /// Expected targets per source.
    pub conditions: Conditions,
    /// Resize filter to 224x224 (part of the metric definition).
    pub resize: ResizeFilter,
    /// Metric options.
    pub metrics: MetricOptions,
    /// Predictor batch size.
    pub batch: usize,
}

/// One scored (method, source, target).
#[derive(Debug, Clone)]
pub struct ScoreRow {
    /// Method (run subfolder name).
    pub method: String,
    /// Source id.
    pub source_id: String,
    /// Source label, `None` for neutral sources.
    pub source_emotion: Option<Emotion>,
    /// Target emotion.
    pub target: Emotion,
    /// P(source), EmoSet order.
    pub p_src: [f64; 8],
    /// P(generated), EmoSet order.
    pub p_gen: [f64; 8],
    /// argmax P(source).
    pub argmax_src: Emotion,
    /// argmax P(generated).
    pub argmax_gen: Emotion,
    /// The metrics.
    pub m: PairMetrics,
}

/// An expected output that was not there (or did not decode).
#[derive(Debug, Clone, serde::Serialize)]
pub struct MissingOutput {
    /// Method.
    pub method: String,
    /// Source id.
    pub source_id: String,
    /// Target.
    pub target: Emotion,
    /// Expected path.
    pub path: String,
}

/// All rows plus what was missing.
#[derive(Debug, Clone, Default)]
pub struct ScoreResult {
    /// Scored rows, ordered by method, then source (as listed), then target (EmoSet order).
    pub rows: Vec<ScoreRow>,
    /// Missing outputs.
    pub missing: Vec<MissingOutput>,
    /// Methods scored.
    pub methods: Vec<String>,
}

/// A source prepared once for all methods and targets: its image at the metric size, its
/// prediction, emotional region and edges.
pub struct PreparedSource {
    info: SourceImage,
    image: RgbImage,
    prediction: Prediction,
    region: Vec<bool>,
    edges: GrayImage,
}

impl PreparedSource {
    /// The sources.csv row.
    pub fn info(&self) -> &SourceImage {
        &self.info
    }
}

/// One generated image to score against one prepared source.
#[derive(Debug, Clone)]
pub struct Expected {
    /// The label its row carries as `method`.
    pub method: String,
    /// Index of its source in the prepared sources.
    pub source: usize,
    /// Target emotion.
    pub target: Emotion,
    /// The image file.
    pub path: PathBuf,
}

/// Loads an image and brings it to the metric size with the named filter.
pub fn load_for_metrics(path: &Path, filter: ResizeFilter) -> Result<RgbImage, ImageError> {
    let img = load_rgb(path)?;
    Ok(resize_pil(&img, METRIC_SIZE, METRIC_SIZE, filter))
}

fn list_methods(cfg: &ScoreConfig) -> Result<Vec<String>, ScoreError> {
    if let Some(m) = &cfg.methods {
        return Ok(m.clone());
    }
    let names = crate::runs::method_folders(&cfg.runs).map_err(|source| ScoreError::RunsIo {
        path: cfg.runs.clone(),
        source,
    })?;
    if names.is_empty() {
        return Err(ScoreError::Runs {
            path: cfg.runs.clone(),
            message: "no method folders (expected runs/<method>/<source_id>/<target>.png)".into(),
        });
    }
    Ok(names)
}

/// Loads, predicts (with Grad-CAM) and edge-maps every source once.
pub fn prepare_sources(
    sources: &[SourceImage],
    predictor: &Predictor,
    cfg: &ScoreConfig,
) -> Result<Vec<PreparedSource>, ScoreError> {
    let pb = crate::progress::bar(sources.len() as u64, "sources");
    let mut out = Vec::with_capacity(sources.len());
    for chunk in sources.chunks(cfg.batch.max(1)) {
        let images: Vec<RgbImage> = chunk
            .par_iter()
            .map(|s| load_for_metrics(&s.path, cfg.resize))
            .collect::<Result<_, _>>()?;
        let refs: Vec<&RgbImage> = images.iter().collect();
        let preds = predictor.predict_with_cam(&refs)?;
        for ((info, image), (prediction, cam)) in chunk.iter().zip(images).zip(preds) {
            let edges = metrics::edges(&image, cfg.metrics.ess_input);
            out.push(PreparedSource {
                info: info.clone(),
                region: cam.region(),
                image,
                prediction,
                edges,
            });
        }
        pb.inc(chunk.len() as u64);
    }
    pb.finish_and_clear();
    Ok(out)
}

fn pair_metrics(
    src: &PreparedSource,
    gen: &RgbImage,
    p_gen: &Prediction,
    target: Emotion,
    opts: &MetricOptions,
) -> Result<PairMetrics, metrics::MetricError> {
    if src.image.dimensions() != gen.dimensions() {
        let (a, b) = src.image.dimensions();
        let (c, d) = gen.dimensions();
        return Err(metrics::MetricError::SizeMismatch(a, b, c, d));
    }
    let ps = src.prediction.prob(target);
    let pg = p_gen.prob(target);
    let gen_edges = metrics::edges(gen, opts.ess_input);
    Ok(PairMetrics {
        emr: p_gen.argmax == target,
        esr: metrics::esr(ps, pg),
        kl_src: kl_onehot(ps),
        kl_gen: kl_onehot(pg),
        enrd: metrics::enrd(&src.image, gen, &src.region, opts.enrd_average),
        ess: metrics::ess(&src.edges, &gen_edges),
        ssim: metrics::ssim(&src.image, gen, &opts.ssim)?,
        l1: metrics::mean_abs_diff(src.image.as_raw(), gen.as_raw()),
    })
}

/// Scores every expected output; missing ones are listed, not skipped silently.
pub fn score(cfg: &ScoreConfig, predictor: &Predictor) -> Result<ScoreResult, ScoreError> {
    let sources = read_sources(&cfg.sources)?;
    let methods = list_methods(cfg)?;
    let prepared = prepare_sources(&sources, predictor, cfg)?;
    let mut result = ScoreResult {
        methods: methods.clone(),
        ..Default::default()
    };
    // Every expected output, in report order.
    let mut todo: Vec<Expected> = Vec::new();
    for m in &methods {
        let dir = cfg.runs.join(m);
        for (si, s) in prepared.iter().enumerate() {
            for t in cfg.conditions.targets(s.info.emotion) {
                let p = output_path(&dir, &s.info.id, t);
                if p.is_file() {
                    todo.push(Expected {
                        method: m.clone(),
                        source: si,
                        target: t,
                        path: p,
                    });
                } else {
                    result.missing.push(MissingOutput {
                        method: m.clone(),
                        source_id: s.info.id.clone(),
                        target: t,
                        path: p.display().to_string(),
                    });
                }
            }
        }
    }
    result.rows = score_outputs(&prepared, &todo, predictor, cfg)?;
    Ok(result)
}

/// Scores each of `todo` against its prepared source with `cfg`'s resize and metric options:
/// one row per entry, in order.
pub fn score_outputs(
    prepared: &[PreparedSource],
    todo: &[Expected],
    predictor: &Predictor,
    cfg: &ScoreConfig,
) -> Result<Vec<ScoreRow>, ScoreError> {
    let mut out = Vec::with_capacity(todo.len());
    let pb = crate::progress::bar(todo.len() as u64, "outputs");
    for chunk in todo.chunks(cfg.batch.max(1)) {
        let images: Vec<RgbImage> = chunk
            .par_iter()
            .map(|e| load_for_metrics(&e.path, cfg.resize))
            .collect::<Result<_, _>>()?;
        let refs: Vec<&RgbImage> = images.iter().collect();
        let preds = predictor.predict(&refs)?;
        let rows: Vec<ScoreRow> = chunk
            .par_iter()
            .zip(images.par_iter())
            .zip(preds.par_iter())
            .map(|((e, img), pg)| {
                let src = prepared.get(e.source).ok_or_else(|| ScoreError::Runs {
                    path: e.path.clone(),
                    message: format!("source index {} of {} prepared", e.source, prepared.len()),
                })?;
                let metrics =
                    pair_metrics(src, img, pg, e.target, &cfg.metrics).map_err(|source| {
                        ScoreError::Metric {
                            path: e.path.clone(),
                            source,
                        }
                    })?;
                Ok(ScoreRow {
                    method: e.method.clone(),
                    source_id: src.info.id.clone(),
                    source_emotion: src.info.emotion,
                    target: e.target,
                    p_src: src.prediction.probs,
                    p_gen: pg.probs,
                    argmax_src: src.prediction.argmax,
                    argmax_gen: pg.argmax,
                    m: metrics,
                })
            })
            .collect::<Result<_, ScoreError>>()?;
        out.extend(rows);
        pb.inc(chunk.len() as u64);
    }
    pb.finish_and_clear();
    Ok(out)
}

/// Rows grouped by method, for exporters.
pub fn by_method(rows: &[ScoreRow]) -> BTreeMap<&str, Vec<&ScoreRow>> {
    let mut m: BTreeMap<&str, Vec<&ScoreRow>> = BTreeMap::new();
    for r in rows {
        m.entry(r.method.as_str()).or_default().push(r);
    }
    m
}

/// What produced a score report: written as `report.json` beside it.
#[derive(Debug, serde::Serialize)]
pub struct ScoreMetadata {
    /// Tool, version, commit, command.
    #[serde(flatten)]
    pub provenance: crate::provenance::Provenance,
    /// Predictor weights.
    pub predictor: crate::provenance::WeightFile,
    /// Class order of the checkpoint.
    pub class_order: String,
    /// Preprocessing: resize filter to 224, input scaling.
    pub preprocessing: String,
    /// Metric options.
    pub metrics: MetricOptions,
    /// Expected targets.
    pub targets: String,
    /// sources.csv with SHA-256.
    pub sources: crate::provenance::WeightFile,
    /// Row counts.
    pub scored: usize,
    /// Missing outputs.
    pub missing: usize,
    /// Methods scored.
    pub methods: Vec<String>,
}

impl ScoreMetadata {
    /// The record of scoring `cfg` with `predictor` into `result`.
    pub fn new(
        cfg: &ScoreConfig,
        predictor: &Predictor,
        result: &ScoreResult,
    ) -> std::io::Result<Self> {
        Ok(Self {
            provenance: crate::provenance::Provenance::current(),
            predictor: crate::provenance::predictor_weight_file(predictor.source()),
            class_order: predictor.class_order().to_string(),
            preprocessing: format!(
                "PIL-compatible {} resize to 224x224, RGB / 255, no mean/std normalisation",
                cfg.resize
            ),
            metrics: cfg.metrics.clone(),
            targets: cfg.conditions.to_string(),
            sources: crate::provenance::WeightFile {
                role: "sources".into(),
                path: cfg.sources.display().to_string(),
                sha256: crate::provenance::sha256_file(&cfg.sources)?,
                stand_in: false,
            },
            scored: result.rows.len(),
            missing: result.missing.len(),
            methods: result.methods.clone(),
        })
    }
}

/// Lines naming what produced a score report: the stand-in notice (if any) and the options.
pub fn report_notes(predictor: &Predictor, cfg: &ScoreConfig) -> Vec<String> {
    vec![
        predictor.source().describe(),
        format!(
            "emobench {} ({}); resize {}; ESS Canny(200,500) on {}; ENRD {}; SSIM {} window {}; targets {}",
            crate::provenance::VERSION,
            crate::provenance::GIT_COMMIT,
            cfg.resize,
            cfg.metrics.ess_input,
            cfg.metrics.enrd_average,
            cfg.metrics.ssim.input,
            cfg.metrics.ssim.win_size,
            cfg.conditions
        ),
    ]
}
