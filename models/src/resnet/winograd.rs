//! The predictor's 3x3 stride-1 convolutions by Winograd's minimal filtering, on its
//! C x N x H x W activations, with the folded batch-norm bias, the residual add and the ReLU
//! applied in the output transform.
//!
//! Same transforms and transformed weights as the diffusion models' `kernels::winograd` (which
//! works on N x C x H x W); the difference is the schedule. The tiles of the whole batch are cut
//! into bands of tile rows small enough that a band's transformed input and products stay in the
//! core's cache, and each band goes through input transform, `alpha^2` products and output
//! transform on one thread, so nothing the band makes leaves that core.

use rayon::prelude::*;

use super::cpu::Act;
use crate::kernels::{self, at_f2, at_f4, bt_f2, bt_f4, SyncPtr, WinogradTile, WinogradWeights};

/// Bytes of transformed input and products per band.
const BAND_BYTES: usize = 768 << 10;

/// A 3x3, stride 1, padding 1 convolution with batch norm folded in, weights transformed once.
#[derive(Debug, Clone)]
pub(crate) struct WinogradConv {
    weights: WinogradWeights,
    bias: Vec<f32>,
    cout: usize,
    cin: usize,
}

impl WinogradConv {
    /// `weight` is (cout, cin, 3, 3) row-major, `bias` has `cout` values.
    pub(crate) fn new(
        weight: &[f32],
        bias: &[f32],
        cout: usize,
        cin: usize,
        tile: WinogradTile,
    ) -> Self {
        Self {
            weights: WinogradWeights::new(weight, cout, cin, tile),
            bias: bias.to_vec(),
            cout,
            cin,
        }
    }

    /// conv(x) + bias, then optionally + `residual`, then optionally ReLU.
    pub(crate) fn run(&self, x: &Act, residual: Option<&Act>, relu: bool) -> Act {
        match self.weights.tile() {
            WinogradTile::F2 => self.run_tiles::<2, 4, _, _>(x, residual, relu, bt_f2, at_f2),
            WinogradTile::F4 => self.run_tiles::<4, 6, _, _>(x, residual, relu, bt_f4, at_f4),
        }
    }

    /// F(M x M, 3x3) with `A = M + 2`; `bt` and `at` are the 1-D input and output transforms.
    fn run_tiles<const M: usize, const A: usize, Bt, At>(
        &self,
        x: &Act,
        residual: Option<&Act>,
        relu: bool,
        bt: Bt,
        at: At,
    ) -> Act
    where
        Bt: Fn([f32; A]) -> [f32; A] + Sync,
        At: Fn([f32; A]) -> [f32; M] + Sync,
    {
        let (n, h, w) = (x.n, x.h, x.w);
        let (th, tw) = (h.div_ceil(M), w.div_ceil(M));
        // Tile rows of the whole batch: row r is tile row r % th of image r / th.
        let rows = n * th;
        let per_row = A * A * 4 * (self.cin + self.cout) * tw;
        let threads = rayon::current_num_threads();
        let band = (BAND_BYTES / per_row.max(1))
            .clamp(1, rows.div_ceil(2 * threads).max(1))
            .min(rows);
        let bands = rows.div_ceil(band);
        let mut out = vec![0f32; self.cout * n * h * w];
        // Each band writes only the output rows of its own tiles (see `output_transform`).
        let ptr = SyncPtr(out.as_mut_ptr());
        let geo = Geometry { n, h, w, th, tw };
        (0..bands)
            .into_par_iter()
            .for_each_init(Scratch::default, |s, b| {
                let band_rows = b * band..((b + 1) * band).min(rows);
                let tiles = band_rows.len() * tw;
                s.v.resize(A * A * self.cin * tiles, 0.0);
                s.m.resize(A * A * self.cout * tiles, 0.0);
                input_transform::<M, A, _>(&x.data, geo, self.cin, band_rows.clone(), &bt, s);
                let u = self.weights.matrices();
                for xi in 0..A * A {
                    kernels::sgemm_serial(
                        (self.cout, tiles, self.cin),
                        &mut s.m[xi * self.cout * tiles..(xi + 1) * self.cout * tiles],
                        &u[xi * self.cout * self.cin..(xi + 1) * self.cout * self.cin],
                        &s.v[xi * self.cin * tiles..(xi + 1) * self.cin * tiles],
                        false,
                    );
                }
                let epilogue = Epilogue {
                    bias: &self.bias,
                    residual: residual.map(|r| &r.data[..]),
                    relu,
                };
                output_transform::<M, A, _>(&s.m, geo, self.cout, band_rows, &at, epilogue, &ptr);
            });
        Act {
            c: self.cout,
            n,
            h,
            w,
            data: out,
        }
    }
}

