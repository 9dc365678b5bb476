//! The latent-diffusion editing pipeline InstructPix2Pix and EmoEditor share: VAE in and out,
//! the UNet on 8 channels (noisy latents next to the image-condition latents), and the two
//! denoising loops.
//!
//! * [`EditPipeline::instruct_pix2pix`] follows diffusers'
//!   `StableDiffusionInstructPix2PixPipeline.__call__`: Euler ancestral, three UNet branches per
//!   step (text + image, image only, neither) combined with text and image guidance.
//! * [`EditPipeline::emoeditor_pass`] follows the EmoEditor authors' `ip2p.py`
//!   (`InstructPix2Pix.forward`): DDIM from a partly noised posterior sample, conditioned on the
//!   emotion-direction tokens, with no classifier-free guidance.
//!
//! Scheduler arithmetic runs on `f32` host vectors (see [`crate::schedulers`]); the networks run
//! on the pipeline's device and dtype.

use candle_core::{DType, Device, Tensor};
use image::RgbImage;

use crate::error::Cause;
use crate::noise::NoiseSource;
use crate::schedulers::{Ddim, EulerAncestral, SchedulerError};
use crate::unet::UNet;
use crate::vae::AutoencoderKl;

/// Why a pipeline call failed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A tensor operation failed (shape, device, out of memory).
    #[error("diffusion pipeline: tensor operation failed")]
    Tensor(#[source] Cause<candle_core::Error>),
    /// The scheduler refused its input.
    #[error("diffusion pipeline: scheduler")]
    Scheduler(#[from] SchedulerError),
    /// The image is smaller than one latent pixel.
    #[error("diffusion pipeline: image {width}x{height} is too small (needs at least {min} pixels per side)")]
    TooSmall {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// The smallest side accepted.
        min: u32,
    },
    /// The images of one batch differ in size.
    #[error("diffusion pipeline: a batch mixes latent sizes {first:?} and {other:?} (batch only images of one size)")]
    MixedSizes {
        /// Latent (channels, height, width) of the first image.
        first: (usize, usize, usize),
        /// Latent size of the image that differs.
        other: (usize, usize, usize),
    },
}

impl From<candle_core::Error> for PipelineError {
    fn from(e: candle_core::Error) -> Self {
        PipelineError::Tensor(Cause::new(e))
    }
}

/// Result of this module.
pub type Result<T> = std::result::Result<T, PipelineError>;

/// Text and image guidance of InstructPix2Pix.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Guidance {
    /// Classifier-free guidance on the instruction (`guidance_scale`, 7.5).
    pub text: f32,
    /// Guidance on the input image (`image_guidance_scale`, 1.5).
    pub image: f32,
}

/// One image of a batched InstructPix2Pix call.
pub struct Ip2pItem<'a> {
    /// Prompt embeddings (3, tokens, dim): instruction, empty prompt, empty prompt.
    pub prompt_embeds: &'a Tensor,
    /// The image, (1, 3, h, w) in [0, 1] with h and w multiples of 8.
    pub image01: &'a Tensor,
    /// This image's noise: its initial latents, then one ancestral draw per step.
    pub noise: &'a mut dyn NoiseSource,
}

/// One image of a batched EmoEditor pass.
pub struct EmoPassItem<'a> {
    /// Emotion-direction tokens (1, 77, dim).
    pub context: &'a Tensor,
    /// The image to edit, (1, 3, h, w) in [0, 1].
    pub image01: &'a Tensor,
    /// The unscaled posterior mode of the source (the image condition).
    pub cond_latents: &'a Tensor,
    /// This image's DDIM scheduler (its timesteps are set from `train_steps`).
    pub scheduler: &'a mut Ddim,
    /// The authors' T: timesteps are spaced over this many training steps.
    pub train_steps: usize,
    /// This image's noise: the posterior sample's, then the forward process's.
    pub noise: &'a mut dyn NoiseSource,
}

/// Called after each denoising step with (step, total).
pub type StepCallback<'a> = &'a mut dyn FnMut(usize, usize);

