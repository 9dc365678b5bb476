//! Neural style transfer (Gatys, Ecker & Bethge, "Image Style Transfer Using Convolutional
//! Neural Networks", CVPR 2016) as the "Make Me Happier" baseline: the source image restyled after
//! a reference image of the target emotion, following pytorch/tutorials
//! `advanced_source/neural_style_tutorial.py` exactly:
//!
//! - the ImageNet normalisation, then torchvision's VGG19 `features` up to `conv_5`
//!   ([`models::vgg19`]);
//! - content loss: MSE of `conv_4` (`features.7`, before its ReLU) against the content image's;
//!   style losses: MSE of the Gram matrices `F F^T / (a b c d)` of `conv_1`..`conv_5`
//!   (`features.0, 2, 5, 7, 10`, before the ReLU) against the style image's;
//!   loss = 1e6 * (sum of style losses) + 1 * content loss;
//! - the input starts as the content image and is optimised by `torch.optim.LBFGS` (defaults, no
//!   line search; [`models::optim::lbfgs`]) in the tutorial's loop `while run <= num_steps:
//!   optimizer.step(closure)`, where the closure first clamps the input to [0, 1], counts one
//!   evaluation and returns the loss; one final clamp. `num_steps` counts closure evaluations and
//!   is only checked between steps (300 gives 320 evaluations with the default 20 per step).
//!
//! Batches run in lockstep: every image has its own targets, L-BFGS state and evaluation count,
//! and each closure evaluation runs the images whose optimiser asked for one in one VGG forward
//! and backward. An image's loss depends only on its own input, so its gradient (from the sum of
//! the per-image losses) is the one it would get alone.

use candle_core::{DType, Device, Tensor, Var, D};
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::method::{EditError, EditMethod, EditRequest};
use emobench_core::imgproc::resize::{resize_pil, ResizeFilter};
use models::kernels::conv_op::ConvAlgo;
use models::kernels::style_losses::{gram_mse, mse};
use models::kernels::vgg_trunk::{TrunkTap, VggTrunk};
use models::pipeline::{image_to_unit_tensor, unit_tensor_to_image, Quantise};
use models::weights::WeightFile;
use std::sync::Arc;

use models::optim::lbfgs::{Lbfgs, LbfgsConfig, LbfgsError, Poll};
use models::vgg19::{Tap, Vgg19Config, Vgg19Error, Vgg19Features, NST_CONTENT_TAP, NST_STYLE_TAPS};

/// Registry name.
pub const NAME: &str = "nst";
/// The human-readable name used in messages.
pub const DISPLAY_NAME: &str = "neural style transfer";

