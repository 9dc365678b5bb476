//! `torch.optim.Adam` (defaults: betas 0.9 / 0.999, eps 1e-8, no weight decay, not amsgrad)
//! with PyTorch's single-tensor update, and `StepLR`.
//!
//! PyTorch's step, per parameter at step t (1-based):
//! `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g^2`,
//! `denom = sqrt(v) / sqrt(1 - b2^t) + eps`, `p -= (lr / (1 - b1^t)) * m / denom`
//! (eps is added after the bias correction of the second moment).

use candle_core::{backprop::GradStore, Result, Tensor, Var};

/// Adam over a fixed list of variables.
#[derive(Debug)]
pub struct Adam {
    vars: Vec<Var>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    step: i32,
    /// Learning rate used by the next [`Adam::step`].
    pub lr: f64,
    /// Exponential decay of the first moment.
    pub beta1: f64,
    /// Exponential decay of the second moment.
    pub beta2: f64,
    /// Added to the bias-corrected root second moment.
    pub eps: f64,
}

impl Adam {
    /// Adam with PyTorch's defaults and learning rate `lr`.
    pub fn new(vars: Vec<Var>, lr: f64) -> Result<Self> {
        let m = vars
            .iter()
            .map(|v| v.as_tensor().zeros_like())
            .collect::<Result<Vec<_>>>()?;
        let v = m.clone();
        Ok(Self {
            vars,
            m,
            v,
            step: 0,
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        })
    }

    /// The variables, in the order given.
    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    /// Steps taken.
    pub fn steps(&self) -> i32 {
        self.step
    }

    /// One update from `grads`; variables without a gradient are skipped, as PyTorch skips
    /// parameters whose `.grad` is `None`.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let t = self.step;
        let bc1 = 1.0 - self.beta1.powi(t);
        let bc2_sqrt = (1.0 - self.beta2.powi(t)).sqrt();
        let step_size = self.lr / bc1;
        for ((var, m), v) in self.vars.iter().zip(&mut self.m).zip(&mut self.v) {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            *m = ((&*m * self.beta1)? + (g * (1.0 - self.beta1))?)?;
            *v = ((&*v * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?;
            let denom = ((v.sqrt()? / bc2_sqrt)? + self.eps)?;
            let update = ((&*m / denom)? * step_size)?;
            var.set(&(var.as_tensor() - update)?)?;
        }
        Ok(())
    }
}

/// `torch.optim.lr_scheduler.StepLR(step_size, gamma)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepLr {
    /// Initial learning rate.
    pub base_lr: f64,
    /// Epochs between decays.
    pub step_size: usize,
    /// Decay factor.
    pub gamma: f64,
}

impl StepLr {
    /// The learning rate after `scheduler.step()` has been called `calls` times:
    /// `base_lr * gamma^(calls / step_size)` (integer division). CLIPstyler calls it at the
    /// top of iteration `e` (0-based), so iteration `e` uses `lr_after(e + 1)`.
    pub fn lr_after(&self, calls: usize) -> f64 {
        self.base_lr * self.gamma.powi((calls / self.step_size) as i32)
    }
}
