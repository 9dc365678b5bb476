//! ResNet-18 (He et al., "Deep Residual Learning for Image Recognition", 2016) with torchvision's
//! layout and key names (`torchvision/models/resnet.py`), in inference form.
//!
//! candle-transformers' `resnet18` returns an opaque function, but Grad-CAM needs `layer4`'s output,
//! so the model is written out here. Batch norm is folded into the preceding convolution when the
//! weights are loaded: the network is only ever run in eval mode, and folding halves the passes over
//! each activation.

mod cpu;
mod winograd;

use candle_core::{DType, Device, Module, Tensor, D};

use crate::kernels::WinogradTile;

use crate::weights::checkpoint::{CheckpointError, StateDict};

/// Shape parameters of a torchvision-style ResNet-18.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ResNetConfig {
    /// Output channels of layer1..layer4 (the stem has `widths[0]`).
    pub widths: [usize; 4],
    /// Size of the `fc` head.
    pub num_classes: usize,
    /// Batch-norm epsilon (torchvision: 1e-5).
    pub bn_eps: f64,
}

impl ResNetConfig {
    /// torchvision `resnet18(num_classes=n)`: the authors' predictor with `n = 8`.
    pub fn resnet18(num_classes: usize) -> Self {
        Self {
            widths: [64, 128, 256, 512],
            num_classes,
            bn_eps: 1e-5,
        }
    }

    /// Same depth and key names with widths 8/16/32/64: the architecture of the test fixtures.
    pub fn tiny(num_classes: usize) -> Self {
        Self {
            widths: [8, 16, 32, 64],
            ..Self::resnet18(num_classes)
        }
    }

    /// Every (key, shape) the model reads from a state dict, in torchvision's naming.
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        let w = self.widths;
        let bn = |out: &mut Vec<(String, Vec<usize>)>, p: &str, c: usize| {
            for n in ["weight", "bias", "running_mean", "running_var"] {
                out.push((format!("{p}.{n}"), vec![c]));
            }
        };
        out.push(("conv1.weight".into(), vec![w[0], 3, 7, 7]));
        bn(&mut out, "bn1", w[0]);
        let mut cin = w[0];
        for (li, &c) in w.iter().enumerate() {
            for b in 0..2 {
                let p = format!("layer{}.{b}", li + 1);
                let bin = if b == 0 { cin } else { c };
                out.push((format!("{p}.conv1.weight"), vec![c, bin, 3, 3]));
                bn(&mut out, &format!("{p}.bn1"), c);
                out.push((format!("{p}.conv2.weight"), vec![c, c, 3, 3]));
                bn(&mut out, &format!("{p}.bn2"), c);
                if b == 0 && li > 0 {
                    out.push((format!("{p}.downsample.0.weight"), vec![c, bin, 1, 1]));
                    bn(&mut out, &format!("{p}.downsample.1"), c);
                }
            }
            cin = c;
        }
        out.push(("fc.weight".into(), vec![self.num_classes, w[3]]));
        out.push(("fc.bias".into(), vec![self.num_classes]));
        out
    }
}

/// A convolution without bias followed by eval-mode batch norm, stored folded.
#[derive(Debug, Clone)]
struct ConvBn {
    weight: Tensor,
    bias: Tensor,
    stride: usize,
    padding: usize,
    cpu: cpu::CpuConv,
    /// The F(4x4, 3x3) Winograd form of a 3x3 stride-1 convolution, made on its first use.
    wino: std::sync::OnceLock<winograd::WinogradConv>,
}

/// Smallest activation side at which a 3x3 stride-1 convolution runs by Winograd F(4x4) in cache-
/// sized bands of tile rows (layer1 at 224); below it, every tile of the batch goes through one
/// product per position, so each (larger) transformed weight matrix is read once per call.
const WINOGRAD_BANDED_SIDE: usize = 48;

/// Fewest F(4x4) tiles in a batch for the whole-batch Winograd schedule: with fewer (layer4 at
/// 224 for batches under 4), its 4x larger weights cost more to read than the products save.
const WINOGRAD_MIN_TILES: usize = 16;

/// Images per pass through the stem and layer1 on the CPU: a whole batch of 8 at 224 makes the
/// stem's patch matrix 58 MB, past the cache, and ran 1.3x slower per image than passes of 2.
/// The later layers take the whole batch, which their narrower products need.
const CPU_CHUNK: usize = 2;

