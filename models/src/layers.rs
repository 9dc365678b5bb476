//! Building blocks shared by the UNet, the VAE and the CLIP text encoder: convolution, group
//! norm, linear layers and attention, loaded with diffusers' tensor names.
//!
//! Convolution and group norm take a fused CPU path (see [`crate::kernels`]) for contiguous `f32`
//! tensors on the CPU and use candle's operators everywhere else (CUDA, half precision).

use candle_core::{DType, Module, Result, Storage, Tensor, D};
use candle_nn::VarBuilder;

use crate::kernels::{self, ConvInit, ConvShape};

/// Runs `f` on the contiguous `f32` CPU data of `t`, or returns `None` when `t` is elsewhere.
fn with_cpu_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Option<R> {
    if !kernels::fused_cpu(t) || !t.is_contiguous() {
        return None;
    }
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(cpu) => {
            let all = cpu.as_slice::<f32>().ok()?;
            let start = layout.start_offset();
            Some(f(&all[start..start + t.elem_count()]))
        }
        _ => None,
    }
}

/// A 2-D convolution (`torch.nn.Conv2d` with square kernel, symmetric padding, bias optional).
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    shape: ConvShape,
}

impl Conv2d {
    /// Loads `weight` (cout, cin, k, k) and `bias` (cout) from `vb`.
    pub fn new(
        vb: VarBuilder,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Result<Self> {
        let weight = vb.get((cout, cin, k, k), "weight")?;
        let bias = Some(vb.get(cout, "bias")?);
        Ok(Self {
            weight,
            bias,
            shape: ConvShape {
                cin,
                cout,
                k,
                stride,
                pad,
            },
        })
    }

    /// The CPU convolution of contiguous `f32` data: Winograd for 3x3 / stride 1 / pad 1 (2.25x
    /// or 4x fewer multiply-adds; the tile is chosen for the input's size), im2col + GEMM
    /// otherwise.
    ///
    /// The Winograd weights are transformed during the call, not kept: the F4 transform is 4x
    /// the size of the checkpoint's 3x3 weights (at 512x512, keeping them made an edit's peak
    /// twice diffusers'), and the call's products read it once more than the transform writes.
    fn cpu_conv(
        &self,
        xs: &[f32],
        ws: &[f32],
        nhw: (usize, usize, usize),
        init: ConvInit<'_>,
    ) -> Vec<f32> {
        let s = self.shape;
        if s.k == 3 && s.stride == 1 && s.pad == 1 {
            let tile = kernels::WinogradTile::for_size(nhw.1, nhw.2);
            return kernels::conv3x3_winograd_from(xs, nhw, ws, (s.cout, s.cin), tile, init);
        }
        kernels::conv2d_nchw_fused(xs, nhw, s, ws, init)
    }

    /// The output channels.
    pub fn out_channels(&self) -> usize {
        self.shape.cout
    }
}

impl Conv2d {
    /// A 1x1 convolution of (N, C, H, W) written as tokens (N, H W, cout), on the CPU only
    /// (`None` elsewhere: the caller transposes).
    pub fn to_tokens(&self, x: &Tensor) -> Result<Option<Tensor>> {
        let x = x.contiguous()?;
        let (n, c, h, w) = x.dims4()?;
        let Some(bias) = self.bias.as_ref() else {
            return Ok(None);
        };
        let out = with_cpu_f32(&x, |xs| {
            with_cpu_f32(&self.weight, |ws| {
                with_cpu_f32(bias, |b| {
                    kernels::timing::timed(6, || {
                        kernels::channels_to_tokens(xs, (n, c, h * w), ws, b)
                    })
                })
            })
        })
        .flatten()
        .flatten();
        out.map(|d| Tensor::from_vec(d, (n, h * w, self.shape.cout), x.device()))
            .transpose()
    }

