//! A differentiable 2-D convolution for candle on the CPU (square kernel, stride, symmetric zero
//! padding below the kernel size, one group, bias), used by VGG19 and StyleNet.
//!
//! candle's CPU conv2d unfolds the whole input at once and its backward computes the kernel
//! gradient even for constant weights and runs the input gradient through a direct transposed
//! convolution loop. Here the forward is [`super::conv2d_nchw`] (banded im2col + GEMM), the input
//! gradient is the same kernel on the (zero-dilated, for strides above 1) output gradient with the
//! transposed, flipped weights, and the kernel and bias gradients are computed only when those
//! tensors need them (StyleNet's weights, not VGG's).
//!
//! With [`ConvAlgo::Winograd`], 3x3 stride-1 padding-1 layers run forward and input gradient
//! through F(4x4, 3x3) / F(2x2, 3x3) Winograd (the input gradient of such a layer is again one,
//! with the flipped kernel): fewer multiplications, a larger rounding error (about ten units in
//! the last place of the activations' magnitude with F4). A caller opts in per model.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{
    conv2d_nchw, conv3x3_winograd_from, gemm_views_with, im2col_rows, ConvInit, ConvShape, View,
    WinogradTile,
};

/// `conv2d(x, weight, stride, padding) + bias` for `x` (n, cin, h, w), `weight`
/// (cout, cin, k, k) and `bias` (cout). On the CPU in f32 with the fused kernels enabled (and
/// `padding < k`) this is the op of this module; otherwise candle's `conv2d` and a broadcast add,
/// the path a GPU runs.
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    padding: usize,
    stride: usize,
) -> Result<Tensor> {
    conv2d_with(x, weight, bias, padding, stride, ConvAlgo::Im2col)
}

/// How the CPU op computes a 3x3, stride-1, padding-1 layer (every other layer is im2col).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConvAlgo {
    /// Banded im2col and one GEMM: the rounding of a direct sum.
    #[default]
    Im2col,
    /// Winograd minimal filtering, F(4x4) from 16x16 images up and F(2x2) below
    /// ([`WinogradTile::for_size`]), for the forward and the input gradient.
    Winograd,
}

/// [`conv2d`] with a choice of algorithm for the CPU op's 3x3 stride-1 padding-1 layers.
pub fn conv2d_with(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    padding: usize,
    stride: usize,
    algo: ConvAlgo,
) -> Result<Tensor> {
    let k = weight.dim(2)?;
    if super::fused_cpu(x) && super::fused_cpu(weight) && super::fused_cpu(bias) && padding < k {
        return x.contiguous()?.apply_op3(
            &weight.contiguous()?,
            &bias.contiguous()?,
            CpuConv {
                padding,
                stride,
                algo,
            },
        );
    }
    super::candle_conv2d(x, weight, padding, stride)?.broadcast_add(&bias.reshape((1, (), 1, 1))?)
}

/// The contiguous `f32` data of a CPU storage.
pub(crate) fn cpu_slice<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s.as_slice::<f32>()?[a..b]),
        None => candle_core::bail!("{op}: the input must be contiguous"),
    }
}

#[derive(Debug, Clone, Copy)]
struct CpuConv {
    padding: usize,
    stride: usize,
    algo: ConvAlgo,
}

/// Whether a layer of `shape` runs by Winograd under `algo`.
fn winograd(algo: ConvAlgo, shape: ConvShape) -> bool {
    algo == ConvAlgo::Winograd && shape.k == 3 && shape.stride == 1 && shape.pad == 1
}

impl CpuConv {
    fn shape(&self, w: &Layout) -> Result<ConvShape> {
        let (cout, cin, k, k2) = w.shape().dims4()?;
        if k != k2 {
            candle_core::bail!("cpu-conv2d: kernel {k}x{k2} is not square");
        }
        Ok(ConvShape {
            cin,
            cout,
            k,
            stride: self.stride,
            pad: self.padding,
        })
    }
}

