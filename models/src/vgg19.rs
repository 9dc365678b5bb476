//! VGG19's convolutional trunk (`features`) as torchvision builds it, with the activations a
//! caller asks for.
//!
//! Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition",
//! ICLR 2015 (configuration E); the layout and checkpoint key names are torchvision's
//! `models/vgg.py` (`vgg19()`, `cfgs["E"]`, no batch norm): a `features` sequence of 3x3
//! convolutions (padding 1) each followed by a ReLU, with 2x2 stride-2 max pools between the
//! blocks, so the checkpoint holds `features.{0,2,5,7,10,12,14,16,19,21,23,25,28,30,32,34}` with
//! `.weight` (out, in, 3, 3) and `.bias` (out).
//!
//! Two users:
//! - neural style transfer (Gatys et al.; pytorch/tutorials `neural_style_tutorial.py`) reads the
//!   convolution outputs BEFORE their ReLU at modules 0, 2, 5, 7 and 10 ([`NST_STYLE_TAPS`],
//!   [`NST_CONTENT_TAP`]);
//! - CLIPstyler's content loss reads the outputs of modules 22 and 31, i.e. AFTER the ReLU of the
//!   convolutions at 21 and 30 ([`CLIPSTYLER_CONTENT_TAPS`]).
//!
//! Both ask for a list of [`Tap`]s; the network is built (and its weights read) only up to the
//! last tap. Every piece is differentiable with candle's autograd and matches PyTorch's
//! gradients: candle's own `max_pool2d` backward spreads the gradient over the window and its
//! ReLU passes the gradient at exactly zero, so this module uses [`max_pool2x2`] and
//! [`relu_torch`] instead.
//!
//! The convolutions are `crate::kernels::conv_op::conv2d`: on the CPU in f32 a custom op over
//! emobench's CPU kernels whose backward computes only the input gradient for these constant
//! weights (candle's conv2d is single-pass im2col and its backward also computes the unused
//! kernel gradient); on other devices candle's `conv2d`. Both agree with PyTorch to ~1e-7
//! relative.

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Shape, Tensor, D};
use candle_nn::VarBuilder;

/// ImageNet channel means of torchvision's pretrained models (RGB, [0, 1] scale).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations of torchvision's pretrained models.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// One entry of a VGG configuration, as in torchvision's `cfgs` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// A 3x3 convolution (padding 1) to this many channels, followed by a ReLU: two modules.
    Conv(usize),
    /// A 2x2, stride-2 max pool (floor mode): one module.
    MaxPool,
}

/// The shape of the trunk: its layers, input channels, and whether the ImageNet normalisation
/// runs first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vgg19Config {
    /// The layers in order (torchvision's `cfgs["E"]` for the real network).
    pub layers: Vec<Layer>,
    /// Channels of the input image (3).
    pub in_channels: usize,
    /// Apply `(x - IMAGENET_MEAN) / IMAGENET_STD` to the [0, 1] input before the first layer
    /// (the tutorial's `Normalization` module and CLIPstyler's `img_normalize`).
    pub normalize: bool,
}

/// The kind of module at a `features` index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleKind {
    /// A convolution (its index holds the weights).
    Conv,
    /// The ReLU after the convolution at the previous index.
    Relu,
    /// A max pool.
    MaxPool,
}

impl Vgg19Config {
    /// torchvision's VGG19 (`cfgs["E"]`: 64, 64, M, 128, 128, M, 256 x4, M, 512 x4, M, 512 x4, M)
    /// with the ImageNet normalisation first.
    pub fn torchvision() -> Self {
        Self::with_widths([64, 128, 256, 512, 512])
    }

    /// The VGG19 layout (2, 2, 4, 4, 4 convolutions per block, a max pool after each block) with
    /// the given channels per block, normalisation on. Module indices (and so checkpoint key
    /// names) are those of the real network; tests use small widths.
    pub fn with_widths(widths: [usize; 5]) -> Self {
        let mut layers = Vec::new();
        for (block, &w) in widths.iter().enumerate() {
            let convs = if block < 2 { 2 } else { 4 };
            layers.extend(std::iter::repeat_n(Layer::Conv(w), convs));
            layers.push(Layer::MaxPool);
        }
        Self {
            layers,
            in_channels: 3,
            normalize: true,
        }
    }

