//! The losses of neural style transfer (Gatys et al., CVPR 2016, as the PyTorch tutorial
//! writes them) on plain CPU buffers, each with its gradient: the fused counterpart of
//! `F.mse_loss` on activations and on their Gram matrices, for [`super::vgg_trunk`].

use super::gram_op::{gram_f32, gram_grad_f32};

/// Per-image losses and the gradient of `weight` times their sum.
#[derive(Debug, Clone)]
pub struct LossAndGrad {
    /// One unweighted loss per image.
    pub per_image: Vec<f32>,
    /// The gradient of `weight * sum(per_image)` with respect to the activations.
    pub grad: Vec<f32>,
}

/// `mean((a - want)^2)` per image of N equal-sized images, and its gradient (`F.mse_loss`, the
/// tutorial's content loss). The sum runs in `f64`.
pub fn mse(a: &[f32], want: &[f32], n: usize, weight: f64) -> LossAndGrad {
    let per = a.len() / n.max(1);
    let scale = (2.0 * weight / per as f64) as f32;
    let mut grad = vec![0f32; a.len()];
    let per_image = (0..n)
        .map(|i| {
            let r = i * per..(i + 1) * per;
            let mut sum = 0f64;
            for ((g, &x), &y) in grad[r.clone()].iter_mut().zip(&a[r.clone()]).zip(&want[r]) {
                let d = x - y;
                sum += f64::from(d * d);
                *g = scale * d;
            }
            (sum / per as f64) as f32
        })
        .collect();
    LossAndGrad { per_image, grad }
}

/// The tutorial's style loss: `mean((G - want)^2)` per image, with `G = F F^T / (C H W)` the
/// Gram matrix of the image's C x HW activations `a`, and its gradient with respect to `a`.
/// `want` holds N target Gram matrices, C x C each.
pub fn gram_mse(
    a: &[f32],
    want: &[f32],
    (n, c, hw): (usize, usize, usize),
    weight: f64,
) -> LossAndGrad {
    let scale = 1.0 / (c * hw) as f64;
    let g = gram_f32(a, (n, c, hw), scale);
    let LossAndGrad { per_image, grad } = mse(&g, want, n, weight);
    LossAndGrad {
        per_image,
        grad: gram_grad_f32(&grad, a, (n, c, hw), scale),
    }
}
