//! The emotion predictor P: a ResNet-18 with an 8-way head, its class order, its inputs as the
//! authors fed them, and Grad-CAM on `layer4[-1]`.

pub mod gradcam;
pub mod standin;

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use image::RgbImage;

use crate::emotion::{Emotion, ALPHABETICAL_ORDER, EMOSET_ORDER};
use gradcam::{grad_cam, CamMap};
use models::resnet::{ResNet18, ResNetConfig};
use models::weights::checkpoint::{load_state_dict, CheckpointError, StateDict};

/// Default seed of the stand-in predictor.
pub const STAND_IN_SEED: u64 = 0;

/// Errors from loading or running the predictor.
#[derive(Debug, thiserror::Error)]
pub enum PredictorError {
    /// The checkpoint could not be read or lacks a tensor.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A tensor operation failed.
    #[error("predictor: tensor operation failed")]
    Tensor(#[source] models::error::Cause<candle_core::Error>),
    /// The class-order option was not understood.
    #[error("--class-order '{0}': expected 'alphabetical' (the authors' checkpoint), 'emoset', or 8 comma-separated emotion names")]
    ClassOrder(String),
    /// Images in one batch differ in size.
    #[error("grad-cam")]
    Cam(#[from] crate::imgproc::cv_resize::CvResizeError),
    /// Images in one batch differ in size.
    #[error("predictor inputs must share one size; got {0}x{1} and {2}x{3}")]
    MixedSizes(u32, u32, u32, u32),
}

impl From<candle_core::Error> for PredictorError {
    fn from(e: candle_core::Error) -> Self {
        PredictorError::Tensor(models::error::Cause::new(e))
    }
}

/// How the checkpoint's 8 outputs map to emotions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassOrder(pub [Emotion; 8]);

impl ClassOrder {
    /// The authors' checkpoint: alphabetical.
    pub fn alphabetical() -> Self {
        Self(ALPHABETICAL_ORDER)
    }

    /// EmoSet's index order.
    pub fn emoset() -> Self {
        Self(EMOSET_ORDER)
    }

    /// Output index of an emotion.
    pub fn index_of(&self, e: Emotion) -> usize {
        self.0.iter().position(|x| *x == e).unwrap_or(0)
    }
}

impl std::str::FromStr for ClassOrder {
    type Err = PredictorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "alphabetical" => Ok(Self::alphabetical()),
            "emoset" => Ok(Self::emoset()),
            list => {
                let names: Result<Vec<Emotion>, _> = list.split(',').map(str::parse).collect();
                let names = names.map_err(|_| PredictorError::ClassOrder(s.to_string()))?;
                let arr: [Emotion; 8] = names
                    .try_into()
                    .map_err(|_| PredictorError::ClassOrder(s.to_string()))?;
                let mut sorted = arr;
                sorted.sort();
                if sorted.windows(2).any(|w| w[0] == w[1]) {
                    return Err(PredictorError::ClassOrder(s.to_string()));
                }
                Ok(Self(arr))
            }
        }
    }
}

impl std::fmt::Display for ClassOrder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if *self == Self::alphabetical() {
            f.write_str("alphabetical")
        } else if *self == Self::emoset() {
            f.write_str("emoset")
        } else {
            let n: Vec<&str> = self.0.iter().map(|e| e.name()).collect();
            f.write_str(&n.join(","))
        }
    }
}

/// Where the predictor's weights came from.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum PredictorSource {
    /// A checkpoint file.
    File {
        /// Path as given.
        path: String,
        /// SHA-256 of its bytes.
        sha256: String,
    },
    /// Seeded random weights: not an emotion classifier.
    StandIn {
        /// Generator seed (ChaCha8).
        seed: u64,
    },
}

impl PredictorSource {
    /// True for the stand-in.
    pub fn is_stand_in(&self) -> bool {
        matches!(self, PredictorSource::StandIn { .. })
    }