    /// The same configuration with the normalisation switched on or off.
    pub fn normalized(mut self, normalize: bool) -> Self {
        self.normalize = normalize;
        self
    }

    /// Number of modules in `features` (37 for VGG19).
    pub fn module_count(&self) -> usize {
        self.layers
            .iter()
            .map(|l| match l {
                Layer::Conv(_) => 2,
                Layer::MaxPool => 1,
            })
            .sum()
    }

    /// The kind of module at `features` index `index`, or `None` past the end.
    pub fn module_kind(&self, index: usize) -> Option<ModuleKind> {
        let mut i = 0;
        for l in &self.layers {
            match l {
                Layer::Conv(_) => {
                    if index == i {
                        return Some(ModuleKind::Conv);
                    }
                    if index == i + 1 {
                        return Some(ModuleKind::Relu);
                    }
                    i += 2;
                }
                Layer::MaxPool => {
                    if index == i {
                        return Some(ModuleKind::MaxPool);
                    }
                    i += 1;
                }
            }
        }
        None
    }

    /// The `features` indices of the convolutions (0, 2, 5, 7, 10, ... for VGG19).
    pub fn conv_indices(&self) -> Vec<usize> {
        (0..self.module_count())
            .filter(|&i| self.module_kind(i) == Some(ModuleKind::Conv))
            .collect()
    }
}

impl Default for Vgg19Config {
    fn default() -> Self {
        Self::torchvision()
    }
}

/// Where on a convolution an activation is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TapPoint {
    /// The convolution's output (with bias), before its ReLU: the output of module `conv`.
    BeforeRelu,
    /// After the ReLU: the output of module `conv + 1`.
    AfterRelu,
}

/// An activation to return: the convolution at `features` index `conv`, before or after its
/// ReLU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tap {
    /// The `features` index of the convolution (0, 2, 5, ...).
    pub conv: usize,
    /// Before or after its ReLU.
    pub point: TapPoint,
}

impl Tap {
    /// The output of the convolution at `conv`, before its ReLU.
    pub const fn before_relu(conv: usize) -> Self {
        Self {
            conv,
            point: TapPoint::BeforeRelu,
        }
    }

    /// The output of the ReLU after the convolution at `conv`.
    pub const fn after_relu(conv: usize) -> Self {
        Self {
            conv,
            point: TapPoint::AfterRelu,
        }
    }

    /// The output of `features` module `module` (a convolution or a ReLU), as PyTorch code that
    /// hooks `features[module]` sees it; for example module 22 is `after_relu(21)`.
    pub fn module_output(config: &Vgg19Config, module: usize) -> Result<Self, Vgg19Error> {
        match config.module_kind(module) {
            Some(ModuleKind::Conv) => Ok(Self::before_relu(module)),
            Some(ModuleKind::Relu) => Ok(Self::after_relu(module - 1)),
            Some(ModuleKind::MaxPool) => Err(Vgg19Error::PoolTap { module }),
            None => Err(Vgg19Error::TapOutOfRange {
                module,
                modules: config.module_count(),
            }),
        }
    }
}

/// Style taps of the NST tutorial: `conv_1`..`conv_5`, i.e. `features.{0,2,5,7,10}` before the
/// ReLU.
pub const NST_STYLE_TAPS: [Tap; 5] = [
    Tap::before_relu(0),
    Tap::before_relu(2),
    Tap::before_relu(5),
    Tap::before_relu(7),
    Tap::before_relu(10),
];

/// Content tap of the NST tutorial: `conv_4`, i.e. `features.7` before the ReLU.
pub const NST_CONTENT_TAP: Tap = Tap::before_relu(7);

/// CLIPstyler's content layers: the outputs of modules 21 ("conv4_2") and 31 ("conv5_2") as the
/// reference code effectively reads them (module 21's stored output is overwritten by the in-place
/// ReLU after it), i.e. relu4_2 and relu5_2.
pub const CLIPSTYLER_CONTENT_TAPS: [Tap; 2] = [Tap::after_relu(21), Tap::after_relu(30)];

