//! CLIPstyler (Kwon & Ye, "CLIPstyler: Image Style Transfer with a Single Text Condition",
//! CVPR 2022) as an emotion-editing baseline: a StyleNet is optimised per image so that CLIP
//! sees the change from "a Photo" to the target emotion word, in 64 augmented patches and in
//! the whole image, while VGG19 keeps the content.
//!
//! Upstream: `cyclomon/CLIPstyler/train_CLIPstyler.py` with its defaults (crop 128, 64 crops,
//! lambda_patch 9000, lambda_dir 500, lambda_tv 2e-3, lambda_c 150, threshold 0.7, Adam lr 5e-4
//! with `StepLR(100, 0.5)` stepped at the top of every iteration, `max_step` 200, image
//! 512x512). Differences from the script, all by necessity: random draws come from a seeded
//! ChaCha8 generator, not PyTorch's; CLIP runs in f32 (the script uses fp16 on CUDA); the image
//! is returned as PNG-ready pixels instead of a JPEG file.
//!
//! Iterations: the script runs `for epoch in range(0, max_step + 1)`, saving the image every
//! 50 iterations BEFORE that iteration's update, so its last file (iteration 200) is the
//! StyleNet output after `max_step` updates; the 201st update never reaches a file. Here
//! [`Styler::run`] makes `steps` updates and returns the output of the next forward pass (the
//! same image when `steps` is a multiple of 50).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::method::{EditError, EditMethod, EditRequest};
use candle_core::{DType, Device, Result, Tensor, Var, D};
use emobench_core::imgproc::resize::{resize_pil, ResizeFilter};
use image::RgbImage;
use models::tokenizer::ClipTokenizer;
use models::weights::file::sha256_file;
use models::weights::WeightFile;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use models::augment::{augment_patches, PatchParams};
use models::clip_vision::{clip_normalize, ClipModel, ClipText, ClipVision, Config};
use models::optim::adam::{Adam, StepLr};
use models::stylenet::{self, StyleNet};
use models::vgg19::{Vgg19Config, Vgg19Features, CLIPSTYLER_CONTENT_TAPS};
use models::weights::clip_layout::clip_var_builder;

/// Registry name.
pub const NAME: &str = "clipstyler";
const DISPLAY_NAME: &str = "CLIPstyler";

/// StyleNet base width of CLIPstyler.
pub const NGF: usize = 16;

/// The 79 ImageNet prompt templates of CLIPstyler's `template.py` (`{}` is the text).
pub const IMAGENET_TEMPLATES: [&str; 79] = [
    "a bad photo of a {}.",
    "a sculpture of a {}.",
    "a photo of the hard to see {}.",
    "a low resolution photo of the {}.",
    "a rendering of a {}.",
    "graffiti of a {}.",
    "a bad photo of the {}.",
    "a cropped photo of the {}.",
    "a tattoo of a {}.",
    "the embroidered {}.",
    "a photo of a hard to see {}.",
    "a bright photo of a {}.",
    "a photo of a clean {}.",
    "a photo of a dirty {}.",
    "a dark photo of the {}.",
    "a drawing of a {}.",
    "a photo of my {}.",
    "the plastic {}.",
    "a photo of the cool {}.",
    "a close-up photo of a {}.",
    "a black and white photo of the {}.",
    "a painting of the {}.",
    "a painting of a {}.",
    "a pixelated photo of the {}.",
    "a sculpture of the {}.",
    "a bright photo of the {}.",
    "a cropped photo of a {}.",
    "a plastic {}.",
    "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a rendering of the {}.",
    "a {} in a video game.",
    "a photo of one {}.",
    "a doodle of a {}.",
    "a close-up photo of the {}.",
    "a photo of a {}.",
    "the origami {}.",
    "the {} in a video game.",
    "a sketch of a {}.",
    "a doodle of the {}.",
    "a origami {}.",
    "a low resolution photo of a {}.",
    "the toy {}.",
    "a rendition of the {}.",
    "a photo of the clean {}.",
    "a photo of a large {}.",
    "a rendition of a {}.",
    "a photo of a nice {}.",
    "a photo of a weird {}.",
    "a blurry photo of a {}.",
    "a cartoon {}.",
    "art of a {}.",
    "a sketch of the {}.",
    "a embroidered {}.",
    "a pixelated photo of a {}.",
    "itap of the {}.",
    "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.",
    "a plushie {}.",
    "a photo of the nice {}.",
    "a photo of the small {}.",
    "a photo of the weird {}.",
    "the cartoon {}.",
    "art of the {}.",
    "a drawing of the {}.",
    "a photo of the large {}.",
    "a black and white photo of a {}.",
    "the plushie {}.",
    "a dark photo of a {}.",
    "itap of a {}.",
    "graffiti of the {}.",
    "a toy {}.",
    "itap of my {}.",
    "a photo of a cool {}.",
    "a photo of a small {}.",
    "a tattoo of the {}.",
];

