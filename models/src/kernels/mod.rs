//! CPU kernels shared by the emotion predictor and the diffusion models: im2col, a row-major
//! `f32` GEMM, convolution on N x C x H x W buffers, and a fused group norm.
//!
//! candle's CPU convolution and its elementwise ops each make a full single-threaded pass over the
//! activations and allocate a fresh buffer; for Stable Diffusion's UNet and the ResNet predictor
//! that costs more than the matrix products. These kernels keep one product per convolution and
//! fuse the passes around it. Same `f32` arithmetic in a different order: results agree with
//! PyTorch to ~1e-6 relative.

use rayon::prelude::*;

/// Environment variable that, set to `1`, sends CPU tensors through candle's own operators
/// instead of the fused kernels below: the path a GPU runs, so that the fixture tests can check it
/// on a machine without one.
pub const CANDLE_OPS_ENV: &str = "EMOBENCH_CANDLE_OPS";

/// Whether the fused CPU kernels may be used (read once: unless `EMOBENCH_CANDLE_OPS=1`).
pub fn fused_enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var_os(CANDLE_OPS_ENV).is_none_or(|v| v != "1"))
}

/// Whether `t` takes the fused CPU path: contiguous or not, an `f32` tensor on the CPU while
/// [`fused_enabled`].
pub fn fused_cpu(t: &candle_core::Tensor) -> bool {
    fused_enabled() && t.device().is_cpu() && t.dtype() == candle_core::DType::F32
}

/// candle's `conv2d` (no groups, no dilation), the convolution of the candle-operator path. candle
/// 0.11's CPU convolution has no `bf16` kernel, so a `bf16` convolution on the CPU runs in `f32`
/// and rounds its output to `bf16`, as GPU `bf16` convolutions do (they accumulate in `f32`).
pub fn candle_conv2d(
    x: &candle_core::Tensor,
    weight: &candle_core::Tensor,
    padding: usize,
    stride: usize,
) -> candle_core::Result<candle_core::Tensor> {
    use candle_core::DType;
    if x.dtype() == DType::BF16 && x.device().is_cpu() {
        return x
            .to_dtype(DType::F32)?
            .conv2d(&weight.to_dtype(DType::F32)?, padding, stride, 1, 1)?
            .to_dtype(DType::BF16);
    }
    x.conv2d(weight, padding, stride, 1, 1)
}

pub mod conv_op;
pub mod fastmath;
pub mod gram_op;
pub mod style_losses;
pub mod vgg_trunk;
pub mod vit;
mod winograd;
mod winograd_rows;

pub use winograd::{conv3x3_winograd, conv3x3_winograd_from, WinogradTile, WinogradWeights};
/// The 1-D input and output transforms, for the predictor's C x N x H x W Winograd.
pub(crate) use winograd_rows::{
    finish_row, input_tiles, output_tiles, PlaneGrid, RowEpilogue, RowScratch, M_SLACK,
};

/// Unfolds images laid out C x N x H x W (one image: plain C x H x W) into the (C k k) x (N Ho Wo)
/// patch matrix, zero-padded: row (c, ky, kx), column (n, oy, ox), matching the (out, in, k, k)
/// weight layout of PyTorch convolutions. `out` must hold `c k k n ho wo` values.
#[allow(clippy::too_many_arguments)]
pub fn im2col(
    data: &[f32],
    c: usize,
    n: usize,
    h: usize,
    w: usize,
    k: usize,
    stride: usize,
    pad: usize,
    out: &mut [f32],
) {
    let ho = (h + 2 * pad - k) / stride + 1;
    im2col_rows(data, (c, n, h, w), (k, stride, pad), 0..ho, out);
}

