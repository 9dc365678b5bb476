//! Finding and loading diffusion weights: diffusers folders (`unet/`, `vae/`, `text_encoder/`,
//! `tokenizer/`, `scheduler/`), Hugging Face repo ids (read from the standard HF cache, downloaded
//! into it when allowed), fp16 variants, and the EmoEditor authors' `model_ip2p.pt` (a PyTorch
//! state dict with `unet.*` and `auto_encoder.*` keys). Every file used is reported with its
//! SHA-256 for `run.json`.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use serde::de::DeserializeOwned;

pub mod checkpoint;
pub mod clip_layout;
pub mod file;

pub use file::WeightFile;

use crate::clip_text::{ClipTextConfig, ClipTextEncoder};
use crate::error::Cause;
use crate::pipeline::EditPipeline;
use crate::tokenizer::{ClipTokenizer, TokenizerError};
use crate::unet::{UNet, UNetConfig};
use crate::vae::{AutoencoderKl, VaeConfig};

/// Why weights could not be found or loaded. Messages name the file (and tensor).
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// A file or folder does not exist.
    #[error("weights: {path}: not found{hint}")]
    NotFound {
        /// What was looked for.
        path: PathBuf,
        /// Extra advice (which names were tried, how to get the weights).
        hint: String,
    },
    /// Reading failed.
    #[error("weights: {path}: cannot read")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A config file is not what it should be.
    #[error("weights: {path}: invalid config")]
    Config {
        /// The file.
        path: PathBuf,
        /// The parser's error, with line and column.
        source: serde_json::Error,
    },
    /// A tensor is missing or misshapen, or the file is not a checkpoint.
    #[error("weights: {path}: cannot load")]
    Load {
        /// The checkpoint file.
        path: PathBuf,
        /// candle's error, naming the tensor.
        source: Cause<candle_core::Error>,
    },
    /// The tokenizer files are broken.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// A Hugging Face repo id is not cached and may not be downloaded.
    #[error("weights: {repo}: {message}")]
    Hub {
        /// The repo id.
        repo: String,
        /// What is missing and what to do.
        message: String,
    },
    /// The Hugging Face client failed (starting it, or downloading a file).
    #[error("weights: {repo}: {what}")]
    Download {
        /// The repo id.
        repo: String,
        /// What was being done, naming the file.
        what: String,
        /// The client's error.
        source: Cause<hf_hub::api::sync::ApiError>,
    },
}

impl WeightsError {
    /// A [`WeightsError::Load`] of `path` caused by candle's `e`.
    pub fn load(path: &Path, e: candle_core::Error) -> Self {
        WeightsError::Load {
            path: path.to_path_buf(),
            source: Cause::new(e),
        }
    }
}

/// Result of this module.
pub type Result<T> = std::result::Result<T, WeightsError>;

/// Hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> Result<String> {
    crate::weights::file::sha256_file(path).map_err(|source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn record(role: &str, path: &Path) -> Result<WeightFile> {
    Ok(WeightFile {
        role: role.to_string(),
        path: path.display().to_string(),
        sha256: sha256_file(path)?,
        stand_in: false,
    })
}

/// Whether `spec` looks like a Hugging Face repo id (`owner/name`) rather than a path.
pub fn is_repo_id(spec: &str) -> bool {
    let parts: Vec<&str> = spec.split('/').collect();
    parts.len() == 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p != &"."
                && p != &".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
}

/// The files of a diffusers InstructPix2Pix folder that a run reads, for a weight `variant`
/// (`Some("fp16")` or `None`).
pub fn pipeline_files(variant: Option<&str>) -> Vec<String> {
    let v = |stem: &str| match variant {
        Some(v) => format!("{stem}.{v}.safetensors"),
        None => format!("{stem}.safetensors"),
    };
    vec![
        "model_index.json".into(),
        "unet/config.json".into(),
        format!("unet/{}", v("diffusion_pytorch_model")),
        "vae/config.json".into(),
        format!("vae/{}", v("diffusion_pytorch_model")),
        "text_encoder/config.json".into(),
        format!("text_encoder/{}", v("model")),
        "tokenizer/vocab.json".into(),
        "tokenizer/merges.txt".into(),
        "tokenizer/tokenizer_config.json".into(),
        "tokenizer/special_tokens_map.json".into(),
        "scheduler/scheduler_config.json".into(),
    ]
}

/// Resolves a model given as a local folder or a Hugging Face repo id to a local folder.
///
/// A repo id is looked up in the standard Hugging Face cache (`$HF_HOME/hub`, by default
/// `~/.cache/huggingface/hub`); with `download`, missing `files` are fetched into that cache.
/// Offline use never touches the network when the files are cached.
pub fn resolve_model_dir(spec: &str, files: &[String], download: bool) -> Result<PathBuf> {
    resolve_model_dir_in(&hf_hub::Cache::from_env(), spec, files, download)
}

/// [`resolve_model_dir`] with an explicit Hugging Face cache.
pub fn resolve_model_dir_in(
    cache: &hf_hub::Cache,
    spec: &str,
    files: &[String],
    download: bool,
) -> Result<PathBuf> {
    let path = Path::new(spec);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    if !is_repo_id(spec) {
        return Err(WeightsError::NotFound {
            path: path.to_path_buf(),
            hint: " (give a local folder or a Hugging Face repo id such as \
                   timbrooks/instruct-pix2pix)"
                .into(),
        });
    }
    let cached = cache.model(spec.to_string());
    let mut root: Option<PathBuf> = None;
    let mut missing = Vec::new();
    for f in files {
        match cached.get(f) {
            Some(p) => {
                if root.is_none() {
                    root = snapshot_root(&p, f);
                }
            }
            None => missing.push(f.clone()),
        }
    }
    if !missing.is_empty() {
        if !download {
            return Err(WeightsError::Hub {
                repo: spec.to_string(),
                message: format!(
                    "{} file(s) not in the Hugging Face cache at {} (first: {}); set \
                     \"download\": true in --options when online, or pass a local folder",
                    missing.len(),
                    cache.path().display(),
                    missing[0]
                ),
            });
        }
        let api = hf_hub::api::sync::ApiBuilder::from_cache(cache.clone())
            .with_progress(true)
            .build()
            .map_err(|e| WeightsError::Download {
                repo: spec.to_string(),
                what: "cannot start the Hugging Face client".into(),
                source: Cause::new(e),
            })?;
        let repo = api.model(spec.to_string());
        for f in &missing {
            let p = repo.get(f).map_err(|e| WeightsError::Download {
                repo: spec.to_string(),
                what: format!("downloading {f}"),
                source: Cause::new(e),
            })?;
            if root.is_none() {
                root = snapshot_root(&p, f);
            }
        }
    }
    root.ok_or_else(|| WeightsError::Hub {
        repo: spec.to_string(),
        message: "no files requested".into(),
    })
}

/// The snapshot folder that `file` (relative name `rel`) lives in.
fn snapshot_root(file: &Path, rel: &str) -> Option<PathBuf> {
    let mut root = file.to_path_buf();
    for _ in Path::new(rel).components() {
        root = root.parent()?.to_path_buf();
    }
    Some(root)
}

/// Reads a JSON config (unknown keys ignored, missing ones defaulted by the type).
pub fn read_config<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            WeightsError::NotFound {
                path: path.to_path_buf(),
                hint: String::new(),
            }
        } else {
            WeightsError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    serde_json::from_str(&text).map_err(|source| WeightsError::Config {
        path: path.to_path_buf(),
        source,
    })
}

/// The checkpoint of one component in a diffusers folder: the `variant` safetensors if asked
/// for, else the plain safetensors, else the PyTorch `.bin`.
pub fn component_file(dir: &Path, stem: &str, variant: Option<&str>) -> Result<PathBuf> {
    let mut names = Vec::new();
    if let Some(v) = variant {
        names.push(format!("{stem}.{v}.safetensors"));
    }
    names.push(format!("{stem}.safetensors"));
    if let Some(v) = variant {
        names.push(format!("{stem}.{v}.bin"));
    }
    names.push(format!("{stem}.bin"));
    names
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| WeightsError::NotFound {
            path: dir.join(&names[0]),
            hint: format!(" (also tried {})", names[1..].join(", ")),
        })
}

/// A variable builder over one checkpoint file (safetensors, or a PyTorch zip/pickle file),
/// converting every tensor to `dtype` on `device`.
pub fn var_builder(path: &Path, dtype: DType, device: &Device) -> Result<VarBuilder<'static>> {
    let is_safetensors = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
    let load = |e: candle_core::Error| WeightsError::load(path, e);
    if !path.is_file() {
        return Err(WeightsError::NotFound {
            path: path.to_path_buf(),
            hint: String::new(),
        });
    }
    if is_safetensors {
        // SAFETY: the file is memory-mapped read-only; like every safetensors loader we assume no
        // other process truncates it while the weights are being copied out.
        unsafe { VarBuilder::from_mmaped_safetensors(&[path], dtype, device) }.map_err(load)
    } else {
        VarBuilder::from_pth(path, dtype, device).map_err(load)
    }
}