impl ConvBn {
    #[allow(clippy::too_many_arguments)]
    fn load(
        sd: &StateDict,
        conv: &str,
        bn: &str,
        shape: [usize; 4],
        stride: usize,
        padding: usize,
        eps: f64,
        dev: &Device,
    ) -> Result<Self, CheckpointError> {
        let c = shape[0];
        let w = sd.get(&format!("{conv}.weight"), &shape, dev)?;
        let gamma = sd.get(&format!("{bn}.weight"), &[c], dev)?;
        let beta = sd.get(&format!("{bn}.bias"), &[c], dev)?;
        let mean = sd.get(&format!("{bn}.running_mean"), &[c], dev)?;
        let var = sd.get(&format!("{bn}.running_var"), &[c], dev)?;
        let fold = || -> candle_core::Result<(Tensor, Tensor)> {
            let scale = gamma.div(&(var + eps)?.sqrt()?)?;
            let weight = w.broadcast_mul(&scale.reshape((c, 1, 1, 1))?)?;
            let bias = (beta - mean.mul(&scale)?)?.reshape((1, c, 1, 1))?;
            Ok((weight, bias))
        };
        let (weight, bias) = fold().map_err(|e| CheckpointError::Format {
            path: sd.path.clone(),
            message: format!("folding {bn}: {e}"),
        })?;
        let cpu = cpu::CpuConv::new(&weight, &bias, stride, padding).map_err(|e| {
            CheckpointError::Format {
                path: sd.path.clone(),
                message: format!("{conv}: {e}"),
            }
        })?;
        Ok(Self {
            weight,
            bias,
            stride,
            padding,
            cpu,
            wino: std::sync::OnceLock::new(),
        })
    }
}

impl ConvBn {
    /// The folded weights in `dtype`; the fused CPU copy stays `f32`, as it only runs `f32`.
    fn to_dtype(&self, dtype: DType) -> candle_core::Result<Self> {
        Ok(Self {
            weight: self.weight.to_dtype(dtype)?,
            bias: self.bias.to_dtype(dtype)?,
            ..self.clone()
        })
    }

    /// conv(x) + bias, then optionally + `residual`, then optionally ReLU, on the CPU.
    fn run_cpu(
        &self,
        x: &cpu::Act,
        residual: Option<&cpu::Act>,
        relu: bool,
        scratch: &mut Vec<f32>,
    ) -> cpu::Act {
        let side = x.h.min(x.w);
        let tiles = x.n * x.h.div_ceil(4) * x.w.div_ceil(4);
        if self.cpu.is_3x3_stride1() && tiles >= WINOGRAD_MIN_TILES {
            let wino = self.wino.get_or_init(|| {
                let (weight, bias, (cout, cin)) = self.cpu.parts();
                winograd::WinogradConv::new(weight, bias, cout, cin, WinogradTile::F4)
            });
            return if side >= WINOGRAD_BANDED_SIDE {
                wino.run(x, residual, relu)
            } else {
                wino.run_wide(x, residual, relu)
            };
        }
        self.cpu.run(x, residual, relu, scratch)
    }
}

impl Module for ConvBn {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        // Used on GPUs; the CPU path is `cpu::CpuConv`.
        crate::kernels::candle_conv2d(x, &self.weight, self.padding, self.stride)?
            .broadcast_add(&self.bias)
    }
}

#[derive(Debug, Clone)]
struct BasicBlock {
    conv1: ConvBn,
    conv2: ConvBn,
    downsample: Option<ConvBn>,
}

impl BasicBlock {
    /// The block on the CPU's C x N x H x W activations.
    fn run_cpu(&self, a: cpu::Act, scratch: &mut Vec<f32>) -> cpu::Act {
        let y = self.conv1.run_cpu(&a, None, true, scratch);
        let id = match &self.downsample {
            Some(d) => d.run_cpu(&a, None, false, scratch),
            None => a,
        };
        self.conv2.run_cpu(&y, Some(&id), true, scratch)
    }
}

impl Module for BasicBlock {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = self.conv1.forward(x)?.relu()?;
        let y = self.conv2.forward(&y)?;
        let id = match &self.downsample {
            Some(d) => d.forward(x)?,
            None => x.clone(),
        };
        (y + id)?.relu()
    }
}

/// torchvision ResNet-18 in eval mode.
#[derive(Debug, Clone)]
pub struct ResNet18 {
    config: ResNetConfig,
    stem: ConvBn,
    blocks: Vec<BasicBlock>,
    fc_weight: Tensor,
    fc_bias: Tensor,
}