/// [`im2col`] restricted to the output rows `rows`: the columns are (n, oy in rows, ox).
pub fn im2col_rows(
    data: &[f32],
    (c, n, h, w): (usize, usize, usize, usize),
    (k, stride, pad): (usize, usize, usize),
    rows: std::ops::Range<usize>,
    out: &mut [f32],
) {
    let wo = (w + 2 * pad - k) / stride + 1;
    let band = rows.len();
    let plane = band * wo;
    let cols = n * plane;
    debug_assert_eq!(out.len(), c * k * k * cols);
    out.par_chunks_mut(k * k * cols)
        .enumerate()
        .for_each(|(ci, chunk)| {
            for ky in 0..k {
                for kx in 0..k {
                    let row = &mut chunk[(ky * k + kx) * cols..(ky * k + kx + 1) * cols];
                    for img in 0..n {
                        let src = &data[(ci * n + img) * h * w..(ci * n + img + 1) * h * w];
                        let dst = &mut row[img * plane..(img + 1) * plane];
                        for (r, oy) in rows.clone().enumerate() {
                            let drow = &mut dst[r * wo..(r + 1) * wo];
                            let iy = (oy * stride + ky) as isize - pad as isize;
                            if iy < 0 || iy >= h as isize {
                                drow.fill(0.0);
                                continue;
                            }
                            let srow = &src[iy as usize * w..(iy as usize + 1) * w];
                            // Output columns whose input column ox * stride + kx - pad is inside.
                            let lo = (pad.saturating_sub(kx)).div_ceil(stride).min(wo);
                            let hi = ((w + pad).saturating_sub(kx).div_ceil(stride)).min(wo);
                            drow[..lo].fill(0.0);
                            if lo >= hi {
                                drow[lo..].fill(0.0);
                                continue;
                            }
                            drow[hi..].fill(0.0);
                            let first = lo * stride + kx - pad;
                            if stride == 1 {
                                drow[lo..hi].copy_from_slice(&srow[first..first + (hi - lo)]);
                            } else {
                                for (d, s) in drow[lo..hi]
                                    .iter_mut()
                                    .zip(srow[first..].iter().step_by(stride))
                                {
                                    *d = *s;
                                }
                            }
                        }
                    }
                }
            }
        });
}

/// `dst = lhs · rhs` (or `dst += lhs · rhs` with `accumulate`), all row-major and contiguous:
/// `lhs` is m x k, `rhs` is k x n, `dst` is m x n.
pub fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    lhs: &[f32],
    rhs: &[f32],
    accumulate: bool,
) {
    sgemm_strided((m, n, k), dst, n, lhs, rhs, accumulate);
}

/// [`sgemm`] on the calling thread only: for products inside tasks that are already parallel.
pub(crate) fn sgemm_serial(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    lhs: &[f32],
    rhs: &[f32],
    accumulate: bool,
) {
    gemm_views_with(
        (m, n, k),
        View::new(dst, n, 1),
        (lhs, k, 1),
        (rhs, n, 1),
        (accumulate, 1.0),
        gemm::Parallelism::None,
    );
}

/// The geometry of one 2-D convolution with square kernels and symmetric zero padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Kernel size.
    pub k: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on every side.
    pub pad: usize,
}

impl ConvShape {
    /// Output height and width for an `h` x `w` input.
    pub fn output_size(&self, h: usize, w: usize) -> (usize, usize) {
        (
            (h + 2 * self.pad - self.k) / self.stride + 1,
            (w + 2 * self.pad - self.k) / self.stride + 1,
        )
    }
}

/// Bytes of im2col scratch per band: small enough to stay in cache between the unfolding and
/// the product, large enough that each product is still a wide GEMM.
const BAND_BYTES: usize = 16 << 20;

thread_local! {
    /// Reused im2col buffer: a fresh multi-megabyte allocation per convolution costs page
    /// faults that add up to a fifth of a UNet step.
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// What a convolution's output starts from before the product is added.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConvInit<'a> {
    /// One bias per output channel.
    pub bias: Option<&'a [f32]>,
    /// A second per-(image, channel) bias, N x cout (a UNet residual block's timestep term).
    pub image_bias: Option<&'a [f32]>,
    /// A tensor of the output's shape to add (a residual connection).
    pub residual: Option<&'a [f32]>,
}

