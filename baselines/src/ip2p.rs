//! InstructPix2Pix as a baseline: the target emotion's word is the instruction.
//!
//! Brooks, Holynski & Efros, "InstructPix2Pix: Learning to Follow Image Editing Instructions",
//! CVPR 2023; weights `timbrooks/instruct-pix2pix`. The settings are the paper's (100 Euler
//! ancestral steps, text guidance 7.5, image guidance 1.5) and the image is resized (Pillow
//! Lanczos) to the largest multiple of 64 per side, as the original pipeline's preprocessing did.

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use image::RgbImage;
use models::device::{parse_device, parse_dtype};
use serde::{Deserialize, Serialize};

use crate::method::{EditError, EditMethod, EditRequest};
use emobench_core::imgproc::resize::{resize_pil, ResizeFilter};
use models::clip_text::ClipTextEncoder;
use models::noise::SeededNoise;
use models::pipeline::{
    image_to_unit_tensor, unit_tensor_to_image, EditPipeline, Guidance, Ip2pItem, Quantise,
};
use models::schedulers::{EulerAncestral, EulerAncestralConfig};
use models::tokenizer::ClipTokenizer;
use models::weights::WeightFile;
use models::weights::{self, LoadOptions};

/// Registry name.
pub const NAME: &str = "ip2p";
const DISPLAY_NAME: &str = "InstructPix2Pix";

/// Options of [`InstructPix2Pix`] (`--options` JSON; every field optional).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Ip2pOptions {
    /// A diffusers folder or a Hugging Face repo id.
    pub weights: String,
    /// Weight variant in the folder (`fp16`), if any.
    pub variant: Option<String>,
    /// Fetch missing files of a repo id into the Hugging Face cache.
    pub download: bool,
    /// Denoising steps.
    pub steps: usize,
    /// Text guidance scale.
    pub guidance: f32,
    /// Image guidance scale.
    pub image_guidance: f32,
    /// Sides are resized down to a multiple of this (64 in the original pipeline; 8 is the
    /// least the VAE accepts).
    pub multiple: u32,
    /// Template of the instruction; `{emotion}` is replaced by the target word.
    pub prompt: String,
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// `f32`, `f16` or `bf16` (half precision is meant for GPUs; on the CPU it runs, slowly, on
    /// candle's operators, for checking).
    pub dtype: String,
    /// Conditions per UNet call: up to this many (source, target) edits of one image size run
    /// together, 3 UNet rows each. Results equal one-at-a-time edits up to rounding.
    pub batch: usize,
}

impl Default for Ip2pOptions {
    fn default() -> Self {
        Self {
            weights: "timbrooks/instruct-pix2pix".into(),
            variant: None,
            download: false,
            steps: 100,
            guidance: 7.5,
            image_guidance: 1.5,
            multiple: 64,
            prompt: "{emotion}".into(),
            device: "cpu".into(),
            dtype: "f32".into(),
            batch: 1,
        }
    }
}

fn invalid(option: &str, reason: impl Into<String>) -> EditError {
    EditError::invalid_option(DISPLAY_NAME, option, reason)
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> EditError {
    EditError::backend(DISPLAY_NAME, e)
}

impl Ip2pOptions {
    /// Reads options from JSON (`null`: defaults) and checks them.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, EditError> {
        let opts: Self = crate::method::options_from_json(DISPLAY_NAME, value)?;
        if opts.steps == 0 {
            return Err(invalid("steps", "must be at least 1"));
        }
        if opts.batch == 0 {
            return Err(invalid("batch", "must be at least 1"));
        }
        if opts.multiple == 0 || !opts.multiple.is_multiple_of(8) {
            return Err(invalid("multiple", "must be a positive multiple of 8"));
        }
        Ok(opts)
    }
}

/// The InstructPix2Pix baseline.
pub struct InstructPix2Pix {
    options: Ip2pOptions,
    pipeline: EditPipeline,
    text: ClipTextEncoder,
    tokenizer: ClipTokenizer,
    scheduler: EulerAncestral,
    files: Vec<WeightFile>,
    model_dir: PathBuf,
}

