//! The edit-method trait every method (baseline or EmoEditor) implements, the request it
//! receives and the error it returns.

use image::RgbImage;

/// One edit to perform: turn `source` into an image that evokes `target`.
///
/// The request borrows everything, so a caller can reuse decoded images across many requests.
#[derive(Debug, Clone, Copy)]
pub struct EditRequest<'a> {
    /// The image to edit (8-bit RGB, any size the method accepts).
    pub source: &'a RgbImage,
    /// The target emotion as its lower-case word, e.g. `"awe"` or `"sadness"`.
    ///
    /// This crate does not check the word against a list of emotions: methods that need a
    /// prompt use it as is, and the others use it only in messages.
    pub target: &'a str,
    /// Reference images of the target emotion, chosen by the caller (the paper: a random EmoSet
    /// image of the target emotion). May be empty for methods that do not need any; see
    /// [`EditMethod::needs_references`].
    pub references: &'a [RgbImage],
    /// Seed for every random choice the method makes. The same request with the same seed gives
    /// the same bytes.
    pub seed: u64,
    /// The source's id in `sources.csv`, or empty when the caller has none. Methods that keep
    /// per-source records in the run folder (LMS's captions and instructions) key them by it.
    pub source_id: &'a str,
}

impl<'a> EditRequest<'a> {
    /// A request with no reference images.
    pub fn new(source: &'a RgbImage, target: &'a str, seed: u64) -> Self {
        Self {
            source,
            target,
            references: &[],
            seed,
            source_id: "",
        }
    }

    /// The same request naming its source's id.
    pub fn with_source_id(mut self, source_id: &'a str) -> Self {
        self.source_id = source_id;
        self
    }

    /// The same request with the given reference images.
    pub fn with_references(mut self, references: &'a [RgbImage]) -> Self {
        self.references = references;
        self
    }
}

/// An emotion-editing method: a baseline of the paper, EmoEditor, or a user's own.
///
/// Implementations must be deterministic given the request (including its seed) and their
/// parameters, and must not panic on unusual but valid input (tiny, non-square or constant
/// images).
pub trait EditMethod: Send + Sync {
    /// The method's registry name, lower-case (`"ct"`, `"nst"`, ...). Used for run folders.
    fn name(&self) -> &str;

    /// Every setting that affects the output, as a JSON object, written to `run.json`.
    ///
    /// For methods built by the registry, passing this value back to
    /// `baselines::registry::build_method` rebuilds an identical method.
    fn parameters(&self) -> serde_json::Value;

    /// Whether [`EditMethod::edit`] needs at least one reference image in the request.
    fn needs_references(&self) -> bool {
        false
    }

