//! A pre-norm vision transformer (CLIP's image tower: patch embedding, class token, learned
//! positions, pre-layer-norm, encoder layers with quick-GELU MLPs, post-layer-norm on the class
//! token, projection) on the CPU, with a backward that computes the gradient with respect to the
//! input pixels only.
//!
//! CLIPstyler backpropagates 65 images per iteration through CLIP ViT-B/32 whose weights are
//! constants. Built from candle ops, the backward also computes every weight gradient (candle's
//! matmul backward always does), and layer norm, softmax and GELU each make several passes with
//! a temporary per step. Here each layer is a few GEMMs plus one fused pass per nonlinearity;
//! the forward keeps what the input gradient needs (normalised activations and their inverse
//! standard deviations, the attention inputs and weights, the MLP's pre-activations) and
//! nothing that only weight gradients would need.
//!
//! Same `f32` arithmetic as PyTorch in a different order (layer-norm statistics accumulated in
//! `f64`): values and gradients agree with transformers' `CLIPVisionModel` to ~1e-6 relative.

use rayon::prelude::*;

use super::{fastmath, gemm_views_with, View};

/// A layer norm's affine parameters.
#[derive(Debug, Clone)]
pub struct NormWeights {
    /// Scale per feature.
    pub gamma: Vec<f32>,
    /// Shift per feature.
    pub beta: Vec<f32>,
}

/// One encoder layer; matrices in PyTorch's (out, in) row-major layout.
#[derive(Debug, Clone)]
pub struct VitLayer {
    /// `layer_norm1`.
    pub norm1: NormWeights,
    /// `q_proj`, `k_proj`, `v_proj` weights stacked: (3 d, d).
    pub qkv_weight: Vec<f32>,
    /// Their biases stacked: (3 d).
    pub qkv_bias: Vec<f32>,
    /// `out_proj` weight (d, d).
    pub out_weight: Vec<f32>,
    /// `out_proj` bias (d).
    pub out_bias: Vec<f32>,
    /// `layer_norm2`.
    pub norm2: NormWeights,
    /// `mlp.fc1` weight (inner, d).
    pub fc1_weight: Vec<f32>,
    /// `mlp.fc1` bias (inner).
    pub fc1_bias: Vec<f32>,
    /// `mlp.fc2` weight (d, inner).
    pub fc2_weight: Vec<f32>,
    /// `mlp.fc2` bias (d).
    pub fc2_bias: Vec<f32>,
}

/// The whole image tower.
#[derive(Debug, Clone)]
pub struct VitWeights {
    /// Width.
    pub d: usize,
    /// MLP width.
    pub inner: usize,
    /// Attention heads.
    pub heads: usize,
    /// Input side in pixels.
    pub image_size: usize,
    /// Patch side in pixels.
    pub patch: usize,
    /// Layer-norm epsilon.
    pub eps: f64,
    /// Patch embedding (d, 3 patch patch), no bias.
    pub patch_weight: Vec<f32>,
    /// Class token (d).
    pub class_embedding: Vec<f32>,
    /// Positions (tokens, d).
    pub position_embedding: Vec<f32>,
    /// `pre_layrnorm`.
    pub pre_norm: NormWeights,
    /// Encoder layers.
    pub layers: Vec<VitLayer>,
    /// `post_layernorm`.
    pub post_norm: NormWeights,
    /// `visual_projection` (projection, d), no bias.
    pub projection: Vec<f32>,
}

impl VitWeights {
    fn grid(&self) -> usize {
        self.image_size / self.patch
    }

    /// Tokens per image (patches plus the class token).
    fn tokens(&self) -> usize {
        self.grid() * self.grid() + 1
    }

    fn projection_dim(&self) -> usize {
        self.projection.len() / self.d.max(1)
    }
}

/// What a layer norm's backward needs: the normalised rows and their inverse deviations.
#[derive(Debug, Default)]
struct NormSaved {
    xhat: Vec<f32>,
    rstd: Vec<f32>,
}

/// What one layer's input gradient needs.
#[derive(Debug)]
struct LayerSaved {
    norm1: NormSaved,
    /// Rows of (scaled q | k | v).
    qkv: Vec<f32>,
    /// Attention weights (batch, heads, t, t).
    probs: Vec<f32>,
    norm2: NormSaved,
    /// fc1 outputs before the activation.
    pre_act: Vec<f32>,
}

