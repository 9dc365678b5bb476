//! The input and output transforms of Winograd's F(2x2, 3x3) and F(4x4, 3x3) (see
//! [`super::winograd`]), one tile row of one channel plane at a time, shared by the N x C x H x W
//! convolution of the diffusion models and the C x N x H x W one of the predictor.
//!
//! Each stage runs across the row's tiles in vectors of [`L`] values, so it vectorises whatever
//! the tile count: the zero-padded input rows are stored split by `x mod M`, which makes the
//! horizontal inputs of the overlapping tiles contiguous. The arithmetic is the same as one tile
//! at a time (columns first, then rows; no fused multiply-adds), so the bits are the same too.

use std::ops::{Add, Mul, Sub};

/// Values per vector step: one AVX-512 register.
const L: usize = 16;

/// Values to allocate past the end of a products buffer read by [`output_row`].
pub(crate) const M_SLACK: usize = L;

/// [`L`] values computed together.
#[derive(Clone, Copy)]
struct Lanes([f32; L]);

impl Lanes {
    const ZERO: Self = Self([0.0; L]);

    /// The first [`L`] values of `s`.
    #[inline(always)]
    fn load(s: &[f32]) -> Self {
        let mut a = [0f32; L];
        a.copy_from_slice(&s[..L]);
        Self(a)
    }

    /// Up to [`L`] values of `s`, zeros after its end.
    #[inline(always)]
    fn load_part(s: &[f32]) -> Self {
        if s.len() >= L {
            return Self::load(s);
        }
        let mut a = [0f32; L];
        a[..s.len()].copy_from_slice(s);
        Self(a)
    }

    #[inline(always)]
    fn store(self, d: &mut [f32]) {
        d[..L].copy_from_slice(&self.0);
    }

    /// The first `min(L, d.len())` values into `d`.
    #[inline(always)]
    fn store_part(self, d: &mut [f32]) {
        let n = d.len().min(L);
        d[..n].copy_from_slice(&self.0[..n]);
    }
}

impl Add for Lanes {
    type Output = Self;
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        let mut r = self.0;
        for (a, b) in r.iter_mut().zip(o.0) {
            *a += b;
        }
        Self(r)
    }
}

impl Sub for Lanes {
    type Output = Self;
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        let mut r = self.0;
        for (a, b) in r.iter_mut().zip(o.0) {
            *a -= b;
        }
        Self(r)
    }
}

impl Mul<f32> for Lanes {
    type Output = Self;
    #[inline(always)]
    fn mul(self, k: f32) -> Self {
        let mut r = self.0;
        for v in &mut r {
            *v *= k;
        }
        Self(r)
    }
}

/// What the 1-D transforms compute on: [`Lanes`] here, plain `f32` in the tests.
trait Field: Copy + Add<Output = Self> + Sub<Output = Self> + Mul<f32, Output = Self> {}
impl Field for f32 {}
impl Field for Lanes {}

/// `B^T d` for one column of an F(2x2) input tile.
#[inline(always)]
fn bt_f2<T: Field>(d: [T; 4]) -> [T; 4] {
    [d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]]
}

/// `B^T d` for one column of an F(4x4) input tile.
#[inline(always)]
fn bt_f4<T: Field>(d: [T; 6]) -> [T; 6] {
    let a = d[4] - d[2] * 4.0;
    let b = d[3] - d[1] * 4.0;
    let c = d[4] - d[2];
    let e = (d[3] - d[1]) * 2.0;
    [
        d[0] * 4.0 - d[2] * 5.0 + d[4],
        a + b,
        a - b,
        c + e,
        c - e,
        d[1] * 4.0 - d[3] * 5.0 + d[5],
    ]
}

/// `A^T m` for one column of an F(2x2) product tile.
#[inline(always)]
fn at_f2<T: Field>(m: [T; 4]) -> [T; 2] {
    [m[0] + m[1] + m[2], m[1] - m[2] - m[3]]
}

