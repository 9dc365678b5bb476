//! scikit-image's `structural_similarity` for 8-bit images, in `f64`.
//!
//! EmoEditor's critic accepts an edit when the SSIM between OpenCV grays (window 51) lies in a
//! band, and the harness also reports SSIM as a structure-preservation statistic; both follow
//! scikit-image (`skimage.metrics.structural_similarity`, checked against 0.26):
//!
//! - local means, variances and covariance from a uniform `win_size` window
//!   (`scipy.ndimage.uniform_filter`) or, in Gaussian mode, a Gaussian of `sigma` truncated at
//!   `3.5 sigma` (`scipy.ndimage.gaussian_filter`, `mode='reflect'`);
//! - variances scaled by `NP / (NP - 1)` with `NP = win_size^2` (sample covariance, the default
//!   in both modes) unless population covariance is asked for;
//! - `K1 = 0.01`, `K2 = 0.03`, `C = (K * data_range)^2`;
//! - the mean of the SSIM map over the region left after cropping `(win_size - 1) / 2` pixels
//!   from every side; for colour images (`channel_axis=2`) the mean of the per-channel values.
//!
//! Uniform windows use exact integer box sums (8-bit inputs make every sum an integer), so the
//! cost does not grow with the window: the critic's 51-pixel window costs the same as 7.

use image::{GrayImage, RgbImage};

/// scikit-image's `K1`.
const K1: f64 = 0.01;
/// scikit-image's `K2`.
const K2: f64 = 0.03;
/// scikit-image's `truncate` for `gaussian_weights=True`: 11 taps at `sigma = 1.5`.
const GAUSSIAN_TRUNCATE: f64 = 3.5;

/// Parameters of [`ssim_gray`] and [`ssim_rgb`], named after scikit-image's arguments.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SsimOptions {
    /// Side of the sliding window (odd). In Gaussian mode it only sets the cropped border and
    /// `NP` of the sample-covariance factor, as in scikit-image; the filter width comes from
    /// `sigma`.
    pub win_size: usize,
    /// Gaussian-weighted statistics (`gaussian_weights=True`) instead of a uniform window.
    pub gaussian: bool,
    /// Standard deviation of the Gaussian window, in pixels (used only in Gaussian mode).
    pub sigma: f64,
    /// Dynamic range of the pixel values (`data_range`): 255 for 8-bit images.
    pub data_range: f64,
    /// Normalise variances by `NP - 1` instead of `NP` (`use_sample_covariance`, default true).
    pub sample_covariance: bool,
}

impl Default for SsimOptions {
    /// scikit-image's defaults for `uint8` input: uniform 7x7 window, sample covariance,
    /// `data_range = 255`.
    fn default() -> Self {
        SsimOptions {
            win_size: 7,
            gaussian: false,
            sigma: 1.5,
            data_range: 255.0,
            sample_covariance: true,
        }
    }
}

impl SsimOptions {
    /// Uniform window of side `win_size`, otherwise the defaults (EmoEditor's critic uses 51).
    pub fn uniform(win_size: usize) -> Self {
        SsimOptions {
            win_size,
            ..SsimOptions::default()
        }
    }

    /// scikit-image's `gaussian_weights=True` with its defaults: `sigma = 1.5`, an 11-pixel
    /// window (radius `int(3.5 sigma + 0.5)`), and still sample covariance, because
    /// scikit-image leaves `use_sample_covariance=True` unless told otherwise.
    pub fn gaussian() -> Self {
        SsimOptions {
            gaussian: true,
            win_size: gaussian_window(1.5),
            ..SsimOptions::default()
        }
    }

    /// The settings scikit-image documents as matching Wang et al. (2004): Gaussian weights with
    /// `sigma = 1.5` and population covariance.
    pub fn wang2004() -> Self {
        SsimOptions {
            sample_covariance: false,
            ..SsimOptions::gaussian()
        }
    }
}