/// Builds a model, turning candle's "cannot find tensor" / "shape mismatch" errors into ones
/// that name the file.
fn build<T>(path: &Path, f: impl FnOnce() -> candle_core::Result<T>) -> Result<T> {
    f().map_err(|e| WeightsError::load(path, e))
}

/// candle appends a backtrace to its messages when `RUST_BACKTRACE` is set: keep the cause.
pub fn first_line(e: &dyn std::fmt::Display) -> String {
    let text = e.to_string();
    text.lines()
        .next()
        .unwrap_or_default()
        .trim_end()
        .to_string()
}

/// Where the networks run and in which precision, and which weight variant to read.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The device.
    pub device: Device,
    /// The networks' dtype.
    pub dtype: DType,
    /// The weight variant in diffusers folders (`fp16`), if any.
    pub variant: Option<String>,
}

/// Loads the UNet and VAE of a diffusers InstructPix2Pix folder.
pub fn load_pipeline(dir: &Path, opts: &LoadOptions) -> Result<(EditPipeline, Vec<WeightFile>)> {
    let variant = opts.variant.as_deref();
    let unet_cfg: UNetConfig = read_config(&dir.join("unet/config.json"))?;
    let vae_cfg: VaeConfig = read_config(&dir.join("vae/config.json"))?;
    let unet_file = component_file(&dir.join("unet"), "diffusion_pytorch_model", variant)?;
    let vae_file = component_file(&dir.join("vae"), "diffusion_pytorch_model", variant)?;
    let vb = var_builder(&unet_file, opts.dtype, &opts.device)?;
    let unet = build(&unet_file, || UNet::new(vb, &unet_cfg))?;
    let vb = var_builder(&vae_file, opts.dtype, &opts.device)?;
    let vae = build(&vae_file, || AutoencoderKl::new(vb, &vae_cfg))?;
    let files = vec![record("unet", &unet_file)?, record("vae", &vae_file)?];
    Ok((pipeline(unet, vae, opts), files))
}

fn pipeline(unet: UNet, vae: AutoencoderKl, opts: &LoadOptions) -> EditPipeline {
    EditPipeline {
        unet,
        vae,
        device: opts.device.clone(),
        dtype: opts.dtype,
    }
}

/// Loads the UNet and VAE from the EmoEditor authors' `model_ip2p.pt` (`unet.*`,
/// `auto_encoder.*`), with the given architectures (InstructPix2Pix's by default).
pub fn load_authors_pipeline(
    checkpoint: &Path,
    unet_cfg: &UNetConfig,
    vae_cfg: &VaeConfig,
    opts: &LoadOptions,
) -> Result<(EditPipeline, Vec<WeightFile>)> {
    let vb = var_builder(checkpoint, opts.dtype, &opts.device)?;
    let unet = build(checkpoint, || UNet::new(vb.pp("unet"), unet_cfg))?;
    let vae = build(checkpoint, || {
        AutoencoderKl::new(vb.pp("auto_encoder"), vae_cfg)
    })?;
    Ok((
        pipeline(unet, vae, opts),
        vec![record("unet+vae (model_ip2p)", checkpoint)?],
    ))
}

/// Loads the CLIP text encoder and tokenizer of a diffusers folder.
pub fn load_text_encoder(
    dir: &Path,
    opts: &LoadOptions,
) -> Result<(ClipTextEncoder, ClipTokenizer, Vec<WeightFile>)> {
    let cfg: ClipTextConfig = read_config(&dir.join("text_encoder/config.json"))?;
    let file = component_file(&dir.join("text_encoder"), "model", opts.variant.as_deref())?;
    let vb = var_builder(&file, opts.dtype, &opts.device)?;
    let encoder = build(&file, || ClipTextEncoder::new(vb, &cfg))?;
    let tokenizer = ClipTokenizer::from_dir(&dir.join("tokenizer"))?;
    let mut files = vec![record("text_encoder", &file)?];
    for name in ["vocab.json", "merges.txt"] {
        files.push(record("tokenizer", &dir.join("tokenizer").join(name))?);
    }
    Ok((encoder, tokenizer, files))
}
