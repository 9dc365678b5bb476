//! 3x3 convolution (stride 1, padding 1) by Winograd's minimal filtering (Lavin and Gray, "Fast
//! Algorithms for Convolutional Neural Networks", CVPR 2016): F(2x2, 3x3) on 4x4 input tiles and
//! F(4x4, 3x3) on 6x6 tiles (interpolation points 0, +-1, +-2, infinity).
//!
//! Per output pixel and channel pair, the direct convolution makes 9 multiply-adds, F(2x2)
//! 16/4 = 4 and F(4x4) 36/16 = 2.25, all in `A x A` independent GEMMs of (cout x cin) by
//! (cin x tiles). The price: the transformed weights are 16/9 (F2) or 36/9 (F4) times larger, so
//! on small images, where few tiles share each weight, reading them costs more than the products
//! save; [`WinogradTile::for_size`] picks the tile by image size.

use rayon::prelude::*;

use super::winograd_rows::{
    finish_row, input_tiles, output_tiles, PlaneGrid, RowEpilogue, RowScratch, M_SLACK,
};
use super::{gemm_views_with, timing, ConvInit, SyncPtr, View};

/// The output tile of a Winograd convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WinogradTile {
    /// F(2x2, 3x3): 4x4 input tiles.
    F2,
    /// F(4x4, 3x3): 6x6 input tiles.
    F4,
}

impl WinogradTile {
    /// F(4x4) from 16x16 images up (each transformed weight then serves at least 16 tiles per
    /// image), F(2x2) below.
    pub fn for_size(h: usize, w: usize) -> Self {
        if h.min(w) >= 16 {
            Self::F4
        } else {
            Self::F2
        }
    }
}

/// `G g` for one column `g` of a 3x3 kernel, in `f64` (the F4 fractions are not exact in `f32`).
fn g_f2(g: [f64; 3]) -> [f64; 4] {
    [
        g[0],
        0.5 * (g[0] + g[1] + g[2]),
        0.5 * (g[0] - g[1] + g[2]),
        g[2],
    ]
}

fn g_f4(g: [f64; 3]) -> [f64; 6] {
    let [a, b, c] = g;
    [
        a / 4.0,
        -(a + b + c) / 6.0,
        -(a - b + c) / 6.0,
        a / 24.0 + b / 12.0 + c / 6.0,
        a / 24.0 - b / 12.0 + c / 6.0,
        c,
    ]
}