/// Why the style transfer failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NstError {
    /// The checkpoint file could not be opened or parsed (the cause names the file).
    #[error("reading the VGG19 checkpoint")]
    Checkpoint(#[source] models::weights::WeightsError),
    /// The checkpoint lacks a tensor or has a wrong shape.
    #[error("VGG19 weights {path}")]
    Weights {
        /// The file.
        path: String,
        /// Which tensor and what is wrong.
        #[source]
        source: Box<Vgg19Error>,
    },
    /// Content and style batches disagree in shape.
    #[error("content {content:?} and style {style:?} images must have the same shape")]
    Shapes {
        /// The content batch's shape.
        content: Vec<usize>,
        /// The style batch's shape.
        style: Vec<usize>,
    },
    /// A trunk given to [`StyleTransfer::new`] has other taps than the loss layers need.
    #[error("the VGG trunk's taps {got:?} are not the loss layers' {expected:?}")]
    Taps {
        /// Content taps then style taps.
        expected: Vec<Tap>,
        /// The trunk's taps.
        got: Vec<Tap>,
    },
    /// The backward pass gave no gradient for the input.
    #[error("the loss has no gradient with respect to the input")]
    NoGradient,
    /// A tensor operation failed.
    #[error("tensor computation")]
    Tensor(#[from] candle_core::Error),
    /// The optimiser was misused (a bug).
    #[error("optimiser")]
    Optimiser(#[from] LbfgsError),
}

/// The loss layers and weights of the tutorial.
#[derive(Debug, Clone, PartialEq)]
pub struct NstLayers {
    /// Content taps (the tutorial: `conv_4`).
    pub content: Vec<Tap>,
    /// Style taps (the tutorial: `conv_1`..`conv_5`).
    pub style: Vec<Tap>,
}

impl Default for NstLayers {
    fn default() -> Self {
        Self {
            content: vec![NST_CONTENT_TAP],
            style: NST_STYLE_TAPS.to_vec(),
        }
    }
}

/// Settings of [`StyleTransfer::run`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NstConfig {
    /// The tutorial's `num_steps` (closure evaluations before the last step starts; 300).
    pub num_steps: usize,
    /// Weight of the summed style losses (1e6).
    pub style_weight: f64,
    /// Weight of the content loss (1).
    pub content_weight: f64,
    /// The optimiser (`torch.optim.LBFGS` defaults).
    pub lbfgs: LbfgsConfig,
}

impl Default for NstConfig {
    fn default() -> Self {
        Self {
            num_steps: 300,
            style_weight: 1e6,
            content_weight: 1.0,
            lbfgs: LbfgsConfig::default(),
        }
    }
}

/// `gram_matrix` of the tutorial for each image of a batch: an N x C x H x W tensor gives
/// N x C x C, each `F F^T / (C H W)` with `F` the image's C x HW features (the tutorial's
/// `a * b * c * d` with a batch of one).
pub fn gram_matrices(features: &Tensor) -> candle_core::Result<Tensor> {
    let (_, c, h, w) = features.dims4()?;
    models::kernels::gram_op::gram(features, (c * h * w) as f64)
}

fn scalar(v: f32, like: &Tensor) -> candle_core::Result<Tensor> {
    Tensor::new(v, like.device())?.to_dtype(like.dtype())
}

/// `F.mse_loss(a, b)` for each image of a batch: mean over all but the first dimension.
pub fn mse_per_image(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    let n = a.dim(0)?;
    let per = a.elem_count() / n.max(1);
    let sq = a.sub(b)?.sqr()?.reshape((n, per))?;
    sq.sum(D::Minus1)?.broadcast_div(&scalar(per as f32, a)?)
}

/// What the losses compare against: per image, the content image's content activations and the
/// style image's Gram matrices.
#[derive(Debug, Clone)]
pub struct NstTargets {
    /// One N x ... tensor per content tap.
    pub content: Vec<Tensor>,
    /// One N x C x C tensor per style tap.
    pub style: Vec<Tensor>,
}

impl NstTargets {
    /// The targets of the images `index` (in that order).
    pub fn select(&self, index: &[u32]) -> candle_core::Result<Self> {
        let dev = self
            .content
            .first()
            .or(self.style.first())
            .map(|t| t.device());
        let Some(dev) = dev else {
            return Ok(self.clone());
        };
        let idx = Tensor::new(index, dev)?;
        let pick = |ts: &[Tensor]| -> candle_core::Result<Vec<Tensor>> {
            ts.iter().map(|t| t.index_select(&idx, 0)).collect()
        };
        Ok(Self {
            content: pick(&self.content)?,
            style: pick(&self.style)?,
        })
    }
}

/// The losses of one closure evaluation, per image.
#[derive(Debug, Clone)]
pub struct NstEvaluation {
    /// `style_weight * sum of style losses`, per image.
    pub style: Vec<f32>,
    /// `content_weight * content loss`, per image.
    pub content: Vec<f32>,
    /// `style + content`, per image (what the closure returns).
    pub loss: Vec<f32>,
    /// The gradient of each image's loss with respect to its input, N x 3 x H x W.
    pub grad: Tensor,
}

/// One closure evaluation of one image during [`StyleTransfer::run`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalRecord {
    /// The image's index in the batch.
    pub image: usize,
    /// Its evaluation count after this one (the tutorial's `run[0]`).
    pub run: usize,
    /// Weighted style loss.
    pub style: f32,
    /// Weighted content loss.
    pub content: f32,
    /// Their sum.
    pub loss: f32,
}

