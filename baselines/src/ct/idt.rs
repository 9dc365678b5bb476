//! Iterative distribution transfer (IDT), Pitié et al. 2005/2007, following the reference
//! `pdf_transfer.m` of frcs/colour-transfer (commit 50397f0) step by step.
//!
//! Per iteration, with axes `R` (P x 3) and the current source colours `D0` (3 x N):
//! 1. project source and reference on each axis;
//! 2. per axis, take the data range of both projections widened by MATLAB's `eps` (2^-52) on each
//!    side and a grid `u` of `bins` points over it (`u_k = k/(bins-1) * range + min`);
//! 3. histogram both projections with `hist(., u)` semantics (bin centres `u`, cut-offs halfway
//!    between centres, a value equal to a cut-off goes to the lower bin, the end bins open);
//! 4. match the histograms in 1-D: cumulative sums of `counts + eps` normalised to 1, inverted by
//!    linear interpolation (`pdf_transfer1D`);
//! 5. map each projection through that transfer by linear interpolation on the grid, then subtract
//!    one bin (the reference's `(interp1(u, f', x) - 1)`, kept by default; see
//!    [`IdtSettings::reference_bin_shift`]);
//! 6. move the colours by the least-squares solution of `R d = (mapped - projected)` times the
//!    relaxation (`D0 = relaxation * (R \ (D0R_ - D0R)) + D0`).
//!
//! Where the reference would produce NaN (a projection outside the grid through rounding, or a
//! grid with repeated points when source and reference are constant along an axis), this code
//! clamps to the grid's end or uses the left knot instead; elsewhere it computes what the
//! reference computes, in the same order of operations where that affects rounding.

use super::rotation::Axes;

/// MATLAB's `eps` (2^-52), used by the reference to widen each projection's data range.
pub const MATLAB_EPS: f64 = f64::EPSILON;

/// Settings of one IDT run (the rotations are passed separately).
#[derive(Debug, Clone, PartialEq)]
pub struct IdtSettings {
    /// Number of histogram bins per axis (reference: 300). At least 2.
    pub bins: usize,
    /// Damping added to every bin count before the cumulative sums (reference: 1e-6). Positive.
    pub histogram_eps: f64,
    /// Step size applied to each iteration's displacement (reference default: 1).
    pub relaxation: f64,
    /// Reproduce the reference's `- 1` after mapping a projection onto the bin grid (`true`, the
    /// default). It is a leftover of MATLAB's 1-based indexing: the transfer map `f` already
    /// holds 0-based bin positions, so every mapped projection lands one bin width
    /// (`range / (bins - 1)`) lower. `false` maps without that shift.
    pub reference_bin_shift: bool,
}

impl Default for IdtSettings {
    fn default() -> Self {
        Self {
            bins: 300,
            histogram_eps: 1e-6,
            relaxation: 1.0,
            reference_bin_shift: true,
        }
    }
}