/// `A^T m` for one column of an F(4x4) product tile.
#[inline(always)]
fn at_f4<T: Field>(m: [T; 6]) -> [T; 4] {
    let (s1, d1) = (m[1] + m[2], m[1] - m[2]);
    let (s2, d2) = (m[3] + m[4], m[3] - m[4]);
    [
        m[0] + s1 + s2,
        d1 + d2 * 2.0,
        s1 + s2 * 4.0,
        d1 + d2 * 8.0 + m[5],
    ]
}

/// One thread's buffers for [`input_row`] and [`output_row`], reused across calls.
#[derive(Default)]
pub(crate) struct RowScratch {
    /// The `A` zero-padded input rows, each split into its `M` phases (x mod M); the output
    /// rows of [`output_tiles`].
    rows: Vec<f32>,
    /// `B^T` (or `A^T`) applied down the columns.
    t: Vec<f32>,
    /// The padded input row in x order.
    y: Vec<f32>,
    /// The horizontal inputs of [`input_tiles`].
    h: Vec<f32>,
}

/// What [`finish_row`] adds to the products before writing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowEpilogue<'a> {
    /// Added to every value (the channel's bias).
    pub bias: f32,
    /// Added next, laid out like the destination rows.
    pub residual: Option<&'a [f32]>,
    /// Whether ReLU is applied last.
    pub relu: bool,
}

/// The planes of one channel and their tile grid: image `i`'s `h x w` plane starts at
/// `base + i * image_stride`, and global tile row `r` is tile row `r % th` of image `r / th`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlaneGrid {
    pub base: usize,
    pub image_stride: usize,
    pub h: usize,
    pub w: usize,
    pub th: usize,
    pub tw: usize,
}

/// `B^T d B` of every tile of the global tile rows `rows` (zero padding 1): tile
/// `T = (r - rows.start) tw + tx` at position `xi` goes to `out[xi * stride + T]`.
pub(crate) fn input_tiles<const M: usize, const A: usize>(
    x: &[f32],
    g: PlaneGrid,
    rows: std::ops::Range<usize>,
    s: &mut RowScratch,
    (out, stride): (&mut [f32], usize),
) {
    match (M, A) {
        (4, 6) => input_tiles_f4(x, g, rows, s, out, stride),
        (2, 4) => input_tiles_f2(x, g, rows, s, out, stride),
        _ => unreachable!("Winograd tiles are F(2x2) and F(4x4)"),
    }
}

/// `A^T m A` of `count` consecutive tiles (tile `T` is column `T % tw` of tile row `T / tw`),
/// position `xi` of tile `T` at `m[xi * stride + T]`; values past the last tile are read as
/// whole vectors and ignored (give `m` [`M_SLACK`] more values at its end). The caller crops
/// the returned rows to the image width and finishes them with [`finish_row`].
pub(crate) fn output_tiles<'s, const M: usize, const A: usize>(
    m: &[f32],
    stride: usize,
    (count, tw): (usize, usize),
    s: &'s mut RowScratch,
) -> OutputRows<'s> {
    match (M, A) {
        (4, 6) => output_tiles_f4(m, stride, count, tw, s),
        (2, 4) => output_tiles_f2(m, stride, count, tw, s),
        _ => unreachable!("Winograd tiles are F(2x2) and F(4x4)"),
    }
    OutputRows {
        data: &s.rows,
        row_stride: whole(count) * M,
        width: M * tw,
    }
}

/// The output rows of [`output_tiles`], in x order, `M tw` values each.
pub(crate) struct OutputRows<'s> {
    data: &'s [f32],
    row_stride: usize,
    width: usize,
}

impl OutputRows<'_> {
    /// Row `r` (of `M`) of tile row `k`.
    pub(crate) fn row(&self, k: usize, r: usize) -> &[f32] {
        &self.data[r * self.row_stride + k * self.width..][..self.width]
    }
}