impl InstructPix2Pix {
    /// Loads the weights the options name.
    pub fn new(options: Ip2pOptions) -> Result<Self, EditError> {
        let device = parse_device(&options.device)
            .map_err(|e| EditError::invalid_option_because(DISPLAY_NAME, "device", e))?;
        let dtype = parse_dtype(&options.dtype)
            .map_err(|e| EditError::invalid_option_because(DISPLAY_NAME, "dtype", e))?;
        let files = weights::pipeline_files(options.variant.as_deref());
        let dir = weights::resolve_model_dir(&options.weights, &files, options.download).map_err(
            |e| EditError::missing_resource(DISPLAY_NAME, "InstructPix2Pix weights", "", e),
        )?;
        let load = LoadOptions {
            device,
            dtype,
            variant: options.variant.clone(),
        };
        let (pipeline, mut used) = weights::load_pipeline(&dir, &load).map_err(backend)?;
        let (text, tokenizer, text_files) =
            weights::load_text_encoder(&dir, &load).map_err(backend)?;
        used.extend(text_files);
        let sched_path = dir.join("scheduler/scheduler_config.json");
        let config: EulerAncestralConfig = if sched_path.is_file() {
            weights::read_config(&sched_path).map_err(backend)?
        } else {
            EulerAncestralConfig::instruct_pix2pix()
        };
        let mut method = Self::from_parts(options, pipeline, text, tokenizer, config)?;
        method.files = used;
        method.model_dir = dir;
        Ok(method)
    }

    /// Builds from a loaded pipeline (tests, other front ends).
    pub fn from_parts(
        options: Ip2pOptions,
        pipeline: EditPipeline,
        text: ClipTextEncoder,
        tokenizer: ClipTokenizer,
        scheduler_config: EulerAncestralConfig,
    ) -> Result<Self, EditError> {
        let mut scheduler = EulerAncestral::new(scheduler_config).map_err(backend)?;
        scheduler.set_timesteps(options.steps).map_err(backend)?;
        Ok(Self {
            options,
            pipeline,
            text,
            tokenizer,
            scheduler,
            files: Vec::new(),
            model_dir: PathBuf::new(),
        })
    }

    /// The prompt embeddings the pipeline stacks: instruction, empty, empty.
    pub fn prompt_embeds(&self, instruction: &str) -> candle_core::Result<Tensor> {
        let dev = &self.pipeline.device;
        let ids = |text: &str| -> candle_core::Result<Tensor> {
            let ids = self.tokenizer.encode_padded(text);
            let n = ids.len();
            Tensor::from_vec(ids, (1, n), dev)
        };
        let cond = self.text.forward(&ids(instruction)?)?;
        let uncond = self.text.forward(&ids("")?)?;
        Tensor::cat(&[&cond, &uncond, &uncond], 0)
    }

    /// Resizes to the largest multiple of `multiple` per side (Lanczos), as the pipeline's
    /// preprocessing does; images already at such a size are left alone.
    pub fn preprocess(&self, img: &RgbImage) -> Result<RgbImage, EditError> {
        let m = self.options.multiple;
        let (w, h) = img.dimensions();
        let (tw, th) = (w - w % m, h - h % m);
        if tw == 0 || th == 0 {
            return Err(EditError::SizeMismatch {
                method: DISPLAY_NAME.into(),
                what: "source size".into(),
                expected: format!("at least {m}x{m}"),
                got: format!("{w}x{h}"),
            });
        }
        Ok(if (tw, th) == (w, h) {
            img.clone()
        } else {
            resize_pil(img, tw, th, ResizeFilter::Lanczos)
        })
    }

    fn guidance(&self) -> Guidance {
        Guidance {
            text: self.options.guidance,
            image: self.options.image_guidance,
        }
    }

    /// The edited image as a [0, 1] tensor, with the given noise source.
    pub fn edit_unit(
        &self,
        source: &RgbImage,
        instruction: &str,
        noise: &mut dyn models::noise::NoiseSource,
    ) -> Result<Tensor, EditError> {
        let img = self.preprocess(source)?;
        let x = image_to_unit_tensor(&img, &Device::Cpu).map_err(backend)?;
        let embeds = self.prompt_embeds(instruction).map_err(backend)?;
        self.pipeline
            .instruct_pix2pix(&embeds, &x, &self.scheduler, self.guidance(), noise, None)
            .map_err(backend)
    }

