//! The four Table-1 metrics of "Make Me Happier" (EMR, ESR, ENRD, ESS) plus SSIM and L1, for one
//! (source, generated, target) triple. Images are 8-bit RGB at the metric resolution (224x224).

use image::RgbImage;

use crate::imgproc::canny::{canny_gray, canny_rgb};
use crate::imgproc::gray::rgb_to_gray_cv;
use crate::imgproc::ssim::{ssim_gray, ssim_rgb, SsimOptions};

/// Canny thresholds of the authors' ESS.
pub const CANNY_LOW: f64 = 200.0;
/// Canny thresholds of the authors' ESS.
pub const CANNY_HIGH: f64 = 500.0;

/// Errors computing metrics for one pair.
#[derive(Debug, thiserror::Error)]
pub enum MetricError {
    /// Source and generated images differ in size after preprocessing.
    #[error("source is {0}x{1} but generated image is {2}x{3}")]
    SizeMismatch(u32, u32, u32, u32),
    /// An option value was not recognised.
    #[error("{flag} '{value}': expected one of {choices}")]
    Option {
        /// The flag.
        flag: &'static str,
        /// What was given.
        value: String,
        /// What is accepted.
        choices: &'static str,
    },
    /// SSIM could not be computed.
    #[error("ssim")]
    Ssim(#[from] crate::imgproc::ssim::SsimError),
}

/// Which image OpenCV's Canny sees for ESS (the paper does not say; reports name the choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgeInput {
    /// The 3-channel image: per pixel, the channel with the largest gradient.
    Rgb,
    /// Luma (OpenCV RGB2GRAY).
    Gray,
}

impl std::str::FromStr for EdgeInput {
    type Err = MetricError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rgb" => Ok(Self::Rgb),
            "gray" | "grey" => Ok(Self::Gray),
            _ => Err(MetricError::Option {
                flag: "--ess-input",
                value: s.into(),
                choices: "rgb, gray",
            }),
        }
    }
}

impl std::fmt::Display for EdgeInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Rgb => "rgb",
            Self::Gray => "gray",
        })
    }
}

/// How ENRD averages the masked difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnrdAverage {
    /// The authors': mean over every value of the 224x224x3 image, masked zeros included.
    AllPixels,
    /// Mean over the neutral (non-emotional) pixels only.
    NeutralOnly,
}

impl std::str::FromStr for EnrdAverage {
    type Err = MetricError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "all-pixels" => Ok(Self::AllPixels),
            "neutral-only" => Ok(Self::NeutralOnly),
            _ => Err(MetricError::Option {
                flag: "--enrd-average",
                value: s.into(),
                choices: "all-pixels, neutral-only",
            }),
        }
    }
}

impl std::fmt::Display for EnrdAverage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::AllPixels => "all-pixels",
            Self::NeutralOnly => "neutral-only",
        })
    }
}

/// KL(onehot(target) || p) = -ln p[target]; +inf when p[target] = 0.
pub fn kl_onehot(p_target: f64) -> f64 {
    if p_target <= 0.0 {
        f64::INFINITY
    } else {
        -p_target.ln()
    }
}

/// ESR for one pair: the edit moved P towards the target, KL(gen) < KL(src) strictly. Equivalent to
/// p_gen > p_src, which needs no logarithm and is well defined when either probability is 0.
pub fn esr(p_src_target: f64, p_gen_target: f64) -> bool {
    p_gen_target > p_src_target
}

/// ENRD: mean |src (1 - M) - gen (1 - M)| over the neutral region's complement-masked image.
pub fn enrd(src: &RgbImage, gen: &RgbImage, region: &[bool], average: EnrdAverage) -> f64 {
    let mut sum = 0f64;
    let mut neutral = 0usize;
    for ((s, g), m) in src.pixels().zip(gen.pixels()).zip(region) {
        if *m {
            continue;
        }
        neutral += 1;
        for c in 0..3 {
            sum += (f64::from(s.0[c]) - f64::from(g.0[c])).abs();
        }
    }
    let denom = match average {
        EnrdAverage::AllPixels => src.as_raw().len(),
        EnrdAverage::NeutralOnly => neutral * 3,
    };
    if denom == 0 {
        0.0
    } else {
        sum / denom as f64
    }
}

/// Canny edge map of an image as the ESS sees it.
pub fn edges(img: &RgbImage, input: EdgeInput) -> image::GrayImage {
    match input {
        EdgeInput::Rgb => canny_rgb(img, CANNY_LOW, CANNY_HIGH),
        EdgeInput::Gray => canny_gray(&rgb_to_gray_cv(img), CANNY_LOW, CANNY_HIGH),
    }
}

/// Mean absolute difference of two same-size 8-bit buffers, in float64.
pub fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    if a.is_empty() {
        return 0.0;
    }
    let s: u64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    s as f64 / a.len() as f64
}

/// ESS: mean |E_src - E_gen| of the Canny(200, 500) maps (values 0 or 255).
pub fn ess(src_edges: &image::GrayImage, gen_edges: &image::GrayImage) -> f64 {
    mean_abs_diff(src_edges.as_raw(), gen_edges.as_raw())
}

/// Which SSIM goes into the per-image table.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SsimChoice {
    /// On RGB (mean of channels) or on gray.
    pub input: EdgeInput,
    /// scikit-image options.
    #[serde(skip)]
    pub options: SsimOptions,
    /// Window size (recorded for reports).
    pub win_size: usize,
}

impl Default for SsimChoice {
    fn default() -> Self {
        let options = SsimOptions::default();
        Self {
            input: EdgeInput::Rgb,
            win_size: options.win_size,
            options,
        }
    }
}

/// SSIM with scikit-image semantics.
pub fn ssim(a: &RgbImage, b: &RgbImage, choice: &SsimChoice) -> Result<f64, MetricError> {
    let r = match choice.input {
        EdgeInput::Rgb => ssim_rgb(a, b, &choice.options),
        EdgeInput::Gray => ssim_gray(&rgb_to_gray_cv(a), &rgb_to_gray_cv(b), &choice.options),
    };
    Ok(r?)
}

/// Everything measured for one (source, generated, target) triple.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PairMetrics {
    /// argmax P(gen) == target.
    pub emr: bool,
    /// KL(gen) < KL(src).
    pub esr: bool,
    /// -ln p_src[target].
    pub kl_src: f64,
    /// -ln p_gen[target].
    pub kl_gen: f64,
    /// Emotion-neutral region deviation, 0-255 units.
    pub enrd: f64,
    /// Edge structure similarity (mean Canny difference), 0-255 units.
    pub ess: f64,
    /// SSIM (scikit-image semantics).
    pub ssim: f64,
    /// Mean absolute pixel difference, 0-255 units.
    pub l1: f64,
}

/// Options that define the metrics; all are recorded in every report.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MetricOptions {
    /// Canny input for ESS.
    pub ess_input: EdgeInput,
    /// ENRD averaging.
    pub enrd_average: EnrdAverage,
    /// SSIM column.
    pub ssim: SsimChoice,
}

impl Default for MetricOptions {
    fn default() -> Self {
        Self {
            ess_input: EdgeInput::Rgb,
            enrd_average: EnrdAverage::AllPixels,
            ssim: SsimChoice::default(),
        }
    }
}
