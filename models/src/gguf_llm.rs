//! Local language models from GGUF files (llama.cpp's format): candle-transformers' quantized
//! llama (SmolLM2, TinyLlama, Llama 3.x, Mistral), Qwen2, Qwen3 and Gemma 3, with the tokenizer
//! built from the file's metadata (or a `tokenizer.json`), the model's own chat template
//! (`tokenizer.chat_template`, rendered like transformers' `apply_chat_template`), and greedy or
//! seeded top-p generation that stops at the end of the assistant's turn.
//!
//! Numerics: candle's quantized matmuls quantise the activations to Q8 as llama.cpp does, so
//! logits differ from transformers' dequantise-to-f32 loading of the same file by a few tenths
//! for 4-bit types. [`LoadOptions::dequantize`] chooses between those kernels and dense f32
//! matrices (candle's `CANDLE_DEQUANTIZE_ALL`, the same numbers as transformers): by default
//! ([`Dequantize::Auto`]) dense when the dense model is small, see [`DENSE_AUTO_MAX_BYTES`].

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::{DType, Device, Tensor};
use candle_transformers::models::{
    quantized_gemma3, quantized_llama, quantized_qwen2, quantized_qwen3,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::replace::Replace;
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer};

use crate::chat_template::{ChatMessage, ChatTemplate, TemplateError};

/// Why a GGUF model could not be loaded or run. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a readable GGUF.
    #[error("{path}: not a readable GGUF file: {reason}")]
    NotGguf {
        /// The file.
        path: PathBuf,
        /// candle's message.
        reason: String,
    },
    /// A metadata key the architecture needs is absent.
    #[error("{path}: missing GGUF metadata key `{key}`")]
    MissingMetadata {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
    },
    /// A metadata value has the wrong type.
    #[error("{path}: GGUF metadata key `{key}`: {reason}")]
    BadMetadata {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A tensor the architecture needs is absent.
    #[error("{path}: missing tensor `{name}` (architecture {architecture})")]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// `general.architecture`.
        architecture: String,
    },
    /// `general.architecture` is not one this module runs.
    #[error("{path}: architecture `{architecture}` is not supported (supported: {supported})")]
    UnsupportedArchitecture {
        /// The file.
        path: PathBuf,
        /// `general.architecture`.
        architecture: String,
        /// The supported names.
        supported: String,
    },
    /// The tokenizer in the metadata cannot be rebuilt exactly; pass a `tokenizer.json`.
    #[error("{path}: {reason}; pass the model's tokenizer.json (option `tokenizer`) instead")]
    UnsupportedTokenizer {
        /// The file.
        path: PathBuf,
        /// What is unsupported.
        reason: String,
    },
    /// The tokenizer failed (building, encoding or decoding).
    #[error("{path}: tokenizer: {reason}")]
    Tokenizer {
        /// The GGUF or tokenizer.json file.
        path: PathBuf,
        /// The tokenizers crate's message.
        reason: String,
    },
    /// The file has no chat template and none was given.
    #[error(
        "{path}: no `tokenizer.chat_template` in the metadata; pass one (option `chat_template`)"
    )]
    NoChatTemplate {
        /// The file.
        path: PathBuf,
    },
    /// The chat template failed to compile or render.
    #[error("{path}: {source}")]
    Template {
        /// The file.
        path: PathBuf,
        /// The template error.
        source: TemplateError,
    },
    /// candle failed while loading or running the model.
    #[error("{path}: {source}")]
    Candle {
        /// The file.
        path: PathBuf,
        /// candle's error.
        source: candle_core::Error,
    },
    /// Invalid generation settings.
    #[error("invalid generation option `{option}`: {reason}")]
    InvalidOption {
        /// The option.
        option: &'static str,
        /// Why.
        reason: String,
    },
}

/// The architectures [`GgufLlm`] runs (`general.architecture`).
pub const SUPPORTED_ARCHITECTURES: &[&str] = &["llama", "qwen2", "qwen3", "gemma3"];

/// Above this size of the weights in dense f32, [`Dequantize::Auto`] keeps candle's quantised
/// kernels: 2 GiB, about 530M parameters (SmolLM2-135M takes 0.50 GiB, SmolLM2-360M 1.35 GiB,
/// Qwen2.5-0.5B 1.8 GiB; TinyLlama 1.1B would take 4.1 GiB and Llama 3 8B 30 GiB).
///
/// Why dense below it: on CPUs candle's quantised matmuls quantise every activation row to Q8
/// and run a scalar-per-block dot product, which for SmolLM2-135M is 7x slower on prompts and
/// 4x slower in generation than dense f32 through gemm (README, Speed), and dense gives
/// transformers' numbers. Why not above it: dense f32 takes 4-8x the file's memory (a 4-bit 8B
/// model would not fit a 32 GiB machine) and, once weights outgrow the caches, generation is
/// bound by memory bandwidth, where reading 4-bit blocks beats reading f32.
pub const DENSE_AUTO_MAX_BYTES: u64 = 2 << 30;