/// The tutorial's style-transfer model: VGG19 up to the last loss layer, and the loss layers.
#[derive(Debug, Clone)]
pub struct StyleTransfer {
    vgg: Vgg19Features,
    layers: NstLayers,
    /// The trunk as CPU buffers when its weights take the fused path: the closure then runs
    /// outside candle's autograd.
    cpu: Option<Arc<(VggTrunk, Vec<TrunkTap>)>>,
}

impl StyleTransfer {
    /// The model over a trunk built with exactly `layers.content` followed by `layers.style` as
    /// its taps (see [`StyleTransfer::taps`]).
    pub fn new(vgg: Vgg19Features, layers: NstLayers) -> Result<Self, NstError> {
        let want = Self::taps(&layers);
        if vgg.taps() != want.as_slice() {
            return Err(NstError::Taps {
                expected: want,
                got: vgg.taps().to_vec(),
            });
        }
        Self::assemble(vgg, layers)
    }

    fn assemble(vgg: Vgg19Features, layers: NstLayers) -> Result<Self, NstError> {
        let cpu = vgg.cpu_trunk()?.map(Arc::new);
        Ok(Self { vgg, layers, cpu })
    }

    /// The tutorial's model: builds the trunk of `config` from `vb` with the default layers.
    pub fn load(
        vb: candle_nn::VarBuilder,
        config: &Vgg19Config,
        path: &str,
    ) -> Result<Self, NstError> {
        let layers = NstLayers::default();
        let vgg = Vgg19Features::new(vb, config, &Self::taps(&layers)).map_err(|source| {
            NstError::Weights {
                path: path.into(),
                source: Box::new(source),
            }
        })?;
        Self::assemble(vgg, layers)
    }

    /// The same model with VGG's convolutions computed by `algo` on the CPU.
    pub fn with_conv_algo(self, algo: ConvAlgo) -> Self {
        let cpu = self.cpu.map(|cpu| {
            let (mut trunk, taps) = Arc::unwrap_or_clone(cpu);
            trunk.algo = algo;
            Arc::new((trunk, taps))
        });
        Self {
            vgg: self.vgg.with_conv_algo(algo),
            layers: self.layers,
            cpu,
        }
    }

    /// The taps a trunk for `layers` must have: content taps, then style taps.
    pub fn taps(layers: &NstLayers) -> Vec<Tap> {
        layers
            .content
            .iter()
            .chain(&layers.style)
            .copied()
            .collect()
    }

    /// The VGG trunk.
    pub fn vgg(&self) -> &Vgg19Features {
        &self.vgg
    }

    /// The targets for a batch of content images and style images (N x 3 x H x W in [0, 1],
    /// the same shape).
    pub fn targets(&self, content: &Tensor, style: &Tensor) -> Result<NstTargets, NstError> {
        if content.dims() != style.dims() {
            return Err(NstError::Shapes {
                content: content.dims().to_vec(),
                style: style.dims().to_vec(),
            });
        }
        let nc = self.layers.content.len();
        let acts = self.vgg.forward(&content.detach())?;
        let content_t = acts[..nc].iter().map(|t| t.detach()).collect();
        let acts = self.vgg.forward(&style.detach())?;
        let style_t = acts[nc..]
            .iter()
            .map(|t| gram_matrices(t).map(|g| g.detach()))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(NstTargets {
            content: content_t,
            style: style_t,
        })
    }