/// Why IDT could not run on its inputs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum IdtError {
    /// The source or the reference has no pixels.
    #[error("the {0} has no pixels")]
    Empty(&'static str),
    /// A setting is out of range.
    #[error("{0}")]
    InvalidSetting(String),
    /// An axis set has fewer than 3 axes or does not span RGB, so the back-projection is not
    /// defined.
    #[error("axis set {index} is degenerate: {reason}")]
    DegenerateAxes {
        /// 0-based iteration index of the offending axis set.
        index: usize,
        /// Why.
        reason: String,
    },
    /// An input colour is NaN or infinite.
    #[error("the {0} has a non-finite colour value")]
    NonFiniteInput(&'static str),
    /// A non-finite value appeared during iteration `.0` (0-based).
    #[error("IDT produced a non-finite value in iteration {0}")]
    NonFinite(usize),
}

/// Runs IDT on colour samples: moves the `source` colours so their distribution matches that of
/// the `reference` colours, one iteration per entry of `rotations`.
///
/// Colours are RGB in `[0, 1]`; the order of samples does not matter (only their distribution
/// does), and the result has one colour per source sample in the same order.
pub fn idt_with_rotations(
    source: &[[f64; 3]],
    reference: &[[f64; 3]],
    rotations: &[Axes],
    settings: &IdtSettings,
) -> Result<Vec<[f64; 3]>, IdtError> {
    if source.is_empty() {
        return Err(IdtError::Empty("source"));
    }
    if reference.is_empty() {
        return Err(IdtError::Empty("reference"));
    }
    for (samples, role) in [(source, "source"), (reference, "reference")] {
        if samples.iter().flatten().any(|v| !v.is_finite()) {
            return Err(IdtError::NonFiniteInput(role));
        }
    }
    validate_settings(settings)?;
    let pinvs = rotations
        .iter()
        .enumerate()
        .map(|(index, axes)| {
            pseudo_inverse(axes).map_err(|reason| IdtError::DegenerateAxes { index, reason })
        })
        .collect::<Result<Vec<_>, _>>()?;

    let n = source.len();
    let mut d0 = source.to_vec();
    let mut proj0 = vec![0.0; n];
    let mut proj1 = vec![0.0; reference.len()];
    let mut mapped = vec![0.0; n];
    let mut delta = vec![[0.0f64; 3]; n];
    let mut grid = Grid::new(settings.bins);

    for (it, (axes, pinv)) in rotations.iter().zip(&pinvs).enumerate() {
        delta.iter_mut().for_each(|d| *d = [0.0; 3]);
        for (i, axis) in axes.iter().enumerate() {
            project(&d0, axis, &mut proj0);
            project(reference, axis, &mut proj1);
            grid.match_axis(&proj0, &proj1, settings, &mut mapped);
            // delta = pinv * (mapped - projected), accumulated axis by axis.
            let col = pinv[i];
            for ((d, &m), &p) in delta.iter_mut().zip(&mapped).zip(&proj0) {
                let diff = m - p;
                d[0] += col[0] * diff;
                d[1] += col[1] * diff;
                d[2] += col[2] * diff;
            }
        }
        for (x, d) in d0.iter_mut().zip(&delta) {
            for c in 0..3 {
                x[c] += settings.relaxation * d[c];
            }
        }
        if d0.iter().flatten().any(|v| !v.is_finite()) {
            return Err(IdtError::NonFinite(it));
        }
    }
    Ok(d0)
}

fn validate_settings(s: &IdtSettings) -> Result<(), IdtError> {
    if s.bins < 2 {
        return Err(IdtError::InvalidSetting(format!(
            "bins must be at least 2, got {}",
            s.bins
        )));
    }
    if !(s.histogram_eps.is_finite() && s.histogram_eps > 0.0) {
        return Err(IdtError::InvalidSetting(format!(
            "histogram_eps must be positive and finite, got {}",
            s.histogram_eps
        )));
    }
    if !(s.relaxation.is_finite() && s.relaxation > 0.0) {
        return Err(IdtError::InvalidSetting(format!(
            "relaxation must be positive and finite, got {}",
            s.relaxation
        )));
    }
    Ok(())
}

fn project(colours: &[[f64; 3]], axis: &[f64; 3], out: &mut [f64]) {
    for (o, c) in out.iter_mut().zip(colours) {
        *o = axis[0] * c[0] + axis[1] * c[1] + axis[2] * c[2];
    }
}

/// The least-squares inverse `(R^T R)^-1 R^T` (3 x P) of a P x 3 axis set, i.e. what `R \ B`
/// computes column by column for a full-rank `R`. Returned as its P columns: entry `i` holds
/// the 3 weights of axis `i`.
pub fn pseudo_inverse(axes: &[[f64; 3]]) -> Result<Vec<[f64; 3]>, String> {
    if axes.len() < 3 {
        return Err(format!("needs at least 3 axes, got {}", axes.len()));
    }
    if axes.iter().flatten().any(|v| !v.is_finite()) {
        return Err("contains a non-finite value".into());
    }
    let mut g = [[0.0f64; 3]; 3];
    for a in axes {
        for i in 0..3 {
            for j in 0..3 {
                g[i][j] += a[i] * a[j];
            }
        }
    }
    let cof =
        |r0: usize, r1: usize, c0: usize, c1: usize| g[r0][c0] * g[r1][c1] - g[r0][c1] * g[r1][c0];
    // Adjugate (transpose of the cofactor matrix); g is symmetric.
    let adj = [
        [cof(1, 2, 1, 2), -cof(0, 2, 1, 2), cof(0, 1, 1, 2)],
        [-cof(1, 2, 0, 2), cof(0, 2, 0, 2), -cof(0, 1, 0, 2)],
        [cof(1, 2, 0, 1), -cof(0, 2, 0, 1), cof(0, 1, 0, 1)],
    ];
    let det = g[0][0] * adj[0][0] + g[0][1] * adj[1][0] + g[0][2] * adj[2][0];
    let scale = (g[0][0] + g[1][1] + g[2][2]) / 3.0;
    let well_conditioned = det.abs() > 1e-12 * scale * scale * scale;
    if !well_conditioned {
        return Err(format!("the axes do not span RGB (det(R^T R) = {det:e})"));
    }
    let inv = adj.map(|row| row.map(|v| v / det));
    // Column i of pinv = inv * R^T is inv * (axis i).
    Ok(axes
        .iter()
        .map(|a| {
            let mut col = [0.0f64; 3];
            for (c, out) in col.iter_mut().enumerate() {
                *out = inv[c][0] * a[0] + inv[c][1] * a[1] + inv[c][2] * a[2];
            }
            col
        })
        .collect())
}

/// Scratch space for matching one axis, reused across axes and iterations.
struct Grid {
    bins: usize,
    u: Vec<f64>,
    cutoffs: Vec<f64>,
    p0: Vec<f64>,
    p1: Vec<f64>,
    f: Vec<f64>,
    cx: Vec<f64>,
    cy: Vec<f64>,
    slopes: Vec<f64>,
    counts: Vec<u32>,
}

impl Grid {
    fn new(bins: usize) -> Self {
        Self {
            bins,
            u: vec![0.0; bins],
            cutoffs: vec![0.0; bins - 1],
            p0: vec![0.0; bins],
            p1: vec![0.0; bins],
            f: vec![0.0; bins],
            cx: vec![0.0; bins],
            cy: vec![0.0; bins],
            slopes: vec![0.0; bins],
            counts: vec![0; bins],
        }
    }

    /// Maps the source projections `x0` so their histogram matches that of `x1`; writes the
    /// mapped values (not the displacement) to `out`.
    fn match_axis(&mut self, x0: &[f64], x1: &[f64], s: &IdtSettings, out: &mut [f64]) {
        let (lo0, hi0) = min_max(x0);
        let (lo1, hi1) = min_max(x1);
        let (lo, hi) = (lo0.min(lo1), hi0.max(hi1));
        let datamin = lo - MATLAB_EPS;
        let datamax = hi + MATLAB_EPS;
        let range = datamax - datamin;
        let last = (self.bins - 1) as f64;
        for (k, u) in self.u.iter_mut().enumerate() {
            *u = k as f64 / last * range + datamin;
        }
        for (k, c) in self.cutoffs.iter_mut().enumerate() {
            *c = (self.u[k] + self.u[k + 1]) / 2.0;
        }
        histogram(x0, &self.cutoffs, &mut self.p0, &mut self.counts);
        histogram(x1, &self.cutoffs, &mut self.p1, &mut self.counts);
        transfer_1d(
            &self.p0,
            &self.p1,
            s.histogram_eps,
            &mut self.cx,
            &mut self.cy,
            &mut self.f,
        );
        let shift = if s.reference_bin_shift { 1.0 } else { 0.0 };
        let interp = Interp::new(&self.u, &self.f, &mut self.slopes);
        for (o, &x) in out.iter_mut().zip(x0) {
            *o = (interp.at(x) - shift) / last * range + datamin;
        }
    }
}

/// Locates values on a sorted, nearly evenly spaced grid: a guess from the spacing, then a walk
/// to the exact position, so the answer is the same as a binary search's.
#[derive(Debug, Clone, Copy)]
struct Locator {
    origin: f64,
    scale: f64,
    len: usize,
}

impl Locator {
    fn new(grid: &[f64]) -> Self {
        let len = grid.len();
        let scale = if len >= 2 {
            (len - 1) as f64 / (grid[len - 1] - grid[0])
        } else {
            0.0
        };
        Self {
            origin: grid.first().copied().unwrap_or(0.0),
            scale: if scale.is_finite() { scale } else { 0.0 },
            len,
        }
    }

    /// A guess of the number of grid points below `v`.
    #[inline]
    fn guess(&self, v: f64) -> usize {
        let pos = (v - self.origin) * self.scale;
        if pos.is_nan() || pos < 0.0 {
            return 0; // below the grid, or NaN
        }
        // `as` saturates: too large gives usize::MAX.
        (pos as usize).saturating_add(1).min(self.len)
    }

    /// The number of grid points strictly below `v`.
    #[inline]
    fn count_below(&self, grid: &[f64], v: f64) -> usize {
        let mut k = self.guess(v);
        while k > 0 && grid[k - 1] >= v {
            k -= 1;
        }
        while k < grid.len() && grid[k] < v {
            k += 1;
        }
        k
    }

    /// The number of grid points at or below `v`.
    #[inline]
    fn count_at_or_below(&self, grid: &[f64], v: f64) -> usize {
        let mut k = self.guess(v);
        while k > 0 && grid[k - 1] > v {
            k -= 1;
        }
        while k < grid.len() && grid[k] <= v {
            k += 1;
        }
        k
    }
}

/// The smallest and largest value (inputs are finite, so plain comparisons suffice; they let the
/// compiler vectorise the loop).
fn min_max(x: &[f64]) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &v in x {
        lo = if v < lo { v } else { lo };
        hi = if v > hi { v } else { hi };
    }
    (lo, hi)
}