    /// Edits `req.source` towards `req.target`.
    fn edit(&self, req: &EditRequest<'_>) -> Result<RgbImage, EditError>;

    /// Like [`EditMethod::edit`], plus a per-image trace (EmoEditor's critic passes) that the run
    /// folder keeps beside the output. Methods without one return `None`.
    fn edit_traced(
        &self,
        req: &EditRequest<'_>,
    ) -> Result<(RgbImage, Option<serde_json::Value>), EditError> {
        Ok((self.edit(req)?, None))
    }

    /// How many requests the method wants at once in [`EditMethod::edit_batch`] (the diffusion
    /// methods' `batch` option: conditions per UNet call); 1 for methods without batching.
    fn batch_size(&self) -> usize {
        1
    }

    /// Edits several requests, output `i` for request `i`. The default edits them one by one;
    /// batching methods share each network call among them, with results equal to the
    /// one-by-one edits up to floating-point rounding.
    fn edit_batch(
        &self,
        reqs: &[EditRequest<'_>],
    ) -> Result<Vec<(RgbImage, Option<serde_json::Value>)>, EditError> {
        reqs.iter().map(|r| self.edit_traced(r)).collect()
    }

    /// Called once by the run loop with the method's run folder (`runs/<method>/`), before any
    /// edit: methods that keep records beside their outputs (LMS's `captions.csv` and
    /// `instructions.csv`) read what an earlier run left there and write there.
    fn attach_run_folder(&mut self, _dir: &std::path::Path) -> Result<(), EditError> {
        Ok(())
    }

    /// Whether the method is set to stop before producing images (LMS's `stage: instructions`):
    /// the run loop then calls [`EditMethod::prepare`] for each job and writes no image.
    fn prepares_only(&self) -> bool {
        false
    }

    /// The work before the image for one request (LMS: caption and instruction, recorded in the
    /// run folder); see [`EditMethod::prepares_only`].
    fn prepare(&self, _req: &EditRequest<'_>) -> Result<(), EditError> {
        Ok(())
    }

    /// The weight files the method read, with SHA-256, for `run.json`.
    fn weights(&self) -> Vec<crate::provenance::WeightFile> {
        Vec::new()
    }
}

/// Why a method could not be built or could not edit an image.
///
/// Every variant names the method (its human-readable name, e.g. "colour transfer") so the
/// message stands on its own in a log line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EditError {
    /// The method needs reference images of the target emotion and the request has none.
    #[error("{method} needs at least one reference image of '{target}'")]
    MissingReference {
        /// The method's human-readable name.
        method: String,
        /// The target emotion of the request.
        target: String,
    },

    /// An input image has no pixels.
    #[error("{method}: the {role} image is empty ({width}x{height})")]
    EmptyImage {
        /// The method's human-readable name.
        method: String,
        /// Which input: "source", "reference", ...
        role: String,
        /// Its width in pixels.
        width: u32,
        /// Its height in pixels.
        height: u32,
    },

    /// Two inputs that must agree in size do not.
    #[error("{method}: {what}: expected {expected}, got {got}")]
    SizeMismatch {
        /// The method's human-readable name.
        method: String,
        /// What was compared.
        what: String,
        /// The expected size, as text.
        expected: String,
        /// The size found, as text.
        got: String,
    },

    /// An option is malformed, unknown, or out of range.
    #[error("{method}: invalid option '{option}'{}", colon_prefixed(reason))]
    InvalidOption {
        /// The method's human-readable name.
        method: String,
        /// The option's name (or `options` when the whole object is malformed).
        option: String,
        /// What is wrong and what is allowed (empty when `source` says it).
        reason: String,
        /// The parser's error, when one rejected the value.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// A registry lookup named a method that does not exist.
    #[error("unknown edit method '{name}'; known methods: {}", known.join(", "))]
    UnknownMethod {
        /// The name asked for.
        name: String,
        /// The names the registry knows.
        known: Vec<String>,
    },

    /// A file or model the method needs (e.g. weights) is not available.
    #[error("{method} needs {what}{}", colon_prefixed(hint))]
    MissingResource {
        /// The method's human-readable name.
        method: String,
        /// What is missing, e.g. "VGG19 weights".
        what: String,
        /// How to provide it (may be empty).
        hint: String,
        /// Why it could not be found, when a lookup failed.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// The method ran and failed (a numerical problem, a backend error).
    #[error("{method} failed: {reason}")]
    Failed {
        /// The method's human-readable name.
        method: String,
        /// What went wrong.
        reason: String,
    },

    /// An error from a library the method uses, kept as its source.
    #[error("{method}")]
    Backend {
        /// The method's human-readable name.
        method: String,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// One error shared by every request of a batched call that failed.
    #[error(transparent)]
    Shared(std::sync::Arc<EditError>),
}

/// `": text"`, or nothing for empty text.
fn colon_prefixed(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

/// A method's options from `--options` JSON: `null` means all defaults; anything serde rejects
/// (an unknown field, a wrong type) is an [`EditError::InvalidOption`] of `method`.
pub fn options_from_json<T: serde::de::DeserializeOwned + Default>(
    method: &str,
    value: &serde_json::Value,
) -> Result<T, EditError> {
    if value.is_null() {
        return Ok(T::default());
    }
    serde_json::from_value(value.clone())
        .map_err(|e| EditError::invalid_option_because(method, "options", e))
}

impl EditError {
    /// An [`EditError::InvalidOption`] of `method`.
    pub fn invalid_option(method: &str, option: &str, reason: impl Into<String>) -> Self {
        EditError::InvalidOption {
            method: method.into(),
            option: option.into(),
            reason: reason.into(),
            source: None,
        }
    }

    /// An [`EditError::InvalidOption`] of `method` whose value `e` rejected.
    pub fn invalid_option_because(
        method: &str,
        option: &str,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        EditError::InvalidOption {
            method: method.into(),
            option: option.into(),
            reason: String::new(),
            source: Some(Box::new(e)),
        }
    }

    /// An [`EditError::MissingResource`] of `method`: `what` could not be found because of `e`;
    /// `hint` (may be empty) says how to provide it.
    pub fn missing_resource(
        method: &str,
        what: &str,
        hint: impl Into<String>,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        EditError::MissingResource {
            method: method.into(),
            what: what.into(),
            hint: hint.into(),
            source: Some(Box::new(e)),
        }
    }

    /// An [`EditError::Backend`] of `method` wrapping `e`.
    pub fn backend(method: &str, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        EditError::Backend {
            method: method.into(),
            source: Box::new(e),
        }
    }
}

impl std::fmt::Debug for dyn EditMethod {
    /// Shows the method's name and parameters, e.g. `ct {"bins":300,...}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.name(), self.parameters())
    }
}