/// Image and tile grid sizes.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    n: usize,
    h: usize,
    w: usize,
    th: usize,
    tw: usize,
}

/// What the output transform adds before writing.
#[derive(Clone, Copy)]
struct Epilogue<'a> {
    bias: &'a [f32],
    residual: Option<&'a [f32]>,
    relu: bool,
}

/// One thread's buffers, reused across its bands.
#[derive(Default)]
struct Scratch {
    /// Transformed input: `A^2` x cin x tiles.
    v: Vec<f32>,
    /// Products: `A^2` x cout x tiles.
    m: Vec<f32>,
    /// The `A` zero-padded input rows of one tile row.
    rows: Vec<f32>,
    /// `B^T` applied down each column of those rows.
    cols: Vec<f32>,
    /// One tile row's transformed tiles, per position.
    tiles: Vec<f32>,
}

/// `B^T d B` of every tile of the band, written channel by channel into `s.v`.
// Tile rows are indexed into both the column-transformed rows and the output position.
#[allow(clippy::needless_range_loop)]
fn input_transform<const M: usize, const A: usize, Bt>(
    x: &[f32],
    g: Geometry,
    cin: usize,
    band: std::ops::Range<usize>,
    bt: &Bt,
    s: &mut Scratch,
) where
    Bt: Fn([f32; A]) -> [f32; A],
{
    let tiles = band.len() * g.tw;
    let pw = M * g.tw + 2;
    s.rows.resize(A * pw, 0.0);
    s.cols.resize(pw * A, 0.0);
    s.tiles.resize(A * A * g.tw, 0.0);
    for c in 0..cin {
        for (k, r) in band.clone().enumerate() {
            let (img, ty) = (r / g.th, r % g.th);
            let plane = &x[(c * g.n + img) * g.h * g.w..][..g.h * g.w];
            for (i, row) in s.rows.chunks_exact_mut(pw).enumerate() {
                // Input row M ty + i - 1; zeros above, below and right of the image.
                let y = M * ty + i;
                if y >= 1 && y - 1 < g.h {
                    row[0] = 0.0;
                    row[1..=g.w].copy_from_slice(&plane[(y - 1) * g.w..y * g.w]);
                    row[g.w + 1..].fill(0.0);
                } else {
                    row.fill(0.0);
                }
            }
            for (xx, col) in s.cols.chunks_exact_mut(A).enumerate() {
                col.copy_from_slice(&bt(std::array::from_fn(|i| s.rows[i * pw + xx])));
            }
            for tx in 0..g.tw {
                for r in 0..A {
                    let vals = bt(std::array::from_fn(|j| s.cols[(M * tx + j) * A + r]));
                    for (cc, val) in vals.iter().enumerate() {
                        s.tiles[(r * A + cc) * g.tw + tx] = *val;
                    }
                }
            }
            let base = k * g.tw;
            for (xi, run) in s.tiles.chunks_exact(g.tw).enumerate() {
                let at = (xi * cin + c) * tiles + base;
                s.v[at..at + g.tw].copy_from_slice(run);
            }
        }
    }
}

