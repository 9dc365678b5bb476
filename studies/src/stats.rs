//! Small, exact statistics for binary preferences: binomial tests, confidence intervals for a
//! proportion, multiple-testing correction, normal quantiles and descriptive helpers.
//!
//! Definitions follow SciPy/statsmodels so the fixture values in `tests/fixtures/study/` (made by
//! `make_fixtures.py` beside them) can be matched to 1e-9.

use statrs::distribution::{ContinuousCDF, Normal};
use statrs::function::beta::beta_reg;
use statrs::function::gamma::ln_gamma;

/// Natural log of the binomial probability mass P(X = k), X ~ Bin(n, p).
pub fn binom_ln_pmf(k: u64, n: u64, p: f64) -> f64 {
    if k > n {
        return f64::NEG_INFINITY;
    }
    if p <= 0.0 {
        return if k == 0 { 0.0 } else { f64::NEG_INFINITY };
    }
    if p >= 1.0 {
        return if k == n { 0.0 } else { f64::NEG_INFINITY };
    }
    let (kf, nf) = (k as f64, n as f64);
    ln_gamma(nf + 1.0) - ln_gamma(kf + 1.0) - ln_gamma(nf - kf + 1.0)
        + kf * p.ln()
        + (nf - kf) * (-p).ln_1p()
}