/// Whether a GGUF's quantised matrices are expanded to dense f32 at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dequantize {
    /// Dense when the dense f32 weights take at most [`DENSE_AUTO_MAX_BYTES`], else quantised.
    #[default]
    Auto,
    /// Always dense f32 (`true`).
    Always,
    /// Always candle's quantised kernels (`false`).
    Never,
}

impl Dequantize {
    /// The choice for a model whose weights take `dense_bytes` in f32.
    pub fn dense_for(self, dense_bytes: u64) -> bool {
        match self {
            Self::Auto => dense_bytes <= DENSE_AUTO_MAX_BYTES,
            Self::Always => true,
            Self::Never => false,
        }
    }
}

/// `true`, `false` or `"auto"` in JSON options.
impl Serialize for Dequantize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Auto => s.serialize_str("auto"),
            Self::Always => s.serialize_bool(true),
            Self::Never => s.serialize_bool(false),
        }
    }
}

impl<'de> Deserialize<'de> for Dequantize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(true) => Ok(Self::Always),
            Raw::Bool(false) => Ok(Self::Never),
            Raw::Text(t) => match t.as_str() {
                "auto" => Ok(Self::Auto),
                "true" => Ok(Self::Always),
                "false" => Ok(Self::Never),
                other => Err(serde::de::Error::custom(format!(
                    "dequantize: expected true, false or \"auto\", got \"{other}\""
                ))),
            },
        }
    }
}

/// Bytes the weights of `ct` take as dense f32 (every tensor, whatever its stored type).
pub fn dense_f32_bytes(ct: &gguf_file::Content) -> u64 {
    ct.tensor_infos
        .values()
        .map(|t| t.shape.elem_count() as u64 * 4)
        .sum()
}

/// How to load a GGUF model.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// A `tokenizer.json` to use instead of the GGUF's tokenizer metadata.
    pub tokenizer_json: Option<PathBuf>,
    /// A chat template to use instead of the GGUF's `tokenizer.chat_template`.
    pub chat_template: Option<String>,
    /// Dense f32 matrices (candle's `CANDLE_DEQUANTIZE_ALL`: the same numbers as transformers'
    /// `gguf_file=` loading up to float rounding) or candle's quantised kernels; by default dense
    /// for small models ([`Dequantize::Auto`]). `CANDLE_DEQUANTIZE_ALL=1` in the environment
    /// forces dense.
    pub dequantize: Dequantize,
    /// Where to run (default CPU).
    pub device: Option<Device>,
}

/// Generation settings. The defaults are greedy decoding of at most 64 new tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerateOptions {
    /// New tokens at most.
    pub max_tokens: usize,
    /// 0 (the default) is greedy decoding; above 0, sampling at this temperature.
    pub temperature: f64,
    /// Nucleus sampling mass (1: off); used only when sampling.
    pub top_p: f64,
    /// Seed of the ChaCha8 generator used when sampling.
    pub seed: u64,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            max_tokens: 64,
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
        }
    }
}

impl GenerateOptions {
    fn check(&self) -> Result<(), LlmError> {
        if self.max_tokens == 0 {
            return Err(LlmError::InvalidOption {
                option: "max_tokens",
                reason: "must be at least 1".into(),
            });
        }
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(LlmError::InvalidOption {
                option: "temperature",
                reason: format!("{} is not a finite number >= 0", self.temperature),
            });
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(LlmError::InvalidOption {
                option: "top_p",
                reason: format!("{} is not in (0, 1]", self.top_p),
            });
        }
        Ok(())
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// A stop token (end of turn / end of text).
    Stop,
    /// `max_tokens` new tokens were generated.
    Length,
}

/// The result of [`GgufLlm::generate`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Generation {
    /// The prompt's token ids.
    pub prompt_ids: Vec<u32>,
    /// The generated ids (the stop token excluded).
    pub ids: Vec<u32>,
    /// The generated text, special tokens skipped.
    pub text: String,
    /// Why generation ended.
    pub stop: StopReason,
    /// Seconds spent on the prompt (one forward pass).
    pub prompt_secs: f64,
    /// Seconds spent generating after the first token.
    pub generate_secs: f64,
}

enum Weights {
    Llama(quantized_llama::ModelWeights),
    Qwen2(quantized_qwen2::ModelWeights),
    Qwen3(quantized_qwen3::ModelWeights),
    Gemma3(quantized_gemma3::ModelWeights),
}

impl Weights {
    fn forward(&mut self, x: &Tensor, pos: usize) -> candle_core::Result<Tensor> {
        match self {
            Self::Llama(m) => m.forward(x, pos),
            Self::Qwen2(m) => m.forward(x, pos),
            Self::Qwen3(m) => m.forward(x, pos),
            Self::Gemma3(m) => m.forward(x, pos),
        }
    }

    fn clear(&mut self) {
        match self {
            Self::Llama(m) => m.clear_kv_cache(),
            Self::Qwen2(m) => m.clear_kv_cache(),
            Self::Qwen3(m) => m.clear_kv_cache(),
            // Gemma 3 restarts its cache when a forward pass starts at position 0.
            Self::Gemma3(_) => {}
        }
    }
}