/// Window side scikit-image derives from `sigma` in Gaussian mode: `2 * int(3.5 sigma + 0.5) + 1`.
pub fn gaussian_window(sigma: f64) -> usize {
    2 * gaussian_radius(sigma) + 1
}

fn gaussian_radius(sigma: f64) -> usize {
    // `as` truncates like Python's int() for the non-negative values that reach here.
    (GAUSSIAN_TRUNCATE * sigma + 0.5) as usize
}

/// Why an SSIM could not be computed; each case is an exception in scikit-image.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SsimError {
    /// The two images differ in size.
    #[error(
        "SSIM needs images of the same size, got {a_width}x{a_height} and {b_width}x{b_height}"
    )]
    SizeMismatch {
        /// Width of the first image.
        a_width: u32,
        /// Height of the first image.
        a_height: u32,
        /// Width of the second image.
        b_width: u32,
        /// Height of the second image.
        b_height: u32,
    },
    /// The window does not fit inside the image.
    #[error("SSIM window {win_size} exceeds the image extent {width}x{height}")]
    WindowTooLarge {
        /// The requested window side.
        win_size: usize,
        /// Image width.
        width: u32,
        /// Image height.
        height: u32,
    },
    /// The window side is even, so it has no centre pixel.
    #[error("SSIM window size must be odd, got {0}")]
    EvenWindow(usize),
    /// Another option is out of its domain (see the message).
    #[error("invalid SSIM option: {0}")]
    InvalidOption(String),
}

/// Mean SSIM of two 8-bit gray images, as `structural_similarity(a, b, **opts)` with
/// `data_range` given.
pub fn ssim_gray(a: &GrayImage, b: &GrayImage, opts: &SsimOptions) -> Result<f64, SsimError> {
    check(a.dimensions(), b.dimensions(), opts)?;
    let (w, h) = a.dimensions();
    Ok(ssim_plane(
        a.as_raw(),
        b.as_raw(),
        1,
        w as usize,
        h as usize,
        opts,
    ))
}

/// Mean SSIM of two 8-bit RGB images, as `structural_similarity(a, b, channel_axis=2, ...)`: the
/// mean of the three per-channel values.
pub fn ssim_rgb(a: &RgbImage, b: &RgbImage, opts: &SsimOptions) -> Result<f64, SsimError> {
    check(a.dimensions(), b.dimensions(), opts)?;
    let (w, h) = a.dimensions();
    let per_channel: Vec<f64> = (0..3)
        .map(|c| {
            ssim_plane(
                &a.as_raw()[c..],
                &b.as_raw()[c..],
                3,
                w as usize,
                h as usize,
                opts,
            )
        })
        .collect();
    Ok(per_channel.iter().sum::<f64>() / 3.0)
}

/// scikit-image's argument checks, in its order (shape, extent, parity, then the rest).
fn check(a: (u32, u32), b: (u32, u32), opts: &SsimOptions) -> Result<(), SsimError> {
    if a != b {
        return Err(SsimError::SizeMismatch {
            a_width: a.0,
            a_height: a.1,
            b_width: b.0,
            b_height: b.1,
        });
    }
    let (w, h) = a;
    if opts.win_size > w as usize || opts.win_size > h as usize {
        return Err(SsimError::WindowTooLarge {
            win_size: opts.win_size,
            width: w,
            height: h,
        });
    }
    if opts.win_size.is_multiple_of(2) {
        return Err(SsimError::EvenWindow(opts.win_size));
    }
    if opts.win_size == 1 && opts.sample_covariance {
        // NP / (NP - 1) divides by zero (a ZeroDivisionError in scikit-image).
        return Err(SsimError::InvalidOption(
            "win_size 1 leaves no degree of freedom for the sample covariance".into(),
        ));
    }
    if opts.gaussian && !(opts.sigma >= 0.0 && opts.sigma.is_finite()) {
        return Err(SsimError::InvalidOption(format!(
            "sigma must be a finite non-negative number, got {}",
            opts.sigma
        )));
    }
    if !(opts.data_range > 0.0 && opts.data_range.is_finite()) {
        return Err(SsimError::InvalidOption(format!(
            "data_range must be a finite positive number, got {}",
            opts.data_range
        )));
    }
    Ok(())
}