/// The activations a forward pass kept for [`backward`].
#[derive(Debug)]
pub struct VitSaved {
    batch: usize,
    pre: NormSaved,
    layers: Vec<LayerSaved>,
    post: NormSaved,
}

fn rayon_par() -> gemm::Parallelism {
    gemm::Parallelism::Rayon(rayon::current_num_threads())
}

/// `dst = a · bᵀ` (or `+=`): `a` (m, k) and `b` (n, k) row-major, `dst` (m, n).
fn mul_bt(m: usize, n: usize, k: usize, dst: &mut [f32], a: &[f32], b: &[f32], acc: bool) {
    gemm_views_with(
        (m, n, k),
        View::new(dst, n, 1),
        (a, k, 1),
        (b, 1, k),
        (acc, 1.0),
        rayon_par(),
    );
}

/// `dst = a · b` (or `+=`): `a` (m, k) and `b` (k, n) row-major, `dst` (m, n).
fn mul(m: usize, n: usize, k: usize, dst: &mut [f32], a: &[f32], b: &[f32], acc: bool) {
    gemm_views_with(
        (m, n, k),
        View::new(dst, n, 1),
        (a, k, 1),
        (b, n, 1),
        (acc, 1.0),
        rayon_par(),
    );
}

/// `x · wᵀ + bias` for rows of `x` (rows, k) and `w` (n, k).
fn linear(x: &[f32], rows: usize, w: &[f32], bias: &[f32]) -> Vec<f32> {
    let n = bias.len();
    let k = w.len() / n.max(1);
    let mut out = vec![0f32; rows * n];
    out.par_chunks_mut(n).for_each(|r| r.copy_from_slice(bias));
    mul_bt(rows, n, k, &mut out, x, w, true);
    out
}

/// Layer norm of each `d`-wide row; keeps the normalised rows when `save`.
fn layer_norm(x: &[f32], d: usize, w: &NormWeights, eps: f64, save: bool) -> (Vec<f32>, NormSaved) {
    let rows = x.len() / d;
    let mut out = vec![0f32; x.len()];
    let mut xhat = vec![0f32; x.len()];
    let mut rstd = vec![0f32; rows];
    out.par_chunks_mut(d)
        .zip(xhat.par_chunks_mut(d))
        .zip(x.par_chunks(d).zip(rstd.par_iter_mut()))
        .for_each(|((o, xh), (x, r))| {
            let (mean, var) = fastmath::mean_var(x);
            let inv = 1.0 / (var + eps).sqrt();
            *r = inv as f32;
            let (mean, inv) = (mean as f32, inv as f32);
            for ((((o, xh), &v), &g), &b) in o.iter_mut().zip(xh).zip(x).zip(&w.gamma).zip(&w.beta)
            {
                *xh = (v - mean) * inv;
                *o = *xh * g + b;
            }
        });
    if !save {
        return (out, NormSaved::default());
    }
    (out, NormSaved { xhat, rstd })
}

/// Adds the layer norm's input gradient for the output gradient `dy` to `dx`:
/// `rstd (g - mean(g) - xhat mean(g xhat))` with `g = dy gamma`.
fn layer_norm_backward(dx: &mut [f32], dy: &[f32], saved: &NormSaved, gamma: &[f32]) {
    let d = gamma.len();
    dx.par_chunks_mut(d)
        .zip(dy.par_chunks(d))
        .zip(saved.xhat.par_chunks(d))
        .zip(saved.rstd.par_iter())
        .for_each(|(((dx, dy), xh), &r)| {
            let (mut s1, mut s2) = (0f64, 0f64);
            for ((&g, &w), &xh) in dy.iter().zip(gamma).zip(xh) {
                let gw = (g * w) as f64;
                s1 += gw;
                s2 += gw * xh as f64;
            }
            let (m1, m2) = ((s1 / d as f64) as f32, (s2 / d as f64) as f32);
            for (((dx, &g), &w), &xh) in dx.iter_mut().zip(dy).zip(gamma).zip(xh) {
                *dx += r * (g * w - m1 - xh * m2);
            }
        });
}

/// CLIP's quick GELU, `u sigmoid(1.702 u)`.
#[inline(always)]
fn sigmoid_1702(u: f32) -> f32 {
    1.0 / (1.0 + fastmath::exp(-1.702 * u))
}