/// The loss weights and patch settings of one run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossConfig {
    /// Weight of the patch directional loss.
    pub lambda_patch: f64,
    /// Weight of the global directional loss.
    pub lambda_dir: f64,
    /// Weight of the total variation.
    pub lambda_tv: f64,
    /// Weight of the VGG content loss.
    pub lambda_c: f64,
    /// Patch losses below this are set to 0.
    pub thresh: f64,
    /// Side of the random crops.
    pub crop_size: usize,
    /// Crops per iteration.
    pub num_crops: usize,
    /// `RandomPerspective`'s distortion scale.
    pub distortion: f64,
    /// Crops per CLIP forward/backward pass (memory only; the gradient is the same).
    pub batch: usize,
}

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            lambda_patch: 9000.0,
            lambda_dir: 500.0,
            lambda_tv: 2e-3,
            lambda_c: 150.0,
            thresh: 0.7,
            crop_size: 128,
            num_crops: 64,
            distortion: 0.5,
            batch: 8,
        }
    }
}

/// The unweighted loss terms of one evaluation and the weighted total.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossValues {
    /// Thresholded patch directional loss (mean over crops).
    pub patch: f64,
    /// Content loss (relu4_2 + relu5_2 mean squared errors).
    pub content: f64,
    /// Total variation, unweighted (sum of four Frobenius norms).
    pub tv: f64,
    /// Global directional loss.
    pub glob: f64,
    /// `lambda_patch patch + lambda_c content + lambda_tv tv + lambda_dir glob`.
    pub total: f64,
}

/// `get_image_prior_losses`: the Frobenius norms of the horizontal, vertical and both diagonal
/// differences, summed.
pub fn total_variation(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let n = |a: Tensor, b: Tensor| -> Result<Tensor> { (a - b)?.sqr()?.sum_all()?.sqrt() };
    let d1 = n(x.narrow(3, 0, w - 1)?, x.narrow(3, 1, w - 1)?)?;
    let d2 = n(x.narrow(2, 0, h - 1)?, x.narrow(2, 1, h - 1)?)?;
    let d3 = n(
        x.narrow(2, 1, h - 1)?.narrow(3, 0, w - 1)?,
        x.narrow(2, 0, h - 1)?.narrow(3, 1, w - 1)?,
    )?;
    let d4 = n(
        x.narrow(2, 0, h - 1)?.narrow(3, 0, w - 1)?,
        x.narrow(2, 1, h - 1)?.narrow(3, 1, w - 1)?,
    )?;
    (d1 + d2)? + (d3 + d4)?
}

/// Divides each row by its L2 norm.
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    x.broadcast_div(&x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?)
}

/// Per-row directional loss `1 - cos(normalise(normalise(f) - source), text_direction)` for
/// image features `f` (n, d), the normalised source image feature (1, d) and the normalised
/// text direction (1, d); rows below `thresh` are set to 0 (the patch loss) when given.
pub fn directional_loss(
    features: &Tensor,
    source: &Tensor,
    text_direction: &Tensor,
    thresh: Option<f64>,
) -> Result<Tensor> {
    let dir = l2_normalize(&l2_normalize(features)?.broadcast_sub(source)?)?;
    // Both directions have unit norm, so the cosine is the dot product over the norms' product.
    let dot = dir.broadcast_mul(text_direction)?.sum(D::Minus1)?;
    let dn = dir.sqr()?.sum(D::Minus1)?.sqrt()?;
    let tn = text_direction.sqr()?.sum(D::Minus1)?.sqrt()?;
    let loss = (1.0 - dot.broadcast_div(&dn.broadcast_mul(&tn)?)?)?;
    match thresh {
        Some(t) => {
            let keep = loss.ge(t)?.to_dtype(loss.dtype())?.detach();
            loss * keep
        }
        None => Ok(loss),
    }
}