/// Why a VGG trunk could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Vgg19Error {
    /// No taps were asked for.
    #[error("VGG19: no activations requested")]
    NoTaps,
    /// A tap names a module index that is not a convolution.
    #[error("VGG19: features.{conv} is not a convolution (convolutions: {convs:?})")]
    NotAConv {
        /// The index asked for.
        conv: usize,
        /// The convolution indices of the configuration.
        convs: Vec<usize>,
    },
    /// A module index past the end of `features`.
    #[error("VGG19: features.{module} does not exist (the trunk has {modules} modules)")]
    TapOutOfRange {
        /// The index asked for.
        module: usize,
        /// How many modules there are.
        modules: usize,
    },
    /// A module index of a max pool (not supported as a tap).
    #[error("VGG19: features.{module} is a max pool; tap a convolution or a ReLU")]
    PoolTap {
        /// The index asked for.
        module: usize,
    },
    /// A weight tensor is not in the checkpoint.
    #[error("VGG19: tensor {tensor} is missing")]
    MissingTensor {
        /// Its full name, e.g. `features.7.weight`.
        tensor: String,
    },
    /// A weight tensor has the wrong shape.
    #[error("VGG19: tensor {tensor} has shape {got:?}, expected {expected:?}")]
    ShapeMismatch {
        /// Its full name.
        tensor: String,
        /// The shape the configuration needs.
        expected: Vec<usize>,
        /// The shape in the checkpoint.
        got: Vec<usize>,
    },
    /// Reading a tensor failed (I/O, dtype conversion, device).
    #[error("VGG19: reading tensor {tensor}")]
    Read {
        /// Its full name.
        tensor: String,
        /// The cause.
        #[source]
        source: candle_core::Error,
    },
    /// Building a constant (the normalisation) failed.
    #[error("VGG19: building the input normalisation")]
    Constant(#[source] candle_core::Error),
}

/// ReLU with PyTorch's gradient: the gradient passes where the output is > 0 (candle's own
/// `relu` passes it where the input is >= 0).
///
/// On the CPU in f32 this is a custom op with one multi-threaded pass forward and one backward
/// (NaN stays NaN as in PyTorch); elsewhere `x * (x > 0)` (negative inputs give `-0.0`, which
/// every later operation treats as `0`).
pub fn relu_torch(x: &Tensor) -> candle_core::Result<Tensor> {
    if crate::kernels::fused_cpu(x) {
        return x.contiguous()?.apply_op1(CpuRelu);
    }
    let mask = x.gt(0.0)?.to_dtype(x.dtype())?;
    x.mul(&mask)
}

use crate::kernels::conv_op::{conv2d_with, cpu_slice, ConvAlgo};
use crate::kernels::vgg_trunk::{self, TrunkLayer, TrunkTap, VggTrunk};

/// PyTorch's ReLU on the CPU: forward `x > 0 or NaN ? x : 0`, backward
/// `threshold_backward(grad, result, 0)` (`result <= 0 ? 0 : grad`).
#[derive(Debug, Clone, Copy)]
struct CpuRelu;

impl CustomOp1 for CpuRelu {
    fn name(&self) -> &'static str {
        "vgg-relu"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = cpu_slice(storage, layout, "vgg-relu")?;
        let out = vgg_trunk::relu(x);
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(
            grad_res
                .contiguous()?
                .apply_op2_no_bwd(&res.contiguous()?, &CpuReluGrad)?,
        ))
    }
}

/// `result <= 0 ? 0 : grad` (first argument the gradient, second the ReLU's result).
#[derive(Debug, Clone, Copy)]
struct CpuReluGrad;

impl candle_core::CustomOp2 for CpuReluGrad {
    fn name(&self) -> &'static str {
        "vgg-relu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = cpu_slice(s1, l1, "vgg-relu-grad")?;
        let r = cpu_slice(s2, l2, "vgg-relu-grad")?;
        if g.len() != r.len() {
            candle_core::bail!(
                "vgg-relu-grad: {} gradients for {} values",
                g.len(),
                r.len()
            );
        }
        let mut out = g.to_vec();
        vgg_trunk::relu_grad_in_place(&mut out, r);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// PyTorch's `MaxPool2d(2, 2)` on the CPU; the backward routes each output's gradient to the
/// window element its forward picked.
#[derive(Debug, Clone, Copy)]
struct CpuPool;

fn pool_dims(layout: &Layout) -> candle_core::Result<(usize, usize, usize, usize, usize)> {
    let (n, c, h, w) = layout.shape().dims4()?;
    let (ho, wo) = (h / 2, w / 2);
    if ho == 0 || wo == 0 {
        candle_core::bail!("max_pool2x2: input {h}x{w} is smaller than the 2x2 window");
    }
    Ok((n * c, h, w, ho, wo))
}

impl CustomOp1 for CpuPool {
    fn name(&self) -> &'static str {
        "vgg-max-pool2x2"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = cpu_slice(storage, layout, "vgg-max-pool2x2")?;
        let (planes, h, w, ho, wo) = pool_dims(layout)?;
        let out = vgg_trunk::max_pool(x, (planes, h, w));
        let (n, c, _, _) = layout.shape().dims4()?;
        Ok((CpuStorage::F32(out), Shape::from((n, c, ho, wo))))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(
            arg.contiguous()?
                .apply_op2_no_bwd(&grad_res.contiguous()?, &CpuPoolGrad)?,
        ))
    }
}

