//! Diffusion noise schedulers that reproduce Hugging Face diffusers' arithmetic.
//!
//! Two schedulers are provided:
//!
//! * [`Ddim`](crate::schedulers::Ddim) (`DDIMScheduler`), which EmoEditor uses with the
//!   `CompVis/stable-diffusion-v1-4` configuration, including the authors' override of
//!   `num_train_timesteps`
//!   ([`set_timesteps_with_train_steps`](crate::schedulers::Ddim::set_timesteps_with_train_steps));
//! * [`EulerAncestral`](crate::schedulers::EulerAncestral) (`EulerAncestralDiscreteScheduler`),
//!   which the InstructPix2Pix baseline uses.
//!
//! # Precision
//!
//! Samples are `f32` slices (flattened tensors of any shape), and every scalar coefficient is
//! computed in `f32` in the same order as diffusers does with float32 tensors on the CPU, so the
//! results agree with a float32 diffusers pipeline to a few units in the last place. In
//! particular the beta table reproduces `torch.linspace(..., dtype=torch.float32)` bit for bit
//! (torch computes each entry as one fused multiply-add rounded to `f32`) and `torch.cumprod`
//! (a running product kept in `f64`, each output rounded to `f32`). Computing the tables in `f64`
//! instead would move `alphas_cumprod` by up to about 1e-7 relative, and the late DDIM steps, which
//! divide by `sqrt(alpha_prod_t)`, amplify such differences.
//!
//! No random numbers are drawn here: stochastic steps take their noise as an argument, so a
//! caller's seeded generator decides them.

pub mod ddim;
pub mod euler_ancestral;

pub use ddim::{Ddim, DdimConfig};
pub use euler_ancestral::{EulerAncestral, EulerAncestralConfig};

use serde::{Deserialize, Serialize};

/// How the betas of the training noise schedule are laid out (diffusers' `beta_schedule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BetaSchedule {
    /// Betas evenly spaced from `beta_start` to `beta_end` (`"linear"`).
    Linear,
    /// Square roots of the betas evenly spaced, then squared (`"scaled_linear"`, Stable Diffusion).
    ScaledLinear,
}

/// How inference timesteps are spread over the training timesteps (diffusers' `timestep_spacing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestepSpacing {
    /// `np.linspace(0, T - 1, n)`, rounded for DDIM, kept fractional for Euler (`"linspace"`).
    Linspace,
    /// `arange(n) * (T // n) + steps_offset` (`"leading"`, DDIM's default).
    Leading,
    /// `round(arange(T, 0, -T / n)) - 1` (`"trailing"`).
    Trailing,
}

/// What the denoising model predicts (diffusers' `prediction_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PredictionType {
    /// The added noise (Stable Diffusion 1.x, InstructPix2Pix).
    Epsilon,
    /// The velocity `alpha_t * eps - sigma_t * x0`.
    VPrediction,
    /// The clean sample itself.
    Sample,
}

/// Errors from the schedulers: misuse that diffusers would report with an exception.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SchedulerError {
    /// Two arrays that must have the same number of elements do not.
    #[error("{what} has {got} elements, expected {expected}")]
    LengthMismatch {
        /// Which argument is wrong.
        what: &'static str,
        /// Its number of elements.
        got: usize,
        /// The number of elements of the sample.
        expected: usize,
    },
    /// `set_timesteps` asked for zero steps or for more steps than training timesteps.
    #[error("{steps} inference steps is not possible with {train_steps} training timesteps")]
    InvalidStepCount {
        /// Requested inference steps.
        steps: usize,
        /// Training timesteps used for the spacing.
        train_steps: usize,
    },
    /// A timestep outside the `alphas_cumprod` table.
    #[error("timestep {timestep} is outside the {len} training timesteps")]
    TimestepOutOfRange {
        /// The offending timestep.
        timestep: i64,
        /// The length of the table.
        len: usize,
    },
    /// A step index beyond the inference schedule.
    #[error("step index {index} is outside the schedule of {len} steps")]
    StepIndexOutOfRange {
        /// The offending index.
        index: usize,
        /// Number of inference steps.
        len: usize,
    },
    /// `step` was called before `set_timesteps`.
    #[error("set_timesteps must be called before step")]
    TimestepsNotSet,
    /// A stochastic step (DDIM with `eta > 0`) was given no noise.
    #[error("eta > 0 needs variance noise; none was given")]
    MissingNoise,
    /// The configuration cannot be used.
    #[error("unsupported scheduler configuration: {0}")]
    Unsupported(String),
}