impl CustomOp3 for CpuConv {
    fn name(&self) -> &'static str {
        "cpu-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = l1.shape().dims4()?;
        let shape = self.shape(l2)?;
        if c != shape.cin || l3.shape().elem_count() != shape.cout {
            candle_core::bail!(
                "cpu-conv2d: input {:?}, kernel {:?}, bias {:?}",
                l1.shape(),
                l2.shape(),
                l3.shape()
            );
        }
        if h + 2 * shape.pad < shape.k || w + 2 * shape.pad < shape.k {
            candle_core::bail!("cpu-conv2d: input {h}x{w} is smaller than the kernel");
        }
        let x = cpu_slice(s1, l1, "cpu-conv2d")?;
        let wt = cpu_slice(s2, l2, "cpu-conv2d")?;
        let b = cpu_slice(s3, l3, "cpu-conv2d")?;
        let out = forward(x, (n, h, w), shape, (wt, b), self.algo);
        let (ho, wo) = shape.output_size(h, w);
        Ok((CpuStorage::F32(out), Shape::from((n, shape.cout, ho, wo))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let (_, _, h, wd) = x.dims4()?;
        let dx = if x.track_op() {
            let op = InputGrad {
                padding: self.padding,
                stride: self.stride,
                algo: self.algo,
                h,
                w: wd,
            };
            Some(grad.apply_op2_no_bwd(w, &op)?)
        } else {
            None
        };
        let dw = if w.track_op() {
            Some(x.apply_op2_no_bwd(&grad, &KernelGrad(*self, w.dim(2)?))?)
        } else {
            None
        };
        let db = if b.track_op() {
            Some(grad.sum((0, 2, 3))?)
        } else {
            None
        };
        Ok((dx, dw, db))
    }
}

/// The input gradient (first argument the output gradient, second the kernel) for an input of
/// `h` x `w`.
#[derive(Debug, Clone, Copy)]
struct InputGrad {
    padding: usize,
    stride: usize,
    algo: ConvAlgo,
    h: usize,
    w: usize,
}

impl CustomOp2 for InputGrad {
    fn name(&self) -> &'static str {
        "cpu-conv2d-input-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = cpu_slice(s1, l1, "cpu-conv2d-input-grad")?;
        let wt = cpu_slice(s2, l2, "cpu-conv2d-input-grad")?;
        let (n, cout, oh, ow) = l1.shape().dims4()?;
        let (wcout, cin, k, _) = l2.shape().dims4()?;
        if wcout != cout || self.padding >= k {
            candle_core::bail!(
                "cpu-conv2d-input-grad: gradient {:?}, kernel {:?}",
                l1.shape(),
                l2.shape()
            );
        }
        let shape = ConvShape {
            cin,
            cout,
            k,
            stride: self.stride,
            pad: self.padding,
        };
        let out = input_grad(g, (n, oh, ow), shape, wt, (self.h, self.w), self.algo);
        Ok((CpuStorage::F32(out), Shape::from((n, cin, self.h, self.w))))
    }
}

/// The forward of the CPU op on N x cin x H x W `x`: `weight` (cout, cin, k, k) and `bias`.
pub(crate) fn forward(
    x: &[f32],
    (n, h, w): (usize, usize, usize),
    shape: ConvShape,
    (weight, bias): (&[f32], &[f32]),
    algo: ConvAlgo,
) -> Vec<f32> {
    if winograd(algo, shape) {
        let init = ConvInit {
            bias: Some(bias),
            ..ConvInit::default()
        };
        let tile = WinogradTile::for_size(h, w);
        conv3x3_winograd_from(x, (n, h, w), weight, (shape.cout, shape.cin), tile, init)
    } else {
        conv2d_nchw(x, (n, h, w), shape, weight, Some(bias))
    }
}

