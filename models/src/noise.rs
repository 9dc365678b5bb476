//! Where the pipelines' random numbers come from.
//!
//! candle's CPU generator cannot be seeded and CUDA's differs from it, so every draw goes through
//! a [`NoiseSource`]: [`SeededNoise`] (ChaCha8 + Box-Muller, the same numbers on every machine and
//! device) in normal use, [`ReplayNoise`] in tests that feed the exact tensors a reference
//! pipeline drew.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A stream of random draws, consumed in a fixed order by a pipeline.
pub trait NoiseSource {
    /// `len` independent standard-normal values (a tensor's worth, row-major).
    fn normal(&mut self, len: usize) -> Vec<f32>;
    /// An integer uniform on `lo..=hi`.
    fn uniform_int(&mut self, lo: i64, hi: i64) -> i64;
}

/// Portable seeded noise: ChaCha8 uniforms turned into normals by Box-Muller in `f64`.
#[derive(Debug, Clone)]
pub struct SeededNoise {
    rng: ChaCha8Rng,
}

impl SeededNoise {
    /// A stream determined by `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }
}

impl NoiseSource for SeededNoise {
    fn normal(&mut self, len: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(len + 1);
        while out.len() < len {
            // 1 - u keeps the logarithm's argument in (0, 1].
            let u1: f64 = 1.0 - self.rng.gen::<f64>();
            let u2: f64 = self.rng.gen::<f64>();
            let r = (-2.0 * u1.ln()).sqrt();
            let theta = std::f64::consts::TAU * u2;
            out.push((r * theta.cos()) as f32);
            out.push((r * theta.sin()) as f32);
        }
        out.truncate(len);
        out
    }

    fn uniform_int(&mut self, lo: i64, hi: i64) -> i64 {
        self.rng.gen_range(lo..=hi)
    }
}

/// Replays recorded draws in order (fixture tests). It never panics: running out, or a tensor of
/// the wrong length, returns zeros and sets [`ReplayNoise::exhausted`].
#[derive(Debug, Clone, Default)]
pub struct ReplayNoise {
    normals: std::collections::VecDeque<Vec<f32>>,
    ints: std::collections::VecDeque<i64>,
    /// Whether a draw found nothing left to replay or a tensor of the wrong length.
    pub exhausted: bool,
}

impl ReplayNoise {
    /// Normal tensors and integers to hand out, each in order.
    pub fn new(normals: Vec<Vec<f32>>, ints: Vec<i64>) -> Self {
        Self {
            normals: normals.into(),
            ints: ints.into(),
            exhausted: false,
        }
    }
}

impl NoiseSource for ReplayNoise {
    fn normal(&mut self, len: usize) -> Vec<f32> {
        match self.normals.pop_front() {
            Some(v) if v.len() == len => v,
            _ => {
                self.exhausted = true;
                vec![0.0; len]
            }
        }
    }

    fn uniform_int(&mut self, lo: i64, _hi: i64) -> i64 {
        self.ints.pop_front().unwrap_or_else(|| {
            self.exhausted = true;
            lo
        })
    }
}
