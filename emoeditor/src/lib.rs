//! EmoEditor (Lin et al., "Make Me Happier: Evoking Emotions Through Image Diffusion Models"):
//! InstructPix2Pix's UNet and VAE conditioned on emotion-direction tokens instead of text, run as
//! DDIM passes from a partly noised image, with the emotion predictor P and SSIM as an iterative
//! critic. Upstream: `ZhangLab-DeepNeuroCogLab/EmoEditor` (`test.py`, `ip2p.py`, `emo_model.py`).
//!
//! The diffusion pass lives in [`models::pipeline`] (shared with InstructPix2Pix);
//! this module adds the direction encoder ([`encoder`]), the critic loop ([`critic`]), the edit
//! method that ties them to the predictor, the per-image record it keeps ([`trace`]) and the
//! iteration ablation derived from that record ([`iterations`]).

pub mod critic;
pub mod encoder;
pub mod iterations;
pub mod lockstep;
pub mod trace;

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use emobench_core::edit::method::{EditError, EditMethod, EditRequest};
use emobench_core::edit::registry::MethodEntry;
use image::RgbImage;
use models::device::{parse_device, parse_dtype};
use models::noise::{NoiseSource, ReplayNoise, SeededNoise};
use models::pipeline::{
    image_to_unit_tensor, unit_tensor_to_image, EditPipeline, EmoPassItem, Quantise,
};
use models::schedulers::{Ddim, DdimConfig};
use models::unet::UNetConfig;
use models::vae::VaeConfig;
use models::weights::WeightFile;
use models::weights::{self, LoadOptions};
use serde::{Deserialize, Serialize};

use emobench_core::emotion::{Emotion, Valence};
use emobench_core::imgproc::resize::{resize_pil, ResizeFilter};
use emobench_core::imgproc::{rgb_to_gray_cv, ssim_gray, SsimOptions};
use emobench_core::predictor::{ClassOrder, Predictor};
use models::resnet::ResNetConfig;

use critic::{run_critic, CriticOptions, PassOutcome, Profile};
use encoder::EmoDirectionEncoder;
use trace::Trace;

/// Registry name.
pub const NAME: &str = "emoeditor";
const DISPLAY_NAME: &str = "EmoEditor";
/// Side of the square images EmoEditor edits (`transforms.Resize((224, 224))`).
pub const SIZE: u32 = 224;
/// The authors' default seed (`test.py`).
pub const AUTHORS_SEED: u64 = 75863;

/// Options of [`EmoEditor`] (`--options` JSON; every field optional).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmoEditorOptions {
    /// The authors' `model_ip2p.pt` (`unet.*`, `auto_encoder.*`), or a diffusers folder.
    pub ip2p: String,
    /// The authors' `model_emoenc.pt`.
    pub encoder: String,
    /// A folder with `unet/config.json` and `vae/config.json` for the architectures of a
    /// `model_ip2p.pt` that is not InstructPix2Pix-sized (tests use tiny ones).
    pub config_dir: Option<String>,
    /// The critic's emotion predictor: a checkpoint or `stand-in` (named in every output).
    pub predictor: String,
    /// `resnet18` or `tiny`.
    pub predictor_arch: String,
    /// The predictor's class order (`alphabetical`, the authors').
    pub class_order: String,
    /// Seed of the stand-in predictor.
    pub stand_in_seed: u64,
    /// `code` (authors' released inference), `paper` or `no-critic`.
    pub profile: String,
    /// DDIM steps per pass.
    pub steps: usize,
    /// T ~ UniformInt[t_min, t_max] per pass (`int(1000 * 0.70)`, `int(1000 * 0.98)`).
    pub t_min: i64,
    /// See `t_min`.
    pub t_max: i64,
    /// The authors' `num_loop`.
    pub num_loop: usize,
    /// Hard cap on passes.
    pub max_passes: usize,
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// `f32`, `f16` or `bf16`.
    pub dtype: String,
    /// Conditions per UNet call: up to this many (source, target) edits run their critic loops
    /// in lockstep, each pass round one batched DDIM pass (each image keeps its own T).
    pub batch: usize,
    /// Keep every pass's image beside the trace (`<target>.passes/<k>.png`, `0.png` the source
    /// as edited), so the iteration ablation can derive the outputs of smaller caps.
    pub keep_passes: bool,
}

