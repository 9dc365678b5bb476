//! A differentiable batched Gram matrix, `scale * F F^T` per image, for the style losses of
//! neural style transfer (Gatys et al., "Image Style Transfer Using Convolutional Neural
//! Networks", CVPR 2016).
//!
//! candle's `matmul` of a C x HW matrix with its transposed view, and that product's backward
//! (a transposed copy of an HW x C gradient added into the features' gradient), ran at about
//! 20 GFLOP/s and were half of an NST closure at 256x256. Here the product splits the long HW
//! axis across threads (C x C is too small to share out), and the backward is one product
//! `scale (dG + dG^T) F`.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::conv_op::cpu_slice;
use super::{gemm_views_with, View};

/// `F F^T / divisor` for each image of an N x C x H x W tensor, with `F` the image's C x HW
/// features: an N x C x C tensor. On the CPU in f32 with the fused kernels enabled this is the
/// op of this module (the product scaled by `1 / divisor`); otherwise candle's `matmul` and a
/// division (the path a GPU runs: in f16 the reciprocal of a large divisor would be subnormal).
pub fn gram(features: &Tensor, divisor: f64) -> Result<Tensor> {
    let (n, c, h, w) = features.dims4()?;
    if super::fused_cpu(features) {
        return features.contiguous()?.apply_op1(CpuGram {
            scale: 1.0 / divisor,
        });
    }
    let f = features.reshape((n, c, h * w))?;
    let d = Tensor::new(divisor as f32, features.device())?.to_dtype(features.dtype())?;
    f.matmul(&f.t()?)?.broadcast_div(&d)
}

/// Columns of `F` per partial product: enough that each is a long GEMM.
const MIN_SPLIT: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct CpuGram {
    scale: f64,
}

impl CustomOp1 for CpuGram {
    fn name(&self) -> &'static str {
        "cpu-gram"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = cpu_slice(storage, layout, "cpu-gram")?;
        let (n, c, h, w) = layout.shape().dims4()?;
        let out = gram_f32(x, (n, c, h * w), self.scale);
        Ok((CpuStorage::F32(out), Shape::from((n, c, c))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad_res.contiguous()?.apply_op2_no_bwd(
            &arg.contiguous()?,
            &CpuGramGrad { scale: self.scale },
        )?))
    }
}

/// `scale (dG + dG^T) F` per image (first argument the Gram gradient, second the features).
#[derive(Debug, Clone, Copy)]
struct CpuGramGrad {
    scale: f64,
}

impl candle_core::CustomOp2 for CpuGramGrad {
    fn name(&self) -> &'static str {
        "cpu-gram-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dg = cpu_slice(s1, l1, "cpu-gram-grad")?;
        let x = cpu_slice(s2, l2, "cpu-gram-grad")?;
        let (n, c, h, w) = l2.shape().dims4()?;
        if l1.shape().dims() != [n, c, c] {
            candle_core::bail!(
                "cpu-gram-grad: gradient {:?} for features {:?}",
                l1.shape(),
                l2.shape()
            );
        }
        let out = gram_grad_f32(dg, x, (n, c, h * w), self.scale);
        Ok((CpuStorage::F32(out), l2.shape().clone()))
    }
}

/// `scale * F F^T` for each image of `x`, N x C x HW: N x C x C, the long HW axis split across
/// threads.
pub fn gram_f32(x: &[f32], (n, c, hw): (usize, usize, usize), scale: f64) -> Vec<f32> {
    let parts = rayon::current_num_threads().min(hw / MIN_SPLIT).max(1);
    let span = hw.div_ceil(parts);
    let mut out = vec![0f32; n * c * c];
    let mut partial = vec![0f32; parts * c * c];
    for (img, g) in out.chunks_mut(c * c).enumerate() {
        let f = &x[img * c * hw..(img + 1) * c * hw];
        partial
            .par_chunks_mut(c * c)
            .enumerate()
            .for_each(|(p, acc)| {
                let (k0, k1) = (p * span, ((p + 1) * span).min(hw));
                gemm_views_with(
                    (c, c, k1 - k0),
                    View::new(acc, c, 1),
                    (&f[k0..], hw, 1),
                    (&f[k0..], 1, hw),
                    (false, scale as f32),
                    gemm::Parallelism::None,
                );
            });
        for acc in partial.chunks(c * c) {
            for (g, a) in g.iter_mut().zip(acc) {
                *g += a;
            }
        }
    }
    out
}

/// The gradient of [`gram_f32`] with respect to `x` (N x C x HW) for the Gram gradient `dg`
/// (N x C x C): `scale (dG + dG^T) F` per image.
pub fn gram_grad_f32(
    dg: &[f32],
    x: &[f32],
    (n, c, hw): (usize, usize, usize),
    scale: f64,
) -> Vec<f32> {
    let mut out = vec![0f32; n * c * hw];
    let mut sym = vec![0f32; c * c];
    for (img, dx) in out.chunks_mut(c * hw).enumerate() {
        let d = &dg[img * c * c..(img + 1) * c * c];
        for i in 0..c {
            for j in 0..c {
                sym[i * c + j] = d[i * c + j] + d[j * c + i];
            }
        }
        gemm_views_with(
            (c, hw, c),
            View::new(dx, hw, 1),
            (&sym, c, 1),
            (&x[img * c * hw..(img + 1) * c * hw], hw, 1),
            (false, scale as f32),
            gemm::Parallelism::Rayon(rayon::current_num_threads()),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The fused op against candle's own matmul path (itself checked against PyTorch through the
    /// NST fixtures), values and gradients, on a size that splits across threads unevenly.
    #[test]
    fn fused_gram_matches_the_matmul_path() -> Result<()> {
        let dev = Device::Cpu;
        let (n, c, h, w) = (2, 5, 71, 130);
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (n, c, h, w), &dev)?)?;
        let divisor = (c * h * w) as f64;
        let weights = Tensor::randn(0f32, 1.0, (n, c, c), &dev)?;
        let fused = gram(x.as_tensor(), divisor)?;
        let f = x.as_tensor().reshape((n, c, h * w))?;
        let plain = (f.matmul(&f.t()?)? / divisor)?;
        let grads = |g: &Tensor| -> Result<Tensor> {
            let loss = g.mul(&weights)?.sum_all()?;
            let gs = loss.backward()?;
            Ok(gs.get(x.as_tensor()).expect("gradient").clone())
        };
        let (gf, gp) = (grads(&fused)?, grads(&plain)?);
        let close = |a: &Tensor, b: &Tensor| -> Result<f32> {
            let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
            let mag = b.abs()?.max_all()?.to_scalar::<f32>()?;
            Ok(diff / mag)
        };
        assert!(close(&fused, &plain)? < 1e-5);
        assert!(close(&gf, &gp)? < 1e-5);
        Ok(())
    }
}
