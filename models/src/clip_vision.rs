//! CLIP's two towers as differentiable candle ops: the ViT image tower (`CLIPVisionModel` +
//! `visual_projection`) and the text tower with `text_projection`, as CLIPstyler uses them
//! (`clip_model.encode_image` / `encode_text` of OpenAI CLIP, ViT-B/32).
//!
//! Radford et al., "Learning Transferable Visual Models From Natural Language Supervision", ICML
//! 2021. Upstream: `transformers/models/clip/modeling_clip.py`; tensor names are those of
//! `CLIPModel` checkpoints such as `openai/clip-vit-base-patch32` (`vision_model.*`,
//! `text_model.*`, `visual_projection.weight`, `text_projection.weight`).
//!
//! Unlike the inference-only text encoder of the diffusion pipeline, every op here has a
//! backward: layer norm is written from candle ops (candle-nn's fused layer norm drops
//! gradients), softmax likewise, and the patch embedding is a reshape plus matmul (the same
//! numbers as the stride-`patch` convolution without bias).
//!
//! On the CPU in f32 (unless `EMOBENCH_CANDLE_OPS=1`) the image tower runs as one custom op
//! over `crate::kernels::vit`, whose backward computes only the input gradient: the weights are
//! constants for every caller (CLIPstyler trains only its StyleNet), and candle's matmul backward
//! would compute every weight gradient as well.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Module, Result, Shape, Tensor, D};
use candle_nn::{Linear, VarBuilder};

use crate::kernels::vit::{self, NormWeights, VitLayer, VitSaved, VitWeights};

/// The architecture of a CLIP model (both towers).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Vision width.
    pub vision_hidden: usize,
    /// Vision MLP width.
    pub vision_intermediate: usize,
    /// Vision layers.
    pub vision_layers: usize,
    /// Vision attention heads.
    pub vision_heads: usize,
    /// Input side in pixels (224 for ViT-B/32).
    pub image_size: usize,
    /// Patch side in pixels.
    pub patch_size: usize,
    /// Text vocabulary size.
    pub vocab_size: usize,
    /// Text width.
    pub text_hidden: usize,
    /// Text MLP width.
    pub text_intermediate: usize,
    /// Text layers.
    pub text_layers: usize,
    /// Text attention heads.
    pub text_heads: usize,
    /// Text context length.
    pub max_positions: usize,
    /// Width of the joint embedding space.
    pub projection_dim: usize,
    /// Layer-norm epsilon.
    pub layer_norm_eps: f64,
}

impl Config {
    /// `openai/clip-vit-base-patch32`, the model of CLIPstyler (`clip.load('ViT-B/32')`).
    pub fn vit_base_patch32() -> Self {
        Self {
            vision_hidden: 768,
            vision_intermediate: 3072,
            vision_layers: 12,
            vision_heads: 12,
            image_size: 224,
            patch_size: 32,
            vocab_size: 49408,
            text_hidden: 512,
            text_intermediate: 2048,
            text_layers: 12,
            text_heads: 8,
            max_positions: 77,
            projection_dim: 512,
            layer_norm_eps: 1e-5,
        }
    }

    /// The tiny random model of the fixtures (`make_clipstyler_fixtures.py`).
    pub fn tiny() -> Self {
        Self {
            vision_hidden: 32,
            vision_intermediate: 64,
            vision_layers: 2,
            vision_heads: 4,
            image_size: 32,
            patch_size: 8,
            vocab_size: 1514,
            text_hidden: 16,
            text_intermediate: 32,
            text_layers: 2,
            text_heads: 2,
            max_positions: 77,
            projection_dim: 24,
            layer_norm_eps: 1e-5,
        }
    }

    fn patches(&self) -> usize {
        (self.image_size / self.patch_size).pow(2)
    }
}

/// Layer norm over the last dimension from candle ops, so gradients flow through it.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    /// Reads `weight` and `bias` of width `dim`.
    pub fn new(vb: VarBuilder, dim: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: vb.get(dim, "weight")?,
            bias: vb.get(dim, "bias")?,
            eps,
        })
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let n = x.dim(D::Minus1)? as f64;
        let centred = x.broadcast_sub(&(x.sum_keepdim(D::Minus1)? / n)?)?;
        let var = (centred.sqr()?.sum_keepdim(D::Minus1)? / n)?;
        centred
            .broadcast_div(&(var + self.eps)?.sqrt()?)?
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)
    }
}

/// Softmax over the last dimension with a backward (the maximum is a detached constant).
pub fn softmax_last(x: &Tensor) -> Result<Tensor> {
    let m = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&m)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

#[derive(Debug, Clone)]
struct Layer {
    norm1: LayerNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    heads: usize,
}