/// The max pool's input gradient (first argument the pool's input, second the output gradient).
#[derive(Debug, Clone, Copy)]
struct CpuPoolGrad;

impl candle_core::CustomOp2 for CpuPoolGrad {
    fn name(&self) -> &'static str {
        "vgg-max-pool2x2-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = cpu_slice(s1, l1, "vgg-max-pool2x2-grad")?;
        let g = cpu_slice(s2, l2, "vgg-max-pool2x2-grad")?;
        let (planes, h, w, ho, wo) = pool_dims(l1)?;
        if g.len() != planes * ho * wo {
            candle_core::bail!(
                "vgg-max-pool2x2-grad: gradient of {} values, expected {}",
                g.len(),
                planes * ho * wo
            );
        }
        let out = vgg_trunk::max_pool_grad(x, g, (planes, h, w));
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// PyTorch's `MaxPool2d(kernel_size=2, stride=2)` (floor mode: an odd last row or column is
/// dropped) on an N x C x H x W tensor, differentiable with candle's autograd: the gradient of
/// each output goes to ONE element of its window, the first maximum in row-major window order,
/// as PyTorch routes it. (candle's `max_pool2d` backward is wrong.)
///
/// Fails when H or W is below 2, as PyTorch does. On the CPU in f32 this is a direct
/// multi-threaded kernel (NaN handled as PyTorch); elsewhere a composite of candle ops, where a window
/// holding NaN gives 0 (PyTorch: NaN).
pub fn max_pool2x2(x: &Tensor) -> candle_core::Result<Tensor> {
    if crate::kernels::fused_cpu(x) {
        return x.contiguous()?.apply_op1(CpuPool);
    }
    max_pool2x2_composite(x)
}

/// [`max_pool2x2`] from differentiable candle ops (any device): windows by reshape and permute,
/// a detached mask of the first maximum, and the sum of the masked window.
pub fn max_pool2x2_composite(x: &Tensor) -> candle_core::Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (ho, wo) = (h / 2, w / 2);
    if ho == 0 || wo == 0 {
        candle_core::bail!("max_pool2x2: input {h}x{w} is smaller than the 2x2 window");
    }
    let x = if h % 2 == 1 || w % 2 == 1 {
        x.narrow(2, 0, 2 * ho)?.narrow(3, 0, 2 * wo)?
    } else {
        x.clone()
    };
    // (n, c, ho, 2, wo, 2) -> (n, c, ho, wo, dy * 2 + dx): PyTorch's scan order in the window.
    let windows = x
        .reshape((n, c, ho, 2, wo, 2))?
        .permute((0, 1, 2, 4, 3, 5))?
        .reshape((n, c, ho, wo, 4))?;
    let plain = windows.detach();
    let max = plain.max_keepdim(D::Minus1)?;
    let is_max = plain.broadcast_eq(&max)?.to_dtype(x.dtype())?;
    // Keep only the first maximum: the running count of maxima is 1 there.
    let count = is_max.cumsum(D::Minus1)?;
    let first = is_max.mul(&count.eq(1.0)?.to_dtype(x.dtype())?)?.detach();
    windows.mul(&first)?.sum(D::Minus1)
}

/// `(x - IMAGENET_MEAN) / IMAGENET_STD` per channel of an N x 3 x H x W tensor (the tutorial's
/// `Normalization` module: a subtraction then a division, as PyTorch computes it).
pub fn normalize_imagenet(x: &Tensor) -> candle_core::Result<Tensor> {
    let (mean, std) = imagenet_constants(x.device(), x.dtype())?;
    x.broadcast_sub(&mean)?.broadcast_div(&std)
}