/// Exact two-sided binomial test of `k` successes in `n` trials against `p0`, with SciPy's
/// definition (`scipy.stats.binomtest(...).pvalue`): the total probability of all outcomes no more
/// likely than the observed one, with a relative tolerance of 1e-7 on that comparison.
pub fn binom_test_two_sided(k: u64, n: u64, p0: f64) -> f64 {
    if n == 0 || k > n {
        return 1.0;
    }
    // 1e-7 relative tolerance in probability space is ln(1 + 1e-7) in log space.
    let limit = binom_ln_pmf(k, n, p0) + (1e-7f64).ln_1p();
    let le = |i: u64| binom_ln_pmf(i, n, p0) <= limit;
    // The pmf rises to the mode and falls after it, so the outcomes no more likely than k are a
    // lower tail [0, a] and an upper tail [b, n]; their masses come from the incomplete beta
    // function instead of summing up to n terms.
    let mode = (((n + 1) as f64 * p0).floor() as u64).min(n);
    if le(mode) {
        return 1.0;
    }
    let lower = if le(0) {
        // Largest a in [0, mode) with pmf(a) <= limit.
        let (mut lo, mut hi) = (0u64, mode);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if le(mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        binom_cdf(lo, n, p0)
    } else {
        0.0
    };
    let upper = if le(n) {
        // Smallest b in (mode, n] with pmf(b) <= limit.
        let (mut lo, mut hi) = (mode, n);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if le(mid) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        binom_sf_incl(hi, n, p0)
    } else {
        0.0
    };
    (lower + upper).min(1.0)
}

/// P(X <= a) for X ~ Bin(n, p).
pub fn binom_cdf(a: u64, n: u64, p: f64) -> f64 {
    if a >= n {
        return 1.0;
    }
    beta_reg((n - a) as f64, a as f64 + 1.0, 1.0 - p)
}

/// P(X >= b) for X ~ Bin(n, p).
pub fn binom_sf_incl(b: u64, n: u64, p: f64) -> f64 {
    if b == 0 {
        return 1.0;
    }
    if b > n {
        return 0.0;
    }
    beta_reg(b as f64, (n - b) as f64 + 1.0, p)
}

/// Standard normal quantile (inverse CDF).
pub fn normal_quantile(p: f64) -> f64 {
    match Normal::new(0.0, 1.0) {
        Ok(n) => n.inverse_cdf(p),
        Err(_) => f64::NAN,
    }
}

/// Standard normal CDF.
pub fn normal_cdf(x: f64) -> f64 {
    match Normal::new(0.0, 1.0) {
        Ok(n) => n.cdf(x),
        Err(_) => f64::NAN,
    }
}

/// Wilson score interval for `k` of `n` at confidence `1 - alpha` (statsmodels `method="wilson"`).
/// `(NaN, NaN)` when `n == 0`.
pub fn wilson(k: u64, n: u64, alpha: f64) -> (f64, f64) {
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let z = normal_quantile(1.0 - alpha / 2.0);
    let (nf, p) = (n as f64, k as f64 / n as f64);
    let z2 = z * z;
    let denom = 1.0 + z2 / nf;
    let centre = (p + z2 / (2.0 * nf)) / denom;
    let half = z / denom * (p * (1.0 - p) / nf + z2 / (4.0 * nf * nf)).sqrt();
    (centre - half, centre + half)
}

/// Quantile of the Beta(a, b) distribution by bisection on the regularised incomplete beta
/// function; bisection is slower than Newton but cannot leave [0, 1] or stall near the edges.
pub fn beta_quantile(q: f64, a: f64, b: f64) -> f64 {
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if beta_reg(a, b, mid) < q {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-15 {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// Clopper-Pearson ("exact") interval for `k` of `n` at confidence `1 - alpha` (statsmodels
/// `method="beta"`): 0 and 1 at the edges. `(NaN, NaN)` when `n == 0`.
pub fn clopper_pearson(k: u64, n: u64, alpha: f64) -> (f64, f64) {
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let (kf, nf) = (k as f64, n as f64);
    let lo = if k == 0 {
        0.0
    } else {
        beta_quantile(alpha / 2.0, kf, nf - kf + 1.0)
    };
    let hi = if k == n {
        1.0
    } else {
        beta_quantile(1.0 - alpha / 2.0, kf + 1.0, nf - kf)
    };
    (lo, hi)
}

/// Holm step-down adjusted p-values, in the input order (statsmodels `multipletests(method="holm")`).
/// NaN entries are left NaN and do not count towards the family size.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..p.len()).filter(|&i| !p[i].is_nan()).collect();
    idx.sort_by(|&a, &b| p[a].total_cmp(&p[b]).then(a.cmp(&b)));
    let m = idx.len();
    let mut out = vec![f64::NAN; p.len()];
    let mut running = 0.0f64;
    for (rank, &i) in idx.iter().enumerate() {
        let adj = ((m - rank) as f64 * p[i]).min(1.0);
        running = running.max(adj);
        out[i] = running;
    }
    out
}

/// Arithmetic mean; NaN for an empty slice.
pub fn mean(x: &[f64]) -> f64 {
    if x.is_empty() {
        f64::NAN
    } else {
        x.iter().sum::<f64>() / x.len() as f64
    }
}

/// Sample standard deviation (n - 1 denominator); NaN below two values.
pub fn sd(x: &[f64]) -> f64 {
    if x.len() < 2 {
        return f64::NAN;
    }
    let m = mean(x);
    (x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (x.len() - 1) as f64).sqrt()
}

/// Standard error of the mean, `sd / sqrt(n)`.
pub fn se_mean(x: &[f64]) -> f64 {
    sd(x) / (x.len() as f64).sqrt()
}

/// Standard error of a proportion across independent trials, `sqrt(p (1 - p) / n)`.
pub fn se_proportion(k: u64, n: u64) -> f64 {
    if n == 0 {
        return f64::NAN;
    }
    let p = k as f64 / n as f64;
    (p * (1.0 - p) / n as f64).sqrt()
}

/// Pearson correlation; NaN when either side has no variance or fewer than two pairs.
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len().min(y.len());
    if n < 2 {
        return f64::NAN;
    }
    let (mx, my) = (mean(&x[..n]), mean(&y[..n]));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let (dx, dy) = (x[i] - mx, y[i] - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx == 0.0 || syy == 0.0 {
        return f64::NAN;
    }
    sxy / (sxx * syy).sqrt()
}

/// Linear-interpolation quantile of sorted data (NumPy's default, "type 7").
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let h = (sorted.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// One-way ANOVA estimate of the intra-class correlation of a binary outcome clustered in
/// participants, from per-cluster (successes, trials). Used for the design effect
/// `1 + (m - 1) ICC`. NaN with fewer than two clusters; clamped below at 0.
pub fn icc_anova(clusters: &[(u64, u64)]) -> f64 {
    let c: Vec<(f64, f64)> = clusters
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|&(k, n)| (k as f64, n as f64))
        .collect();
    let k = c.len() as f64;
    let big_n: f64 = c.iter().map(|x| x.1).sum();
    if c.len() < 2 || big_n <= k {
        return f64::NAN;
    }
    let grand = c.iter().map(|x| x.0).sum::<f64>() / big_n;
    let ssb: f64 = c.iter().map(|&(s, n)| n * (s / n - grand).powi(2)).sum();
    // For 0/1 data the within-cluster sum of squares of cluster i is s_i (1 - s_i / n_i).
    let ssw: f64 = c.iter().map(|&(s, n)| s * (1.0 - s / n)).sum();
    let msb = ssb / (k - 1.0);
    let msw = ssw / (big_n - k);
    let n0 = (big_n - c.iter().map(|x| x.1 * x.1).sum::<f64>() / big_n) / (k - 1.0);
    let icc = (msb - msw) / (msb + (n0 - 1.0) * msw);
    if icc.is_nan() {
        icc
    } else {
        icc.max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_values() {
        assert!((binom_test_two_sided(7, 10, 0.5) - 0.34375).abs() < 1e-12);
        assert!((binom_test_two_sided(60, 100, 0.5) - 0.0569).abs() < 5e-5);
        let (l, h) = clopper_pearson(7, 10, 0.05);
        assert!((l - 0.3475).abs() < 5e-5 && (h - 0.9333).abs() < 5e-5);
        let (l, h) = wilson(7, 10, 0.05);
        assert!((l - 0.3968).abs() < 5e-5 && (h - 0.8922).abs() < 5e-5);
        assert!((clopper_pearson(0, 10, 0.05).1 - 0.3085).abs() < 5e-5);
    }

    #[test]
    fn holm_is_monotone() {
        let p = holm(&[0.01, 0.04, 0.03, f64::NAN]);
        assert!((p[0] - 0.03).abs() < 1e-12);
        assert!((p[2] - 0.06).abs() < 1e-12);
        assert!((p[1] - 0.06).abs() < 1e-12);
        assert!(p[3].is_nan());
    }
}