/// The text feature of `text` through the templates: CLIP text features of every template
/// filled with `text`, averaged, L2-normalised; (1, projection_dim).
pub fn template_text_feature(
    clip: &ClipText,
    tokenizer: &ClipTokenizer,
    text: &str,
) -> Result<Tensor> {
    let seqs: Vec<Vec<u32>> = IMAGENET_TEMPLATES
        .iter()
        .map(|t| tokenizer.encode(&t.replace("{}", text)))
        .collect();
    if let Some(s) = seqs.iter().find(|s| s.len() > 77) {
        candle_core::bail!(
            "text '{text}' is too long for CLIP's context ({} tokens)",
            s.len()
        );
    }
    let f = clip.forward(&seqs)?.mean_keepdim(0)?;
    l2_normalize(&f)
}

/// Everything fixed during one edit: the networks, the content image and its features, the
/// source image feature and the text direction.
pub struct Styler<'a> {
    /// CLIP image tower.
    pub vision: &'a ClipVision,
    /// VGG19 content taps (relu4_2, relu5_2).
    pub vgg: &'a Vgg19Features,
    /// Content image (1, 3, h, w) in [0, 1].
    pub content: Tensor,
    /// VGG activations of the content image.
    pub content_features: Vec<Tensor>,
    /// Normalised CLIP feature of the whole content image (1, d).
    pub source_feature: Tensor,
    /// Normalised `text(target) - text(source)` (1, d).
    pub text_direction: Tensor,
    /// Loss settings.
    pub config: LossConfig,
}

impl<'a> Styler<'a> {
    /// Prepares an edit from the text features (each already template-averaged and normalised).
    pub fn new(
        vision: &'a ClipVision,
        vgg: &'a Vgg19Features,
        content: Tensor,
        target_text: &Tensor,
        source_text: &Tensor,
        config: LossConfig,
    ) -> Result<Self> {
        let size = vision.config().image_size;
        let content_features = vgg
            .forward(&content)?
            .into_iter()
            .map(|t| t.detach())
            .collect();
        let source_feature =
            l2_normalize(&vision.forward(&clip_normalize(&content, size)?)?)?.detach();
        let text_direction = l2_normalize(&(target_text - source_text)?)?.detach();
        Ok(Self {
            vision,
            vgg,
            content,
            content_features,
            source_feature,
            text_direction,
            config,
        })
    }

    /// The loss terms at a StyleNet output `target` (1, 3, h, w) with the patches `params`,
    /// and the gradient of the weighted total with respect to `target`.
    pub fn loss_and_grad(
        &self,
        target: &Tensor,
        params: &[PatchParams],
    ) -> Result<(LossValues, Tensor)> {
        let c = &self.config;
        let size = self.vision.config().image_size;
        let x = Var::from_tensor(&target.detach())?;
        let mut grad = x.as_tensor().zeros_like()?;
        // Backpropagates `weight * loss` into `grad` (skipped when the weight is 0) and
        // returns the unweighted value.
        let mut acc = |loss: &Tensor, weight: f64| -> Result<f64> {
            if weight != 0.0 {
                let g = (loss * weight)?.backward()?;
                if let Some(gx) = g.get(x.as_tensor()) {
                    grad = (&grad + gx)?;
                }
            }
            Ok(loss.to_scalar::<f32>()? as f64)
        };
        // Content and total variation.
        let feats = self.vgg.forward(x.as_tensor())?;
        let mut content = Tensor::zeros((), DType::F32, x.device())?;
        for (f, cf) in feats.iter().zip(&self.content_features) {
            content = (content + (f - cf)?.sqr()?.mean_all()?)?;
        }
        let content_v = acc(&content, c.lambda_c)?;
        let tv_v = acc(&total_variation(x.as_tensor())?, c.lambda_tv)?;
        // Global directional loss.
        let glob_feat = self.vision.forward(&clip_normalize(x.as_tensor(), size)?)?;
        let glob = directional_loss(&glob_feat, &self.source_feature, &self.text_direction, None)?
            .mean_all()?;
        let glob_v = acc(&glob, c.lambda_dir)?;
        // Patch loss, in chunks of `batch` crops: the mean over all crops is the sum of the
        // chunks' sums over the number of crops.
        let n = params.len().max(1) as f64;
        let mut patch_v = 0.0;
        for chunk in params.chunks(c.batch.max(1)) {
            let patches = augment_patches(x.as_tensor(), chunk, c.crop_size, size)?;
            let feat = self.vision.forward(&clip_normalize(&patches, size)?)?;
            let l = directional_loss(
                &feat,
                &self.source_feature,
                &self.text_direction,
                Some(c.thresh),
            )?
            .sum_all()?;
            patch_v += acc(&(l / n)?, c.lambda_patch)?;
        }
        let total = c.lambda_patch * patch_v
            + c.lambda_c * content_v
            + tv_v * c.lambda_tv
            + c.lambda_dir * glob_v;
        Ok((
            LossValues {
                patch: patch_v,
                content: content_v,
                tv: tv_v,
                glob: glob_v,
                total,
            },
            grad,
        ))
    }

