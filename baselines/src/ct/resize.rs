//! MATLAB's `imresize(I, [rows cols], 'bilinear')` on float images, as `regrain.m` uses it.
//!
//! MATLAB's documented algorithm: per dimension, output pixel `x` (1-based) samples the input at
//! `u = x / s + 0.5 * (1 - 1/s)` with `s = out_len / in_len`; the triangle kernel is widened by
//! `1/s` and scaled by `s` when shrinking (antialiasing, on by default); each output pixel's
//! weights are normalised to sum to 1; indices outside the image are mirrored (symmetric
//! padding, the edge pixel repeated). The dimension with the smaller scale is resized first
//! (rows first on a tie).

use super::float_image::FloatImage;

/// One output sample's input indices (0-based) and normalised weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Contribution {
    /// Input indices, already mirrored into range.
    pub indices: Vec<usize>,
    /// Weights, summing to 1.
    pub weights: Vec<f64>,
}

fn triangle(x: f64) -> f64 {
    if (-1.0..0.0).contains(&x) {
        x + 1.0
    } else if (0.0..=1.0).contains(&x) {
        1.0 - x
    } else {
        0.0
    }
}

/// The bilinear (antialiased when shrinking) contributions for resizing a dimension of
/// `in_len` samples to `out_len` samples. Both lengths must be positive.
pub fn contributions(in_len: usize, out_len: usize) -> Vec<Contribution> {
    let scale = out_len as f64 / in_len as f64;
    let shrink = scale < 1.0;
    let kernel_width = if shrink { 2.0 / scale } else { 2.0 };
    let taps = kernel_width.ceil() as i64 + 2;
    let period = 2 * in_len as i64;
    (1..=out_len)
        .map(|x| {
            let u = x as f64 / scale + 0.5 * (1.0 - 1.0 / scale);
            let left = (u - kernel_width / 2.0).floor() as i64;
            let mut indices = Vec::with_capacity(taps as usize);
            let mut weights = Vec::with_capacity(taps as usize);
            for p in 0..taps {
                let idx = left + p; // 1-based, may be out of range
                let d = u - idx as f64;
                let w = if shrink {
                    scale * triangle(scale * d)
                } else {
                    triangle(d)
                };
                // Mirror: 1..=n, n..=1, repeating.
                let m = (idx - 1).rem_euclid(period);
                let mirrored = if m < in_len as i64 { m } else { period - 1 - m };
                indices.push(mirrored as usize);
                weights.push(w);
            }
            let sum: f64 = weights.iter().sum();
            if sum != 0.0 {
                weights.iter_mut().for_each(|w| *w /= sum);
            }
            // Zero weights add nothing; drop them to save work.
            let (indices, weights): (Vec<usize>, Vec<f64>) = indices
                .into_iter()
                .zip(weights)
                .filter(|&(_, w)| w != 0.0)
                .unzip();
            Contribution { indices, weights }
        })
        .collect()
}

/// Resizes `img` to `width` x `height` like MATLAB's `imresize(img, [height width], 'bilinear')`.
/// Returns `None` when a target dimension is zero.
pub fn resize_bilinear(img: &FloatImage, width: usize, height: usize) -> Option<FloatImage> {
    if width == 0 || height == 0 || img.width() == 0 || img.height() == 0 {
        return None;
    }
    let scale_rows = height as f64 / img.height() as f64;
    let scale_cols = width as f64 / img.width() as f64;
    let mut cur = img.clone();
    if scale_rows <= scale_cols {
        cur = resize_rows(&cur, height);
        cur = resize_cols(&cur, width);
    } else {
        cur = resize_cols(&cur, width);
        cur = resize_rows(&cur, height);
    }
    Some(cur)
}

fn resize_rows(img: &FloatImage, height: usize) -> FloatImage {
    if height == img.height() {
        return img.clone();
    }
    let w = img.width();
    let src = img.pixels();
    let contrib = contributions(img.height(), height);
    let mut out = Vec::with_capacity(w * height);
    for c in &contrib {
        for x in 0..w {
            let mut acc = [0.0f64; 3];
            for (&i, &wt) in c.indices.iter().zip(&c.weights) {
                let p = src[i * w + x];
                for k in 0..3 {
                    acc[k] += wt * p[k];
                }
            }
            out.push(acc);
        }
    }
    FloatImage::new(w, height, out).unwrap_or_else(|| img.clone())
}

fn resize_cols(img: &FloatImage, width: usize) -> FloatImage {
    if width == img.width() {
        return img.clone();
    }
    let (w, h) = (img.width(), img.height());
    let src = img.pixels();
    let contrib = contributions(w, width);
    let mut out = Vec::with_capacity(width * h);
    for y in 0..h {
        let row = &src[y * w..(y + 1) * w];
        for c in &contrib {
            let mut acc = [0.0f64; 3];
            for (&i, &wt) in c.indices.iter().zip(&c.weights) {
                let p = row[i];
                for k in 0..3 {
                    acc[k] += wt * p[k];
                }
            }
            out.push(acc);
        }
    }
    FloatImage::new(width, h, out).unwrap_or_else(|| img.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halving_uses_the_quarter_weights() {
        let c = contributions(8, 4);
        assert_eq!(c[1].indices, vec![1, 2, 3, 4]);
        assert_eq!(c[1].weights, vec![0.125, 0.375, 0.375, 0.125]);
        // Left edge mirrors index -1 onto 0.
        assert_eq!(c[0].indices, vec![0, 0, 1, 2]);
    }

    #[test]
    fn doubling_is_plain_bilinear_with_replicated_edges() {
        let c = contributions(4, 8);
        assert_eq!(c[0].indices, vec![0, 0]);
        assert_eq!(c[0].weights, vec![0.25, 0.75]);
        assert_eq!(c[1].indices, vec![0, 1]);
        assert_eq!(c[1].weights, vec![0.75, 0.25]);
        assert_eq!(c[7].indices, vec![3, 3]);
    }

    #[test]
    fn odd_scales_keep_constants_constant() {
        for (a, b) in [(45, 23), (23, 45), (43, 22), (7, 3), (3, 7), (21, 11)] {
            for c in contributions(a, b) {
                let s: f64 = c.weights.iter().sum();
                assert!((s - 1.0).abs() < 1e-14, "{a}->{b}: {s}");
                assert!(c.indices.iter().all(|&i| i < a));
            }
        }
        let img = FloatImage::filled(45, 43, [0.25, 0.5, 0.75]);
        let r = resize_bilinear(&img, 23, 22).unwrap();
        for p in r.pixels() {
            for (k, want) in [0.25, 0.5, 0.75].into_iter().enumerate() {
                assert!((p[k] - want).abs() < 1e-14);
            }
        }
    }
}
