//! OpenCV's `cv2.resize(src, (dw, dh))` with `INTER_LINEAR` on a one-channel `float32` array.
//!
//! ENRD's neutral-region mask is `cam > 0.5` after the 7x7 Grad-CAM map is upsampled to 224x224
//! this way (pytorch-grad-cam calls `cv2.resize`), so pixels near the 0.5 level depend on
//! OpenCV's exact arithmetic. The opencv-python wheels do not run the textbook `resize.cpp` loop
//! for this case but a vendor-optimised (IPP) one, whose arithmetic was pinned down by
//! comparison with OpenCV 4.14 and 5.0 on about 940,000 values of random sizes, all identical:
//!
//! - source coordinate `f = (d + 0.5) * (src / dst) - 0.5` in `f64`, `i = floor(f)`, weight
//!   `t = (f32)(f - i)`; indices clamped to the image (`t` is then irrelevant: both taps are the
//!   same pixel);
//! - a horizontal pass, then a vertical pass, each `fma(q - p, t, p)` in `f32` (a fused
//!   multiply-add, as the AVX2 code uses);
//! - sources one pixel wide or high take OpenCV's generic path instead: `f32` coordinates
//!   `(float)((d + 0.5) * scale - 0.5)`, weights `(1 - t, t)`, `p * w0 + q * w1` without fusing,
//!   and at the top and bottom borders unreset weights on a clamped row (`v * w0 + v * w1`);
//! - equal sizes return a copy.
//!
//! OpenCV 4.8 derives the coordinate slightly differently and disagrees in the last bit at
//! non-integer scale factors; the 7x7 -> 224x224 case is identical in 4.8, 4.14 and 5.0.

/// Why [`resize_linear_f32`] could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CvResizeError {
    /// The buffer does not hold `width * height` values.
    #[error("source buffer holds {len} values, but {width}x{height} needs {expected}")]
    LengthMismatch {
        /// Values in the buffer.
        len: usize,
        /// Declared width.
        width: usize,
        /// Declared height.
        height: usize,
        /// `width * height`.
        expected: usize,
    },
    /// A source or destination side is zero (OpenCV asserts on this).
    #[error("resize needs non-empty sizes, got {sw}x{sh} -> {dw}x{dh}")]
    Empty {
        /// Source width.
        sw: usize,
        /// Source height.
        sh: usize,
        /// Destination width.
        dw: usize,
        /// Destination height.
        dh: usize,
    },
}

/// One output position along an axis: the two source taps and the weight of the second.
#[derive(Clone, Copy)]
struct Tap {
    i0: usize,
    i1: usize,
    t: f32,
}

/// Taps of the optimised path: `f64` coordinate, `f32` fraction.
fn taps_fused(src: usize, dst: usize) -> Vec<Tap> {
    let ratio = src as f64 / dst as f64;
    let last = src as i64 - 1;
    (0..dst)
        .map(|d| {
            let f = (d as f64 + 0.5) * ratio - 0.5;
            let i = f.floor();
            let t = (f - i) as f32;
            let i = i as i64;
            Tap {
                i0: i.clamp(0, last) as usize,
                i1: (i + 1).clamp(0, last) as usize,
                t,
            }
        })
        .collect()
}

/// Taps of OpenCV's generic `resize.cpp` path: `f32` coordinate; along columns the weight is
/// reset to 0 when the index is clamped, along rows it is not.
fn taps_generic(src: usize, dst: usize, reset_at_border: bool) -> Vec<Tap> {
    let scale = 1.0 / (dst as f64 / src as f64);
    let last = src as i64 - 1;
    (0..dst)
        .map(|d| {
            let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let i = f.floor();
            let mut t = f - i;
            let i = i as i64;
            if reset_at_border && (i < 0 || i >= last) {
                t = 0.0;
            }
            Tap {
                i0: i.clamp(0, last) as usize,
                i1: (i + 1).clamp(0, last) as usize,
                t,
            }
        })
        .collect()
}