/// `hist(x, u)` counts with the cut-offs between the bin centres: bin `k` holds the values with
/// `cutoffs[k-1] < x <= cutoffs[k]` (first and last bins open-ended).
fn histogram(x: &[f64], cutoffs: &[f64], counts: &mut [f64], scratch: &mut [u32]) {
    scratch.iter_mut().for_each(|c| *c = 0);
    let loc = Locator::new(cutoffs);
    for &v in x {
        scratch[loc.count_below(cutoffs, v)] += 1;
    }
    for (c, &n) in counts.iter_mut().zip(scratch.iter()) {
        *c = f64::from(n);
    }
}

/// `pdf_transfer1D`: the transfer map from histogram `px` to histogram `py`, as 0-based
/// (fractional) bin positions, one per bin of `px`.
fn transfer_1d(px: &[f64], py: &[f64], eps: f64, cx: &mut [f64], cy: &mut [f64], f: &mut [f64]) {
    cumulative(px, eps, cx);
    cumulative(py, eps, cy);
    let n = px.len();
    let (first, last) = (cy[0], cy[n - 1]);
    let mut k = 0usize;
    for (fi, &x) in f.iter_mut().zip(cx.iter()) {
        *fi = if x <= first {
            0.0
        } else if x >= last {
            (n - 1) as f64
        } else {
            // Largest k with cy[k] <= x; cx is non-decreasing, so k only moves forward.
            while k + 1 < n && cy[k + 1] <= x {
                k += 1;
            }
            let dx = cy[k + 1] - cy[k];
            if dx > 0.0 {
                1.0 / dx * (x - cy[k]) + k as f64
            } else {
                k as f64
            }
        };
    }
}