/// The five local statistics at one pixel: means of x, y, x^2, y^2 and xy over the window.
type Stats = [f64; 5];

/// Constants of the SSIM formula for one set of options.
struct Formula {
    cov_norm: f64,
    c1: f64,
    c2: f64,
}

impl Formula {
    fn new(opts: &SsimOptions) -> Self {
        let np = (opts.win_size * opts.win_size) as f64;
        Formula {
            cov_norm: if opts.sample_covariance {
                np / (np - 1.0)
            } else {
                1.0
            },
            c1: (K1 * opts.data_range).powi(2),
            c2: (K2 * opts.data_range).powi(2),
        }
    }

    /// SSIM at one pixel, with scikit-image's expression shapes so that rounding stays at the
    /// 1e-16 level.
    #[inline]
    fn ssim(&self, [ux, uy, uxx, uyy, uxy]: Stats) -> f64 {
        let vx = self.cov_norm * (uxx - ux * ux);
        let vy = self.cov_norm * (uyy - uy * uy);
        let vxy = self.cov_norm * (uxy - ux * uy);
        let a1 = 2.0 * ux * uy + self.c1;
        let a2 = 2.0 * vxy + self.c2;
        let b1 = ux * ux + uy * uy + self.c1;
        let b2 = vx + vy + self.c2;
        (a1 * a2) / (b1 * b2)
    }
}

/// The five per-pixel products the statistics average, exact in integers.
#[inline]
fn products(x: u8, y: u8) -> [u64; 5] {
    let (x, y) = (u64::from(x), u64::from(y));
    [x, y, x * x, y * y, x * y]
}

/// SSIM of one channel of two interleaved 8-bit buffers (`stride` bytes between pixels).
fn ssim_plane(a: &[u8], b: &[u8], stride: usize, w: usize, h: usize, opts: &SsimOptions) -> f64 {
    let x: Vec<u8> = a.iter().step_by(stride).take(w * h).copied().collect();
    let y: Vec<u8> = b.iter().step_by(stride).take(w * h).copied().collect();
    let formula = Formula::new(opts);
    let pad = (opts.win_size - 1) / 2;
    let (cw, ch) = (w - 2 * pad, h - 2 * pad);
    let mut row = vec![0.0; cw];
    let mut total = 0.0;
    // numpy reduces the cropped (non-contiguous) view row by row, each row pairwise.
    let mut emit = |row: &[f64]| total += numpy_sum(row);
    if opts.gaussian {
        gaussian_rows(&x, &y, w, h, pad, opts.sigma, &formula, &mut row, &mut emit);
    } else {
        uniform_rows(&x, &y, w, h, opts.win_size, &formula, &mut row, &mut emit);
    }
    total / (cw * ch) as f64
}

/// numpy's pairwise summation of a contiguous `f64` run (`pairwise_sum` in its loops): plain
/// below 8 values, eight interleaved accumulators up to 128, halving above. Matching it keeps
/// results equal to scikit-image's to the last bit more often; the metric would not notice.
fn numpy_sum(v: &[f64]) -> f64 {
    let n = v.len();
    if n < 8 {
        v.iter().fold(0.0, |acc, &x| acc + x)
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&v[..8]);
        let blocks = n - n % 8;
        for chunk in v[8..blocks].chunks_exact(8) {
            for (acc, &x) in r.iter_mut().zip(chunk) {
                *acc += x;
            }
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &x in &v[blocks..] {
            res += x;
        }
        res
    } else {
        let half = (n / 2) - (n / 2) % 8;
        numpy_sum(&v[..half]) + numpy_sum(&v[half..])
    }
}