/// Whether [`GgufLlm::load`] with `dequantize` would load `path` dense, from its header alone
/// (for records written before the model loads).
pub fn plans_dense(path: &Path, dequantize: Dequantize) -> Result<bool, LlmError> {
    match dequantize {
        _ if env_forces_dense() => return Ok(true),
        Dequantize::Always => return Ok(true),
        Dequantize::Never => return Ok(false),
        Dequantize::Auto => {}
    }
    let file = File::open(path).map_err(|source| LlmError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let ct =
        gguf_file::Content::read(&mut BufReader::new(file)).map_err(|e| LlmError::NotGguf {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    Ok(dequantize.dense_for(dense_f32_bytes(&ct)))
}

fn env_forces_dense() -> bool {
    std::env::var_os(DEQUANTIZE_ENV).is_some_and(|s| !s.is_empty() && s != "0")
}

/// A GGUF language model with its tokenizer and chat template.
pub struct GgufLlm {
    weights: Weights,
    tokenizer: Tokenizer,
    template: Option<ChatTemplate>,
    stop_ids: Vec<u32>,
    path: PathBuf,
    architecture: String,
    name: Option<String>,
    device: Device,
    dequantized: bool,
}

impl std::fmt::Debug for GgufLlm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufLlm")
            .field("path", &self.path)
            .field("architecture", &self.architecture)
            .field("stop_ids", &self.stop_ids)
            .field("dequantized", &self.dequantized)
            .finish()
    }
}

/// Serialises loads: candle reads `CANDLE_DEQUANTIZE_ALL` once per thread, so each load runs on
/// a fresh thread with the variable set (or cleared) for it.
static LOAD_LOCK: Mutex<()> = Mutex::new(());
const DEQUANTIZE_ENV: &str = "CANDLE_DEQUANTIZE_ALL";

/// Tokens that end an assistant turn in the common chat formats; those present in the vocabulary
/// as special (control) tokens stop generation besides `tokenizer.ggml.eos_token_id`.
const END_OF_TURN: &[&str] = &[
    "<|im_end|>",
    "<|eot_id|>",
    "<|end_of_text|>",
    "<end_of_turn>",
    "<|end|>",
    "<|endoftext|>",
    "</s>",
];

fn md<'a>(ct: &'a gguf_file::Content, path: &Path, key: &str) -> Result<&'a Value, LlmError> {
    ct.metadata
        .get(key)
        .ok_or_else(|| LlmError::MissingMetadata {
            path: path.to_path_buf(),
            key: key.to_string(),
        })
}

fn md_string(ct: &gguf_file::Content, path: &Path, key: &str) -> Result<String, LlmError> {
    md(ct, path, key)?
        .to_string()
        .cloned()
        .map_err(|e| LlmError::BadMetadata {
            path: path.to_path_buf(),
            key: key.into(),
            reason: e.to_string(),
        })
}

fn md_u32(ct: &gguf_file::Content, path: &Path, key: &str) -> Result<u32, LlmError> {
    let v = md(ct, path, key)?;
    value_u32(v).ok_or_else(|| LlmError::BadMetadata {
        path: path.to_path_buf(),
        key: key.into(),
        reason: format!("expected an integer, got {v:?}"),
    })
}

fn value_u32(v: &Value) -> Option<u32> {
    match v {
        Value::U8(x) => Some(u32::from(*x)),
        Value::I8(x) => u32::try_from(*x).ok(),
        Value::U16(x) => Some(u32::from(*x)),
        Value::I16(x) => u32::try_from(*x).ok(),
        Value::U32(x) => Some(*x),
        Value::I32(x) => u32::try_from(*x).ok(),
        Value::U64(x) => u32::try_from(*x).ok(),
        Value::I64(x) => u32::try_from(*x).ok(),
        _ => None,
    }
}

fn md_strings(ct: &gguf_file::Content, path: &Path, key: &str) -> Result<Vec<String>, LlmError> {
    let bad = |reason: String| LlmError::BadMetadata {
        path: path.to_path_buf(),
        key: key.into(),
        reason,
    };
    let arr = md(ct, path, key)?
        .to_vec()
        .map_err(|e| bad(e.to_string()))?;
    arr.iter()
        .map(|v| v.to_string().cloned().map_err(|e| bad(e.to_string())))
        .collect()
}

/// Metadata keys (after the `{arch}.` prefix) and per-layer tensors each architecture needs.
fn requirements(arch: &str) -> (&'static [&'static str], &'static [&'static str]) {
    const COMMON: &[&str] = &[
        "attention.head_count",
        "attention.head_count_kv",
        "block_count",
        "embedding_length",
        "attention.layer_norm_rms_epsilon",
    ];
    const LLAMA_T: &[&str] = &[
        "attn_norm",
        "attn_q",
        "attn_k",
        "attn_v",
        "attn_output",
        "ffn_norm",
    ];
    const QWEN3_T: &[&str] = &[
        "attn_norm",
        "attn_q",
        "attn_k",
        "attn_v",
        "attn_output",
        "attn_q_norm",
        "attn_k_norm",
        "ffn_norm",
        "ffn_gate",
        "ffn_up",
        "ffn_down",
    ];
    const QWEN2_T: &[&str] = &[
        "attn_norm",
        "attn_q",
        "attn_k",
        "attn_v",
        "attn_output",
        "ffn_norm",
        "ffn_gate",
        "ffn_up",
        "ffn_down",
    ];
    const GEMMA3_T: &[&str] = &[
        "attn_norm",
        "attn_q",
        "attn_k",
        "attn_v",
        "attn_output",
        "attn_q_norm",
        "attn_k_norm",
        "post_attention_norm",
        "ffn_norm",
        "ffn_gate",
        "ffn_up",
        "ffn_down",
        "post_ffw_norm",
    ];
    match arch {
        "llama" => (COMMON, LLAMA_T),
        "qwen2" => (COMMON, QWEN2_T),
        "qwen3" => (COMMON, QWEN3_T),
        _ => (COMMON, GEMMA3_T),
    }
}

