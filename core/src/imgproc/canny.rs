//! OpenCV's `cv2.Canny(img, low, high)` (aperture 3, L1 gradient), reproduced to the bit.
//!
//! ESS is the mean absolute difference of two Canny edge maps with thresholds 200 / 500, so any
//! deviation from OpenCV's edge decisions moves the metric directly. The steps follow
//! `modules/imgproc/src/canny.cpp` of OpenCV 4.x/5.x:
//!
//! 1. 3x3 Sobel derivatives in 16-bit integers with `BORDER_REPLICATE` (no smoothing first).
//! 2. L1 magnitude `|dx| + |dy|`; on colour input, per pixel, the channel with the largest
//!    magnitude wins (the first channel on ties) and supplies `dx` and `dy` too.
//! 3. Integer thresholds: swap if `low > high`, then `floor` each (OpenCV's `cvFloor`).
//! 4. Non-maximum suppression in one of three directions chosen with the integer tangent test
//!    `tan(22.5 deg) * 2^15 = 13573`, comparing with `>` on one side and `>=` on the other along
//!    rows and columns, strictly on both sides along diagonals; magnitudes outside the image
//!    count as zero.
//! 5. Hysteresis: survivors with magnitude `> high` seed an 8-connected flood through survivors
//!    with magnitude `> low`; flooded pixels are 255, the rest 0.
//!
//! The `imageproc` crate's `canny` blurs first, uses the L2 norm and another neighbourhood, so it
//! is not a substitute.

use image::{GrayImage, RgbImage};

/// `tan(22.5 deg)` in Q15, as OpenCV rounds it.
const TG22: i32 = 13573;
const CANNY_SHIFT: u32 = 15;

/// Map states, as in OpenCV: a pixel that cannot be an edge, a weak candidate, an edge.
const NOT_EDGE: u8 = 1;
const CANDIDATE: u8 = 0;
const EDGE: u8 = 2;

/// OpenCV's `cvFloor` on x86-64: values that do not fit an `int` (and NaN) convert to
/// `i32::MIN`, which makes every gradient pass the threshold; mirrored so that huge thresholds
/// behave as they do in OpenCV rather than as "no edges".
fn cv_floor(v: f64) -> i32 {
    let f = v.floor();
    if !(-2_147_483_648.0..2_147_483_648.0).contains(&f) {
        i32::MIN
    } else {
        f as i32
    }
}

/// Sobel derivatives of one channel-interleaved 8-bit image, reduced to one `(dx, dy, |dx|+|dy|)`
/// per pixel by OpenCV's largest-magnitude channel rule.
fn gradients<const CN: usize>(src: &[u8], w: usize, h: usize) -> (Vec<i16>, Vec<i16>, Vec<i32>) {
    let n = w * h;
    let mut dxs = vec![0i16; n];
    let mut dys = vec![0i16; n];
    let mut mags = vec![0i32; n];
    let stride = w * CN;
    for y in 0..h {
        // BORDER_REPLICATE: the missing neighbour is the edge pixel itself.
        let up = &src[y.saturating_sub(1) * stride..][..stride];
        let mid = &src[y * stride..][..stride];
        let down = &src[(y + 1).min(h - 1) * stride..][..stride];
        for x in 0..w {
            let (l, m, r) = (x.saturating_sub(1) * CN, x * CN, (x + 1).min(w - 1) * CN);
            let mut best = (0i32, 0i32, -1i32);
            for c in 0..CN {
                let v = |row: &[u8], i: usize| i32::from(row[i + c]);
                let dx =
                    (v(up, r) - v(up, l)) + 2 * (v(mid, r) - v(mid, l)) + (v(down, r) - v(down, l));
                let dy = (v(down, l) + 2 * v(down, m) + v(down, r))
                    - (v(up, l) + 2 * v(up, m) + v(up, r));
                let mag = dx.abs() + dy.abs();
                // Strict comparison: on ties the earlier channel keeps the pixel, as in OpenCV.
                if mag > best.2 {
                    best = (dx, dy, mag);
                }
            }
            let i = y * w + x;
            // |dx|, |dy| <= 4 * 255, well inside i16 (OpenCV stores them as CV_16S).
            dxs[i] = best.0 as i16;
            dys[i] = best.1 as i16;
            mags[i] = best.2;
        }
    }
    (dxs, dys, mags)
}