/// Multi-head attention on rows of (scaled q | k | v): returns the concatenated head outputs
/// (rows, d) and the attention weights (batch, heads, t, t).
fn attention_forward(
    qkv: &[f32],
    b: usize,
    t: usize,
    heads: usize,
    d: usize,
) -> (Vec<f32>, Vec<f32>) {
    let hd = d / heads;
    let mut out = vec![0f32; b * t * d];
    let mut probs = vec![0f32; b * heads * t * t];
    out.par_chunks_mut(t * d)
        .zip(probs.par_chunks_mut(heads * t * t))
        .zip(qkv.par_chunks(t * 3 * d))
        .for_each(|((out, probs), qkv)| {
            for (h, p) in probs.chunks_mut(t * t).enumerate() {
                gemm_views_with(
                    (t, t, hd),
                    View::new(p, t, 1),
                    (&qkv[h * hd..], 3 * d, 1),
                    (&qkv[d + h * hd..], 1, 3 * d),
                    (false, 1.0),
                    gemm::Parallelism::None,
                );
                fastmath::softmax_rows(p, t, 0, false);
                gemm_views_with(
                    (t, hd, t),
                    View::new(&mut out[h * hd..], d, 1),
                    (p, t, 1),
                    (&qkv[2 * d + h * hd..], 3 * d, 1),
                    (false, 1.0),
                    gemm::Parallelism::None,
                );
            }
        });
    (out, probs)
}

/// The gradient with respect to the rows of (q | k | v) (q before its scaling by `scale`) for
/// the gradient `dout` of the concatenated head outputs.
#[allow(clippy::too_many_arguments)]
fn attention_backward(
    dout: &[f32],
    qkv: &[f32],
    probs: &[f32],
    b: usize,
    t: usize,
    heads: usize,
    d: usize,
    scale: f32,
) -> Vec<f32> {
    let hd = d / heads;
    let mut dqkv = vec![0f32; b * t * 3 * d];
    dqkv.par_chunks_mut(t * 3 * d)
        .zip(dout.par_chunks(t * d))
        .zip(
            qkv.par_chunks(t * 3 * d)
                .zip(probs.par_chunks(heads * t * t)),
        )
        .for_each(|((dqkv, dout), (qkv, probs))| {
            let mut ds = vec![0f32; t * t];
            for (h, p) in probs.chunks(t * t).enumerate() {
                let dov = (&dout[h * hd..], d, 1);
                // dP = dO · vᵀ
                gemm_views_with(
                    (t, t, hd),
                    View::new(&mut ds, t, 1),
                    dov,
                    (&qkv[2 * d + h * hd..], 1, 3 * d),
                    (false, 1.0),
                    gemm::Parallelism::None,
                );
                // dS = P (dP - rowsum(dP P))
                for (dsr, pr) in ds.chunks_mut(t).zip(p.chunks(t)) {
                    let dot: f32 = dsr.iter().zip(pr).map(|(a, b)| a * b).sum();
                    for (g, &pv) in dsr.iter_mut().zip(pr) {
                        *g = pv * (*g - dot);
                    }
                }
                // dq = scale dS · k (the forward scaled q after its projection)
                gemm_views_with(
                    (t, hd, t),
                    View::new(&mut dqkv[h * hd..], 3 * d, 1),
                    (&ds, t, 1),
                    (&qkv[d + h * hd..], 3 * d, 1),
                    (false, scale),
                    gemm::Parallelism::None,
                );
                // dk = dSᵀ · q (q as scaled)
                gemm_views_with(
                    (t, hd, t),
                    View::new(&mut dqkv[d + h * hd..], 3 * d, 1),
                    (&ds, 1, t),
                    (&qkv[h * hd..], 3 * d, 1),
                    (false, 1.0),
                    gemm::Parallelism::None,
                );
                // dv = Pᵀ · dO
                gemm_views_with(
                    (t, hd, t),
                    View::new(&mut dqkv[2 * d + h * hd..], 3 * d, 1),
                    (p, 1, t),
                    dov,
                    (false, 1.0),
                    gemm::Parallelism::None,
                );
            }
        });
    dqkv
}

