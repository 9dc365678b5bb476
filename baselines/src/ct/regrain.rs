//! The regraining post-process of Pitié et al. 2007 (`regrain.m` of frcs/colour-transfer, commit
//! 50397f0): keep the colours of the graded image and the gradients of the original, solved
//! top-down on an image pyramid with a few relaxed Jacobi sweeps per level.
//!
//! Per level (`level` 0 at full size, `h = 2^-level`), with `I0` the original, `IR` the graded
//! image and `IRR` the estimate:
//! - `dI = sqrt(sum_c (Gx^2 + Gy^2))` with central differences `Gx = I0(x+1) - I0(x-1)` (edges
//!   replicated);
//! - `psi = min(256 dI / 5, 1)`, `phi = 30 / (1 + 10 dI / max(smoothness, eps)) * h`, and
//!   `phi_n = (phi(neighbour n) + phi) / 2` for the right, lower, left and upper neighbours;
//! - each sweep: `IRR <- (psi IR + sum_n phi_n (IRR(n) - I0(n) + I0)) / (psi + sum_n phi_n + eps)
//!   * (1 - rho) + rho IRR` with `rho = 1/5`, all neighbours read from the previous sweep.
//!
//! The pyramid: while more than one sweep count is left and both halved sizes
//! (`ceil(size / 2)`) exceed 20, all three images are shrunk with MATLAB's bilinear
//! `imresize`, the coarser level is solved, and its estimate is enlarged back as the starting
//! point. At the top, the estimate starts as the original image.

use super::float_image::FloatImage;
use super::resize::resize_bilinear;

/// MATLAB's `eps`, used by the reference in `max(smoothness, eps)` and `den + eps`.
const MATLAB_EPS: f64 = f64::EPSILON;

/// The reference's sweep counts per pyramid level, finest first.
pub const REFERENCE_NBITS: [usize; 6] = [4, 16, 32, 64, 64, 64];

/// Why regraining could not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RegrainError {
    /// The two images differ in size.
    #[error("original is {0}x{1} but graded is {2}x{3}")]
    SizeMismatch(usize, usize, usize, usize),
    /// An image has no pixels.
    #[error("the images have no pixels")]
    Empty,
    /// `nbits` is empty.
    #[error("nbits must list at least one sweep count")]
    NoLevels,
    /// `smoothness` is negative or not finite.
    #[error("smoothness must be finite and >= 0, got {0}")]
    BadSmoothness(f64),
}

/// `regrain(I0, IR, smoothness)` with the sweep counts `nbits` (finest level first; the
/// reference uses [`REFERENCE_NBITS`]). `original` is the source image, `graded` the colour
/// transfer result (unclipped); the result is unclipped too.
pub fn regrain(
    original: &FloatImage,
    graded: &FloatImage,
    nbits: &[usize],
    smoothness: f64,
) -> Result<FloatImage, RegrainError> {
    if (original.width(), original.height()) != (graded.width(), graded.height()) {
        return Err(RegrainError::SizeMismatch(
            original.width(),
            original.height(),
            graded.width(),
            graded.height(),
        ));
    }
    if original.pixels().is_empty() {
        return Err(RegrainError::Empty);
    }
    if nbits.is_empty() {
        return Err(RegrainError::NoLevels);
    }
    if !(smoothness.is_finite() && smoothness >= 0.0) {
        return Err(RegrainError::BadSmoothness(smoothness));
    }
    Ok(regrain_rec(
        original.clone(),
        original,
        graded,
        nbits,
        smoothness,
        0,
    ))
}