/// `c = cumsum(p + eps); c = c / c(end)`.
fn cumulative(p: &[f64], eps: f64, out: &mut [f64]) {
    let mut acc = 0.0;
    for (o, &v) in out.iter_mut().zip(p) {
        acc += v + eps;
        *o = acc;
    }
    let total = acc;
    out.iter_mut().for_each(|o| *o /= total);
}

/// `interp1(u, f, ., 'linear')` on an increasing grid `u`, in the piecewise-polynomial form
/// Octave uses (`slope_k * (x - u_k) + f_k` with `slope_k = (f_{k+1} - f_k) / (u_{k+1} - u_k)`).
/// Values outside the grid are clamped to the end values (the reference would return NaN there)
/// and zero-width intervals take the left value.
struct Interp<'a> {
    u: &'a [f64],
    f: &'a [f64],
    slopes: &'a [f64],
    loc: Locator,
}

impl<'a> Interp<'a> {
    /// `slopes` is scratch space of the grid's length.
    fn new(u: &'a [f64], f: &'a [f64], slopes: &'a mut [f64]) -> Self {
        for (k, s) in slopes
            .iter_mut()
            .enumerate()
            .take(u.len().saturating_sub(1))
        {
            let dx = u[k + 1] - u[k];
            *s = if dx > 0.0 {
                (f[k + 1] - f[k]) / dx
            } else {
                0.0
            };
        }
        Self {
            u,
            f,
            slopes,
            loc: Locator::new(u),
        }
    }