crate::multiversion! {
    /// `dst = src + bias (+ residual)`, then ReLU if asked: the end of an output row.
    pub(crate) fn finish_row(src: &[f32], e: RowEpilogue<'_>, dst: &mut [f32]) {
        let n = dst.len();
        for (d, v) in dst.iter_mut().zip(&src[..n]) {
            *d = v + e.bias;
        }
        if let Some(res) = e.residual {
            for (d, a) in dst.iter_mut().zip(&res[..n]) {
                *d += a;
            }
        }
        if e.relu {
            dst.iter_mut().for_each(|d| *d = d.max(0.0));
        }
    }
}

/// The 1-D transforms of one tile size, called statically so that they inline into the
/// multiversioned bodies (a function passed as a value would be called through a shim
/// compiled for the baseline CPU).
trait Transforms<const M: usize, const A: usize> {
    fn bt(d: [Lanes; A]) -> [Lanes; A];
    fn at(m: [Lanes; A]) -> [Lanes; M];
}

/// F(2x2, 3x3).
struct F2;
/// F(4x4, 3x3).
struct F4;

impl Transforms<2, 4> for F2 {
    #[inline(always)]
    fn bt(d: [Lanes; 4]) -> [Lanes; 4] {
        bt_f2(d)
    }
    #[inline(always)]
    fn at(m: [Lanes; 4]) -> [Lanes; 2] {
        at_f2(m)
    }
}

impl Transforms<4, 6> for F4 {
    #[inline(always)]
    fn bt(d: [Lanes; 6]) -> [Lanes; 6] {
        bt_f4(d)
    }
    #[inline(always)]
    fn at(m: [Lanes; 6]) -> [Lanes; 4] {
        at_f4(m)
    }
}

/// The multiversioned input and output transforms of one tile size (the bodies are generic; each
/// size needs its own wrappers so that the transforms inline at every CPU width).
macro_rules! tile_kernels {
    ($input:ident, $output:ident, $m:literal, $a:literal, $t:ty) => {
        crate::multiversion! {
            fn $input(
                x: &[f32],
                g: PlaneGrid,
                rows: std::ops::Range<usize>,
                s: &mut RowScratch,
                out: &mut [f32],
                stride: usize,
            ) {
                input_tiles_body::<$m, $a, $t>(x, g, rows, s, (out, stride))
            }
        }

        crate::multiversion! {
            fn $output(m: &[f32], stride: usize, count: usize, tw: usize, s: &mut RowScratch) {
                output_tiles_body::<$m, $a, $t>(m, stride, (count, tw), s)
            }
        }
    };
}

tile_kernels!(input_tiles_f4, output_tiles_f4, 4, 6, F4);
tile_kernels!(input_tiles_f2, output_tiles_f2, 2, 4, F2);

/// `n` rounded up to whole vectors.
#[inline(always)]
fn whole(n: usize) -> usize {
    n.div_ceil(L) * L
}

/// `row[p * q + i] = src[M i + p]` for `i < q`: [`L`] values of every phase per step, from
/// whole blocks of `src` (which holds at least `M whole(q)` values).
#[inline(always)]
fn deinterleave<const M: usize>(src: &[f32], q: usize, row: &mut [f32]) {
    for b in (0..q).step_by(L) {
        let mut block = [0f32; 4 * L];
        block[..M * L].copy_from_slice(&src[M * b..][..M * L]);
        let mut out = [[0f32; L]; 4];
        for i in 0..L {
            for p in 0..M {
                out[p][i] = block[M * i + p];
            }
        }
        let n = L.min(q - b);
        for p in 0..M {
            row[p * q + b..][..n].copy_from_slice(&out[p][..n]);
        }
    }
}