    /// The optimisation: `steps` Adam updates of the StyleNet `vars` (the script: StepLR with
    /// base 5e-4, step 100, gamma 0.5, stepped before each update), patches from
    /// `patches(iteration)`. Returns the StyleNet output after the last update and the losses
    /// of every update.
    pub fn run(
        &self,
        net: &StyleNet,
        vars: Vec<Var>,
        steps: usize,
        sched: StepLr,
        mut patches: impl FnMut(usize) -> Vec<PatchParams>,
    ) -> Result<(Tensor, Vec<LossValues>)> {
        let mut adam = Adam::new(vars, sched.base_lr)?;
        let mut history = Vec::with_capacity(steps);
        for epoch in 0..steps {
            adam.lr = sched.lr_after(epoch + 1);
            let target = net.forward(&self.content, true)?;
            let params = patches(epoch);
            let (values, g) = self.loss_and_grad(&target, &params)?;
            let grads = (target * g.detach())?.sum_all()?.backward()?;
            adam.step(&grads)?;
            history.push(values);
        }
        Ok((net.forward(&self.content, true)?.detach(), history))
    }
}

/// torchvision's `adjust_contrast(img, factor)` on a (3, h, w) image in [0, 1] (row-major
/// values): blend with the mean of the grayscale image (0.2989 R + 0.587 G + 0.114 B), clamp.
pub fn adjust_contrast(img: &[f32], factor: f32) -> Vec<f32> {
    let n = img.len() / 3;
    let (r, g, b) = (&img[..n], &img[n..2 * n], &img[2 * n..]);
    let sum: f64 = (0..n)
        .map(|i| (0.2989f32 * r[i] + 0.587 * g[i] + 0.114 * b[i]) as f64)
        .sum();
    let mean = (sum / n as f64) as f32;
    img.iter()
        .map(|&v| (factor * v + (1.0 - factor) * mean).clamp(0.0, 1.0))
        .collect()
}

/// `save_image(normalize=True)`: min-max rescale of the whole image, then
/// `mul(255).add(0.5).clamp(0, 255)` truncated to u8, for a (3, h, w) image.
pub fn save_image_normalized(img: &[f32], width: u32, height: u32) -> RgbImage {
    let lo = img.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = img.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let scale = (hi - lo).max(1e-5);
    let n = (width * height) as usize;
    RgbImage::from_fn(width, height, |x, y| {
        let i = (y * width + x) as usize;
        let px = |c: usize| {
            let v = (img[c * n + i].clamp(lo, hi) - lo) / scale;
            (v * 255.0 + 0.5).clamp(0.0, 255.0) as u8
        };
        image::Rgb([px(0), px(1), px(2)])
    })
}

/// The output post-processing of the script: clamp to [0, 1], `adjust_contrast(1.5)`, min-max
/// normalisation, 8-bit; `target` is (1, 3, h, w).
pub fn postprocess(target: &Tensor) -> Result<RgbImage> {
    let (_, _, h, w) = target.dims4()?;
    let v: Vec<f32> = target.clamp(0f32, 1f32)?.flatten_all()?.to_vec1()?;
    Ok(save_image_normalized(
        &adjust_contrast(&v, 1.5),
        w as u32,
        h as u32,
    ))
}