fn imagenet_constants(dev: &Device, dtype: DType) -> candle_core::Result<(Tensor, Tensor)> {
    let mean = Tensor::new(&IMAGENET_MEAN, dev)?
        .to_dtype(dtype)?
        .reshape((1, 3, 1, 1))?;
    let std = Tensor::new(&IMAGENET_STD, dev)?
        .to_dtype(dtype)?
        .reshape((1, 3, 1, 1))?;
    Ok((mean, std))
}

/// One step of the built trunk.
#[derive(Debug, Clone)]
enum Step {
    /// A convolution (3x3, padding 1) at `features.index`, then (unless this is the last step)
    /// its ReLU.
    Conv {
        index: usize,
        weight: Tensor,
        bias: Tensor,
    },
    /// A max pool.
    Pool,
}

/// The VGG19 `features` trunk up to the last requested tap, returning the requested activations.
#[derive(Debug, Clone)]
pub struct Vgg19Features {
    steps: Vec<Step>,
    taps: Vec<Tap>,
    normalize: Option<(Tensor, Tensor)>,
    /// Whether the last step's ReLU runs (the last tap is after a ReLU).
    last_relu: bool,
    /// How the CPU op computes the 3x3 convolutions.
    algo: ConvAlgo,
}

fn read(
    vb: &VarBuilder,
    name: &str,
    full: String,
    expected: &[usize],
) -> Result<Tensor, Vgg19Error> {
    if !vb.contains_tensor(name) {
        return Err(Vgg19Error::MissingTensor { tensor: full });
    }
    let t = vb.get_unchecked(name).map_err(|source| Vgg19Error::Read {
        tensor: full.clone(),
        source,
    })?;
    if t.dims() != expected {
        return Err(Vgg19Error::ShapeMismatch {
            tensor: full,
            expected: expected.to_vec(),
            got: t.dims().to_vec(),
        });
    }
    Ok(t)
}

impl Vgg19Features {
    /// Builds the trunk of `config` up to the last of `taps`, reading `features.N.weight` and
    /// `features.N.bias` from `vb` (a builder over the checkpoint root: this calls
    /// `vb.pp("features").pp(N)`). Only the convolutions up to the last tap are read, so a
    /// checkpoint holding just those is enough.
    ///
    /// [`Vgg19Features::forward`] returns the activations in the order of `taps` (repeats
    /// allowed).
    pub fn new(vb: VarBuilder, config: &Vgg19Config, taps: &[Tap]) -> Result<Self, Vgg19Error> {
        let convs = config.conv_indices();
        for t in taps {
            if !convs.contains(&t.conv) {
                return Err(Vgg19Error::NotAConv {
                    conv: t.conv,
                    convs,
                });
            }
        }
        let last = taps
            .iter()
            .map(|t| t.conv)
            .max()
            .ok_or(Vgg19Error::NoTaps)?;
        let last_relu = taps
            .iter()
            .any(|t| t.conv == last && t.point == TapPoint::AfterRelu);
        let features = vb.pp("features");
        let mut steps = Vec::new();
        let mut channels = config.in_channels;
        let mut index = 0;
        for layer in &config.layers {
            if index > last {
                break;
            }
            match *layer {
                Layer::Conv(out) => {
                    let m = features.pp(index.to_string());
                    let weight = read(
                        &m,
                        "weight",
                        format!("features.{index}.weight"),
                        &[out, channels, 3, 3],
                    )?;
                    let bias = read(&m, "bias", format!("features.{index}.bias"), &[out])?;
                    steps.push(Step::Conv {
                        index,
                        weight,
                        bias,
                    });
                    channels = out;
                    index += 2;
                }
                Layer::MaxPool => {
                    steps.push(Step::Pool);
                    index += 1;
                }
            }
        }
        let normalize = if config.normalize {
            Some(imagenet_constants(vb.device(), vb.dtype()).map_err(Vgg19Error::Constant)?)
        } else {
            None
        };
        Ok(Self {
            steps,
            taps: taps.to_vec(),
            normalize,
            last_relu,
            algo: ConvAlgo::Im2col,
        })
    }

    /// The same trunk with its convolutions computed by `algo` on the CPU (other devices run
    /// candle's `conv2d` whatever the choice).
    pub fn with_conv_algo(mut self, algo: ConvAlgo) -> Self {
        self.algo = algo;
        self
    }