fn layer_forward(
    w: &VitLayer,
    x: &[f32],
    (b, t): (usize, usize),
    heads: usize,
    eps: f64,
    save: bool,
) -> (Vec<f32>, Option<LayerSaved>) {
    let d = w.out_bias.len();
    let rows = b * t;
    let scale = ((d / heads) as f64).powf(-0.5) as f32;
    let (h1, norm1) = layer_norm(x, d, &w.norm1, eps, save);
    let mut qkv = linear(&h1, rows, &w.qkv_weight, &w.qkv_bias);
    drop(h1);
    // transformers scales the queries after their projection.
    qkv.par_chunks_mut(3 * d).for_each(|r| {
        for v in &mut r[..d] {
            *v *= scale;
        }
    });
    let (a, probs) = attention_forward(&qkv, b, t, heads, d);
    let mut x2 = linear(&a, rows, &w.out_weight, &w.out_bias);
    drop(a);
    x2.par_iter_mut()
        .zip(x.par_iter())
        .for_each(|(y, &r)| *y += r);
    let (h2, norm2) = layer_norm(&x2, d, &w.norm2, eps, save);
    let pre_act = linear(&h2, rows, &w.fc1_weight, &w.fc1_bias);
    drop(h2);
    let inner = w.fc1_bias.len();
    let mut act = vec![0f32; pre_act.len()];
    act.par_chunks_mut(inner)
        .zip(pre_act.par_chunks(inner))
        .for_each(|(a, u)| {
            for (a, &u) in a.iter_mut().zip(u) {
                *a = u * sigmoid_1702(u);
            }
        });
    let mut y = linear(&act, rows, &w.fc2_weight, &w.fc2_bias);
    y.par_iter_mut()
        .zip(x2.par_iter())
        .for_each(|(y, &r)| *y += r);
    let saved = save.then_some(LayerSaved {
        norm1,
        qkv,
        probs,
        norm2,
        pre_act,
    });
    (y, saved)
}

fn layer_backward(
    w: &VitLayer,
    s: &LayerSaved,
    dy: Vec<f32>,
    (b, t): (usize, usize),
    heads: usize,
) -> Vec<f32> {
    let d = w.out_bias.len();
    let inner = w.fc1_bias.len();
    let rows = b * t;
    let scale = ((d / heads) as f64).powf(-0.5) as f32;
    // MLP: y = x2 + fc2(act(fc1(norm2(x2)))).
    let mut dact = vec![0f32; rows * inner];
    mul(rows, inner, d, &mut dact, &dy, &w.fc2_weight, false);
    dact.par_chunks_mut(inner)
        .zip(s.pre_act.par_chunks(inner))
        .for_each(|(g, u)| {
            for (g, &u) in g.iter_mut().zip(u) {
                let sg = sigmoid_1702(u);
                *g *= sg + 1.702 * u * sg * (1.0 - sg);
            }
        });
    let mut dh2 = vec![0f32; rows * d];
    mul(rows, d, inner, &mut dh2, &dact, &w.fc1_weight, false);
    drop(dact);
    let mut dx2 = dy;
    layer_norm_backward(&mut dx2, &dh2, &s.norm2, &w.norm2.gamma);
    // Attention: x2 = x + out_proj(attn(qkv(norm1(x)))).
    let mut da = dh2;
    mul(rows, d, d, &mut da, &dx2, &w.out_weight, false);
    let dqkv = attention_backward(&da, &s.qkv, &s.probs, b, t, heads, d, scale);
    let mut dh1 = da;
    mul(rows, d, 3 * d, &mut dh1, &dqkv, &w.qkv_weight, false);
    let mut dx = dx2;
    layer_norm_backward(&mut dx, &dh1, &s.norm1, &w.norm1.gamma);
    dx
}

