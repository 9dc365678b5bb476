//! CLIPstyler's patch augmentation, differentiable with respect to the image:
//! `RandomCrop(crop)` -> `RandomPerspective(distortion_scale 0.5, p 1, fill 0, bilinear)` ->
//! `Resize(224)`, plus PyTorch's `F.interpolate` (bilinear and bicubic, `align_corners=False`)
//! written as matmuls with interpolation matrices.
//!
//! Semantics follow torchvision 0.2x (`transforms.RandomCrop.get_params`,
//! `RandomPerspective.get_params`, `_get_perspective_coeffs`, `functional_tensor._perspective_grid`,
//! `_apply_grid_transform` with a fill: the image is sampled together with a channel of ones and
//! multiplied by it, so border pixels fade to the fill) and PyTorch's `grid_sample` (bilinear,
//! zeros padding, `align_corners=False`).
//!
//! Random draws (portable, not PyTorch's generator) come from a caller's `rand::Rng`, per
//! crop in this order: crop top `i` in `0..=h-crop`, crop left `j` in `0..=w-crop` (no draw
//! when the crop covers the image, as torchvision), then the perspective's eight integers in
//! torchvision's order (top-left x, y; top-right x, y; bottom-right x, y; bottom-left x, y).
//! torchvision's `torch.rand(1) < p` draw is not made (p = 1).

use candle_core::{Device, Result, Tensor};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Row-major (out, in) matrix of PyTorch's bilinear interpolation along one axis,
/// `align_corners=False`, output size given (scale = in / out). Equals torchvision's
/// antialiased resize when upsampling.
pub fn bilinear_matrix(input: usize, output: usize) -> Vec<f32> {
    let scale = input as f64 / output as f64;
    let mut m = vec![0f32; output * input];
    for o in 0..output {
        let src = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
        let i0 = (src.floor() as usize).min(input - 1);
        let i1 = if i0 < input - 1 { i0 + 1 } else { i0 };
        let l1 = src - i0 as f64;
        let l0 = 1.0 - l1;
        m[o * input + i0] += l0 as f32;
        m[o * input + i1] += l1 as f32;
    }
    m
}

/// Row-major (out, in) matrix of PyTorch's bicubic interpolation along one axis
/// (`upsample_bicubic2d`: A = -0.75, `align_corners=False`, indices clamped to the border,
/// no antialiasing).
pub fn bicubic_matrix(input: usize, output: usize) -> Vec<f32> {
    const A: f64 = -0.75;
    let cc1 = |x: f64| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let cc2 = |x: f64| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    let scale = input as f64 / output as f64;
    let mut m = vec![0f32; output * input];
    for o in 0..output {
        let real = (o as f64 + 0.5) * scale - 0.5;
        let base = real.floor();
        let t = real - base;
        let w = [cc2(t + 1.0), cc1(t), cc1(1.0 - t), cc2(2.0 - t)];
        for (k, wk) in w.iter().enumerate() {
            let idx = (base as i64 - 1 + k as i64).clamp(0, input as i64 - 1) as usize;
            m[o * input + idx] += *wk as f32;
        }
    }
    m
}

/// Applies separable interpolation matrices (out_h, h) and (out_w, w) to (..., h, w).
fn separable(x: &Tensor, mh: Vec<f32>, mw: Vec<f32>, oh: usize, ow: usize) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let n = dims.len();
    let (h, w) = (dims[n - 2], dims[n - 1]);
    let lead: usize = dims[..n - 2].iter().product();
    let dev = x.device();
    let mh = Tensor::from_vec(mh, (oh, h), dev)?.to_dtype(x.dtype())?;
    let mwt = Tensor::from_vec(mw, (ow, w), dev)?
        .to_dtype(x.dtype())?
        .t()?
        .contiguous()?;
    // Width first: (lead*h, w) @ (w, ow).
    let y = x
        .reshape((lead * h, w))?
        .matmul(&mwt)?
        .reshape((lead, h, ow))?;
    let y = mh.broadcast_left(lead)?.matmul(&y)?;
    let mut out = dims[..n - 2].to_vec();
    out.extend([oh, ow]);
    y.reshape(out)
}

/// `F.interpolate(x, size=(oh, ow), mode='bilinear', align_corners=False)` for (..., h, w).
pub fn interpolate_bilinear(x: &Tensor, oh: usize, ow: usize) -> Result<Tensor> {
    let dims = x.dims();
    let (h, w) = (dims[dims.len() - 2], dims[dims.len() - 1]);
    if (h, w) == (oh, ow) {
        return Ok(x.clone());
    }
    separable(x, bilinear_matrix(h, oh), bilinear_matrix(w, ow), oh, ow)
}

