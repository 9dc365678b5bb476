//! The `emobench` command line.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use candle_core::Device;
use clap::{Args, Parser, Subcommand};

pub mod iterations;
pub mod trials;

use emobench_core::edit::{EditConfig, DEFAULT_SEED};
use emobench_core::emotion::{Conditions, Emotion};
use emobench_core::imgproc::resize::ResizeFilter;
use emobench_core::imgproc::ssim::SsimOptions;
use emobench_core::metrics::{EdgeInput, EnrdAverage, MetricOptions, SsimChoice};
use emobench_core::predictor::{ClassOrder, Predictor, STAND_IN_SEED};
use emobench_core::runs::Shard;
use emobench_core::score::ScoreConfig;
use models::resnet::ResNetConfig;

/// emobench: run, score and study emotion-evoking image edits as in "Make Me Happier".
#[derive(Debug, Parser)]
#[command(name = "emobench", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The whole pipeline on the bundled sample photos, with nothing to download.
    Demo(DemoArgs),
    /// Run an edit method over sources.csv into a run folder.
    Edit(EditArgs),
    /// Score run folders with the paper's metrics; writes Table 1, per-image CSV, matrices.
    Score(ScoreArgs),
    /// Print the predictor's emotion distribution for images (and optionally Grad-CAM overlays).
    Predict(PredictArgs),
    /// Fig. S11: EmoEditor's metrics against its iteration cap, derived from one run kept with
    /// keep_passes.
    Iterations(crate::cli::iterations::IterationsArgs),
    /// Human-study trial sets, simulation, analysis and power.
    #[command(subcommand)]
    Trials(crate::cli::trials::TrialsCommand),
    /// One static HTML page of score reports, runs, traces, iteration studies and a study.
    Report(ReportArgs),
}

/// Which predictor and how to run it.
#[derive(Debug, Clone, Args)]
pub struct PredictorArgs {
    /// Checkpoint (safetensors, PyTorch .pt/.pth zip or legacy) or `stand-in` (seeded random
    /// ResNet-18: runs anywhere, predicts nothing meaningful, and every output says so).
    #[arg(long, default_value = "stand-in")]
    pub predictor: String,
    /// Architecture: `resnet18` (the authors') or `tiny` (widths 8/16/32/64, the test fixtures').
    #[arg(long, default_value = "resnet18")]
    pub arch: String,
    /// The checkpoint's class order: `alphabetical` (the authors'), `emoset`, or 8 names.
    #[arg(long, default_value = "alphabetical")]
    pub class_order: String,
    /// Seed of the stand-in predictor's weights.
    #[arg(long, default_value_t = STAND_IN_SEED)]
    pub stand_in_seed: u64,
    /// `cpu` or `cuda:N` (needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Resize filter to 224x224: `bicubic` (the authors' metric script, PIL default) or
    /// `bilinear` (their inference script, torchvision Resize).
    #[arg(long, default_value = "bicubic")]
    pub resize: String,
}

impl PredictorArgs {
    /// Builds the predictor these arguments name.
    pub fn build(&self) -> anyhow::Result<Predictor> {
        let device = parse_device(&self.device)?;
        if self.predictor == "stand-in" {
            return Ok(Predictor::stand_in(self.stand_in_seed, &device)?);
        }
        let config = match self.arch.as_str() {
            "resnet18" => ResNetConfig::resnet18(8),
            "tiny" => ResNetConfig::tiny(8),
            other => bail!("--arch '{other}': expected resnet18 or tiny"),
        };
        let order: ClassOrder = self.class_order.parse()?;
        Ok(Predictor::load(
            Path::new(&self.predictor),
            config,
            order,
            &device,
        )?)
    }

    /// The resize filter.
    pub fn filter(&self) -> anyhow::Result<ResizeFilter> {
        self.resize
            .parse()
            .map_err(|e| anyhow::anyhow!("--resize: {e}"))
    }
}

/// Parses `cpu` or `cuda:N`.
pub fn parse_device(s: &str) -> anyhow::Result<Device> {
    models::device::parse_device(s)
        .map_err(|e| anyhow::anyhow!("--device {e} (CUDA needs a build with `--features cuda`)"))
}

/// `emobench demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Output folder.
    #[arg(long, default_value = "demo-out")]
    pub out: PathBuf,
    /// Folder with the bundled demo data (sources.csv, references.csv, photos).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/studies/demo"))]
    pub data: PathBuf,
    /// Seed for the edits.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
}