/// `A^T m A` of every tile of the band plus bias (and residual, and ReLU), written into place.
#[allow(clippy::needless_range_loop)]
fn output_transform<const M: usize, const A: usize, At>(
    m: &[f32],
    g: Geometry,
    cout: usize,
    band: std::ops::Range<usize>,
    at: &At,
    e: Epilogue<'_>,
    out: &SyncPtr,
) where
    At: Fn([f32; A]) -> [f32; M],
{
    let tiles = band.len() * g.tw;
    let mut mb = vec![0f32; A * A * g.tw];
    for o in 0..cout {
        let b = e.bias[o];
        for (k, r) in band.clone().enumerate() {
            let (img, ty) = (r / g.th, r % g.th);
            let plane = (o * g.n + img) * g.h * g.w;
            for (xi, run) in mb.chunks_exact_mut(g.tw).enumerate() {
                let from = (xi * cout + o) * tiles + k * g.tw;
                run.copy_from_slice(&m[from..from + g.tw]);
            }
            for tx in 0..g.tw {
                // A^T m column by column (M x A), then each row times A.
                let cols: [[f32; M]; A] = std::array::from_fn(|j| {
                    at(std::array::from_fn(|i| mb[(i * A + j) * g.tw + tx]))
                });
                for rr in 0..M {
                    let y = M * ty + rr;
                    if y >= g.h {
                        break;
                    }
                    let vals = at(std::array::from_fn(|j| cols[j][rr]));
                    let x0 = M * tx;
                    let len = M.min(g.w - x0);
                    let at_px = plane + y * g.w + x0;
                    let mut px = [0f32; M];
                    for c in 0..len {
                        let mut v = vals[c] + b;
                        if let Some(res) = e.residual {
                            v += res[at_px + c];
                        }
                        px[c] = if e.relu { v.max(0.0) } else { v };
                    }
                    // SAFETY: `at_px + len` stays inside row y of plane (o, img), and the rows
                    // of tile row `ty` of image `img` belong to this band alone.
                    unsafe {
                        std::ptr::copy_nonoverlapping(px.as_ptr(), out.0.add(at_px), len);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resnet::cpu::CpuConv;
    use candle_core::{Device, Tensor};

    /// Both tiles against the im2col convolution (checked against torchvision by the predictor
    /// fixtures), with and without residual and ReLU, on sizes the tiles do and do not divide
    /// and batches whose tile rows split unevenly into bands.
    #[test]
    fn winograd_matches_im2col_on_the_predictor_layout() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        for (cin, cout, n, h, w) in [(8, 16, 3, 30, 29), (5, 3, 2, 9, 14), (16, 8, 1, 56, 56)] {
            let weight = Tensor::randn(0f32, 0.3, (cout, cin, 3, 3), &dev)?;
            let bias = Tensor::randn(0f32, 0.3, (1, cout, 1, 1), &dev)?;
            let direct = CpuConv::new(&weight, &bias, 1, 1)?;
            let act = |c: usize| -> candle_core::Result<Act> {
                Ok(Act {
                    c,
                    n,
                    h,
                    w,
                    data: Tensor::randn(0f32, 1.0, c * n * h * w, &dev)?.to_vec1()?,
                })
            };
            let (x, res) = (act(cin)?, act(cout)?);
            let (wv, bv, _) = direct.parts();
            for tile in [WinogradTile::F2, WinogradTile::F4] {
                let wino = WinogradConv::new(wv, bv, cout, cin, tile);
                for (residual, relu) in [(None, false), (Some(&res), true)] {
                    let want = direct.run(&x, residual, relu, &mut Vec::new());
                    let got = wino.run(&x, residual, relu);
                    let scale = want.data.iter().fold(1f32, |m, v| m.max(v.abs()));
                    let err = got
                        .data
                        .iter()
                        .zip(&want.data)
                        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                    assert!(err < 1e-5 * scale, "{tile:?} {n}x{h}x{w}: {err}");
                }
            }
        }
        Ok(())
    }
}
