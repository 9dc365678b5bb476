//! Vectorisable `exp` and `erf` and the row loops built on them (softmax, SiLU, GELU).
//!
//! libm's `expf`/`erff` are scalar calls, so every loop around them runs one value at a time;
//! on the UNet's attention scores and GEGLU activations that cost more than the matrix
//! products. These versions are branch-free polynomials that LLVM turns into SIMD code when a
//! loop is compiled for AVX2 or AVX-512 (the row loops below are defined with `multiversion!`,
//! which picks the widest the CPU has at run time). Plain multiplies and adds (no FMA
//! contraction), so every code path, vector or scalar, rounds the same way and gives the same
//! bits.
//!
//! - `exp`: Cephes' `expf` (range reduction by ln 2 in two parts, degree-5 minimax polynomial),
//!   within 2 ulp of the exact value on the whole range (checked against `f64::exp` in tests).
//! - `erf`: Abramowitz and Stegun 7.1.26 (absolute error 1.5e-7, below 6e-7 after rounding in
//!   `f32`), the approximation PyTorch's vectorised CPU `erf` uses for `F.gelu` on `float`.

/// Defines a function whose body is compiled three times, for AVX-512, for AVX2 and for the
/// baseline, and picks the widest the CPU has at run time. The body sits in an
/// `#[inline(always)]` function called from `#[target_feature]` wrappers, so it is always inlined
/// into them and vectorised at their width (a closure would be compiled once, at the baseline).
/// Helpers the body calls must be `#[inline(always)]` too. Exported for the integer image
/// kernels of `emobench-core` (Canny).
#[macro_export]
macro_rules! multiversion {
    ($(#[$attr:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$attr])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx2")]
            unsafe fn wide512($($arg: $ty),*) $(-> $ret)? {
                body($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2")]
            unsafe fn wide256($($arg: $ty),*) $(-> $ret)? {
                body($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU supports AVX-512F, checked just above.
                    return unsafe { wide512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU supports AVX2, checked just above.
                    return unsafe { wide256($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
const LOG2E: f32 = std::f32::consts::LOG2_E;
/// 1.5 * 2^23: adding it rounds a float below 2^22 in magnitude to an integer, kept in the low
/// mantissa bits.
const ROUND: f32 = 12_582_912.0;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
const EXP_P: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5,
];
/// Below this `exp` returns 0 (the exact value is subnormal or smaller).
const EXP_MIN: f32 = -87.33;
/// Above this `exp` saturates at e^88 (~1.65e38) instead of overflowing.
const EXP_MAX: f32 = 88.0;

/// `e^x`, to 2 ulp; 0 below -87.33 (where the result would be subnormal), e^88 above 88.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let c = x.clamp(EXP_MIN, EXP_MAX);
    let t = c * LOG2E + ROUND;
    let n = t - ROUND;
    let r = c - n * LN2_HI - n * LN2_LO;
    let mut p = EXP_P[0];
    for &k in &EXP_P[1..] {
        p = p * r + k;
    }
    let y = p * r * r + r + 1.0;
    // 2^n straight into the exponent field; n lies in [-126, 127] after the clamp.
    let n_int = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let scale = f32::from_bits(((n_int + 127) << 23) as u32);
    if x < EXP_MIN {
        0.0
    } else {
        y * scale
    }
}

const ERF_P: f32 = 0.327_591_1;
const ERF_A: [f32; 5] = [
    1.061_405_4,
    -1.453_152,
    1.421_413_7,
    -0.284_496_74,
    0.254_829_6,
];

/// `erf(x)` by Abramowitz and Stegun 7.1.26, absolute error below 6e-7 in `f32`.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + ERF_P * a);
    let mut p = ERF_A[0];
    for &k in &ERF_A[1..] {
        p = p * t + k;
    }
    let y = 1.0 - p * t * exp(-a * a);
    y.copysign(x)
}

/// The exact (erf) GELU, `0.5 x (1 + erf(x / sqrt 2))`.
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// SiLU, `x / (1 + e^-x)`.
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

/// Lanes of the partial sums: wide enough for one AVX-512 register.
const LANES: usize = 16;

/// Softmax of `row` in place. Weights too small to be normal numbers become 0: they change no
/// sum, and products on subnormals run ~100x slower.
#[inline(always)]
pub fn softmax_in_place(row: &mut [f32]) {
    let mut maxes = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for c in &mut chunks {
        for (m, &v) in maxes.iter_mut().zip(c) {
            *m = m.max(v);
        }
    }
    let max = chunks
        .remainder()
        .iter()
        .chain(&maxes)
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut sums = [0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for (s, v) in sums.iter_mut().zip(c) {
            *v = exp(*v - max);
            *s += *v;
        }
    }
    let mut tail = 0f32;
    for v in chunks.into_remainder() {
        *v = exp(*v - max);
        tail += *v;
    }
    let inv = 1.0 / (sums.iter().sum::<f32>() + tail);
    for v in row.iter_mut() {
        *v *= inv;
    }
}

multiversion! {
    /// Softmax of each `tk`-wide row of `scores` in place; with `causal`, row `i` (query
    /// `first_query + i`) keeps only the keys up to its own position and the rest become 0.
    pub fn softmax_rows(scores: &mut [f32], tk: usize, first_query: usize, causal: bool) {
        for (i, row) in scores.chunks_mut(tk.max(1)).enumerate() {
            let valid = if causal { (first_query + i + 1).min(tk) } else { tk };
            softmax_in_place(&mut row[..valid]);
            row[valid..].fill(0.0);
        }
    }
}

multiversion! {
    /// GEGLU on one row: `out = a * gelu(g)`.
    pub fn geglu_row(out: &mut [f32], a: &[f32], g: &[f32]) {
        for ((o, &a), &g) in out.iter_mut().zip(a).zip(g) {
            *o = a * gelu(g);
        }
    }
}

multiversion! {
    /// `dst = src * scale + shift`, then SiLU with `silu`; SiLU outputs too small to be normal
    /// numbers become 0 (arithmetic on subnormals is two orders of magnitude slower on x86).
    pub fn affine_silu(dst: &mut [f32], src: &[f32], scale: f32, shift: f32, silu_on: bool) {
        if silu_on {
            for (o, &v) in dst.iter_mut().zip(src) {
                let y = silu(v * scale + shift);
                *o = if y.abs() < f32::MIN_POSITIVE { 0.0 } else { y };
            }
        } else {
            for (o, &v) in dst.iter_mut().zip(src) {
                *o = v * scale + shift;
            }
        }
    }
}

multiversion! {
    /// Mean and biased variance of `xs` (see [`mean_var`]), vectorised.
    pub fn mean_var_wide(xs: &[f32]) -> (f64, f64) {
        mean_var(xs)
    }
}

/// Mean and biased variance of `xs`, accumulated in `f64` (two passes: the centred sum of
/// squares avoids the cancellation of E[x^2] - E[x]^2 on large activations).
#[inline(always)]
pub fn mean_var(xs: &[f32]) -> (f64, f64) {
    let len = xs.len().max(1) as f64;
    let mean = lane_sum(xs, |v| v as f64) / len;
    let var = lane_sum(xs, |v| {
        let d = v as f64 - mean;
        d * d
    }) / len;
    (mean, var)
}

/// Sum of `f(x)` over `xs` in `LANES` interleaved partial sums (a fixed order, so the result
/// does not depend on the vector width).
#[inline(always)]
fn lane_sum(xs: &[f32], f: impl Fn(f32) -> f64) -> f64 {
    let mut sums = [0f64; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for c in &mut chunks {
        for (s, &v) in sums.iter_mut().zip(c) {
            *s += f(v);
        }
    }
    let tail: f64 = chunks.remainder().iter().map(|&v| f(v)).sum();
    sums.iter().sum::<f64>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place between two finite `f32`.
    fn ulps(a: f32, b: f32) -> u32 {
        let key = |v: f32| {
            let i = v.to_bits() as i32;
            if i < 0 {
                i32::MIN - i
            } else {
                i
            }
        };
        key(a).abs_diff(key(b))
    }

    #[test]
    fn exp_is_within_two_ulp_of_the_exact_value() {
        let mut worst = 0;
        let mut x = -87.0f32;
        while x < 88.0 {
            let exact = (x as f64).exp() as f32;
            worst = worst.max(ulps(exp(x), exact));
            x += 1.37e-3;
        }
        assert!(worst <= 2, "worst {worst} ulp");
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn erf_is_within_the_abramowitz_stegun_bound() {
        // Reference: libm's erf in f64. The formula's own bound is 1.5e-7; rounding in f32
        // adds more near 0, where 1 - p t e^(-x^2) cancels (largest seen: 5.2e-7 at 0.061).
        let mut x = -6.0f32;
        while x < 6.0 {
            let d = (erf(x) as f64 - libm::erf(x as f64)).abs();
            assert!(d < 6e-7, "erf({x}) off by {d}");
            x += 7.3e-4;
        }
    }

    #[test]
    fn vector_and_scalar_paths_agree_bit_for_bit() {
        let xs: Vec<f32> = (0..1000).map(|i| (i as f32 - 500.0) * 0.173).collect();
        let ones = vec![1f32; xs.len()];
        let mut wide = vec![0f32; xs.len()];
        geglu_row(&mut wide, &ones, &xs);
        let scalar: Vec<f32> = xs.iter().map(|&x| gelu(x)).collect();
        assert_eq!(wide, scalar);
        affine_silu(&mut wide, &xs, 1.0, 0.0, true);
        let scalar: Vec<f32> = xs.iter().map(|&x| silu(x)).collect();
        assert_eq!(wide, scalar);
    }

    #[test]
    fn softmax_matches_f64_softmax() {
        let row: Vec<f32> = (0..77)
            .map(|i| ((i * 37) % 101) as f32 * 0.31 - 9.0)
            .collect();
        let max = row.iter().fold(f64::MIN, |m, &v| m.max(v as f64));
        let e: Vec<f64> = row.iter().map(|&v| (v as f64 - max).exp()).collect();
        let s: f64 = e.iter().sum();
        let mut got = row.clone();
        softmax_in_place(&mut got);
        for (g, e) in got.iter().zip(&e) {
            assert!((*g as f64 - e / s).abs() < 1e-7);
        }
    }
}