    /// The per-image weighted losses of `input` (N x 3 x H x W): (style, content), each of
    /// shape N, summed over the loss layers in the tutorial's order.
    pub fn losses(
        &self,
        input: &Tensor,
        targets: &NstTargets,
        style_weight: f64,
        content_weight: f64,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let nc = self.layers.content.len();
        let acts = self.vgg.forward(input)?;
        let mut style: Option<Tensor> = None;
        for (a, t) in acts[nc..].iter().zip(&targets.style) {
            let l = mse_per_image(&gram_matrices(a)?, t)?;
            style = Some(match style {
                Some(s) => s.add(&l)?,
                None => l,
            });
        }
        let mut content: Option<Tensor> = None;
        for (a, t) in acts[..nc].iter().zip(&targets.content) {
            let l = mse_per_image(a, t)?;
            content = Some(match content {
                Some(s) => s.add(&l)?,
                None => l,
            });
        }
        let n = input.dim(0)?;
        let zeros = || Tensor::zeros(n, input.dtype(), input.device());
        let style = match style {
            Some(s) => s,
            None => zeros()?,
        };
        let content = match content {
            Some(s) => s,
            None => zeros()?,
        };
        Ok((
            style.affine(style_weight, 0.0)?,
            content.affine(content_weight, 0.0)?,
        ))
    }

    /// One closure evaluation without the clamp: the losses of `input` and their gradient.
    pub fn evaluate(
        &self,
        input: &Tensor,
        targets: &NstTargets,
        style_weight: f64,
        content_weight: f64,
    ) -> Result<NstEvaluation, NstError> {
        if let Some(cpu) = &self.cpu {
            if models::kernels::fused_cpu(input) {
                return self.evaluate_cpu(cpu, input, targets, style_weight, content_weight);
            }
        }
        let var = Var::from_tensor(&input.detach())?;
        let (style, content) =
            self.losses(var.as_tensor(), targets, style_weight, content_weight)?;
        let loss = style.add(&content)?;
        let grads = loss.sum_all()?.backward()?;
        let grad = grads
            .get(var.as_tensor())
            .ok_or(NstError::NoGradient)?
            .clone();
        Ok(NstEvaluation {
            style: style.to_dtype(DType::F32)?.to_vec1()?,
            content: content.to_dtype(DType::F32)?.to_vec1()?,
            loss: loss.to_dtype(DType::F32)?.to_vec1()?,
            grad,
        })
    }

    /// [`StyleTransfer::evaluate`] on the CPU trunk: the same losses and gradient, with each
    /// layer's backward run once instead of through candle's graph.
    fn evaluate_cpu(
        &self,
        (trunk, taps): &(VggTrunk, Vec<TrunkTap>),
        input: &Tensor,
        targets: &NstTargets,
        style_weight: f64,
        content_weight: f64,
    ) -> Result<NstEvaluation, NstError> {
        let (n, c, h, w) = input.dims4()?;
        let x = input.flatten_all()?.to_vec1::<f32>()?;
        let run = trunk.forward(&x, (n, h, w));
        let nc = self.layers.content.len();
        let mut sums = [vec![0f32; n], vec![0f32; n]];
        let mut grads = Vec::with_capacity(taps.len());
        let wanted = targets.content.iter().chain(&targets.style);
        for (k, (tap, want)) in taps.iter().zip(wanted).enumerate() {
            let (a, (tc, th, tw)) = run.tap(*tap).ok_or(NstError::NoGradient)?;
            let want = want.flatten_all()?.to_vec1::<f32>()?;
            let (part, sum) = if k < nc {
                (mse(a, &want, n, content_weight), &mut sums[1])
            } else {
                let dims = (n, tc, th * tw);
                (gram_mse(a, &want, dims, style_weight), &mut sums[0])
            };
            for (s, l) in sum.iter_mut().zip(&part.per_image) {
                *s += l;
            }
            grads.push((*tap, part.grad));
        }
        let views: Vec<(TrunkTap, &[f32])> = grads.iter().map(|(t, g)| (*t, &g[..])).collect();
        let dx = trunk.backward(&run, &views);
        let [style, content] = sums;
        let style: Vec<f32> = style.iter().map(|s| s * style_weight as f32).collect();
        let content: Vec<f32> = content.iter().map(|s| s * content_weight as f32).collect();
        let loss = style.iter().zip(&content).map(|(s, c)| s + c).collect();
        Ok(NstEvaluation {
            style,
            content,
            loss,
            grad: Tensor::from_vec(dx, (n, c, h, w), input.device())?,
        })
    }