    #[inline]
    fn at(&self, x: f64) -> f64 {
        let (u, f) = (self.u, self.f);
        let n = u.len();
        if n < 2 || x < u[0] {
            return f[0];
        }
        if x > u[n - 1] {
            return f[n - 1];
        }
        // Largest k with u[k] <= x, limited to the last interval.
        let k = self
            .loc
            .count_at_or_below(u, x)
            .saturating_sub(1)
            .min(n - 2);
        self.slopes[k] * (x - u[k]) + f[k]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_inputs_and_degenerate_axes_are_errors() {
        let ok = vec![[0.5, 0.25, 0.75]; 4];
        let mut bad = ok.clone();
        bad[2][1] = f64::NAN;
        let rot = vec![super::super::rotation::REFERENCE_AXES.to_vec()];
        let s = IdtSettings::default();
        assert_eq!(
            idt_with_rotations(&bad, &ok, &rot, &s),
            Err(IdtError::NonFiniteInput("source"))
        );
        assert_eq!(
            idt_with_rotations(&ok, &bad, &rot, &s),
            Err(IdtError::NonFiniteInput("reference"))
        );
        let flat = vec![vec![[1.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 1.0, 0.0]]];
        assert!(matches!(
            idt_with_rotations(&ok, &ok, &flat, &s),
            Err(IdtError::DegenerateAxes { index: 0, .. })
        ));
        let two = vec![vec![[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]];
        assert!(matches!(
            idt_with_rotations(&ok, &ok, &two, &s),
            Err(IdtError::DegenerateAxes { index: 0, .. })
        ));
    }

    #[test]
    fn pseudo_inverse_of_the_fixed_axes_is_half_the_transpose() {
        let p = pseudo_inverse(&super::super::rotation::REFERENCE_AXES).unwrap();
        for (col, axis) in p.iter().zip(super::super::rotation::REFERENCE_AXES) {
            for (got, a) in col.iter().zip(axis) {
                assert!((got - a / 2.0).abs() < 1e-15);
            }
        }
    }

    #[test]
    fn count_below_matches_linear_scan() {
        let c: Vec<f64> = (0..10).map(|k| k as f64 * 0.1 + 0.05).collect();
        for v in [-1.0, 0.05, 0.0500001, 0.5, 0.95, 0.96, 2.0, f64::NAN] {
            let want = c.iter().filter(|&&x| x < v).count();
            assert_eq!(Locator::new(&c).count_below(&c, v), want, "v = {v}");
        }
    }

    #[test]
    fn interp_clamps_and_interpolates() {
        let u = [0.0, 1.0, 2.0];
        let f = [0.0, 10.0, 30.0];
        let mut slopes = [0.0; 3];
        let i = Interp::new(&u, &f, &mut slopes);
        assert_eq!(i.at(-1.0), 0.0);
        assert_eq!(i.at(3.0), 30.0);
        assert_eq!(i.at(0.0), 0.0);
        assert_eq!(i.at(0.5), 5.0);
        assert_eq!(i.at(1.5), 20.0);
        assert_eq!(i.at(2.0), 30.0);
        let flat = [1.0, 1.0, 1.0];
        let mut slopes = [0.0; 3];
        assert_eq!(Interp::new(&flat, &f, &mut slopes).at(1.0), 10.0);
    }

    #[test]
    fn identical_distributions_move_by_at_most_the_bin_shift() {
        let src: Vec<[f64; 3]> = (0..200)
            .map(|i| {
                let t = i as f64 / 199.0;
                [t, 1.0 - t, (t * 7.0) % 1.0]
            })
            .collect();
        let rot = vec![super::super::rotation::REFERENCE_AXES.to_vec()];
        let s = IdtSettings {
            reference_bin_shift: false,
            ..IdtSettings::default()
        };
        let out = idt_with_rotations(&src, &src, &rot, &s).unwrap();
        for (a, b) in src.iter().zip(&out) {
            for c in 0..3 {
                assert!((a[c] - b[c]).abs() < 0.01, "{a:?} -> {b:?}");
            }
        }
    }
}
