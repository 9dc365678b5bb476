//! CLIP checkpoints in either of the two layouts they are published in, read into the Hugging
//! Face `CLIPModel` names that [`crate::clip_vision`] builds from.
//!
//! - Hugging Face (`openai/clip-vit-base-patch32`'s `model.safetensors`): `vision_model.*`,
//!   `text_model.*`, `visual_projection.weight`, `text_projection.weight`. Read as they are.
//! - OpenAI / open_clip (`clip.load(...).state_dict()` saved with `torch.save` or safetensors,
//!   open_clip's `open_clip_pytorch_model.bin` of the `openai` tags): `visual.*`,
//!   `transformer.resblocks.*`, `token_embedding.weight`, `ln_final.*`, `text_projection`.
//!   Renamed tensor by tensor as transformers' `convert_clip_original_pytorch_to_hf.py` does:
//!   each block's fused `attn.in_proj_weight`/`in_proj_bias` split into q, k and v (in that
//!   order, as `nn.MultiheadAttention` stacks them), and the two projections, which OpenAI stores
//!   as (in, out) matrices applied as `x @ proj`, transposed into `nn.Linear`'s (out, in).
//!
//! OpenAI's own `ViT-B-32.pt` is a TorchScript archive, not a state dict; save its
//! `state_dict()` (or use open_clip's file) to read it here.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::checkpoint::{load_state_dict, CheckpointError, StateDict};
use super::{var_builder, WeightsError};
use crate::clip_vision::Config;
use crate::error::Cause;

/// The key by which each layout is recognised.
const HF_PROBE: &str = "vision_model.embeddings.class_embedding";
const OPENAI_PROBE: &str = "visual.class_embedding";

/// Which naming a CLIP checkpoint uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClipLayout {
    /// transformers' `CLIPModel` names.
    HuggingFace,
    /// OpenAI CLIP / open_clip names.
    OpenAi,
}

impl ClipLayout {
    /// The name recorded in `run.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            ClipLayout::HuggingFace => "huggingface",
            ClipLayout::OpenAi => "openai",
        }
    }
}

/// Why a CLIP checkpoint could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ClipLayoutError {
    /// The file could not be read as a checkpoint, or a tensor is missing or misshapen.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The Hugging Face file could not be opened.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// Neither layout's keys are there.
    #[error("{path}: not a CLIP checkpoint: neither '{HF_PROBE}' (Hugging Face) nor '{OPENAI_PROBE}' (OpenAI / open_clip) is in it")]
    Unknown {
        /// The file.
        path: std::path::PathBuf,
    },
    /// Splitting or transposing a tensor failed.
    #[error("{path}: tensor '{tensor}' cannot be converted to the Hugging Face layout")]
    Convert {
        /// The file.
        path: std::path::PathBuf,
        /// The source key.
        tensor: String,
        /// candle's error.
        source: Box<Cause<candle_core::Error>>,
    },
}

/// A variable builder with Hugging Face `CLIPModel` names over a CLIP checkpoint in either
/// layout, and the layout it found. Hugging Face safetensors files are memory-mapped as they
/// are; everything else is read whole (the OpenAI layout must be renamed anyway).
pub fn clip_var_builder(
    path: &Path,
    config: &Config,
    dtype: DType,
    device: &Device,
) -> Result<(VarBuilder<'static>, ClipLayout), ClipLayoutError> {
    let is_safetensors = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
    if is_safetensors && safetensors_has(path, HF_PROBE) {
        return Ok((var_builder(path, dtype, device)?, ClipLayout::HuggingFace));
    }
    let dict = load_state_dict(path)?;
    if dict.tensors.contains_key(HF_PROBE) {
        let vb = VarBuilder::from_tensors(dict.tensors, dtype, device);
        return Ok((vb, ClipLayout::HuggingFace));
    }
    if !dict.tensors.contains_key(OPENAI_PROBE) {
        return Err(ClipLayoutError::Unknown {
            path: path.to_path_buf(),
        });
    }
    let tensors = openai_to_hf(&dict, config)?;
    Ok((
        VarBuilder::from_tensors(tensors, dtype, device),
        ClipLayout::OpenAi,
    ))
}