    /// The tutorial's `run_style_transfer` for a batch (N x 3 x H x W in [0, 1]) of content
    /// images and style images, with the input starting as the content images. `observer` sees
    /// every closure evaluation of every image, with the (clamped) input it evaluated, flat
    /// C x H x W. Returns the clamped results, N x 3 x H x W, on
    /// the content's device.
    pub fn run(
        &self,
        content: &Tensor,
        style: &Tensor,
        config: &NstConfig,
        observer: &mut dyn FnMut(EvalRecord, &[f32]),
    ) -> Result<Tensor, NstError> {
        let targets = self.targets(content, style)?;
        let (n, c, h, w) = content.dims4()?;
        let dev = content.device().clone();
        let host = content.to_dtype(DType::F32)?.to_device(&Device::Cpu)?;
        let mut xs: Vec<Vec<f32>> = (0..n)
            .map(|i| host.get(i)?.flatten_all()?.to_vec1::<f32>())
            .collect::<candle_core::Result<_>>()?;
        let mut opts: Vec<Lbfgs> = (0..n).map(|_| Lbfgs::new(config.lbfgs)).collect();
        let mut runs = vec![0usize; n];
        let mut wants = vec![false; n];
        for (i, opt) in opts.iter_mut().enumerate() {
            if runs[i] <= config.num_steps {
                opt.begin_step();
                wants[i] = true;
            }
        }
        while wants.iter().any(|&b| b) {
            let idx: Vec<usize> = (0..n).filter(|&i| wants[i]).collect();
            let mut data = Vec::with_capacity(idx.len() * c * h * w);
            for &i in &idx {
                // The closure's `input_img.data.clamp_(0, 1)`.
                for v in xs[i].iter_mut() {
                    *v = v.clamp(0.0, 1.0);
                }
                data.extend_from_slice(&xs[i]);
            }
            let input = Tensor::from_vec(data, (idx.len(), c, h, w), &Device::Cpu)?
                .to_device(&dev)?
                .to_dtype(content.dtype())?;
            let sub = if idx.len() == n {
                targets.clone()
            } else {
                let idx32: Vec<u32> = idx.iter().map(|&i| i as u32).collect();
                targets.select(&idx32)?
            };
            let eval = self.evaluate(&input, &sub, config.style_weight, config.content_weight)?;
            let grad = eval.grad.to_dtype(DType::F32)?.to_device(&Device::Cpu)?;
            for (j, &i) in idx.iter().enumerate() {
                runs[i] += 1;
                observer(
                    EvalRecord {
                        image: i,
                        run: runs[i],
                        style: eval.style[j],
                        content: eval.content[j],
                        loss: eval.loss[j],
                    },
                    &xs[i],
                );
                let g = grad.get(j)?.flatten_all()?.to_vec1::<f32>()?;
                if let Poll::Done { .. } = opts[i].feed(&mut xs[i], eval.loss[j], g)? {
                    if runs[i] <= config.num_steps {
                        opts[i].begin_step();
                    } else {
                        wants[i] = false;
                    }
                }
            }
        }
        // "a last correction..."
        let mut data = Vec::with_capacity(n * c * h * w);
        for x in &xs {
            data.extend(x.iter().map(|v| v.clamp(0.0, 1.0)));
        }
        Ok(Tensor::from_vec(data, (n, c, h, w), &Device::Cpu)?
            .to_device(&dev)?
            .to_dtype(content.dtype())?)
    }
}