/// Convolves a batch laid out N x C x H x W with a (cout, cin, k, k) `weight`, adding `bias`
/// when given. Returns the N x cout x Ho x Wo output.
pub fn conv2d_nchw(
    x: &[f32],
    (n, h, w): (usize, usize, usize),
    shape: ConvShape,
    weight: &[f32],
    bias: Option<&[f32]>,
) -> Vec<f32> {
    conv2d_nchw_fused(
        x,
        (n, h, w),
        shape,
        weight,
        ConvInit {
            bias,
            ..ConvInit::default()
        },
    )
}

/// [`conv2d_nchw`] with the biases and residual of `init` written into the output before the
/// product is accumulated onto it, saving a pass over the activations for each.
///
/// Each image is unfolded a band of output rows at a time into a reused buffer and multiplied
/// straight into its place in the output.
pub fn conv2d_nchw_fused(
    x: &[f32],
    nhw: (usize, usize, usize),
    shape: ConvShape,
    weight: &[f32],
    init: ConvInit<'_>,
) -> Vec<f32> {
    timing::timed(1, || conv_impl(x, nhw, shape, weight, init))
}

fn conv_impl(
    x: &[f32],
    (n, h, w): (usize, usize, usize),
    shape: ConvShape,
    weight: &[f32],
    init: ConvInit<'_>,
) -> Vec<f32> {
    let (ho, wo) = shape.output_size(h, w);
    let cols = ho * wo;
    let kk = shape.cin * shape.k * shape.k;
    let mut out = vec![0f32; n * shape.cout * cols];
    let direct = shape.k == 1 && shape.stride == 1 && shape.pad == 0;
    let band_rows = (BAND_BYTES / (4 * kk * wo).max(1)).clamp(1, ho.max(1));
    let seeded = init.bias.is_some() || init.image_bias.is_some() || init.residual.is_some();
    for (img, dst) in out.chunks_mut(shape.cout * cols).enumerate() {
        let src = &x[img * shape.cin * h * w..(img + 1) * shape.cin * h * w];
        if seeded {
            let per_image = init
                .image_bias
                .map(|b| &b[img * shape.cout..(img + 1) * shape.cout]);
            let residual = init
                .residual
                .map(|r| &r[img * shape.cout * cols..(img + 1) * shape.cout * cols]);
            dst.par_chunks_mut(cols).enumerate().for_each(|(o, row)| {
                let b = init.bias.map_or(0.0, |b| b[o]) + per_image.map_or(0.0, |b| b[o]);
                match residual {
                    Some(r) => {
                        for (d, r) in row.iter_mut().zip(&r[o * cols..(o + 1) * cols]) {
                            *d = r + b;
                        }
                    }
                    None => row.fill(b),
                }
            });
        }
        if direct {
            sgemm(shape.cout, cols, kk, dst, weight, src, seeded);
            continue;
        }
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let mut y0 = 0;
            while y0 < ho {
                let y1 = (y0 + band_rows).min(ho);
                let bc = (y1 - y0) * wo;
                if scratch.len() < kk * bc {
                    scratch.resize(kk * bc, 0.0);
                }
                let buf = &mut scratch[..kk * bc];
                im2col_rows(
                    src,
                    (shape.cin, 1, h, w),
                    (shape.k, shape.stride, shape.pad),
                    y0..y1,
                    buf,
                );
                sgemm_strided(
                    (shape.cout, bc, kk),
                    &mut dst[y0 * wo..],
                    cols,
                    weight,
                    buf,
                    seeded,
                );
                y0 = y1;
            }
        });
    }
    out
}

/// `dst = lhs · rhs` (or `+=`), `lhs` m x k and `rhs` k x n contiguous, `dst` m x n with row
/// stride `dst_stride`.
fn sgemm_strided(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    dst_stride: usize,
    lhs: &[f32],
    rhs: &[f32],
    accumulate: bool,
) {
    gemm_views(
        (m, n, k),
        View::new(dst, dst_stride, 1),
        (lhs, k, 1),
        (rhs, n, 1),
        accumulate,
    );
}

/// A mutable matrix view: element (i, j) at `i * rs + j * cs`.
pub(crate) struct View<'a> {
    data: &'a mut [f32],
    rs: usize,
    cs: usize,
}