/// `torch.linspace(start, end, steps, dtype=torch.float32)` on the CPU, bit for bit.
///
/// torch converts both ends to `f32`, computes `step = (end - start) / (steps - 1)` in `f32`, and
/// fills the first half as `start + step * i` and the second half as
/// `end - step * (steps - 1 - i)`, each rounded once (a fused multiply-add).
pub(crate) fn torch_linspace_f32(start: f64, end: f64, steps: usize) -> Vec<f32> {
    let start = start as f32;
    let end = end as f32;
    if steps == 1 {
        return vec![start];
    }
    let step = (end - start) / (steps - 1) as f32;
    let halfway = steps / 2;
    (0..steps)
        .map(|i| {
            if i < halfway {
                step.mul_add(i as f32, start)
            } else {
                (-step).mul_add((steps - 1 - i) as f32, end)
            }
        })
        .collect()
}

/// The betas of a training schedule as diffusers builds them (`float32`).
pub fn betas(
    schedule: BetaSchedule,
    beta_start: f64,
    beta_end: f64,
    num_train_timesteps: usize,
) -> Vec<f32> {
    match schedule {
        BetaSchedule::Linear => torch_linspace_f32(beta_start, beta_end, num_train_timesteps),
        BetaSchedule::ScaledLinear => {
            torch_linspace_f32(beta_start.sqrt(), beta_end.sqrt(), num_train_timesteps)
                .into_iter()
                .map(|b| b * b)
                .collect()
        }
    }
}

/// `torch.cumprod(1 - betas)` in `float32`: a running product kept in `f64`, as torch does on the
/// CPU, with each entry rounded to `f32`.
pub fn alphas_cumprod(betas: &[f32]) -> Vec<f32> {
    let mut acc = 1.0f64;
    betas
        .iter()
        .map(|&b| {
            acc *= f64::from(1.0f32 - b);
            acc as f32
        })
        .collect()
}

/// The result of one scheduler step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepOutput {
    /// The sample at the next, less noisy, point of the schedule.
    pub prev_sample: Vec<f32>,
    /// The model's estimate of the clean sample.
    pub pred_original_sample: Vec<f32>,
}

/// The `alphas_cumprod` table of a config: its trained betas if given, else the named schedule.
pub(crate) fn training_alphas_cumprod(
    trained_betas: &Option<Vec<f32>>,
    schedule: BetaSchedule,
    beta_start: f64,
    beta_end: f64,
    num_train_timesteps: usize,
) -> Result<Vec<f32>, SchedulerError> {
    let betas = match trained_betas {
        Some(b) => b.clone(),
        None => betas(schedule, beta_start, beta_end, num_train_timesteps),
    };
    if betas.is_empty() {
        return Err(SchedulerError::Unsupported("an empty beta table".into()));
    }
    Ok(alphas_cumprod(&betas))
}

/// `a * original + b * noise`, elementwise: the forward (noising) process of both schedulers.
pub(crate) fn mix(
    original: &[f32],
    a: f32,
    noise: &[f32],
    b: f32,
) -> Result<Vec<f32>, SchedulerError> {
    check_len("noise", noise, original.len())?;
    Ok(original
        .iter()
        .zip(noise)
        .map(|(&x, &z)| a * x + b * z)
        .collect())
}

/// Fails unless `got` has the sample's number of elements.
pub(crate) fn check_len(
    what: &'static str,
    got: &[f32],
    expected: usize,
) -> Result<(), SchedulerError> {
    if got.len() == expected {
        Ok(())
    } else {
        Err(SchedulerError::LengthMismatch {
            what,
            got: got.len(),
            expected,
        })
    }
}