fn check_layout(ct: &gguf_file::Content, path: &Path, arch: &str) -> Result<(), LlmError> {
    let (keys, layer_tensors) = requirements(arch);
    for key in keys {
        md(ct, path, &format!("{arch}.{key}"))?;
    }
    if arch == "llama" {
        md(ct, path, "llama.rope.dimension_count")?;
    }
    let blocks = md_u32(ct, path, &format!("{arch}.block_count"))?;
    let missing = |name: String| LlmError::MissingTensor {
        path: path.to_path_buf(),
        name,
        architecture: arch.to_string(),
    };
    for name in ["token_embd.weight", "output_norm.weight"] {
        if !ct.tensor_infos.contains_key(name) {
            return Err(missing(name.into()));
        }
    }
    let moe = ct
        .metadata
        .get(&format!("{arch}.expert_count"))
        .and_then(value_u32)
        .unwrap_or(0)
        > 1;
    for i in 0..blocks {
        for t in layer_tensors {
            let name = format!("blk.{i}.{t}.weight");
            if !ct.tensor_infos.contains_key(&name) {
                return Err(missing(name));
            }
        }
        if arch == "llama" && !moe {
            for t in ["ffn_gate", "ffn_up", "ffn_down"] {
                let name = format!("blk.{i}.{t}.weight");
                if !ct.tensor_infos.contains_key(&name) {
                    return Err(missing(name));
                }
            }
        }
    }
    Ok(())
}

const REGEX_LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const REGEX_QWEN2: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

