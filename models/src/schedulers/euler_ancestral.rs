//! Euler ancestral (`diffusers.EulerAncestralDiscreteScheduler`), as the InstructPix2Pix baseline
//! uses it.
//!
//! The scheduler works in sigma space: `sigma_t = sqrt((1 - a_t) / a_t)` with
//! `a_t = alphas_cumprod[t]`. With the default "linspace" spacing the inference timesteps are
//! fractional (`np.linspace(0, 999, n)` in float32, e.g. 988.909 for `n = 100`), the sigmas are
//! interpolated linearly between training timesteps, and a final sigma of 0 is appended.
//!
//! Unlike diffusers, which finds the step index from the timestep and keeps it as state, the step
//! index is passed explicitly, and the ancestral noise is an argument (no random numbers here).

use serde::{Deserialize, Serialize};

use super::{
    check_len, mix, training_alphas_cumprod, BetaSchedule, PredictionType, SchedulerError,
    StepOutput, TimestepSpacing,
};

/// The configuration of an Euler ancestral scheduler, with diffusers' field names and class
/// defaults, so that a diffusers `scheduler_config.json` deserializes into it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EulerAncestralConfig {
    /// Training timesteps; the length of the beta table.
    pub num_train_timesteps: usize,
    /// First beta.
    pub beta_start: f64,
    /// Last beta.
    pub beta_end: f64,
    /// Layout of the betas.
    pub beta_schedule: BetaSchedule,
    /// Explicit betas, used instead of `beta_start`/`beta_end`/`beta_schedule` when present.
    pub trained_betas: Option<Vec<f32>>,
    /// What the model predicts (`Sample` is not supported, as in diffusers).
    pub prediction_type: PredictionType,
    /// Spacing of the inference timesteps.
    pub timestep_spacing: TimestepSpacing,
    /// Added to the "leading" timesteps (unused by the other spacings).
    pub steps_offset: usize,
    /// Zero-terminal-SNR rescaling (not supported: must be false).
    pub rescale_betas_zero_snr: bool,
}

impl Default for EulerAncestralConfig {
    /// diffusers' `EulerAncestralDiscreteScheduler.__init__` defaults.
    fn default() -> Self {
        Self {
            num_train_timesteps: 1000,
            beta_start: 0.0001,
            beta_end: 0.02,
            beta_schedule: BetaSchedule::Linear,
            trained_betas: None,
            prediction_type: PredictionType::Epsilon,
            timestep_spacing: TimestepSpacing::Linspace,
            steps_offset: 0,
            rescale_betas_zero_snr: false,
        }
    }
}

impl EulerAncestralConfig {
    /// The scheduler of `timbrooks/instruct-pix2pix`: scaled-linear betas 0.00085 to 0.012 over
    /// 1000 steps, `steps_offset` 1, epsilon prediction. The checkpoint's `scheduler_config.json`
    /// is older than diffusers' `timestep_spacing` option and sets none, so diffusers' default,
    /// "linspace", applies (from the published file as recalled: no stored copy was at hand to
    /// check; a config read from the file itself deserializes the same way).
    pub fn instruct_pix2pix() -> Self {
        Self {
            beta_start: 0.00085,
            beta_end: 0.012,
            beta_schedule: BetaSchedule::ScaledLinear,
            steps_offset: 1,
            ..Self::default()
        }
    }
}

/// An Euler ancestral scheduler.
#[derive(Debug, Clone)]
pub struct EulerAncestral {
    config: EulerAncestralConfig,
    alphas_cumprod: Vec<f32>,
    /// `sqrt((1 - a) / a)` per training timestep, float32.
    train_sigmas: Vec<f32>,
    timesteps: Vec<f32>,
    sigmas: Vec<f32>,
}