/// An 8-bit image as (1, 3, h, w) in [0, 1] (`ToTensor`).
pub fn image_to_tensor(img: &RgbImage, device: &Device) -> Result<Tensor> {
    let (w, h) = img.dimensions();
    let n = (w * h) as usize;
    let mut v = vec![0f32; 3 * n];
    for (i, p) in img.pixels().enumerate() {
        for c in 0..3 {
            v[c * n + i] = p[c] as f32 / 255.0;
        }
    }
    Tensor::from_vec(v, (1, 3, h as usize, w as usize), device)
}

/// Options of [`ClipStyler`] (`--options` JSON; every field optional except the weights).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClipstylerOptions {
    /// A CLIP ViT-B/32 checkpoint: a Hugging Face `CLIPModel` file (`openai/clip-vit-base-patch32`'s
    /// `model.safetensors`) or the folder holding it with `vocab.json` and `merges.txt`, or a
    /// state dict in the OpenAI / open_clip layout (safetensors, `.pt`, `.bin`; then name the
    /// tokenizer folder with `tokenizer`).
    pub clip: String,
    /// The tokenizer folder (`vocab.json`, `merges.txt`); default: the folder of `clip`.
    pub tokenizer: Option<String>,
    /// torchvision's VGG19 weights (`vgg19-dcbb9e9d.pth`, or safetensors with the same
    /// `features.N.*` keys), as for `nst`.
    pub vgg: String,
    /// Image side (the script's `img_size`; a multiple of 8).
    pub size: u32,
    /// Adam updates (the script's `max_step`).
    pub steps: usize,
    /// Initial learning rate.
    pub lr: f64,
    /// Weight of the patch loss.
    pub lambda_patch: f64,
    /// Weight of the global directional loss.
    pub lambda_dir: f64,
    /// Weight of the total variation.
    pub lambda_tv: f64,
    /// Weight of the content loss.
    pub lambda_c: f64,
    /// Patch-loss threshold.
    pub thresh: f64,
    /// Crop side.
    pub crop_size: usize,
    /// Crops per iteration.
    pub crops: usize,
    /// Target text template; `{emotion}` is replaced by the target word.
    pub prompt: String,
    /// Source text.
    pub source: String,
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// Crops per CLIP pass (memory only).
    pub batch: usize,
    /// Size of the written image: `source` (default; the `size` x `size` result resized back to
    /// the source's size with Pillow bilinear, as nst does) or `working` (`size` x `size`, as the
    /// script saves it).
    pub output_size: OutputSize,
}

/// Size of CLIPstyler's written image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputSize {
    /// The source image's size, like every other method's output.
    #[default]
    Source,
    /// The working size (`size` x `size`), as `train_CLIPstyler.py` saves it.
    Working,
}

impl Default for ClipstylerOptions {
    fn default() -> Self {
        let l = LossConfig::default();
        Self {
            clip: String::new(),
            tokenizer: None,
            vgg: String::new(),
            size: 512,
            steps: 200,
            lr: 5e-4,
            lambda_patch: l.lambda_patch,
            lambda_dir: l.lambda_dir,
            lambda_tv: l.lambda_tv,
            lambda_c: l.lambda_c,
            thresh: l.thresh,
            crop_size: l.crop_size,
            crops: l.num_crops,
            prompt: "{emotion}".into(),
            source: "a Photo".into(),
            device: "cpu".into(),
            batch: l.batch,
            output_size: OutputSize::Source,
        }
    }
}