/// Options of [`NeuralStyleTransfer`] (`--options` JSON; every field optional, unknown fields
/// are an error).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NstOptions {
    /// torchvision's VGG19 ImageNet checkpoint (`vgg19-dcbb9e9d.pth`, or a safetensors file
    /// with the same `features.N.weight` / `features.N.bias` keys). Required.
    pub weights: String,
    /// Working size: the source is resized (Pillow bilinear, as torchvision's `Resize(size)` on
    /// a PIL image) so that its shorter side is `size`; the reference is resized to the same
    /// width and height; the result is resized back to the source's size. 512 as the tutorial
    /// on a GPU (128 on its CPU path).
    pub size: u32,
    /// The tutorial's `num_steps` (300).
    pub steps: usize,
    /// Style weight (1e6).
    pub style_weight: f64,
    /// Content weight (1).
    pub content_weight: f64,
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// Edits of one working size optimised together (one VGG pass per closure evaluation,
    /// L-BFGS state per image). Results equal one-at-a-time edits up to rounding.
    pub batch: usize,
    /// How the CPU computes VGG's 3x3 convolutions: `winograd` (default; F(4x4, 3x3), about
    /// twice as fast, rounding about ten units in the last place of the activations) or
    /// `im2col` (a direct sum, as PyTorch's). GPUs run candle's convolution either way.
    pub conv: ConvAlgo,
}

impl Default for NstOptions {
    fn default() -> Self {
        let cfg = NstConfig::default();
        Self {
            weights: String::new(),
            size: 512,
            steps: cfg.num_steps,
            style_weight: cfg.style_weight,
            content_weight: cfg.content_weight,
            device: "cpu".into(),
            batch: 1,
            conv: ConvAlgo::Winograd,
        }
    }
}

fn invalid(option: &str, reason: impl Into<String>) -> EditError {
    EditError::invalid_option(DISPLAY_NAME, option, reason)
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> EditError {
    EditError::backend(DISPLAY_NAME, e)
}

impl NstOptions {
    /// Checks every value; the error names the first bad option.
    pub fn validate(&self) -> Result<(), EditError> {
        // conv_5 sits after two max pools: the shorter side must survive them.
        if self.size < 4 {
            return Err(invalid(
                "size",
                format!("must be at least 4, got {}", self.size),
            ));
        }
        if self.batch == 0 {
            return Err(invalid("batch", "must be at least 1"));
        }
        for (name, v) in [
            ("style_weight", self.style_weight),
            ("content_weight", self.content_weight),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(invalid(name, format!("must be finite and >= 0, got {v}")));
            }
        }
        Ok(())
    }

    /// Reads options from JSON (`null`: defaults) and checks them.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, EditError> {
        let opts: Self = crate::method::options_from_json(DISPLAY_NAME, value)?;
        opts.validate()?;
        Ok(opts)
    }

    /// The style-transfer settings these options give.
    pub fn config(&self) -> NstConfig {
        NstConfig {
            num_steps: self.steps,
            style_weight: self.style_weight,
            content_weight: self.content_weight,
            lbfgs: LbfgsConfig::default(),
        }
    }
}

/// torchvision's `Resize(size)` output size for a `w` x `h` image: the shorter side becomes
/// `size`, the longer `int(size * long / short)`.
pub fn working_size(w: u32, h: u32, size: u32) -> (u32, u32) {
    let (short, long) = if w <= h { (w, h) } else { (h, w) };
    let new_long = (f64::from(size) * f64::from(long) / f64::from(short)) as u32;
    if w <= h {
        (size, new_long)
    } else {
        (new_long, size)
    }
}

fn resize_to(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    if img.dimensions() == (w, h) {
        img.clone()
    } else {
        resize_pil(img, w, h, ResizeFilter::Bilinear)
    }
}

/// The neural-style-transfer baseline: the source restyled after `references[0]`.
pub struct NeuralStyleTransfer {
    options: NstOptions,
    model: StyleTransfer,
    device: Device,
    files: Vec<WeightFile>,
}