/// Uniform window: exact integer window sums, slid down the image (column sums) and along each
/// row, so the cost does not depend on the window size. Each output row of the SSIM map is
/// handed to `emit`.
#[allow(clippy::too_many_arguments)]
fn uniform_rows(
    x: &[u8],
    y: &[u8],
    w: usize,
    h: usize,
    win: usize,
    formula: &Formula,
    row: &mut [f64],
    emit: &mut impl FnMut(&[f64]),
) {
    let np = (win * win) as f64;
    // u64: a window sum of 255^2 over any realistic window fits with room to spare.
    let mut cols = vec![[0u64; 5]; w];
    for r in 0..win {
        for (c, acc) in cols.iter_mut().enumerate() {
            let p = products(x[r * w + c], y[r * w + c]);
            for k in 0..5 {
                acc[k] += p[k];
            }
        }
    }
    for top in 0..=h - win {
        if top > 0 {
            let (out_r, in_r) = ((top - 1) * w, (top + win - 1) * w);
            for (c, acc) in cols.iter_mut().enumerate() {
                let old = products(x[out_r + c], y[out_r + c]);
                let new = products(x[in_r + c], y[in_r + c]);
                for k in 0..5 {
                    acc[k] = acc[k] + new[k] - old[k];
                }
            }
        }
        let mut sum = [0u64; 5];
        for acc in &cols[..win] {
            for k in 0..5 {
                sum[k] += acc[k];
            }
        }
        for (left, out) in row.iter_mut().enumerate() {
            if left > 0 {
                let (old, new) = (&cols[left - 1], &cols[left + win - 1]);
                for k in 0..5 {
                    sum[k] = sum[k] + new[k] - old[k];
                }
            }
            *out = formula.ssim(sum.map(|v| v as f64 / np));
        }
        emit(row);
    }
}

/// scipy's `_gaussian_kernel1d`: `exp(-x^2 / (2 sigma^2))` normalised to sum 1.
fn gaussian_kernel(sigma: f64, radius: usize) -> Vec<f64> {
    let r = radius as i64;
    let s2 = sigma * sigma;
    let phi: Vec<f64> = (-r..=r)
        .map(|i| (-0.5 / s2 * (i * i) as f64).exp())
        .collect();
    let sum = numpy_sum(&phi);
    phi.into_iter().map(|p| p / sum).collect()
}

/// scipy's `mode='reflect'` (half-sample symmetric, `d c b a | a b c d | d c b a`).
fn reflect(i: i64, n: usize) -> usize {
    let n = n as i64;
    let period = 2 * n;
    let k = i.rem_euclid(period);
    (if k >= n { period - 1 - k } else { k }) as usize
}