fn invalid(option: &str, reason: impl Into<String>) -> EditError {
    EditError::invalid_option(DISPLAY_NAME, option, reason)
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> EditError {
    EditError::backend(DISPLAY_NAME, e)
}

impl ClipstylerOptions {
    /// Reads options from JSON (`null`: defaults) and checks them.
    pub fn from_json(value: &serde_json::Value) -> std::result::Result<Self, EditError> {
        let o: Self = crate::method::options_from_json(DISPLAY_NAME, value)?;
        if o.size == 0 || !o.size.is_multiple_of(8) {
            return Err(invalid("size", "must be a positive multiple of 8"));
        }
        if o.crop_size == 0 || o.crop_size as u32 > o.size {
            return Err(invalid("crop_size", "must be between 1 and size"));
        }
        if o.crop_size < 2 {
            return Err(invalid("crop_size", "must be at least 2"));
        }
        if o.crops == 0 {
            return Err(invalid("crops", "must be at least 1"));
        }
        if o.batch == 0 {
            return Err(invalid("batch", "must be at least 1"));
        }
        if o.lr.is_nan() || o.lr <= 0.0 {
            return Err(invalid("lr", "must be positive"));
        }
        if !o.prompt.contains("{emotion}") {
            return Err(invalid("prompt", "must contain {emotion}"));
        }
        Ok(o)
    }

    fn loss_config(&self) -> LossConfig {
        LossConfig {
            lambda_patch: self.lambda_patch,
            lambda_dir: self.lambda_dir,
            lambda_tv: self.lambda_tv,
            lambda_c: self.lambda_c,
            thresh: self.thresh,
            crop_size: self.crop_size,
            num_crops: self.crops,
            distortion: 0.5,
            batch: self.batch,
        }
    }
}

/// The CLIPstyler baseline.
pub struct ClipStyler {
    options: ClipstylerOptions,
    device: Device,
    clip: ClipModel,
    tokenizer: ClipTokenizer,
    vgg: Vgg19Features,
    files: Vec<WeightFile>,
    text_cache: Mutex<HashMap<String, Tensor>>,
}

fn missing(what: &str, hint: impl Into<String>) -> EditError {
    EditError::MissingResource {
        method: DISPLAY_NAME.into(),
        what: what.into(),
        hint: hint.into(),
        source: None,
    }
}

/// Reads a safetensors file into a builder, naming the file and the first missing tensor in
/// one line.
fn first_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

impl ClipStyler {
    /// Loads the weights the options name.
    pub fn new(options: ClipstylerOptions) -> std::result::Result<Self, EditError> {
        let device = models::device::parse_device(&options.device)
            .map_err(|r| invalid("device", r.to_string()))?;
        if options.clip.is_empty() {
            return Err(missing(
                "CLIP ViT-B/32 weights",
                "set the 'clip' option to openai/clip-vit-base-patch32's model.safetensors or its folder",
            ));
        }
        if options.vgg.is_empty() {
            return Err(missing(
                "VGG19 weights",
                "set the 'vgg' option to torchvision's vgg19-dcbb9e9d.pth (or a safetensors file with its keys)",
            ));
        }
        let clip_arg = PathBuf::from(&options.clip);
        let (clip_file, clip_dir) = if clip_arg.is_dir() {
            (clip_arg.join("model.safetensors"), clip_arg.clone())
        } else {
            let dir = clip_arg.parent().map(Path::to_path_buf).unwrap_or_default();
            (clip_arg.clone(), dir)
        };
        let tok_dir = options
            .tokenizer
            .as_ref()
            .map(PathBuf::from)
            .unwrap_or(clip_dir);
        let tokenizer = ClipTokenizer::from_dir(&tok_dir)
            .map_err(|e| missing("the CLIP tokenizer", format!("{}: {e}", tok_dir.display())))?;
        let clip_config = Config::vit_base_patch32();
        let (vb, _layout) = clip_var_builder(&clip_file, &clip_config, DType::F32, &device)
            .map_err(|e| EditError::MissingResource {
                method: DISPLAY_NAME.into(),
                what: "CLIP ViT-B/32 weights".into(),
                hint: String::new(),
                source: Some(Box::new(e)),
            })?;
        let clip = ClipModel::new(vb, &clip_config).map_err(|e| {
            missing(
                "CLIP ViT-B/32 weights",
                format!("{}: {}", clip_file.display(), first_line(&e)),
            )
        })?;
        let vgg_file = PathBuf::from(&options.vgg);
        let vb = models::weights::var_builder(&vgg_file, DType::F32, &device).map_err(|e| {
            EditError::MissingResource {
                method: DISPLAY_NAME.into(),
                what: "VGG19 weights".into(),
                hint: String::new(),
                source: Some(Box::new(e)),
            }
        })?;
        let vgg = Vgg19Features::new(vb, &Vgg19Config::torchvision(), &CLIPSTYLER_CONTENT_TAPS)
            .map_err(|e| {
                missing(
                    "VGG19 weights",
                    format!("{}: {}", vgg_file.display(), first_line(&e)),
                )
            })?;
        let mut files = Vec::new();
        for (role, p) in [("clip", &clip_file), ("vgg19", &vgg_file)] {
            files.push(WeightFile {
                role: role.into(),
                path: p.display().to_string(),
                sha256: sha256_file(p).map_err(backend)?,
                stand_in: false,
            });
        }
        Ok(Self::from_parts(
            options, device, clip, tokenizer, vgg, files,
        ))
    }

    /// Builds from loaded parts (tests, other front ends).
    pub fn from_parts(
        options: ClipstylerOptions,
        device: Device,
        clip: ClipModel,
        tokenizer: ClipTokenizer,
        vgg: Vgg19Features,
        files: Vec<WeightFile>,
    ) -> Self {
        Self {
            options,
            device,
            clip,
            tokenizer,
            vgg,
            files,
            text_cache: Mutex::new(HashMap::new()),
        }
    }

    fn text_feature(&self, text: &str) -> Result<Tensor> {
        if let Some(t) = self.text_cache.lock().expect("text cache").get(text) {
            return Ok(t.clone());
        }
        let f = template_text_feature(&self.clip.text, &self.tokenizer, text)?;
        self.text_cache
            .lock()
            .expect("text cache")
            .insert(text.to_string(), f.clone());
        Ok(f)
    }

    fn edit_tensor(&self, req: &EditRequest<'_>) -> Result<RgbImage> {
        let o = &self.options;
        let s = o.size;
        let content = image_to_tensor(
            &resize_pil(req.source, s, s, ResizeFilter::Bicubic),
            &self.device,
        )?;
        let target_text = self.text_feature(&o.prompt.replace("{emotion}", req.target))?;
        let source_text = self.text_feature(&o.source)?;
        let styler = Styler::new(
            &self.clip.vision,
            &self.vgg,
            content,
            &target_text,
            &source_text,
            o.loss_config(),
        )?;
        // One generator: the StyleNet initialisation first, then the patches, iteration by
        // iteration and crop by crop.
        let mut rng = ChaCha8Rng::seed_from_u64(req.seed);
        let map = stylenet::init_var_map_with(NGF, &mut rng, &self.device)?;
        let net = StyleNet::from_var_map(&map, NGF, &self.device)?;
        let vars = stylenet::ordered_vars(&map, NGF)?;
        let (crop, n, dist) = (o.crop_size, o.crops, 0.5);
        let side = s as usize;
        let sched = StepLr {
            base_lr: o.lr,
            step_size: 100,
            gamma: 0.5,
        };
        let (out, _) = styler.run(&net, vars, o.steps, sched, |_| {
            (0..n)
                .map(|_| PatchParams::draw(&mut rng, side, side, crop, dist))
                .collect()
        })?;
        postprocess(&out)
    }
}

impl EditMethod for ClipStyler {
    fn name(&self) -> &str {
        NAME
    }

    fn parameters(&self) -> serde_json::Value {
        serde_json::to_value(&self.options).unwrap_or(serde_json::Value::Null)
    }

    fn edit(&self, req: &EditRequest<'_>) -> std::result::Result<RgbImage, EditError> {
        let (w, h) = req.source.dimensions();
        if w == 0 || h == 0 {
            return Err(EditError::EmptyImage {
                method: DISPLAY_NAME.into(),
                role: "source".into(),
                width: w,
                height: h,
            });
        }
        let out = self.edit_tensor(req).map_err(backend)?;
        Ok(match self.options.output_size {
            OutputSize::Source if out.dimensions() != (w, h) => {
                resize_pil(&out, w, h, ResizeFilter::Bilinear)
            }
            _ => out,
        })
    }

    fn weights(&self) -> Vec<WeightFile> {
        self.files.clone()
    }
}

/// Builds the method from `--options` JSON (for the registry).
pub fn build(options: &serde_json::Value) -> std::result::Result<Box<dyn EditMethod>, EditError> {
    Ok(Box::new(ClipStyler::new(ClipstylerOptions::from_json(
        options,
    )?)?))
}
