//! BLIP image captioning (`Salesforce/blip-image-captioning-large` and checkpoints with its
//! layout and key names) on candle-transformers' `blip` model, with transformers'
//! `BlipImageProcessor` (Pillow bicubic resize to the vision tower's size, rescale 1/255, CLIP
//! mean/std) and unconditional greedy decoding as `BlipForConditionalGeneration.generate`: start
//! from `[DEC]` (`bos_token_id`), stop at `[SEP]` (`sep_token_id`), at most the generation
//! config's `max_length` new tokens, decode skipping special tokens with the checkpoint's
//! `tokenizer.json`.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::blip;
use image::RgbImage;
use serde::Deserialize;
use tokenizers::Tokenizer;

/// CLIP's normalisation (BLIP's processor defaults).
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// CLIP's standard deviations.
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// Why BLIP could not be loaded or run; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum BlipError {
    /// A file of the checkpoint is missing or unreadable.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// candle failed (missing tensor, shape mismatch, ...).
    #[error("{path}")]
    Candle {
        /// The weights file.
        path: PathBuf,
        /// candle's error.
        source: candle_core::Error,
    },
    /// The image handed to the processor is not the model's square size.
    #[error("BLIP: image is {width}x{height}, the processor expects {expected}x{expected} (resize first)")]
    ImageSize {
        /// The model's side.
        expected: u32,
        /// The image's width.
        width: u32,
        /// The image's height.
        height: u32,
    },
}

#[derive(Debug, Deserialize, Default)]
struct TextCfg {
    vocab_size: Option<usize>,
    hidden_size: Option<usize>,
    encoder_hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    projection_dim: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    max_position_embeddings: Option<usize>,
    layer_norm_eps: Option<f64>,
    bos_token_id: Option<u32>,
    sep_token_id: Option<u32>,
}

#[derive(Debug, Deserialize, Default)]
struct VisionCfg {
    hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    projection_dim: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    image_size: Option<usize>,
    patch_size: Option<usize>,
    layer_norm_eps: Option<f64>,
}

#[derive(Debug, Deserialize, Default)]
struct HfConfig {
    #[serde(default)]
    text_config: TextCfg,
    #[serde(default)]
    vision_config: VisionCfg,
    projection_dim: Option<usize>,
    image_text_hidden_size: Option<usize>,
}

#[derive(Debug, Deserialize, Default)]
struct GenCfg {
    max_length: Option<usize>,
    max_new_tokens: Option<usize>,
}

/// The checkpoint's settings that decoding needs.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeSettings {
    /// `[DEC]`, the first decoder token.
    pub bos: u32,
    /// `[SEP]`, the stop token.
    pub sep: u32,
    /// New tokens at most (`max_new_tokens`, else `max_length`, else 20). transformers 5.24's
    /// `generate` on BLIP returns `[DEC]` plus `max_length` new tokens (measured on the fixture).
    pub max_new_tokens: usize,
}

/// The published checkpoint, the LMS baseline's default captioner.
pub const DEFAULT_REPO: &str = "Salesforce/blip-image-captioning-large";

/// The files of a checkpoint folder that [`BlipCaptioner::load`] needs (`generation_config.json`
/// is read when the folder has it).
pub const CHECKPOINT_FILES: &[&str] = &["config.json", "model.safetensors", "tokenizer.json"];

/// A BLIP checkpoint given as a local folder or a Hugging Face repo id (such as
/// [`DEFAULT_REPO`]) as a local folder: a repo id is read from the standard Hugging Face cache,
/// and with `download` its missing [`CHECKPOINT_FILES`] are fetched into it (the same resolver as
/// InstructPix2Pix's weights, [`crate::weights::resolve_model_dir`]).
pub fn resolve_checkpoint(spec: &str, download: bool) -> crate::weights::Result<PathBuf> {
    resolve_checkpoint_in(&hf_hub::Cache::from_env(), spec, download)
}

/// [`resolve_checkpoint`] with an explicit Hugging Face cache.
pub fn resolve_checkpoint_in(
    cache: &hf_hub::Cache,
    spec: &str,
    download: bool,
) -> crate::weights::Result<PathBuf> {
    let files: Vec<String> = CHECKPOINT_FILES.iter().map(|f| f.to_string()).collect();
    crate::weights::resolve_model_dir_in(cache, spec, &files, download)
}