/// Non-maximum suppression, double threshold and hysteresis on precomputed gradients.
fn edges_from_gradients(
    dxs: &[i16],
    dys: &[i16],
    mags: &[i32],
    w: usize,
    h: usize,
    low: i32,
    high: i32,
) -> Vec<u8> {
    // Magnitudes with a zero frame, so neighbours outside the image compare as 0.
    let mw = w + 2;
    let mut mag = vec![0i32; mw * (h + 2)];
    for y in 0..h {
        mag[(y + 1) * mw + 1..(y + 1) * mw + 1 + w].copy_from_slice(&mags[y * w..(y + 1) * w]);
    }
    // The edge map shares the frame layout; the frame itself can never become an edge.
    let mut map = vec![NOT_EDGE; mw * (h + 2)];
    let mut stack: Vec<usize> = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let p = (y + 1) * mw + x + 1;
            let m = mag[p];
            if m <= low {
                continue;
            }
            let xs = i32::from(dxs[y * w + x]);
            let ys = i32::from(dys[y * w + x]);
            let ax = xs.abs();
            let ay = ys.abs() << CANNY_SHIFT;
            let tg22x = ax * TG22;
            let is_max = if ay < tg22x {
                // Gradient within 22.5 deg of horizontal: compare left and right.
                m > mag[p - 1] && m >= mag[p + 1]
            } else {
                let tg67x = tg22x + (ax << (CANNY_SHIFT + 1));
                if ay > tg67x {
                    // Within 22.5 deg of vertical: compare above and below.
                    m > mag[p - mw] && m >= mag[p + mw]
                } else {
                    // Diagonal: the sign agreement of dx and dy picks which diagonal.
                    let up = if (xs ^ ys) < 0 {
                        p - mw + 1
                    } else {
                        p - mw - 1
                    };
                    let down = if (xs ^ ys) < 0 {
                        p + mw - 1
                    } else {
                        p + mw + 1
                    };
                    m > mag[up] && m > mag[down]
                }
            };
            if is_max {
                if m > high {
                    map[p] = EDGE;
                    stack.push(p);
                } else {
                    map[p] = CANDIDATE;
                }
            }
        }
    }
    while let Some(p) = stack.pop() {
        for q in [
            p - mw - 1,
            p - mw,
            p - mw + 1,
            p - 1,
            p + 1,
            p + mw - 1,
            p + mw,
            p + mw + 1,
        ] {
            if map[q] == CANDIDATE {
                map[q] = EDGE;
                stack.push(q);
            }
        }
    }
    let mut out = vec![0u8; w * h];
    for y in 0..h {
        for x in 0..w {
            if map[(y + 1) * mw + x + 1] == EDGE {
                out[y * w + x] = 255;
            }
        }
    }
    out
}

fn canny_impl<const CN: usize>(src: &[u8], w: u32, h: u32, low: f64, high: f64) -> GrayImage {
    let (wu, hu) = (w as usize, h as usize);
    if wu == 0 || hu == 0 {
        return GrayImage::new(w, h);
    }
    let (low, high) = if low > high { (high, low) } else { (low, high) };
    let (dxs, dys, mags) = gradients::<CN>(src, wu, hu);
    let out = edges_from_gradients(&dxs, &dys, &mags, wu, hu, cv_floor(low), cv_floor(high));
    GrayImage::from_raw(w, h, out).unwrap_or_else(|| GrayImage::new(w, h))
}

/// Canny edges of an 8-bit gray image, identical to `cv2.Canny(img, low, high)` (aperture 3,
/// `L2gradient=False`). Output pixels are 0 or 255.
///
/// `low` and `high` may be given in either order. Note that with OpenCV's conversion a threshold
/// beyond the `i32` range (or NaN) becomes `i32::MIN`, i.e. lets every local maximum through.
pub fn canny_gray(img: &GrayImage, low: f64, high: f64) -> GrayImage {
    let (w, h) = img.dimensions();
    canny_impl::<1>(img.as_raw(), w, h, low, high)
}

/// Canny edges of an 8-bit RGB image, identical to `cv2.Canny(img, low, high)` on the 3-channel
/// array: each pixel uses the channel with the largest L1 gradient (the first of R, G, B on
/// ties). Output pixels are 0 or 255.
///
/// Same threshold conventions as [`canny_gray`].
pub fn canny_rgb(img: &RgbImage, low: f64, high: f64) -> GrayImage {
    let (w, h) = img.dimensions();
    canny_impl::<3>(img.as_raw(), w, h, low, high)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_images_have_no_edges() {
        let g = GrayImage::from_pixel(40, 30, image::Luma([123]));
        assert!(canny_gray(&g, 200.0, 500.0).pixels().all(|p| p.0[0] == 0));
        assert!(canny_gray(&g, 0.0, 0.0).pixels().all(|p| p.0[0] == 0));
        let c = RgbImage::from_pixel(17, 9, image::Rgb([1, 250, 37]));
        assert!(canny_rgb(&c, 200.0, 500.0).pixels().all(|p| p.0[0] == 0));
    }

    #[test]
    fn step_edge_is_found_once() {
        // A vertical step: Sobel responds on the two columns either side of it; NMS keeps the
        // left one (`>` against the left neighbour, `>=` against the right).
        let g = GrayImage::from_fn(12, 8, |x, _| image::Luma([if x < 6 { 0 } else { 200 }]));
        let e = canny_gray(&g, 200.0, 500.0);
        for y in 0..8 {
            let row: Vec<u8> = (0..12).map(|x| e.get_pixel(x, y).0[0]).collect();
            let mut want = vec![0u8; 12];
            want[5] = 255;
            assert_eq!(row, want, "row {y}");
        }
    }

    #[test]
    fn thresholds_order_does_not_matter() {
        let g = GrayImage::from_fn(20, 20, |x, y| {
            image::Luma([((x * 37 + y * 11) % 256) as u8])
        });
        assert_eq!(canny_gray(&g, 500.0, 200.0), canny_gray(&g, 200.0, 500.0));
    }

    #[test]
    fn degenerate_sizes() {
        assert_eq!(
            canny_gray(&GrayImage::new(0, 0), 1.0, 2.0).dimensions(),
            (0, 0)
        );
        let one = GrayImage::from_pixel(1, 1, image::Luma([255]));
        assert_eq!(canny_gray(&one, 1.0, 2.0).get_pixel(0, 0).0[0], 0);
    }

    #[test]
    fn cv_floor_matches_opencv_conversion() {
        assert_eq!(cv_floor(200.0), 200);
        assert_eq!(cv_floor(200.9), 200);
        assert_eq!(cv_floor(-0.5), -1);
        assert_eq!(cv_floor(f64::NAN), i32::MIN);
        assert_eq!(cv_floor(1e12), i32::MIN);
    }
}
