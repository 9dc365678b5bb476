//! A port of PyTorch's `torch.optim.LBFGS.step` without line search (`line_search_fn=None`), the
//! optimiser of the neural style transfer tutorial.
//!
//! The arithmetic follows `torch/optim/lbfgs.py` statement by statement, in `f32` where PyTorch
//! works on `float32` tensors: directions, steps, `ys`, `ro`, `H_diag`, `al`, `be_i`, the step
//! length `t` and the tolerance comparisons against `tolerance_grad` and `tolerance_change` (which
//! PyTorch makes between a 0-d `float32` tensor and a Python float, i.e. in `f32`). The losses are
//! Python floats (`float(closure())`), so `abs(loss - prev_loss)` is computed in `f64`.
//!
//! Reductions: PyTorch's `dot` (BLAS `sdot`) and `sum` accumulate in `f32` with a vectorised
//! order; here they accumulate in `f64` and round once to `f32`, which agrees with PyTorch to a
//! few `f32` ulps. Elementwise updates (`p.add_(d, alpha=t)`, `q.add_(y, alpha=-al)`) are computed
//! as `a + alpha * b` in `f32`. As the reference notes, the fixed-step iteration amplifies such
//! rounding differences over many evaluations; single evaluations agree tightly.
//!
//! The state persists across [`Lbfgs::step`] calls exactly as PyTorch's `optimizer.state` does
//! (`d`, `t`, `old_dirs`, `old_stps`, `ro`, `H_diag`, `prev_flat_grad`, `prev_loss`, `n_iter`,
//! `func_evals`). The optimiser is also available as a resumable machine ([`Lbfgs::begin_step`],
//! [`Lbfgs::feed`]) so several independent problems (one per image) can share each closure
//! evaluation: each machine asks for evaluations when PyTorch's `step` would call the closure.

use std::collections::VecDeque;

/// The settings of `torch.optim.LBFGS` (without `line_search_fn`, which is always `None` here).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LbfgsConfig {
    /// Learning rate: the fixed step length after the first iteration (PyTorch default 1).
    pub lr: f64,
    /// Maximal iterations per `step` (default 20).
    pub max_iter: usize,
    /// Maximal closure evaluations per `step` (default `max_iter * 5 / 4` = 25).
    pub max_eval: usize,
    /// Stop when the largest gradient component is at most this (default 1e-7).
    pub tolerance_grad: f64,
    /// Stop when the loss or the step changes less than this (default 1e-9).
    pub tolerance_change: f64,
    /// Number of (s, y) pairs kept (default 100).
    pub history_size: usize,
}

impl LbfgsConfig {
    /// PyTorch's defaults with the given `max_iter` (and `max_eval = max_iter * 5 / 4`).
    pub fn with_max_iter(max_iter: usize) -> Self {
        Self {
            max_iter,
            max_eval: max_iter * 5 / 4,
            ..Self::default()
        }
    }
}

impl Default for LbfgsConfig {
    /// `torch.optim.LBFGS(params)`'s defaults.
    fn default() -> Self {
        Self {
            lr: 1.0,
            max_iter: 20,
            max_eval: 25,
            tolerance_grad: 1e-7,
            tolerance_change: 1e-9,
            history_size: 100,
        }
    }
}

/// What PyTorch keeps in `optimizer.state[param]` between `step` calls.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LbfgsState {
    /// The last search direction.
    pub d: Option<Vec<f32>>,
    /// The last step length.
    pub t: Option<f32>,
    /// Gradient differences `y` (oldest first).
    pub old_dirs: VecDeque<Vec<f32>>,
    /// Steps `s = d * t` (oldest first).
    pub old_stps: VecDeque<Vec<f32>>,
    /// `1 / (y . s)` per stored pair.
    pub ro: VecDeque<f32>,
    /// Scale of the initial inverse Hessian (`1` until the first stored pair).
    pub h_diag: f32,
    /// The gradient before the last move.
    pub prev_flat_grad: Option<Vec<f32>>,
    /// The loss before the last move.
    pub prev_loss: Option<f64>,
    /// Iterations over all `step` calls.
    pub n_iter: usize,
    /// Closure evaluations over all `step` calls.
    pub func_evals: usize,
}

/// What a resumable L-BFGS machine wants next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Poll {
    /// Evaluate the closure at the current parameters and [`Lbfgs::feed`] the result.
    Evaluate,
    /// The `step` is over; `loss` is what PyTorch's `step` returns (the loss of its first
    /// evaluation).
    Done {
        /// The loss of the step's first closure evaluation.
        loss: f32,
    },
}