/// `emobench report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Output folder: index.html and the files it links.
    #[arg(long)]
    pub out: PathBuf,
    /// A folder written by `emobench score` (repeatable: one Table-1 section each).
    #[arg(long)]
    pub scores: Vec<PathBuf>,
    /// A runs folder (`<method>/<source_id>/<target>.png`): gallery, critic traces, run.json.
    #[arg(long)]
    pub runs: Option<PathBuf>,
    /// The runs' sources.csv (default: the one the first score report names, else the one
    /// beside the runs folder).
    #[arg(long)]
    pub sources: Option<PathBuf>,
    /// A folder written by `emobench trials analyse`.
    #[arg(long)]
    pub study: Option<PathBuf>,
    /// A folder written by `emobench iterations` (repeatable).
    #[arg(long)]
    pub iterations: Vec<PathBuf>,
    /// Longest side of the gallery's thumbnails, in pixels.
    #[arg(long, default_value_t = reports::site::DEFAULT_THUMBNAIL, value_parser = clap::value_parser!(u32).range(16..=4096))]
    pub thumbnail: u32,
}

/// `emobench edit`.
#[derive(Debug, Args)]
pub struct EditArgs {
    /// Method name (see the list in the error for an unknown one).
    #[arg(long)]
    pub method: String,
    /// sources.csv (id,path,emotion).
    #[arg(long)]
    pub sources: PathBuf,
    /// references.csv (id,path,emotion): reference images for methods that need them (ct).
    #[arg(long)]
    pub references: Option<PathBuf>,
    /// Targets: cross, within, all, or a comma-separated list of emotions.
    #[arg(long, default_value = "cross")]
    pub targets: String,
    /// Runs folder; outputs go to <out>/<method>/<source_id>/<target>.png.
    #[arg(long)]
    pub out: PathBuf,
    /// Do shard i of n (0-based), e.g. 0/4.
    #[arg(long, default_value = "0/1")]
    pub shard: String,
    /// Run seed.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// Method options as a JSON object, e.g. '{"iterations": 20}' (ct) or
    /// '{"weights": "timbrooks/instruct-pix2pix", "steps": 100}' (ip2p) or
    /// '{"ip2p": "model/model_ip2p.pt", "encoder": "model/model_emoenc.pt",
    /// "predictor": "emo_predictor.pt", "profile": "code"}' (emoeditor).
    #[arg(long, default_value = "null")]
    pub options: String,
    /// Device of diffusion methods: `cpu` or `cuda:N` (a build with `--features cuda`);
    /// sets the `device` option.
    #[arg(long)]
    pub device: Option<String>,
    /// Precision of diffusion methods: `f32`, `f16` or `bf16` (half precision is meant for GPUs;
    /// on the CPU it runs candle's operators, slowly, for checking); sets the `dtype` option.
    #[arg(long)]
    pub dtype: Option<String>,
}

/// `emobench score`.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// sources.csv.
    #[arg(long)]
    pub sources: PathBuf,
    /// Runs folder (one subfolder per method).
    #[arg(long)]
    pub runs: PathBuf,
    /// Report folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Methods to score (comma-separated; default all subfolders of --runs).
    #[arg(long)]
    pub methods: Option<String>,
    /// Expected targets: cross (Table 1), within, all, or a list.
    #[arg(long, default_value = "cross")]
    pub targets: String,
    /// Canny input for ESS: rgb or gray.
    #[arg(long, default_value = "rgb")]
    pub ess_input: String,
    /// ENRD averaging: all-pixels (the authors') or neutral-only.
    #[arg(long, default_value = "all-pixels")]
    pub enrd_average: String,
    /// SSIM column: on rgb (window 7) or gray.
    #[arg(long, default_value = "rgb")]
    pub ssim_input: String,
    /// SSIM window size.
    #[arg(long, default_value_t = 7)]
    pub ssim_window: usize,
    /// Predictor batch size.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Print the cross-valence summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Predictor.
    #[command(flatten)]
    pub predictor: PredictorArgs,
}

/// `emobench predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Images.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Write Grad-CAM overlays (`<stem>_gradcam.png`) into this folder.
    #[arg(long)]
    pub cam_out: Option<PathBuf>,
    /// JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
    /// Predictor.
    #[command(flatten)]
    pub predictor: PredictorArgs,
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Demo(a) => crate::demo::run_demo(&a.data, &a.out, a.seed),
        Command::Edit(a) => cmd_edit(a),
        Command::Score(a) => cmd_score(a),
        Command::Predict(a) => cmd_predict(a),
        Command::Iterations(a) => crate::cli::iterations::run(a),
        Command::Trials(t) => crate::cli::trials::run(t),
        Command::Report(a) => cmd_report(a),
    }
}

fn cmd_report(a: ReportArgs) -> anyhow::Result<()> {
    if a.scores.is_empty() && a.runs.is_none() && a.study.is_none() && a.iterations.is_empty() {
        bail!("report: nothing to show: pass --scores, --runs, --study or --iterations");
    }
    let inputs = reports::site::SiteInputs {
        scores: a.scores,
        runs: a.runs,
        sources: a.sources,
        study: a.study,
        iterations: a.iterations,
        thumbnail: a.thumbnail,
    };
    let s = crate::commands::report(&inputs, &a.out)?;
    println!("{}", s.index.display());
    Ok(())
}