    /// The inverse of [`Conv2d::to_tokens`] plus a channel-major `residual` (N, cout, H, W).
    pub fn from_tokens(&self, t: &Tensor, residual: &Tensor) -> Result<Option<Tensor>> {
        let t = t.contiguous()?;
        let residual = residual.contiguous()?;
        let (n, hw, c) = t.dims3()?;
        let Some(bias) = self.bias.as_ref() else {
            return Ok(None);
        };
        let out = with_cpu_f32(&t, |ts| {
            with_cpu_f32(&self.weight, |ws| {
                with_cpu_f32(bias, |b| {
                    with_cpu_f32(&residual, |r| {
                        kernels::timing::timed(6, || {
                            kernels::tokens_to_channels(ts, (n, c, hw), ws, b, r)
                        })
                    })
                })
            })
        })
        .flatten()
        .flatten()
        .flatten();
        out.map(|d| Tensor::from_vec(d, residual.dims(), t.device()))
            .transpose()
    }

    /// `conv(x) + bias`, plus `image_bias` (N, cout) broadcast over space and `residual` (the
    /// output's shape) when given, in one pass on the CPU.
    pub fn forward_fused(
        &self,
        x: &Tensor,
        image_bias: Option<&Tensor>,
        residual: Option<&Tensor>,
    ) -> Result<Tensor> {
        let x = x.contiguous()?;
        let (n, _, h, w) = x.dims4()?;
        let (ho, wo) = self.shape.output_size(h, w);
        let image_bias = image_bias.map(|t| t.contiguous()).transpose()?;
        let residual = residual.map(|t| t.contiguous()).transpose()?;
        let host = |t: &Option<Tensor>| -> Option<Option<Vec<f32>>> {
            match t {
                Some(t) => with_cpu_f32(t, <[f32]>::to_vec).map(Some),
                None => Some(None),
            }
        };
        let fast = (|| {
            let bias = match &self.bias {
                Some(b) => Some(with_cpu_f32(b, <[f32]>::to_vec)?),
                None => None,
            };
            let image_bias = host(&image_bias)?;
            let residual_ok = residual
                .as_ref()
                .is_none_or(|r| with_cpu_f32(r, |_| ()).is_some());
            if !residual_ok {
                return None;
            }
            with_cpu_f32(&x, |xs| {
                with_cpu_f32(&self.weight, |ws| {
                    let run = |res: Option<&[f32]>| {
                        self.cpu_conv(
                            xs,
                            ws,
                            (n, h, w),
                            ConvInit {
                                bias: bias.as_deref(),
                                image_bias: image_bias.as_deref(),
                                residual: res,
                            },
                        )
                    };
                    match &residual {
                        Some(r) => with_cpu_f32(r, |rs| run(Some(rs))),
                        None => Some(run(None)),
                    }
                })
            })
            .flatten()
            .flatten()
        })();
        if let Some(data) = fast {
            return Tensor::from_vec(data, (n, self.shape.cout, ho, wo), x.device());
        }
        let mut y = self.forward(&x)?;
        if let Some(b) = &image_bias {
            y = y.broadcast_add(&b.reshape((n, self.shape.cout, 1, 1))?)?;
        }
        if let Some(r) = &residual {
            y = (r + y)?;
        }
        Ok(y)
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.contiguous()?;
        let (n, _, h, w) = x.dims4()?;
        let (ho, wo) = self.shape.output_size(h, w);
        let bias = match &self.bias {
            Some(b) => with_cpu_f32(b, <[f32]>::to_vec),
            None => Some(Vec::new()),
        };
        let fast = bias.and_then(|bias| {
            let bias = (!bias.is_empty()).then_some(bias.as_slice());
            with_cpu_f32(&x, |xs| {
                with_cpu_f32(&self.weight, |ws| {
                    self.cpu_conv(
                        xs,
                        ws,
                        (n, h, w),
                        ConvInit {
                            bias,
                            ..ConvInit::default()
                        },
                    )
                })
            })
            .flatten()
        });
        if let Some(data) = fast {
            return Tensor::from_vec(data, (n, self.shape.cout, ho, wo), x.device());
        }
        let y = crate::kernels::candle_conv2d(&x, &self.weight, self.shape.pad, self.shape.stride)?;
        match &self.bias {
            Some(b) => y.broadcast_add(&b.reshape((1, self.shape.cout, 1, 1))?),
            None => Ok(y),
        }
    }
}

/// `torch.nn.GroupNorm` with affine parameters, optionally followed by SiLU.
#[derive(Debug, Clone)]
pub struct GroupNorm {
    weight: Tensor,
    bias: Tensor,
    groups: usize,
    eps: f64,
}

impl GroupNorm {
    /// Loads `weight` and `bias` (channels) from `vb`.
    pub fn new(vb: VarBuilder, groups: usize, channels: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: vb.get(channels, "weight")?,
            bias: vb.get(channels, "bias")?,
            groups,
            eps,
        })
    }

    /// Normalises `x` (N, C, ...) and applies SiLU when `silu`.
    pub fn forward_act(&self, x: &Tensor, silu: bool) -> Result<Tensor> {
        let x = x.contiguous()?;
        let dims = x.dims().to_vec();
        let (n, c) = (dims[0], dims[1]);
        let spatial: usize = dims[2..].iter().product();
        let fast = with_cpu_f32(&x, |xs| {
            with_cpu_f32(&self.weight, |w| {
                with_cpu_f32(&self.bias, |b| {
                    kernels::timing::timed(4, || {
                        kernels::group_norm(xs, n, c, spatial, self.groups, self.eps, w, b, silu)
                    })
                })
            })
        })
        .flatten()
        .flatten();
        if let Some(data) = fast {
            return Tensor::from_vec(data, dims, x.device());
        }
        // Statistics in f32 even for half-precision activations, as PyTorch does.
        let dtype = x.dtype();
        let xg = x
            .to_dtype(DType::F32)?
            .reshape((n, self.groups, c / self.groups * spatial))?;
        let mean = xg.mean_keepdim(D::Minus1)?;
        let centred = xg.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        let mut shape = vec![1, c];
        shape.extend(std::iter::repeat_n(1, dims.len() - 2));
        let y = normed
            .reshape(dims.as_slice())?
            .broadcast_mul(
                &self
                    .weight
                    .to_dtype(DType::F32)?
                    .reshape(shape.as_slice())?,
            )?
            .broadcast_add(&self.bias.to_dtype(DType::F32)?.reshape(shape.as_slice())?)?;
        let y = if silu { candle_nn::ops::silu(&y)? } else { y };
        y.to_dtype(dtype)
    }
}