/// Misuse of the resumable interface.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LbfgsError {
    /// [`Lbfgs::feed`] was called outside a step.
    #[error("L-BFGS: an evaluation was fed outside a step (call begin_step first)")]
    NotInStep,
    /// The parameters or the gradient changed length.
    #[error("L-BFGS: expected {expected} values, got {got}")]
    Length {
        /// The length of the first gradient.
        expected: usize,
        /// The length given.
        got: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Initial,
    Iterating,
}

/// `torch.optim.LBFGS` over one flat `f32` parameter vector.
#[derive(Debug, Clone)]
pub struct Lbfgs {
    config: LbfgsConfig,
    state: LbfgsState,
    phase: Phase,
    // The locals of PyTorch's `step`.
    flat_grad: Vec<f32>,
    loss: f64,
    orig_loss: f32,
    opt_cond: bool,
    current_evals: usize,
    n_iter: usize,
    al: Vec<f32>,
}

/// `f32` dot product accumulated in `f64`.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum::<f64>() as f32
}

fn max_abs(a: &[f32]) -> f32 {
    a.iter().fold(0.0f32, |m, v| m.max(v.abs()))
}

fn sum_abs(a: &[f32]) -> f32 {
    a.iter().map(|v| f64::from(v.abs())).sum::<f64>() as f32
}

/// `a += alpha * b`.
fn axpy(a: &mut [f32], alpha: f32, b: &[f32]) {
    for (x, &y) in a.iter_mut().zip(b) {
        *x += alpha * y;
    }
}

