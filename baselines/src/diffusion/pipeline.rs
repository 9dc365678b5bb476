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
//! Scheduler arithmetic runs on `f32` host vectors (see [`crate::diffusion`]); the networks run
//! on the pipeline's device and dtype.

use candle_core::{DType, Device, Tensor};
use image::RgbImage;

use super::noise::NoiseSource;
use super::vae::AutoencoderKl;
use super::{unet::UNet, Ddim, EulerAncestral, SchedulerError};

/// Why a pipeline call failed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A tensor operation failed (shape, device, out of memory).
    #[error("diffusion pipeline: {0}")]
    Tensor(#[from] candle_core::Error),
    /// The scheduler refused its input.
    #[error("diffusion pipeline: {0}")]
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
        mut on_step: Option<StepCallback<'_>>,
    ) -> Result<Tensor> {
        let (mode, _) = self.encode(image01)?;
        let (_, c, h, w) = mode.dims4()?;
        let shape = [1, c, h, w];
        let cond = Tensor::cat(&[&mode, &mode, &mode.zeros_like()?], 0)?;
        let context = self.to_model(prompt_embeds)?;
        let sigma0 = scheduler.init_noise_sigma();
        let mut latents: Vec<f32> = noise
            .normal(c * h * w)
            .into_iter()
            .map(|v| v * sigma0)
            .collect();
        let total = scheduler.timesteps().len();
        for (i, &t) in scheduler.timesteps().iter().enumerate() {
            let scaled = scheduler.scale_model_input(&latents, i)?;
            let x = self.upload(scaled, &shape)?;
            let x = Tensor::cat(&[&x, &x, &x], 0)?;
            let input = Tensor::cat(&[&x, &cond], 1)?;
            let eps = Self::host(&self.unet.forward(&input, f64::from(t), &context)?)?;
            let n = c * h * w;
            let (text, rest) = eps.split_at(n);
            let (img, uncond) = rest.split_at(n);
            let guided: Vec<f32> = (0..n)
                .map(|k| {
                    uncond[k]
                        + guidance.text * (text[k] - img[k])
                        + guidance.image * (img[k] - uncond[k])
                })
                .collect();
            let z = noise.normal(n);
            latents = scheduler.step(&guided, i, &latents, &z)?.prev_sample;
            if let Some(cb) = on_step.as_mut() {
                cb(i + 1, total);
            }
        }
        self.decode_unit(&self.upload(latents, &shape)?)
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
        mut on_step: Option<StepCallback<'_>>,
    ) -> Result<Tensor> {
        scheduler.set_timesteps_with_train_steps(steps, train_steps)?;
        let (mean, std) = self.encode(image01)?;
        let dims = mean.dims().to_vec();
        let n = mean.elem_count();
        let eps = self.upload(noise.normal(n), &dims)?;
        let s = self.vae.config().scaling_factor;
        let start = Self::host(&((&mean + (&std * &eps)?)? * s)?)?;
        let timesteps = scheduler.timesteps().to_vec();
        let first = *timesteps.first().ok_or(SchedulerError::TimestepsNotSet)?;
        let mut latents = scheduler.add_noise(&start, &noise.normal(n), first)?;
        let cond = self.to_model(cond_latents)?;
        let context = self.to_model(context)?;
        let total = timesteps.len();
        for (i, &t) in timesteps.iter().enumerate() {
            let x = self.upload(latents.clone(), &dims)?;
            let input = Tensor::cat(&[&x, &cond], 1)?;
            let eps = Self::host(&self.unet.forward(&input, t as f64, &context)?)?;
            latents = scheduler.step(&eps, t, &latents, 0.0, None)?.prev_sample;
            if let Some(cb) = on_step.as_mut() {
                cb(i + 1, total);
            }
        }
        self.decode_unit(&self.upload(latents, &dims)?)
    }
}
