//! DDIM (`diffusers.DDIMScheduler`), as EmoEditor uses it.
//!
//! EmoEditor's authors build the scheduler from `CompVis/stable-diffusion-v1-4`, then on every call
//! run `scheduler.config.num_train_timesteps = T` with `T ~ UniformInt[700, 980]` before
//! `set_timesteps(30)`. In diffusers this only changes the *attribute* of the frozen config dict
//! (the dict entry, which `save_config`/`from_config` see, stays 1000), and the betas and
//! `alphas_cumprod` were computed in the constructor, so they stay those of 1000 training steps.
//! What changes is everything that reads `self.config.num_train_timesteps` later:
//!
//! * `set_timesteps` spaces the inference timesteps over `T`: with the "leading" spacing,
//!   `step_ratio = T // n` and the timesteps are `arange(n) * step_ratio + steps_offset`, reversed
//!   (e.g. `T = 700, n = 30`: 668, 645, ..., 24, 1);
//! * `step` uses `prev_timestep = timestep - T // n`, which lands exactly on the next timestep of
//!   the schedule, and on a negative value after the last one (then `final_alpha_cumprod`, i.e.
//!   `alphas_cumprod[0]` with `set_alpha_to_one = false`, is used).
//!
//! [`Ddim::set_timesteps_with_train_steps`] reproduces this; [`Ddim::set_timesteps`] is the plain
//! case where `T` is the configured `num_train_timesteps`.

use serde::{Deserialize, Serialize};

use super::{
    check_len, mix, training_alphas_cumprod, BetaSchedule, PredictionType, SchedulerError,
    StepOutput, TimestepSpacing,
};

/// The configuration of a DDIM scheduler, with diffusers' field names and class defaults, so that
/// a diffusers `scheduler_config.json` deserializes into it (unknown keys are ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DdimConfig {
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
    /// Clamp the predicted original sample to `[-clip_sample_range, clip_sample_range]`.
    pub clip_sample: bool,
    /// Clamp range for `clip_sample`.
    pub clip_sample_range: f32,
    /// Use `alphas_cumprod = 1` after the last step instead of `alphas_cumprod[0]`.
    pub set_alpha_to_one: bool,
    /// Added to the "leading" timesteps.
    pub steps_offset: usize,
    /// What the model predicts.
    pub prediction_type: PredictionType,
    /// Spacing of the inference timesteps.
    pub timestep_spacing: TimestepSpacing,
    /// Dynamic thresholding (not supported: must be false).
    pub thresholding: bool,
    /// Zero-terminal-SNR rescaling (not supported: must be false).
    pub rescale_betas_zero_snr: bool,
}

impl Default for DdimConfig {
    /// diffusers' `DDIMScheduler.__init__` defaults.
    fn default() -> Self {
        Self {
            num_train_timesteps: 1000,
            beta_start: 0.0001,
            beta_end: 0.02,
            beta_schedule: BetaSchedule::Linear,
            trained_betas: None,
            clip_sample: true,
            clip_sample_range: 1.0,
            set_alpha_to_one: true,
            steps_offset: 0,
            prediction_type: PredictionType::Epsilon,
            timestep_spacing: TimestepSpacing::Leading,
            thresholding: false,
            rescale_betas_zero_snr: false,
        }
    }
}

impl DdimConfig {
    /// The scheduler configuration of `CompVis/stable-diffusion-v1-4`, which EmoEditor loads:
    /// 1000 steps, scaled-linear betas 0.00085 to 0.012, `steps_offset` 1, `set_alpha_to_one`
    /// false, `clip_sample` false, epsilon prediction, "leading" spacing.
    pub fn stable_diffusion_v1_4() -> Self {
        Self {
            num_train_timesteps: 1000,
            beta_start: 0.00085,
            beta_end: 0.012,
            beta_schedule: BetaSchedule::ScaledLinear,
            clip_sample: false,
            set_alpha_to_one: false,
            steps_offset: 1,
            ..Self::default()
        }
    }
}

/// A DDIM scheduler; see the [module documentation](self) for the timestep override.
#[derive(Debug, Clone)]
pub struct Ddim {
    config: DdimConfig,
    alphas_cumprod: Vec<f32>,
    final_alpha_cumprod: f32,
    /// The `num_train_timesteps` that `set_timesteps` and `step` use (diffusers'
    /// `self.config.num_train_timesteps`, which EmoEditor overwrites).
    spacing_train_steps: usize,
    num_inference_steps: Option<usize>,
    timesteps: Vec<i64>,
}