    /// The `predictor` column of the CSVs: `stand-in`, or the checkpoint's file name (its path and
    /// SHA-256 are in `report.json`), so a reader of a CSV alone cannot miss a stand-in.
    pub fn label(&self) -> String {
        match self {
            PredictorSource::File { path, .. } => std::path::Path::new(path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.clone()),
            PredictorSource::StandIn { .. } => "stand-in".into(),
        }
    }

    /// One line naming the weights; the stand-in's says plainly that it is one.
    pub fn describe(&self) -> String {
        match self {
            PredictorSource::File { path, sha256 } => {
                format!("predictor: {path} (sha256 {sha256})")
            }
            PredictorSource::StandIn { seed } => format!(
                "STAND-IN PREDICTOR: ResNet-18 with random weights (ChaCha8 seed {seed}), not a trained emotion classifier; numbers below show the pipeline, not emotions"
            ),
        }
    }
}

/// One image's prediction.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// Raw logits in the checkpoint's class order.
    pub logits: Vec<f32>,
    /// Softmax probabilities indexed by EmoSet order (`Emotion::emoset_index`).
    pub probs: [f64; 8],
    /// The most probable emotion (first in checkpoint order on ties, as numpy's argmax).
    pub argmax: Emotion,
}

impl Prediction {
    /// Probability of one emotion.
    pub fn prob(&self, e: Emotion) -> f64 {
        self.probs[e.emoset_index()]
    }
}

/// The emotion predictor P.
pub struct Predictor {
    model: ResNet18,
    order: ClassOrder,
    source: PredictorSource,
    device: Device,
}

impl Predictor {
    /// Loads a ResNet-18 checkpoint (safetensors, PyTorch zip `.pt`, or legacy `.pth`).
    pub fn load(
        path: &Path,
        config: ResNetConfig,
        order: ClassOrder,
        device: &Device,
    ) -> Result<Self, PredictorError> {
        let sd = load_state_dict(path)?;
        Self::from_state_dict(&sd, config, order, device, |sd| PredictorSource::File {
            path: sd.path.display().to_string(),
            sha256: sd.sha256.clone(),
        })
    }

    /// The stand-in: full-size ResNet-18 with seeded random weights.
    pub fn stand_in(seed: u64, device: &Device) -> Result<Self, PredictorError> {
        let config = ResNetConfig::resnet18(8);
        let sd = standin::stand_in_state_dict(&config, seed)?;
        Self::from_state_dict(&sd, config, ClassOrder::alphabetical(), device, |_| {
            PredictorSource::StandIn { seed }
        })
    }

    fn from_state_dict(
        sd: &StateDict,
        config: ResNetConfig,
        order: ClassOrder,
        device: &Device,
        source: impl FnOnce(&StateDict) -> PredictorSource,
    ) -> Result<Self, PredictorError> {
        let model = ResNet18::load(config, sd, device)?;
        Ok(Self {
            model,
            order,
            source: source(sd),
            device: device.clone(),
        })
    }

    /// The same predictor computing in `dtype` (`f16` or `bf16` on a GPU). Inputs and outputs stay
    /// `f32`; on the CPU anything but `f32` runs on candle's operators instead of the fused kernels.
    pub fn with_dtype(self, dtype: DType) -> Result<Self, PredictorError> {
        Ok(Self {
            model: self.model.to_dtype(dtype)?,
            ..self
        })
    }

    /// `layer4`'s output and the logits for a batch from [`Self::to_input`], both `f32`.
    fn run(&self, x: &Tensor) -> Result<(Tensor, Tensor), PredictorError> {
        let feats = self.model.features(&x.to_dtype(self.model.dtype())?)?;
        let logits = self.model.head(&feats)?.to_dtype(DType::F32)?;
        Ok((feats.to_dtype(DType::F32)?, logits))
    }

    /// Where the weights came from.
    pub fn source(&self) -> &PredictorSource {
        &self.source
    }

    /// The declared class order.
    pub fn class_order(&self) -> &ClassOrder {
        &self.order
    }

    /// Network configuration.
    pub fn config(&self) -> &ResNetConfig {
        self.model.config()
    }