/// `F.interpolate(x, size=(oh, ow), mode='bicubic', align_corners=False)` for (..., h, w).
/// Same-size calls return `x` (PyTorch's weights are exactly 0, 1, 0, 0 there).
pub fn interpolate_bicubic(x: &Tensor, oh: usize, ow: usize) -> Result<Tensor> {
    let dims = x.dims();
    let (h, w) = (dims[dims.len() - 2], dims[dims.len() - 1]);
    if (h, w) == (oh, ow) {
        return Ok(x.clone());
    }
    separable(x, bicubic_matrix(h, oh), bicubic_matrix(w, ow), oh, ow)
}

/// The random parameters of one augmented patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchParams {
    /// Crop top row.
    pub top: usize,
    /// Crop left column.
    pub left: usize,
    /// Perspective end points (x, y): top-left, top-right, bottom-right, bottom-left.
    pub endpoints: [[i64; 2]; 4],
}

impl PatchParams {
    /// Draws one patch's parameters in the documented order.
    pub fn draw<R: Rng>(rng: &mut R, h: usize, w: usize, crop: usize, distortion: f64) -> Self {
        let (top, left) = if h == crop && w == crop {
            (0, 0)
        } else {
            (rng.gen_range(0..=h - crop), rng.gen_range(0..=w - crop))
        };
        Self {
            top,
            left,
            endpoints: perspective_endpoints(rng, crop, crop, distortion),
        }
    }
}

/// `RandomPerspective.get_params(width, height, distortion_scale)`'s end points.
pub fn perspective_endpoints<R: Rng>(
    rng: &mut R,
    width: usize,
    height: usize,
    distortion: f64,
) -> [[i64; 2]; 4] {
    let (w, h) = (width as i64, height as i64);
    let dw = (distortion * (width / 2) as f64) as i64;
    let dh = (distortion * (height / 2) as f64) as i64;
    let mut r = |lo: i64, hi: i64| rng.gen_range(lo..hi);
    let tl = [r(0, dw + 1), r(0, dh + 1)];
    let tr = [r(w - dw - 1, w), r(0, dh + 1)];
    let br = [r(w - dw - 1, w), r(h - dh - 1, h)];
    let bl = [r(0, dw + 1), r(h - dh - 1, h)];
    [tl, tr, br, bl]
}

/// torchvision's `_get_perspective_coeffs(startpoints, endpoints)`: the eight coefficients
/// mapping output pixels to input pixels, solved in f64 and rounded to f32 as torchvision does.
pub fn perspective_coeffs(start: &[[i64; 2]; 4], end: &[[i64; 2]; 4]) -> [f32; 8] {
    let mut a = [[0f64; 9]; 8];
    for i in 0..4 {
        let (p1x, p1y) = (end[i][0] as f64, end[i][1] as f64);
        let (p2x, p2y) = (start[i][0] as f64, start[i][1] as f64);
        a[2 * i] = [p1x, p1y, 1.0, 0.0, 0.0, 0.0, -p2x * p1x, -p2x * p1y, p2x];
        a[2 * i + 1] = [0.0, 0.0, 0.0, p1x, p1y, 1.0, -p2y * p1x, -p2y * p1y, p2y];
    }
    // Gaussian elimination with partial pivoting (the system is square and regular).
    for c in 0..8 {
        let p = (c..8)
            .max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))
            .unwrap_or(c);
        a.swap(c, p);
        for r in 0..8 {
            if r != c && a[c][c] != 0.0 {
                let pivot = a[c];
                let f = a[r][c] / pivot[c];
                for (v, p) in a[r].iter_mut().zip(pivot).skip(c) {
                    *v -= f * p;
                }
            }
        }
    }
    let mut out = [0f32; 8];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (a[i][8] / a[i][i]) as f32;
    }
    out
}

