//! The CPU forward pass of the folded ResNet-18: im2col + one `gemm` call per convolution for the
//! whole batch, with the bias written into the output before the product and the residual add and
//! ReLU fused into one pass after.
//!
//! candle's CPU convolution (tiled im2col) and its elementwise ops each make a full pass over the
//! activations and allocate fresh zeroed buffers; profiling showed those passes, copies and page
//! faults taking more time than the matrix products themselves. Activations are kept channel-major
//! across the batch (C x N x H x W), so a convolution is one (out x in k k) by (in k k x N H W)
//! product and small late layers still give the GEMM wide matrices. Same f32 arithmetic in a
//! different order: results agree with torchvision to ~1e-6 relative.

use crate::kernels;
use candle_core::Tensor;
use rayon::prelude::*;

/// Output columns (images x pixels) below which a convolution's product is split by output
/// channels rather than by `gemm`'s own threading (ResNet-18's layer3 and layer4, measured:
/// up to 1.9x faster at batch 1).
const NARROW_COLS: usize = 4096;

crate::multiversion! {
    /// One plane of [`max_pool_3x3_s2`], a row at a time: the largest of the (up to) three input
    /// rows, with a zero either side, then the largest of each three columns. Without bounds tests
    /// per tap the loops vectorise (the per-tap version took as long as the stem convolution).
    fn pool_plane(
        src: &[f32],
        size: (usize, usize),
        out: &mut [f32],
        wo: usize,
        row: &mut Vec<f32>,
    ) {
        let (h, w) = size;
        // Column 0 of `row` is the left padding; enough zeros on the right for an odd width.
        row.clear();
        row.resize(2 * wo + 2, 0.0);
        for (oy, out) in out.chunks_exact_mut(wo).enumerate() {
            // The centre row 2 oy is always inside the image.
            let centre = 2 * oy;
            let max_row = &mut row[1..=w];
            max_row.copy_from_slice(&src[centre * w..][..w]);
            for iy in [centre.wrapping_sub(1), centre + 1] {
                if iy < h {
                    for (m, v) in max_row.iter_mut().zip(&src[iy * w..][..w]) {
                        *m = m.max(*v);
                    }
                }
            }
            let (left, mid, right) = (&row[..2 * wo], &row[1..=2 * wo], &row[2..2 * wo + 2]);
            for (ox, o) in out.iter_mut().enumerate() {
                *o = left[2 * ox].max(mid[2 * ox]).max(right[2 * ox]);
            }
        }
    }
}

/// One convolution with batch norm folded in, as plain row-major buffers.
#[derive(Debug, Clone)]
pub(crate) struct CpuConv {
    /// (out, in * k * k), row-major.
    weight: Vec<f32>,
    bias: Vec<f32>,
    cout: usize,
    cin: usize,
    k: usize,
    stride: usize,
    pad: usize,
}

/// A batch of activations, laid out C x N x H x W.
#[derive(Debug, Clone)]
pub(crate) struct Act {
    pub c: usize,
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub data: Vec<f32>,
}

impl Act {
    /// From candle's N x C x H x W.
    pub(crate) fn from_nchw(x: &Tensor) -> candle_core::Result<Self> {
        let (n, c, h, w) = x.dims4()?;
        let data = x
            .transpose(0, 1)?
            .contiguous()?
            .flatten_all()?
            .to_vec1::<f32>()?;
        Ok(Self { c, n, h, w, data })
    }

    /// The batches of `parts` (same channels and size) as one, in order.
    pub(crate) fn concat(parts: Vec<Act>) -> Act {
        let Some(first) = parts.first() else {
            return Act {
                c: 0,
                n: 0,
                h: 0,
                w: 0,
                data: Vec::new(),
            };
        };
        let (c, h, w) = (first.c, first.h, first.w);
        let n = parts.iter().map(|p| p.n).sum();
        let mut data = Vec::with_capacity(c * n * h * w);
        for ch in 0..c {
            for p in &parts {
                let plane = p.n * h * w;
                data.extend_from_slice(&p.data[ch * plane..(ch + 1) * plane]);
            }
        }
        Act { c, n, h, w, data }
    }

    /// Back to candle's N x C x H x W.
    pub(crate) fn into_nchw(self, dev: &candle_core::Device) -> candle_core::Result<Tensor> {
        Tensor::from_vec(self.data, (self.c, self.n, self.h, self.w), dev)?
            .transpose(0, 1)?
            .contiguous()
    }
}

impl CpuConv {
    pub(crate) fn new(
        weight: &Tensor,
        bias: &Tensor,
        stride: usize,
        pad: usize,
    ) -> candle_core::Result<Self> {
        let (cout, cin, k, _) = weight.dims4()?;
        Ok(Self {
            weight: weight.flatten_all()?.to_vec1()?,
            bias: bias.flatten_all()?.to_vec1()?,
            cout,
            cin,
            k,
            stride,
            pad,
        })
    }