    /// ToTensor as the authors used it: RGB, CHW, values / 255, no mean/std normalisation.
    pub fn to_input(&self, images: &[&RgbImage]) -> Result<Tensor, PredictorError> {
        let Some(first) = images.first() else {
            return Ok(Tensor::zeros((0, 3, 224, 224), DType::F32, &self.device)?);
        };
        let (w, h) = first.dimensions();
        let plane = (w * h) as usize;
        let mut data = vec![0f32; images.len() * 3 * plane];
        for (i, img) in images.iter().enumerate() {
            if img.dimensions() != (w, h) {
                let (w2, h2) = img.dimensions();
                return Err(PredictorError::MixedSizes(w, h, w2, h2));
            }
            let base = i * 3 * plane;
            for (p, px) in img.pixels().enumerate() {
                for c in 0..3 {
                    data[base + c * plane + p] = f32::from(px.0[c]) / 255.0;
                }
            }
        }
        Ok(Tensor::from_vec(
            data,
            (images.len(), 3, h as usize, w as usize),
            &self.device,
        )?)
    }

    fn prediction(&self, logits: Vec<f32>) -> Prediction {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exps: Vec<f64> = logits.iter().map(|l| f64::from(*l - max).exp()).collect();
        let sum: f64 = exps.iter().sum();
        let mut probs = [0f64; 8];
        for (i, e) in self.order.0.iter().enumerate() {
            probs[e.emoset_index()] = exps[i] / sum;
        }
        let mut best = 0;
        for (i, l) in logits.iter().enumerate() {
            if *l > logits[best] {
                best = i;
            }
        }
        Prediction {
            logits,
            probs,
            argmax: self.order.0[best],
        }
    }

    /// Raw logits (checkpoint class order) for a batch of float images (N, 3, H, W) in [0, 1],
    /// as the EmoEditor critic feeds the decoded image to P without quantising it.
    pub fn logits(&self, x: &Tensor) -> Result<Vec<Vec<f32>>, PredictorError> {
        let x = x.to_device(&self.device)?.to_dtype(DType::F32)?;
        Ok(self.run(&x)?.1.to_vec2()?)
    }

    /// Predicts a batch of images (all the same size; 224x224 for the metrics).
    pub fn predict(&self, images: &[&RgbImage]) -> Result<Vec<Prediction>, PredictorError> {
        let x = self.to_input(images)?;
        let rows: Vec<Vec<f32>> = self.run(&x)?.1.to_vec2()?;
        Ok(rows.into_iter().map(|l| self.prediction(l)).collect())
    }

    /// Predicts a batch and computes each image's Grad-CAM for its own argmax class, as
    /// pytorch-grad-cam does when called without targets.
    pub fn predict_with_cam(
        &self,
        images: &[&RgbImage],
    ) -> Result<Vec<(Prediction, CamMap)>, PredictorError> {
        let x = self.to_input(images)?;
        let (feats, logits) = self.run(&x)?;
        let logits: Vec<Vec<f32>> = logits.to_vec2()?;
        let (_, c, fh, fw) = feats.dims4()?;
        let feats = feats
            .to_device(&Device::Cpu)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let fc: Vec<Vec<f32>> = self
            .model
            .fc_weight()
            .to_device(&Device::Cpu)?
            .to_dtype(DType::F32)?
            .to_vec2()?;
        let mut out = Vec::with_capacity(images.len());
        for (i, (l, img)) in logits.into_iter().zip(images).enumerate() {
            let mut best = 0;
            for (j, v) in l.iter().enumerate() {
                if *v > l[best] {
                    best = j;
                }
            }
            let act = &feats[i * c * fh * fw..(i + 1) * c * fh * fw];
            let fmap = gradcam::FeatureMap {
                data: act,
                channels: c,
                height: fh,
                width: fw,
            };
            let (w, h) = img.dimensions();
            let cam = grad_cam(&fmap, &fc[best], best, w as usize, h as usize)?;
            out.push((self.prediction(l), cam));
        }
        Ok(out)
    }
}