/// The UNet and VAE of an InstructPix2Pix-style model on one device and dtype.
#[derive(Debug, Clone)]
pub struct EditPipeline {
    /// The 8-channel denoising UNet.
    pub unet: UNet,
    /// The autoencoder.
    pub vae: AutoencoderKl,
    /// Where the networks run.
    pub device: Device,
    /// The networks' dtype (f32 on the CPU; f16 or bf16 on a GPU).
    pub dtype: DType,
}

/// An RGB image as a (1, 3, h, w) `f32` tensor in [0, 1] (`torchvision`'s `ToTensor`).
pub fn image_to_unit_tensor(img: &RgbImage, device: &Device) -> candle_core::Result<Tensor> {
    let (w, h) = img.dimensions();
    let (w, h) = (w as usize, h as usize);
    let mut data = vec![0f32; 3 * h * w];
    for (i, p) in img.pixels().enumerate() {
        for c in 0..3 {
            data[c * h * w + i] = f32::from(p[c]) / 255.0;
        }
    }
    Tensor::from_vec(data, (1, 3, h, w), device)
}

/// How a [0, 1] image is turned into 8-bit values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantise {
    /// `(x * 255).round()` (diffusers' `numpy_to_pil`).
    Round,
    /// `(x * 255).clamp(0, 255).byte()`, i.e. truncation (the EmoEditor authors' saving code).
    Truncate,
}

/// A (1, 3, h, w) tensor in [0, 1] as an 8-bit RGB image.
pub fn unit_tensor_to_image(t: &Tensor, rule: Quantise) -> candle_core::Result<RgbImage> {
    let (_, _, h, w) = t.dims4()?;
    let data = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let plane = h * w;
    Ok(RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let i = y as usize * w + x as usize;
        let q = |v: f32| -> u8 {
            let v = (v * 255.0).clamp(0.0, 255.0);
            match rule {
                Quantise::Round => v.round_ties_even() as u8,
                Quantise::Truncate => v as u8,
            }
        };
        image::Rgb([q(data[i]), q(data[plane + i]), q(data[2 * plane + i])])
    }))
}

impl EditPipeline {
    fn to_model(&self, t: &Tensor) -> candle_core::Result<Tensor> {
        t.to_device(&self.device)?.to_dtype(self.dtype)
    }

    fn host(t: &Tensor) -> candle_core::Result<Vec<f32>> {
        t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()
    }

    fn upload(&self, data: Vec<f32>, shape: &[usize]) -> candle_core::Result<Tensor> {
        Tensor::from_vec(data, shape, &Device::Cpu)?
            .to_device(&self.device)?
            .to_dtype(self.dtype)
    }

    fn check_size(image01: &Tensor) -> Result<()> {
        let (_, _, h, w) = image01.dims4()?;
        if h < 8 || w < 8 {
            return Err(PipelineError::TooSmall {
                width: w as u32,
                height: h as u32,
                min: 8,
            });
        }
        Ok(())
    }

    /// The VAE posterior of an image in [0, 1]: (mean, std), both unscaled.
    pub fn encode(&self, image01: &Tensor) -> Result<(Tensor, Tensor)> {
        Self::check_size(image01)?;
        let x = ((self.to_model(image01)? * 2.0)? - 1.0)?;
        let posterior = self.vae.encode(&x)?;
        Ok((posterior.mean, posterior.std))
    }

    /// Decodes scaled latents to an `f32` image in [0, 1]: `(decode(z / s) / 2 + 0.5).clamp(0, 1)`.
    pub fn decode_unit(&self, latents: &Tensor) -> Result<Tensor> {
        let s = self.vae.config().scaling_factor;
        let z = (self.to_model(latents)? / s)?;
        let img = self.vae.decode(&z)?.to_dtype(DType::F32)?;
        Ok(((img / 2.0)? + 0.5)?.clamp(0f32, 1f32)?)
    }