impl Module for GroupNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_act(x, false)
    }
}

/// `torch.nn.Linear`: one GEMM over all leading dimensions on the CPU, candle's matmul
/// elsewhere.
#[derive(Debug, Clone)]
pub struct Linear {
    /// The checkpoint's (out, in) weight transposed to (in, out) and made contiguous once, so
    /// every product reads it row by row.
    weight_t: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// A layer from its (out, in) weight and optional bias.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Result<Self> {
        Ok(Self {
            weight_t: weight.t()?.contiguous()?,
            bias,
        })
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.contiguous()?;
        let mut dims = x.dims().to_vec();
        let last = dims.len() - 1;
        let (cin, cout) = self.weight_t.dims2()?;
        let rows = x.elem_count() / cin.max(1);
        let bias = match &self.bias {
            Some(b) => with_cpu_f32(b, <[f32]>::to_vec).map(Some),
            None => Some(None),
        };
        let fast = bias.and_then(|bias| {
            with_cpu_f32(&x, |xs| {
                with_cpu_f32(&self.weight_t, |ws| {
                    kernels::timing::timed(3, || {
                        kernels::linear(xs, rows, ws, cin, bias.as_deref())
                    })
                })
            })
            .flatten()
        });
        dims[last] = cout;
        if let Some(out) = fast {
            return Tensor::from_vec(out, dims, x.device());
        }
        let y = x.reshape((rows, cin))?.matmul(&self.weight_t)?;
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        y.reshape(dims)
    }
}