/// Runs the tower on `batch` CLIP-normalised images (batch, 3, image_size, image_size),
/// row-major; returns the (batch, projection) embeddings and, with `save`, what [`backward`]
/// needs.
pub fn forward(
    w: &VitWeights,
    images: &[f32],
    batch: usize,
    save: bool,
) -> (Vec<f32>, Option<VitSaved>) {
    let (d, p, g, t) = (w.d, w.patch, w.grid(), w.tokens());
    let s = w.image_size;
    let pp = 3 * p * p;
    // Patches as rows (image, gy, gx) of (channel, py, px), the stride-p convolution's order.
    let mut patches = vec![0f32; batch * g * g * pp];
    patches.par_chunks_mut(pp).enumerate().for_each(|(r, row)| {
        let (bi, gy, gx) = (r / (g * g), r / g % g, r % g);
        for c in 0..3 {
            for py in 0..p {
                let src = ((bi * 3 + c) * s + gy * p + py) * s + gx * p;
                row[(c * p + py) * p..(c * p + py + 1) * p].copy_from_slice(&images[src..src + p]);
            }
        }
    });
    let mut emb = vec![0f32; batch * g * g * d];
    mul_bt(
        batch * g * g,
        d,
        pp,
        &mut emb,
        &patches,
        &w.patch_weight,
        false,
    );
    drop(patches);
    let mut tokens = vec![0f32; batch * t * d];
    tokens
        .par_chunks_mut(t * d)
        .zip(emb.par_chunks(g * g * d))
        .for_each(|(tok, e)| {
            for (i, row) in tok.chunks_mut(d).enumerate() {
                let pos = &w.position_embedding[i * d..(i + 1) * d];
                let src = if i == 0 {
                    &w.class_embedding[..]
                } else {
                    &e[(i - 1) * d..i * d]
                };
                for ((o, &a), &b) in row.iter_mut().zip(src).zip(pos) {
                    *o = a + b;
                }
            }
        });
    drop(emb);
    let (mut x, pre) = layer_norm(&tokens, d, &w.pre_norm, w.eps, save);
    drop(tokens);
    let mut layers = Vec::with_capacity(if save { w.layers.len() } else { 0 });
    for layer in &w.layers {
        let (y, saved) = layer_forward(layer, &x, (batch, t), w.heads, w.eps, save);
        x = y;
        layers.extend(saved);
    }
    let cls: Vec<f32> = x.chunks(t * d).flat_map(|img| img[..d].to_vec()).collect();
    let (pooled, post) = layer_norm(&cls, d, &w.post_norm, w.eps, save);
    let k = w.projection_dim();
    let mut out = vec![0f32; batch * k];
    mul_bt(batch, k, d, &mut out, &pooled, &w.projection, false);
    let saved = save.then_some(VitSaved {
        batch,
        pre,
        layers,
        post,
    });
    (out, saved)
}

/// The gradient with respect to the input images of [`forward`] (same layout), for the
/// gradient `dout` (batch, projection) of its embeddings.
pub fn backward(w: &VitWeights, saved: &VitSaved, dout: &[f32]) -> Vec<f32> {
    let (d, p, g, t) = (w.d, w.patch, w.grid(), w.tokens());
    let s = w.image_size;
    let pp = 3 * p * p;
    let batch = saved.batch;
    let k = w.projection_dim();
    let mut dpooled = vec![0f32; batch * d];
    mul(batch, d, k, &mut dpooled, dout, &w.projection, false);
    let mut dcls = vec![0f32; batch * d];
    layer_norm_backward(&mut dcls, &dpooled, &saved.post, &w.post_norm.gamma);
    let mut dx = vec![0f32; batch * t * d];
    for (img, c) in dx.chunks_mut(t * d).zip(dcls.chunks(d)) {
        img[..d].copy_from_slice(c);
    }
    for (layer, ls) in w.layers.iter().zip(&saved.layers).rev() {
        dx = layer_backward(layer, ls, dx, (batch, t), w.heads);
    }
    let mut dtokens = vec![0f32; batch * t * d];
    layer_norm_backward(&mut dtokens, &dx, &saved.pre, &w.pre_norm.gamma);
    drop(dx);
    // The class token and positions are constants; the patch rows go back through the
    // embedding.
    let demb: Vec<f32> = dtokens
        .chunks(t * d)
        .flat_map(|img| img[d..].to_vec())
        .collect();
    drop(dtokens);
    let mut dpatches = vec![0f32; batch * g * g * pp];
    mul(
        batch * g * g,
        pp,
        d,
        &mut dpatches,
        &demb,
        &w.patch_weight,
        false,
    );
    let mut dimg = vec![0f32; batch * 3 * s * s];
    // Each (image, channel, pixel row) of the input belongs to one patch row band.
    dimg.par_chunks_mut(s).enumerate().for_each(|(r, row)| {
        let (bi, c, y) = (r / (3 * s), r / s % 3, r % s);
        let (gy, py) = (y / p, y % p);
        for gx in 0..g {
            let src = &dpatches[(bi * g * g + gy * g + gx) * pp + (c * p + py) * p..][..p];
            row[gx * p..(gx + 1) * p].copy_from_slice(src);
        }
    });
    dimg
}