/// The rows of `G` (A x 3) as `f32`, for the transform made on every call.
const G_F2: [[f32; 3]; 4] = [
    [1.0, 0.0, 0.0],
    [0.5, 0.5, 0.5],
    [0.5, -0.5, 0.5],
    [0.0, 0.0, 1.0],
];
const G_F4: [[f32; 3]; 6] = [
    [0.25, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// Input channels transformed together: the taps of a chunk sit in registers-sized rows so the
/// arithmetic runs across channels.
const CHUNK: usize = 16;

/// `U = G g G^T` for output channel `o` of a (cout, cin, 3, 3) `weight`, written as `A^2` runs of
/// `cin` values into `dst` (`dst[ξ * cin + i]`), in `f32`.
fn transform_channel<const A: usize>(
    weight: &[f32],
    cin: usize,
    o: usize,
    gm: &[[f32; 3]; A],
    dst: &mut [f32],
) {
    let g = &weight[o * cin * 9..(o + 1) * cin * 9];
    let mut i0 = 0;
    while i0 < cin {
        let len = CHUNK.min(cin - i0);
        let mut taps = [[0f32; CHUNK]; 9];
        for ii in 0..len {
            for (k, t) in taps.iter_mut().enumerate() {
                t[ii] = g[(i0 + ii) * 9 + k];
            }
        }
        for (r, gr) in gm.iter().enumerate() {
            // (G g)[r] for the three kernel columns, then times G^T.
            let mut h = [[0f32; CHUNK]; 3];
            for (kx, hk) in h.iter_mut().enumerate() {
                for ii in 0..CHUNK {
                    hk[ii] =
                        gr[0] * taps[kx][ii] + gr[1] * taps[3 + kx][ii] + gr[2] * taps[6 + kx][ii];
                }
            }
            for (c, gc) in gm.iter().enumerate() {
                let run = &mut dst[(r * A + c) * cin + i0..(r * A + c) * cin + i0 + len];
                for (ii, d) in run.iter_mut().enumerate() {
                    *d = gc[0] * h[0][ii] + gc[1] * h[1][ii] + gc[2] * h[2][ii];
                }
            }
        }
        i0 += len;
    }
}

/// All of `U` for a (cout, cin, 3, 3) `weight`, laid out as [`WinogradWeights`] keeps it, made in
/// parallel over output channels.
fn transform_all<const A: usize>(
    weight: &[f32],
    cout: usize,
    cin: usize,
    gm: &[[f32; 3]; A],
) -> Vec<f32> {
    let mut u = vec![0f32; A * A * cout * cin];
    let ptr = SyncPtr(u.as_mut_ptr());
    (0..cout).into_par_iter().for_each_init(
        || vec![0f32; A * A * cin],
        |buf, o| {
            let p = &ptr;
            transform_channel::<A>(weight, cin, o, gm, buf);
            for (xi, run) in buf.chunks_exact(cin).enumerate() {
                // SAFETY: row (xi, o) of U ends at (xi * cout + o + 1) * cin <= A^2 cout cin,
                // and output channel o's rows are written by this task only.
                unsafe {
                    std::ptr::copy_nonoverlapping(run.as_ptr(), p.0.add((xi * cout + o) * cin), cin)
                };
            }
        },
    );
    u
}

/// 3x3 convolution weights transformed for Winograd: `U = G g G^T` for every (output, input)
/// channel pair, stored as `alpha^2` matrices of cout x cin.
#[derive(Debug, Clone)]
pub struct WinogradWeights {
    u: Vec<f32>,
    cout: usize,
    cin: usize,
    tile: WinogradTile,
}

impl WinogradWeights {
    /// Transforms a (cout, cin, 3, 3) weight for `tile`.
    pub fn new(weight: &[f32], cout: usize, cin: usize, tile: WinogradTile) -> Self {
        match tile {
            WinogradTile::F2 => Self::build::<4>(weight, cout, cin, tile, g_f2),
            WinogradTile::F4 => Self::build::<6>(weight, cout, cin, tile, g_f4),
        }
    }

    fn build<const A: usize>(
        weight: &[f32],
        cout: usize,
        cin: usize,
        tile: WinogradTile,
        g_col: fn([f64; 3]) -> [f64; A],
    ) -> Self {
        let mut u = vec![0f32; A * A * cout * cin];
        for o in 0..cout {
            for i in 0..cin {
                let g = &weight[(o * cin + i) * 9..(o * cin + i + 1) * 9];
                // G g (A x 3), column by column, then (G g) G^T row by row.
                let cols: [[f64; A]; 3] =
                    [0, 1, 2].map(|c| g_col([g[c] as f64, g[3 + c] as f64, g[6 + c] as f64]));
                for r in 0..A {
                    let row = g_col([cols[0][r], cols[1][r], cols[2][r]]);
                    for (c, v) in row.iter().enumerate() {
                        u[((r * A + c) * cout + o) * cin + i] = *v as f32;
                    }
                }
            }
        }
        Self { u, cout, cin, tile }
    }

    /// The tile these weights were transformed for.
    pub fn tile(&self) -> WinogradTile {
        self.tile
    }

    /// The transformed weights: `alpha^2` row-major (cout x cin) matrices, one per position of
    /// the transformed tile, for convolutions on layouts other than N x C x H x W (the ResNet
    /// predictor's C x N x H x W).
    pub(crate) fn matrices(&self) -> &[f32] {
        &self.u
    }
}

/// Tiles per band: the transformed input and output of a band stay within a few megabytes.
const BAND_BYTES: usize = 8 << 20;

/// A 3x3, stride 1, padding 1 convolution by Winograd (the tile of `wt`): `alpha^2` products of
/// (cout x cin) by (cin x tiles) instead of one of (cout x 9 cin) by (9 cin x pixels), with
/// `init` added in the output transform. Agrees with the direct convolution to a few units in
/// the last place of the activations' magnitude (F2) or ten times that (F4).
pub fn conv3x3_winograd(
    x: &[f32],
    nhw: (usize, usize, usize),
    wt: &WinogradWeights,
    init: ConvInit<'_>,
) -> Vec<f32> {
    let u = (&wt.u[..], wt.cout, wt.cin);
    timing::timed(0, || match wt.tile {
        WinogradTile::F2 => winograd_impl::<2, 4>(x, nhw, u, init),
        WinogradTile::F4 => winograd_impl::<4, 6>(x, nhw, u, init),
    })
}

/// [`conv3x3_winograd`] from the checkpoint's (cout, cin, 3, 3) `weight`, transformed for `tile`
/// during the call and dropped after it: a model keeps one copy of its weights (the form the
/// other paths read) instead of that plus a 16/9 (F2) or 4 (F4) times larger transform.
pub fn conv3x3_winograd_from(
    x: &[f32],
    nhw: (usize, usize, usize),
    weight: &[f32],
    (cout, cin): (usize, usize),
    tile: WinogradTile,
    init: ConvInit<'_>,
) -> Vec<f32> {
    timing::timed(0, || match tile {
        WinogradTile::F2 => {
            let u = transform_all::<4>(weight, cout, cin, &G_F2);
            winograd_impl::<2, 4>(x, nhw, (&u, cout, cin), init)
        }
        WinogradTile::F4 => {
            let u = transform_all::<6>(weight, cout, cin, &G_F4);
            winograd_impl::<4, 6>(x, nhw, (&u, cout, cin), init)
        }
    })
}

/// Bands of tiles: several whole images when they are small (so the products stay wide), else
/// groups of tile rows of one image.
fn bands(
    n: usize,
    (th, tw): (usize, usize),
    budget_tiles: usize,
) -> Vec<(std::ops::Range<usize>, std::ops::Range<usize>)> {
    let mut bands = Vec::new();
    let imgs_per_band = (budget_tiles / (th * tw).max(1)).max(1);
    if imgs_per_band > 1 {
        let mut i0 = 0;
        while i0 < n {
            let i1 = (i0 + imgs_per_band).min(n);
            bands.push((i0..i1, 0..th));
            i0 = i1;
        }
    } else {
        let rows = (budget_tiles / tw.max(1)).clamp(1, th.max(1));
        for img in 0..n {
            let mut ty0 = 0;
            while ty0 < th {
                let ty1 = (ty0 + rows).min(th);
                bands.push((img..img + 1, ty0..ty1));
                ty0 = ty1;
            }
        }
    }
    bands
}

/// F(M x M, 3x3) with `A = M + 2`; `bt` and `at` are the 1-D input and output transforms.
// Tile rows are indexed into both the column-transformed arrays and the output position.
#[allow(clippy::needless_range_loop)]
fn winograd_impl<const M: usize, const A: usize>(
    x: &[f32],
    (n, h, w): (usize, usize, usize),
    (u, cout, cin): (&[f32], usize, usize),
    init: ConvInit<'_>,
) -> Vec<f32> {
    let (th, tw) = (h.div_ceil(M), w.div_ceil(M));
    let per_tile_bytes = A * A * 4 * (cin + cout);
    let budget_tiles = (BAND_BYTES / per_tile_bytes.max(1)).max(tw);
    let mut out = vec![0f32; n * cout * h * w];
    for (imgs, trows) in bands(n, (th, tw), budget_tiles) {
        let per_img = trows.len() * tw;
        let tiles = imgs.len() * per_img;
        // V: cin x A^2 x tiles (channel-major, so each task owns one block), tile index
        // (image, tile row, tile column).
        let mut v = vec![0f32; A * A * cin * tiles];
        v.par_chunks_mut(A * A * tiles).enumerate().for_each_init(
            RowScratch::default,
            |s, (c, vc)| {
                let g = PlaneGrid {
                    base: c * h * w,
                    image_stride: cin * h * w,
                    h,
                    w,
                    th,
                    tw,
                };
                // The band's tile rows, numbered across images.
                let rows = imgs.start * th + trows.start..(imgs.end - 1) * th + trows.end;
                input_tiles::<M, A>(x, g, rows, s, (vc, tiles));
            },
        );
        // M: A^2 x cout x tiles, one single-threaded product per ξ, in parallel.
        let mut m = vec![0f32; A * A * cout * tiles + M_SLACK];
        m[..A * A * cout * tiles]
            .par_chunks_exact_mut(cout * tiles)
            .enumerate()
            .for_each(|(xi, mx)| {
                let lhs = &u[xi * cout * cin..(xi + 1) * cout * cin];
                gemm_views_with(
                    (cout, tiles, cin),
                    View::new(mx, tiles, 1),
                    (lhs, cin, 1),
                    (&v[xi * tiles..], A * A * tiles, 1),
                    (false, 1.0),
                    gemm::Parallelism::None,
                );
            });
        // Output transform A^T m A plus init, one task per (image, output channel).
        let region = &mut out[imgs.start * cout * h * w..imgs.end * cout * h * w];
        region.par_chunks_mut(h * w).enumerate().for_each_init(
            RowScratch::default,
            |s, (ko, yo)| {
                let (k, o) = (ko / cout, ko % cout);
                let img = imgs.start + k;
                let bias = init.bias.map_or(0.0, |b| b[o])
                    + init.image_bias.map_or(0.0, |b| b[img * cout + o]);
                let res = init
                    .residual
                    .map(|r| &r[(img * cout + o) * h * w..(img * cout + o + 1) * h * w]);
                let rows = output_tiles::<M, A>(
                    &m[o * tiles + k * per_img..],
                    cout * tiles,
                    (per_img, tw),
                    s,
                );
                for (kk, ty) in trows.clone().enumerate() {
                    for y in M * ty..(M * ty + M).min(h) {
                        let e = RowEpilogue {
                            bias,
                            residual: res.map(|r| &r[y * w..(y + 1) * w]),
                            relu: false,
                        };
                        finish_row(rows.row(kk, y - M * ty), e, &mut yo[y * w..(y + 1) * w]);
                    }
                }
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{conv2d_nchw, ConvShape};

    /// Both tiles, with weights transformed ahead and during the call, against the im2col
    /// convolution (itself checked against PyTorch in the predictor and diffusion fixtures), on
    /// sizes that the tiles do and do not divide, channel counts below and above the transform's
    /// chunk, with every init term.
    #[test]
    fn winograd_matches_the_direct_convolution() {
        for (cin, cout, n, h, w) in [
            (5, 7, 1, 16, 16),
            (5, 7, 2, 9, 14),
            (5, 7, 3, 4, 4),
            (5, 7, 1, 1, 3),
            (5, 7, 2, 17, 6),
            (37, 3, 2, 10, 13),
        ] {
            let x: Vec<f32> = (0..n * cin * h * w)
                .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
                .collect();
            let wgt: Vec<f32> = (0..cout * cin * 9)
                .map(|i| ((i * 104_729) % 997) as f32 / 498.5 - 1.0)
                .collect();
            let bias: Vec<f32> = (0..cout).map(|o| o as f32 * 0.1).collect();
            let image_bias: Vec<f32> = (0..n * cout).map(|o| o as f32 * -0.05).collect();
            let residual: Vec<f32> = (0..n * cout * h * w).map(|i| (i % 13) as f32).collect();
            let shape = ConvShape {
                cin,
                cout,
                k: 3,
                stride: 1,
                pad: 1,
            };
            let direct = conv2d_nchw(&x, (n, h, w), shape, &wgt, Some(&bias));
            let init = ConvInit {
                bias: Some(&bias),
                image_bias: Some(&image_bias),
                residual: Some(&residual),
            };
            for tile in [WinogradTile::F2, WinogradTile::F4] {
                let wt = WinogradWeights::new(&wgt, cout, cin, tile);
                let stored = conv3x3_winograd(&x, (n, h, w), &wt, init);
                let from = conv3x3_winograd_from(&x, (n, h, w), &wgt, (cout, cin), tile, init);
                for (i, (g, d)) in stored
                    .iter()
                    .chain(&from)
                    .zip(direct.iter().cycle())
                    .enumerate()
                {
                    let i = i % direct.len();
                    let (img, o) = (i / (cout * h * w), i / (h * w) % cout);
                    let want = d + image_bias[img * cout + o] + residual[i];
                    assert!(
                        (g - want).abs() < 2e-5 * want.abs().max(10.0),
                        "{tile:?} {n}x{h}x{w} at {i}: {g} vs {want}"
                    );
                }
            }
        }
    }
}