/// A linear layer with the checkpoint's `weight` (out, in) and optional `bias`.
pub fn linear(vb: VarBuilder, cin: usize, cout: usize, bias: bool) -> Result<Linear> {
    let weight = vb.get((cout, cin), "weight")?;
    let bias = if bias {
        Some(vb.get(cout, "bias")?)
    } else {
        None
    };
    Linear::new(weight, bias)
}

/// `torch.nn.LayerNorm` over the last dimension.
pub fn layer_norm(vb: VarBuilder, dim: usize, eps: f64) -> Result<candle_nn::LayerNorm> {
    Ok(candle_nn::LayerNorm::new(
        vb.get(dim, "weight")?,
        vb.get(dim, "bias")?,
        eps,
    ))
}

/// Scaled dot-product attention of (batch, tokens, heads * head_dim) queries, keys and values.
///
/// `causal` masks future keys (CLIP's text encoder). Softmax runs in `f32` whatever the dtype,
/// as diffusers' `upcast_softmax` and PyTorch's fused kernels do.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize, causal: bool) -> Result<Tensor> {
    let (b, tq, inner) = q.dims3()?;
    let tk = k.dim(1)?;
    let hd = inner / heads;
    let (qc, kc, vc) = (q.contiguous()?, k.contiguous()?, v.contiguous()?);
    let fast = with_cpu_f32(&qc, |qs| {
        with_cpu_f32(&kc, |ks| {
            with_cpu_f32(&vc, |vs| {
                let scale = 1.0 / (hd as f32).sqrt();
                kernels::timing::timed(2, || {
                    kernels::attention(qs, ks, vs, (b, tq, tk), heads, hd, scale, causal)
                })
            })
        })
    })
    .flatten()
    .flatten();
    if let Some(out) = fast {
        return Tensor::from_vec(out, (b, tq, inner), q.device());
    }
    let split = |t: &Tensor, len: usize| -> Result<Tensor> {
        t.reshape((b, len, heads, hd))?
            .transpose(1, 2)?
            .contiguous()
    };
    let (qh, kh, vh) = (split(q, tq)?, split(k, tk)?, split(v, tk)?);
    let scale = 1.0 / (hd as f64).sqrt();
    let scores = ((qh.matmul(&kh.t()?)?) * scale)?;
    let scores = if causal {
        let mask: Vec<f32> = (0..tq)
            .flat_map(|i| (0..tk).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
            .collect();
        let mask = Tensor::from_vec(mask, (tq, tk), q.device())?.to_dtype(scores.dtype())?;
        scores.broadcast_add(&mask)?
    } else {
        scores
    };
    let dtype = scores.dtype();
    let probs = candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(dtype)?;
    probs.matmul(&vh)?.transpose(1, 2)?.reshape((b, tq, inner))
}

/// GEGLU: the first half of the last dimension times the exact GELU of the second half.
pub fn geglu(x: &Tensor) -> Result<Tensor> {
    let x = x.contiguous()?;
    let mut dims = x.dims().to_vec();
    let last = dims.len() - 1;
    let half = dims[last] / 2;
    if let Some(out) = with_cpu_f32(&x, |xs| {
        kernels::timing::timed(5, || kernels::geglu(xs, half))
    }) {
        dims[last] = half;
        return Tensor::from_vec(out, dims, x.device());
    }
    x.narrow(last, 0, half)? * x.narrow(last, half, half)?.gelu_erf()?
}

/// Nearest-neighbour upsampling to `(h, w)`, PyTorch's `F.interpolate(mode="nearest")` rule
/// (source index = floor(destination * in / out)).
pub fn upsample_nearest(x: &Tensor, h: usize, w: usize) -> Result<Tensor> {
    x.upsample_nearest2d(h, w)
}