impl<'a> View<'a> {
    pub(crate) fn new(data: &'a mut [f32], rs: usize, cs: usize) -> Self {
        Self { data, rs, cs }
    }
}

/// Whether an r x c matrix with strides (rs, cs) fits in `len` elements.
fn fits(len: usize, (r, c): (usize, usize), (rs, cs): (usize, usize)) -> bool {
    r == 0 || c == 0 || (r - 1) * rs + (c - 1) * cs < len
}

/// `dst = lhs · rhs` (or `+=` with `accumulate`) on strided views; `lhs` and `rhs` are
/// (data, row stride, column stride).
fn gemm_views(
    (m, n, k): (usize, usize, usize),
    dst: View<'_>,
    (lhs, lrs, lcs): (&[f32], usize, usize),
    (rhs, rrs, rcs): (&[f32], usize, usize),
    accumulate: bool,
) {
    gemm_views_with(
        (m, n, k),
        dst,
        (lhs, lrs, lcs),
        (rhs, rrs, rcs),
        (accumulate, 1.0),
        gemm::Parallelism::Rayon(rayon::current_num_threads()),
    );
}

/// [`gemm_views`] with `dst = scale * lhs · rhs` (plus `dst` when accumulating) and a choice of
/// threading: single-threaded products inside tasks that are already parallel.
pub(crate) fn gemm_views_with(
    (m, n, k): (usize, usize, usize),
    dst: View<'_>,
    (lhs, lrs, lcs): (&[f32], usize, usize),
    (rhs, rrs, rcs): (&[f32], usize, usize),
    (accumulate, scale): (bool, f32),
    parallelism: gemm::Parallelism,
) {
    assert!(fits(dst.data.len(), (m, n), (dst.rs, dst.cs)));
    assert!(fits(lhs.len(), (m, k), (lrs, lcs)) && fits(rhs.len(), (k, n), (rrs, rcs)));
    // SAFETY: the assertions bound every element each view addresses inside its slice, and
    // `dst` is a unique borrow, so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr(),
            dst.cs as isize,
            dst.rs as isize,
            accumulate,
            lhs.as_ptr(),
            lcs as isize,
            lrs as isize,
            rhs.as_ptr(),
            rcs as isize,
            rrs as isize,
            1.0f32,
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// A linear layer on rows: `x` (rows, cin) times `weight_t` (cin, cout, the transpose of
/// PyTorch's (out, in) weight, made once at load time so the product streams it row by row),
/// plus `bias`, as one GEMM over all rows.
pub fn linear(
    x: &[f32],
    rows: usize,
    weight_t: &[f32],
    cin: usize,
    bias: Option<&[f32]>,
) -> Vec<f32> {
    let cout = weight_t.len() / cin.max(1);
    let mut out = match bias {
        Some(b) => {
            let mut out = Vec::with_capacity(rows * cout);
            for _ in 0..rows {
                out.extend_from_slice(b);
            }
            out
        }
        None => vec![0f32; rows * cout],
    };
    gemm_views(
        (rows, cout, cin),
        View::new(&mut out, cout, 1),
        (x, cin, 1),
        (weight_t, cout, 1),
        bias.is_some(),
    );
    out
}

/// A 1x1 convolution from channel-major images (N, cin, hw) straight to tokens (N, hw, cout):
/// `tokens = x^T w^T + bias`, without materialising the transpose.
pub fn channels_to_tokens(
    x: &[f32],
    (n, cin, hw): (usize, usize, usize),
    weight: &[f32],
    bias: &[f32],
) -> Vec<f32> {
    let cout = bias.len();
    let mut out = vec![0f32; n * hw * cout];
    for (img, dst) in out.chunks_mut(hw * cout).enumerate() {
        dst.par_chunks_mut(cout)
            .for_each(|row| row.copy_from_slice(bias));
        gemm_views(
            (hw, cout, cin),
            View::new(dst, cout, 1),
            (&x[img * cin * hw..(img + 1) * cin * hw], 1, hw),
            (weight, 1, cin),
            true,
        );
    }
    out
}

/// The inverse projection: tokens (N, hw, cin) to channel-major (N, cout, hw) through a 1x1
/// convolution, plus `bias` and the channel-major `residual`.
pub fn tokens_to_channels(
    t: &[f32],
    (n, cin, hw): (usize, usize, usize),
    weight: &[f32],
    bias: &[f32],
    residual: &[f32],
) -> Vec<f32> {
    let cout = bias.len();
    let mut out = vec![0f32; n * cout * hw];
    for (img, dst) in out.chunks_mut(cout * hw).enumerate() {
        let res = &residual[img * cout * hw..(img + 1) * cout * hw];
        dst.par_chunks_mut(hw)
            .zip(res.par_chunks(hw))
            .zip(bias.par_iter())
            .for_each(|((d, r), b)| {
                for (d, r) in d.iter_mut().zip(r) {
                    *d = r + b;
                }
            });
        gemm_views(
            (cout, hw, cin),
            View::new(dst, hw, 1),
            (weight, cin, 1),
            (&t[img * hw * cin..(img + 1) * hw * cin], 1, cin),
            true,
        );
    }
    out
}

/// Group normalisation of a batch laid out N x C x (spatial), like `torch.nn.GroupNorm`
/// (biased variance, `eps` inside the square root), with per-channel `weight` and `bias`, and
/// optionally SiLU applied to the result.
#[allow(clippy::too_many_arguments)]
pub fn group_norm(
    x: &[f32],
    n: usize,
    c: usize,
    spatial: usize,
    groups: usize,
    eps: f64,
    weight: &[f32],
    bias: &[f32],
    silu: bool,
) -> Vec<f32> {
    let per_group = c / groups;
    let len = per_group * spatial;
    let mut out = vec![0f32; n * c * spatial];
    out.par_chunks_mut(len)
        .zip(x.par_chunks(len))
        .enumerate()
        .for_each(|(ng, (dst, src))| {
            let g = ng % groups;
            let (mean, var) = fastmath::mean_var_wide(src);
            let inv = 1.0 / (var + eps).sqrt();
            for ci in 0..per_group {
                let ch = g * per_group + ci;
                let scale = (weight[ch] as f64 * inv) as f32;
                let shift = (bias[ch] as f64 - mean * weight[ch] as f64 * inv) as f32;
                let s = &src[ci * spatial..(ci + 1) * spatial];
                let d = &mut dst[ci * spatial..(ci + 1) * spatial];
                fastmath::affine_silu(d, s, scale, shift, silu);
            }
        });
    out
}

/// Bytes of scores per attention task: blocks of query rows (all 1024 at 1024 keys, 256 at 4096)
/// whose scores stay near the core between the two products and the softmax; smaller blocks
/// measured slower, as every block re-packs the keys and values.
const ATTENTION_BLOCK_BYTES: usize = 4 << 20;

thread_local! {
    /// Per-thread scores and output block of [`attention`], reused across calls.
    static ATTENTION_SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<f32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// Multi-head scaled dot-product attention on row-major buffers: `q` is (b, tq, heads * hd),
/// `k` and `v` are (b, tk, heads * hd); returns (b, tq, heads * hd). `causal` masks keys after
/// the query. Each (batch, head, block of query rows) is one task: two single-threaded GEMMs on
/// strided views and a softmax between them on scores that never leave the cache, so no
/// (b, heads, tq, tk) score tensor is ever allocated.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    (b, tq, tk): (usize, usize, usize),
    heads: usize,
    hd: usize,
    scale: f32,
    causal: bool,
) -> Vec<f32> {
    let inner = heads * hd;
    let query_block = (ATTENTION_BLOCK_BYTES / (4 * tk.max(1)))
        .max(16)
        .min(tq.max(1));
    let blocks = tq.div_ceil(query_block);
    let mut result = vec![0f32; b * tq * inner];
    let ptr = SyncPtr(result.as_mut_ptr());
    (0..b * heads * blocks).into_par_iter().for_each(|task| {
        let p = &ptr;
        let (bh, blk) = (task / blocks, task % blocks);
        let (bi, h) = (bh / heads, bh % heads);
        let q0 = blk * query_block;
        let rows = query_block.min(tq - q0);
        let qp = &q[(bi * tq + q0) * inner + h * hd..];
        let kp = &k[bi * tk * inner + h * hd..];
        let vp = &v[bi * tk * inner + h * hd..];
        ATTENTION_SCRATCH.with(|scratch| {
            let (scores, out) = &mut *scratch.borrow_mut();
            scores.resize(rows * tk, 0.0);
            out.resize(rows * hd, 0.0);
            gemm_views_with(
                (rows, tk, hd),
                View::new(scores, tk, 1),
                (qp, inner, 1),
                (kp, 1, inner),
                (false, scale),
                gemm::Parallelism::None,
            );
            fastmath::softmax_rows(scores, tk, q0, causal);
            gemm_views_with(
                (rows, hd, tk),
                View::new(out, hd, 1),
                (scores, tk, 1),
                (vp, inner, 1),
                (false, 1.0),
                gemm::Parallelism::None,
            );
            for (i, row) in out.chunks(hd).enumerate() {
                let at = (bi * tq + q0 + i) * inner + h * hd;
                // SAFETY: `at + hd <= b * tq * inner`, and the (batch, head, query row) slots
                // of different tasks are disjoint.
                unsafe { std::ptr::copy_nonoverlapping(row.as_ptr(), p.0.add(at), hd) };
            }
        });
    });
    result
}

/// GEGLU on rows of `2 * inner` values: `x[..inner] * gelu(x[inner..])` with the exact (erf)
/// GELU, as diffusers' `GEGLU`.
pub fn geglu(x: &[f32], inner: usize) -> Vec<f32> {
    let rows = x.len() / (2 * inner);
    let mut out = vec![0f32; rows * inner];
    out.par_chunks_mut(inner)
        .zip(x.par_chunks(2 * inner))
        .with_min_len(8)
        .for_each(|(o, row)| {
            let (a, g) = row.split_at(inner);
            fastmath::geglu_row(o, a, g);
        });
    out
}

/// Keeps freed memory in the process instead of returning it to the OS after every large
/// temporary: glibc otherwise maps and unmaps each buffer above 128 KiB (the VAE's activations
/// are tens of megabytes), and every first touch of a fresh page faults. All allocations then
/// come from the heap, which is never trimmed. A no-op elsewhere.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_MMAP_MAX: i32 = -4;
        // SAFETY: mallopt only adjusts glibc's allocator parameters; both values are in the
        // documented ranges (M_MMAP_MAX 0 disables mmap for allocations).
        unsafe {
            mallopt(M_MMAP_MAX, 0);
            mallopt(M_TRIM_THRESHOLD, i32::MAX);
        }
    }
}

/// A raw pointer that tasks writing disjoint elements may share.
pub(crate) struct SyncPtr(pub(crate) *mut f32);
// SAFETY: used only where every task writes a disjoint set of indices (see the call sites).
unsafe impl Sync for SyncPtr {}

/// Time spent per kernel family, for `cargo bench --bench unet` (nanoseconds, relaxed counters).
pub mod timing {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Instant;

    /// The kernel families.
    pub const NAMES: [&str; 7] = [
        "conv winograd",
        "conv im2col",
        "attention",
        "linear",
        "group norm",
        "geglu",
        "token projections",
    ];
    static NANOS: [AtomicU64; 7] = [const { AtomicU64::new(0) }; 7];

    /// Runs `f`, adding its wall time to family `i`.
    pub fn timed<R>(i: usize, f: impl FnOnce() -> R) -> R {
        let t = Instant::now();
        let r = f();
        NANOS[i].fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        r
    }

    /// Seconds per family since the last reset, and resets.
    pub fn take() -> Vec<(&'static str, f64)> {
        NAMES
            .iter()
            .zip(&NANOS)
            .map(|(n, a)| (*n, a.swap(0, Ordering::Relaxed) as f64 * 1e-9))
            .collect()
    }
}