#[inline(always)]
fn input_tiles_body<const M: usize, const A: usize, T: Transforms<M, A>>(
    x: &[f32],
    g: PlaneGrid,
    rows: std::ops::Range<usize>,
    s: &mut RowScratch,
    (out, stride): (&mut [f32], usize),
) {
    let tw = g.tw;
    let count = rows.len() * tw;
    // Phase p of a padded row holds x = M i + p for i in 0..=tw (the tiles read x < M tw + 2),
    // at p * q; rows are rs apart, and L more values at the end absorb whole-vector reads.
    let q = tw + 1;
    let rs = whole(M * q);
    // h: the horizontal inputs of every tile, run (i, j) at (i A + j) hs, with room for
    // whole-vector writes past the last tile.
    let hs = whole(count) + L;
    s.rows.resize(A * rs + L, 0.0);
    s.t.resize(A * rs + L, 0.0);
    s.h.resize(A * A * hs, 0.0);
    s.y.clear();
    s.y.resize(M * whole(q), 0.0);
    for (k, r) in rows.enumerate() {
        let (img, ty) = (r / g.th, r % g.th);
        let plane = &x[g.base + img * g.image_stride..][..g.h * g.w];
        for i in 0..A {
            let row = &mut s.rows[i * rs..][..M * q];
            // Input row M ty + i - 1; zeros above, below and right of the image.
            let y = M * ty + i;
            if y < 1 || y > g.h {
                row.fill(0.0);
                continue;
            }
            s.y[1..=g.w].copy_from_slice(&plane[(y - 1) * g.w..][..g.w]);
            deinterleave::<M>(&s.y, q, row);
        }
        for x0 in (0..rs).step_by(L) {
            let mut d = [Lanes::ZERO; A];
            for (i, di) in d.iter_mut().enumerate() {
                *di = Lanes::load(&s.rows[i * rs + x0..]);
            }
            for (i, vi) in T::bt(d).into_iter().enumerate() {
                vi.store(&mut s.t[i * rs + x0..]);
            }
        }
        // Whole vectors past this tile row's end are overwritten by the next one's.
        for i in 0..A {
            for j in 0..A {
                let src = &s.t[i * rs + (j % M) * q + j / M..];
                let dst = &mut s.h[(i * A + j) * hs + k * tw..];
                for tx0 in (0..tw).step_by(L) {
                    Lanes::load(&src[tx0..]).store(&mut dst[tx0..]);
                }
            }
        }
    }
    for i in 0..A {
        for t0 in (0..count).step_by(L) {
            let mut d = [Lanes::ZERO; A];
            for (j, dj) in d.iter_mut().enumerate() {
                *dj = Lanes::load(&s.h[(i * A + j) * hs + t0..]);
            }
            for (kk, v) in T::bt(d).into_iter().enumerate() {
                let run = &mut out[(i * A + kk) * stride + t0..];
                if t0 + L <= count {
                    v.store(run);
                } else {
                    v.store_part(&mut run[..count - t0]);
                }
            }
        }
    }
}

#[inline(always)]
fn output_tiles_body<const M: usize, const A: usize, T: Transforms<M, A>>(
    m: &[f32],
    stride: usize,
    (count, tw): (usize, usize),
    s: &mut RowScratch,
) {
    debug_assert_eq!(count % tw.max(1), 0);
    let cs = whole(count);
    // t: A^T down the columns, run (r, j) at (r A + j) cs; rows: output row r of every tile
    // in x order, at (r cs + T) M + c, so each tile row's output row is one run.
    s.t.resize(M * A * cs, 0.0);
    s.rows.resize(M * M * cs, 0.0);
    for j in 0..A {
        for t0 in (0..count).step_by(L) {
            let mut d = [Lanes::ZERO; A];
            for (i, di) in d.iter_mut().enumerate() {
                *di = Lanes::load_part(&m[(i * A + j) * stride + t0..]);
            }
            for (r, vr) in T::at(d).into_iter().enumerate() {
                vr.store(&mut s.t[(r * A + j) * cs + t0..]);
            }
        }
    }
    for r in 0..M {
        for t0 in (0..count).step_by(L) {
            let mut d = [Lanes::ZERO; A];
            for (j, dj) in d.iter_mut().enumerate() {
                *dj = Lanes::load(&s.t[(r * A + j) * cs + t0..]);
            }
            let v = T::at(d);
            let mut buf = [0f32; 4 * L];
            for k in 0..L {
                for c in 0..M {
                    buf[k * M + c] = v[c].0[k];
                }
            }
            s.rows[(r * cs + t0) * M..][..M * L].copy_from_slice(&buf[..M * L]);
        }
    }
}