impl NeuralStyleTransfer {
    /// Loads the VGG19 weights the options name.
    pub fn new(options: NstOptions) -> Result<Self, EditError> {
        options.validate()?;
        let device = models::device::parse_device(&options.device)
            .map_err(|r| invalid("device", r.to_string()))?;
        if options.weights.is_empty() {
            return Err(EditError::MissingResource {
                method: DISPLAY_NAME.into(),
                what: "VGG19 weights".into(),
                hint: "set \"weights\" in --options to torchvision's vgg19-dcbb9e9d.pth (or a \
                       safetensors file with its features.N.weight/bias keys)"
                    .into(),
                source: None,
            });
        }
        let path = std::path::Path::new(&options.weights);
        if !path.is_file() {
            return Err(EditError::MissingResource {
                method: DISPLAY_NAME.into(),
                what: "VGG19 weights".into(),
                hint: format!("{}: no such file", path.display()),
                source: None,
            });
        }
        let vb = models::weights::var_builder(path, DType::F32, &device)
            .map_err(|e| backend(NstError::Checkpoint(e)))?;
        let model = StyleTransfer::load(vb, &Vgg19Config::torchvision(), &options.weights)
            .map_err(backend)?
            .with_conv_algo(options.conv);
        let sha256 = models::weights::file::sha256_file(path).map_err(backend)?;
        let files = vec![WeightFile {
            role: "vgg19".into(),
            path: options.weights.clone(),
            sha256,
            stand_in: false,
        }];
        Ok(Self {
            options,
            model,
            device,
            files,
        })
    }

    /// Builds from a loaded model (tests, other front ends); `weights` is recorded as given.
    pub fn from_model(
        options: NstOptions,
        model: StyleTransfer,
        device: Device,
        files: Vec<WeightFile>,
    ) -> Result<Self, EditError> {
        options.validate()?;
        let model = model.with_conv_algo(options.conv);
        Ok(Self {
            options,
            model,
            device,
            files,
        })
    }

    /// The options.
    pub fn options(&self) -> &NstOptions {
        &self.options
    }

    /// The (source, reference) pair at the working size.
    fn prepare(&self, req: &EditRequest<'_>) -> Result<(RgbImage, RgbImage), EditError> {
        let reference = req
            .references
            .first()
            .ok_or_else(|| EditError::MissingReference {
                method: DISPLAY_NAME.into(),
                target: req.target.into(),
            })?;
        for (img, role) in [(req.source, "source"), (reference, "reference")] {
            if img.width() == 0 || img.height() == 0 {
                return Err(EditError::EmptyImage {
                    method: DISPLAY_NAME.into(),
                    role: role.into(),
                    width: img.width(),
                    height: img.height(),
                });
            }
        }
        let (w, h) = req.source.dimensions();
        let (tw, th) = working_size(w, h, self.options.size);
        // conv_5 sits after two max pools: both sides must survive them.
        if tw < 4 || th < 4 {
            return Err(EditError::SizeMismatch {
                method: DISPLAY_NAME.into(),
                what: "working size".into(),
                expected: "at least 4x4".into(),
                got: format!("{tw}x{th}"),
            });
        }
        Ok((resize_to(req.source, tw, th), resize_to(reference, tw, th)))
    }

    /// Runs prepared pairs of one working size together.
    /// Each output comes with a trace: the evaluation count and the last evaluation's losses.
    fn run_group(
        &self,
        pairs: &[(RgbImage, RgbImage)],
    ) -> Result<Vec<(RgbImage, serde_json::Value)>, EditError> {
        let to_tensor = |img: &RgbImage| image_to_unit_tensor(img, &Device::Cpu);
        let contents = pairs
            .iter()
            .map(|(s, _)| to_tensor(s))
            .collect::<candle_core::Result<Vec<_>>>()
            .map_err(backend)?;
        let styles = pairs
            .iter()
            .map(|(_, r)| to_tensor(r))
            .collect::<candle_core::Result<Vec<_>>>()
            .map_err(backend)?;
        let upload = |ts: &[Tensor]| -> candle_core::Result<Tensor> {
            Tensor::cat(ts, 0)?.to_device(&self.device)
        };
        let content = upload(&contents).map_err(backend)?;
        let style = upload(&styles).map_err(backend)?;
        let mut last: Vec<Option<EvalRecord>> = vec![None; pairs.len()];
        let out = self
            .model
            .run(&content, &style, &self.options.config(), &mut |r, _| {
                if let Some(slot) = last.get_mut(r.image) {
                    *slot = Some(r);
                }
            })
            .map_err(backend)?;
        (0..pairs.len())
            .map(|i| {
                let t = out.get(i)?.unsqueeze(0)?;
                let img = unit_tensor_to_image(&t, Quantise::Round)?;
                let trace = match last[i] {
                    Some(r) => serde_json::json!({
                        "evaluations": r.run,
                        "last_style_loss": r.style,
                        "last_content_loss": r.content,
                        "last_loss": r.loss,
                    }),
                    None => serde_json::Value::Null,
                };
                Ok((img, trace))
            })
            .collect::<candle_core::Result<Vec<_>>>()
            .map_err(backend)
    }
}