fn split_then_bytes(regex: &str) -> Result<PreTokenizerWrapper, String> {
    let split = Split::new(
        SplitPattern::Regex(regex.to_string()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(|e| e.to_string())?;
    Ok(Sequence::new(vec![
        split.into(),
        ByteLevel::new(false, true, false).into(),
    ])
    .into())
}

/// Builds the tokenizer a GGUF's `tokenizer.ggml.*` metadata describes, as the model's
/// `tokenizer.json` would (byte-level BPE models: `tokenizer.ggml.model = "gpt2"`, with the
/// pre-tokenizer named by `tokenizer.ggml.pre`).
///
/// Supported pre-tokenizers: `gpt2`/`default` (GPT-2), `smollm`/`starcoder`/`refact`/
/// `codeshell` (single digits, then GPT-2), `llama-bpe`/`llama3`/`smaug-bpe` (Llama 3) and
/// `qwen2` (NFC, then Qwen2's split). SentencePiece vocabularies (`llama`, as in TinyLlama's
/// GGUF) are rebuilt by [`sentencepiece_from_gguf`].
pub fn tokenizer_from_gguf(ct: &gguf_file::Content, path: &Path) -> Result<Tokenizer, LlmError> {
    let unsupported = |reason: String| LlmError::UnsupportedTokenizer {
        path: path.to_path_buf(),
        reason,
    };
    let model = md_string(ct, path, "tokenizer.ggml.model")?;
    if model == "llama" {
        return sentencepiece_from_gguf(ct, path);
    }
    if model != "gpt2" {
        return Err(unsupported(format!(
            "tokenizer.ggml.model `{model}` cannot be rebuilt from metadata (only `gpt2` \
             byte-level BPE and `llama` SentencePiece BPE)"
        )));
    }
    let pre = ct
        .metadata
        .get("tokenizer.ggml.pre")
        .and_then(|v| v.to_string().ok().cloned())
        .unwrap_or_else(|| "default".into());
    let tokens = md_strings(ct, path, "tokenizer.ggml.tokens")?;
    let merges = split_merges(ct, path)?;
    let vocab: tokenizers::models::bpe::Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let llama3 = matches!(pre.as_str(), "llama-bpe" | "llama3" | "smaug-bpe");
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(llama3)
        .build()
        .map_err(|e| LlmError::Tokenizer {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let mut tok = Tokenizer::new(bpe);
    let pretok: PreTokenizerWrapper = match pre.as_str() {
        "default" | "gpt2" | "gpt-2" => ByteLevel::new(false, true, true).into(),
        "smollm" | "starcoder" | "refact" | "codeshell" => Sequence::new(vec![
            Digits::new(true).into(),
            ByteLevel::new(false, true, true).into(),
        ])
        .into(),
        "llama-bpe" | "llama3" | "smaug-bpe" => {
            split_then_bytes(REGEX_LLAMA3).map_err(&unsupported)?
        }
        "qwen2" => {
            tok.with_normalizer(Some(NFC))
                .map_err(|e| LlmError::Tokenizer {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?;
            split_then_bytes(REGEX_QWEN2).map_err(&unsupported)?
        }
        other => {
            return Err(unsupported(format!(
                "tokenizer.ggml.pre `{other}` is not one this module rebuilds"
            )))
        }
    };
    tok.with_pre_tokenizer(Some(pretok));
    tok.with_decoder(Some(ByteLevelDecoder::default()));
    // Control (3) and user-defined (4) tokens are matched before BPE, as added tokens.
    if let Some(Value::Array(types)) = ct.metadata.get("tokenizer.ggml.token_type") {
        let mut specials = Vec::new();
        let mut added = Vec::new();
        for (i, t) in types.iter().enumerate() {
            match value_u32(t) {
                Some(3) => specials.push(AddedToken::from(tokens[i].clone(), true)),
                Some(4) => added.push(AddedToken::from(tokens[i].clone(), false)),
                _ => {}
            }
        }
        let tok_err = |e: tokenizers::Error| LlmError::Tokenizer {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        tok.add_special_tokens(specials).map_err(tok_err)?;
        tok.add_tokens(added).map_err(tok_err)?;
    }
    Ok(tok)
}

/// The SentencePiece BPE tokenizer a GGUF with `tokenizer.ggml.model = "llama"` describes, built
/// as transformers builds it from the same file (`gguf_file=`, its `LlamaTokenizer`): BPE over
/// the vocabulary with byte fallback and fused unknowns, no normaliser, `Metaspace` (`\u{2581}`,
/// prefix on the first section only, no split) before it, the merges from
/// `tokenizer.ggml.merges` or else rebuilt from the scores ([`merges_from_scores`]); control
/// tokens and the BOS/EOS/UNK/PAD tokens matched whole as special tokens, user-defined ones as
/// added tokens; decoded by `\u{2581}` -> space, byte fallback, fuse, and one leading space
/// stripped.
///
/// Gemma and Phi-3 files, which transformers tokenises differently, and files naming a
/// pre-tokenizer are refused ([`LlmError::UnsupportedTokenizer`]).
pub fn sentencepiece_from_gguf(
    ct: &gguf_file::Content,
    path: &Path,
) -> Result<Tokenizer, LlmError> {
    let unsupported = |reason: String| LlmError::UnsupportedTokenizer {
        path: path.to_path_buf(),
        reason,
    };
    let tok_err = |e: tokenizers::Error| LlmError::Tokenizer {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let arch = md_string(ct, path, "general.architecture")?;
    if arch.starts_with("gemma") || arch == "phi3" {
        return Err(unsupported(format!(
            "a SentencePiece vocabulary in a `{arch}` file is not one this module rebuilds"
        )));
    }
    if let Some(pre) = ct
        .metadata
        .get("tokenizer.ggml.pre")
        .and_then(|v| v.to_string().ok())
    {
        if pre != "default" {
            return Err(unsupported(format!(
                "tokenizer.ggml.pre `{pre}` with a SentencePiece vocabulary"
            )));
        }
    }
    let tokens = md_strings(ct, path, "tokenizer.ggml.tokens")?;
    let merges = if ct.metadata.contains_key("tokenizer.ggml.merges") {
        split_merges(ct, path)?
    } else {
        let bad = |reason: String| LlmError::BadMetadata {
            path: path.to_path_buf(),
            key: "tokenizer.ggml.scores".into(),
            reason,
        };
        let scores = md(ct, path, "tokenizer.ggml.scores")?
            .to_vec()
            .map_err(|e| bad(e.to_string()))?
            .iter()
            .map(|v| v.to_f32().map(f64::from).map_err(|e| bad(e.to_string())))
            .collect::<Result<Vec<f64>, _>>()?;
        if scores.len() != tokens.len() {
            return Err(bad(format!(
                "{} scores for {} tokens",
                scores.len(),
                tokens.len()
            )));
        }
        merges_from_scores(&tokens, &scores)
    };
    let vocab: tokenizers::models::bpe::Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .fuse_unk(true)
        .byte_fallback(true)
        .build()
        .map_err(tok_err)?;
    let mut tok = Tokenizer::new(bpe);
    tok.with_pre_tokenizer(Some(Metaspace::new(
        '\u{2581}',
        PrependScheme::First,
        false,
    )));
    let replace = Replace::new("\u{2581}", " ").map_err(tok_err)?;
    tok.with_decoder(Some(DecoderSequence::new(vec![
        replace.into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
        Strip::new(' ', 1, 0).into(),
    ])));
    let types: Vec<Option<u32>> = match ct.metadata.get("tokenizer.ggml.token_type") {
        Some(Value::Array(types)) => types.iter().map(value_u32).collect(),
        _ => Vec::new(),
    };
    let mut special: Vec<usize> = (0..tokens.len())
        .filter(|&i| types.get(i) == Some(&Some(3)))
        .collect();
    for key in [
        "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.unknown_token_id",
        "tokenizer.ggml.padding_token_id",
    ] {
        if let Ok(id) = md_u32(ct, path, key) {
            let id = id as usize;
            if id < tokens.len() && !special.contains(&id) {
                special.push(id);
            }
        }
    }
    special.sort_unstable();
    tok.add_special_tokens(
        special
            .iter()
            .map(|&i| AddedToken::from(tokens[i].clone(), true))
            .collect::<Vec<_>>(),
    )
    .map_err(tok_err)?;
    let user: Vec<AddedToken> = (0..tokens.len())
        .filter(|&i| types.get(i) == Some(&Some(4)))
        .map(|i| AddedToken::from(tokens[i].clone(), false).normalized(false))
        .collect();
    tok.add_tokens(user).map_err(tok_err)?;
    Ok(tok)
}

fn split_merges(ct: &gguf_file::Content, path: &Path) -> Result<Vec<(String, String)>, LlmError> {
    md_strings(ct, path, "tokenizer.ggml.merges")?
        .into_iter()
        .map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| LlmError::BadMetadata {
                    path: path.to_path_buf(),
                    key: "tokenizer.ggml.merges".into(),
                    reason: format!("merge `{m}` has no space"),
                })
        })
        .collect()
}

/// BPE merges implied by a scored vocabulary without merges, as transformers derives them
/// (`generate_merges` with scores): every split of a token into two vocabulary pieces is a merge
/// carrying the token's score, the splits of one token ordered by the pieces' ids; then all of
/// them ordered by score, then left and right piece length (in characters), each descending, ties
/// kept in that order. A token listed twice has its last id and score, at its first position.
pub fn merges_from_scores(tokens: &[String], scores: &[f64]) -> Vec<(String, String)> {
    use std::collections::HashMap;
    let mut id: HashMap<&str, usize> = HashMap::with_capacity(tokens.len());
    let mut order: Vec<&str> = Vec::with_capacity(tokens.len());
    let mut score: HashMap<&str, f64> = HashMap::with_capacity(tokens.len());
    for (i, (t, &s)) in tokens.iter().zip(scores).enumerate() {
        if id.insert(t.as_str(), i).is_none() {
            order.push(t.as_str());
        }
        score.insert(t.as_str(), s);
    }
    let mut merges: Vec<(&str, &str, f64)> = Vec::new();
    for t in order {
        let s = score[t];
        let start = merges.len();
        for (cut, _) in t.char_indices().skip(1) {
            let (l, r) = t.split_at(cut);
            if id.contains_key(l) && id.contains_key(r) {
                merges.push((l, r, s));
            }
        }
        merges[start..].sort_by_key(|&(l, r, _)| (id[l], id[r]));
    }
    let key = |m: &(&str, &str, f64)| (m.2, m.0.chars().count(), m.1.chars().count());
    merges.sort_by(|a, b| {
        let (ka, kb) = (key(a), key(b));
        kb.0.partial_cmp(&ka.0)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(kb.1.cmp(&ka.1))
            .then(kb.2.cmp(&ka.2))
    });
    merges
        .into_iter()
        .map(|(l, r, _)| (l.to_string(), r.to_string()))
        .collect()
}

fn token_string(
    ct: &gguf_file::Content,
    path: &Path,
    key: &str,
    tokenizer: &Tokenizer,
) -> Option<String> {
    let id = md_u32(ct, path, key).ok()?;
    tokenizer.id_to_token(id)
}

fn load_weights(
    ct: gguf_file::Content,
    path: &Path,
    arch: &str,
    dequantize: bool,
    device: &Device,
) -> Result<(Weights, bool), LlmError> {
    let candle = |source| LlmError::Candle {
        path: path.to_path_buf(),
        source,
    };
    let _guard = LOAD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    // Read under the lock: other loads set and restore the variable while holding it.
    let before = std::env::var_os(DEQUANTIZE_ENV);
    let dequantize = dequantize || env_forces_dense();
    if dequantize {
        std::env::set_var(DEQUANTIZE_ENV, "1");
    } else {
        std::env::remove_var(DEQUANTIZE_ENV);
    }
    let path_buf = path.to_path_buf();
    let arch_s = arch.to_string();
    let device = device.clone();
    let result = std::thread::scope(|s| {
        s.spawn(move || -> Result<Weights, LlmError> {
            let file = File::open(&path_buf).map_err(|source| LlmError::Io {
                path: path_buf.clone(),
                source,
            })?;
            let mut reader = BufReader::new(file);
            let w = match arch_s.as_str() {
                "llama" => Weights::Llama(
                    quantized_llama::ModelWeights::from_gguf(ct, &mut reader, &device)
                        .map_err(candle)?,
                ),
                "qwen2" => Weights::Qwen2(
                    quantized_qwen2::ModelWeights::from_gguf(ct, &mut reader, &device)
                        .map_err(candle)?,
                ),
                "qwen3" => Weights::Qwen3(
                    quantized_qwen3::ModelWeights::from_gguf(ct, &mut reader, &device)
                        .map_err(candle)?,
                ),
                _ => Weights::Gemma3(
                    quantized_gemma3::ModelWeights::from_gguf(ct, &mut reader, &device)
                        .map_err(candle)?,
                ),
            };
            Ok(w)
        })
        .join()
    });
    match before {
        Some(v) => std::env::set_var(DEQUANTIZE_ENV, v),
        None => std::env::remove_var(DEQUANTIZE_ENV),
    }
    let weights = result.unwrap_or_else(|_| {
        Err(LlmError::Candle {
            path: path.to_path_buf(),
            source: candle_core::Error::Msg("the loading thread panicked".into()),
        })
    })?;
    Ok((weights, dequantize))
}

impl GgufLlm {
    /// Loads a GGUF file: architecture from `general.architecture`, tokenizer and chat template
    /// from the metadata unless `options` supplies them.
    pub fn load(path: impl AsRef<Path>, options: &LoadOptions) -> Result<Self, LlmError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| LlmError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut reader = BufReader::new(file);
        let ct = gguf_file::Content::read(&mut reader).map_err(|e| LlmError::NotGguf {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let architecture = md_string(&ct, path, "general.architecture")?;
        if !SUPPORTED_ARCHITECTURES.contains(&architecture.as_str()) {
            return Err(LlmError::UnsupportedArchitecture {
                path: path.to_path_buf(),
                architecture,
                supported: SUPPORTED_ARCHITECTURES.join(", "),
            });
        }
        check_layout(&ct, path, &architecture)?;
        let dense = options.dequantize.dense_for(dense_f32_bytes(&ct));
        let name = ct
            .metadata
            .get("general.name")
            .and_then(|v| v.to_string().ok().cloned());

        let tokenizer = match &options.tokenizer_json {
            Some(tj) => Tokenizer::from_file(tj).map_err(|e| LlmError::Tokenizer {
                path: tj.clone(),
                reason: e.to_string(),
            })?,
            None => tokenizer_from_gguf(&ct, path)?,
        };
        let bos = token_string(&ct, path, "tokenizer.ggml.bos_token_id", &tokenizer);
        let eos = token_string(&ct, path, "tokenizer.ggml.eos_token_id", &tokenizer);
        let template_src = match &options.chat_template {
            Some(t) => Some(t.clone()),
            None => ct
                .metadata
                .get("tokenizer.chat_template")
                .and_then(|v| v.to_string().ok().cloned()),
        };
        let template = template_src
            .map(|src| {
                ChatTemplate::new(
                    &src,
                    bos.clone().unwrap_or_default(),
                    eos.clone().unwrap_or_default(),
                )
                .map_err(|source| LlmError::Template {
                    path: path.to_path_buf(),
                    source,
                })
            })
            .transpose()?;

        let mut stop_ids = Vec::new();
        for key in ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"] {
            if let Ok(id) = md_u32(&ct, path, key) {
                stop_ids.push(id);
            }
        }
        for t in END_OF_TURN {
            if let Some(id) = tokenizer.token_to_id(t) {
                let special = tokenizer
                    .get_added_tokens_decoder()
                    .get(&id)
                    .is_some_and(|a| a.special);
                if special && !stop_ids.contains(&id) {
                    stop_ids.push(id);
                }
            }
        }

        let device = options.device.clone().unwrap_or(Device::Cpu);
        let (weights, dequantized) = load_weights(ct, path, &architecture, dense, &device)?;
        Ok(Self {
            weights,
            tokenizer,
            template,
            stop_ids,
            path: path.to_path_buf(),
            architecture,
            name,
            device,
            dequantized,
        })
    }

    /// The GGUF file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> &str {
        &self.architecture
    }

    /// `general.name`, if any.
    pub fn model_name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Whether the matrices were loaded as dense f32.
    pub fn dequantized(&self) -> bool {
        self.dequantized
    }

    /// The ids that end generation.
    pub fn stop_ids(&self) -> &[u32] {
        &self.stop_ids
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The chat template, if the file (or the options) has one.
    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.template.as_ref()
    }

    /// Renders a conversation with the model's chat template.
    pub fn render_chat(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, LlmError> {
        let t = self
            .template
            .as_ref()
            .ok_or_else(|| LlmError::NoChatTemplate {
                path: self.path.clone(),
            })?;
        t.render(messages, add_generation_prompt)
            .map_err(|source| LlmError::Template {
                path: self.path.clone(),
                source,
            })
    }

    /// Token ids of `text` without added BOS/EOS (special-token strings in `text` are matched),
    /// as transformers' `tokenizer(text, add_special_tokens=False)`.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, LlmError> {
        self.tokenizer
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| LlmError::Tokenizer {
                path: self.path.clone(),
                reason: e.to_string(),
            })
    }

    /// Text of `ids`, special tokens skipped.
    pub fn decode(&self, ids: &[u32]) -> Result<String, LlmError> {
        self.tokenizer
            .decode(ids, true)
            .map_err(|e| LlmError::Tokenizer {
                path: self.path.clone(),
                reason: e.to_string(),
            })
    }

    fn candle(&self, source: candle_core::Error) -> LlmError {
        LlmError::Candle {
            path: self.path.clone(),
            source,
        }
    }

    /// Runs `ids` at positions `pos..` (the KV cache holds positions `..pos`; `pos == 0`
    /// starts afresh) and returns the last position's logits as f32.
    pub fn forward(&mut self, ids: &[u32], pos: usize) -> Result<Vec<f32>, LlmError> {
        if pos == 0 {
            self.weights.clear();
        }
        let run = |w: &mut Weights, dev: &Device| -> candle_core::Result<Vec<f32>> {
            let x = Tensor::new(ids, dev)?.unsqueeze(0)?;
            let logits = w.forward(&x, pos)?.to_dtype(DType::F32)?;
            let logits = match logits.rank() {
                3 => logits.squeeze(0)?.get(ids.len() - 1)?,
                2 => logits.squeeze(0)?,
                _ => logits,
            };
            logits.to_vec1::<f32>()
        };
        let dev = self.device.clone();
        run(&mut self.weights, &dev).map_err(|e| self.candle(e))
    }

    /// Generates from an already rendered prompt (special-token strings are matched).
    pub fn generate(
        &mut self,
        prompt: &str,
        options: &GenerateOptions,
    ) -> Result<Generation, LlmError> {
        options.check()?;
        let prompt_ids = self.encode(prompt)?;
        self.generate_ids(&prompt_ids, options)
    }

    /// Generates from prompt ids.
    pub fn generate_ids(
        &mut self,
        prompt_ids: &[u32],
        options: &GenerateOptions,
    ) -> Result<Generation, LlmError> {
        options.check()?;
        if prompt_ids.is_empty() {
            return Err(LlmError::InvalidOption {
                option: "prompt",
                reason: "the prompt has no tokens".into(),
            });
        }
        let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
        let t0 = Instant::now();
        let mut logits = self.forward(prompt_ids, 0)?;
        let prompt_secs = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let mut ids = Vec::new();
        let mut stop = StopReason::Length;
        for (step, pos) in (0..options.max_tokens).zip(prompt_ids.len()..) {
            let next = pick(&logits, options, &mut rng);
            if self.stop_ids.contains(&next) {
                stop = StopReason::Stop;
                break;
            }
            ids.push(next);
            if step + 1 == options.max_tokens {
                break;
            }
            logits = self.forward(&[next], pos)?;
        }
        let generate_secs = t1.elapsed().as_secs_f64();
        let text = self.decode(&ids)?;
        Ok(Generation {
            prompt_ids: prompt_ids.to_vec(),
            ids,
            text,
            stop,
            prompt_secs,
            generate_secs,
        })
    }

    /// Renders `messages` with the chat template (generation prompt added) and generates the
    /// assistant's answer.
    pub fn chat(
        &mut self,
        messages: &[ChatMessage],
        options: &GenerateOptions,
    ) -> Result<(String, Generation), LlmError> {
        let prompt = self.render_chat(messages, true)?;
        let g = self.generate(&prompt, options)?;
        Ok((prompt, g))
    }
}

/// The next token: argmax (first of ties, as `torch.argmax`) when greedy, otherwise a draw from
/// the temperature-scaled, top-p-truncated distribution with `rng`.
pub fn pick(logits: &[f32], options: &GenerateOptions, rng: &mut ChaCha8Rng) -> u32 {
    if options.temperature <= 0.0 {
        return argmax(logits);
    }
    let t = options.temperature;
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let mut probs: Vec<(u32, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| (i as u32, ((l as f64 - max) / t).exp()))
        .collect();
    let total: f64 = probs.iter().map(|p| p.1).sum();
    for p in &mut probs {
        p.1 /= total;
    }
    probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    if options.top_p < 1.0 {
        let mut cum = 0.0;
        let mut keep = 0;
        for (i, p) in probs.iter().enumerate() {
            cum += p.1;
            keep = i + 1;
            if cum >= options.top_p {
                break;
            }
        }
        probs.truncate(keep.max(1));
    }
    let mass: f64 = probs.iter().map(|p| p.1).sum();
    let mut u = rng.gen::<f64>() * mass;
    for (id, p) in &probs {
        if u < *p {
            return *id;
        }
        u -= p;
    }
    probs.last().map(|p| p.0).unwrap_or(0)
}

/// Index of the largest logit (the first one on ties; NaN never wins).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if v > best_v {
            best = i;
            best_v = v;
        }
    }
    best as u32
}

/// The instruction in an answer: its first non-empty line, trimmed.
pub fn first_line(answer: &str) -> String {
    answer
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_string()
}

/// The paper's question to the language model (Supp. S2.3), verbatim.
pub const PAPER_PROMPT: &str = "There is an image with [Image caption]. To make me feel [Target Emotion], how to change the image? Give one instruction that starts with an action.";

/// [`PAPER_PROMPT`] (or any template with `[Image caption]` and `[Target Emotion]`) filled in.
pub fn fill_prompt(template: &str, caption: &str, emotion: &str) -> String {
    template
        .replace("[Image caption]", caption)
        .replace("[Target Emotion]", emotion)
}

/// The paper's prompt for a caption and a target emotion.
pub fn paper_prompt(caption: &str, emotion: &str) -> String {
    fill_prompt(PAPER_PROMPT, caption, emotion)
}