impl EulerAncestral {
    /// Builds the tables of `config`; before `set_timesteps` the schedule holds every training
    /// timestep, as in diffusers.
    pub fn new(config: EulerAncestralConfig) -> Result<Self, SchedulerError> {
        if config.rescale_betas_zero_snr {
            return Err(SchedulerError::Unsupported("rescale_betas_zero_snr".into()));
        }
        if config.prediction_type == PredictionType::Sample {
            return Err(SchedulerError::Unsupported("prediction_type sample".into()));
        }
        let alphas_cumprod = training_alphas_cumprod(
            &config.trained_betas,
            config.beta_schedule,
            config.beta_start,
            config.beta_end,
            config.num_train_timesteps,
        )?;
        let train_sigmas: Vec<f32> = alphas_cumprod
            .iter()
            .map(|&a| ((1.0 - a) / a).sqrt())
            .collect();
        let mut sigmas: Vec<f32> = train_sigmas.iter().rev().copied().collect();
        sigmas.push(0.0);
        let timesteps = (0..train_sigmas.len()).rev().map(|t| t as f32).collect();
        Ok(Self {
            config,
            alphas_cumprod,
            train_sigmas,
            timesteps,
            sigmas,
        })
    }

    /// The configuration the scheduler was built with.
    pub fn config(&self) -> &EulerAncestralConfig {
        &self.config
    }

    /// `alphas_cumprod` (float32), one entry per training timestep.
    pub fn alphas_cumprod(&self) -> &[f32] {
        &self.alphas_cumprod
    }

    /// diffusers' `set_timesteps(n)`: the timesteps (possibly fractional) and the sigmas, with a
    /// final 0 appended (so `sigmas().len() == timesteps().len() + 1`).
    pub fn set_timesteps(&mut self, num_inference_steps: usize) -> Result<(), SchedulerError> {
        let n = num_inference_steps;
        let train = self.config.num_train_timesteps;
        if n == 0 {
            return Err(SchedulerError::InvalidStepCount {
                steps: n,
                train_steps: train,
            });
        }
        let timesteps: Vec<f32> = match self.config.timestep_spacing {
            TimestepSpacing::Linspace => {
                // np.linspace(0, T - 1, n, dtype=float32): computed in f64, last entry exact.
                let stop = (train as f64) - 1.0;
                let step = if n > 1 { stop / (n - 1) as f64 } else { 0.0 };
                (0..n)
                    .rev()
                    .map(|i| if n > 1 && i == n - 1 { stop } else { i as f64 * step } as f32)
                    .collect()
            }
            TimestepSpacing::Leading => {
                let ratio = (train / n) as f64;
                let offset = self.config.steps_offset as f32;
                (0..n)
                    .rev()
                    .map(|i| (i as f64 * ratio).round_ties_even() as f32 + offset)
                    .collect()
            }
            TimestepSpacing::Trailing => {
                let ratio = train as f64 / n as f64;
                let len = (train as f64 / ratio).ceil() as usize;
                (0..len)
                    .map(|i| (train as f64 - i as f64 * ratio).round_ties_even() as f32 - 1.0)
                    .collect()
            }
        };
        let mut sigmas = Vec::with_capacity(timesteps.len() + 1);
        for &t in &timesteps {
            sigmas.push(self.interp_sigma(f64::from(t))?);
        }
        sigmas.push(0.0);
        self.timesteps = timesteps;
        self.sigmas = sigmas;
        Ok(())
    }

    /// `np.interp(t, arange(len), train_sigmas)` in f64, rounded to f32.
    fn interp_sigma(&self, t: f64) -> Result<f32, SchedulerError> {
        let len = self.train_sigmas.len();
        let last = (len - 1) as f64;
        if !(0.0..=last).contains(&t) {
            return Err(SchedulerError::TimestepOutOfRange {
                timestep: t.floor() as i64,
                len,
            });
        }
        let j = t.floor() as usize;
        if j >= len - 1 {
            return Ok(self.train_sigmas[len - 1]);
        }
        let lo = f64::from(self.train_sigmas[j]);
        let hi = f64::from(self.train_sigmas[j + 1]);
        let x = t - j as f64;
        if x == 0.0 {
            return Ok(self.train_sigmas[j]);
        }
        Ok(((hi - lo) * x + lo) as f32)
    }