impl Default for EmoEditorOptions {
    fn default() -> Self {
        Self {
            ip2p: "model/model_ip2p.pt".into(),
            encoder: "model/model_emoenc.pt".into(),
            config_dir: None,
            predictor: "stand-in".into(),
            predictor_arch: "resnet18".into(),
            class_order: "alphabetical".into(),
            stand_in_seed: emobench_core::predictor::STAND_IN_SEED,
            profile: "code".into(),
            steps: 30,
            t_min: 700,
            t_max: 980,
            num_loop: 30,
            max_passes: 100,
            device: "cpu".into(),
            dtype: "f32".into(),
            batch: 1,
            keep_passes: false,
        }
    }
}

fn invalid(option: &str, reason: impl Into<String>) -> EditError {
    EditError::invalid_option(DISPLAY_NAME, option, reason)
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> EditError {
    EditError::backend(DISPLAY_NAME, e)
}

/// Where the authors' weights come from and how to pass them.
const WEIGHTS_HINT: &str = "the authors publish model_ip2p.pt and model_emoenc.pt with their \
    repository ZhangLab-DeepNeuroCogLab/EmoEditor; pass them with --options \
    '{\"ip2p\": \"...\", \"encoder\": \"...\", \"predictor\": \"...\"}'";

/// `what` could not be found because of `e`.
fn missing(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> EditError {
    EditError::missing_resource(DISPLAY_NAME, what, WEIGHTS_HINT, e)
}

/// The file `path` (`what`) does not exist.
fn missing_file(what: &str, path: &Path) -> EditError {
    EditError::MissingResource {
        method: DISPLAY_NAME.into(),
        what: what.into(),
        hint: format!("{}: not found ({WEIGHTS_HINT})", path.display()),
        source: None,
    }
}

impl EmoEditorOptions {
    /// Reads options from JSON (`null`: defaults) and checks them.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, EditError> {
        let opts: Self = emobench_core::edit::method::options_from_json(DISPLAY_NAME, value)?;
        opts.critic()?;
        if opts.steps == 0 {
            return Err(invalid("steps", "must be at least 1"));
        }
        if opts.batch == 0 {
            return Err(invalid("batch", "must be at least 1"));
        }
        if opts.t_min < opts.steps as i64 || opts.t_min > opts.t_max || opts.t_max > 1000 {
            return Err(invalid(
                "t_min",
                format!(
                    "need steps <= t_min <= t_max <= 1000, got {}..={}",
                    opts.t_min, opts.t_max
                ),
            ));
        }
        Ok(opts)
    }

    /// The critic settings.
    pub fn critic(&self) -> Result<CriticOptions, EditError> {
        let profile = Profile::parse(&self.profile).ok_or_else(|| {
            invalid(
                "profile",
                format!(
                    "'{}': expected one of {}",
                    self.profile,
                    Profile::ALL.map(Profile::name).join(", ")
                ),
            )
        })?;
        if self.num_loop == 0 || self.max_passes == 0 {
            return Err(invalid(
                "num_loop",
                "num_loop and max_passes must be at least 1",
            ));
        }
        Ok(CriticOptions {
            profile,
            num_loop: self.num_loop,
            max_passes: self.max_passes,
        })
    }
}

/// The EmoEditor edit method.
pub struct EmoEditor {
    options: EmoEditorOptions,
    critic: CriticOptions,
    pipeline: EditPipeline,
    encoder: EmoDirectionEncoder,
    predictor: Predictor,
    files: Vec<WeightFile>,
    /// The run folder (`runs/emoeditor/`), where `keep_passes` writes.
    run_dir: Option<PathBuf>,
}

/// One edit's images (0 the source, k pass k's output, in [0, 1]) and its trace.
struct Edited {
    images: Vec<Tensor>,
    trace: Trace,
}

impl Edited {
    /// The image the critic kept.
    fn kept(&self) -> Result<&Tensor, EditError> {
        let kept = self.trace.kept;
        self.images.get(kept).ok_or_else(|| EditError::Failed {
            method: DISPLAY_NAME.into(),
            reason: format!("the critic kept image {kept}, which does not exist"),
        })
    }
}

/// One diffusion pass of one image, as the critic asks for it.
struct PassJob {
    context: Tensor,
    image: Tensor,
    cond: Tensor,
    train_steps: usize,
    noise: [Vec<f32>; 2],
}

impl EmoEditor {
    /// Loads everything the options name.
    pub fn new(options: EmoEditorOptions) -> Result<Self, EditError> {
        let critic = options.critic()?;
        let device = parse_device(&options.device)
            .map_err(|e| EditError::invalid_option_because(DISPLAY_NAME, "device", e))?;
        let dtype = parse_dtype(&options.dtype)
            .map_err(|e| EditError::invalid_option_because(DISPLAY_NAME, "dtype", e))?;
        let load = LoadOptions {
            device: device.clone(),
            dtype,
            variant: None,
        };
        let ip2p = Path::new(&options.ip2p);
        let (pipeline, mut files) = if ip2p.is_dir() || weights::is_repo_id(&options.ip2p) {
            let dir =
                weights::resolve_model_dir(&options.ip2p, &weights::pipeline_files(None), false)
                    .map_err(|e| missing("InstructPix2Pix weights", e))?;
            weights::load_pipeline(&dir, &load).map_err(backend)?
        } else {
            if !ip2p.is_file() {
                return Err(missing_file("model_ip2p.pt", ip2p));
            }
            let (unet_cfg, vae_cfg) = match &options.config_dir {
                Some(d) => {
                    let d = Path::new(d);
                    (
                        weights::read_config::<UNetConfig>(&d.join("unet/config.json"))
                            .map_err(backend)?,
                        weights::read_config::<VaeConfig>(&d.join("vae/config.json"))
                            .map_err(backend)?,
                    )
                }
                None => (
                    UNetConfig::instruct_pix2pix(),
                    VaeConfig::stable_diffusion_v1(),
                ),
            };
            weights::load_authors_pipeline(ip2p, &unet_cfg, &vae_cfg, &load).map_err(backend)?
        };
        let enc_path = Path::new(&options.encoder);
        if !enc_path.is_file() {
            return Err(missing_file("model_emoenc.pt", enc_path));
        }
        let vb = weights::var_builder(enc_path, dtype, &device).map_err(backend)?;
        let encoder = EmoDirectionEncoder::new(vb)
            .map_err(|e| backend(weights::WeightsError::load(enc_path, e)))?;
        files.push(WeightFile {
            role: "emotion_encoder".into(),
            path: enc_path.display().to_string(),
            sha256: weights::sha256_file(enc_path).map_err(backend)?,
            stand_in: false,
        });
        let predictor = if options.predictor == "stand-in" {
            Predictor::stand_in(options.stand_in_seed, &device).map_err(backend)?
        } else {
            let config = match options.predictor_arch.as_str() {
                "resnet18" => ResNetConfig::resnet18(8),
                "tiny" => ResNetConfig::tiny(8),
                other => {
                    return Err(invalid(
                        "predictor_arch",
                        format!("'{other}': expected resnet18 or tiny"),
                    ))
                }
            };
            let order: ClassOrder = options.class_order.parse().map_err(
                |e: emobench_core::predictor::PredictorError| {
                    EditError::invalid_option_because(DISPLAY_NAME, "class_order", e)
                },
            )?;
            Predictor::load(Path::new(&options.predictor), config, order, &device)
                .map_err(backend)?
        };
        files.push(emobench_core::provenance::predictor_weight_file(
            predictor.source(),
        ));
        Ok(Self {
            options,
            critic,
            pipeline,
            encoder,
            predictor,
            files,
            run_dir: None,
        })
    }

    /// Softmax of P on float images, in `f32` like `torch.softmax` on a float32 tensor.
    fn probs(&self, x: &Tensor) -> Result<[f32; 8], EditError> {
        let logits = self.predictor.logits(x).map_err(backend)?;
        let l = logits.first().ok_or_else(|| EditError::Failed {
            method: DISPLAY_NAME.into(),
            reason: "the predictor returned no logits".into(),
        })?;
        let max = l.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exps: Vec<f32> = l.iter().map(|v| (v - max).exp()).collect();
        let sum: f32 = exps.iter().sum();
        let mut p = [0f32; 8];
        for (o, e) in p.iter_mut().zip(&exps) {
            *o = e / sum;
        }
        Ok(p)
    }

    /// Edits a source towards `target` with the given noise; returns the kept image in [0, 1]
    /// (1, 3, 224, 224) and the trace.
    pub fn edit_unit(
        &self,
        source: &RgbImage,
        target: Emotion,
        noise: &mut dyn NoiseSource,
    ) -> Result<(Tensor, serde_json::Value), EditError> {
        let edited = self.edit_unit_with(source, target, noise, &mut |job| {
            let mut out = self.run_passes(vec![job])?;
            Ok(out.swap_remove(0))
        })?;
        let trace = serde_json::to_value(&edited.trace).map_err(backend)?;
        Ok((edited.kept()?.clone(), trace))
    }

    /// One job: the target parsed, the job's seeded noise, the kept image quantised as the
    /// authors save it, and the trace; `run` runs the diffusion passes. With `keep_passes`, every
    /// pass's image is written first, so a finished output always has its passes beside it.
    fn edit_request(
        &self,
        req: &EditRequest<'_>,
        run: &mut dyn FnMut(PassJob) -> Result<Tensor, EditError>,
    ) -> Result<(RgbImage, Option<serde_json::Value>), EditError> {
        let target: Emotion =
            req.target
                .parse()
                .map_err(|e: emobench_core::emotion::UnknownEmotion| {
                    EditError::invalid_option_because(DISPLAY_NAME, "target", e)
                })?;
        let passes_at = if self.options.keep_passes {
            Some(self.passes_output(req, target)?)
        } else {
            None
        };
        let mut noise = SeededNoise::new(req.seed);
        let edited = self.edit_unit_with(req.source, target, &mut noise, run)?;
        if let Some(output) = passes_at {
            for (k, t) in edited.images.iter().enumerate() {
                let img = unit_tensor_to_image(t, Quantise::Truncate).map_err(backend)?;
                emobench_core::image_io::save_png_atomic(&trace::pass_image(&output, k), &img)
                    .map_err(backend)?;
            }
        }
        let trace = serde_json::to_value(&edited.trace).map_err(backend)?;
        let out = unit_tensor_to_image(edited.kept()?, Quantise::Truncate).map_err(backend)?;
        Ok((out, Some(trace)))
    }

    /// Where the run loop writes this request's output, for `keep_passes` to write beside it.
    fn passes_output(&self, req: &EditRequest<'_>, target: Emotion) -> Result<PathBuf, EditError> {
        match &self.run_dir {
            Some(dir) if !req.source_id.is_empty() => {
                Ok(emobench_core::runs::output_path(dir, req.source_id, target))
            }
            _ => Err(invalid(
                "keep_passes",
                "needs a run folder and source ids (emobench edit)",
            )),
        }
    }

    /// Runs diffusion passes of one or several images in one batched call.
    fn run_passes(&self, jobs: Vec<PassJob>) -> Result<Vec<Tensor>, EditError> {
        let mut parts = Vec::with_capacity(jobs.len());
        for job in jobs {
            let ddim = Ddim::new(DdimConfig::stable_diffusion_v1_4()).map_err(backend)?;
            let noise = ReplayNoise::new(job.noise.to_vec(), Vec::new());
            parts.push((job, ddim, noise));
        }
        let mut items: Vec<EmoPassItem<'_>> = parts
            .iter_mut()
            .map(|(job, ddim, noise)| EmoPassItem {
                context: &job.context,
                image01: &job.image,
                cond_latents: &job.cond,
                scheduler: ddim,
                train_steps: job.train_steps,
                noise,
            })
            .collect();
        let outs = self
            .pipeline
            .emoeditor_pass_batch(&mut items, self.options.steps, None)
            .map_err(backend)?;
        outs.iter()
            .map(|t| t.to_device(&Device::Cpu).map_err(backend))
            .collect()
    }

    /// [`Self::edit_unit`] with the diffusion passes run by `run` (alone, or batched with other
    /// images' passes).
    fn edit_unit_with(
        &self,
        source: &RgbImage,
        target: Emotion,
        noise: &mut dyn NoiseSource,
        run: &mut dyn FnMut(PassJob) -> Result<Tensor, EditError>,
    ) -> Result<Edited, EditError> {
        let order = self.predictor.class_order();
        let src = resize_pil(source, SIZE, SIZE, ResizeFilter::Bilinear);
        let x0 = image_to_unit_tensor(&src, &Device::Cpu).map_err(backend)?;
        let src_probs = self.probs(&x0)?;
        let target_idx = order.index_of(target);
        let mut positive = [false; 8];
        for (i, e) in order.0.iter().enumerate() {
            positive[i] = e.valence() == Valence::Positive;
        }
        let (cond, _) = self.pipeline.encode(&x0).map_err(backend)?;
        let src_gray =
            rgb_to_gray_cv(&unit_tensor_to_image(&x0, Quantise::Truncate).map_err(backend)?);
        let ssim_opts = SsimOptions::uniform(51);
        let mut images = vec![x0];
        let mut probs = vec![src_probs];
        let mut train_steps = Vec::new();
        let result = run_critic(&self.critic, target_idx, &positive, |input| {
            let from = probs[input.direction_from];
            let mut direction = [0f32; 8];
            for (i, d) in direction.iter_mut().enumerate() {
                *d = if i == target_idx { 1.0 } else { 0.0 } - from[i];
            }
            let context = self
                .encoder
                .forward(&direction, &self.pipeline.device)
                .map_err(backend)?;
            let t = noise.uniform_int(self.options.t_min, self.options.t_max);
            train_steps.push(t);
            // The pass's own draws, in its order: the posterior sample's noise, then the
            // forward process's (both latent-sized, like the source's posterior mode).
            let n = cond.elem_count();
            let out = run(PassJob {
                context,
                image: images[input.image].clone(),
                cond: cond.clone(),
                train_steps: t as usize,
                noise: [noise.normal(n), noise.normal(n)],
            })?;
            let p = self.probs(&out)?;
            let gray =
                rgb_to_gray_cv(&unit_tensor_to_image(&out, Quantise::Truncate).map_err(backend)?);
            let ssim = ssim_gray(&src_gray, &gray, &ssim_opts).map_err(backend)?;
            images.push(out);
            probs.push(p);
            Ok::<_, EditError>(PassOutcome { probs: p, ssim })
        })?;
        let trace = Trace::new(
            self.critic,
            target,
            &order.0,
            src_probs,
            train_steps,
            result,
            self.predictor.source().describe(),
        );
        Ok(Edited { images, trace })
    }
}

impl EditMethod for EmoEditor {
    fn name(&self) -> &str {
        NAME
    }

    fn parameters(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.options).unwrap_or(serde_json::Value::Null);
        if let Some(obj) = v.as_object_mut() {
            obj.insert(
                "critic".into(),
                serde_json::to_value(self.critic).unwrap_or_default(),
            );
            obj.insert(
                "scheduler".into(),
                serde_json::to_value(DdimConfig::stable_diffusion_v1_4()).unwrap_or_default(),
            );
            obj.insert(
                "noise".into(),
                "ChaCha8 + Box-Muller seeded by the job seed (not torch's generator)".into(),
            );
            obj.insert(
                "predictor_source".into(),
                self.predictor.source().describe().into(),
            );
        }
        v
    }

    fn edit(&self, req: &EditRequest<'_>) -> Result<RgbImage, EditError> {
        Ok(self.edit_traced(req)?.0)
    }

    fn edit_traced(
        &self,
        req: &EditRequest<'_>,
    ) -> Result<(RgbImage, Option<serde_json::Value>), EditError> {
        self.edit_request(req, &mut |job| {
            let mut out = self.run_passes(vec![job])?;
            Ok(out.swap_remove(0))
        })
    }

    fn batch_size(&self) -> usize {
        self.options.batch
    }

    fn edit_batch(
        &self,
        reqs: &[EditRequest<'_>],
    ) -> Result<Vec<(RgbImage, Option<serde_json::Value>)>, EditError> {
        let mut out = Vec::with_capacity(reqs.len());
        for chunk in reqs.chunks(self.options.batch.max(1)) {
            if chunk.len() == 1 {
                out.push(self.edit_traced(&chunk[0])?);
                continue;
            }
            let results = lockstep::lockstep(
                chunk.len(),
                |i, submit| {
                    self.edit_request(&chunk[i], &mut |job| {
                        submit(job).map_err(|e| match e {
                            lockstep::BatchError::Exec(shared) => EditError::Shared(shared),
                            other => EditError::Failed {
                                method: DISPLAY_NAME.into(),
                                reason: other.to_string(),
                            },
                        })
                    })
                },
                |jobs| self.run_passes(jobs).map_err(std::sync::Arc::new),
            );
            for r in results {
                out.push(r?);
            }
        }
        Ok(out)
    }

    fn weights(&self) -> Vec<WeightFile> {
        self.files.clone()
    }

    fn attach_run_folder(&mut self, dir: &Path) -> Result<(), EditError> {
        self.run_dir = Some(dir.to_path_buf());
        Ok(())
    }
}

fn build(options: &serde_json::Value) -> Result<Box<dyn EditMethod>, EditError> {
    Ok(Box::new(EmoEditor::new(EmoEditorOptions::from_json(
        options,
    )?)?))
}

/// The registry entry for EmoEditor.
pub fn entry() -> MethodEntry {
    MethodEntry { name: NAME, build }
}
