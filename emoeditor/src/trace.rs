//! The per-image record EmoEditor keeps beside each output (`<target>.trace.json`), and where
//! `keep_passes` puts every pass's image (`<target>.passes/<k>.png`). One definition serves the
//! writer (the edit) and the readers (the iteration ablation).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use emobench_core::edit::trace_path;
use emobench_core::emotion::{Emotion, Valence};

use crate::critic::{CriticOptions, CriticResult, Profile, StopReason, TraceRow};

/// `<target>.trace.json`: every pass the critic saw and what it decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// Always `emoeditor`.
    pub method: String,
    /// The critic profile.
    pub profile: Profile,
    /// The critic's limits (profile, `num_loop`, `max_passes`).
    pub critic: CriticOptions,
    /// The target emotion.
    pub target: String,
    /// The predictor's class order (the order of every `probs`).
    pub class_order: Vec<String>,
    /// The predictor's softmax on the (resized) source.
    pub source_probs: [f32; 8],
    /// T of each pass.
    pub train_steps_per_pass: Vec<i64>,
    /// Every pass, in order.
    pub passes: Vec<TraceRow>,
    /// The image kept: 0 is the source, k is pass k's output.
    pub kept: usize,
    /// Whether the kept image is the unedited source.
    pub kept_is_source: bool,
    /// Why the loop ended.
    pub stopped: StopReason,
    /// The predictor, described.
    pub predictor: String,
}

/// A trace whose class order or target cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TraceError {
    /// `class_order` is not eight emotion names.
    #[error("class_order: expected 8 emotion names, got {0:?}")]
    ClassOrder(Vec<String>),
    /// `target` is not in `class_order`.
    #[error("target '{0}' is not in class_order")]
    Target(String),
}

impl Trace {
    /// The trace of one edit: the critic's `result` under `critic`, with the run's context.
    pub fn new(
        critic: CriticOptions,
        target: Emotion,
        class_order: &[Emotion; 8],
        source_probs: [f32; 8],
        train_steps_per_pass: Vec<i64>,
        result: CriticResult,
        predictor: String,
    ) -> Self {
        Self {
            method: crate::NAME.into(),
            profile: critic.profile,
            critic,
            target: target.name().into(),
            class_order: class_order.iter().map(|e| e.name().into()).collect(),
            source_probs,
            train_steps_per_pass,
            passes: result.trace,
            kept: result.kept,
            kept_is_source: result.kept == 0,
            stopped: result.stopped,
            predictor,
        }
    }

    /// The target's index in the predictor's order and which classes are positive, as the critic
    /// takes them.
    pub fn critic_classes(&self) -> Result<(usize, [bool; 8]), TraceError> {
        let bad = || TraceError::ClassOrder(self.class_order.clone());
        if self.class_order.len() != 8 {
            return Err(bad());
        }
        let mut positive = [false; 8];
        for (p, name) in positive.iter_mut().zip(&self.class_order) {
            let e: Emotion = name.parse().map_err(|_| bad())?;
            *p = e.valence() == Valence::Positive;
        }
        let target = self
            .class_order
            .iter()
            .position(|c| *c == self.target)
            .ok_or_else(|| TraceError::Target(self.target.clone()))?;
        Ok((target, positive))
    }
}

/// `<target>.passes/` beside the output `<target>.png`: with `keep_passes`, `0.png` is the source
/// as EmoEditor edits it (224x224, quantised like an output) and `k.png` is pass k's output.
pub fn passes_dir(output: &Path) -> PathBuf {
    output.with_extension("passes")
}

/// Image `k` of [`passes_dir`] (0 = the source).
pub fn pass_image(output: &Path, k: usize) -> PathBuf {
    passes_dir(output).join(format!("{k}.png"))
}
