//! The CPU forward pass of the folded ResNet-18: im2col + one `gemm` call per convolution, with the
//! bias written into the output before the product and ReLU / residual fused into one pass after.
//!
//! candle's CPU convolution (tiled im2col) and its elementwise ops each make a full pass over the
//! activations and allocate fresh zeroed buffers; profiling showed those passes, copies and page
//! faults taking more time than the matrix products themselves. Same arithmetic (f32 products and
//! sums), different order, so results agree with torchvision to ~1e-6 relative.

use candle_core::Tensor;
use rayon::prelude::*;

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

/// One image's activations, channel-major.
#[derive(Debug, Clone)]
pub(crate) struct Act {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub data: Vec<f32>,
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
        let plane = ho * wo;
        let kk = self.cin * k * k;
        let rhs: &[f32] = if k == 1 && s == 1 && p == 0 {
            &x.data
        } else {
            scratch.clear();
            scratch.resize(kk * plane, 0.0);
            im2col(&x.data, (x.c, x.h, x.w), k, s, p, scratch);
            scratch
        };
        let mut out = vec![0f32; self.cout * plane];
        out.par_chunks_mut(plane)
            .zip(self.bias.par_iter())
            .for_each(|(row, b)| row.iter_mut().for_each(|v| *v = *b));
        // SAFETY: every pointer covers the extent implied by its dimensions and strides:
        // out is cout x plane, weight is cout x kk, rhs is kk x plane, all row-major, and `out`
        // does not alias the inputs.
        unsafe {
            gemm::gemm(
                self.cout,
                plane,
                kk,
                out.as_mut_ptr(),
                1,
                plane as isize,
                true,
                self.weight.as_ptr(),
                1,
                kk as isize,
                rhs.as_ptr(),
                1,
                plane as isize,
                1.0f32,
                1.0f32,
                false,
                false,
                false,
                gemm::Parallelism::Rayon(rayon::current_num_threads()),
            );
        }
        if residual.is_some() || relu {
            out.par_chunks_mut(plane).enumerate().for_each(|(o, row)| {
                if let Some(r) = residual {
                    for (v, add) in row.iter_mut().zip(&r.data[o * plane..(o + 1) * plane]) {
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
    let mut data = vec![0f32; x.c * ho * wo];
    data.par_chunks_mut(ho * wo)
        .enumerate()
        .for_each(|(c, out)| {
            let src = &x.data[c * x.h * x.w..(c + 1) * x.h * x.w];
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut m = 0f32;
                    for dy in 0..3 {
                        let iy = (oy * 2 + dy) as isize - 1;
                        if iy < 0 || iy >= x.h as isize {
                            continue;
                        }
                        for dx in 0..3 {
                            let ix = (ox * 2 + dx) as isize - 1;
                            if ix >= 0 && ix < x.w as isize {
                                m = m.max(src[iy as usize * x.w + ix as usize]);
                            }
                        }
                    }
                    out[oy * wo + ox] = m;
                }
            }
        });
    Act {
        c: x.c,
        h: ho,
        w: wo,
        data,
    }
}

/// Unfolds one image (C x H x W) into the (C k k) x (Ho Wo) patch matrix, zero-padded.
pub(crate) fn im2col(
    x: &[f32],
    dims: (usize, usize, usize),
    k: usize,
    stride: usize,
    pad: usize,
    out: &mut [f32],
) {
    let (_, h, w) = dims;
    let ho = (h + 2 * pad - k) / stride + 1;
    let wo = (w + 2 * pad - k) / stride + 1;
    let plane = ho * wo;
    out.par_chunks_mut(k * k * plane)
        .enumerate()
        .for_each(|(ci, chunk)| {
            let src = &x[ci * h * w..(ci + 1) * h * w];
            for ky in 0..k {
                for kx in 0..k {
                    let row = &mut chunk[(ky * k + kx) * plane..(ky * k + kx + 1) * plane];
                    for oy in 0..ho {
                        let iy = (oy * stride + ky) as isize - pad as isize;
                        if iy < 0 || iy >= h as isize {
                            continue;
                        }
                        let srow = &src[iy as usize * w..(iy as usize + 1) * w];
                        let drow = &mut row[oy * wo..(oy + 1) * wo];
                        for (ox, d) in drow.iter_mut().enumerate() {
                            let ix = (ox * stride + kx) as isize - pad as isize;
                            if ix >= 0 && ix < w as isize {
                                *d = srow[ix as usize];
                            }
                        }
                    }
                }
            }
        });
}