    /// Whether this is a 3x3, stride-1, padding-1 convolution.
    pub(crate) fn is_3x3_stride1(&self) -> bool {
        self.k == 3 && self.stride == 1 && self.pad == 1
    }

    /// The folded (cout, cin, k, k) weight, the bias, and (cout, cin).
    pub(crate) fn parts(&self) -> (&[f32], &[f32], (usize, usize)) {
        (&self.weight, &self.bias, (self.cout, self.cin))
    }

    /// conv(x) + bias, then optionally + `residual`, then optionally ReLU.
    pub(crate) fn run(
        &self,
        x: &Act,
        residual: Option<&Act>,
        relu: bool,
        scratch: &mut Vec<f32>,
    ) -> Act {
        let (k, s, p) = (self.k, self.stride, self.pad);
        let ho = (x.h + 2 * p - k) / s + 1;
        let wo = (x.w + 2 * p - k) / s + 1;
        let cols = x.n * ho * wo;
        let kk = self.cin * k * k;
        let rhs: &[f32] = if k == 1 && s == 1 && p == 0 {
            &x.data
        } else {
            scratch.clear();
            scratch.resize(kk * cols, 0.0);
            kernels::im2col(&x.data, x.c, x.n, x.h, x.w, k, s, p, scratch);
            scratch
        };
        let mut out = vec![0f32; self.cout * cols];
        out.par_chunks_mut(cols)
            .zip(self.bias.par_iter())
            .for_each(|(row, b)| row.iter_mut().for_each(|v| *v = *b));
        if cols < NARROW_COLS {
            // A narrow product: the GEMM's own threading splits the few columns; whole blocks
            // of output channels per thread read each weight row once.
            let per = self.cout.div_ceil(rayon::current_num_threads());
            out.par_chunks_mut(per * cols)
                .zip(self.weight.par_chunks(per * kk))
                .for_each(|(o, w)| {
                    kernels::sgemm_serial((w.len() / kk, cols, kk), o, w, rhs, true)
                });
        } else {
            kernels::sgemm(self.cout, cols, kk, &mut out, &self.weight, rhs, true);
        }
        if residual.is_some() || relu {
            out.par_chunks_mut(cols).enumerate().for_each(|(o, row)| {
                if let Some(r) = residual {
                    for (v, add) in row.iter_mut().zip(&r.data[o * cols..(o + 1) * cols]) {
                        *v += add;
                    }
                }
                if relu {
                    row.iter_mut().for_each(|v| *v = v.max(0.0));
                }
            });
        }
        Act {
            c: self.cout,
            n: x.n,
            h: ho,
            w: wo,
            data: out,
        }
    }
}

/// 3x3 / stride 2 / pad 1 max pool of post-ReLU activations (zero padding is then exact).
pub(crate) fn max_pool_3x3_s2(x: &Act) -> Act {
    let ho = (x.h + 2 - 3) / 2 + 1;
    let wo = (x.w + 2 - 3) / 2 + 1;
    let mut data = vec![0f32; x.c * x.n * ho * wo];
    data.par_chunks_mut(ho * wo)
        .enumerate()
        .for_each_init(Vec::new, |row, (plane, out)| {
            let src = &x.data[plane * x.h * x.w..(plane + 1) * x.h * x.w];
            pool_plane(src, (x.h, x.w), out, wo, row);
        });
    Act {
        c: x.c,
        n: x.n,
        h: ho,
        w: wo,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The row-wise pool gives candle's `max_pool2d` on the zero-padded input (the candle-op
    /// path's pool) exactly, on even and odd sizes; the predictor fixtures check it against
    /// torchvision at 112x112.
    #[test]
    fn max_pool_matches_candle_on_odd_and_even_sizes() -> candle_core::Result<()> {
        for (n, c, h, w) in [
            (2, 3, 8, 8),
            (1, 2, 7, 9),
            (3, 1, 1, 1),
            (1, 1, 2, 3),
            (2, 2, 13, 6),
        ] {
            let x = Tensor::randn(0f32, 1.0, (n, c, h, w), &Device::Cpu)?.relu()?;
            let want = x
                .pad_with_zeros(2, 1, 1)?
                .pad_with_zeros(3, 1, 1)?
                .max_pool2d_with_stride(3, 2)?;
            let got = max_pool_3x3_s2(&Act::from_nchw(&x)?).into_nchw(&Device::Cpu)?;
            assert_eq!(got.dims(), want.dims(), "{n}x{c}x{h}x{w}");
            let diff = (got - want)?
                .abs()?
                .flatten_all()?
                .max(0)?
                .to_scalar::<f32>()?;
            assert_eq!(diff, 0.0, "{n}x{c}x{h}x{w}");
        }
        Ok(())
    }
}