impl EditMethod for NeuralStyleTransfer {
    fn name(&self) -> &str {
        NAME
    }

    fn parameters(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.options).unwrap_or(serde_json::Value::Null);
        if let Some(obj) = v.as_object_mut() {
            obj.insert(
                "lbfgs".into(),
                serde_json::to_value(LbfgsConfig::default()).unwrap_or_default(),
            );
            obj.insert(
                "layers".into(),
                "content conv_4 (features.7), style conv_1..conv_5 (features.0,2,5,7,10), \
                 before ReLU"
                    .into(),
            );
            obj.insert(
                "quantise".into(),
                "round(255 x) of the clamped result, then Pillow bilinear back to the source size"
                    .into(),
            );
        }
        v
    }

    fn needs_references(&self) -> bool {
        true
    }

    /// Restyles `req.source` after `req.references[0]` (further references are ignored; the
    /// seed is unused: the method is deterministic). The output has the source's size.
    fn edit(&self, req: &EditRequest<'_>) -> Result<RgbImage, EditError> {
        Ok(self.edit_traced(req)?.0)
    }

    /// [`EditMethod::edit`] with a trace: the number of closure evaluations and the last
    /// evaluation's weighted style and content losses.
    fn edit_traced(
        &self,
        req: &EditRequest<'_>,
    ) -> Result<(RgbImage, Option<serde_json::Value>), EditError> {
        let pair = self.prepare(req)?;
        let out = self.run_group(std::slice::from_ref(&pair))?;
        let (w, h) = req.source.dimensions();
        out.into_iter()
            .next()
            .map(|(img, trace)| (resize_to(&img, w, h), Some(trace)))
            .ok_or_else(|| EditError::Failed {
                method: DISPLAY_NAME.into(),
                reason: "no image came back".into(),
            })
    }

    fn batch_size(&self) -> usize {
        self.options.batch
    }

    fn edit_batch(
        &self,
        reqs: &[EditRequest<'_>],
    ) -> Result<Vec<(RgbImage, Option<serde_json::Value>)>, EditError> {
        // Group by working size, in request order, then run each group in chunks.
        let mut prepared = Vec::with_capacity(reqs.len());
        let mut groups: Vec<((u32, u32), Vec<usize>)> = Vec::new();
        for (i, req) in reqs.iter().enumerate() {
            let pair = self.prepare(req)?;
            let dims = pair.0.dimensions();
            match groups.iter_mut().find(|(d, _)| *d == dims) {
                Some((_, members)) => members.push(i),
                None => groups.push((dims, vec![i])),
            }
            prepared.push(Some(pair));
        }
        let mut out: Vec<Option<(RgbImage, serde_json::Value)>> = vec![None; reqs.len()];
        for (_, members) in &groups {
            for chunk in members.chunks(self.options.batch) {
                let pairs: Vec<(RgbImage, RgbImage)> =
                    chunk.iter().filter_map(|&i| prepared[i].take()).collect();
                for (&i, (img, trace)) in chunk.iter().zip(self.run_group(&pairs)?) {
                    let (w, h) = reqs[i].source.dimensions();
                    out[i] = Some((resize_to(&img, w, h), trace));
                }
            }
        }
        out.into_iter()
            .map(|img| {
                img.map(|(img, trace)| (img, Some(trace)))
                    .ok_or_else(|| EditError::Failed {
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