impl Layer {
    fn new(vb: VarBuilder, d: usize, inner: usize, heads: usize, eps: f64) -> Result<Self> {
        let a = vb.pp("self_attn");
        Ok(Self {
            norm1: LayerNorm::new(vb.pp("layer_norm1"), d, eps)?,
            q: candle_nn::linear(d, d, a.pp("q_proj"))?,
            k: candle_nn::linear(d, d, a.pp("k_proj"))?,
            v: candle_nn::linear(d, d, a.pp("v_proj"))?,
            out: candle_nn::linear(d, d, a.pp("out_proj"))?,
            norm2: LayerNorm::new(vb.pp("layer_norm2"), d, eps)?,
            fc1: candle_nn::linear(d, inner, vb.pp("mlp.fc1"))?,
            fc2: candle_nn::linear(inner, d, vb.pp("mlp.fc2"))?,
            heads,
        })
    }

    fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let hd = d / self.heads;
        let h = self.norm1.forward(x)?;
        let split = |y: Tensor| -> Result<Tensor> {
            y.reshape((b, t, self.heads, hd))?
                .transpose(1, 2)?
                .contiguous()
        };
        // transformers scales the queries before the product; same numbers up to rounding.
        let q = split((self.q.forward(&h)? * (hd as f64).powf(-0.5))?)?;
        let k = split(self.k.forward(&h)?)?;
        let v = split(self.v.forward(&h)?)?;
        let mut scores = q.matmul(&k.t()?)?;
        if let Some(m) = mask {
            scores = scores.broadcast_add(m)?;
        }
        let a = softmax_last(&scores)?
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((b, t, d))?;
        let x = (self.out.forward(&a)? + x)?;
        let h = self.fc1.forward(&self.norm2.forward(&x)?)?;
        // quick_gelu
        let h = (&h * candle_nn::ops::sigmoid(&(&h * 1.702)?)?)?;
        self.fc2.forward(&h)? + x
    }
}

/// CLIP's image tower with the projection: `encode_image`.
#[derive(Debug, Clone)]
pub struct ClipVision {
    config: Config,
    patch_weight: Tensor,
    class_embedding: Tensor,
    position_embedding: Tensor,
    pre_norm: LayerNorm,
    layers: Vec<Layer>,
    post_norm: LayerNorm,
    projection: Linear,
    /// The same weights for the fused CPU tower (CPU `f32` weights only).
    fused: Option<Arc<VitWeights>>,
}

