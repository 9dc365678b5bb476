//! Sample size for detecting a preference different from 50%, two ways:
//! - the normal approximation for independent judgments,
//!   `n = ((z_{1-a/2} 0.5 + z_{power} sqrt(p (1 - p))) / (p - 0.5))^2`, inflated by the design
//!   effect `1 + (m - 1) ICC` for `m` trials per participant;
//! - simulation: participants' own preference rates drawn from a beta distribution with mean `p`
//!   and intra-class correlation `ICC` (beta-binomial), `m` trials each, tested with the
//!   participant-clustered z test (SE across participants' shares); the smallest participant count
//!   whose rejection rate reaches the target power.
//!
//! Both are divided by the expected pass rate of the attention rule to give the number to recruit.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::simulate::normal;
use super::stats::normal_quantile;
use super::{Result, StudyError};

/// Inputs of a power analysis.
#[derive(Debug, Clone, Serialize)]
pub struct PowerOptions {
    /// True preference for the reference (e.g. 0.56).
    pub preference: f64,
    /// Two-sided significance level.
    pub alpha: f64,
    /// Target power.
    pub power: f64,
    /// Real trials per participant that enter the comparison (the paper: 100 overall, about 20
    /// per baseline).
    pub trials_per_participant: u32,
    /// Intra-class correlation of choices within a participant.
    pub icc: f64,
    /// Share of recruited participants expected to pass the attention rule (the paper: 0.27).
    pub pass_rate: f64,
    /// Simulated studies per candidate size (0 = skip the simulation).
    pub simulations: usize,
    /// Seed.
    pub seed: u64,
}

impl Default for PowerOptions {
    fn default() -> Self {
        Self {
            preference: 0.56,
            alpha: 0.05,
            power: 0.8,
            trials_per_participant: 100,
            icc: 0.02,
            pass_rate: 1.0,
            simulations: 1000,
            seed: 1,
        }
    }
}

/// Result of a power analysis.
#[derive(Debug, Clone, Serialize)]
pub struct PowerResult {
    /// The inputs.
    pub options: PowerOptions,
    /// Independent judgments needed (normal approximation).
    pub independent_trials: u64,
    /// 1 + (m - 1) ICC.
    pub design_effect: f64,
    /// Trials needed with clustering.
    pub clustered_trials: f64,
    /// Kept participants needed (normal approximation with the design effect).
    pub participants_normal: u64,
    /// Participants to recruit at the pass rate.
    pub recruit_normal: u64,
    /// Kept participants needed by simulation (None when not simulated).
    pub participants_simulated: Option<u64>,
    /// Participants to recruit by simulation.
    pub recruit_simulated: Option<u64>,
    /// Simulated power at each size tried, (participants, power).
    pub simulated_curve: Vec<(u64, f64)>,
}

/// Independent judgments needed to detect `p` against 0.5 (two-sided `alpha`, `power`).
pub fn n_independent(p: f64, alpha: f64, power: f64) -> f64 {
    let za = normal_quantile(1.0 - alpha / 2.0);
    let zb = normal_quantile(power);
    ((za * 0.5 + zb * (p * (1.0 - p)).sqrt()) / (p - 0.5)).powi(2)
}

/// Gamma(shape, 1) draw (Marsaglia and Tsang), with the shape < 1 boost.
fn gamma(rng: &mut ChaCha8Rng, shape: f64) -> f64 {
    if shape < 1.0 {
        let u: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
        return gamma(rng, shape + 1.0) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = normal(rng);
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// Simulated power of the participant-clustered z test with `k` participants.
pub fn simulated_power(opts: &PowerOptions, k: u64, seed: u64) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let m = opts.trials_per_participant.max(1);
    let p = opts.preference;
    let z_crit = normal_quantile(1.0 - opts.alpha / 2.0);
    let conc = if opts.icc > 0.0 {
        1.0 / opts.icc - 1.0
    } else {
        f64::INFINITY
    };
    let mut rejections = 0usize;
    for _ in 0..opts.simulations {
        let mut shares = Vec::with_capacity(k as usize);
        for _ in 0..k {
            let pi = if conc.is_finite() {
                let a = gamma(&mut rng, p * conc);
                let b = gamma(&mut rng, (1.0 - p) * conc);
                a / (a + b)
            } else {
                p
            };
            let wins = (0..m).filter(|_| rng.gen::<f64>() < pi).count();
            shares.push(wins as f64 / m as f64);
        }
        let mean = super::stats::mean(&shares);
        let se = super::stats::se_mean(&shares);
        let z = if se > 0.0 { (mean - 0.5) / se } else { 0.0 };
        if z.abs() > z_crit {
            rejections += 1;
        }
    }
    rejections as f64 / opts.simulations.max(1) as f64
}

/// Runs the power analysis.
pub fn power(opts: &PowerOptions) -> Result<PowerResult> {
    let p = opts.preference;
    if !(p > 0.0 && p < 1.0) || (p - 0.5).abs() < 1e-9 {
        return Err(StudyError::Invalid(format!(
            "preference {p} must be in (0, 1) and differ from 0.5"
        )));
    }
    if !(opts.alpha > 0.0 && opts.alpha < 1.0 && opts.power > 0.0 && opts.power < 1.0) {
        return Err(StudyError::Invalid(
            "alpha and power must be in (0, 1)".into(),
        ));
    }
    if !(opts.pass_rate > 0.0 && opts.pass_rate <= 1.0 && (0.0..1.0).contains(&opts.icc)) {
        return Err(StudyError::Invalid(
            "pass rate must be in (0, 1] and ICC in [0, 1)".into(),
        ));
    }
    let n = n_independent(p, opts.alpha, opts.power);
    let m = opts.trials_per_participant.max(1) as f64;
    let de = 1.0 + (m - 1.0) * opts.icc;
    let clustered = n * de;
    let k_normal = (clustered / m).ceil().max(2.0) as u64;
    let recruit = |k: u64| (k as f64 / opts.pass_rate).ceil() as u64;
    let mut curve = Vec::new();
    let mut k_sim = None;
    if opts.simulations > 0 {
        // Bisection on the participant count; the same seed at every size (common random numbers)
        // keeps the estimated curve close to monotone.
        let (mut lo, mut hi) = (2u64, (k_normal * 4).max(8));
        let eval = |k: u64, curve: &mut Vec<(u64, f64)>| {
            let pw = simulated_power(opts, k, opts.seed);
            curve.push((k, pw));
            pw
        };
        while eval(hi, &mut curve) < opts.power && hi < 1_000_000 {
            lo = hi;
            hi *= 2;
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if eval(mid, &mut curve) >= opts.power {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        k_sim = Some(hi);
        curve.sort_by_key(|c| c.0);
        curve.dedup_by_key(|c| c.0);
    }
    Ok(PowerResult {
        options: opts.clone(),
        independent_trials: n.ceil() as u64,
        design_effect: de,
        clustered_trials: clustered,
        participants_normal: k_normal,
        recruit_normal: recruit(k_normal),
        participants_simulated: k_sim,
        recruit_simulated: k_sim.map(recruit),
        simulated_curve: curve,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_sample_sizes() {
        for (p, n) in [(0.60, 194.0), (0.65, 85.0), (0.70, 47.0)] {
            assert_eq!(n_independent(p, 0.05, 0.8).ceil(), n);
        }
    }
}