/// A loaded BLIP captioner.
pub struct BlipCaptioner {
    model: blip::BlipForConditionalGeneration,
    tokenizer: Tokenizer,
    image_size: u32,
    settings: DecodeSettings,
    device: Device,
    weights: PathBuf,
}

fn read_json<T: for<'de> Deserialize<'de> + Default>(
    path: &Path,
    required: bool,
) -> Result<T, BlipError> {
    if !path.is_file() && !required {
        return Ok(T::default());
    }
    let text = std::fs::read_to_string(path).map_err(|e| BlipError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| BlipError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

impl BlipCaptioner {
    /// Loads a checkpoint folder (`config.json`, `model.safetensors`, `tokenizer.json`, optional
    /// `generation_config.json`); missing config fields take `image_captioning_large`'s values.
    pub fn load(dir: &Path, device: &Device) -> Result<Self, BlipError> {
        let hf: HfConfig = read_json(&dir.join("config.json"), true)?;
        let gen: GenCfg = read_json(&dir.join("generation_config.json"), false)?;
        let mut cfg = blip::Config::image_captioning_large();
        let (t, v) = (&hf.text_config, &hf.vision_config);
        let tc = &mut cfg.text_config;
        tc.vocab_size = t.vocab_size.unwrap_or(tc.vocab_size);
        tc.hidden_size = t.hidden_size.unwrap_or(tc.hidden_size);
        tc.encoder_hidden_size = t.encoder_hidden_size.unwrap_or(tc.encoder_hidden_size);
        tc.intermediate_size = t.intermediate_size.unwrap_or(tc.intermediate_size);
        tc.projection_dim = t.projection_dim.unwrap_or(tc.projection_dim);
        tc.num_hidden_layers = t.num_hidden_layers.unwrap_or(tc.num_hidden_layers);
        tc.num_attention_heads = t.num_attention_heads.unwrap_or(tc.num_attention_heads);
        tc.max_position_embeddings = t
            .max_position_embeddings
            .unwrap_or(tc.max_position_embeddings);
        tc.layer_norm_eps = t.layer_norm_eps.unwrap_or(tc.layer_norm_eps);
        let vc = &mut cfg.vision_config;
        vc.hidden_size = v.hidden_size.unwrap_or(vc.hidden_size);
        vc.intermediate_size = v.intermediate_size.unwrap_or(vc.intermediate_size);
        vc.projection_dim = v.projection_dim.unwrap_or(vc.projection_dim);
        vc.num_hidden_layers = v.num_hidden_layers.unwrap_or(vc.num_hidden_layers);
        vc.num_attention_heads = v.num_attention_heads.unwrap_or(vc.num_attention_heads);
        vc.image_size = v.image_size.unwrap_or(vc.image_size);
        vc.patch_size = v.patch_size.unwrap_or(vc.patch_size);
        vc.layer_norm_eps = v.layer_norm_eps.unwrap_or(vc.layer_norm_eps);
        cfg.projection_dim = hf.projection_dim.unwrap_or(cfg.projection_dim);
        cfg.image_text_hidden_size = hf
            .image_text_hidden_size
            .unwrap_or(cfg.image_text_hidden_size);
        let settings = DecodeSettings {
            bos: t.bos_token_id.unwrap_or(30522),
            sep: t.sep_token_id.unwrap_or(102),
            max_new_tokens: gen.max_new_tokens.or(gen.max_length).unwrap_or(20),
        };
        let weights = dir.join("model.safetensors");
        if !weights.is_file() {
            return Err(BlipError::File {
                path: weights,
                reason: "not found (BLIP needs model.safetensors)".into(),
            });
        }
        let candle = |source| BlipError::Candle {
            path: weights.clone(),
            source,
        };
        // SAFETY: the file is memory-mapped read-only and not modified while loaded.
        let vb = unsafe {
            VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, device).map_err(candle)?
        };
        let model = blip::BlipForConditionalGeneration::new(&cfg, vb).map_err(candle)?;
        let tok_path = dir.join("tokenizer.json");
        let tokenizer = Tokenizer::from_file(&tok_path).map_err(|e| BlipError::File {
            path: tok_path.clone(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            model,
            tokenizer,
            image_size: cfg.vision_config.image_size as u32,
            settings,
            device: device.clone(),
            weights,
        })
    }

    /// The weights file.
    pub fn weights_path(&self) -> &Path {
        &self.weights
    }

    /// The side the processor resizes images to (384 for the published checkpoints).
    pub fn image_size(&self) -> u32 {
        self.image_size
    }

    /// Decoding settings read from the checkpoint.
    pub fn settings(&self) -> &DecodeSettings {
        &self.settings
    }

    fn candle(&self, source: candle_core::Error) -> BlipError {
        BlipError::Candle {
            path: self.weights.clone(),
            source,
        }
    }

    /// `BlipImageProcessor` after its resize: (1, 3, S, S) f32, rescaled and CLIP-normalised.
    /// `img` must already be [`Self::image_size`] square (the caller resizes it with Pillow's
    /// bicubic filter, as transformers does: `baselines::lms` uses the core's exact Pillow resize).
    pub fn preprocess(&self, img: &RgbImage) -> Result<Tensor, BlipError> {
        let s = self.image_size;
        if img.dimensions() != (s, s) {
            return Err(BlipError::ImageSize {
                expected: s,
                width: img.width(),
                height: img.height(),
            });
        }
        normalise(img, &self.device).map_err(|e| self.candle(e))
    }

    /// The vision tower's last hidden state (1, patches + 1, hidden).
    pub fn vision_features(&self, pixels: &Tensor) -> Result<Tensor, BlipError> {
        self.model
            .vision_model()
            .forward(pixels)
            .map_err(|e| self.candle(e))
    }

    /// The text decoder's logits (1, seq, vocab) for `ids` on `features` (KV cache reset).
    pub fn decoder_logits(&mut self, ids: &[u32], features: &Tensor) -> Result<Tensor, BlipError> {
        self.model.reset_kv_cache();
        let r = (|| {
            let x = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
            self.model.text_decoder().forward(&x, features)
        })();
        self.model.reset_kv_cache();
        r.map_err(|e| self.candle(e))
    }

    /// Greedy ids (starting with `[DEC]`, the `[SEP]` kept when reached, as transformers returns).
    pub fn generate_ids(&mut self, features: &Tensor) -> Result<Vec<u32>, BlipError> {
        self.model.reset_kv_cache();
        let mut ids = vec![self.settings.bos];
        let result = (|| -> candle_core::Result<()> {
            let mut next_in = vec![self.settings.bos];
            for _ in 0..self.settings.max_new_tokens {
                let x = Tensor::new(next_in.as_slice(), &self.device)?.unsqueeze(0)?;
                let logits = self.model.text_decoder().forward(&x, features)?;
                let last = logits.squeeze(0)?.get(next_in.len() - 1)?;
                let v = last.to_dtype(DType::F32)?.to_vec1::<f32>()?;
                let next = crate::gguf_llm::argmax(&v);
                ids.push(next);
                if next == self.settings.sep {
                    break;
                }
                next_in = vec![next];
            }
            Ok(())
        })();
        self.model.reset_kv_cache();
        result.map_err(|e| self.candle(e))?;
        Ok(ids)
    }

    /// Decodes ids skipping special tokens, as `processor.decode(ids, skip_special_tokens=True)`.
    pub fn decode(&self, ids: &[u32]) -> Result<String, BlipError> {
        self.tokenizer
            .decode(ids, true)
            .map_err(|e| BlipError::File {
                path: self.weights.with_file_name("tokenizer.json"),
                reason: e.to_string(),
            })
            .map(|s| s.trim().to_string())
    }

    /// The caption of an image already resized to [`Self::image_size`].
    pub fn caption(&mut self, img: &RgbImage) -> Result<String, BlipError> {
        let px = self.preprocess(img)?;
        let feats = self.vision_features(&px)?;
        let ids = self.generate_ids(&feats)?;
        self.decode(&ids)
    }
}

/// `BlipImageProcessor`'s rescale and normalisation of one square image: (1, 3, size, size).
fn normalise(resized: &RgbImage, device: &Device) -> candle_core::Result<Tensor> {
    let size = resized.width();
    let n = (size * size) as usize;
    let mut data = vec![0f32; 3 * n];
    for (i, p) in resized.pixels().enumerate() {
        for c in 0..3 {
            // transformers rescales in float64 then casts; f32 gives the same value to 1 ulp.
            let x = (p.0[c] as f64 * (1.0 / 255.0)) as f32;
            data[c * n + i] = (x - CLIP_MEAN[c]) / CLIP_STD[c];
        }
    }
    Tensor::from_vec(data, (1, 3, size as usize, size as usize), device)
}