impl ClipVision {
    /// Builds from the root of a `CLIPModel` checkpoint (`vision_model.*`,
    /// `visual_projection.weight`).
    pub fn new(vb: VarBuilder, config: &Config) -> Result<Self> {
        let c = config;
        let d = c.vision_hidden;
        let v = vb.pp("vision_model");
        let e = v.pp("embeddings");
        let p = c.patch_size;
        let layers = (0..c.vision_layers)
            .map(|i| {
                Layer::new(
                    v.pp(format!("encoder.layers.{i}")),
                    d,
                    c.vision_intermediate,
                    c.vision_heads,
                    c.layer_norm_eps,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let mut tower = Self {
            config: c.clone(),
            patch_weight: e.get((d, 3, p, p), "patch_embedding.weight")?,
            class_embedding: e.get(d, "class_embedding")?,
            position_embedding: e.get((c.patches() + 1, d), "position_embedding.weight")?,
            pre_norm: LayerNorm::new(v.pp("pre_layrnorm"), d, c.layer_norm_eps)?,
            layers,
            post_norm: LayerNorm::new(v.pp("post_layernorm"), d, c.layer_norm_eps)?,
            projection: candle_nn::linear_no_bias(d, c.projection_dim, vb.pp("visual_projection"))?,
            fused: None,
        };
        if crate::kernels::fused_cpu(&tower.patch_weight) {
            tower.fused = Some(Arc::new(tower.fused_weights()?));
        }
        Ok(tower)
    }

    /// The weights as flat `f32` vectors for `crate::kernels::vit`.
    fn fused_weights(&self) -> Result<VitWeights> {
        let c = &self.config;
        let flat = |t: &Tensor| -> Result<Vec<f32>> { t.flatten_all()?.to_vec1::<f32>() };
        let norm = |n: &LayerNorm| -> Result<NormWeights> {
            Ok(NormWeights {
                gamma: flat(&n.weight)?,
                beta: flat(&n.bias)?,
            })
        };
        let bias = |l: &Linear| -> Result<Vec<f32>> {
            match l.bias() {
                Some(b) => flat(b),
                None => candle_core::bail!("CLIP vision: a linear layer without bias"),
            }
        };
        let layers = self
            .layers
            .iter()
            .map(|l| {
                let mut qkv_weight = flat(l.q.weight())?;
                qkv_weight.extend(flat(l.k.weight())?);
                qkv_weight.extend(flat(l.v.weight())?);
                let mut qkv_bias = bias(&l.q)?;
                qkv_bias.extend(bias(&l.k)?);
                qkv_bias.extend(bias(&l.v)?);
                Ok(VitLayer {
                    norm1: norm(&l.norm1)?,
                    qkv_weight,
                    qkv_bias,
                    out_weight: flat(l.out.weight())?,
                    out_bias: bias(&l.out)?,
                    norm2: norm(&l.norm2)?,
                    fc1_weight: flat(l.fc1.weight())?,
                    fc1_bias: bias(&l.fc1)?,
                    fc2_weight: flat(l.fc2.weight())?,
                    fc2_bias: bias(&l.fc2)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(VitWeights {
            d: c.vision_hidden,
            inner: c.vision_intermediate,
            heads: c.vision_heads,
            image_size: c.image_size,
            patch: c.patch_size,
            eps: c.layer_norm_eps,
            patch_weight: flat(&self.patch_weight)?,
            class_embedding: flat(&self.class_embedding)?,
            position_embedding: flat(&self.position_embedding)?,
            pre_norm: norm(&self.pre_norm)?,
            layers,
            post_norm: norm(&self.post_norm)?,
            projection: flat(self.projection.weight())?,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Image embeddings (batch, projection_dim), not normalised, for CLIP-normalised images
    /// (batch, 3, image_size, image_size).
    pub fn forward(&self, images: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        let (b, ch, h, w) = images.dims4()?;
        if ch != 3 || h != c.image_size || w != c.image_size {
            candle_core::bail!(
                "CLIP vision expects (b, 3, {s}, {s}), got {:?}",
                images.dims(),
                s = c.image_size
            );
        }
        if let Some(w) = &self.fused {
            if crate::kernels::fused_cpu(images) {
                let op = FusedVision {
                    weights: w.clone(),
                    save: images.track_op(),
                    saved: Arc::new(Mutex::new(None)),
                };
                return images.contiguous()?.apply_op1(op);
            }
        }
        let p = c.patch_size;
        let g = c.image_size / p;
        let d = c.vision_hidden;
        let patches = images
            .reshape((b, 3, g, p, g, p))?
            .permute((0, 2, 4, 1, 3, 5))?
            .reshape((b * g * g, 3 * p * p))?
            .matmul(&self.patch_weight.reshape((d, 3 * p * p))?.t()?)?
            .reshape((b, g * g, d))?;
        let cls = self
            .class_embedding
            .reshape((1, 1, d))?
            .broadcast_as((b, 1, d))?;
        let x = Tensor::cat(&[&cls, &patches], 1)?.broadcast_add(&self.position_embedding)?;
        let mut x = self.pre_norm.forward(&x)?;
        for layer in &self.layers {
            x = layer.forward(&x, None)?;
        }
        let pooled = self.post_norm.forward(&x.narrow(1, 0, 1)?.squeeze(1)?)?;
        self.projection.forward(&pooled)
    }
}

/// The image tower as one CPU op: forward through `kernels::vit`, keeping its activations
/// when the input needs a gradient; the backward gives the input gradient only.
#[derive(Clone)]
struct FusedVision {
    weights: Arc<VitWeights>,
    save: bool,
    saved: Arc<Mutex<Option<VitSaved>>>,
}

impl std::fmt::Debug for FusedVision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FusedVision(save: {})", self.save)
    }
}

impl CustomOp1 for FusedVision {
    fn name(&self) -> &'static str {
        "clip-vision"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("clip-vision: the input must be contiguous");
        };
        let x = &storage.as_slice::<f32>()?[start..end];
        let batch = layout.shape().dims4()?.0;
        let (out, saved) = vit::forward(&self.weights, x, batch, self.save);
        if saved.is_some() {
            *self
                .saved
                .lock()
                .map_err(|_| candle_core::Error::Msg("clip-vision: poisoned lock".into()))? = saved;
        }
        let k = out.len() / batch.max(1);
        Ok((CpuStorage::F32(out), Shape::from((batch, k))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let guard = self
            .saved
            .lock()
            .map_err(|_| candle_core::Error::Msg("clip-vision: poisoned lock".into()))?;
        let Some(saved) = guard.as_ref() else {
            candle_core::bail!("clip-vision: backward without saved activations");
        };
        let dout = grad_res.flatten_all()?.to_vec1::<f32>()?;
        let dx = vit::backward(&self.weights, saved, &dout);
        Ok(Some(Tensor::from_vec(dx, arg.shape(), arg.device())?))
    }
}

/// CLIP's text tower with the projection: `encode_text`.
#[derive(Debug, Clone)]
pub struct ClipText {
    config: Config,
    token_embedding: Tensor,
    position_embedding: Tensor,
    layers: Vec<Layer>,
    final_norm: LayerNorm,
    projection: Linear,
}

impl ClipText {
    /// Builds from the root of a `CLIPModel` checkpoint (`text_model.*`,
    /// `text_projection.weight`).
    pub fn new(vb: VarBuilder, config: &Config) -> Result<Self> {
        let c = config;
        let d = c.text_hidden;
        let t = vb.pp("text_model");
        let layers = (0..c.text_layers)
            .map(|i| {
                Layer::new(
                    t.pp(format!("encoder.layers.{i}")),
                    d,
                    c.text_intermediate,
                    c.text_heads,
                    c.layer_norm_eps,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            config: c.clone(),
            token_embedding: t.get((c.vocab_size, d), "embeddings.token_embedding.weight")?,
            position_embedding: t
                .get((c.max_positions, d), "embeddings.position_embedding.weight")?,
            layers,
            final_norm: LayerNorm::new(t.pp("final_layer_norm"), d, c.layer_norm_eps)?,
            projection: candle_nn::linear_no_bias(d, c.projection_dim, vb.pp("text_projection"))?,
        })
    }

    /// Text embeddings (n, projection_dim), not normalised, one per token sequence. Each
    /// sequence starts with `<|startoftext|>`, ends with `<|endoftext|>` and has no padding;
    /// the embedding is taken at its last token, as CLIP takes it at the end token (the causal
    /// mask makes the padding of shorter sequences irrelevant).
    pub fn forward(&self, sequences: &[Vec<u32>]) -> Result<Tensor> {
        let dev = self.token_embedding.device();
        let n = sequences.len();
        let t = sequences.iter().map(Vec::len).max().unwrap_or(0);
        if n == 0 || t == 0 || t > self.config.max_positions {
            candle_core::bail!("CLIP text: {n} sequences of up to {t} tokens");
        }
        let mut ids = Vec::with_capacity(n * t);
        let mut eos = Vec::with_capacity(n);
        for s in sequences {
            if s.is_empty() {
                candle_core::bail!("CLIP text: empty token sequence");
            }
            eos.push((s.len() - 1 + eos.len() * t) as u32);
            ids.extend(s.iter().copied());
            ids.extend(std::iter::repeat_n(0u32, t - s.len()));
        }
        let d = self.config.text_hidden;
        let ids = Tensor::from_vec(ids, n * t, dev)?;
        let x = self
            .token_embedding
            .index_select(&ids, 0)?
            .reshape((n, t, d))?
            .broadcast_add(&self.position_embedding.narrow(0, 0, t)?)?;
        let mask: Vec<f32> = (0..t)
            .flat_map(|i| (0..t).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
            .collect();
        let mask = Tensor::from_vec(mask, (t, t), dev)?.to_dtype(x.dtype())?;
        let mut x = x;
        for layer in &self.layers {
            x = layer.forward(&x, Some(&mask))?;
        }
        let x = self.final_norm.forward(&x)?.reshape((n * t, d))?;
        let pooled = x.index_select(&Tensor::from_vec(eos, n, dev)?, 0)?;
        self.projection.forward(&pooled)
    }
}

/// CLIPstyler's `clip_normalize`: bicubic `F.interpolate` to `size` (both sides) then CLIP's
/// mean/std, for images (batch, 3, h, w) in [0, 1]. Differentiable.
pub fn clip_normalize(images: &Tensor, size: usize) -> Result<Tensor> {
    let x = crate::augment::interpolate_bicubic(images, size, size)?;
    let dev = images.device();
    // OpenAI CLIP's constants, as f64 then rounded like PyTorch's float32 tensors.
    let mean = Tensor::new(&[0.48145466f64, 0.4578275, 0.40821073], dev)?
        .reshape((1, 3, 1, 1))?
        .to_dtype(images.dtype())?;
    let std = Tensor::new(&[0.26862954f64, 0.26130258, 0.27577711], dev)?
        .reshape((1, 3, 1, 1))?
        .to_dtype(images.dtype())?;
    x.broadcast_sub(&mean)?.broadcast_div(&std)
}

/// Both towers of one checkpoint.
#[derive(Debug, Clone)]
pub struct ClipModel {
    /// Image tower.
    pub vision: ClipVision,
    /// Text tower.
    pub text: ClipText,
}

impl ClipModel {
    /// Builds both towers from the root of a `CLIPModel` checkpoint.
    pub fn new(vb: VarBuilder, config: &Config) -> Result<Self> {
        Ok(Self {
            vision: ClipVision::new(vb.clone(), config)?,
            text: ClipText::new(vb, config)?,
        })
    }
}

/// Loads a safetensors `CLIPModel` checkpoint in f32.
pub fn load(path: &std::path::Path, config: &Config, device: &Device) -> Result<ClipModel> {
    // SAFETY: the file is memory-mapped read-only and not modified while mapped.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[path], DType::F32, device)? };
    ClipModel::new(vb, config)
}