    /// InstructPix2Pix: edits `image01` (1, 3, h, w in [0, 1], h and w multiples of 8) with
    /// `prompt_embeds` (3, tokens, dim: instruction, empty prompt, empty prompt) and returns the
    /// decoded image in [0, 1]. Draws the initial latents, then one ancestral noise per step.
    pub fn instruct_pix2pix(
        &self,
        prompt_embeds: &Tensor,
        image01: &Tensor,
        scheduler: &EulerAncestral,
        guidance: Guidance,
        noise: &mut dyn NoiseSource,
        on_step: Option<StepCallback<'_>>,
    ) -> Result<Tensor> {
        let mut items = [Ip2pItem {
            prompt_embeds,
            image01,
            noise,
        }];
        let mut out = self.instruct_pix2pix_batch(&mut items, scheduler, guidance, on_step)?;
        Ok(out.swap_remove(0))
    }

    /// [`Self::instruct_pix2pix`] on several images of one size at once: every step is one UNet
    /// call on 3 rows per image. Each image draws from its own noise source in the same order
    /// as alone, so a batch computes what the single calls compute (up to the rounding of
    /// differently blocked matrix products).
    pub fn instruct_pix2pix_batch(
        &self,
        items: &mut [Ip2pItem<'_>],
        scheduler: &EulerAncestral,
        guidance: Guidance,
        mut on_step: Option<StepCallback<'_>>,
    ) -> Result<Vec<Tensor>> {
        let mut conds = Vec::with_capacity(items.len());
        let mut contexts = Vec::with_capacity(items.len());
        let mut size = None;
        for item in items.iter() {
            let (mode, _) = self.encode(item.image01)?;
            let (_, c, h, w) = mode.dims4()?;
            match size {
                None => size = Some((c, h, w)),
                Some(first) if first != (c, h, w) => {
                    return Err(PipelineError::MixedSizes {
                        first,
                        other: (c, h, w),
                    })
                }
                Some(_) => {}
            }
            conds.push(Tensor::cat(&[&mode, &mode, &mode.zeros_like()?], 0)?);
            contexts.push(self.to_model(item.prompt_embeds)?);
        }
        let Some((c, h, w)) = size else {
            return Ok(Vec::new());
        };
        let cond = Tensor::cat(&conds, 0)?;
        let context = Tensor::cat(&contexts, 0)?;
        let n = c * h * w;
        let sigma0 = scheduler.init_noise_sigma();
        let mut latents: Vec<Vec<f32>> = items
            .iter_mut()
            .map(|item| {
                item.noise
                    .normal(n)
                    .into_iter()
                    .map(|v| v * sigma0)
                    .collect()
            })
            .collect();
        let total = scheduler.timesteps().len();
        for (i, &t) in scheduler.timesteps().iter().enumerate() {
            let mut rows = Vec::with_capacity(3 * items.len() * n);
            for l in &latents {
                let scaled = scheduler.scale_model_input(l, i)?;
                for _ in 0..3 {
                    rows.extend_from_slice(&scaled);
                }
            }
            let x = self.upload(rows, &[3 * items.len(), c, h, w])?;
            let input = Tensor::cat(&[&x, &cond], 1)?;
            let eps = Self::host(&self.unet.forward(&input, f64::from(t), &context)?)?;
            for ((item, lat), eps) in items.iter_mut().zip(&mut latents).zip(eps.chunks(3 * n)) {
                let (text, rest) = eps.split_at(n);
                let (img, uncond) = rest.split_at(n);
                let guided: Vec<f32> = (0..n)
                    .map(|k| {
                        uncond[k]
                            + guidance.text * (text[k] - img[k])
                            + guidance.image * (img[k] - uncond[k])
                    })
                    .collect();
                let z = item.noise.normal(n);
                *lat = scheduler.step(&guided, i, lat, &z)?.prev_sample;
            }
            if let Some(cb) = on_step.as_mut() {
                cb(i + 1, total);
            }
        }
        latents
            .into_iter()
            .map(|l| self.decode_unit(&self.upload(l, &[1, c, h, w])?))
            .collect()
    }

    /// One EmoEditor diffusion pass: encodes `image01` (posterior sample, scaled), noises it to
    /// the first of `steps` DDIM timesteps spaced over `train_steps` (the authors' T), and
    /// denoises it conditioned on `context` (1, 77, dim) and on `cond_latents` (the unscaled
    /// posterior mode of the source). Draws the posterior noise, then the forward-process noise.
    #[allow(clippy::too_many_arguments)]
    pub fn emoeditor_pass(
        &self,
        context: &Tensor,
        image01: &Tensor,
        cond_latents: &Tensor,
        scheduler: &mut Ddim,
        steps: usize,
        train_steps: usize,
        noise: &mut dyn NoiseSource,
        on_step: Option<StepCallback<'_>>,
    ) -> Result<Tensor> {
        let mut items = [EmoPassItem {
            context,
            image01,
            cond_latents,
            scheduler,
            train_steps,
            noise,
        }];
        let mut out = self.emoeditor_pass_batch(&mut items, steps, on_step)?;
        Ok(out.swap_remove(0))
    }

    /// [`Self::emoeditor_pass`] on several images of one size at once. Each keeps its own T
    /// (so its own timesteps: the UNet takes one timestep per row) and draws from its own
    /// noise source in the same order as alone.
    pub fn emoeditor_pass_batch(
        &self,
        items: &mut [EmoPassItem<'_>],
        steps: usize,
        mut on_step: Option<StepCallback<'_>>,
    ) -> Result<Vec<Tensor>> {
        let s = self.vae.config().scaling_factor;
        let mut latents = Vec::with_capacity(items.len());
        let mut dims: Option<Vec<usize>> = None;
        for item in items.iter_mut() {
            item.scheduler
                .set_timesteps_with_train_steps(steps, item.train_steps)?;
            let (mean, std) = self.encode(item.image01)?;
            let d = mean.dims().to_vec();
            if let Some(first) = &dims {
                if *first != d {
                    let size = |v: &[usize]| (v[1], v[2], v[3]);
                    return Err(PipelineError::MixedSizes {
                        first: size(first),
                        other: size(&d),
                    });
                }
            }
            let n = mean.elem_count();
            let eps = self.upload(item.noise.normal(n), &d)?;
            let start = Self::host(&((&mean + (&std * &eps)?)? * s)?)?;
            let first = *item
                .scheduler
                .timesteps()
                .first()
                .ok_or(SchedulerError::TimestepsNotSet)?;
            latents.push(
                item.scheduler
                    .add_noise(&start, &item.noise.normal(n), first)?,
            );
            dims = Some(d);
        }
        let Some(dims) = dims else {
            return Ok(Vec::new());
        };
        let n: usize = dims.iter().product();
        let conds: Vec<Tensor> = items
            .iter()
            .map(|item| self.to_model(item.cond_latents))
            .collect::<candle_core::Result<_>>()?;
        let cond = Tensor::cat(&conds, 0)?;
        let contexts: Vec<Tensor> = items
            .iter()
            .map(|item| self.to_model(item.context))
            .collect::<candle_core::Result<_>>()?;
        let context = Tensor::cat(&contexts, 0)?;
        let mut batch_dims = dims.clone();
        batch_dims[0] = items.len();
        for i in 0..steps {
            let ts: Vec<i64> = items
                .iter()
                .map(|item| item.scheduler.timesteps().get(i).copied())
                .collect::<Option<_>>()
                .ok_or(SchedulerError::TimestepsNotSet)?;
            let x = self.upload(latents.concat(), &batch_dims)?;
            let input = Tensor::cat(&[&x, &cond], 1)?;
            let per_row: Vec<f64> = ts.iter().map(|&t| t as f64).collect();
            let eps = Self::host(&self.unet.forward_per_row(&input, &per_row, &context)?)?;
            for ((item, lat), (eps, &t)) in items
                .iter_mut()
                .zip(&mut latents)
                .zip(eps.chunks(n).zip(&ts))
            {
                *lat = item.scheduler.step(eps, t, lat, 0.0, None)?.prev_sample;
            }
            if let Some(cb) = on_step.as_mut() {
                cb(i + 1, steps);
            }
        }
        latents
            .into_iter()
            .map(|l| self.decode_unit(&self.upload(l, &dims)?))
            .collect()
    }
}
