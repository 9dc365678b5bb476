//! The Stable Diffusion variational autoencoder (`AutoencoderKL` of Hugging Face diffusers),
//! with the posterior's mean and standard deviation exposed: InstructPix2Pix conditions on the
//! posterior MODE of the source image and EmoEditor starts from a posterior SAMPLE, whose noise
//! must come from the caller's seeded generator.
//!
//! Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014; Rombach et al., CVPR 2022.
//! Upstream: `diffusers/models/autoencoders/autoencoder_kl.py`, `vae.py`, `unet_2d_blocks.py`.
//! Tensor names follow diffusers checkpoints; the middle block's attention is read under both the
//! current names (`to_q`, `to_k`, `to_v`, `to_out.0`) and the pre-0.14 ones (`query`, `key`,
//! `value`, `proj_attn`) that older uploads such as `timbrooks/instruct-pix2pix` still carry.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::layers::{attention, upsample_nearest, Conv2d, GroupNorm, Linear};
use crate::unet::ResnetBlock;

/// The architecture of an [`AutoencoderKl`], read from a diffusers `vae/config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VaeConfig {
    /// Image channels.
    pub in_channels: usize,
    /// Decoded image channels.
    pub out_channels: usize,
    /// Channels of each resolution level.
    pub block_out_channels: Vec<usize>,
    /// Residual blocks per encoder level (the decoder has one more).
    pub layers_per_block: usize,
    /// Latent channels.
    pub latent_channels: usize,
    /// Groups of every group norm.
    pub norm_num_groups: usize,
    /// The factor diffusion latents are multiplied by (SD 1.x: 0.18215).
    pub scaling_factor: f64,
}

impl Default for VaeConfig {
    fn default() -> Self {
        Self::stable_diffusion_v1()
    }
}

impl VaeConfig {
    /// The VAE of Stable Diffusion 1.x and InstructPix2Pix.
    pub fn stable_diffusion_v1() -> Self {
        Self {
            in_channels: 3,
            out_channels: 3,
            block_out_channels: vec![128, 256, 512, 512],
            layers_per_block: 2,
            latent_channels: 4,
            norm_num_groups: 32,
            scaling_factor: 0.18215,
        }
    }
}

/// All VAE norms use this epsilon.
const EPS: f64 = 1e-6;

/// The single-head self-attention of the VAE's middle block.
#[derive(Debug, Clone)]
struct VaeAttention {
    norm: GroupNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
}

/// Loads a linear layer stored either as (out, in) or, in old checkpoints, as a 1x1 convolution.
fn linear_any(vb: VarBuilder, dim: usize) -> Result<Linear> {
    let weight = match vb.get((dim, dim), "weight") {
        Ok(w) => w,
        Err(e) => match vb.get_unchecked("weight") {
            Ok(w) if w.dims() == [dim, dim, 1, 1] => w.reshape((dim, dim))?,
            _ => return Err(e),
        },
    };
    Linear::new(weight, Some(vb.get(dim, "bias")?))
}