impl Lbfgs {
    /// A fresh optimiser (empty state).
    pub fn new(config: LbfgsConfig) -> Self {
        Self {
            config,
            state: LbfgsState {
                h_diag: 1.0,
                ..LbfgsState::default()
            },
            phase: Phase::Idle,
            flat_grad: Vec::new(),
            loss: 0.0,
            orig_loss: 0.0,
            opt_cond: false,
            current_evals: 0,
            n_iter: 0,
            al: Vec::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &LbfgsConfig {
        &self.config
    }

    /// The state kept between steps.
    pub fn state(&self) -> &LbfgsState {
        &self.state
    }

    /// Whether a step is under way (between [`Lbfgs::begin_step`] and [`Poll::Done`]).
    pub fn in_step(&self) -> bool {
        self.phase != Phase::Idle
    }

    /// One `optimizer.step(closure)`: `closure` gets the parameters (it may change them, as the
    /// tutorial's closure clamps them in place) and returns the loss and the flat gradient.
    /// Returns the loss of the first evaluation, as PyTorch does.
    pub fn step<E>(
        &mut self,
        x: &mut [f32],
        mut closure: impl FnMut(&mut [f32]) -> Result<(f32, Vec<f32>), E>,
    ) -> Result<f32, E>
    where
        E: From<LbfgsError>,
    {
        self.begin_step();
        loop {
            let (loss, grad) = closure(x)?;
            match self.feed(x, loss, grad)? {
                Poll::Evaluate => continue,
                Poll::Done { loss } => return Ok(loss),
            }
        }
    }

    /// Starts a step: the caller evaluates the closure at the parameters and calls
    /// [`Lbfgs::feed`] with the result, until it returns [`Poll::Done`].
    pub fn begin_step(&mut self) {
        self.phase = Phase::Initial;
    }

    /// Hands the machine the closure's result at the current parameters `x`. It updates `x` in
    /// place (`p.add_(d, alpha=t)`) and says whether it wants another evaluation.
    pub fn feed(&mut self, x: &mut [f32], loss: f32, grad: Vec<f32>) -> Result<Poll, LbfgsError> {
        if grad.len() != x.len() {
            return Err(LbfgsError::Length {
                expected: x.len(),
                got: grad.len(),
            });
        }
        if let Some(prev) = &self.state.prev_flat_grad {
            if prev.len() != grad.len() {
                return Err(LbfgsError::Length {
                    expected: prev.len(),
                    got: grad.len(),
                });
            }
        }
        let tol_grad = self.config.tolerance_grad as f32;
        match self.phase {
            Phase::Idle => Err(LbfgsError::NotInStep),
            Phase::Initial => {
                self.orig_loss = loss;
                self.loss = f64::from(loss);
                self.current_evals = 1;
                self.state.func_evals += 1;
                self.flat_grad = grad;
                if max_abs(&self.flat_grad) <= tol_grad {
                    self.phase = Phase::Idle;
                    return Ok(Poll::Done {
                        loss: self.orig_loss,
                    });
                }
                self.n_iter = 0;
                self.phase = Phase::Iterating;
                Ok(self.iterate(x))
            }
            Phase::Iterating => {
                self.loss = f64::from(loss);
                self.flat_grad = grad;
                self.opt_cond = max_abs(&self.flat_grad) <= tol_grad;
                if self.check_conditions(1) {
                    Ok(self.finish())
                } else {
                    Ok(self.iterate(x))
                }
            }
        }
    }

    fn finish(&mut self) -> Poll {
        self.phase = Phase::Idle;
        Poll::Done {
            loss: self.orig_loss,
        }
    }

    /// The bottom of PyTorch's `while n_iter < max_iter` loop after `ls_func_evals` evaluations:
    /// true when the loop breaks.
    fn check_conditions(&mut self, ls_func_evals: usize) -> bool {
        self.current_evals += ls_func_evals;
        self.state.func_evals += ls_func_evals;
        if self.n_iter == self.config.max_iter {
            return true;
        }
        if self.current_evals >= self.config.max_eval {
            return true;
        }
        if self.opt_cond {
            return true;
        }
        let tol_change = self.config.tolerance_change as f32;
        let (Some(d), Some(t)) = (&self.state.d, self.state.t) else {
            return true;
        };
        if d.iter().fold(0.0f32, |m, v| m.max((v * t).abs())) <= tol_change {
            return true;
        }
        let prev_loss = self.state.prev_loss.unwrap_or(self.loss);
        (self.loss - prev_loss).abs() < self.config.tolerance_change
    }

    /// The top of the loop: runs iterations until one needs an evaluation or the loop breaks.
    fn iterate(&mut self, x: &mut [f32]) -> Poll {
        loop {
            if self.n_iter >= self.config.max_iter {
                return self.finish();
            }
            self.n_iter += 1;
            self.state.n_iter += 1;
            let g = &self.flat_grad;

            // Descent direction.
            let d = if self.state.n_iter == 1 {
                self.state.old_dirs.clear();
                self.state.old_stps.clear();
                self.state.ro.clear();
                self.state.h_diag = 1.0;
                g.iter().map(|v| -v).collect::<Vec<f32>>()
            } else {
                self.lbfgs_direction()
            };
            self.state.d = Some(d);
            match &mut self.state.prev_flat_grad {
                Some(p) => p.copy_from_slice(&self.flat_grad),
                None => self.state.prev_flat_grad = Some(self.flat_grad.clone()),
            }
            self.state.prev_loss = Some(self.loss);

            // Step length.
            let lr = self.config.lr as f32;
            let t = if self.state.n_iter == 1 {
                let inv = 1.0f32 / sum_abs(&self.flat_grad);
                if inv < 1.0 {
                    inv * lr
                } else {
                    lr
                }
            } else {
                lr
            };
            self.state.t = Some(t);
            let Some(d) = &self.state.d else {
                return self.finish();
            };
            let gtd = dot(&self.flat_grad, d);
            if gtd > -(self.config.tolerance_change as f32) {
                return self.finish();
            }

            // Fixed step, then re-evaluate unless this is the last iteration.
            axpy(x, t, d);
            if self.n_iter != self.config.max_iter {
                return Poll::Evaluate;
            }
            if self.check_conditions(0) {
                return self.finish();
            }
        }
    }

    /// The two-loop recursion, after storing the newest (s, y) pair when `y . s > 1e-10`.
    fn lbfgs_direction(&mut self) -> Vec<f32> {
        let st = &mut self.state;
        let g = &self.flat_grad;
        if let (Some(prev), Some(d), Some(t)) = (&st.prev_flat_grad, &st.d, st.t) {
            let y: Vec<f32> = g.iter().zip(prev).map(|(a, b)| a - b).collect();
            let s: Vec<f32> = d.iter().map(|v| v * t).collect();
            let ys = dot(&y, &s);
            if ys > 1e-10f32 {
                if st.old_dirs.len() == self.config.history_size {
                    st.old_dirs.pop_front();
                    st.old_stps.pop_front();
                    st.ro.pop_front();
                }
                let yy = dot(&y, &y);
                st.old_dirs.push_back(y);
                st.old_stps.push_back(s);
                st.ro.push_back(1.0f32 / ys);
                st.h_diag = ys / yy;
            }
        }
        let num_old = st.old_dirs.len();
        if self.al.len() < num_old {
            self.al.resize(num_old, 0.0);
        }
        let mut q: Vec<f32> = g.iter().map(|v| -v).collect();
        for i in (0..num_old).rev() {
            self.al[i] = dot(&st.old_stps[i], &q) * st.ro[i];
            axpy(&mut q, -self.al[i], &st.old_dirs[i]);
        }
        let h = st.h_diag;
        let mut r: Vec<f32> = q.iter().map(|v| v * h).collect();
        for i in 0..num_old {
            let be_i = dot(&st.old_dirs[i], &r) * st.ro[i];
            axpy(&mut r, self.al[i] - be_i, &st.old_stps[i]);
        }
        r
    }
}