impl Ddim {
    /// Builds the beta and `alphas_cumprod` tables of `config`.
    pub fn new(config: DdimConfig) -> Result<Self, SchedulerError> {
        if config.thresholding {
            return Err(SchedulerError::Unsupported("thresholding".into()));
        }
        if config.rescale_betas_zero_snr {
            return Err(SchedulerError::Unsupported("rescale_betas_zero_snr".into()));
        }
        let alphas_cumprod = training_alphas_cumprod(
            &config.trained_betas,
            config.beta_schedule,
            config.beta_start,
            config.beta_end,
            config.num_train_timesteps,
        )?;
        let final_alpha_cumprod = if config.set_alpha_to_one {
            1.0
        } else {
            alphas_cumprod[0]
        };
        // Before set_timesteps diffusers holds every training timestep, in reverse.
        let timesteps = (0..alphas_cumprod.len() as i64).rev().collect();
        Ok(Self {
            spacing_train_steps: config.num_train_timesteps,
            config,
            alphas_cumprod,
            final_alpha_cumprod,
            num_inference_steps: None,
            timesteps,
        })
    }

    /// The configuration the scheduler was built with.
    pub fn config(&self) -> &DdimConfig {
        &self.config
    }

    /// `alphas_cumprod` (float32), one entry per training timestep of the constructor's config.
    pub fn alphas_cumprod(&self) -> &[f32] {
        &self.alphas_cumprod
    }

    /// The `alphas_cumprod` used after the last step.
    pub fn final_alpha_cumprod(&self) -> f32 {
        self.final_alpha_cumprod
    }

    /// The standard deviation of the initial noise: always 1 for DDIM.
    pub fn init_noise_sigma(&self) -> f32 {
        1.0
    }

    /// The inference timesteps, from the noisiest down.
    pub fn timesteps(&self) -> &[i64] {
        &self.timesteps
    }

    /// The number of inference steps set by the last `set_timesteps`, if any.
    pub fn num_inference_steps(&self) -> Option<usize> {
        self.num_inference_steps
    }

    /// The `num_train_timesteps` that spacing and `step` currently use (the configured value, or
    /// the override of [`Ddim::set_timesteps_with_train_steps`]).
    pub fn spacing_train_steps(&self) -> usize {
        self.spacing_train_steps
    }

    /// diffusers' `set_timesteps(n)` with the configured `num_train_timesteps`.
    pub fn set_timesteps(&mut self, num_inference_steps: usize) -> Result<(), SchedulerError> {
        self.set_timesteps_with_train_steps(num_inference_steps, self.config.num_train_timesteps)
    }

    /// diffusers' `set_timesteps(n)` after `scheduler.config.num_train_timesteps = train_steps`
    /// (EmoEditor's quirk): the timesteps are spaced over `train_steps`, `step` then uses
    /// `prev_timestep = timestep - train_steps // n`, and `alphas_cumprod` is unchanged.
    pub fn set_timesteps_with_train_steps(
        &mut self,
        num_inference_steps: usize,
        train_steps: usize,
    ) -> Result<(), SchedulerError> {
        let n = num_inference_steps;
        if n == 0 || n > train_steps {
            return Err(SchedulerError::InvalidStepCount {
                steps: n,
                train_steps,
            });
        }
        let timesteps: Vec<i64> = match self.config.timestep_spacing {
            TimestepSpacing::Linspace => {
                // np.linspace(0, T - 1, n).round()[::-1]: round half to even, last entry exact.
                let stop = (train_steps - 1) as f64;
                let step = if n > 1 { stop / (n - 1) as f64 } else { 0.0 };
                (0..n)
                    .rev()
                    .map(|i| {
                        let v = if n > 1 && i == n - 1 {
                            stop
                        } else {
                            i as f64 * step
                        };
                        v.round_ties_even() as i64
                    })
                    .collect()
            }
            TimestepSpacing::Leading => {
                let ratio = (train_steps / n) as i64;
                let offset = self.config.steps_offset as i64;
                (0..n as i64).rev().map(|i| i * ratio + offset).collect()
            }
            TimestepSpacing::Trailing => {
                // np.round(np.arange(T, 0, -T / n)) - 1
                let ratio = train_steps as f64 / n as f64;
                let len = (train_steps as f64 / ratio).ceil() as usize;
                (0..len)
                    .map(|i| (train_steps as f64 - i as f64 * ratio).round_ties_even() as i64 - 1)
                    .collect()
            }
        };
        let len = self.alphas_cumprod.len();
        if let Some(&bad) = timesteps.iter().find(|&&t| t < 0 || t as usize >= len) {
            return Err(SchedulerError::TimestepOutOfRange { timestep: bad, len });
        }
        self.spacing_train_steps = train_steps;
        self.num_inference_steps = Some(n);
        self.timesteps = timesteps;
        Ok(())
    }

