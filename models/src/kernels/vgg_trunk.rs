//! A VGG feature trunk (3x3 padding-1 convolutions, PyTorch's ReLU, 2x2 max pools) on the CPU in
//! `f32`: a forward that keeps what the backward reads, and a backward that computes only the
//! gradient with respect to the input, from gradients given at any of its taps.
//!
//! Through candle's autograd every node of the trunk costs a zero-filled gradient buffer and an
//! addition into it, on top of the op's own backward: at 256x256 those passes over 16 MB
//! activations were a third of a style-transfer closure. Here each layer's gradient is made once
//! and consumed by the layer below. The elementwise kernels are shared with the candle ops of
//! [`crate::vgg19`].

use rayon::prelude::*;

use super::conv_op::{self, ConvAlgo};
use super::ConvShape;

/// Chunk length for the parallel elementwise passes.
const CHUNK: usize = 1 << 16;

/// PyTorch's ReLU forward: `x > 0 or NaN ? x : 0`.
pub(crate) fn relu(x: &[f32]) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(o, x)| {
            for (o, &v) in o.iter_mut().zip(x) {
                *o = if v > 0.0 || v.is_nan() { v } else { 0.0 };
            }
        });
    out
}

/// PyTorch's ReLU backward, `threshold_backward(grad, result, 0)`, in place on `g`:
/// `result <= 0 ? 0 : grad`.
pub(crate) fn relu_grad_in_place(g: &mut [f32], result: &[f32]) {
    g.par_chunks_mut(CHUNK)
        .zip(result.par_chunks(CHUNK))
        .for_each(|(g, r)| {
            for (g, &r) in g.iter_mut().zip(r) {
                if r <= 0.0 {
                    *g = 0.0;
                }
            }
        });
}

/// The index (0..4, row-major) of the first maximum of a 2x2 window, as PyTorch's CPU kernel
/// picks it (`val > max || isnan(val)`).
fn window_argmax(v: [f32; 4]) -> usize {
    let mut best = v[0];
    let mut idx = 0;
    for (k, &x) in v.iter().enumerate().skip(1) {
        if x > best || x.is_nan() {
            best = x;
            idx = k;
        }
    }
    idx
}

/// PyTorch's `MaxPool2d(2, 2)` (floor mode) over `planes` planes of `h` x `w`.
pub(crate) fn max_pool(x: &[f32], (planes, h, w): (usize, usize, usize)) -> Vec<f32> {
    let (ho, wo) = (h / 2, w / 2);
    let mut out = vec![0f32; planes * ho * wo];
    out.par_chunks_mut(ho * wo)
        .zip(x.par_chunks(h * w))
        .for_each(|(o, x)| {
            for oy in 0..ho {
                for ox in 0..wo {
                    let i = 2 * oy * w + 2 * ox;
                    let v = [x[i], x[i + 1], x[i + w], x[i + w + 1]];
                    o[oy * wo + ox] = v[window_argmax(v)];
                }
            }
        });
    out
}

/// The input gradient of [`max_pool`]: each output's gradient goes to the window element its
/// forward picked.
pub(crate) fn max_pool_grad(
    x: &[f32],
    g: &[f32],
    (planes, h, w): (usize, usize, usize),
) -> Vec<f32> {
    let (ho, wo) = (h / 2, w / 2);
    let mut out = vec![0f32; planes * h * w];
    out.par_chunks_mut(h * w)
        .zip(x.par_chunks(h * w).zip(g.par_chunks(ho * wo)))
        .for_each(|(o, (x, g))| {
            for oy in 0..ho {
                for ox in 0..wo {
                    let i = 2 * oy * w + 2 * ox;
                    let v = [x[i], x[i + 1], x[i + w], x[i + w + 1]];
                    let at = [i, i + 1, i + w, i + w + 1][window_argmax(v)];
                    o[at] += g[oy * wo + ox];
                }
            }
        });
    out
}

/// One layer of a [`VggTrunk`].
#[derive(Debug, Clone)]
pub enum TrunkLayer {
    /// A 3x3, padding-1 convolution, (cout, cin, 3, 3) `weight` and `bias`, then its ReLU when
    /// `relu`.
    Conv {
        /// The kernel, row-major (cout, cin, 3, 3).
        weight: Vec<f32>,
        /// One value per output channel.
        bias: Vec<f32>,
        /// Output channels.
        cout: usize,
        /// Input channels.
        cin: usize,
        /// Whether the ReLU runs after it.
        relu: bool,
    },
    /// A 2x2 max pool with stride 2.
    Pool,
}

/// Where a trunk's activation is read: layer `layer` (a convolution), before or after its ReLU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrunkTap {
    /// Index into the trunk's layers.
    pub layer: usize,
    /// After the ReLU (the layer must have one) instead of before.
    pub after_relu: bool,
}

/// A trunk's layers with per-channel input normalisation `(x - mean) / std`.
#[derive(Debug, Clone)]
pub struct VggTrunk {
    /// The layers in order.
    pub layers: Vec<TrunkLayer>,
    /// `(mean, std)` per input channel, or none.
    pub normalize: Option<(Vec<f32>, Vec<f32>)>,
    /// How the 3x3 convolutions are computed.
    pub algo: ConvAlgo,
}

/// Channels, height and width of one image's activation.
pub type Chw = (usize, usize, usize);