/// Resize a row-major `sw x sh` `f32` map to `dw x dh` exactly as
/// `cv2.resize(src, (dw, dh), interpolation=cv2.INTER_LINEAR)` does on a `float32` array.
pub fn resize_linear_f32(
    src: &[f32],
    sw: usize,
    sh: usize,
    dw: usize,
    dh: usize,
) -> Result<Vec<f32>, CvResizeError> {
    if sw == 0 || sh == 0 || dw == 0 || dh == 0 {
        return Err(CvResizeError::Empty { sw, sh, dw, dh });
    }
    let expected = sw * sh;
    if src.len() != expected {
        return Err(CvResizeError::LengthMismatch {
            len: src.len(),
            width: sw,
            height: sh,
            expected,
        });
    }
    if (sw, sh) == (dw, dh) {
        return Ok(src.to_vec());
    }
    if sw == 1 || sh == 1 {
        return Ok(generic(src, sw, sh, dw, dh));
    }
    let xs = taps_fused(sw, dw);
    let ys = taps_fused(sh, dh);
    let lerp = |p: f32, q: f32, t: f32| (q - p).mul_add(t, p);
    let mut rows = Vec::with_capacity(sh * dw);
    for row in src.chunks_exact(sw) {
        rows.extend(xs.iter().map(|x| lerp(row[x.i0], row[x.i1], x.t)));
    }
    let mut out = Vec::with_capacity(dw * dh);
    for y in &ys {
        let (r0, r1) = (&rows[y.i0 * dw..][..dw], &rows[y.i1 * dw..][..dw]);
        out.extend(r0.iter().zip(r1).map(|(&p, &q)| lerp(p, q, y.t)));
    }
    Ok(out)
}

/// OpenCV's generic separable linear resize (used for one-pixel-wide or -high sources).
fn generic(src: &[f32], sw: usize, sh: usize, dw: usize, dh: usize) -> Vec<f32> {
    let xs = taps_generic(sw, dw, true);
    let ys = taps_generic(sh, dh, false);
    let mut rows = Vec::with_capacity(sh * dw);
    for row in src.chunks_exact(sw) {
        rows.extend(xs.iter().map(|x| {
            if x.i0 == x.i1 {
                // Past the last full pair OpenCV copies the pixel instead of weighting two.
                row[x.i0]
            } else {
                row[x.i0] * (1.0 - x.t) + row[x.i1] * x.t
            }
        }));
    }
    let mut out = Vec::with_capacity(dw * dh);
    for y in &ys {
        let (b0, b1) = (1.0 - y.t, y.t);
        let (r0, r1) = (&rows[y.i0 * dw..][..dw], &rows[y.i1 * dw..][..dw]);
        out.extend(r0.iter().zip(r1).map(|(&p, &q)| p * b0 + q * b1));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_map_stays_constant() {
        let src = vec![0.75f32; 49];
        let out = resize_linear_f32(&src, 7, 7, 224, 224).unwrap();
        assert_eq!(out.len(), 224 * 224);
        assert!(out.iter().all(|&v| v == 0.75));
    }

    #[test]
    fn corners_take_the_corner_values() {
        let src: Vec<f32> = (0..49).map(|i| i as f32 / 48.0).collect();
        let out = resize_linear_f32(&src, 7, 7, 224, 224).unwrap();
        assert_eq!(out[0], src[0]);
        assert_eq!(out[224 * 224 - 1], src[48]);
    }

    #[test]
    fn one_pixel_sources_use_the_generic_path() {
        let out = resize_linear_f32(&[0.1, 0.9], 2, 1, 4, 3).unwrap();
        assert_eq!(out.len(), 12);
        assert!(out.iter().all(|v| (0.1 - 1e-7..=0.9 + 1e-7).contains(v)));
        let out = resize_linear_f32(&[0.3], 1, 1, 4, 4).unwrap();
        assert!(out.iter().all(|&v| (v - 0.3).abs() < 1e-7));
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(matches!(
            resize_linear_f32(&[0.0; 5], 7, 7, 224, 224),
            Err(CvResizeError::LengthMismatch { .. })
        ));
        assert!(matches!(
            resize_linear_f32(&[], 0, 7, 224, 224),
            Err(CvResizeError::Empty { .. })
        ));
        assert_eq!(
            resize_linear_f32(&[1.0, 2.0], 2, 1, 2, 1),
            Ok(vec![1.0, 2.0])
        );
    }
}