    /// `timestep - num_train_timesteps // num_inference_steps`, with the overridden
    /// `num_train_timesteps` when one is in force.
    pub fn prev_timestep(&self, timestep: i64) -> Result<i64, SchedulerError> {
        let n = self
            .num_inference_steps
            .ok_or(SchedulerError::TimestepsNotSet)?;
        Ok(timestep - (self.spacing_train_steps / n) as i64)
    }

    fn alpha_at(&self, timestep: i64) -> Result<f32, SchedulerError> {
        usize::try_from(timestep)
            .ok()
            .and_then(|t| self.alphas_cumprod.get(t).copied())
            .ok_or(SchedulerError::TimestepOutOfRange {
                timestep,
                len: self.alphas_cumprod.len(),
            })
    }

    /// One DDIM step from `timestep` (diffusers' `step` with `use_clipped_model_output = false`).
    ///
    /// `eta = 0` is deterministic DDIM (EmoEditor); for `eta > 0`, `variance_noise` (standard
    /// normal, one value per element) must be given.
    pub fn step(
        &self,
        model_output: &[f32],
        timestep: i64,
        sample: &[f32],
        eta: f32,
        variance_noise: Option<&[f32]>,
    ) -> Result<StepOutput, SchedulerError> {
        let len = sample.len();
        check_len("model_output", model_output, len)?;
        let prev_timestep = self.prev_timestep(timestep)?;
        let alpha_prod_t = self.alpha_at(timestep)?;
        let alpha_prod_t_prev = if prev_timestep >= 0 {
            self.alpha_at(prev_timestep)?
        } else {
            self.final_alpha_cumprod
        };
        let beta_prod_t = 1.0 - alpha_prod_t;
        let sqrt_alpha = alpha_prod_t.sqrt();
        let sqrt_beta = beta_prod_t.sqrt();

        let (mut pred_original_sample, pred_epsilon): (Vec<f32>, Vec<f32>) =
            match self.config.prediction_type {
                PredictionType::Epsilon => (
                    sample
                        .iter()
                        .zip(model_output)
                        .map(|(&x, &e)| (x - sqrt_beta * e) / sqrt_alpha)
                        .collect(),
                    model_output.to_vec(),
                ),
                PredictionType::Sample => (
                    model_output.to_vec(),
                    sample
                        .iter()
                        .zip(model_output)
                        .map(|(&x, &x0)| (x - sqrt_alpha * x0) / sqrt_beta)
                        .collect(),
                ),
                PredictionType::VPrediction => (
                    sample
                        .iter()
                        .zip(model_output)
                        .map(|(&x, &v)| sqrt_alpha * x - sqrt_beta * v)
                        .collect(),
                    sample
                        .iter()
                        .zip(model_output)
                        .map(|(&x, &v)| sqrt_alpha * v + sqrt_beta * x)
                        .collect(),
                ),
            };
        if self.config.clip_sample {
            let r = self.config.clip_sample_range;
            for v in &mut pred_original_sample {
                *v = v.clamp(-r, r);
            }
        }

        let beta_prod_t_prev = 1.0 - alpha_prod_t_prev;
        let variance = (beta_prod_t_prev / beta_prod_t) * (1.0 - alpha_prod_t / alpha_prod_t_prev);
        let std_dev_t = eta * variance.sqrt();
        let direction_coef = (1.0 - alpha_prod_t_prev - std_dev_t * std_dev_t).sqrt();
        let sqrt_alpha_prev = alpha_prod_t_prev.sqrt();
        let mut prev_sample: Vec<f32> = pred_original_sample
            .iter()
            .zip(&pred_epsilon)
            .map(|(&x0, &e)| sqrt_alpha_prev * x0 + direction_coef * e)
            .collect();
        if eta > 0.0 {
            let noise = variance_noise.ok_or(SchedulerError::MissingNoise)?;
            check_len("variance_noise", noise, len)?;
            for (p, &z) in prev_sample.iter_mut().zip(noise) {
                *p += std_dev_t * z;
            }
        }
        Ok(StepOutput {
            prev_sample,
            pred_original_sample,
        })
    }

    /// The forward process: `sqrt(a_t) * original + sqrt(1 - a_t) * noise`, with
    /// `a_t = alphas_cumprod[timestep]`.
    pub fn add_noise(
        &self,
        original: &[f32],
        noise: &[f32],
        timestep: i64,
    ) -> Result<Vec<f32>, SchedulerError> {
        let a = self.alpha_at(timestep)?;
        mix(original, a.sqrt(), noise, (1.0 - a).sqrt())
    }
}