    /// Edits requests that share an image size in one batch (up to the `batch` option), each
    /// with the job's own seeded noise.
    fn edit_same_size(
        &self,
        reqs: &[(RgbImage, &EditRequest<'_>)],
    ) -> Result<Vec<RgbImage>, EditError> {
        let mut inputs = Vec::with_capacity(reqs.len());
        for (img, req) in reqs {
            let instruction = self.options.prompt.replace("{emotion}", req.target);
            let x = image_to_unit_tensor(img, &Device::Cpu).map_err(backend)?;
            let embeds = self.prompt_embeds(&instruction).map_err(backend)?;
            inputs.push((x, embeds, SeededNoise::new(req.seed)));
        }
        let mut items: Vec<Ip2pItem<'_>> = inputs
            .iter_mut()
            .map(|(x, embeds, noise)| Ip2pItem {
                prompt_embeds: embeds,
                image01: x,
                noise,
            })
            .collect();
        let outs = self
            .pipeline
            .instruct_pix2pix_batch(&mut items, &self.scheduler, self.guidance(), None)
            .map_err(backend)?;
        outs.iter()
            .map(|t| unit_tensor_to_image(t, Quantise::Round).map_err(backend))
            .collect()
    }
}

impl EditMethod for InstructPix2Pix {
    fn name(&self) -> &str {
        NAME
    }

    fn parameters(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.options).unwrap_or(serde_json::Value::Null);
        if let Some(obj) = v.as_object_mut() {
            obj.insert(
                "resolved_weights".into(),
                self.model_dir.display().to_string().into(),
            );
            obj.insert(
                "scheduler".into(),
                serde_json::to_value(self.scheduler.config()).unwrap_or_default(),
            );
            obj.insert(
                "noise".into(),
                "ChaCha8 + Box-Muller seeded by the job seed (not torch's generator)".into(),
            );
        }
        v
    }

    fn edit(&self, req: &EditRequest<'_>) -> Result<RgbImage, EditError> {
        let img = self.preprocess(req.source)?;
        let mut out = self.edit_same_size(&[(img, req)])?;
        Ok(out.swap_remove(0))
    }

    fn batch_size(&self) -> usize {
        self.options.batch
    }

    fn edit_batch(
        &self,
        reqs: &[EditRequest<'_>],
    ) -> Result<Vec<(RgbImage, Option<serde_json::Value>)>, EditError> {
        // Group by the preprocessed size, in request order, then run each group in chunks.
        let mut groups: Vec<((u32, u32), Vec<usize>)> = Vec::new();
        let mut images = Vec::with_capacity(reqs.len());
        for (i, req) in reqs.iter().enumerate() {
            let img = self.preprocess(req.source)?;
            let dims = img.dimensions();
            match groups.iter_mut().find(|(d, _)| *d == dims) {
                Some((_, members)) => members.push(i),
                None => groups.push((dims, vec![i])),
            }
            images.push(Some(img));
        }
        let mut out: Vec<Option<RgbImage>> = vec![None; reqs.len()];
        for (_, members) in &groups {
            for chunk in members.chunks(self.options.batch) {
                let batch: Vec<(RgbImage, &EditRequest<'_>)> = chunk
                    .iter()
                    .filter_map(|&i| images[i].take().map(|img| (img, &reqs[i])))
                    .collect();
                for (&i, img) in chunk.iter().zip(self.edit_same_size(&batch)?) {
                    out[i] = Some(img);
                }
            }
        }
        out.into_iter()
            .map(|img| {
                img.map(|img| (img, None)).ok_or_else(|| EditError::Failed {
                    method: DISPLAY_NAME.into(),
                    reason: "a batch returned fewer images than requests".into(),
                })
            })
            .collect()
    }

    fn weights(&self) -> Vec<WeightFile> {
        self.files.clone()
    }
}
