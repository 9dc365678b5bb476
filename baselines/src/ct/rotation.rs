//! The projection axes of iterative distribution transfer (IDT).
//!
//! The reference (`colour_transfer_IDT.m`) uses, for the first iteration, a fixed set of six
//! axes, and for each later iteration that set multiplied on the right by a random orthonormal
//! 3x3 matrix (`R{1} * orth(randn(3,3))`). MATLAB's random stream cannot be reproduced here, so
//! the random matrices come from a seeded [`ChaCha8Rng`]; see [`random_orthogonal`].

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A set of projection axes: one row per axis, each a direction in RGB space. IDT accepts any
/// number of rows >= 3 whose span is all of RGB (the reference uses 6).
pub type Axes = Vec<[f64; 3]>;

/// The reference's fixed axes (`R{1}` in `colour_transfer_IDT.m`): the three RGB axes and three
/// diagonal directions. Their Gram matrix is `2 I`.
pub const REFERENCE_AXES: [[f64; 3]; 6] = [
    [1.0, 0.0, 0.0],
    [0.0, 1.0, 0.0],
    [0.0, 0.0, 1.0],
    [2.0 / 3.0, 2.0 / 3.0, -1.0 / 3.0],
    [2.0 / 3.0, -1.0 / 3.0, 2.0 / 3.0],
    [-1.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0],
];

/// The axes for `iterations` IDT iterations, as the reference builds them: iteration 1 uses
/// [`REFERENCE_AXES`]; iteration `i > 1` uses `REFERENCE_AXES * Q_i` with `Q_i` from
/// [`random_orthogonal`], all drawn from one `ChaCha8Rng::seed_from_u64(seed)` in order.
pub fn reference_rotations(iterations: usize, seed: u64) -> Vec<Axes> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..iterations)
        .map(|i| {
            if i == 0 {
                REFERENCE_AXES.to_vec()
            } else {
                let q = random_orthogonal(&mut rng);
                rotate_axes(&REFERENCE_AXES, &q)
            }
        })
        .collect()
}

/// `axes * q`: each axis (row) multiplied on the right by the 3x3 matrix `q`.
pub fn rotate_axes(axes: &[[f64; 3]], q: &[[f64; 3]; 3]) -> Axes {
    axes.iter()
        .map(|a| {
            let mut row = [0.0; 3];
            for (c, out) in row.iter_mut().enumerate() {
                *out = a[0] * q[0][c] + a[1] * q[1][c] + a[2] * q[2][c];
            }
            row
        })
        .collect()
}

/// A uniformly distributed random rotation matrix (Haar measure on SO(3)).
///
/// Drawn as a uniform unit quaternion: four uniforms in `[-1, 1)` by rejection from the unit
/// 4-ball, normalised, then turned into a matrix. It uses only `+ - * /` and `sqrt`, which IEEE
/// 754 rounds exactly, so a seed gives bit-identical rotations on every platform. (The
/// reference's `orth(randn(3,3))` may also return reflections; histogram matching along `a` and
/// `-a` is the same operation up to the bin grid, so this does not change what the method does.)
pub fn random_orthogonal<R: Rng + ?Sized>(rng: &mut R) -> [[f64; 3]; 3] {
    let (w, x, y, z) = loop {
        let q: [f64; 4] = [
            2.0 * rng.gen::<f64>() - 1.0,
            2.0 * rng.gen::<f64>() - 1.0,
            2.0 * rng.gen::<f64>() - 1.0,
            2.0 * rng.gen::<f64>() - 1.0,
        ];
        let n2 = q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3];
        if n2 > 1e-6 && n2 <= 1.0 {
            let n = n2.sqrt();
            break (q[0] / n, q[1] / n, q[2] / n, q[3] / n);
        }
    };
    [
        [
            1.0 - 2.0 * (y * y + z * z),
            2.0 * (x * y - w * z),
            2.0 * (x * z + w * y),
        ],
        [
            2.0 * (x * y + w * z),
            1.0 - 2.0 * (x * x + z * z),
            2.0 * (y * z - w * x),
        ],
        [
            2.0 * (x * z - w * y),
            2.0 * (y * z + w * x),
            1.0 - 2.0 * (x * x + y * y),
        ],
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_rotations_are_orthonormal() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..100 {
            let q = random_orthogonal(&mut rng);
            for i in 0..3 {
                for j in 0..3 {
                    let dot: f64 = (0..3).map(|k| q[i][k] * q[j][k]).sum();
                    let want = if i == j { 1.0 } else { 0.0 };
                    assert!((dot - want).abs() < 1e-12, "{dot} vs {want}");
                }
            }
        }
    }

    #[test]
    fn first_rotation_is_the_fixed_set_and_gram_is_2i() {
        let r = reference_rotations(3, 1);
        assert_eq!(r[0], REFERENCE_AXES.to_vec());
        for axes in &r {
            for i in 0..3 {
                for j in 0..3 {
                    let g: f64 = axes.iter().map(|a| a[i] * a[j]).sum();
                    let want = if i == j { 2.0 } else { 0.0 };
                    assert!((g - want).abs() < 1e-12);
                }
            }
        }
        assert_ne!(r[1], r[2]);
        assert_eq!(reference_rotations(3, 1), r);
        assert_ne!(reference_rotations(3, 2)[1], r[1]);
    }
}