    /// The inference timesteps, from the noisiest down (fractional with "linspace" spacing).
    pub fn timesteps(&self) -> &[f32] {
        &self.timesteps
    }

    /// The sigma of each inference step, followed by a final 0.
    pub fn sigmas(&self) -> &[f32] {
        &self.sigmas
    }

    /// The standard deviation of the initial latent noise: the largest sigma for "linspace" and
    /// "trailing" spacing, `sqrt(max^2 + 1)` for "leading".
    pub fn init_noise_sigma(&self) -> f32 {
        let max = self
            .sigmas
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, f32::max);
        match self.config.timestep_spacing {
            TimestepSpacing::Linspace | TimestepSpacing::Trailing => max,
            TimestepSpacing::Leading => (max * max + 1.0).sqrt(),
        }
    }

    fn sigma(&self, step_index: usize) -> Result<(f32, f32), SchedulerError> {
        match (self.sigmas.get(step_index), self.sigmas.get(step_index + 1)) {
            (Some(&from), Some(&to)) => Ok((from, to)),
            _ => Err(SchedulerError::StepIndexOutOfRange {
                index: step_index,
                len: self.timesteps.len(),
            }),
        }
    }

    /// The UNet input at step `step_index`: `sample / sqrt(sigma^2 + 1)`.
    pub fn scale_model_input(
        &self,
        sample: &[f32],
        step_index: usize,
    ) -> Result<Vec<f32>, SchedulerError> {
        let (sigma, _) = self.sigma(step_index)?;
        let denom = (sigma * sigma + 1.0).sqrt();
        Ok(sample.iter().map(|&x| x / denom).collect())
    }

    /// One Euler ancestral step from sigma `sigmas[step_index]` to `sigmas[step_index + 1]`, with
    /// `noise` (standard normal, one value per element) as the ancestral noise.
    pub fn step(
        &self,
        model_output: &[f32],
        step_index: usize,
        sample: &[f32],
        noise: &[f32],
    ) -> Result<StepOutput, SchedulerError> {
        let len = sample.len();
        check_len("model_output", model_output, len)?;
        check_len("noise", noise, len)?;
        let (sigma, sigma_to) = self.sigma(step_index)?;
        let pred_original_sample: Vec<f32> = match self.config.prediction_type {
            PredictionType::Epsilon => sample
                .iter()
                .zip(model_output)
                .map(|(&x, &e)| x - sigma * e)
                .collect(),
            PredictionType::VPrediction => {
                let s2p1 = sigma * sigma + 1.0;
                let c_out = -sigma / s2p1.sqrt();
                model_output
                    .iter()
                    .zip(sample)
                    .map(|(&v, &x)| v * c_out + x / s2p1)
                    .collect()
            }
            PredictionType::Sample => {
                return Err(SchedulerError::Unsupported("prediction_type sample".into()));
            }
        };
        let from2 = sigma * sigma;
        let to2 = sigma_to * sigma_to;
        let sigma_up = (to2 * (from2 - to2) / from2).sqrt();
        let sigma_down = (to2 - sigma_up * sigma_up).sqrt();
        let dt = sigma_down - sigma;
        let prev_sample = sample
            .iter()
            .zip(&pred_original_sample)
            .zip(noise)
            .map(|((&x, &x0), &z)| {
                let derivative = (x - x0) / sigma;
                let p = x + derivative * dt;
                p + z * sigma_up
            })
            .collect();
        Ok(StepOutput {
            prev_sample,
            pred_original_sample,
        })
    }

    /// The forward process in sigma space at step `step_index`: `original + noise * sigma`
    /// (diffusers' `add_noise` with a begin index).
    pub fn add_noise(
        &self,
        original: &[f32],
        noise: &[f32],
        step_index: usize,
    ) -> Result<Vec<f32>, SchedulerError> {
        let (sigma, _) = self.sigma(step_index)?;
        mix(original, 1.0, noise, sigma)
    }
}