fn regrain_rec(
    irr: FloatImage,
    i0: &FloatImage,
    ir: &FloatImage,
    nbits: &[usize],
    smoothness: f64,
    level: i32,
) -> FloatImage {
    let (w, h) = (i0.width(), i0.height());
    let (w2, h2) = (w.div_ceil(2), h.div_ceil(2));
    let mut irr = irr;
    if nbits.len() > 1 && w2 > 20 && h2 > 20 {
        // Sizes are > 20, so the resizes cannot fail; keep the current estimate if they did.
        if let (Some(i02), Some(ir2), Some(irr2)) = (
            resize_bilinear(i0, w2, h2),
            resize_bilinear(ir, w2, h2),
            resize_bilinear(&irr, w2, h2),
        ) {
            let irr2 = regrain_rec(irr2, &i02, &ir2, &nbits[1..], smoothness, level + 1);
            if let Some(up) = resize_bilinear(&irr2, w, h) {
                irr = up;
            }
        }
    }
    solve(irr, i0, ir, nbits[0], smoothness, level)
}

fn solve(
    irr: FloatImage,
    i0: &FloatImage,
    ir: &FloatImage,
    sweeps: usize,
    smoothness: f64,
    level: i32,
) -> FloatImage {
    let (w, h) = (i0.width(), i0.height());
    let n = w * h;
    let right = |x: usize| (x + 1).min(w - 1);
    let left = |x: usize| x.saturating_sub(1);
    let down = |y: usize| (y + 1).min(h - 1);
    let up = |y: usize| y.saturating_sub(1);
    let a = i0.pixels();

    let scale = 0.5f64.powi(level);
    let mut psi = vec![0.0f64; n];
    let mut phi = vec![0.0f64; n];
    for y in 0..h {
        for x in 0..w {
            let (pr, pl) = (a[y * w + right(x)], a[y * w + left(x)]);
            let (pd, pu) = (a[down(y) * w + x], a[up(y) * w + x]);
            let mut s = 0.0;
            for c in 0..3 {
                let gx = pr[c] - pl[c];
                let gy = pd[c] - pu[c];
                s += gx * gx + gy * gy;
            }
            let di = s.sqrt();
            psi[y * w + x] = (256.0 * di / 5.0).min(1.0);
            phi[y * w + x] = 30.0 / (1.0 + 10.0 * di / smoothness.max(MATLAB_EPS)) * scale;
        }
    }
    // Neighbour order as in the reference: 1 right, 2 down, 3 left, 4 up.
    let mut nb = vec![[0usize; 4]; n];
    let mut phin = vec![[0.0f64; 4]; n];
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let idx = [
                y * w + right(x),
                down(y) * w + x,
                y * w + left(x),
                up(y) * w + x,
            ];
            nb[i] = idx;
            phin[i] = idx.map(|j| (phi[j] + phi[i]) / 2.0);
        }
    }

    let rho = 1.0 / 5.0;
    let g = ir.pixels();
    let mut cur = irr.into_pixels();
    let mut next = cur.clone();
    for _ in 0..sweeps {
        for i in 0..n {
            let p = phin[i];
            let den = psi[i] + p[0] + p[1] + p[2] + p[3];
            let mut out = [0.0f64; 3];
            for c in 0..3 {
                let mut num = psi[i] * g[i][c];
                for k in 0..4 {
                    let j = nb[i][k];
                    num += p[k] * (cur[j][c] - a[j][c] + a[i][c]);
                }
                out[c] = num / (den + MATLAB_EPS) * (1.0 - rho) + rho * cur[i][c];
            }
            next[i] = out;
        }
        std::mem::swap(&mut cur, &mut next);
    }
    FloatImage::new(w, h, cur).unwrap_or_else(|| i0.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_images_stay_finite() {
        let i0 = FloatImage::filled(50, 45, [0.5, 0.5, 0.5]);
        let ir = FloatImage::filled(50, 45, [0.2, 0.7, 0.1]);
        let out = regrain(&i0, &ir, &REFERENCE_NBITS, 1.0).unwrap();
        assert!(out.pixels().iter().flatten().all(|v| v.is_finite()));
    }

    #[test]
    fn size_mismatch_is_an_error() {
        let a = FloatImage::filled(4, 4, [0.0; 3]);
        let b = FloatImage::filled(4, 5, [0.0; 3]);
        assert!(matches!(
            regrain(&a, &b, &REFERENCE_NBITS, 1.0),
            Err(RegrainError::SizeMismatch(..))
        ));
    }
}
