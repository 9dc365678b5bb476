//! The CLIP text encoder of Stable Diffusion 1.x and InstructPix2Pix (`CLIPTextModel` of Hugging
//! Face transformers, ViT-L/14 text tower): token and position embeddings, pre-norm transformer
//! layers with a causal mask, final layer norm. The pipelines use its last hidden state.
//!
//! Radford et al., "Learning Transferable Visual Models From Natural Language Supervision", ICML
//! 2021. Upstream: `transformers/models/clip/modeling_clip.py`. Tensor names follow the
//! `text_encoder/model.safetensors` of diffusers folders (`text_model.encoder.layers.0.mlp.fc1`).

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::layers::{attention, layer_norm, linear, Linear};

/// The MLP activation of the text encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClipActivation {
    /// x * sigmoid(1.702 x) (OpenAI CLIP, SD 1.x).
    QuickGelu,
    /// Exact GELU (OpenCLIP, SD 2.x).
    Gelu,
}

/// The architecture of a [`ClipTextEncoder`], read from a transformers `text_encoder/config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClipTextConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width of the token embeddings.
    pub hidden_size: usize,
    /// Width of the MLP.
    pub intermediate_size: usize,
    /// Transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Context length.
    pub max_position_embeddings: usize,
    /// MLP activation.
    pub hidden_act: ClipActivation,
    /// Layer-norm epsilon.
    pub layer_norm_eps: f64,
}

impl Default for ClipTextConfig {
    fn default() -> Self {
        Self::vit_l_14()
    }
}

impl ClipTextConfig {
    /// `openai/clip-vit-large-patch14`'s text tower, as in SD 1.5 and InstructPix2Pix.
    pub fn vit_l_14() -> Self {
        Self {
            vocab_size: 49408,
            hidden_size: 768,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            max_position_embeddings: 77,
            hidden_act: ClipActivation::QuickGelu,
            layer_norm_eps: 1e-5,
        }
    }
}

#[derive(Debug, Clone)]
struct EncoderLayer {
    norm1: candle_nn::LayerNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    norm2: candle_nn::LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

/// The text encoder.
#[derive(Debug, Clone)]
pub struct ClipTextEncoder {
    config: ClipTextConfig,
    token_embedding: Tensor,
    position_embedding: Tensor,
    layers: Vec<EncoderLayer>,
    final_norm: candle_nn::LayerNorm,
}

impl ClipTextEncoder {
    /// Builds the encoder from `vb`, the root of a checkpoint whose keys start with
    /// `text_model.` (the published SD 1.x files) or with `embeddings.` / `encoder.` (what
    /// transformers 5 writes).
    pub fn new(vb: VarBuilder, config: &ClipTextConfig) -> Result<Self> {
        let vb = if vb.contains_tensor("embeddings.token_embedding.weight") {
            vb
        } else {
            vb.pp("text_model")
        };
        let d = config.hidden_size;
        let eps = config.layer_norm_eps;
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let l = vb.pp(format!("encoder.layers.{i}"));
                let a = l.pp("self_attn");
                Ok(EncoderLayer {
                    norm1: layer_norm(l.pp("layer_norm1"), d, eps)?,
                    q: linear(a.pp("q_proj"), d, d, true)?,
                    k: linear(a.pp("k_proj"), d, d, true)?,
                    v: linear(a.pp("v_proj"), d, d, true)?,
                    out: linear(a.pp("out_proj"), d, d, true)?,
                    norm2: layer_norm(l.pp("layer_norm2"), d, eps)?,
                    fc1: linear(l.pp("mlp.fc1"), d, config.intermediate_size, true)?,
                    fc2: linear(l.pp("mlp.fc2"), config.intermediate_size, d, true)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            config: config.clone(),
            token_embedding: vb.get((config.vocab_size, d), "embeddings.token_embedding.weight")?,
            position_embedding: vb.get(
                (config.max_position_embeddings, d),
                "embeddings.position_embedding.weight",
            )?,
            layers,
            final_norm: layer_norm(vb.pp("final_layer_norm"), d, eps)?,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &ClipTextConfig {
        &self.config
    }

    /// The last hidden state (batch, tokens, hidden) for token ids (batch, tokens).
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let tokens = self
            .token_embedding
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, t, self.config.hidden_size))?;
        let mut x = tokens.broadcast_add(&self.position_embedding.narrow(0, 0, t)?)?;
        for layer in &self.layers {
            let h = layer.norm1.forward(&x)?;
            let a = attention(
                &layer.q.forward(&h)?,
                &layer.k.forward(&h)?,
                &layer.v.forward(&h)?,
                self.config.num_attention_heads,
                true,
            )?;
            x = (layer.out.forward(&a)? + x)?;
            let h = layer.fc1.forward(&layer.norm2.forward(&x)?)?;
            let h = match self.config.hidden_act {
                ClipActivation::QuickGelu => (&h * candle_nn::ops::sigmoid(&(&h * 1.702)?)?)?,
                ClipActivation::Gelu => h.gelu_erf()?,
            };
            x = (layer.fc2.forward(&h)? + x)?;
        }
        self.final_norm.forward(&x)
    }

    /// Width of the output embeddings.
    pub fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }
}