/// One layer's saved output: before the ReLU and after it (convolutions with one), or the pool.
#[derive(Debug)]
struct Saved {
    out: Vec<f32>,
    relu: Option<Vec<f32>>,
    chw: Chw,
}

impl Saved {
    /// What the next layer reads.
    fn last(&self) -> &[f32] {
        self.relu.as_deref().unwrap_or(&self.out)
    }
}

/// A forward pass of a [`VggTrunk`] over N images: every layer's output, kept for the taps and
/// the backward.
#[derive(Debug)]
pub struct TrunkRun {
    n: usize,
    input: Vec<f32>,
    input_chw: Chw,
    saved: Vec<Saved>,
}

impl TrunkRun {
    /// The activation at `tap`, N x C x H x W, with (C, H, W); `None` when `tap` names a pool
    /// or a ReLU the layer does not run.
    pub fn tap(&self, tap: TrunkTap) -> Option<(&[f32], Chw)> {
        let s = self.saved.get(tap.layer)?;
        let data = if tap.after_relu {
            s.relu.as_deref()?
        } else {
            &s.out
        };
        Some((data, s.chw))
    }

    /// Images in the batch.
    pub fn batch(&self) -> usize {
        self.n
    }
}

impl VggTrunk {
    /// Runs N images laid out N x C x H x W; every layer's output is kept.
    pub fn forward(&self, x: &[f32], (n, h, w): (usize, usize, usize)) -> TrunkRun {
        let c = x.len() / (n * h * w).max(1);
        let input = match &self.normalize {
            Some((mean, std)) => {
                let mut v = x.to_vec();
                for (p, plane) in v.chunks_mut(h * w).enumerate() {
                    let (m, s) = (mean[p % c], std[p % c]);
                    for e in plane {
                        *e = (*e - m) / s;
                    }
                }
                v
            }
            None => x.to_vec(),
        };
        let mut saved: Vec<Saved> = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let (prev, (pc, ph, pw)) = match saved.last() {
                Some(s) => (s.last(), s.chw),
                None => (&input[..], (c, h, w)),
            };
            saved.push(match layer {
                TrunkLayer::Conv {
                    weight,
                    bias,
                    cout,
                    cin,
                    relu: with_relu,
                } => {
                    let out = conv_op::forward(
                        prev,
                        (n, ph, pw),
                        shape(*cout, *cin),
                        (weight, bias),
                        self.algo,
                    );
                    let relu = with_relu.then(|| relu(&out));
                    Saved {
                        out,
                        relu,
                        chw: (*cout, ph, pw),
                    }
                }
                TrunkLayer::Pool => Saved {
                    out: max_pool(prev, (n * pc, ph, pw)),
                    relu: None,
                    chw: (pc, ph / 2, pw / 2),
                },
            });
        }
        TrunkRun {
            n,
            input,
            input_chw: (c, h, w),
            saved,
        }
    }

    /// The gradient with respect to the (unnormalised) input of `run`, N x C x H x W, given the
    /// gradients of a loss with respect to the activations at `taps` (each the tap's size;
    /// repeated taps add up).
    pub fn backward(&self, run: &TrunkRun, taps: &[(TrunkTap, &[f32])]) -> Vec<f32> {
        let n = run.n;
        let add_taps = |g: &mut Option<Vec<f32>>, layer: usize, after_relu: bool| {
            for (t, d) in taps {
                if t.layer == layer && t.after_relu == after_relu {
                    match g {
                        Some(g) => g.iter_mut().zip(*d).for_each(|(g, d)| *g += d),
                        None => *g = Some(d.to_vec()),
                    }
                }
            }
        };
        // The gradient with respect to the current layer's output (what the next layer read).
        let mut g: Option<Vec<f32>> = None;
        for (k, layer) in self.layers.iter().enumerate().rev() {
            let s = &run.saved[k];
            let (prev, (pc, ph, pw)) = match k {
                0 => (&run.input[..], run.input_chw),
                _ => (run.saved[k - 1].last(), run.saved[k - 1].chw),
            };
            g = match layer {
                TrunkLayer::Conv {
                    weight, cout, cin, ..
                } => {
                    if let Some(r) = &s.relu {
                        add_taps(&mut g, k, true);
                        if let Some(g) = &mut g {
                            relu_grad_in_place(g, r);
                        }
                    }
                    add_taps(&mut g, k, false);
                    g.map(|g| {
                        conv_op::input_grad(
                            &g,
                            (n, s.chw.1, s.chw.2),
                            shape(*cout, *cin),
                            weight,
                            (ph, pw),
                            self.algo,
                        )
                    })
                }
                TrunkLayer::Pool => g.map(|g| max_pool_grad(prev, &g, (n * pc, ph, pw))),
            };
        }
        let (c, h, w) = run.input_chw;
        let mut dx = g.unwrap_or_else(|| vec![0f32; n * c * h * w]);
        if let Some((_, std)) = &self.normalize {
            for (p, plane) in dx.chunks_mut(h * w).enumerate() {
                let s = std[p % c];
                for e in plane {
                    *e /= s;
                }
            }
        }
        dx
    }
}

fn shape(cout: usize, cin: usize) -> ConvShape {
    ConvShape {
        cin,
        cout,
        k: 3,
        stride: 1,
        pad: 1,
    }
}