impl ResNet18 {
    /// Builds the model from a state dict with torchvision key names; a missing or misshapen
    /// tensor is reported by name.
    pub fn load(
        config: ResNetConfig,
        sd: &StateDict,
        dev: &Device,
    ) -> Result<Self, CheckpointError> {
        let w = config.widths;
        let eps = config.bn_eps;
        let stem = ConvBn::load(sd, "conv1", "bn1", [w[0], 3, 7, 7], 2, 3, eps, dev)?;
        let mut blocks = Vec::new();
        let mut cin = w[0];
        for (li, &c) in w.iter().enumerate() {
            for b in 0..2 {
                let p = format!("layer{}.{b}", li + 1);
                let bin = if b == 0 { cin } else { c };
                let stride = if b == 0 && li > 0 { 2 } else { 1 };
                let conv1 = ConvBn::load(
                    sd,
                    &format!("{p}.conv1"),
                    &format!("{p}.bn1"),
                    [c, bin, 3, 3],
                    stride,
                    1,
                    eps,
                    dev,
                )?;
                let conv2 = ConvBn::load(
                    sd,
                    &format!("{p}.conv2"),
                    &format!("{p}.bn2"),
                    [c, c, 3, 3],
                    1,
                    1,
                    eps,
                    dev,
                )?;
                let downsample = if b == 0 && li > 0 {
                    Some(ConvBn::load(
                        sd,
                        &format!("{p}.downsample.0"),
                        &format!("{p}.downsample.1"),
                        [c, bin, 1, 1],
                        2,
                        0,
                        eps,
                        dev,
                    )?)
                } else {
                    None
                };
                blocks.push(BasicBlock {
                    conv1,
                    conv2,
                    downsample,
                });
            }
            cin = c;
        }
        let fc_weight = sd.get("fc.weight", &[config.num_classes, w[3]], dev)?;
        let fc_bias = sd.get("fc.bias", &[config.num_classes], dev)?;
        Ok(Self {
            config,
            stem,
            blocks,
            fc_weight,
            fc_bias,
        })
    }

    /// The configuration this model was built with.
    pub fn config(&self) -> &ResNetConfig {
        &self.config
    }

    /// The same network with its weights in `dtype` (half precision for GPUs; on the CPU
    /// anything but `f32` runs on candle's operators).
    pub fn to_dtype(&self, dtype: DType) -> candle_core::Result<Self> {
        let blocks = self
            .blocks
            .iter()
            .map(|b| {
                Ok(BasicBlock {
                    conv1: b.conv1.to_dtype(dtype)?,
                    conv2: b.conv2.to_dtype(dtype)?,
                    downsample: b
                        .downsample
                        .as_ref()
                        .map(|d| d.to_dtype(dtype))
                        .transpose()?,
                })
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Self {
            config: self.config.clone(),
            stem: self.stem.to_dtype(dtype)?,
            blocks,
            fc_weight: self.fc_weight.to_dtype(dtype)?,
            fc_bias: self.fc_bias.to_dtype(dtype)?,
        })
    }

    /// The weights' dtype.
    pub fn dtype(&self) -> DType {
        self.fc_weight.dtype()
    }

    /// `fc.weight`, shape (classes, widths[3]); Grad-CAM's channel weights are its rows / (H*W).
    pub fn fc_weight(&self) -> &Tensor {
        &self.fc_weight
    }

    /// Output of `layer4` (after its last ReLU), shape (N, widths[3], H/32, W/32).
    pub fn features(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if crate::kernels::fused_cpu(x) {
            return self.features_cpu(x);
        }
        let x = self.stem.forward(x)?.relu()?;
        // Zero padding equals torchvision's -inf padding here: inputs are post-ReLU, so >= 0.
        let x = x.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?;
        let mut x = x.max_pool2d_with_stride(3, 2)?;
        for b in &self.blocks {
            x = b.forward(&x)?;
        }
        Ok(x)
    }

    fn features_cpu(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        use cpu::{max_pool_3x3_s2, Act};
        // Blocks before the first downsampling one run at full resolution, in passes.
        let early = self
            .blocks
            .iter()
            .position(|b| b.downsample.is_some())
            .unwrap_or(self.blocks.len());
        let mut scratch = Vec::new();
        let n = x.dim(0)?;
        let mut parts = Vec::new();
        for i in (0..n).step_by(CPU_CHUNK) {
            let xs = Act::from_nchw(&x.narrow(0, i, CPU_CHUNK.min(n - i))?)?;
            let stem = self.stem.run_cpu(&xs, None, true, &mut scratch);
            let mut a = max_pool_3x3_s2(&stem);
            for b in &self.blocks[..early] {
                a = b.run_cpu(a, &mut scratch);
            }
            parts.push(a);
        }
        let mut a = Act::concat(parts);
        for b in &self.blocks[early..] {
            a = b.run_cpu(a, &mut scratch);
        }
        a.into_nchw(x.device())
    }

    /// Global average pool and `fc`: logits of shape (N, classes).
    pub fn head(&self, features: &Tensor) -> candle_core::Result<Tensor> {
        let pooled = features.mean(D::Minus1)?.mean(D::Minus1)?;
        pooled
            .matmul(&self.fc_weight.t()?)?
            .broadcast_add(&self.fc_bias)
    }
}
