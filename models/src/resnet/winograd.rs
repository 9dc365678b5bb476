//! The predictor's 3x3 stride-1 convolutions by Winograd's minimal filtering, on its
//! C x N x H x W activations, with the folded batch-norm bias, the residual add and the ReLU
//! applied in the output transform.
//!
//! Same transforms (`kernels::winograd_rows`) and transformed weights as the diffusion models'
//! `kernels::winograd` (which works on N x C x H x W); the difference is the schedule, two of them:
//! - banded ([`WinogradConv::run`], for large images): the tiles of the whole batch are cut into
//!   bands of tile rows small enough that a band's transformed input and products stay in the
//!   core's cache, and each band goes through input transform, `alpha^2` products and output
//!   transform on one thread, so nothing the band makes leaves that core;
//! - whole-batch ([`WinogradConv::run_wide`], for small images with many channels): every tile
//!   of the batch in one product per position, the positions split across threads, so each
//!   transformed weight matrix (up to 1 MB at 512 channels) is read once per call.

use rayon::prelude::*;

use super::cpu::Act;
use crate::kernels::{
    self, finish_row, input_tiles, output_tiles, PlaneGrid, RowEpilogue, RowScratch, SyncPtr, View,
    WinogradTile, WinogradWeights, M_SLACK,
};

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

    /// conv(x) + bias, then optionally + `residual`, then optionally ReLU, band by band.
    pub(crate) fn run(&self, x: &Act, residual: Option<&Act>, relu: bool) -> Act {
        match self.weights.tile() {
            WinogradTile::F2 => self.banded::<2, 4>(x, residual, relu),
            WinogradTile::F4 => self.banded::<4, 6>(x, residual, relu),
        }
    }

    /// Like [`Self::run`], with every tile of the batch in one product per position, the
    /// `A^2` products split across threads: each transformed weight matrix is read once.
    pub(crate) fn run_wide(&self, x: &Act, residual: Option<&Act>, relu: bool) -> Act {
        match self.weights.tile() {
            WinogradTile::F2 => self.wide::<2, 4>(x, residual, relu),
            WinogradTile::F4 => self.wide::<4, 6>(x, residual, relu),
        }
    }

    /// F(M x M, 3x3) with `A = M + 2`, band by band, each band on one thread.
    fn banded<const M: usize, const A: usize>(
        &self,
        x: &Act,
        residual: Option<&Act>,
        relu: bool,
    ) -> Act {
        let geo = Geometry::of::<M>(x);
        // Tile rows of the whole batch: row r is tile row r % th of image r / th.
        let rows = geo.n * geo.th;
        let per_row = A * A * 4 * (self.cin + self.cout) * geo.tw;
        let threads = rayon::current_num_threads();
        let band = (BAND_BYTES / per_row.max(1))
            .clamp(1, rows.div_ceil(2 * threads).max(1))
            .min(rows);
        let bands = rows.div_ceil(band);
        let mut out = vec![0f32; self.cout * geo.n * geo.h * geo.w];
        // Each band writes only the output rows of its own tiles (see `output_transform`).
        let ptr = SyncPtr(out.as_mut_ptr());
        let epilogue = self.epilogue(residual, relu);
        (0..bands)
            .into_par_iter()
            .for_each_init(Scratch::default, |s, b| {
                let band_rows = b * band..((b + 1) * band).min(rows);
                let tiles = band_rows.len() * geo.tw;
                s.v.resize(A * A * self.cin * tiles, 0.0);
                s.m.resize(A * A * self.cout * tiles + M_SLACK, 0.0);
                let chans = 0..self.cin;
                input_transform::<M, A>(
                    &x.data,
                    geo,
                    chans,
                    band_rows.clone(),
                    &mut s.row,
                    &mut s.v,
                );
                self.products::<A>(&s.v, tiles, &mut s.m, false);
                let chans = 0..self.cout;
                output_transform::<M, A>(&s.m, geo, chans, band_rows, epilogue, &mut s.row, &ptr);
            });
        geo.act(self.cout, out)
    }

    fn wide<const M: usize, const A: usize>(
        &self,
        x: &Act,
        residual: Option<&Act>,
        relu: bool,
    ) -> Act {
        let geo = Geometry::of::<M>(x);
        let rows = geo.n * geo.th;
        let tiles = rows * geo.tw;
        let threads = rayon::current_num_threads();
        // V channel-major (cin x A^2 x tiles): each thread transforms a block of channels.
        let mut v = vec![0f32; A * A * self.cin * tiles];
        let per = self.cin.div_ceil(threads);
        v.par_chunks_mut(per * A * A * tiles)
            .enumerate()
            .for_each_init(RowScratch::default, |s, (t, block)| {
                let chans = t * per..((t + 1) * per).min(self.cin);
                input_transform::<M, A>(&x.data, geo, chans, 0..rows, s, block);
            });
        let mut m = vec![0f32; A * A * self.cout * tiles + M_SLACK];
        self.products::<A>(&v, tiles, &mut m, true);
        let mut out = vec![0f32; self.cout * geo.n * geo.h * geo.w];
        let ptr = SyncPtr(out.as_mut_ptr());
        let epilogue = self.epilogue(residual, relu);
        let per = self.cout.div_ceil(threads);
        (0..threads)
            .into_par_iter()
            .for_each_init(RowScratch::default, |s, t| {
                let chans = (t * per).min(self.cout)..((t + 1) * per).min(self.cout);
                output_transform::<M, A>(&m, geo, chans, 0..rows, epilogue, s, &ptr);
            });
        geo.act(self.cout, out)
    }

    /// `m[xi] = U[xi] v[xi]` for every position `xi`, with `v` channel-major
    /// (cin x A^2 x tiles), on this thread or split across threads.
    fn products<const A: usize>(&self, v: &[f32], tiles: usize, m: &mut [f32], parallel: bool) {
        let u = self.weights.matrices();
        let (cout, cin) = (self.cout, self.cin);
        let one = |(xi, mx): (usize, &mut [f32])| {
            kernels::gemm_views_with(
                (cout, tiles, cin),
                View::new(mx, tiles, 1),
                (&u[xi * cout * cin..(xi + 1) * cout * cin], cin, 1),
                (&v[xi * tiles..], A * A * tiles, 1),
                (false, 1.0),
                gemm::Parallelism::None,
            );
        };
        if parallel {
            m[..A * A * cout * tiles]
                .par_chunks_exact_mut(cout * tiles)
                .enumerate()
                .for_each(one);
        } else {
            m[..A * A * cout * tiles]
                .chunks_exact_mut(cout * tiles)
                .enumerate()
                .for_each(one);
        }
    }

    fn epilogue<'a>(&'a self, residual: Option<&'a Act>, relu: bool) -> Epilogue<'a> {
        Epilogue {
            bias: &self.bias,
            residual: residual.map(|r| &r.data[..]),
            relu,
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

impl Geometry {
    fn of<const M: usize>(x: &Act) -> Self {
        Self {
            n: x.n,
            h: x.h,
            w: x.w,
            th: x.h.div_ceil(M),
            tw: x.w.div_ceil(M),
        }
    }

    fn act(&self, c: usize, data: Vec<f32>) -> Act {
        Act {
            c,
            n: self.n,
            h: self.h,
            w: self.w,
            data,
        }
    }

    /// The image and tile row of global tile row `r`.
    fn tile_row(&self, r: usize) -> (usize, usize) {
        (r / self.th, r % self.th)
    }
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
    /// Transformed input, channel-major: cin x `A^2` x tiles.
    v: Vec<f32>,
    /// Products: `A^2` x cout x tiles.
    m: Vec<f32>,
    row: RowScratch,
}

/// `B^T d B` of every tile of the band rows for the channels `chans`, into `v`
/// (`chans.len()` x `A^2` x tiles).
fn input_transform<const M: usize, const A: usize>(
    x: &[f32],
    g: Geometry,
    chans: std::ops::Range<usize>,
    band: std::ops::Range<usize>,
    s: &mut RowScratch,
    v: &mut [f32],
) {
    let tiles = band.len() * g.tw;
    for (ci, c) in chans.enumerate() {
        let grid = PlaneGrid {
            base: c * g.n * g.h * g.w,
            image_stride: g.h * g.w,
            h: g.h,
            w: g.w,
            th: g.th,
            tw: g.tw,
        };
        let block = &mut v[ci * A * A * tiles..][..A * A * tiles];
        input_tiles::<M, A>(x, grid, band.clone(), s, (block, tiles));
    }
}

/// `A^T m A` of every tile of the band rows for the output channels `chans`, plus bias (and
/// residual, and ReLU), written into place.
fn output_transform<const M: usize, const A: usize>(
    m: &[f32],
    g: Geometry,
    chans: std::ops::Range<usize>,
    band: std::ops::Range<usize>,
    e: Epilogue<'_>,
    s: &mut RowScratch,
    out: &SyncPtr,
) {
    let tiles = band.len() * g.tw;
    let cout = (m.len() - M_SLACK) / (A * A * tiles).max(1);
    for o in chans {
        let rows = output_tiles::<M, A>(&m[o * tiles..], cout * tiles, (tiles, g.tw), s);
        for (k, r) in band.clone().enumerate() {
            let (img, ty) = g.tile_row(r);
            for y in M * ty..(M * ty + M).min(g.h) {
                let at = ((o * g.n + img) * g.h + y) * g.w;
                // SAFETY: row y of plane (o, img) lies in the output and belongs to tile row
                // `ty` of channel o, which only this call writes.
                let dst = unsafe { std::slice::from_raw_parts_mut(out.0.add(at), g.w) };
                let epilogue = RowEpilogue {
                    bias: e.bias[o],
                    residual: e.residual.map(|res| &res[at..at + g.w]),
                    relu: e.relu,
                };
                finish_row(rows.row(k, y - M * ty), epilogue, dst);
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
        for (cin, cout, n, h, w) in [
            (8, 16, 3, 30, 29),
            (5, 3, 2, 9, 14),
            (16, 8, 1, 56, 56),
            (7, 9, 3, 7, 7),
        ] {
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
                    let scale = want.data.iter().fold(1f32, |m, v| m.max(v.abs()));
                    for (schedule, got) in [
                        ("banded", wino.run(&x, residual, relu)),
                        ("wide", wino.run_wide(&x, residual, relu)),
                    ] {
                        let err = got
                            .data
                            .iter()
                            .zip(&want.data)
                            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                        assert!(err < 1e-5 * scale, "{tile:?} {schedule} {n}x{h}x{w}: {err}");
                    }
                }
            }
        }
        Ok(())
    }
}