/// Gaussian window: `gaussian_filter` along rows (axis 0) then columns (axis 1), each a
/// symmetric correlation summed the way scipy's `correlate1d` sums symmetric kernels (centre
/// tap first, then pairs from the outermost inwards), evaluated on the cropped region only.
#[allow(clippy::too_many_arguments)]
fn gaussian_rows(
    x: &[u8],
    y: &[u8],
    w: usize,
    h: usize,
    pad: usize,
    sigma: f64,
    formula: &Formula,
    row: &mut [f64],
    emit: &mut impl FnMut(&[f64]),
) {
    let cw = row.len();
    // scipy skips axes whose sigma is (almost) zero: the filter is then the identity.
    let radius = if sigma > 1e-15 {
        gaussian_radius(sigma)
    } else {
        0
    };
    let kernel = if radius > 0 {
        gaussian_kernel(sigma, radius)
    } else {
        vec![1.0]
    };
    let centre = kernel[radius];
    let plane: Vec<[f64; 5]> = x
        .iter()
        .zip(y)
        .map(|(&p, &q)| products(p, q).map(|v| v as f64))
        .collect();
    // Reflected neighbour indices of each cropped column, outermost pair first.
    let col_pairs: Vec<Vec<(usize, usize)>> = (0..cw)
        .map(|c| {
            let col = (c + pad) as i64;
            (1..=radius as i64)
                .rev()
                .map(|j| (reflect(col - j, w), reflect(col + j, w)))
                .collect()
        })
        .collect();
    let weights: Vec<f64> = (1..=radius).rev().map(|j| kernel[radius + j]).collect();
    let mut vert = vec![[0.0f64; 5]; w];
    for r in 0..h - 2 * pad {
        let rr = (r + pad) as i64;
        let row_pairs: Vec<(usize, usize)> = (1..=radius as i64)
            .rev()
            .map(|j| (reflect(rr - j, h) * w, reflect(rr + j, h) * w))
            .collect();
        let mid = (r + pad) * w;
        for (c, out) in vert.iter_mut().enumerate() {
            let mut acc = plane[mid + c].map(|v| v * centre);
            for (&(up, down), &wt) in row_pairs.iter().zip(&weights) {
                let (u, d) = (&plane[up + c], &plane[down + c]);
                for k in 0..5 {
                    acc[k] += (u[k] + d[k]) * wt;
                }
            }
            *out = acc;
        }
        for (c, out) in row.iter_mut().enumerate() {
            let mut acc = vert[c + pad].map(|v| v * centre);
            for (&(left, right), &wt) in col_pairs[c].iter().zip(&weights) {
                let (l, rt) = (&vert[left], &vert[right]);
                for k in 0..5 {
                    acc[k] += (l[k] + rt[k]) * wt;
                }
            }
            *out = formula.ssim(acc);
        }
        emit(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(w: u32, h: u32, seed: u32) -> GrayImage {
        let mut s = seed;
        GrayImage::from_fn(w, h, |_, _| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            image::Luma([(s >> 24) as u8])
        })
    }

    #[test]
    fn identical_images_score_one() {
        let a = noise(40, 30, 1);
        for opts in [
            SsimOptions::default(),
            SsimOptions::uniform(29),
            SsimOptions::gaussian(),
            SsimOptions::wang2004(),
        ] {
            let s = ssim_gray(&a, &a, &opts).unwrap();
            assert!((s - 1.0).abs() < 1e-12, "{opts:?}: {s}");
        }
        let rgb = RgbImage::from_fn(20, 20, |x, y| image::Rgb([x as u8, y as u8, 3]));
        assert!((ssim_rgb(&rgb, &rgb, &SsimOptions::default()).unwrap() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn errors_instead_of_panics() {
        let a = noise(10, 8, 1);
        let b = noise(8, 10, 2);
        assert!(matches!(
            ssim_gray(&a, &b, &SsimOptions::default()),
            Err(SsimError::SizeMismatch { .. })
        ));
        assert!(matches!(
            ssim_gray(&a, &a, &SsimOptions::uniform(9)),
            Err(SsimError::WindowTooLarge { .. })
        ));
        assert!(matches!(
            ssim_gray(&a, &a, &SsimOptions::uniform(6)),
            Err(SsimError::EvenWindow(6))
        ));
        assert!(matches!(
            ssim_gray(&a, &a, &SsimOptions::uniform(1)),
            Err(SsimError::InvalidOption(_))
        ));
        let tiny = GrayImage::new(1, 1);
        assert!(ssim_gray(&tiny, &tiny, &SsimOptions::uniform(51)).is_err());
    }

    #[test]
    fn window_equal_to_image_is_allowed() {
        let a = noise(7, 7, 3);
        let b = noise(7, 7, 4);
        let s = ssim_gray(&a, &b, &SsimOptions::default()).unwrap();
        assert!(s.is_finite() && s < 1.0);
    }

    #[test]
    fn gaussian_defaults() {
        assert_eq!(gaussian_window(1.5), 11);
        assert_eq!(SsimOptions::gaussian().win_size, 11);
        let k = gaussian_kernel(1.5, 5);
        assert!((k.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        assert_eq!(reflect(-1, 5), 0);
        assert_eq!(reflect(-2, 5), 1);
        assert_eq!(reflect(5, 5), 4);
        assert_eq!(reflect(6, 5), 3);
        assert_eq!(reflect(-3, 1), 0);
    }
}