/// The input gradient of the CPU op: the N x cin x `h` x `w` gradient of the input from the
/// N x cout x oh x ow gradient `g` of the output, with the layer's `weight` (cout, cin, k, k).
pub(crate) fn input_grad(
    g: &[f32],
    (n, oh, ow): (usize, usize, usize),
    shape: ConvShape,
    wt: &[f32],
    (h, w): (usize, usize),
    algo: ConvAlgo,
) -> Vec<f32> {
    let ConvShape {
        cin,
        cout,
        k,
        stride: s,
        pad: p,
    } = shape;
    // The transposed kernel (cin, cout, k, k), spatially flipped.
    let mut flipped = vec![0f32; wt.len()];
    let kk = k * k;
    for o in 0..cout {
        for i in 0..cin {
            for t in 0..kk {
                flipped[(i * cout + o) * kk + (kk - 1 - t)] = wt[(o * cin + i) * kk + t];
            }
        }
    }
    let back = ConvShape {
        cin: cout,
        cout: cin,
        k,
        stride: 1,
        pad: 0,
    };
    let q = k - 1 - p;
    // Input rows / columns the strided forward reached only partly (odd sizes) get their
    // (zero) share from extra zeros at the end.
    let rh = h + 2 * p - ((oh - 1) * s + k);
    let rw = w + 2 * p - ((ow - 1) * s + k);
    if winograd(algo, shape) {
        let tile = WinogradTile::for_size(oh, ow);
        let init = ConvInit::default();
        conv3x3_winograd_from(g, (n, oh, ow), &flipped, (cin, cout), tile, init)
    } else if s == 1 && rh == 0 && rw == 0 {
        conv2d_nchw(g, (n, oh, ow), ConvShape { pad: q, ..back }, &flipped, None)
    } else {
        let (dh, dw) = ((oh - 1) * s + 1 + 2 * q + rh, (ow - 1) * s + 1 + 2 * q + rw);
        let mut dilated = vec![0f32; n * cout * dh * dw];
        dilated
            .par_chunks_mut(dh * dw)
            .zip(g.par_chunks(oh * ow))
            .for_each(|(d, g)| {
                for oy in 0..oh {
                    let row = &mut d[(q + oy * s) * dw..];
                    for ox in 0..ow {
                        row[q + ox * s] = g[oy * ow + ox];
                    }
                }
            });
        conv2d_nchw(&dilated, (n, dh, dw), back, &flipped, None)
    }
}

/// The kernel gradient (first argument the forward's input, second the output gradient): for
/// each image, the output gradient (cout, ho wo) times the transposed patch matrix of the input,
/// accumulated band by band.
#[derive(Debug, Clone, Copy)]
struct KernelGrad(CpuConv, usize);

/// Bytes of patch matrix per band of the kernel gradient.
const BAND_BYTES: usize = 8 << 20;

impl CustomOp2 for KernelGrad {
    fn name(&self) -> &'static str {
        "cpu-conv2d-kernel-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = cpu_slice(s1, l1, "cpu-conv2d-kernel-grad")?;
        let g = cpu_slice(s2, l2, "cpu-conv2d-kernel-grad")?;
        let (n, cin, h, w) = l1.shape().dims4()?;
        let (_, cout, ho, wo) = l2.shape().dims4()?;
        let (
            CpuConv {
                padding, stride, ..
            },
            k,
        ) = (self.0, self.1);
        let ckk = cin * k * k;
        let cols = ho * wo;
        let band = (BAND_BYTES / (4 * ckk * wo).max(1)).clamp(1, ho.max(1));
        let mut dw = vec![0f32; cout * ckk];
        let mut buf = Vec::new();
        let mut first = true;
        for img in 0..n {
            let src = &x[img * cin * h * w..(img + 1) * cin * h * w];
            let gi = &g[img * cout * cols..(img + 1) * cout * cols];
            let mut y0 = 0;
            while y0 < ho {
                let y1 = (y0 + band).min(ho);
                let bc = (y1 - y0) * wo;
                buf.resize(ckk * bc, 0.0);
                im2col_rows(src, (cin, 1, h, w), (k, stride, padding), y0..y1, &mut buf);
                gemm_views_with(
                    (cout, ckk, bc),
                    View::new(&mut dw, ckk, 1),
                    (&gi[y0 * wo..], cols, 1),
                    (&buf, 1, bc),
                    (!first, 1.0),
                    gemm::Parallelism::Rayon(rayon::current_num_threads()),
                );
                first = false;
                y0 = y1;
            }
        }
        Ok((CpuStorage::F32(dw), Shape::from((cout, cin, k, k))))
    }
}