/// Gather indices and bilinear weights (already multiplied by the fill mask) of one
/// perspective-warped crop: four corners per output pixel, `size * size` pixels, indices into
/// the flattened (h * w) full image.
fn perspective_taps(p: &PatchParams, size: usize, full_w: usize) -> ([Vec<u32>; 4], [Vec<f32>; 4]) {
    let s = size as i64 - 1;
    let start = [[0, 0], [s, 0], [s, s], [0, s]];
    let c = perspective_coeffs(&start, &p.endpoints);
    let (ow, oh) = (size as f32, size as f32);
    let n = size * size;
    let mut idx: [Vec<u32>; 4] = std::array::from_fn(|_| Vec::with_capacity(n));
    let mut wts: [Vec<f32>; 4] = std::array::from_fn(|_| Vec::with_capacity(n));
    // torchvision: theta1 / (0.5 * ow), grid = num / den - 1; grid_sample then maps
    // ix = ((g + 1) * W - 1) / 2. Same f32 steps as PyTorch's.
    let r = [c[0] / (0.5 * ow), c[1] / (0.5 * ow), c[2] / (0.5 * ow)];
    let q = [c[3] / (0.5 * oh), c[4] / (0.5 * oh), c[5] / (0.5 * oh)];
    for yi in 0..size {
        let y = yi as f32 + 0.5;
        for xi in 0..size {
            let x = xi as f32 + 0.5;
            let den = x * c[6] + y * c[7] + 1.0;
            let gx = (x * r[0] + y * r[1] + r[2]) / den - 1.0;
            let gy = (x * q[0] + y * q[1] + q[2]) / den - 1.0;
            let ix = ((gx + 1.0) * ow - 1.0) / 2.0;
            let iy = ((gy + 1.0) * oh - 1.0) / 2.0;
            let x0 = ix.floor();
            let y0 = iy.floor();
            let (fx, fy) = (ix - x0, iy - y0);
            let corners = [
                (x0, y0, (1.0 - fx) * (1.0 - fy)),
                (x0 + 1.0, y0, fx * (1.0 - fy)),
                (x0, y0 + 1.0, (1.0 - fx) * fy),
                (x0 + 1.0, y0 + 1.0, fx * fy),
            ];
            let inside =
                |cx: f32, cy: f32| cx >= 0.0 && cy >= 0.0 && cx <= s as f32 && cy <= s as f32;
            let mask: f32 = corners
                .iter()
                .filter(|(cx, cy, _)| inside(*cx, *cy))
                .map(|(_, _, w)| *w)
                .sum();
            for (k, (cx, cy, w)) in corners.iter().enumerate() {
                if inside(*cx, *cy) {
                    let gi = (p.top + *cy as usize) * full_w + p.left + *cx as usize;
                    idx[k].push(gi as u32);
                    wts[k].push(w * mask);
                } else {
                    idx[k].push(0);
                    wts[k].push(0.0);
                }
            }
        }
    }
    (idx, wts)
}

/// Crops and warps `image` (1, c, h, w) into (n, c, crop, crop), one patch per entry of
/// `params`, then resizes each to `out` x `out` (bilinear, torchvision's `Resize(out)` of a
/// square tensor). Differentiable with respect to `image`.
pub fn augment_patches(
    image: &Tensor,
    params: &[PatchParams],
    crop: usize,
    out: usize,
) -> Result<Tensor> {
    let (b, c, h, w) = image.dims4()?;
    if b != 1 || crop > h || crop > w {
        candle_core::bail!(
            "augment: need one image of at least {crop}px, got {:?}",
            image.dims()
        );
    }
    for p in params {
        if p.top + crop > h || p.left + crop > w {
            candle_core::bail!("augment: crop at ({}, {}) leaves the image", p.top, p.left);
        }
    }
    let n = params.len();
    let pix = crop * crop;
    let mut idx = Vec::with_capacity(4 * n * pix);
    let mut wts = Vec::with_capacity(4 * n * pix);
    // Layout (n, 4, pix).
    for p in params {
        let (i, ws) = perspective_taps(p, crop, w);
        for k in 0..4 {
            idx.extend_from_slice(&i[k]);
            wts.extend_from_slice(&ws[k]);
        }
    }
    let dev: &Device = image.device();
    let idx = Tensor::from_vec(idx, 4 * n * pix, dev)?;
    let wts = Tensor::from_vec(wts, (1, n, 4, pix), dev)?.to_dtype(image.dtype())?;
    let flat = image.reshape((c, h * w))?;
    let warped = flat
        .index_select(&idx, 1)?
        .reshape((c, n, 4, pix))?
        .broadcast_mul(&wts)?
        .sum(2)?
        .reshape((c, n, crop, crop))?
        .transpose(0, 1)?;
    interpolate_bilinear(&warped.contiguous()?, out, out)
}