    /// The trunk as plain CPU buffers, with [`Vgg19Features::taps`] as its taps, when its
    /// weights take the fused CPU path (`f32` on the CPU, fused kernels enabled); `None`
    /// otherwise. The weights are copied.
    pub fn cpu_trunk(&self) -> candle_core::Result<Option<(VggTrunk, Vec<TrunkTap>)>> {
        let mut layers = Vec::with_capacity(self.steps.len());
        let mut convs = Vec::new();
        let n_steps = self.steps.len();
        for (s, step) in self.steps.iter().enumerate() {
            match step {
                Step::Conv {
                    index,
                    weight,
                    bias,
                } => {
                    if !crate::kernels::fused_cpu(weight) || !crate::kernels::fused_cpu(bias) {
                        return Ok(None);
                    }
                    let (cout, cin, _, _) = weight.dims4()?;
                    convs.push((*index, s));
                    layers.push(TrunkLayer::Conv {
                        weight: weight.flatten_all()?.to_vec1()?,
                        bias: bias.to_vec1()?,
                        cout,
                        cin,
                        relu: s + 1 < n_steps || self.last_relu,
                    });
                }
                Step::Pool => layers.push(TrunkLayer::Pool),
            }
        }
        let normalize = match &self.normalize {
            Some((mean, std)) => Some((
                mean.flatten_all()?.to_vec1()?,
                std.flatten_all()?.to_vec1()?,
            )),
            None => None,
        };
        let taps = self
            .taps
            .iter()
            .map(|t| {
                let layer = convs
                    .iter()
                    .find(|(index, _)| *index == t.conv)
                    .map(|(_, s)| *s)
                    .ok_or_else(|| candle_core::Error::Msg("VGG19: a tap was not built".into()))?;
                Ok(TrunkTap {
                    layer,
                    after_relu: t.point == TapPoint::AfterRelu,
                })
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Some((
            VggTrunk {
                layers,
                normalize,
                algo: self.algo,
            },
            taps,
        )))
    }

    /// The taps [`Vgg19Features::forward`] returns, in order.
    pub fn taps(&self) -> &[Tap] {
        &self.taps
    }

    /// Runs a batch of N x C x H x W images (in [0, 1] when the configuration normalises; any
    /// size that survives the pools before the last tap) and returns the activations of
    /// [`Vgg19Features::taps`], in that order, each N x C' x H' x W'.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Vec<Tensor>> {
        let mut x = match &self.normalize {
            Some((mean, std)) => x.broadcast_sub(mean)?.broadcast_div(std)?,
            None => x.clone(),
        };
        let mut out: Vec<Option<Tensor>> = vec![None; self.taps.len()];
        let n_steps = self.steps.len();
        for (s, step) in self.steps.iter().enumerate() {
            match step {
                Step::Conv {
                    index,
                    weight,
                    bias,
                } => {
                    x = conv2d_with(&x, weight, bias, 1, 1, self.algo)?;
                    self.store(*index, TapPoint::BeforeRelu, &x, &mut out);
                    if s + 1 < n_steps || self.last_relu {
                        x = relu_torch(&x)?;
                        self.store(*index, TapPoint::AfterRelu, &x, &mut out);
                    }
                }
                Step::Pool => x = max_pool2x2(&x)?,
            }
        }
        out.into_iter()
            .map(|t| {
                t.ok_or_else(|| candle_core::Error::Msg("VGG19: a tap was not reached".into()))
            })
            .collect()
    }

    fn store(&self, index: usize, point: TapPoint, x: &Tensor, out: &mut [Option<Tensor>]) {
        for (slot, tap) in out.iter_mut().zip(&self.taps) {
            if tap.conv == index && tap.point == point {
                *slot = Some(x.clone());
            }
        }
    }
}

/// The names and shapes of every `features` tensor of `config` (for checks of real checkpoints).
pub fn feature_tensor_shapes(config: &Vgg19Config) -> Vec<(String, Vec<usize>)> {
    let mut shapes = Vec::new();
    let mut channels = config.in_channels;
    let mut index = 0;
    for layer in &config.layers {
        match *layer {
            Layer::Conv(out) => {
                shapes.push((
                    format!("features.{index}.weight"),
                    vec![out, channels, 3, 3],
                ));
                shapes.push((format!("features.{index}.bias"), vec![out]));
                channels = out;
                index += 2;
            }
            Layer::MaxPool => index += 1,
        }
    }
    shapes
}