impl VaeAttention {
    fn new(vb: VarBuilder, dim: usize, groups: usize) -> Result<Self> {
        let legacy = !vb.contains_tensor("to_q.weight") && vb.contains_tensor("query.weight");
        let names = if legacy {
            ["query", "key", "value", "proj_attn"]
        } else {
            ["to_q", "to_k", "to_v", "to_out.0"]
        };
        Ok(Self {
            norm: GroupNorm::new(vb.pp("group_norm"), groups, dim, EPS)?,
            q: linear_any(vb.pp(names[0]), dim)?,
            k: linear_any(vb.pp(names[1]), dim)?,
            v: linear_any(vb.pp(names[2]), dim)?,
            out: linear_any(vb.pp(names[3]), dim)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let tokens = self
            .norm
            .forward(x)?
            .reshape((b, c, h * w))?
            .transpose(1, 2)?
            .contiguous()?;
        let q = self.q.forward(&tokens)?;
        let k = self.k.forward(&tokens)?;
        let v = self.v.forward(&tokens)?;
        let out = self.out.forward(&attention(&q, &k, &v, 1, false)?)?;
        out.transpose(1, 2)?.contiguous()?.reshape((b, c, h, w))? + x
    }
}

/// Residual block, attention, residual block: the middle of both encoder and decoder.
#[derive(Debug, Clone)]
struct MidBlock {
    resnet0: ResnetBlock,
    attention: VaeAttention,
    resnet1: ResnetBlock,
}

impl MidBlock {
    fn new(vb: VarBuilder, dim: usize, groups: usize) -> Result<Self> {
        Ok(Self {
            resnet0: ResnetBlock::new(vb.pp("resnets.0"), dim, dim, None, groups, EPS, 1.0)?,
            attention: VaeAttention::new(vb.pp("attentions.0"), dim, groups)?,
            resnet1: ResnetBlock::new(vb.pp("resnets.1"), dim, dim, None, groups, EPS, 1.0)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.resnet0.forward(x, None)?;
        let x = self.attention.forward(&x)?;
        self.resnet1.forward(&x, None)
    }
}

/// One resolution level: residual blocks and an optional down- or upsampling convolution.
#[derive(Debug, Clone)]
struct Level {
    resnets: Vec<ResnetBlock>,
    resample: Option<Conv2d>,
}

/// `count` residual blocks `resnets.{j}` (no timestep embedding), the first from `cin` channels.
fn resnet_stack(
    vb: &VarBuilder,
    count: usize,
    cin: usize,
    out: usize,
    groups: usize,
) -> Result<Vec<ResnetBlock>> {
    (0..count)
        .map(|j| {
            let rin = if j == 0 { cin } else { out };
            ResnetBlock::new(
                vb.pp(format!("resnets.{j}")),
                rin,
                out,
                None,
                groups,
                EPS,
                1.0,
            )
        })
        .collect()
}

/// The posterior q(z | x): a diagonal Gaussian.
#[derive(Debug, Clone)]
pub struct Posterior {
    /// Mean (also the mode), (batch, latent_channels, h / 8, w / 8).
    pub mean: Tensor,
    /// Standard deviation, exp(0.5 clamp(logvar, -30, 20)).
    pub std: Tensor,
}

impl Posterior {
    /// A sample `mean + std * noise` with the caller's standard-normal `noise`.
    pub fn sample_with(&self, noise: &Tensor) -> Result<Tensor> {
        &self.mean + (&self.std * noise)?
    }
}

/// The KL-regularised autoencoder.
#[derive(Debug, Clone)]
pub struct AutoencoderKl {
    config: VaeConfig,
    enc_conv_in: Conv2d,
    enc_levels: Vec<Level>,
    enc_mid: MidBlock,
    enc_norm_out: GroupNorm,
    enc_conv_out: Conv2d,
    quant_conv: Conv2d,
    post_quant_conv: Conv2d,
    dec_conv_in: Conv2d,
    dec_mid: MidBlock,
    dec_levels: Vec<Level>,
    dec_norm_out: GroupNorm,
    dec_conv_out: Conv2d,
}

impl AutoencoderKl {
    /// Builds the VAE from `vb` (the root of a diffusers VAE checkpoint).
    pub fn new(vb: VarBuilder, config: &VaeConfig) -> Result<Self> {
        let ch = &config.block_out_channels;
        let levels = ch.len();
        let groups = config.norm_num_groups;
        let latent = config.latent_channels;
        let top = ch[levels - 1];

        let enc = vb.pp("encoder");
        let mut enc_levels = Vec::with_capacity(levels);
        for (i, &out) in ch.iter().enumerate() {
            let vbb = enc.pp(format!("down_blocks.{i}"));
            let cin = if i == 0 { ch[0] } else { ch[i - 1] };
            let resnets = resnet_stack(&vbb, config.layers_per_block, cin, out, groups)?;
            // diffusers pads right and bottom by one, then convolves without padding.
            let resample = if i + 1 < levels {
                Some(Conv2d::new(
                    vbb.pp("downsamplers.0.conv"),
                    out,
                    out,
                    3,
                    2,
                    0,
                )?)
            } else {
                None
            };
            enc_levels.push(Level { resnets, resample });
        }

        let dec = vb.pp("decoder");
        let mut dec_levels = Vec::with_capacity(levels);
        let mut prev = top;
        for i in 0..levels {
            let vbb = dec.pp(format!("up_blocks.{i}"));
            let out = ch[levels - 1 - i];
            let resnets = resnet_stack(&vbb, config.layers_per_block + 1, prev, out, groups)?;
            let resample = if i + 1 < levels {
                Some(Conv2d::new(vbb.pp("upsamplers.0.conv"), out, out, 3, 1, 1)?)
            } else {
                None
            };
            dec_levels.push(Level { resnets, resample });
            prev = out;
        }

        Ok(Self {
            config: config.clone(),
            enc_conv_in: Conv2d::new(enc.pp("conv_in"), config.in_channels, ch[0], 3, 1, 1)?,
            enc_levels,
            enc_mid: MidBlock::new(enc.pp("mid_block"), top, groups)?,
            enc_norm_out: GroupNorm::new(enc.pp("conv_norm_out"), groups, top, EPS)?,
            enc_conv_out: Conv2d::new(enc.pp("conv_out"), top, 2 * latent, 3, 1, 1)?,
            quant_conv: Conv2d::new(vb.pp("quant_conv"), 2 * latent, 2 * latent, 1, 1, 0)?,
            post_quant_conv: Conv2d::new(vb.pp("post_quant_conv"), latent, latent, 1, 1, 0)?,
            dec_conv_in: Conv2d::new(dec.pp("conv_in"), latent, top, 3, 1, 1)?,
            dec_mid: MidBlock::new(dec.pp("mid_block"), top, groups)?,
            dec_levels,
            dec_norm_out: GroupNorm::new(dec.pp("conv_norm_out"), groups, ch[0], EPS)?,
            dec_conv_out: Conv2d::new(dec.pp("conv_out"), ch[0], config.out_channels, 3, 1, 1)?,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &VaeConfig {
        &self.config
    }

    /// Encodes images in [-1, 1], (batch, 3, h, w) with h and w multiples of 8.
    pub fn encode(&self, x: &Tensor) -> Result<Posterior> {
        let mut h = self.enc_conv_in.forward(x)?;
        for level in &self.enc_levels {
            for r in &level.resnets {
                h = r.forward(&h, None)?;
            }
            if let Some(conv) = &level.resample {
                h = conv.forward(&h.pad_with_zeros(2, 0, 1)?.pad_with_zeros(3, 0, 1)?)?;
            }
        }
        h = self.enc_mid.forward(&h)?;
        h = self
            .enc_conv_out
            .forward(&self.enc_norm_out.forward_act(&h, true)?)?;
        let moments = self.quant_conv.forward(&h)?;
        let latent = self.config.latent_channels;
        let mean = moments.narrow(1, 0, latent)?;
        let logvar = moments.narrow(1, latent, latent)?.clamp(-30f32, 20f32)?;
        let std = (logvar * 0.5)?.exp()?;
        Ok(Posterior { mean, std })
    }

    /// Decodes (unscaled) latents to images in about [-1, 1].
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        let mut h = self
            .dec_conv_in
            .forward(&self.post_quant_conv.forward(z)?)?;
        h = self.dec_mid.forward(&h)?;
        for level in &self.dec_levels {
            for r in &level.resnets {
                h = r.forward(&h, None)?;
            }
            if let Some(conv) = &level.resample {
                let (hh, ww) = (h.dim(2)?, h.dim(3)?);
                h = conv.forward(&upsample_nearest(&h, 2 * hh, 2 * ww)?)?;
            }
        }
        self.dec_conv_out
            .forward(&self.dec_norm_out.forward_act(&h, true)?)
    }
}