/// Whether a safetensors file has `key` (false when it cannot be opened: the full load that
/// follows then reports why).
fn safetensors_has(path: &Path, key: &str) -> bool {
    // SAFETY: read-only mapping of a file nobody modifies while the header is read.
    unsafe { candle_core::safetensors::MmapedSafetensors::new(path) }
        .map(|st| st.tensors().iter().any(|(name, _)| name == key))
        .unwrap_or(false)
}

/// Renames an OpenAI-layout state dict into Hugging Face names, checking that every tensor the
/// model reads is there (a missing one is named by its OpenAI key).
pub fn openai_to_hf(
    dict: &StateDict,
    config: &Config,
) -> Result<HashMap<String, Tensor>, ClipLayoutError> {
    let mut out = HashMap::new();
    let take = |key: &str| -> Result<Tensor, ClipLayoutError> {
        dict.tensors.get(key).cloned().ok_or_else(|| {
            ClipLayoutError::Checkpoint(CheckpointError::MissingTensor {
                path: dict.path.clone(),
                tensor: key.to_string(),
            })
        })
    };
    let convert = |key: &str, e: candle_core::Error| ClipLayoutError::Convert {
        path: dict.path.clone(),
        tensor: key.to_string(),
        source: Box::new(Cause::new(e)),
    };
    let transposed = |key: &str| -> Result<Tensor, ClipLayoutError> {
        take(key)?
            .t()
            .and_then(|t| t.contiguous())
            .map_err(|e| convert(key, e))
    };

    let towers = [
        (
            "visual.transformer",
            "vision_model.encoder",
            config.vision_layers,
        ),
        ("transformer", "text_model.encoder", config.text_layers),
    ];
    for (src, dst, layers) in towers {
        for i in 0..layers {
            let s = format!("{src}.resblocks.{i}");
            let d = format!("{dst}.layers.{i}");
            let renames = [
                ("ln_1", "layer_norm1"),
                ("ln_2", "layer_norm2"),
                ("attn.out_proj", "self_attn.out_proj"),
                ("mlp.c_fc", "mlp.fc1"),
                ("mlp.c_proj", "mlp.fc2"),
            ];
            for (from, to) in renames {
                for p in ["weight", "bias"] {
                    out.insert(format!("{d}.{to}.{p}"), take(&format!("{s}.{from}.{p}"))?);
                }
            }
            for (fused, p) in [("in_proj_weight", "weight"), ("in_proj_bias", "bias")] {
                let key = format!("{s}.attn.{fused}");
                let t = take(&key)?;
                let parts = t.chunk(3, 0).map_err(|e| convert(&key, e))?;
                for (part, name) in parts.into_iter().zip(["q_proj", "k_proj", "v_proj"]) {
                    out.insert(format!("{d}.self_attn.{name}.{p}"), part);
                }
            }
        }
    }

    let plain = [
        (
            "visual.class_embedding",
            "vision_model.embeddings.class_embedding",
        ),
        (
            "visual.positional_embedding",
            "vision_model.embeddings.position_embedding.weight",
        ),
        (
            "visual.conv1.weight",
            "vision_model.embeddings.patch_embedding.weight",
        ),
        ("visual.ln_pre.weight", "vision_model.pre_layrnorm.weight"),
        ("visual.ln_pre.bias", "vision_model.pre_layrnorm.bias"),
        (
            "visual.ln_post.weight",
            "vision_model.post_layernorm.weight",
        ),
        ("visual.ln_post.bias", "vision_model.post_layernorm.bias"),
        (
            "token_embedding.weight",
            "text_model.embeddings.token_embedding.weight",
        ),
        (
            "positional_embedding",
            "text_model.embeddings.position_embedding.weight",
        ),
        ("ln_final.weight", "text_model.final_layer_norm.weight"),
        ("ln_final.bias", "text_model.final_layer_norm.bias"),
    ];
    for (from, to) in plain {
        out.insert(to.to_string(), take(from)?);
    }
    out.insert(
        "visual_projection.weight".into(),
        transposed("visual.proj")?,
    );
    out.insert(
        "text_projection.weight".into(),
        transposed("text_projection")?,
    );
    Ok(out)
}