fn cmd_edit(a: EditArgs) -> anyhow::Result<()> {
    let mut options: serde_json::Value = serde_json::from_str(&a.options)
        .with_context(|| format!("--options '{}': not JSON", a.options))?;
    for (key, value) in [("device", &a.device), ("dtype", &a.dtype)] {
        if let Some(v) = value {
            if options.is_null() {
                options = serde_json::json!({});
            }
            match options.as_object_mut() {
                Some(obj) => {
                    obj.insert(key.into(), v.clone().into());
                }
                None => bail!("--options must be a JSON object to combine with --{key}"),
            }
        }
    }
    let cfg = EditConfig {
        method: a.method,
        options,
        sources: a.sources,
        references: a.references,
        conditions: a.targets.parse().context("--targets")?,
        out: a.out,
        shard: a.shard.parse::<Shard>()?,
        seed: a.seed,
    };
    let s = crate::commands::edit(&cfg)?;
    for w in &s.stand_ins {
        eprintln!(
            "STAND-IN weights used by {}: {w} (not a trained model)",
            cfg.method
        );
    }
    let prepared = if s.prepared > 0 {
        format!(", {} prepared without an image", s.prepared)
    } else {
        String::new()
    };
    eprintln!(
        "{}: {} jobs in shard {}/{}: {} written, {} already done{prepared} -> {}",
        cfg.method,
        s.jobs,
        cfg.shard.index,
        cfg.shard.count,
        s.written,
        s.skipped,
        cfg.out.join(&cfg.method).display()
    );
    Ok(())
}

/// Metric options from the score flags.
pub fn metric_options(a: &ScoreArgs) -> anyhow::Result<MetricOptions> {
    let ssim_input: EdgeInput = a.ssim_input.parse().context("--ssim-input")?;
    let options = SsimOptions {
        win_size: a.ssim_window,
        ..SsimOptions::default()
    };
    Ok(MetricOptions {
        ess_input: a.ess_input.parse()?,
        enrd_average: a.enrd_average.parse::<EnrdAverage>()?,
        ssim: SsimChoice {
            input: ssim_input,
            win_size: a.ssim_window,
            options,
        },
    })
}

impl ScoreArgs {
    /// The scoring configuration these flags name.
    pub fn config(&self) -> anyhow::Result<ScoreConfig> {
        let conditions: Conditions = self.targets.parse().context("--targets")?;
        Ok(ScoreConfig {
            sources: self.sources.clone(),
            runs: self.runs.clone(),
            methods: self
                .methods
                .as_ref()
                .map(|m| m.split(',').map(|s| s.trim().to_string()).collect()),
            conditions,
            resize: self.predictor.filter()?,
            metrics: metric_options(self)?,
            batch: self.batch,
        })
    }
}

fn cmd_score(a: ScoreArgs) -> anyhow::Result<()> {
    let predictor = a.predictor.build()?;
    let cfg = a.config()?;
    let (result, notes) = crate::commands::score_and_report(&cfg, &predictor, &a.out)?;
    for n in &notes {
        eprintln!("{n}");
    }
    let summary = emobench_core::table1::summarise(
        &result.rows,
        &result.methods,
        emobench_core::table1::Subset::CrossValence,
    );
    if a.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        eprintln!(
            "scored {} outputs, {} missing (listed in missing.csv); report in {}",
            result.rows.len(),
            result.missing.len(),
            a.out.display()
        );
        for s in summary {
            println!(
                "{:<12} n={:<5} EMR {:6.2}%  ESR {:6.2}%  ENRD {:6.2}  ESS {:6.2}",
                s.method, s.n, s.emr, s.esr, s.enrd, s.ess
            );
        }
    }
    Ok(())
}

fn cmd_predict(a: PredictArgs) -> anyhow::Result<()> {
    let predictor = a.predictor.build()?;
    let filter = a.predictor.filter()?;
    eprintln!("{}", predictor.source().describe());
    let results = crate::commands::predict(&predictor, filter, &a.images, a.cam_out.as_deref())?;
    for r in results {
        let pred = &r.prediction;
        if a.json {
            let probs: serde_json::Map<String, serde_json::Value> = Emotion::ALL
                .iter()
                .map(|e| (e.name().to_string(), serde_json::json!(pred.prob(*e))))
                .collect();
            println!(
                "{}",
                serde_json::json!({"image": r.image.display().to_string(), "argmax": pred.argmax.name(), "probs": probs, "stand_in": predictor.source().is_stand_in()})
            );
        } else {
            let parts: Vec<String> = Emotion::ALL
                .iter()
                .map(|e| format!("{e} {:.3}", pred.prob(*e)))
                .collect();
            println!(
                "{}: {} ({})",
                r.image.display(),
                pred.argmax,
                parts.join(", ")
            );
        }
        if let Some(out) = &r.overlay {
            eprintln!("Grad-CAM overlay -> {}", out.display());
        }
    }
    Ok(())
}
